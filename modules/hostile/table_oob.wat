;; hostile/table_oob.wat -- call_indirect past the end of the table.
;;
;; Interface: handler. Expected outcome: `trap` at invoke (HTTP 502), trap code
;; TABLE_OUT_OF_BOUNDS. The table has 1 slot; the call goes through slot 1000.
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
  (type $t (func (result i64)))
  (table 1 funcref)
  (elem (i32.const 0) $one)
  (func $one (type $t) (i64.const 1))
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (call_indirect (type $t) (i32.add (i32.const 1000) (i32.sub (local.get $len) (local.get $len)))))
)
