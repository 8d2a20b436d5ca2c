;; hostile/log_flood.wat -- logs 100 MB through wasmhost.log.
;;
;; Interface: handler, imports wasmhost.log. Expected outcome: SUCCESS at
;; invoke (200, body "Hello, world!\n"), with the invocation's log truncated
;; at the host's cap on captured log bytes: the host must keep memory
;; bounded and not fail the call.
;;
;; wasmhost_handle calls log 100,000 times with the same 1024-byte line
;; ("log flood: " followed by 1013 'x'), then answers the hello response.
;; (100,000 host calls take about a second: a test should allow for it.)
;;
;; Memory layout: hello response at [1024, 1103), the log line at
;; [2048, 3072), heap from 4096.
(module
  (import "wasmhost" "log" (func $log (param i32 i32)))

  (memory (export "memory") 1)

  ;; The 79-byte msgpack hello response (decoded in ../hello_handler.wat):
  ;; {"status": 200, "headers": [["content-type", "text/plain; charset=utf-8"]],
  ;;  "body": "Hello, world!\n"}
  (data (i32.const 1024)
    "\83"
    "\a6" "status"   "\cc\c8"
    "\a7" "headers"  "\91" "\92"
                     "\ac" "content-type"
                     "\b9" "text/plain; charset=utf-8"
    "\a4" "body"     "\ae" "Hello, world!\0a")

  (data (i32.const 2048) "log flood: ")

  ;; Bump allocator (as in ../hello_handler.wat): 8-byte aligned, grows the
  ;; memory on demand, traps when the memory cannot grow. It works properly so
  ;; that the host can deliver the request and reach wasmhost_handle.
  (global $heap (mut i32) (i32.const 4096))
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
    (local $i i32)
    ;; the rest of the 1 KiB line: 1024 - 11 = 1013 bytes of 'x' (0x78)
    (memory.fill (i32.const 2059) (i32.const 0x78) (i32.const 1013))
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $i) (i32.const 100000)))
        (call $log (i32.const 2048) (i32.const 1024))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 79)))
)
