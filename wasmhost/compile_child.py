"""A compiler child process (see compiler.py): wasm on stdin, its artifact on stdout.

Runs under RLIMIT_DATA, so a module too costly to compile ends this process, not the host.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from dataclasses import replace

import wasmtime

from .compiler import CHILD_INVALID, CHILD_OUT_OF_MEMORY
from .engine import EngineConfig, base_config
from .settings import MIB


def main() -> None:
    spec = json.loads(sys.argv[1])
    config = replace(EngineConfig(**spec["engine"]), pooling=False)  # the allocator leaves code alone
    data = spec["memory_mb"] * MIB
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    resource.setrlimit(resource.RLIMIT_CPU, (spec["cpu_seconds"], spec["cpu_seconds"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        wasm_bytes = sys.stdin.buffer.read()
        artifact = wasmtime.Module(wasmtime.Engine(base_config(config)), wasm_bytes).serialize()
    except wasmtime.WasmtimeError as exc:
        sys.stderr.write(str(exc))
        sys.stderr.flush()
        os._exit(CHILD_INVALID)
    except MemoryError:
        os._exit(CHILD_OUT_OF_MEMORY)
    sys.stdout.buffer.write(artifact)
    sys.stdout.flush()
