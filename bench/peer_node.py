"""The Node.js 20 peer: the same `handler` modules on node:http + V8, a WebAssembly.Module compiled
once and a fresh WebAssembly.Instance per request (bench/peers/node/).

What the same guest call would cost on Node, next to wasmhost's figures; no npm packages needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from bench.common import ROOT, Proc, clean_env, free_port

NODE_DIR = ROOT / "bench" / "peers" / "node"
MIN_MAJOR = 20


def node_version() -> str | None:
    """`node --version` (e.g. "v20.20.2"), or None if node is missing or older than 20."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.fullmatch(r"v(\d+)\.\d+\.\d+.*", out)
    if match is None or int(match.group(1)) < MIN_MAJOR:
        return None
    return out


def _module_args(modules: dict[str, Path]) -> list[str]:
    for name in modules:
        if not name or "/" in name or "=" in name or name == "node":
            raise ValueError(f"bad module name {name!r}")
    return [f"{name}={Path(path).resolve()}" for name, path in modules.items()]


def start_node_server(tmp: Path, modules: dict[str, Path]) -> Proc:
    """bench/peers/node/server.mjs on a free loopback port serving `modules` at /fn/<name>;
    returns once /fn/<first name> answers 200 (the log is tmp/node.log)."""
    if not modules:
        raise ValueError("no modules")
    port = free_port()
    argv = [shutil.which("node") or "node", str(NODE_DIR / "server.mjs"), str(port), *_module_args(modules)]
    proc = Proc("node", argv, port, tmp / "node.log", clean_env())
    try:
        proc.wait_ready(f"/fn/{next(iter(modules))}")
    except BaseException:
        proc.stop()
        raise
    return proc


def node_per_call(modules: dict[str, Path], n: int, repeats: int) -> dict:
    """In-process µs per fresh-instance call on Node for each module (bench/peers/node/percall.mjs):
    {name: {"us_per_call_runs": [...], "us_median": x, "compile_ms": y}, "node": "v20..."}."""
    argv = [shutil.which("node") or "node", str(NODE_DIR / "percall.mjs"), str(n), str(repeats),
            *_module_args(modules)]
    done = subprocess.run(argv, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"percall.mjs exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)
