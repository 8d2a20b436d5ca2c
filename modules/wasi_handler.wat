;; wasi_handler.wat -- a `handler` module that also uses WASI stdio.
;;
;; Interface: handler (DESIGN §2a), plus one WASI import:
;;   wasi_snapshot_preview1.fd_write(fd, iovs, iovs_len, nwritten_ptr) -> errno
;; Real toolchains (Rust std, AssemblyScript's WASI shim) produce such
;; modules; the host must link its locked-down WASI for them and capture
;; stdout/stderr as the invocation's log.
;;
;; What it does: writes "stdout line\n" to fd 1 and "stderr line\n" to fd 2
;; (the errno results are ignored: logging is best effort), then answers
;;
;;   {"status": 200,
;;    "headers": [["content-type", "text/plain; charset=utf-8"]],
;;    "body": "Hello from WASI handler\n"}
;;
;; which is these 89 bytes:
;;   83 a6 73 74 61 74 75 73 cc c8 a7 68 65 61 64 65 72 73 91 92 ac 63 6f 6e
;;   74 65 6e 74 2d 74 79 70 65 b9 74 65 78 74 2f 70 6c 61 69 6e 3b 20 63 68
;;   61 72 73 65 74 3d 75 74 66 2d 38 a4 62 6f 64 79 b8 48 65 6c 6c 6f 20 66
;;   72 6f 6d 20 57 41 53 49 20 68 61 6e 64 6c 65 72 0a
;; (same map as hello_handler.wat; the body is fixstr(24), prefix b8).
;;
;; Memory layout:
;;   [   0,    8)  one iovec {buf: i32, buf_len: i32} for fd_write
;;   [   8,   12)  fd_write's nwritten result
;;   [  64,   76)  "stdout line\n"
;;   [  80,   92)  "stderr line\n"
;;   [1024, 1113)  the msgpack response
;;   [4096, ...)   heap (bump allocator)
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  (data (i32.const 64) "stdout line\0a")
  (data (i32.const 80) "stderr line\0a")
  (data (i32.const 1024)
    "\83"
    "\a6" "status"   "\cc\c8"
    "\a7" "headers"  "\91" "\92"
                     "\ac" "content-type"
                     "\b9" "text/plain; charset=utf-8"
    "\a4" "body"     "\b8" "Hello from WASI handler\0a")

  (global $heap (mut i32) (i32.const 4096))

  ;; Bump allocator: 8-byte aligned, grows the memory on demand, traps when
  ;; the address space wraps or the memory cannot grow.
  (func (export "wasmhost_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (call $ensure_pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 0xFFFF))
          (i64.const 16))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func $ensure_pages (param $pages i32)
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then unreachable)))))

  ;; Writes [buf, buf+len) to fd with a single fd_write call (short lines:
  ;; a partial write is not retried), ignoring the errno.
  (func $write (param $fd i32) (param $buf i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $buf))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (call $write (i32.const 1) (i32.const 64) (i32.const 12))
    (call $write (i32.const 2) (i32.const 80) (i32.const 12))
    ;; (1024 << 32) | 89
    (i64.or
      (i64.shl (i64.const 1024) (i64.const 32))
      (i64.const 89)))
)
