"""Operational routes: /healthz (the process answers), /readyz (it can serve), /metrics."""

from __future__ import annotations

import os
import tempfile

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..host import Host
from .buffers import BufferBudget
from .metrics import Metrics
from .pool import InvocationPool

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class OpsApi:
    def __init__(self, host: Host, pool: InvocationPool, metrics: Metrics, buffers: BufferBudget) -> None:
        self.host = host
        self.pool = pool
        self.metrics = metrics
        self.buffers = buffers

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _checks(self) -> dict[str, bool]:
        checks = {"engine": self.host.wasm.ticking, "data_dir_writable": False, "registry": False}
        try:
            fd, path = tempfile.mkstemp(dir=self.host.settings.data_dir, prefix=".readyz-")
            os.close(fd)
            os.unlink(path)
            checks["data_dir_writable"] = True
        except OSError:
            pass
        try:
            self.host.registry.referenced_digests()
            checks["registry"] = True
        except Exception:  # any failure means "not ready"; the detail is in the server log
            pass
        return checks

    async def readyz(self, request: Request) -> Response:
        checks = await run_in_threadpool(self._checks)
        ready = all(checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    async def metrics_text(self, request: Request) -> Response:
        self.metrics.buffered.set(self.buffers.used)  # read when asked: it changes with every body
        body = self.metrics.render()
        return Response(body, media_type=PROMETHEUS_TEXT)
