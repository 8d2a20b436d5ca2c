;; hostile/header_spoof.wat -- answers its own x-request-id ("spoofed"), server-timing and
;; x-wasmhost-version ("99") besides content-type: text/plain and body "spoof\n".
;; Expected: success; the host drops those three (they are the host's), so the
;; client sees the host's values only.
(module
  (memory (export "memory") 1)
  ;; the msgpack response, generated with Python's msgpack.packb (see the comment above)
  (data (i32.const 1024) "\83\a6\73\74\61\74\75\73\cc\c8\a7\68\65\61\64\65\72\73\94\92\ac\78\2d\72\65\71\75\65\73\74\2d\69\64\a7\73\70\6f\6f\66\65\64\92\ad\73\65\72\76\65\72\2d\74\69\6d\69\6e\67\aa\65\76\69\6c\3b\64\75\72\3d\30\92\b2\78\2d\77\61\73\6d\68\6f\73\74\2d\76\65\72\73\69\6f\6e\a2\39\39\92\ac\63\6f\6e\74\65\6e\74\2d\74\79\70\65\aa\74\65\78\74\2f\70\6c\61\69\6e\a4\62\6f\64\79\a6\73\70\6f\6f\66\0a")
  ;; The request is written at 4096; nothing here reads it.
  (func (export "wasmhost_alloc") (param i32) (result i32) i32.const 4096)
  (func (export "wasmhost_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 127)))
)
