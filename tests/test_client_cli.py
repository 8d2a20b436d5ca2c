"""The client commands (deploy, invoke, ls, info, rm, rollback, logs) against a real server,
run as a user runs them: `python -m wasmhost ...` subprocesses, exit codes, stdout and stderr."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import msgpack
import pytest
import wasmtime

from wasmhost.client import Client, ClientError, invoke_error, wasmhost_error

from .conftest import ROOT
from .server import Server, free_port

TOKEN = "tok-3f9a1c5e-never-printed"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("client-cli") / "data", token=TOKEN) as server:
        yield server


def cli(srv: Server | None, *args: str, token: str | None = TOKEN, url: str | None = None,
        stdin: bytes | None = None, ok: bool | None = None) -> subprocess.CompletedProcess:
    """Run `wasmhost ARGS`; check what holds for every run (no traceback, the token never shown)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASMHOST_")}
    env["WASMHOST_URL"] = url or (srv.url if srv else "http://127.0.0.1:1")
    if token is not None:
        env["WASMHOST_ADMIN_TOKEN"] = token
    out = subprocess.run([sys.executable, "-m", "wasmhost", *args], cwd=ROOT, env=env, input=stdin,
                         capture_output=True, timeout=60)
    for stream in (out.stdout, out.stderr):
        assert TOKEN.encode() not in stream
        assert b"Traceback" not in stream
    if ok is not None:
        assert (out.returncode == 0) == ok, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    return out


def text(out: subprocess.CompletedProcess) -> str:
    return out.stdout.decode()


# ---- a function's life ---------------------------------------------------------------

def test_lifecycle(srv: Server, modules_dir: Path) -> None:
    hello = str(modules_dir / "hello_handler.wasm")
    out = cli(srv, "deploy", "life", hello, ok=True)
    assert text(out).startswith("deployed life v1 (handler, ")
    assert "compiled in" in text(out) or "cache" in text(out)
    assert f"{srv.url}/fn/life" in text(out)
    out = cli(srv, "deploy", "life", hello, "--fuel", "5000000", "--timeout", "1500", "--memory", "32",
              "--env", "GREETING=hi", "--env", "SECRET=s3", ok=True)
    assert text(out).startswith("deployed life v2 (handler, ")

    out = cli(srv, "ls", ok=True)
    lines = text(out).splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "ABI", "SIZE", "UPDATED"]
    row = next(line.split() for line in lines if line.startswith("life "))
    assert row[1:5] == ["v2", "handler", "401", "B"]  # then the UPDATED date and time

    out = cli(srv, "info", "life", ok=True)
    info = text(out)
    assert info.startswith("life  v2 active  (handler, ")
    assert "fuel 5,000,000, timeout 1,500 ms, memory 32 MiB" in info
    assert "GREETING, SECRET" in info and "s3" not in info.replace("SECRET", "")  # keys, not values
    versions = [line.split() for line in info.splitlines() if line.lstrip("* ").startswith("v")]
    assert [v[0] for v in versions] == ["*", "v1"]
    assert versions[0][1] == "v2"

    out = cli(srv, "invoke", "life", ok=True)
    assert out.stdout == b"Hello, world!\n"
    out = cli(srv, "invoke", "life@1", "-i", ok=True)
    head, _, body = out.stdout.partition(b"\n\n")
    assert head.startswith(b"HTTP 200\n") and b"\nx-wasmhost-version: 1" in head
    assert b"content-type: text/plain; charset=utf-8" in head and body == b"Hello, world!\n"
    request_id = next(line.split(": ")[1] for line in head.decode().splitlines() if line.startswith("x-request-id"))

    out = cli(srv, "logs", "life", ok=True)
    assert "hello called" in text(out)
    first = text(out).splitlines()[0].split()
    assert first[3:5] == ["v2", "200"] and first[7] in ("memory", "disk", "compile")  # oldest first
    assert text(out).splitlines()[1] == "    hello called"
    out = cli(srv, "logs", "life", "--request-id", request_id, ok=True)
    assert request_id in text(out) and "  v1  200  " in text(out) and text(out).count(" fuel ") == 1

    out = cli(srv, "rollback", "life", ok=True)
    assert text(out).startswith("life is now at v1 (handler, ")
    out = cli(srv, "rollback", "life", ok=False)
    assert out.returncode == 1 and out.stderr.decode().startswith("error: not_found: ")
    out = cli(srv, "rollback", "life", "2", ok=True)
    assert "v2" in text(out)

    out = cli(srv, "rm", "life", ok=True)
    assert text(out) == "deleted life\n"
    out = cli(srv, "invoke", "life", ok=False)
    assert out.returncode == 1 and out.stdout == b""
    assert out.stderr.decode().startswith("error: not_found: ")
    out = cli(srv, "info", "life", ok=False)
    assert out.stderr.decode().startswith("error: not_found: ")


