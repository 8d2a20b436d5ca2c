;; hostile/bad_conversion.wat -- invalid conversion to integer: i32.trunc_f64_s of NaN.
;;
;; Interface: handler. Expected outcome: `trap` at invoke (HTTP 502), trap code
;; BAD_CONVERSION_TO_INTEGER. NaN is computed at run time as 0.0 / 0.0 from the
;; request length.
;; wasmhost_alloc is a bump allocator from 4096 (memory grown on demand), so
;; the host can deliver the request and reach wasmhost_handle.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func $alloc (export "wasmhost_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))))))
    (local.get $ptr))
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $zero f64)
    (local.set $zero (f64.convert_i32_u (i32.sub (local.get $len) (local.get $len))))
    (i64.extend_i32_s (i32.trunc_f64_s (f64.div (local.get $zero) (local.get $zero)))))
)
