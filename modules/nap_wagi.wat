;; nap_wagi.wat -- a WAGI program that sleeps 20 ms (WASI poll_oneoff, relative
;; monotonic clock), checks the event it got back, then prints
;; `Content-Type: text/plain`, a blank line and `awake`.
;; Shows that sleeping works within the deadline (hostile/sleeper.wat: past it).
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; one subscription: userdata 1, clock, id 1 (monotonic), timeout 20e6 ns, relative
  (data (i32.const 0) "\01\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\01\00\00\00\00\00\00\00\00\2d\31\01\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  (data (i32.const 512) "Content-Type: text/plain\0a\0aawake\0a")
  (data (i32.const 256) "\00\02\00\00\20\00\00\00")  ;; iovec: ptr 512, len 32
  (func (export "_start")
    (if (i32.ne (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 200)) (i32.const 0))
      (then unreachable))
    ;; one event, carrying our userdata (1), no error, type clock (0)
    (if (i32.ne (i32.load (i32.const 200)) (i32.const 1)) (then unreachable))
    (if (i64.ne (i64.load (i32.const 64)) (i64.const 1)) (then unreachable))
    (if (i32.ne (i32.load16_u (i32.const 72)) (i32.const 0)) (then unreachable))
    (if (i32.ne (i32.load8_u (i32.const 74)) (i32.const 0)) (then unreachable))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 300))))
)
