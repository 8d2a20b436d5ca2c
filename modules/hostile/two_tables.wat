;; hostile/two_tables.wat -- a hello-style handler that defines two tables.
;;
;; Interface: handler. Expected outcome: `invalid_module` at deploy (HTTP 400),
;; "the module defines 2 tables; wasmhost allows one per module": an instance
;; here may have one table, so with the pooling allocator off every call would
;; fail at instantiation ("table count too high") if it were accepted.
(module
  (table 1 funcref)
  (table 1 funcref)
  (memory (export "memory") 1)
  (data (i32.const 16) "\81\a6status\cc\c8")
  (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 10)))
)
