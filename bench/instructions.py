"""CPU instructions per `/fn/` call, counted by callgrind: a change's cost without the noise of timing.

For each source tree given, runs this file's `--drive` mode under `valgrind --tool=callgrind
--separate-threads=yes` twice, with N1 and N2 calls, and prints (main thread's instructions at
N2 - at N1) / (N2 - N1): the Python and C work of one call through the real `create_app` (the
function route driven with an ASGI scope, no sockets, no uvicorn), start-up cancelled out. The
same tree measured twice agrees within ~0.5 % here; timings on these machines move by 30 %.

Targets: `get` (hello), `nolog` (hello-nolog), `post` (echo, 512-byte body).

Usage: python bench/instructions.py TREE [TREE ...] [--target get,post] [--n1 200] [--n2 2200]
Needs valgrind (Debian: valgrind). Each tree needs its compiled extensions built in place.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "get": ("hello", "hello_handler", "GET", "/fn/hello", b""),
    "nolog": ("hello-nolog", "hello_nolog", "GET", "/fn/hello-nolog", b""),
    "post": ("echo", "echo_handler", "POST", "/fn/echo/a/b", b"x" * 512),
}


def drive(tree: str, target: str, n: int, data: str, modules: str) -> None:
    """Make `n` calls of `target` through the app of `tree` (run under valgrind)."""
    sys.path.insert(0, tree)
    from wasmhost.host import Host
    from wasmhost.http.app import create_app
    from wasmhost.settings import Settings

    name, module, method, path, body = TARGETS[target]
    host = Host(Settings(data_dir=Path(data)))
    if name not in {f.name for f in host.list()}:  # deployed once per data directory: later runs load it
        host.deploy(name, (Path(modules) / f"{module}.wasm").read_bytes())
    app = create_app(host, None)
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if body:
        headers.append((b"content-length", b"%d" % len(body)))

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        pass

    async def run() -> None:
        for _ in range(n):
            scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
                     "raw_path": path.encode(), "query_string": b"x=1", "headers": list(headers),
                     "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555), "scheme": "http",
                     "root_path": "", "state": {}}
            await app(scope, receive, send)

    asyncio.run(run())


def count(tree: Path, target: str, n: int, data: Path, modules: Path, tmp: Path) -> int:
    out = tmp / "callgrind.out"
    for old in tmp.glob("callgrind.out*"):
        old.unlink()
    subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
                    sys.executable, __file__, "--drive", str(tree), target, str(n), str(data), str(modules)],
                   check=True, capture_output=True, cwd=tree)
    text = Path(f"{out}-01").read_text()
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        tree, target, n, data, modules = sys.argv[2:7]
        drive(tree, target, int(n), data, modules)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--target", default="get,post")
    parser.add_argument("--n1", type=int, default=200)
    parser.add_argument("--n2", type=int, default=2200)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from modules.build import build_all

    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp_name:
        tmp = Path(tmp_name)
        build_all(tmp / "modules")
        for target in args.target.split(","):
            for i, tree in enumerate(args.trees):
                data = tmp / f"data-{i}"
                drive_once = [sys.executable, __file__, "--drive", str(tree.resolve()), target, "1", str(data),
                              str(tmp / "modules")]
                subprocess.run(drive_once, check=True, capture_output=True, cwd=tree)  # deploy, compile
                low = count(tree.resolve(), target, args.n1, data, tmp / "modules", tmp)
                high = count(tree.resolve(), target, args.n2, data, tmp / "modules", tmp)
                print(f"{target:6s} {str(tree):30s} {(high - low) / (args.n2 - args.n1):10.0f} instructions per call")


if __name__ == "__main__":
    main()
