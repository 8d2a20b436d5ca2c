;; wagi_env.wat -- a CGI "dump" program: prints what the guest was given.
;;
;; Interface: wagi (DESIGN §2b). Exports `_start` and `memory`; imports from
;; wasi_snapshot_preview1: args_sizes_get, args_get, environ_sizes_get,
;; environ_get, fd_read, fd_write.
;;
;; What it does: writes to stdout
;;
;;   Content-Type: text/plain\n
;;   \n
;;   arg:<argv[0]>\n            one line per argv item, in order
;;   arg:<argv[1]>\n            (argv[0] is the script name, then the query items)
;;   ...
;;   env:<KEY=VALUE>\n          one line per environment entry, in the order
;;   ...                        WASI hands them over
;;   stdin:<all of stdin>       read with fd_read until EOF; nothing is added
;;                              after it (no trailing newline of its own)
;;
;; so that tests can check every CGI variable, argv and the request body.
;; Values are printed raw: a value containing "\n" spans several lines.
;; Any WASI error traps (unreachable): this is a test fixture, not a
;; robust program.
;;
;; WASI's args_get/environ_get fill an array of pointers plus a buffer of
;; NUL-terminated strings, whose sizes come from *_sizes_get first.
;;
;; Memory layout:
;;   [  0,   8)  one iovec {buf: i32, buf_len: i32} for fd_write / fd_read
;;   [  8,  12)  nwritten / nread result
;;   [ 16,  32)  argc, argv_buf_size, envc, environ_buf_size
;;   [ 64,  90)  "Content-Type: text/plain\n\n"
;;   [ 96, 100)  "arg:"    [104, 108) "env:"    [112, 118) "stdin:"
;;   [120, 121)  "\n"
;;   [65536, 131072)  page 1: stdin read buffer (64 KiB)
;;   [131072, ...)    heap for the argv/environ arrays and strings; the
;;                    memory grows as needed (sizes are only known at run time)
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 64) "Content-Type: text/plain\0a\0a")
  (data (i32.const 96) "arg:")
  (data (i32.const 104) "env:")
  (data (i32.const 112) "stdin:")
  (data (i32.const 120) "\0a")

  (global $heap (mut i32) (i32.const 131072))

  ;; Traps unless a WASI call returned errno 0 (success).
  (func $check (param $errno i32)
    (if (local.get $errno) (then unreachable)))

  ;; Bump allocator for the heap: returns `size` bytes (4-byte aligned),
  ;; growing the memory when needed; traps if it cannot grow.
  (func $reserve (param $size i32) (result i32)
    (local $ptr i32)
    (local $pages i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.const 3)) (i32.const -4)))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (global.get $heap) (local.get $ptr)) (then unreachable))
    ;; pages needed for [0, heap): ceil(heap / 65536), in i64 so it cannot wrap
    (local.set $pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (global.get $heap)) (i64.const 0xFFFF))
          (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then unreachable))))
    (local.get $ptr))

  ;; Writes all of [buf, buf+len) to stdout, retrying after partial writes.
  (func $write_all (param $buf i32) (param $len i32)
    (loop $more
      (if (i32.eqz (local.get $len)) (then (return)))
      (i32.store (i32.const 0) (local.get $buf))
      (i32.store (i32.const 4) (local.get $len))
      (call $check
        (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $buf (i32.add (local.get $buf) (i32.load (i32.const 8))))
      (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
      (br $more)))

  ;; Length of the NUL-terminated string at $s.
  (func $strlen (param $s i32) (result i32)
    (local $p i32)
    (local.set $p (local.get $s))
    (block $end
      (loop $scan
        (br_if $end (i32.eqz (i32.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $scan)))
    (i32.sub (local.get $p) (local.get $s)))

  ;; For each of the `count` C strings whose pointers are at $ptrs, writes
  ;; "<prefix, 4 bytes><string>\n".
  (func $dump_list (param $prefix i32) (param $ptrs i32) (param $count i32)
    (local $i i32)
    (local $s i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s
          (i32.load (i32.add (local.get $ptrs) (i32.shl (local.get $i) (i32.const 2)))))
        (call $write_all (local.get $prefix) (i32.const 4))
        (call $write_all (local.get $s) (call $strlen (local.get $s)))
        (call $write_all (i32.const 120) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func (export "_start")
    (local $ptrs i32)
    (local $buf i32)
    (local $n i32)

    (call $write_all (i32.const 64) (i32.const 26))

    ;; argv: sizes, then the pointer array (argc * 4 bytes) and the strings
    (call $check (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (local.set $ptrs (call $reserve (i32.shl (i32.load (i32.const 16)) (i32.const 2))))
    (local.set $buf (call $reserve (i32.load (i32.const 20))))
    (call $check (call $args_get (local.get $ptrs) (local.get $buf)))
    (call $dump_list (i32.const 96) (local.get $ptrs) (i32.load (i32.const 16)))

    ;; environment: the same dance
    (call $check (call $environ_sizes_get (i32.const 24) (i32.const 28)))
    (local.set $ptrs (call $reserve (i32.shl (i32.load (i32.const 24)) (i32.const 2))))
    (local.set $buf (call $reserve (i32.load (i32.const 28))))
    (call $check (call $environ_get (local.get $ptrs) (local.get $buf)))
    (call $dump_list (i32.const 104) (local.get $ptrs) (i32.load (i32.const 24)))

    ;; stdin, copied through in 64 KiB chunks until fd_read reports 0 bytes
    (call $write_all (i32.const 112) (i32.const 6))
    (block $eof
      (loop $chunk
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (call $check
          (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (call $write_all (i32.const 65536) (local.get $n))
        (br $chunk))))
)
