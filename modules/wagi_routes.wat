;; wagi_routes.wat -- WAGI sub-routes: several entry points in one module.
;;
;; Interface: wagi (DESIGN §2b). Exports `memory` and four `(func)`s with no
;; params and no results; imports wasi_snapshot_preview1.fd_write.
;;
;;   _start   the default entry point: writes
;;              "Content-Type: text/plain\n\nroot\n"
;;   _routes  run once by the host at deploy; writes the route table, one
;;            "SUBPATH EXPORT" per line:
;;              /hello hello
;;              /files/... files
;;            i.e. /fn/{name}/hello runs `hello`, and /fn/{name}/files and
;;            everything under it (trailing "/..." = prefix match) runs `files`.
;;   hello    writes "Content-Type: text/plain\n\nhello route\n"
;;   files    writes "Content-Type: text/plain\n\nfiles route\n"
;;
;; Memory layout: iovec at [0, 8), nwritten at [8, 12), and the four
;; outputs at 64 (31 bytes), 128 (30), 192 (38) and 256 (38).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  (data (i32.const 64)  "Content-Type: text/plain\0a\0aroot\0a")
  (data (i32.const 128) "/hello hello\0a/files/... files\0a")
  (data (i32.const 192) "Content-Type: text/plain\0a\0ahello route\0a")
  (data (i32.const 256) "Content-Type: text/plain\0a\0afiles route\0a")

  ;; Writes all of [buf, buf+len) to stdout, retrying after partial writes;
  ;; traps if fd_write reports an error.
  (func $write_all (param $buf i32) (param $len i32)
    (loop $more
      (if (i32.eqz (local.get $len)) (then (return)))
      (i32.store (i32.const 0) (local.get $buf))
      (i32.store (i32.const 4) (local.get $len))
      (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
        (then unreachable))
      (local.set $buf (i32.add (local.get $buf) (i32.load (i32.const 8))))
      (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
      (br $more)))

  (func (export "_start") (call $write_all (i32.const 64)  (i32.const 31)))
  (func (export "_routes") (call $write_all (i32.const 128) (i32.const 30)))
  (func (export "hello")   (call $write_all (i32.const 192) (i32.const 38)))
  (func (export "files")   (call $write_all (i32.const 256) (i32.const 38)))
)
