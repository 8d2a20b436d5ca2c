;; hello_nolog.wat -- the smallest useful `handler` module: no imports at all.
;;
;; Interface: handler (DESIGN §2a). Imports nothing, so the host needs no
;; host functions and no WASI: the fast path used by the benchmarks.
;;
;; What it does: ignores the request and answers the same 79-byte msgpack
;; response as hello_handler.wat (see there for the byte-by-byte decoding):
;;
;;   {"status": 200,
;;    "headers": [["content-type", "text/plain; charset=utf-8"]],
;;    "body": "Hello, world!\n"}
;;
;;   83 a6 73 74 61 74 75 73 cc c8 a7 68 65 61 64 65 72 73 91 92 ac 63 6f 6e
;;   74 65 6e 74 2d 74 79 70 65 b9 74 65 78 74 2f 70 6c 61 69 6e 3b 20 63 68
;;   61 72 73 65 74 3d 75 74 66 2d 38 a4 62 6f 64 79 ae 48 65 6c 6c 6f 2c 20
;;   77 6f 72 6c 64 21 0a
;;
;; Memory layout: response at [1024, 1103); heap from 4096 (bump allocator).
(module
  (memory (export "memory") 1)

  (data (i32.const 1024)
    "\83"
    "\a6" "status"   "\cc\c8"
    "\a7" "headers"  "\91" "\92"
                     "\ac" "content-type"
                     "\b9" "text/plain; charset=utf-8"
    "\a4" "body"     "\ae" "Hello, world!\0a")

  (global $heap (mut i32) (i32.const 4096))

  ;; Bump allocator (same as hello_handler.wat): 8-byte aligned, grows the
  ;; memory on demand, traps when the memory cannot grow.
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

  ;; (1024 << 32) | 79
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.const 1024) (i64.const 32))
      (i64.const 79)))
)
