"""Isolation between tenants over HTTP: a flood of slow calls to one function holds at
most that function's slots; another function's calls still get a thread at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from bench.common import parse_server_timing
from tests.server import Server

SLOW_MS = 1000
ENV = {"WASMHOST_MAX_CONCURRENCY": "4", "WASMHOST_MAX_QUEUE": "16", "WASMHOST_FUNCTION_CONCURRENCY": "2",
       "WASMHOST_FUNCTION_QUEUE": "4"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, modules_dir: Path) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("isolation") / "data", env=ENV) as srv:
        loop = (modules_dir / "hostile/infinite_loop.wasm").read_bytes()
        for name, extra in (("slow", {}), ("slow-one", {"concurrency": 1})):
            r = srv.deploy(name, loop, fuel=20_000_000_000, timeout_ms=SLOW_MS, **extra)
            assert r.status_code == 201, r.text
        assert srv.deploy("good", (modules_dir / "hello_wagi.wasm").read_bytes()).status_code == 201
        yield srv
        assert "Traceback" not in srv.log(), srv.log()


def queue_ms(r: httpx.Response) -> float:
    return float(parse_server_timing(r.headers["server-timing"])["queue"])


async def flood(server: Server, path: str, calls: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=calls, max_keepalive_connections=calls)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.get(path) for _ in range(calls)))


def test_a_flood_of_slow_calls_does_not_starve_another_function(server: Server) -> None:
    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        flooding = asyncio.create_task(flood(server, "/fn/slow", 20))
        await asyncio.sleep(0.3)  # the flood holds its slots and fills its line
        good = []
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for _ in range(10):
                good.append(await client.get("/fn/good"))
        return await flooding, good

    slow, good = asyncio.run(main())
    for r in good:
        assert r.status_code == 200 and r.text == "Hello from WAGI\n", r.text
        # never behind the flood: a waiting slow call would have waited a whole slow call
        assert queue_ms(r) < SLOW_MS / 2, r.headers["server-timing"]
    statuses = sorted(r.status_code for r in slow)
    # 2 slots + 4 places on its line ran (each to its 1 s deadline); the rest were refused at once
    assert statuses.count(504) == 6 and statuses.count(503) == 14, statuses
    refused = next(r for r in slow if r.status_code == 503)
    error = refused.json()["error"]
    assert error["code"] == "overloaded" and error["function"] == "slow" and error["limit"] == 2
    assert "function 'slow' already has 2 calls running" in error["message"]
    assert refused.headers["retry-after"] == "1"
    waits = sorted(queue_ms(r) for r in slow if r.status_code == 504)
    assert waits[1] < SLOW_MS / 2 and waits[2] > SLOW_MS * 0.8, waits  # two at once, the rest in turn


def test_a_function_can_set_its_own_concurrency(server: Server) -> None:
    info = server.client.get("/v1/functions/slow-one").json()
    assert info["concurrency"] == 1
    responses = asyncio.run(flood(server, "/fn/slow-one", 3))
    assert [r.status_code for r in responses] == [504] * 3
    waits = sorted(queue_ms(r) for r in responses)
    assert waits[1] > SLOW_MS * 0.8 and waits[2] > SLOW_MS * 1.6, waits  # one at a time


def test_concurrency_is_bounded_by_the_server(server: Server) -> None:
    r = server.client.patch("/v1/functions/slow-one", json={"concurrency": 5})
    assert r.status_code == 400 and "max_concurrency 4" in r.json()["error"]["message"]
    r = server.client.patch("/v1/functions/slow-one", json={"concurrency": 0})
    assert r.status_code == 200 and r.json()["concurrency"] is None  # back to the server default
    info = server.client.get("/v1/info").json()["concurrency"]
    assert info == {"max_concurrency": 4, "max_queue": 16, "function_concurrency": 2, "function_queue": 4}
