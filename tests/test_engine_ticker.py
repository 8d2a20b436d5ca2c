"""The epoch ticker: wall-clock deadlines must not depend on the GIL.

A Python ticker thread needs the GIL for every tick, so a deadline waits for
whichever thread holds it; the soak test saw a 1 s timeout_ms run 1.4-4.9 s.
The native ticker (wasmhost/csrc/ticker.c) ticks without Python.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wasmhost.engine import EngineConfig, create_engine
from wasmhost.errors import Timeout
from wasmhost.host import Host
from wasmhost.models import Request
from wasmhost.settings import Settings

from .conftest import small_settings

HELLO = Request(method="GET", path="/", script_name="/fn/loop")


def hold_the_gil(seconds: float) -> None:
    """Hold the GIL without a break: sum() over a range is one C loop that never
    reaches the interpreter's eval breaker, so no other Python thread runs."""
    n = 1_000_000
    while True:
        t0 = time.perf_counter()
        sum(range(n))
        if time.perf_counter() - t0 >= seconds / 4:
            break
        n *= 2
    t0 = time.perf_counter()
    sum(range(n * 4))
    assert time.perf_counter() - t0 >= seconds * 0.8, "could not hold the GIL long enough"


def test_the_native_ticker_is_used_when_built() -> None:
    wasm = create_engine(EngineConfig.from_settings(Settings(pooling=False)))
    try:
        assert wasm.ticker_kind == "native", "wasmhost._ticker is not built: run `make install`"
        assert wasm.describe()["epoch_ticker"] == "native"
    finally:
        wasm.close()
    assert wasm.ticker_kind == "stopped"
    assert not wasm.ticking
    wasm.close()  # a second close is harmless


def test_a_dropped_engine_stops_its_ticker() -> None:
    """A WasmEngine never closed: its capsule's destructor stops the thread."""
    before = threading.active_count()
    for _ in range(20):
        create_engine(EngineConfig.from_settings(Settings(pooling=False)))
    # native threads are not Python threads: the count stays, and nothing crashed
    assert threading.active_count() == before


def test_a_deadline_fires_while_another_thread_holds_the_gil(tmp_path, wasm) -> None:
    """The guest loops with a 200 ms deadline while this thread holds the GIL for
    2 s. The run time is measured in C around the wasm call, so it shows when
    the deadline fired, not when Python got the result."""
    with Host(small_settings(tmp_path / "data")) as host:
        if host.sandbox.path != "c" or host.wasm.ticker_kind != "native":
            pytest.fail("the C fast path and native ticker are not built: run `make install`")
        host.deploy("loop", wasm("hostile/infinite_loop"), limits={"fuel": 2_000_000_000, "timeout_ms": 200})
        result: list = []
        guest = threading.Thread(target=lambda: result.append(host.invoke("loop", HELLO)))
        guest.start()
        time.sleep(0.02)  # let the guest thread enter wasm (and release the GIL)
        hold_the_gil(2.0)
        guest.join()
        inv = result[0]
        assert isinstance(inv.error, Timeout), inv.error
        # A Python ticker could not have ticked before the GIL came back (>= 1.6 s).
        assert 0.19 <= inv.timings.run < 1.0, inv.timings.run


FORK_SCRIPT = """
import os, sys
from pathlib import Path
from tests.conftest import small_settings
from wasmhost.engine import shared_engine
from wasmhost.errors import Timeout
from wasmhost.host import Host
from wasmhost.models import Request

settings = small_settings(Path(sys.argv[1]))
parent_engine = shared_engine(settings)
assert parent_engine.ticker_kind == "native", parent_engine.ticker_kind
pid = os.fork()
if pid == 0:  # the child reports through its exit status only
    status = 1
    try:
        with Host(settings) as host:
            host.deploy("loop", Path(sys.argv[2]).read_bytes(), limits={"fuel": 2_000_000_000, "timeout_ms": 200})
            inv = host.invoke("loop", Request(method="GET", path="/", script_name="/fn/loop"))
            status = 0 if host.wasm.ticker_kind == "native" and isinstance(inv.error, Timeout) else 2
    finally:
        os._exit(status)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert parent_engine.ticker_kind == "native"  # the parent's ticker is untouched
print("ok")
"""


def test_a_forked_child_ticks_again(tmp_path, modules_dir) -> None:
    """Threads do not survive fork(): the child restarts the shared engine's ticker,
    so its deadlines still fire. In a fresh interpreter, because a process that has
    compiled a module cannot compile again after fork (Cranelift's worker threads
    are gone too); wasmhost itself never forks, uvicorn's workers are spawned."""
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(tmp_path / "data"),
                           str(modules_dir / "hostile" / "infinite_loop.wasm")],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