# ---- invoke --------------------------------------------------------------------------

def test_invoke_echo_data_headers_query_and_stdin(srv: Server, modules_dir: Path, tmp_path: Path) -> None:
    cli(srv, "deploy", "echo", str(modules_dir / "echo_handler.wasm"), "--env", "KEY=value", ok=True)
    out = cli(srv, "invoke", "echo", "/a/b?q=1&r=%20", "-d", "hello body", "-H", "X-Thing: yes",
              "-H", "X-Thing: again", ok=True)
    seen = msgpack.unpackb(out.stdout, raw=False)
    assert seen["method"] == "POST" and seen["path"] == "/a/b" and seen["query"] == "q=1&r=%20"
    assert ["x-thing", "yes"] in seen["headers"] and ["x-thing", "again"] in seen["headers"]
    assert seen["body"] == b"hello body" and seen["config"] == {"KEY": "value"}
    # The admin token is for /v1 only: a function never sees it; nor an Accept-Encoding nobody asked for.
    names = [name for name, _ in seen["headers"]]
    assert "authorization" not in names and "accept-encoding" not in names

    body = tmp_path / "body.bin"
    body.write_bytes(b"\x00binary\xff")
    seen = msgpack.unpackb(cli(srv, "invoke", "echo", "x", "-d", f"@{body}", "-X", "put", ok=True).stdout, raw=False)
    assert seen["method"] == "PUT" and seen["path"] == "/x" and seen["body"] == b"\x00binary\xff"
    seen = msgpack.unpackb(cli(srv, "invoke", "echo", "-d", "@-", stdin=b"from stdin", ok=True).stdout, raw=False)
    assert seen["body"] == b"from stdin"

    out = cli(srv, "invoke", "echo", "--json", ok=True)
    doc = json.loads(out.stdout)
    assert doc["status"] == 200 and "body_base64" in doc  # msgpack is not UTF-8
    assert ["content-type", "application/msgpack"] in doc["headers"]


def test_guest_error_status_is_a_normal_response(srv: Server, modules_dir: Path) -> None:
    cli(srv, "deploy", "status", str(modules_dir / "wagi_status.wasm"), ok=True)
    out = cli(srv, "invoke", "status", ok=True)
    assert out.stdout == b"not here\n" and out.stderr == b""
    out = cli(srv, "invoke", "status", "-i", ok=True)
    assert out.stdout.startswith(b"HTTP 404\n")
    assert b"set-cookie: a=1\n" in out.stdout and b"set-cookie: b=2\n" in out.stdout
    doc = json.loads(cli(srv, "invoke", "status", "--json", ok=True).stdout)
    assert doc["status"] == 404 and doc["body"] == "not here\n"


