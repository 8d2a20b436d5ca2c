;; hostile/div_zero.wat -- integer division by zero.
;;
;; Interface: handler. Expected outcome: trap at invoke, trap code
;; INTEGER_DIVISION_BY_ZERO. The divisor is computed from the request
;; length (len - len) rather than written as a constant, and the quotient
;; is returned, so the division really happens at run time.
(module
  (memory (export "memory") 1)

  ;; Bump allocator (as in ../hello_handler.wat): 8-byte aligned, grows the
  ;; memory on demand, traps when the memory cannot grow. It works properly so
  ;; that the host can deliver the request and reach wasmhost_handle.
  (global $heap (mut i32) (i32.const 4096))
  (func $alloc (export "wasmhost_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (call $ensure_pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 0xFFFF))
          (i64.const 16))))
    (global.set $heap (local.get $end))
    (local.get $ptr))
  (func $ensure_pages (param $pages i32)
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then unreachable)))))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.extend_i32_u
      (i32.div_u
        (i32.const 1)
        (i32.sub (local.get $len) (local.get $len)))))
)
