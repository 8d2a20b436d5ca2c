;; hello_wagi.wat -- the "hello world" of the `wagi` interface.
;;
;; Interface: wagi (DESIGN §2b): a WASI command module. Exports `_start`
;; and `memory` (WASI reads the iovecs and the bytes from it); imports
;;   wasi_snapshot_preview1.fd_write(fd, iovs, iovs_len, nwritten_ptr) -> errno
;;
;; What it does: `_start` writes this CGI response to stdout (fd 1):
;;
;;   Content-Type: text/plain\n
;;   \n
;;   Hello from WAGI\n
;;
;; i.e. status 200 (no Status header), content-type text/plain, body
;; "Hello from WAGI\n".
;;
;; Memory layout:
;;   [ 0,  8)  one iovec {buf: i32, buf_len: i32}
;;   [ 8, 12)  fd_write's nwritten result
;;   [64, 106) the 42-byte CGI response
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  (data (i32.const 64) "Content-Type: text/plain\0a\0aHello from WAGI\0a")

  ;; Writes all of [buf, buf+len) to stdout, calling fd_write again after a
  ;; partial write; traps if fd_write reports an error.
  (func $write_all (param $buf i32) (param $len i32)
    (loop $more
      (if (i32.eqz (local.get $len)) (then (return)))
      (i32.store (i32.const 0) (local.get $buf))
      (i32.store (i32.const 4) (local.get $len))
      (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
        (then unreachable))
      ;; advance past what was written
      (local.set $buf (i32.add (local.get $buf) (i32.load (i32.const 8))))
      (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
      (br $more)))

  (func (export "_start")
    (call $write_all (i32.const 64) (i32.const 42)))
)
