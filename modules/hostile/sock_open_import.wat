;; hostile/sock_open_import.wat -- imports socket calls that WASI preview 1 does not have.
;;
;; Interface: handler (a correct one otherwise). Imports
;; wasi_snapshot_preview1.sock_open and wasi_snapshot_preview1.sock_connect
;; (the WasmEdge-style extensions that would let a guest open outbound
;; connections), plus fd_write, which is provided.
;; Expected outcome: `invalid_module` at deploy (HTTP 400), the message naming
;; both sock_open and sock_connect: no host provides them, so the module must
;; never be stored, let alone run.
(module
  (import "wasi_snapshot_preview1" "sock_open" (func $open (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_connect" (func $connect (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\81\a6status\cc\c8")
  (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (drop (call $open (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
    (drop (call $connect (i32.load (i32.const 8)) (i32.const 0) (i32.const 0)))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 10)))
)
