"""The client half of the `wasmhost` command line: deploy, invoke, ls, info, rm, rollback, logs.

Each talks to a server (`--url`, default $WASMHOST_URL or http://127.0.0.1:8000) with the admin
token from $WASMHOST_ADMIN_TOKEN (or the file named by $WASMHOST_ADMIN_TOKEN_FILE). Output is for
people by default; `--json` prints the answer as JSON for scripts. Any failure prints
`error: <code>: <message>` on stderr and exits 1 (cli.main does that for every WasmhostError).

`invoke` prints the function's body to stdout, byte for byte, whatever its status: a guest's own
404 or 500 is a normal answer (exit 0). It exits 1 when the call failed: the guest failed (trap,
fuel, timeout, ... reported by the host with the call's request id), or no guest ran (no such
function, overloaded, request too large, ...). `client.invoke_error` has the exact rule.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli_args import data as _data
from .cli_args import env as _env
from .cli_args import header as _header
from .errors import BadRequest
from .models import ABIS

if TYPE_CHECKING:  # httpx is imported by the client commands only, not by `run` or `serve`
    from .client import Client


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the server (default $WASMHOST_URL or http://127.0.0.1:8000)")
    common.add_argument("--json", action="store_true", help="print the answer as JSON (for scripts)")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help, description=help[:1].upper() + help[1:] + ".")
        parser.set_defaults(func=_quiet_broken_pipe(func))
        return parser

    deploy = add("deploy", cmd_deploy, "upload a module as a new version of a function (it becomes active)")
    deploy.add_argument("name", help="function name ([a-z0-9][a-z0-9-]*)")
    deploy.add_argument("file", type=Path, help="the .wasm module")
    deploy.add_argument("--fuel", type=int, help="fuel budget (instructions)")
    deploy.add_argument("--timeout", type=int, dest="timeout_ms", help="wall-clock deadline in ms")
    deploy.add_argument("--memory", type=int, dest="memory_mb", help="linear memory cap in MiB")
    deploy.add_argument("--env", type=_env, action="append", default=[], help="config variable KEY=VALUE (repeatable)")
    deploy.add_argument("--entrypoint", help="WAGI: export to run instead of _start")
    deploy.add_argument("--abi", choices=ABIS, help="guest interface (default: detected)")
    access = deploy.add_mutually_exclusive_group()
    access.add_argument("--private", action="store_const", const=True, dest="private",
                        help="calls need the admin token (wasmhost invoke --auth)")
    access.add_argument("--public", action="store_const", const=False, dest="private",
                        help="anyone may call it (the default for a new function)")
    deploy.add_argument("--concurrency", type=int, help="most calls of it running at once per worker (0: default)")
    deploy.add_argument("--if-version", type=_positive, help="only if this is still the active version "
                        "(else error precondition_failed): a deploy that cannot undo someone else's")

    invoke = add("invoke", cmd_invoke, "call a function and print its response body")
    invoke.add_argument("name", help="function name, or NAME@VERSION to call one version")
    invoke.add_argument("path", nargs="?", default="", help="path after /fn/NAME, may carry ?query")
    invoke.add_argument("-d", "--data", type=_data, default=b"", help="request body, @file, or @- for stdin")
    invoke.add_argument("-X", "--method", default=None, help="HTTP method (default GET, or POST with -d)")
    invoke.add_argument("-H", "--header", type=_header, action="append", default=[], help="'Name: value' (repeatable)")
    invoke.add_argument("-i", "--include", action="store_true", help="print the status line and headers too")
    invoke.add_argument("--auth", action="store_true", help="send the admin token (to call a private function)")

    add("ls", cmd_ls, "list functions")

    info = add("info", cmd_info, "show a function, its limits, config keys and versions")
    info.add_argument("name")

    rm = add("rm", cmd_rm, "delete a function and all its versions")
    rm.add_argument("name")

    rollback = add("rollback", cmd_rollback, "make an earlier version active (default: the one before)")
    rollback.add_argument("name")
    rollback.add_argument("version", nargs="?", type=_positive, help="version number (default: the previous one)")

    logs = add("logs", cmd_logs, "show recent invocations of a function and their log lines")
    logs.add_argument("name")
    logs.add_argument("--limit", type=_positive, default=20, help="how many invocations (default 20, at most 1000)")
    logs.add_argument("--request-id", help="only the invocation with this x-request-id")


# ---- commands ------------------------------------------------------------------------

def cmd_deploy(args: argparse.Namespace) -> int:
    try:
        wasm = args.file.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {args.file}: {exc.strerror}") from None
    with _client(args) as client:
        version = client.deploy(args.name, wasm, fuel=args.fuel, timeout_ms=args.timeout_ms,
                                memory_mb=args.memory_mb, config=dict(args.env) or None, abi=args.abi,
                                entrypoint=args.entrypoint, private=args.private, concurrency=args.concurrency,
                                if_version=args.if_version)
        url = client.url
    if args.json:
        return _print_json(version)
    source = version.get("code_source")
    built = (f"compiled in {version.get('compile_ms', 0):.1f} ms" if source == "compile"
             else f"code from the {source} cache")
    private = ", private" if version.get("private") else ""
    print(f"deployed {version['name']} v{version['version']} ({version['abi']}, {_size(version['size'])}, "
          f"{built}{private})")
    print(f"  {url}/fn/{version['name']}")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    from .client import invoke_error

    path, _, query = args.path.partition("?")
    method = (args.method or ("POST" if args.data else "GET")).upper()
    with _client(args) as client:
        response = client.invoke(args.name, path, method=method, data=args.data, headers=args.header,
                                 query=query, auth=args.auth)
    error = invoke_error(response)
    if args.json:
        _print_json(_response_json(response))
    else:
        if args.include:
            print(f"HTTP {response.status_code}")
            for name, value in response.headers.multi_items():
                print(f"{name}: {value}")
            print(flush=True)
        if error is None or args.include:
            sys.stdout.buffer.write(response.content)
            sys.stdout.flush()
    if error is None:
        return 0
    request_id = error.details.get("request_id") or response.headers.get("x-request-id")
    if request_id and "x-wasmhost-version" in response.headers:  # the guest ran: its logs are kept
        name = args.name.partition("@")[0]
        error.message += f" (request {request_id}; see `wasmhost logs {name} --request-id {request_id}`)"
    raise error


def cmd_ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        functions = client.list()
    if args.json:
        return _print_json(functions)
    if not functions:
        print("no functions deployed")
        return 0
    rows = [(f["name"], f"v{f['active_version']}", f["active"]["abi"], _size(f["active"]["size"]),
             _time(f["updated_at"])) for f in functions]
    _print_table(("NAME", "VERSION", "ABI", "SIZE", "UPDATED"), rows)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.info(args.name)
    if args.json:
        return _print_json(info)
    active = info["active"]
    limits = active["limits"]
    print(f"{info['name']}  v{info['active_version']} active  ({active['abi']}, {_size(active['size'])})")
    fields = [
        ("limits", f"fuel {limits['fuel']:,}, timeout {limits['timeout_ms']:,} ms, memory {limits['memory_mb']} MiB"),
        ("config", ", ".join(sorted(active["config"])) or "(none)"),
        ("access", "private (calls need the admin token)" if info.get("private") else "public"),
        ("concurrency", str(info["concurrency"]) if info.get("concurrency") else "server default"),
    ]
    if active.get("entrypoint"):
        fields.append(("entrypoint", active["entrypoint"]))
    for route in active.get("routes") or []:
        fields.append(("route", f"{route['path']}{'/...' if route.get('prefix') else ''} -> {route['export']}"))
    fields += [("imports", ", ".join(active["imports"]) or "(none)"),
               ("digest", active["digest"]),
               ("created", _time(info["created_at"])),
               ("updated", _time(info["updated_at"]))]
    for key, value in fields:
        print(f"  {key:<11}  {value}")
    print()
    rows = [("*" if v["version"] == info["active_version"] else "", f"v{v['version']}", v["abi"], _size(v["size"]),
             v["digest"][:12], _time(v["created_at"]), _limits(v["limits"]), ", ".join(sorted(v["config"])))
            for v in sorted(info.get("versions", []), key=lambda v: -v["version"])]
    _print_table(("", "VERSION", "ABI", "SIZE", "DIGEST", "CREATED", "LIMITS", "CONFIG"), rows)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.name)
    if args.json:
        return _print_json({"deleted": args.name})
    print(f"deleted {args.name}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with _client(args) as client:
        version = client.rollback(args.name, args.version)
    if args.json:
        return _print_json(version)
    print(f"{version['name']} is now at v{version['version']} ({version['abi']}, {_size(version['size'])})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        records = client.logs(args.name, limit=args.limit, request_id=args.request_id)
    if args.json:
        return _print_json(records)
    if not records:
        print(f"no invocations of {args.name} recorded" + (f" with request id {args.request_id}"
                                                         if args.request_id else ""))
        return 0
    for record in reversed(records):  # oldest first, newest last, like a log file
        outcome = f"{record['status']}" + (f" {record['code']}" if record.get("code") else "")
        print(f"{_time(record['time'], millis=True)}  {record['request_id']}  v{record['version']}  {outcome}  "
              f"{record['duration_ms']:.3f} ms  {record['tier']}  fuel {record['fuel']:,}")
        for line in record.get("logs") or []:
            print(f"    {line}")
        if record.get("truncated"):
            print("    … (truncated at the log limit)")
    return 0


# ---- helpers -------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> Client:
    from .client import Client
    return Client(url=args.url)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _quiet_broken_pipe(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`wasmhost invoke big | head` must not end in a traceback."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout at exit: let that succeed
            return 141  # as a shell reports SIGPIPE
    return wrapper


def _print_json(value: Any) -> int:
    print(json.dumps(value, indent=2, ensure_ascii=False))
    return 0


def _response_json(response: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"status": response.status_code,
                           "headers": [[k, v] for k, v in response.headers.multi_items()]}
    try:
        out["body"] = response.content.decode("utf-8")
    except UnicodeDecodeError:
        out["body_base64"] = base64.b64encode(response.content).decode("ascii")
    return out


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"


def _time(stamp: float, millis: bool = False) -> str:
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
    return text + f".{int(stamp * 1000) % 1000:03d}" if millis else text


def _limits(limits: dict[str, int]) -> str:
    return f"fuel {limits['fuel']:,} / {limits['timeout_ms']:,} ms / {limits['memory_mb']} MiB"


def _print_table(headings: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headings, *rows)]
    for row in (tuple(headings), *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

