;; hostile/stdout_flood.wat -- a WAGI program that writes to stdout forever.
;;
;; Interface: wagi; imports wasi_snapshot_preview1.fd_write.
;; Expected outcome: too_large at invoke (output over the response limit).
;; The program never stops on its own: it ignores fd_write's errno, so the
;; host must stop it itself -- ideally a stdout sink that counts bytes and
;; aborts once past the limit, otherwise fuel or the deadline -- and still
;; report too_large because the output went over the limit. Fuel alone is a
;; weak guard here: each 64 KiB write costs only a few units of fuel.
;;
;; `_start` writes "Content-Type: text/plain\n\n", fills a 64 KiB buffer
;; with 'x', then loops writing that buffer to fd 1.
;;
;; Memory layout: [0, 8) iovec, [8, 12) nwritten, [64, 90) the header,
;; [65536, 131072) the 64 KiB buffer (page 1).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 64) "Content-Type: text/plain\0a\0a")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 26))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))

    (memory.fill (i32.const 65536) (i32.const 0x78) (i32.const 65536))
    (loop $forever
      ;; fd_write may consume the iovec, so set it again every time
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $forever)))
)
