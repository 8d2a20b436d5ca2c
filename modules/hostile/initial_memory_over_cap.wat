;; hostile/initial_memory_over_cap.wat -- asks for 64 MiB of memory up front.
;;
;; Interface: handler (otherwise a correct hello module). Expected outcome:
;; memory_limit at invoke when the function's memory_mb cap is below 64 MiB
;; (instantiation fails: "memory minimum size of 1024 pages exceeds memory
;; limits"); it deploys because 64 MiB is within the server maximum, and it
;; answers like hello when memory_mb >= 64.
(module
  (memory (export "memory") 1024)

  ;; The 79-byte msgpack hello response (decoded in ../hello_handler.wat):
  ;; {"status": 200, "headers": [["content-type", "text/plain; charset=utf-8"]],
  ;;  "body": "Hello, world!\n"}
  (data (i32.const 1024)
    "\83"
    "\a6" "status"   "\cc\c8"
    "\a7" "headers"  "\91" "\92"
                     "\ac" "content-type"
                     "\b9" "text/plain; charset=utf-8"
    "\a4" "body"     "\ae" "Hello, world!\0a")

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
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 79)))
)
