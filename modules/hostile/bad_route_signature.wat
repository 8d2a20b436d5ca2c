;; hostile/bad_route_signature.wat -- a WAGI module whose _routes names an export
;; `boom` of type (i32) -> (), not () -> ().
;; Expected: invalid_module at deploy, naming `boom` and the required type. (Calling
;; it would pass an argument that does not exist: before the check, that crashed
;; the host process.)
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 512) "/x boom\0a")
  (data (i32.const 256) "\00\02\00\00\08\00\00\00")  ;; iovec: ptr 512, len 8
  (func (export "_routes") (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 300))))
  (func (export "_start"))
  (func (export "boom") (param i32))
)
