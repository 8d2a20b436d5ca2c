"""The HTTP face of wasmhost: a Starlette app around one `Host` (docs/ARCHITECTURE.md, "HTTP")."""
