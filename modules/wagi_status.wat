;; wagi_status.wat -- a CGI response with a Status header, CRLF line ends
;; and a repeated header.
;;
;; Interface: wagi (DESIGN §2b). Exports `_start`, `memory`; imports
;; wasi_snapshot_preview1.fd_write.
;;
;; What it does: `_start` writes to stdout (94 bytes):
;;
;;   Status: 404 Not Found\r\n
;;   Content-Type: text/plain\r\n
;;   Set-Cookie: a=1\r\n
;;   Set-Cookie: b=2\r\n
;;   \r\n
;;   not here\n
;;
;; The host must answer 404 with content-type text/plain, BOTH Set-Cookie
;; headers (a=1 and b=2, in that order) and the body "not here\n".
;;
;; Memory layout: iovec at [0, 8), nwritten at [8, 12), response at 64.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  (data (i32.const 64)
    "Status: 404 Not Found\0d\0a"
    "Content-Type: text/plain\0d\0a"
    "Set-Cookie: a=1\0d\0a"
    "Set-Cookie: b=2\0d\0a"
    "\0d\0a"
    "not here\0a")

  ;; Writes all of [buf, buf+len) to stdout, retrying after partial writes;
  ;; traps if fd_write reports an error.
  (func $write_all (param $buf i32) (param $len i32)
    (loop $more
      (if (i32.eqz (local.get $len)) (then (return)))
      (i32.store (i32.const 0) (local.get $buf))
      (i32.store (i32.const 4) (local.get $len))
      (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
        (then unreachable))
      (local.set $buf (i32.add (local.get $buf) (i32.load (i32.const 8))))
      (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
      (br $more)))

  (func (export "_start")
    (call $write_all (i32.const 64) (i32.const 94)))
)
