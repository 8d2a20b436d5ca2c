;; hostile/control_char_header.wat -- answers {"status": 200, "headers": [["x-a", "\x01"]], "body": "x"}.
;; Expected: bad_response at invoke (a control character in a header would break HTTP;
;; the host must refuse it instead of dropping the connection).
(module
  (memory (export "memory") 1)
  ;; the msgpack response, generated with Python's msgpack.packb (see the comment above)
  (data (i32.const 1024) "\83\a6\73\74\61\74\75\73\cc\c8\a7\68\65\61\64\65\72\73\91\92\a3\78\2d\61\a1\01\a4\62\6f\64\79\a1\78")
  ;; The request is written at 4096; nothing here reads it.
  (func (export "wasmhost_alloc") (param i32) (result i32) i32.const 4096)
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 33)))
)
