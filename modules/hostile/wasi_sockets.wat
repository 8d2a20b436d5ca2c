;; hostile/wasi_sockets.wat -- a WAGI program that tries the WASI socket calls.
;;
;; Interface: wagi; imports sock_accept, sock_recv, sock_send, sock_shutdown
;; and fd_write from wasi_snapshot_preview1 (the only socket calls preview 1
;; has; it cannot open a socket, only use one it was given).
;; Expected outcome: success (200) at invoke; every call fails inside the guest
;; with a WASI errno, never 0: no socket was handed to the guest, so fd 3 and
;; up are EBADF (8) and stdin/stdout are not sockets.
;;
;; `_start` prints "Content-Type: text/plain\n\n" and one line per attempt:
;;   accept3, accept4, accept0, recv3, send3, send1, shutdown3  ("<what>=<errno>\n")
;;
;; Memory layout: [0, 8) iovec, [8, 16) result scratch, [64, 128) strings,
;; [256, 272) number buffer, [1024, 2048) data buffer.
(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\0a\0a")       ;; 64, 26
  (data (i32.const 96) "acceptrecvsendshutdown")               ;; 96: accept(6) recv(4) send(4) shutdown(8)

  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $report (param $label i32) (param $llen i32) (param $fd i32) (param $errno i32)
    (local $p i32)
    (call $out (local.get $label) (local.get $llen))
    (i32.store8 (i32.const 256) (i32.add (i32.const 48) (local.get $fd)))
    (i32.store8 (i32.const 257) (i32.const 61))
    (local.set $p (i32.const 258))
    (if (i32.ge_u (local.get $errno) (i32.const 100)) (then
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 100))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (if (i32.ge_u (local.get $errno) (i32.const 10)) (then
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $errno) (i32.const 10)) (i32.const 10))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.add (local.get $p) (i32.const 1)) (i32.const 10))
    (call $out (i32.const 256) (i32.sub (i32.add (local.get $p) (i32.const 2)) (i32.const 256))))

  (func (export "_start")
    (call $out (i32.const 64) (i32.const 26))
    (call $report (i32.const 96) (i32.const 6) (i32.const 3) (call $accept (i32.const 3) (i32.const 0) (i32.const 8)))
    (call $report (i32.const 96) (i32.const 6) (i32.const 4) (call $accept (i32.const 4) (i32.const 0) (i32.const 8)))
    (call $report (i32.const 96) (i32.const 6) (i32.const 0) (call $accept (i32.const 0) (i32.const 0) (i32.const 8)))
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const 1024))
    (call $report (i32.const 102) (i32.const 4) (i32.const 3)
      (call $recv (i32.const 3) (i32.const 16) (i32.const 1) (i32.const 0) (i32.const 8) (i32.const 12)))
    (call $report (i32.const 106) (i32.const 4) (i32.const 3)
      (call $send (i32.const 3) (i32.const 16) (i32.const 1) (i32.const 0) (i32.const 8)))
    (call $report (i32.const 106) (i32.const 4) (i32.const 1)
      (call $send (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 0) (i32.const 8)))
    (call $report (i32.const 110) (i32.const 8) (i32.const 3) (call $shutdown (i32.const 3) (i32.const 3))))
)
