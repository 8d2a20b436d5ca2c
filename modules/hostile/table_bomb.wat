;; hostile/table_bomb.wat -- `table.grow` by 10,000 slots until it fails, then `unreachable`.
;;
;; Interface: handler. Expected outcome: `trap` at invoke (HTTP 502), trap code
;; UNREACHABLE, reached after table.grow returned -1 at the host's per-instance
;; table limit (100,000 elements): the table cannot grow without bound.
;; wasmhost_alloc is a bump allocator from 4096 (memory grown on demand), so
;; the host can deliver the request and reach wasmhost_handle.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func $alloc (export "wasmhost_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))))))
    (local.get $ptr))
  (table 1 funcref)
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (loop $grow
      (br_if $grow (i32.ne (table.grow (ref.null func) (i32.const 10000)) (i32.const -1))))
    unreachable)
)
