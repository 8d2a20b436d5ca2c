;; hostile/two_content_types_wagi.wat -- a WAGI program printing two Content-Type headers
;; (text/plain and text/html), then the body "<b>x</b>\n".
;; Expected: bad_response at invoke (502), as for the handler variant.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; [0, 8) iovec, [8, 12) nwritten, [64, 123) the output
  (data (i32.const 64) "\43\6f\6e\74\65\6e\74\2d\54\79\70\65\3a\20\74\65\78\74\2f\70\6c\61\69\6e\0a\43\6f\6e\74\65\6e\74\2d\54\79\70\65\3a\20\74\65\78\74\2f\68\74\6d\6c\0a\0a\3c\62\3e\78\3c\2f\62\3e\0a")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 59))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)
