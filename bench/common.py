"""Pieces every benchmark shares: server subprocesses, deploys, a raw HTTP client, percentiles, machine info.

Servers run as real subprocesses on free loopback ports, each in its own process group, with
the uvicorn settings `wasmhost serve` uses, so that wasmhost and the floor differ only in the app.
"""

from __future__ import annotations

import http.client
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = b"Hello, world!\n"
CONTENT_TYPE = "text/plain; charset=utf-8"
# The uvicorn settings `wasmhost serve` passes to uvicorn.run (wasmhost/serve.py), as CLI flags.
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "wasmhost.http.protocol:LimitedHttpToolsProtocol", "--no-access-log",
                 "--no-server-header", "--log-level", "warning", "--timeout-graceful-shutdown", "10"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str]) -> None:
        self.name, self.port, self.log_path = name, port, log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """user + system CPU of the server process (all its threads) so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WASMHOST_", "PROMETHEUS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_wasmhost(tmp: Path, workers: int = 1, data: Path | None = None, env: dict[str, str] | None = None) -> Proc:
    """`wasmhost serve` on a free port, data in `data` (default tmp/data), ready when /readyz answers."""
    port = free_port()
    argv = [sys.executable, "-m", "wasmhost", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data", str(data or tmp / "data"), "--workers", str(workers), "--log-level", "warning"]
    proc = Proc("wasmhost", argv, port, tmp / "wasmhost.log", {**clean_env(), **(env or {})})
    proc.wait_ready("/readyz")
    return proc


def start_bare(tmp: Path, workers: int = 1) -> Proc:
    """The floor: bench/bare_app.py under the same uvicorn settings."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), *UVICORN_FLAGS]
    proc = Proc("bare", argv, port, tmp / "bare.log", clean_env())
    proc.wait_ready("/fn/hello")
    return proc


def deploy(port: int, name: str, wasm: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("PUT", f"/v1/functions/{name}", body=wasm, headers={"content-type": "application/wasm"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status not in (200, 201):
        raise RuntimeError(f"deploy {name}: HTTP {resp.status}: {body[:500]!r}")


# --------------------------------------------------------------------------- clients

class RawClient:
    """HTTP/1.1 keep-alive requests over a plain socket: a pre-encoded request, the response read up to
    its Content-Length. `get()` returns (head, body) unparsed; `parse()` is called outside the timing."""

    def __init__(self, port: int, path: str, method: str = "GET", body: bytes = b"", content_type: str = "") -> None:
        self.port = port
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench-http\r\nAccept: */*\r\n"
        if body or method not in ("GET", "HEAD"):
            head += f"Content-Length: {len(body)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        self.request = (head + "\r\n").encode() + body
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self) -> tuple[bytes, bytes]:
        try:
            return self._get()
        except (ConnectionError, EOFError):  # the server closed an idle keep-alive connection
            self.sock.close()
            self.reconnects += 1
            self._connect()
            return self._get()

    def _get(self) -> tuple[bytes, bytes]:
        sock = self.sock
        sock.sendall(self.request)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        head = buf[:end]
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"no content-length in {head!r}")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:line_end if line_end > 0 else len(head)])
        need = end + 4 + length
        while len(buf) < need:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        self.buf = buf[need:]
        return head, buf[end + 4:need]

    @staticmethod
    def parse(response: tuple[bytes, bytes]) -> tuple[int, dict[str, str], bytes]:
        head, body = response
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body

    def close(self) -> None:
        self.sock.close()


def parse_server_timing(value: str) -> dict[str, float | str]:
    """`queue;dur=0.01, load;desc="memory";dur=0.002, ...` -> {"queue": 0.01, "load": 0.002, "tier": "memory"}."""
    out: dict[str, float | str] = {}
    for metric in value.split(","):
        name, *params = [p.strip() for p in metric.split(";")]
        for param in params:
            key, _, val = param.partition("=")
            if key == "dur":
                out[name] = float(val)
            elif key == "desc" and name == "load":
                out["tier"] = val.strip('"')
    return out


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def summarize(latencies_ns: list[int]) -> dict[str, float]:
    us = sorted(v / 1e3 for v in latencies_ns)
    return {"n": len(us), "p50_us": round(pct(us, 50), 1), "p90_us": round(pct(us, 90), 1),
            "p99_us": round(pct(us, 99), 1), "mean_us": round(statistics.fmean(us), 1),
            "min_us": round(us[0], 1), "max_us": round(us[-1], 1)}


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("uvicorn", "starlette", "uvloop", "httptools", "wasmtime", "prometheus_client"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"node": platform.node(), "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "python": platform.python_version(), "machine": platform.machine(),
            "packages": versions}
