"""The HTTP face of wasmhost: a Starlette app around one `Host` (DESIGN §6)."""
