;; hostile/two_memories.wat -- a hello-style handler that defines two memories (multi-memory).
;;
;; Interface: handler. Expected outcome: `invalid_module` at deploy (HTTP 400),
;; "the module defines 2 memories; wasmhost allows one per module": an instance
;; here may have one memory, so with the pooling allocator off every call would
;; fail at instantiation ("memory count too high") if it were accepted.
(module
  (memory $spare 1)
  (memory (export "memory") 1)
  (data (memory 1) (i32.const 16) "\81\a6status\cc\c8")
  (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 10)))
)
