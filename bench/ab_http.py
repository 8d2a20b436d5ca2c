"""Paired A/B of two source trees over loopback HTTP: is a change to the call path faster or slower?

Starts `wasmhost serve` from each tree (same Python, same uvicorn settings, each with its own data
directory and its own compiled extensions, which must be built in the tree), deploys the same
modules to both, then sends batches of requests over one keep-alive connection per server and
target, alternating the order A B B A ... so that the machine's noise falls on both alike. For
every target it prints the median µs per request of each side and the median of the paired
per-batch differences (B − A); an A/A run (the same tree twice) shows this method's noise floor.

Usage: python bench/ab_http.py OLD_TREE NEW_TREE [--batches 60] [--batch 200] [--targets hello,echo-post]
Nothing is asserted: it prints figures for bench/perf-log.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Proc, RawClient, clean_env, deploy, free_port  # noqa: E402
from modules.build import build_all  # noqa: E402

# target -> (module, method, path, body)
TARGETS = {
    "hello": ("hello_handler", "GET", "/fn/hello", b""),
    "hello-nolog": ("hello_nolog", "GET", "/fn/hello-nolog", b""),
    "echo-post": ("echo_handler", "POST", "/fn/echo/a/b?x=1", b"x" * 512),
    "wagi": ("hello_wagi", "GET", "/fn/wagi", b""),
}


# Both servers on one CPU and the client on another, where there are two: unpinned, the server
# that the scheduler happened to put beside the client was 20-50 µs slower in A/A runs.
CPUS = sorted(os.sched_getaffinity(0))
CLIENT_CPUS, SERVER_CPUS = ({CPUS[0]}, set(CPUS[1:])) if len(CPUS) > 1 else (set(CPUS), set(CPUS))


def _pin(cpus: set[int]) -> None:
    os.sched_setaffinity(0, cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--targets", default="hello,hello-nolog,echo-post")
    args = parser.parse_args()
    names = [t for t in args.targets.split(",") if t]
    _pin(CLIENT_CPUS)

    with tempfile.TemporaryDirectory(prefix="ab-http-") as tmp_name:
        tmp = Path(tmp_name)
        modules = tmp / "modules"
        build_all(modules)
        procs = {}
        try:
            for label, tree in (("A", args.old.resolve()), ("B", args.new.resolve())):
                procs[label] = start(tree, tmp, label)
                for name in names:
                    module, _, path, _ = TARGETS[name]
                    deploy(procs[label].port, path.split("/")[2].split("?")[0], (modules / f"{module}.wasm").read_bytes())
            for name in names:
                _, method, path, body = TARGETS[name]
                clients = {label: RawClient(p.port, path, method, body) for label, p in procs.items()}
                for client in clients.values():  # warm-up, and check the answers
                    for _ in range(200):
                        status = RawClient.parse(client.get())[0]
                        if status != 200:
                            raise RuntimeError(f"{name}: HTTP {status}")
                per: dict[str, list[float]] = {"A": [], "B": []}
                diffs: list[float] = []
                for i in range(args.batches):
                    order = ("A", "B") if i % 2 == 0 else ("B", "A")
                    took = {}
                    for label in order:
                        client = clients[label]
                        started = time.perf_counter_ns()
                        for _ in range(args.batch):
                            client.get()
                        took[label] = (time.perf_counter_ns() - started) / args.batch / 1e3
                    for label in ("A", "B"):
                        per[label].append(took[label])
                    diffs.append(took["B"] - took["A"])
                for client in clients.values():
                    client.close()
                print(f"{name:12s} A {statistics.median(per['A']):7.1f} µs  B {statistics.median(per['B']):7.1f} µs"
                      f"  paired diff (B-A) {statistics.median(diffs):+6.1f} µs"
                      f"  [{args.batches} x {args.batch} requests each]")
        finally:
            for p in procs.values():
                p.stop()


def start(tree: Path, tmp: Path, label: str) -> Proc:
    """`wasmhost serve` with `tree` as the working directory and first on sys.path."""
    port = free_port()
    argv = [sys.executable, "-m", "wasmhost", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data", str(tmp / f"data-{label}"), "--workers", "1", "--log-level", "warning"]
    env = {**clean_env(), "PYTHONPATH": str(tree)}
    proc = Proc.__new__(Proc)
    proc.name, proc.port, proc.log_path = label, port, tmp / f"{label}.log"
    with open(proc.log_path, "ab") as log:
        proc.proc = subprocess.Popen(argv, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=lambda: _pin(SERVER_CPUS))
    proc.wait_ready("/readyz")
    return proc


if __name__ == "__main__":
    main()
