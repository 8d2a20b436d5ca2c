"""The modules the benchmark suite measures, with the request each gets and the answer it must give.

One list, so that every section (host-side tiers, HTTP tiers, peers, load) measures the same
functions with the same payloads and checks the same answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT

WASM_DIR = ROOT / "modules" / "wasm"
BUILD_DIR = ROOT / "modules" / "build"
# The CPU-heavy call hashes this body: big enough that the wasm's own work dominates.
SHA256_BODY = bytes(range(256)) * 256  # 64 KiB


@dataclass(frozen=True)
class Workload:
    """One function: where its wasm is, what to send it, what it must answer."""

    name: str  # the function name it is deployed under
    label: str  # what it is, for tables
    wasm: Path
    interface: str  # "handler" or "wagi"
    method: str = "GET"
    body: bytes = b""
    content_type: str = ""
    expect_prefix: bytes = b""  # the answer's body must start with this

    def check(self, status: int, body: bytes) -> str | None:
        """None if the answer is right, else what was wrong."""
        if status != 200:
            return f"status {status}: {body[:120]!r}"
        if not body.startswith(self.expect_prefix):
            return f"body {body[:120]!r} does not start with {self.expect_prefix[:60]!r}"
        return None

    @property
    def size(self) -> int:
        return self.wasm.stat().st_size


WORKLOADS: list[Workload] = [
    Workload("hello", "tiny handler (WAT, one log line)", BUILD_DIR / "hello_handler.wasm", "handler",
             expect_prefix=b"Hello, world!\n"),
    Workload("rust-wagi", "Rust WAGI hello (WASI command)", WASM_DIR / "rust-wagi_hello.wasm", "wagi",
             expect_prefix=b"Hello from Rust WAGI"),
    Workload("as-hello", "AssemblyScript hello", WASM_DIR / "as-hello.wasm", "handler",
             expect_prefix=b"Hello from AssemblyScript!"),
    Workload("sha256", "C SHA-256 of a 64 KiB body (CPU-heavy)", WASM_DIR / "c-sha256.wasm", "handler",
             method="POST", body=SHA256_BODY, content_type="application/octet-stream",
             expect_prefix=hashlib.sha256(SHA256_BODY).hexdigest().encode()),
    Workload("large", "Rust large (2.2 MB wasm)", WASM_DIR / "rust-large.wasm", "handler",
             expect_prefix=b"large ok"),
]


def by_name() -> dict[str, Workload]:
    return {w.name: w for w in WORKLOADS}
