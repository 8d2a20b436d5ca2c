"""A real `wasmhost serve` subprocess on a free loopback port, for HTTP tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`with Server(data_dir, ...) as srv:` → srv.url, srv.client (httpx), srv.stop()/start()."""

    def __init__(self, data_dir: Path, *, token: str | None = None, workers: int = 1,
                 env: dict[str, str] | None = None, extra_args: tuple[str, ...] = (), port: int | None = None,
                 host: str = "127.0.0.1", preexec: Callable[[], None] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.token = token
        self.workers = workers
        self.env = env or {}
        self.extra_args = extra_args
        self.host = host
        self.preexec = preexec  # runs in the server's process before it starts (e.g. setrlimit)
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def admin_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self, wait: bool = True) -> "Server":
        if self.client.is_closed:
            self.client = httpx.Client(base_url=self.url, timeout=60)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WASMHOST_")}
        env.update({"WASMHOST_DATA": str(self.data_dir), "PYTHONUNBUFFERED": "1", **self.env})
        if self.token:
            env["WASMHOST_ADMIN_TOKEN"] = self.token
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wasmhost", "serve", "--host", self.host, "--port", str(self.port),
             "--workers", str(self.workers), "--log-level", "warning", *self.extra_args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=self.preexec)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def deploy(self, name: str, wasm: bytes, **params) -> httpx.Response:
        return self.client.put(f"/v1/functions/{name}", content=wasm, params=params,
                               headers={"content-type": "application/wasm", **self.admin_headers()})

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.client.close()
