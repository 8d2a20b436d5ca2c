;; hostile/nonzero_exit.wat -- a WAGI program that exits with status 3.
;;
;; Interface: wagi; imports wasi_snapshot_preview1.fd_write and proc_exit.
;; Expected outcome: nonzero_exit at invoke, carrying exit code 3 (502),
;; even though a valid CGI header was already written.
;;
;; `_start` writes "Content-Type: text/plain\n\n" to stdout, then calls
;; proc_exit(3), which does not return (wasmtime raises an ExitTrap, code 3).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))

  (memory (export "memory") 1)

  ;; [0, 8) iovec, [8, 12) nwritten, [64, 90) the header
  (data (i32.const 64) "Content-Type: text/plain\0a\0a")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 26))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 3)))
)
