;; hostile/two_content_types.wat -- a handler answering with two Content-Type headers
;; (text/plain and text/html) and the body "<b>x</b>\n".
;; Expected: bad_response at invoke (502): an answer whose type depends on which header a client
;; believes is refused, on every decoder (tests/test_redteam.py).
(module
  (memory (export "memory") 1)
  ;; the msgpack response (83 bytes), generated with Python's msgpack.packb
  (data (i32.const 1024) "\83\a6\73\74\61\74\75\73\cc\c8\a7\68\65\61\64\65\72\73\92\92\ac\63\6f\6e\74\65\6e\74\2d\74\79\70\65\aa\74\65\78\74\2f\70\6c\61\69\6e\92\ac\43\6f\6e\74\65\6e\74\2d\54\79\70\65\a9\74\65\78\74\2f\68\74\6d\6c\a4\62\6f\64\79\a9\3c\62\3e\78\3c\2f\62\3e\0a")
  (func (export "wasmhost_alloc") (param i32) (result i32) i32.const 4096)
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 83)))
)