def test_guest_failure_exits_1_and_points_at_logs(srv: Server, modules_dir: Path) -> None:
    cli(srv, "deploy", "trapper", str(modules_dir / "hostile/unreachable.wasm"), ok=True)
    out = cli(srv, "invoke", "trapper", ok=False)
    assert out.returncode == 1 and out.stdout == b""
    err = out.stderr.decode()
    assert err.startswith("error: trap: ") and "wasmhost logs trapper --request-id " in err
    out = cli(srv, "invoke", "trapper", "-i", ok=False)
    assert out.stdout.startswith(b"HTTP 502\n") and b'"code":"trap"' in out.stdout
    out = cli(srv, "logs", "trapper", "--limit", "1", ok=True)
    assert "  502 trap  " in text(out) and len(text(out).splitlines()) == 1


def test_wagi_entrypoint_and_abi_use_multipart(srv: Server, modules_dir: Path) -> None:
    routes = str(modules_dir / "wagi_routes.wasm")
    out = cli(srv, "deploy", "routes", routes, "--entrypoint", "hello", "--abi", "wagi", "--memory", "16", ok=True)
    assert text(out).startswith("deployed routes v1 (wagi, ")
    assert cli(srv, "invoke", "routes", ok=True).stdout == b"hello route\n"
    assert cli(srv, "invoke", "routes", "/files/a", ok=True).stdout == b"files route\n"
    out = cli(srv, "info", "routes", ok=True)
    assert "entrypoint   hello" in text(out) and "memory 16 MiB" in text(out)
    out = cli(srv, "deploy", "routes", routes, "--abi", "handler", ok=False)
    assert out.stderr.decode().startswith("error: invalid_module: ")


# ---- JSON output ---------------------------------------------------------------------

def test_json_outputs_parse(srv: Server, modules_dir: Path) -> None:
    hello = str(modules_dir / "hello_handler.wasm")
    deployed = json.loads(cli(srv, "deploy", "js", hello, "--env", "A=1", "--json", ok=True).stdout)
    assert deployed["name"] == "js" and deployed["version"] == 1 and deployed["config"] == {"A": "1"}
    assert "compile_ms" in deployed and "code_source" in deployed
    cli(srv, "deploy", "js", hello, "--json", ok=True)
    listed = json.loads(cli(srv, "ls", "--json", ok=True).stdout)
    assert any(f["name"] == "js" and f["active_version"] == 2 for f in listed)
    info = json.loads(cli(srv, "info", "js", "--json", ok=True).stdout)
    assert info["active_version"] == 2 and sorted(v["version"] for v in info["versions"]) == [1, 2]
    cli(srv, "invoke", "js", ok=True)
    logs = json.loads(cli(srv, "logs", "js", "--json", ok=True).stdout)
    assert logs[0]["logs"] == ["hello called"] and logs[0]["status"] == 200
    assert json.loads(cli(srv, "rollback", "js", "--json", ok=True).stdout)["version"] == 1
    assert json.loads(cli(srv, "rm", "js", "--json", ok=True).stdout) == {"deleted": "js"}
    out = cli(srv, "info", "js", "--json", ok=False)
    assert out.stdout == b"" and out.stderr.decode().startswith("error: not_found: ")


def test_private_function_and_concurrency(srv: Server, modules_dir: Path) -> None:
    echo = str(modules_dir / "echo_handler.wasm")
    out = cli(srv, "deploy", "secret", echo, "--private", "--concurrency", "2", ok=True)
    assert text(out).startswith("deployed secret v1 (handler, ") and ", private)" in text(out)
    out = cli(srv, "invoke", "secret", ok=False)  # the token is not sent unless asked
    assert out.stderr.decode().startswith("error: unauthorized: function 'secret' is private")
    out = cli(srv, "invoke", "secret", "--auth", "-H", "x-a: 1", ok=True)
    seen = msgpack.unpackb(out.stdout, raw=False)
    assert ["x-a", "1"] in seen["headers"] and all(k != "authorization" for k, _ in seen["headers"])
    info = text(cli(srv, "info", "secret", ok=True))
    assert "access       private (calls need the admin token)" in info and "concurrency  2" in info
    out = cli(srv, "deploy", "secret", echo, "--public", ok=True)  # a new version, now public
    assert ", private)" not in text(out)
    assert cli(srv, "invoke", "secret", ok=True).returncode == 0
    with Client(srv.url, token=TOKEN) as client:
        assert client.set_policy("secret", private=True)["private"] is True
        assert client.invoke("secret").status_code == 401 and client.invoke("secret", auth=True).status_code == 200
        assert client.set_policy("secret", concurrency=0)["concurrency"] is None


