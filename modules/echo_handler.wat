;; echo_handler.wat -- answers with the exact bytes of the request it received.
;;
;; Interface: handler (DESIGN §2a). No imports.
;;
;; What it does: the host writes the msgpack-encoded request map at
;; [ptr, ptr+len); this module answers
;;
;;   {"status": 200,
;;    "headers": [["content-type", "application/msgpack"]],
;;    "body": <bin: the len request bytes, unchanged>}
;;
;; so a test can msgpack-decode the response body and check every request
;; field (method, path, query, headers, body, config) as the guest saw it.
;;
;; The response is built in freshly allocated memory:
;;   58 bytes of fixed prefix, copied from the data segment:
;;     83                                   fixmap, 3 entries
;;     a6 "status"           cc c8          "status": uint8 200
;;     a7 "headers"          91 92          "headers": [[
;;       ac "content-type"                    fixstr(12)
;;       b3 "application/msgpack"             fixstr(19)   ]]
;;     a4 "body"                            "body":
;;   c6 LL LL LL LL                         bin32, big-endian length = len
;;   <len request bytes>
;; bin32 is used whatever the length, so the prefix has a fixed size
;; (63 bytes); msgpack decoders accept a non-minimal length encoding.
;;
;; Memory layout: prefix at [1024, 1082); heap from 4096 (bump allocator,
;; which also serves the response buffer).
(module
  (memory (export "memory") 1)

  (data (i32.const 1024)
    "\83"
    "\a6" "status"   "\cc\c8"
    "\a7" "headers"  "\91" "\92"
                     "\ac" "content-type"
                     "\b3" "application/msgpack"
    "\a4" "body")

  (global $heap (mut i32) (i32.const 4096))

  ;; Bump allocator: 8-byte aligned, grows the memory on demand, traps when
  ;; the address space wraps or the memory cannot grow.
  (func $alloc (export "wasmhost_alloc") (param $size i32) (result i32)
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

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32)
    (local $total i32)
    ;; total = 63-byte header + the request; wrapping would mean > 4 GiB.
    (local.set $total (i32.add (local.get $len) (i32.const 63)))
    (if (i32.lt_u (local.get $total) (local.get $len)) (then unreachable))
    (local.set $out (call $alloc (local.get $total)))

    ;; fixed prefix: the map header and the first two entries, and "body"
    (memory.copy (local.get $out) (i32.const 1024) (i32.const 58))

    ;; bin32 marker and the length, big-endian (i32.store would be little-endian)
    (i32.store8 offset=58 (local.get $out) (i32.const 0xc6))
    (i32.store8 offset=59 (local.get $out) (i32.shr_u (local.get $len) (i32.const 24)))
    (i32.store8 offset=60 (local.get $out) (i32.shr_u (local.get $len) (i32.const 16)))
    (i32.store8 offset=61 (local.get $out) (i32.shr_u (local.get $len) (i32.const 8)))
    (i32.store8 offset=62 (local.get $out) (local.get $len))

    ;; the request bytes themselves
    (memory.copy
      (i32.add (local.get $out) (i32.const 63))
      (local.get $ptr)
      (local.get $len))

    ;; (out << 32) | total
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $total))))
)
