;; cpu_loop.wat -- a fixed, deterministic CPU-bound computation.
;;
;; Interface: handler (DESIGN §2a). No imports.
;;
;; What it does: runs 5,000,000 steps of Marsaglia's 32-bit xorshift
;; generator, starting from the seed 2463534242, all arithmetic modulo 2^32:
;;
;;     x = 2463534242
;;     repeat 5_000_000 times:
;;         x ^= (x << 13) & 0xFFFFFFFF
;;         x ^= x >> 17                  # logical (unsigned) shift
;;         x ^= (x << 5) & 0xFFFFFFFF
;;
;; and answers {"status": 200, "body": "<x as unsigned decimal>"} (body is a
;; msgpack str). The final value is 4135555716, so the body is "4135555716".
;; Used to measure fuel accounting and raw execution speed; the request is
;; ignored.
;;
;; Response bytes:
;;   82                        fixmap, 2 entries
;;   a6 "status"   cc c8       "status": uint8 200
;;   a4 "body"                 "body":
;;   a0|n  <n ASCII digits>    fixstr(n), 1 <= n <= 10
;;
;; Memory layout: response at 1024 (15-byte prefix from the data segment,
;; then the fixstr byte at 1039 and the digits from 1040); the digits are
;; first produced backwards in the scratch area [2038, 2048);
;; heap from 4096 (bump allocator).
(module
  (memory (export "memory") 1)

  (data (i32.const 1024)
    "\82"
    "\a6" "status"  "\cc\c8"
    "\a4" "body")

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

  ;; The xorshift32 loop described above; returns the final state.
  (func $xorshift_loop (param $iterations i32) (result i32)
    (local $x i32)
    (local.set $x (i32.const 2463534242))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $iterations)))
        (local.set $x (i32.xor (local.get $x) (i32.shl   (local.get $x) (i32.const 13))))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
        (local.set $x (i32.xor (local.get $x) (i32.shl   (local.get $x) (i32.const 5))))
        (local.set $iterations (i32.sub (local.get $iterations) (i32.const 1)))
        (br $next)))
    (local.get $x))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $x i32)
    (local $p i32)    ;; first digit written so far (digits grow leftwards)
    (local $n i32)    ;; number of digits
    (local.set $x (call $xorshift_loop (i32.const 5000000)))

    ;; Unsigned decimal, least significant digit first, ending at 2048.
    (local.set $p (i32.const 2048))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $x) (i32.const 10))))
      (local.set $x (i32.div_u (local.get $x) (i32.const 10)))
      (br_if $digit (local.get $x)))
    (local.set $n (i32.sub (i32.const 2048) (local.get $p)))

    ;; fixstr header, then the digits right after the 15-byte prefix
    (i32.store8 (i32.const 1039) (i32.or (i32.const 0xa0) (local.get $n)))
    (memory.copy (i32.const 1040) (local.get $p) (local.get $n))

    ;; (1024 << 32) | (16 + n)
    (i64.or
      (i64.shl (i64.const 1024) (i64.const 32))
      (i64.extend_i32_u (i32.add (i32.const 16) (local.get $n)))))
)
