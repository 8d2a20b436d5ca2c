;; big_answer_wagi.wat -- a WAGI program that answers with as many bytes as it is asked for.
;;
;; Interface: wagi; imports wasi_snapshot_preview1.fd_read and fd_write.
;; The request body, if it has 4 bytes, is the answer's length as a little-endian u32; without
;; a body the answer is 8 MiB. The answer is "Content-Type: application/octet-stream\n\n" and
;; then that many 'a' bytes, written 64 KiB at a time. Used by the tests of slow and stalled
;; readers (tests/test_redteam_memory.py): a large answer from a tiny module.
;;
;; Memory layout: [0, 8) iovec, [8, 12) count, [16, 20) the length, [64, 105) the header,
;; [65536, 131072) the 64 KiB of 'a' (page 1).
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 64) "Content-Type: application/octet-stream\0a\0a")

  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func (export "_start")
    (local $left i32)
    (local $piece i32)
    ;; the length: 4 body bytes, else 8 MiB
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $left
      (select (i32.load (i32.const 16)) (i32.const 8388608)
              (i32.eq (i32.load (i32.const 8)) (i32.const 4))))
    (call $write (i32.const 64) (i32.const 40))
    (memory.fill (i32.const 65536) (i32.const 0x61) (i32.const 65536))
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $left)))
        (local.set $piece
          (select (i32.const 65536) (local.get $left) (i32.gt_u (local.get $left) (i32.const 65536))))
        (call $write (i32.const 65536) (local.get $piece))
        (local.set $left (i32.sub (local.get $left) (local.get $piece)))
        (br $more))))
)
