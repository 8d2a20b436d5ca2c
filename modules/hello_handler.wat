;; hello_handler.wat -- the "hello world" of the `handler` interface.
;;
;; Interface: handler (DESIGN §2a). No WASI. Imports only `wasmhost.log`.
;;   exports  memory
;;            wasmhost_alloc(size: i32) -> i32          room for the request
;;            wasmhost_handle(ptr: i32, len: i32) -> i64  (out_ptr << 32) | out_len
;;
;; What it does: logs the line `hello called`, ignores the request and
;; answers with a response that is precomputed as msgpack in a data segment:
;;
;;   {"status": 200,
;;    "headers": [["content-type", "text/plain; charset=utf-8"]],
;;    "body": "Hello, world!\n"}
;;
;; The 79 bytes (hex), and how they decode:
;;   83                                   fixmap, 3 entries
;;   a6 73 74 61 74 75 73                 fixstr(6) "status"
;;   cc c8                                uint8 200
;;   a7 68 65 61 64 65 72 73              fixstr(7) "headers"
;;   91                                   fixarray, 1 element
;;   92                                     fixarray, 2 elements
;;   ac 63 6f 6e 74 65 6e 74 2d 74 79 70 65   fixstr(12) "content-type"
;;   b9 74 65 78 74 2f 70 6c 61 69 6e 3b 20 63 68 61 72 73 65 74 3d 75 74 66 2d 38
;;                                            fixstr(25) "text/plain; charset=utf-8"
;;   a4 62 6f 64 79                       fixstr(4) "body"
;;   ae 48 65 6c 6c 6f 2c 20 77 6f 72 6c 64 21 0a
;;                                        fixstr(14) "Hello, world!\n"
;;
;; In the data segment below, every msgpack prefix byte is its own string
;; ("\ac" "content-type"): a WAT "\hh" escape takes exactly two hex digits,
;; and writing "\acontent-type" would silently turn into 0xac "ontent-type".
;;
;; Memory layout (one 64 KiB page to start with):
;;   [  64,   76)  the log line "hello called"
;;   [1024, 1103)  the msgpack response above
;;   [4096, ...)   heap: wasmhost_alloc hands out memory from here, growing
;;                 the memory when needed. The host gives every call a fresh
;;                 instance, so a bump allocator that never frees is enough.
(module
  ;; wasmhost.log(ptr, len): one UTF-8 line for the invocation's log.
  (import "wasmhost" "log" (func $log (param i32 i32)))

  (memory (export "memory") 1)

  (data (i32.const 64) "hello called")
  (data (i32.const 1024)
    "\83"
    "\a6" "status"   "\cc\c8"
    "\a7" "headers"  "\91" "\92"
                     "\ac" "content-type"
                     "\b9" "text/plain; charset=utf-8"
    "\a4" "body"     "\ae" "Hello, world!\0a")

  ;; First free byte of the heap.
  (global $heap (mut i32) (i32.const 4096))

  ;; Bump allocator: returns an 8-byte aligned pointer to `size` free bytes,
  ;; growing the memory if the heap runs past its end. Traps (unreachable)
  ;; when the address space wraps or memory.grow fails (memory cap reached).
  (func (export "wasmhost_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    ;; Pages needed to hold [0, end): ceil(end / 65536), in i64 so it cannot wrap.
    (call $ensure_pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 0xFFFF))
          (i64.const 16))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; Grows the memory to at least `pages` pages; traps if that is refused.
  (func $ensure_pages (param $pages i32)
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then unreachable)))))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 64) (i32.const 12))
    ;; (1024 << 32) | 79
    (i64.or
      (i64.shl (i64.const 1024) (i64.const 32))
      (i64.const 79)))
)
