"""Several processes sharing one data directory (as uvicorn workers do) lose nothing."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

ROUNDS = 12


def _worker(root: str, data_dir: str, modules_dir: str, tag: str, out: "multiprocessing.Queue") -> None:
    sys.path.insert(0, root)
    from tests.conftest import small_settings
    from wasmhost.host import Host
    from wasmhost.models import Request

    acked: list[tuple[str, int, str]] = []
    bad: list[str] = []
    modules = {name: (Path(modules_dir) / f"{name}.wasm").read_bytes()
               for name in ("hello_handler", "hello_wagi", "echo_handler")}
    try:
        with Host(small_settings(Path(data_dir))) as host:
            for i in range(ROUNDS):
                module = ("hello_handler", "hello_wagi", "echo_handler")[i % 3]
                for name in (f"own-{tag}-{i % 4}", "shared"):
                    dep = host.deploy(name, modules[module])
                    acked.append((name, dep.version.version, dep.version.digest))
                for name in ("shared", f"own-{tag}-{i % 4}"):
                    inv = host.invoke(name, Request(method="POST", path="/", body=b"x"))
                    if not inv.ok or inv.response.status != 200:
                        bad.append(f"{name}: {inv.error!r}")
    except Exception as exc:  # reported to the parent, which fails the test
        bad.append(f"crash: {type(exc).__name__}: {exc}")
    out.put((tag, acked, bad))


@pytest.mark.slow
def test_two_processes_deploy_and_invoke_at_once(tmp_path: Path, modules_dir: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(ROOT), str(tmp_path), str(modules_dir), tag, queue))
             for tag in ("a", "b")]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    from tests.conftest import small_settings
    from wasmhost.host import Host
    from wasmhost.models import Request

    with Host(small_settings(tmp_path)) as host:
        for tag, acked, bad in results:
            assert bad == [], bad
            for name, version, digest in acked:
                stored = host.registry.resolve(name, version)
                assert stored.digest == digest, (name, version)
        shared = host.get("shared")
        assert [v.version for v in shared.versions] == list(range(1, 2 * ROUNDS + 1))
        acked_shared = sorted(v for _, acked, _ in results for n, v, _ in acked if n == "shared")
        assert acked_shared == list(range(1, 2 * ROUNDS + 1))  # every acknowledged deploy, each once
        for info in host.list():
            inv = host.invoke(info.name, Request(method="POST", path="/", body=b"x"))
            assert inv.ok, (info.name, inv.error)
            assert host.registry.read_blob(info.active.digest)  # blob present and matching its digest
