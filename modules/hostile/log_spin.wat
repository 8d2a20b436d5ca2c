;; hostile/log_spin.wat -- an endless loop that calls the cheap host function wasmhost.log.
;;
;; Interface: handler; imports wasmhost.log. Expected outcome: with a fuel
;; limit that is not reached first (the maximum) and a short deadline, `timeout`
;; at invoke (HTTP 504) at the deadline: the wall clock must stop a guest that
;; spends its time in and out of host calls, not only one spinning in wasm. With
;; the default fuel, `fuel_exhausted`. The log is truncated at the host's cap.
;; wasmhost_alloc is a bump allocator from 4096 (memory grown on demand), so
;; the host can deliver the request and reach wasmhost_handle.
(module
  (import "wasmhost" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func $alloc (export "wasmhost_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))))))
    (local.get $ptr))
  (data (i32.const 16) "spin")
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (loop $forever
      (call $log (i32.const 16) (i32.const 4))
      (br $forever))
    (i64.const 0))
)
