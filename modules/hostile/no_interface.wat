;; hostile/no_interface.wat -- valid wasm that implements no known interface.
;;
;; Expected outcome: invalid_module at DEPLOY (unknown interface): no
;; wasmhost_handle/wasmhost_alloc/memory (handler), no _start (wagi). It has
;; a single exported function `foo` that does nothing, and no memory.
(module
  (func (export "foo")))