# ---- failures of the client itself ---------------------------------------------------

def test_wrong_or_missing_token(srv: Server, modules_dir: Path) -> None:
    out = cli(srv, "ls", token="wrong-token", ok=False)
    assert out.returncode == 1 and out.stderr.decode().startswith("error: unauthorized: ")
    out = cli(srv, "deploy", "nope", str(modules_dir / "hello_handler.wasm"), token=None, ok=False)
    assert out.returncode == 1 and out.stderr.decode().startswith("error: unauthorized: ")
    # Function calls need no token, and a wrong one is not sent to them anyway.
    cli(srv, "deploy", "open", str(modules_dir / "hello_handler.wasm"), ok=True)
    assert cli(srv, "invoke", "open", token="wrong-token", ok=True).stdout == b"Hello, world!\n"


def test_unreachable_server(modules_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("ls",), ("invoke", "x"), ("deploy", "x", str(modules_dir / "hello_handler.wasm"))):
        out = cli(None, *args, url=url, ok=False)
        assert out.returncode == 1 and out.stdout == b""
        err = out.stderr.decode()
        assert err.startswith(f"error: unreachable: cannot reach wasmhost at {url}: ")
        assert "Is `wasmhost serve` running?" in err and len(err.splitlines()) == 1
    out = cli(None, "ls", "--url", "http://user:pw-secret@127.0.0.1:" + str(free_port()), ok=False)
    assert b"pw-secret" not in out.stderr and b"error: unreachable: " in out.stderr


def test_bad_input_is_reported_not_raised(srv: Server, tmp_path: Path) -> None:
    out = cli(srv, "deploy", "x", str(tmp_path / "missing.wasm"), ok=False)
    assert out.stderr.decode().startswith("error: bad_request: cannot read ")
    out = cli(srv, "deploy", "Bad_Name", __file__, ok=False)
    assert out.stderr.decode().startswith("error: bad_request: ")
    out = cli(srv, "ls", "--url", "ftp://example", ok=False)
    assert out.stderr.decode().startswith("error: invalid_url: ")


def test_client_timeout_is_clear() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with Client(url, token=TOKEN, timeout=0.3) as client, pytest.raises(ClientError) as caught:
            client.list()
    assert caught.value.code == "client_timeout"
    assert caught.value.message == f"wasmhost at {url} did not answer within 0.3 s"


def fixed_answer_module(status: int, headers: list[list[str]], body: str) -> bytes:
    """A handler module that answers `status`, `headers`, `body` to every request."""
    answer = msgpack.packb({"status": status, "headers": headers, "body": body})
    data = "".join(f"\\{b:02x}" for b in answer)
    return bytes(wasmtime.wat2wasm(f"""(module
      (memory (export "memory") 1)
      (data (i32.const 1024) "{data}")
      (global $heap (mut i32) (i32.const 4096))
      (func (export "wasmhost_alloc") (param $size i32) (result i32)
        (local $ptr i32)
        (local.set $ptr (global.get $heap))
        (global.set $heap (i32.add (local.get $ptr) (i32.and (i32.add (local.get $size) (i32.const 7))
                                                             (i32.const -8))))
        (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
        (local.get $ptr))
      (func (export "wasmhost_handle") (param i32 i32) (result i64)
        (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len(answer)}))))"""))


