;; hostile/huge_table.wat -- a correct hello-style handler that declares a table of 10,000,000 funcref
;; slots (80 MB of table).
;;
;; Interface: handler. Expected outcome: `invalid_module` at deploy (HTTP 400):
;; the table is larger than the server allows for one instance, so it could never
;; run. It must be refused with a message that says so, not fail every call.
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
  (table 10000000 funcref)
  (data (i32.const 16) "\81\a6status\cc\c8")
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 10)))
)
