"""wasmhost: a serverless host for WebAssembly functions."""

__version__ = "0.1.0"
