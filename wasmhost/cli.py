"""The `wasmhost` command line.

`wasmhost run FILE.wasm` runs one module once, locally, through exactly the
path a deployed function takes (deploy → cache → sandbox), so what works here
works on a server. `wasmhost serve` serves functions over HTTP; the client
commands that talk to a server (deploy, invoke, ls, info, rm, rollback, logs)
live in `cli_client.py` and are registered here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .cli_args import data as _data
from .cli_args import env as _env
from .cli_args import header as _header
from .errors import BadRequest, WasmhostError
from .models import ABIS, Invocation, Request

if TYPE_CHECKING:
    from .settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wasmhost", description="Serverless host for WebAssembly functions.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one module once, locally, and print its response")
    run.add_argument("file", type=Path, help="the .wasm module")
    run.add_argument("-d", "--data", type=_data, default=b"", help="request body, @file, or @- for stdin")
    run.add_argument("-X", "--method", default=None, help="HTTP method (default GET, or POST with -d)")
    run.add_argument("--path", default="/", help="request path after the function prefix, may carry ?query")
    run.add_argument("-H", "--header", type=_header, action="append", default=[], help="'Name: value' (repeatable)")
    run.add_argument("--fuel", type=int, help="fuel budget (instructions)")
    run.add_argument("--timeout", type=int, dest="timeout_ms", help="wall-clock deadline in ms")
    run.add_argument("--memory", type=int, dest="memory_mb", help="linear memory cap in MiB")
    run.add_argument("--env", type=_env, action="append", default=[], help="config variable KEY=VALUE (repeatable)")
    run.add_argument("--abi", choices=ABIS, help="guest interface (default: detected)")
    run.add_argument("--entrypoint", help="WAGI: export to run instead of _start")
    run.add_argument("-i", "--include", action="store_true", help="print the status line and headers too")
    run.add_argument("-v", "--verbose", action="store_true", help="also print tier, timings and fuel used")
    run.add_argument("-q", "--quiet", action="store_true", help="do not print the function's logs")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve functions over HTTP (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data", type=Path, help="data directory (default $WASMHOST_DATA or ./data)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the data directory")
    serve.add_argument("--token-file", type=Path, help="file holding the admin token "
                       "(or set WASMHOST_ADMIN_TOKEN)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback bind without an admin token")
    serve.add_argument("--deploy-examples", nargs="?", const=Path("modules/build"), type=Path, metavar="DIR",
                       help="deploy the example modules from DIR (default modules/build) before serving")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    fsck = sub.add_parser(
        "fsck", help="check a data directory's registry, blobs and artifacts (and repair what is safe)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check a data directory: SQLite integrity of registry.sqlite3 and logs.sqlite3; every "
                    "version's blob present and hashing to its digest; every function's active version "
                    "present; corrupt, orphan and temp files; artifacts whose .sum is missing or wrong, "
                    "of unknown digests or of other engine configurations.",
        epilog="Exit status: 0 when no error or fault remains (after --repair), 1 otherwise. Garbage\n"
               "(temp files, orphans: normal leftovers of a crash) is reported but never fails the check.\n\n"
               "While a server runs on the same directory:\n"
               "  safe:     fsck and fsck --repair. The check is one SQLite read transaction (it never blocks\n"
               "            deploys or calls); artifacts are a cache that servers re-verify on load; blobs are\n"
               "            deleted only under the registry's write lock, only when no version references\n"
               "            them and only when older than --min-age.\n"
               "  not safe: --min-age 0 (or small) while deploys run: a deploy in flight can lose its new\n"
               "            blob or temp file and fail (nothing committed is ever harmed).\n"
               "Never repaired: database rows, and blobs a version references (a missing or corrupt one\n"
               "is reported with the function and version it breaks: redeploy that module).\n"
               "Run it with the same WASMHOST_* settings as the server, which decide the current engine\n"
               "fingerprint; artifacts of other fingerprints are removed by --repair.")
    fsck.add_argument("--data", type=Path, help="data directory (default $WASMHOST_DATA or ./data)")
    fsck.add_argument("--repair", action="store_true", help="delete what is safe to delete (see below)")
    fsck.add_argument("--json", action="store_true", help="print the report as JSON")
    fsck.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                      help="repair deletes orphan blobs and temp files only when older (default 3600, the GC age)")
    fsck.add_argument("--quick", action="store_true", help="PRAGMA quick_check instead of integrity_check")
    fsck.set_defaults(func=cmd_fsck)

    bench = sub.add_parser("bench", help="run the benchmark suite (bench/run.py; from a source checkout)",
                           description="Run the benchmark suite: cold-start tiers, peers, load. "
                                       "Every argument after `bench` goes to bench/run.py (wasmhost bench --help).")
    bench.set_defaults(func=cmd_bench, suite_args=[])

    from .cli_client import add_client_commands  # (imported when needed: it brings httpx)
    add_client_commands(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from .host import Host
    from .settings import Settings

    try:
        wasm = args.file.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {args.file}: {exc.strerror}") from None
    path, _, query = args.path.partition("?")
    method = (args.method or ("POST" if args.data else "GET")).upper()
    headers = tuple(args.header)
    if args.data and not any(name == "content-length" for name, _ in headers):
        headers += (("content-length", str(len(args.data))),)
    request = Request(method=method, path=path if path.startswith("/") else "/" + path, query=query,
                      headers=headers, body=args.data, script_name="/fn/run")
    limits = {"fuel": args.fuel, "timeout_ms": args.timeout_ms, "memory_mb": args.memory_mb}
    with tempfile.TemporaryDirectory(prefix="wasmhost-run-") as data_dir:
        settings = Settings.from_env(data_dir=Path(data_dir))
        settings = _allow_requested_limits(settings, limits)
        with Host(settings) as host:
            deployment = host.deploy("run", wasm, limits=limits, config=dict(args.env),
                                     abi=args.abi, entrypoint=args.entrypoint)
            invocation = host.invoke("run", request)
    _print_invocation(invocation, args, deployment.compile_seconds)
    return 0 if invocation.ok else 1


def _allow_requested_limits(settings: Settings, limits: dict[str, int | None]) -> Settings:
    """Locally the user is the operator: let explicit flags raise the maxima."""
    from dataclasses import replace
    raised = {f"max_{key}": value for key, value in limits.items()
              if value is not None and value > getattr(settings, f"max_{key}")}
    return replace(settings, **raised) if raised else settings


def _print_invocation(inv: Invocation, args: argparse.Namespace, compile_seconds: float) -> None:
    err = sys.stderr
    if not args.quiet:
        for line in inv.logs:
            print(f"log: {line}", file=err)
        if inv.logs_truncated:
            print("log: … (truncated at the log limit)", file=err)
    if args.verbose:
        t = inv.timings
        print(f"* tier={inv.tier} compile={compile_seconds * 1000:.3f}ms load={t.load * 1e6:.1f}µs "
              f"instantiate={t.instantiate * 1e6:.1f}µs run={t.run * 1e6:.1f}µs fuel={inv.fuel_used}", file=err)
    if inv.error is not None:
        error = inv.error
        code = getattr(error, "code", "internal")
        print(f"error: {code}: {getattr(error, 'message', str(error))}", file=err)
        return
    response = inv.response
    assert response is not None
    if args.include or args.verbose:
        out = sys.stdout if args.include else err
        print(f"HTTP {response.status}", file=out)
        for name, value in response.headers:
            print(f"{name}: {value}", file=out)
        print(file=out)
        out.flush()
    sys.stdout.buffer.write(response.body)
    sys.stdout.flush()


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve
    return serve(host=args.host, port=args.port, data=args.data, workers=args.workers,
                 token_file=args.token_file, insecure=args.insecure, examples=args.deploy_examples,
                 log_level=args.log_level)


def cmd_fsck(args: argparse.Namespace) -> int:
    """Print the findings (or the JSON report); exit 1 while errors or faults remain."""
    import json

    from .fsck import fsck
    from .settings import Settings

    data_dir = Settings.from_env(data_dir=args.data).data_dir
    if not data_dir.is_dir():
        raise BadRequest(f"no data directory at {data_dir}")
    if args.min_age < 0:
        raise BadRequest("--min-age must not be negative")
    report = fsck(data_dir, repair=args.repair, min_age_s=args.min_age, quick=args.quick)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for finding in report.findings:
            where = f"  ({finding.path})" if finding.path else ""
            print(f"{finding}{where}")
        left = report.remaining
        print(f"{report.data_dir}: {report.functions} functions, {report.versions} versions, {report.blobs} blobs, "
              f"{report.artifacts} artifacts; {len(report.findings)} findings, "
              f"{sum(f.repaired for f in report.findings)} repaired, "
              f"{'OK' if not left else f'{len(left)} problems remain'}")
    return 0 if report.ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """The suite lives beside the package (it needs the example modules and the peers), so it
    runs from a source checkout; an installed wheel says where to get one."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "bench" / "run.py"
    if not script.is_file():
        raise BadRequest("the benchmark suite ships with the source tree: clone the repository, then `make bench`")
    return subprocess.call([sys.executable, str(script), *args.suite_args], cwd=script.parent.parent)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after it is bench/run.py's, --help included
        args = argparse.Namespace(func=cmd_bench, suite_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except WasmhostError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
