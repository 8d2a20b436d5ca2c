;; hostile/no_content_with_body.wat -- a WAGI program answering `Status: 204` with a body.
;; Expected: 204 with the body dropped (a 204 cannot carry one; sending it broke
;; the connection before).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 512) "\53\74\61\74\75\73\3a\20\32\30\34\20\4e\6f\20\43\6f\6e\74\65\6e\74\0a\43\6f\6e\74\65\6e\74\2d\54\79\70\65\3a\20\74\65\78\74\2f\70\6c\61\69\6e\0a\0a\62\6f\64\79\20\74\68\61\74\20\6d\75\73\74\20\6e\6f\74\20\62\65\20\73\65\6e\74\0a")
  (data (i32.const 256) "\00\02\00\00\4c\00\00\00")  ;; iovec: ptr 512, len 76
  (func (export "_start") (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 300))))
)