def test_guest_json_error_of_its_own_is_a_normal_response(srv: Server, tmp_path: Path) -> None:
    """A REST-style guest answering 404 `{"error": {"code": "not_found", ...}}` did not fail."""
    body = json.dumps({"error": {"code": "not_found", "message": "no such item"}})
    module = tmp_path / "rest.wasm"
    module.write_bytes(fixed_answer_module(404, [["content-type", "application/json"]], body))
    cli(srv, "deploy", "rest", str(module), ok=True)
    out = cli(srv, "invoke", "rest", "/items/7", ok=True)
    assert out.stdout == body.encode() and out.stderr == b""


def test_invoke_error_rule() -> None:
    def response(status: int, body: object, content_type: str = "application/json",
                 **headers: str) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=raw, headers={"content-type": content_type,
                                                            **{k.replace("_", "-"): v for k, v in headers.items()}})

    shaped = {"error": {"code": "not_found", "message": "no", "x": 1}}
    error = wasmhost_error(response(404, shaped))
    assert error is not None and (error.code, error.message, error.status) == ("not_found", "no", 404)
    assert error.details == {"x": 1}
    assert wasmhost_error(response(200, shaped)) is None
    assert wasmhost_error(response(404, b"not here\n", "text/plain")) is None
    assert wasmhost_error(response(500, {"error": "a string"})) is None
    assert wasmhost_error(response(500, {"error": {"message": "no code"}})) is None
    assert wasmhost_error(response(500, b"{not json", "application/json")) is None

    # Before any guest ran (no x-wasmhost-version): every status >= 400 is a failure.
    assert invoke_error(response(200, shaped)) is None
    failed = invoke_error(response(404, shaped))
    assert failed is not None and failed.code == "not_found"
    plain = invoke_error(response(400, b"Invalid HTTP request received.", "text/plain"))
    assert plain is not None and plain.code == "http_error"
    assert plain.message == "HTTP 400 Bad Request: Invalid HTTP request received."
    # The guest ran: its own answers are answers; the host's report of its failure is a failure.
    trap = {"error": {"code": "trap", "message": "m", "request_id": "r1"}}
    failed = invoke_error(response(502, trap, x_wasmhost_version="1", x_request_id="r1"))
    assert failed is not None and failed.code == "trap"
    assert invoke_error(response(502, trap, x_wasmhost_version="1", x_request_id="r2")) is None
    assert invoke_error(response(404, shaped, x_wasmhost_version="1", x_request_id="r1")) is None
    assert invoke_error(response(500, b"oops", "text/plain", x_wasmhost_version="1")) is None


def test_conditional_writes_from_the_client_and_cli(srv: Server, modules_dir: Path) -> None:
    """`if_version` (Client) and `--if-version` (CLI) make a write apply only while that version
    is active; otherwise `precondition_failed`, and nothing changes."""
    hello = modules_dir / "hello_handler.wasm"
    with Client(srv.url, token=TOKEN) as client:
        v1 = client.deploy("cond", hello.read_bytes())["version"]
        v2 = client.update("cond", fuel=5_000_000, if_version=v1)
        assert v2["version"] == v1 + 1 and v2["limits"]["fuel"] == 5_000_000
        with pytest.raises(ClientError) as caught:
            client.update("cond", timeout_ms=500, if_version=v1)
        assert caught.value.code == "precondition_failed" and caught.value.details["active_version"] == v2["version"]
        for stale in (lambda: client.set_policy("cond", concurrency=2, if_version=v1),
                      lambda: client.rollback("cond", if_version=v1),
                      lambda: client.delete("cond", if_version=v1),
                      lambda: client.deploy("cond", hello.read_bytes(), if_version=v1)):
            with pytest.raises(ClientError, match="changed"):
                stale()
        assert client.info("cond")["active_version"] == v2["version"]
    out = cli(srv, "deploy", "cond", str(hello), "--if-version", str(v1), ok=False)
    assert "precondition_failed" in out.stderr.decode()
    out = cli(srv, "deploy", "cond", str(hello), "--if-version", str(v2["version"]), ok=True)
    assert text(out).startswith(f"deployed cond v{v2['version'] + 1} ")
