;; hello.wat -- the Extism peer of modules/hello_nolog.wat, hand-written
;; because no Extism PDK toolchain is available here.
;;
;; An Extism plugin: exports `hello` of type (func (result i32)) (0 = success),
;; ignores its input, and sets its output to the 14 bytes "Hello, world!\n".
;; Extism plugins do not write the output into their own memory: the host
;; reads it from the memory of the Extism kernel (a wasm module linked in as
;; `extism:host/env`), so the plugin allocates a block there and copies the
;; bytes across with the kernel's store functions. Signatures as the kernel
;; exports them (Extism runtime 1.x):
;;
;;   alloc(len: i64) -> i64          a block in kernel memory (its offset)
;;   store_u64(offset: i64, v: i64)  write 8 bytes at offset
;;   output_set(offset: i64, len: i64)
;;
;; The string is 14 bytes; the data segment pads it to 16 so two store_u64
;; calls copy it (the block is 16 bytes, the output length 14). This is about
;; what a PDK's `output` does (alloc + store_u64 loop + output_set), without
;; the PDK's own allocator and runtime.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))

  (memory 1)
  (data (i32.const 0) "Hello, world!\0a\00\00")

  (func (export "hello") (result i32)
    (local $out i64)
    (local.set $out (call $alloc (i64.const 16)))
    (call $store_u64 (local.get $out) (i64.load (i32.const 0)))
    (call $store_u64 (i64.add (local.get $out) (i64.const 8)) (i64.load (i32.const 8)))
    (call $output_set (local.get $out) (i64.const 14))
    (i32.const 0))
)
