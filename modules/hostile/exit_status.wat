;; hostile/exit_status.wat -- a WAGI program that exits with any status its caller asks for.
;;
;; Interface: wagi; imports wasi_snapshot_preview1.fd_read, fd_write and proc_exit.
;; Expected outcome: `nonzero_exit` carrying exactly the status passed (502), for every
;; status but 0 -- also 126 and above and negative ones, which wasmtime's own proc_exit
;; reports only as "invalid exit status" (the host shadows proc_exit to keep them).
;; Status 0: success, the body is empty.
;;
;; `_start` writes "Content-Type: text/plain\n\n", reads the first 4 bytes of the request
;; body (stdin) as a little-endian i32 and calls proc_exit with it.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))

  (memory (export "memory") 1)

  ;; [0, 8) iovec, [8, 12) count, [32, 36) the status, [64, 90) the header
  (data (i32.const 64) "Content-Type: text/plain\0a\0a")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 26))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 32))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.load (i32.const 32))))
)
