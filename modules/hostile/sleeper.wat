;; hostile/sleeper.wat -- a WAGI program that sleeps 30 s (WASI poll_oneoff with a
;; relative monotonic clock subscription), then prints a response.
;; Expected: timeout at the function's deadline. Epoch interruption cannot fire
;; inside a host call, so the host's own poll_oneoff must stop the sleep itself.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; one subscription: userdata 1, clock, id 1 (monotonic), timeout 30e9 ns, relative
  (data (i32.const 0) "\01\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\01\00\00\00\00\00\00\00\00\ac\23\fc\06\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  (data (i32.const 512) "Content-Type: text/plain\0a\0aawake\0a")
  (data (i32.const 256) "\00\02\00\00\20\00\00\00")  ;; iovec: ptr 512, len 32
  (func (export "_start")
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 200)))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 300))))
)
