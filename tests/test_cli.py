"""`wasmhost run` as a user runs it: a real subprocess, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgpack

from .conftest import ROOT


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wasmhost", "run", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=120)


def test_run_hello(modules_dir: Path) -> None:
    out = run(str(modules_dir / "hello_handler.wasm"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"Hello, world!\n"
    assert b"log: hello called" in out.stderr


def test_run_include_and_verbose(modules_dir: Path) -> None:
    out = run(str(modules_dir / "hello_handler.wasm"), "-i", "-v", "-q")
    assert out.returncode == 0
    assert out.stdout.startswith(b"HTTP 200\ncontent-type: text/plain; charset=utf-8\n\nHello")
    assert b"tier=memory" in out.stderr and b"fuel=" in out.stderr and b"instantiate=" in out.stderr
    assert b"log:" not in out.stderr


def test_run_echo_with_data_headers_env_and_path(modules_dir: Path, tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x00binary\xff")
    out = run(str(modules_dir / "echo_handler.wasm"), "-d", f"@{body}", "-X", "put", "--path", "/a/b?q=1",
              "-H", "X-Thing: yes", "--env", "KEY=value")
    assert out.returncode == 0, out.stderr
    seen = msgpack.unpackb(out.stdout, raw=False)
    assert seen["method"] == "PUT" and seen["path"] == "/a/b" and seen["query"] == "q=1"
    assert ["x-thing", "yes"] in seen["headers"]
    assert seen["body"] == b"\x00binary\xff"
    assert seen["config"] == {"KEY": "value"}


def test_run_reads_stdin(modules_dir: Path) -> None:
    out = run(str(modules_dir / "wagi_env.wasm"), "-d", "@-", stdin=b"from stdin")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(b"stdin:from stdin")
    assert b"env:REQUEST_METHOD=POST" in out.stdout


def test_run_classified_errors_exit_non_zero(modules_dir: Path) -> None:
    out = run(str(modules_dir / "hostile/infinite_loop.wasm"), "--fuel", "100000")
    assert out.returncode == 1
    assert out.stderr.strip().endswith(b"error: fuel_exhausted: the function used all of its 100000 units of fuel")
    out = run(str(modules_dir / "hostile/infinite_loop.wasm"), "--fuel", "100000000000", "--timeout", "50")
    assert out.returncode == 1 and b"error: timeout:" in out.stderr
    out = run(str(modules_dir / "hostile/unreachable.wasm"))
    assert out.returncode == 1 and b"error: trap:" in out.stderr


def test_run_refuses_bad_modules_and_files(modules_dir: Path, tmp_path: Path) -> None:
    out = run(str(modules_dir / "hostile/invalid_bytes.wasm"))
    assert out.returncode == 1 and b"error: invalid_module:" in out.stderr
    out = run(str(modules_dir / "hostile/unknown_import.wasm"))
    assert out.returncode == 1 and b"env.launch_missiles" in out.stderr
    out = run(str(tmp_path / "missing.wasm"))
    assert out.returncode == 1 and b"cannot read" in out.stderr
    assert b"Traceback" not in out.stderr


def test_usage_errors() -> None:
    out = run("x.wasm", "-H", "no colon")
    assert out.returncode == 2 and b"Name: value" in out.stderr
    out = subprocess.run([sys.executable, "-m", "wasmhost"], cwd=ROOT, capture_output=True, timeout=60)
    assert out.returncode == 2


def test_bench_passes_its_arguments_to_the_suite() -> None:
    out = subprocess.run([sys.executable, "-m", "wasmhost", "bench", "--help"], cwd=ROOT, capture_output=True,
                         timeout=120)
    assert out.returncode == 0 and b"--quick" in out.stdout and b"--load-client" in out.stdout
    out = subprocess.run([sys.executable, "-m", "wasmhost", "bench", "--only", "nope"], cwd=ROOT, capture_output=True,
                         timeout=120)
    assert out.returncode == 2 and b"unknown sections ['nope']" in out.stderr
