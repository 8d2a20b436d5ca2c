"""The Starlette application: explicit composition of the routes around one Host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import WasmhostError
from ..host import Host
from ..store.logs import LogStore
from ..settings import Settings
from .admin import AdminApi
from .auth import AdminAuth
from .buffers import BufferBudget
from .deadlines import Deadlines
from .errors import on_http_exception, on_unexpected, on_wasmhost_error
from .invoke import FunctionApp, FunctionDispatch
from .metrics import Metrics
from .openapi import build_openapi
from .ops import OpsApi
from .pool import InvocationPool
from .protocol import SEND_TIMEOUT_KEY

GC_INTERVAL_S = 3600.0


def create_app(host: Host, token: str | None) -> FunctionDispatch:
    settings = host.settings
    pool = InvocationPool(settings.max_concurrency, settings.max_queue, settings.function_queue)
    metrics = Metrics()
    logs = LogStore(host.data.logs_db)
    auth = AdminAuth(token)
    buffers = BufferBudget(settings.max_buffered_bytes)
    deadlines = Deadlines()
    admin = AdminApi(host, auth, metrics, logs, buffers, deadlines)
    ops = OpsApi(host, pool, metrics, buffers)
    functions = FunctionApp(host, pool, metrics, logs, auth, buffers, deadlines)
    openapi = build_openapi()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    async def collect_garbage_hourly() -> None:
        """What deleted functions left on disk goes within the hour, not at the next restart."""
        while True:
            await asyncio.sleep(GC_INTERVAL_S)
            try:
                await run_in_threadpool(host.collect_garbage)
            except Exception:  # never let housekeeping take the server down; say so in the log
                logging.getLogger("wasmhost.http").exception("garbage collection failed")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        gc_task = asyncio.create_task(collect_garbage_hourly())
        await asyncio.get_running_loop().run_in_executor(None, pool.prestart)
        try:
            # The lifespan state is what uvicorn hands every connection's protocol object
            # (`app_state`): LimitedHttpToolsProtocol reads its send deadline from it.
            yield {SEND_TIMEOUT_KEY: float(settings.send_timeout_s)}
        finally:
            gc_task.cancel()
            pool.shutdown()
            logs.close()
            host.close()

    routes = [
        Route("/healthz", ops.healthz, methods=["GET"]),
        Route("/readyz", ops.readyz, methods=["GET"]),
        Route("/metrics", ops.metrics_text, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/v1/info", admin.info, methods=["GET"]),
        Route("/v1/functions", admin.list, methods=["GET"]),
        Route("/v1/functions/{name}", admin.deploy, methods=["PUT"]),
        Route("/v1/functions/{name}", admin.get, methods=["GET"]),
        Route("/v1/functions/{name}", admin.patch, methods=["PATCH"]),
        Route("/v1/functions/{name}", admin.delete, methods=["DELETE"]),
        Route("/v1/functions/{name}/rollback", admin.rollback, methods=["POST"]),
        Route("/v1/functions/{name}/logs", admin.invocation_logs, methods=["GET"]),
        # /fn/{name}[/{path}] (every method) is FunctionApp, dispatched before this router.
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={WasmhostError: on_wasmhost_error, HTTPException: on_http_exception,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.host = host
    app.state.pool = pool
    return FunctionDispatch(functions, app)


def create_app_from_env() -> FunctionDispatch:
    """uvicorn's factory: each worker process builds its own Host from WASMHOST_* variables."""
    settings = Settings.from_env()
    return create_app(Host(settings), settings.token())
