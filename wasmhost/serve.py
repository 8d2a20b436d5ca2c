"""`wasmhost serve`: checks, optional example deploys, then uvicorn.

Settings reach the worker processes through WASMHOST_* environment variables,
which is also how uvicorn's own multi-process mode expects its factory to work.
The token itself is never put into the environment by us: a --token-file is
passed on by its path.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from .errors import BadRequest, WasmhostError

EXAMPLE_NAMES = {"hello_handler": "hello", "hello_wagi": "hello-wagi", "echo_handler": "echo",
                 "cpu_loop": "cpu-loop", "wagi_env": "wagi-env", "wagi_routes": "wagi-routes",
                 "wagi_status": "wagi-status", "wasi_handler": "wasi-handler", "hello_nolog": "hello-nolog"}
EXAMPLE_LIMITS = {"cpu_loop": {"fuel": 1_000_000_000}}
EXAMPLE_CALLS = {  # how to call an SDK example usefully, when a plain GET is not it
    "c-router": "BASE/fn/c-router/users/42/posts/7",
    "c-sha256": "--data-binary 'hello' BASE/fn/c-sha256",
    "zig-markdown": "--data-binary '# Hello *world*' BASE/fn/zig-markdown",
    "zig-echo": "-X PUT --data-binary 'hi' 'BASE/fn/zig-echo/some/path?q=1'",
    "rust-json-api": "-i -H 'content-type: application/json' --data-binary '{\"name\": \"pen\", \"qty\": 2}' BASE/fn/rust-json-api/items",
    "rust-echo": "-X POST --data-binary 'hi' 'BASE/fn/rust-echo/a/b?x=1'",
    "as-echo": "-X POST --data-binary 'hi' 'BASE/fn/as-echo/a/b?x=1'",
}
# uvicorn's httptools protocol with limits on the request head (http/protocol.py); passed by
# name so that uvicorn's worker processes import it themselves.
HTTP_PROTOCOL = "wasmhost.http.protocol:LimitedHttpToolsProtocol"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def deploy_examples(directory: Path) -> list[str]:
    """Deploy the WAT examples built in `directory` and the SDK examples committed in
    `modules/wasm/` beside it (`c-router.wasm` → `c-router`); returns the names."""
    from .host import Host
    from .settings import Settings

    if not directory.is_dir():
        raise BadRequest(f"no example modules in {directory}: run `make wat` first")
    deployed = []
    with Host(Settings.from_env()) as host:
        for stem, name in EXAMPLE_NAMES.items():
            path = directory / f"{stem}.wasm"
            if path.exists():
                host.deploy(name, path.read_bytes(), limits=EXAMPLE_LIMITS.get(stem))
                deployed.append(name)
        sdk_examples = directory.parent / "wasm"
        for path in sorted(sdk_examples.glob("*.wasm")) if sdk_examples.is_dir() else ():
            name = path.stem.replace("_", "-").lower()
            try:
                host.deploy(name, path.read_bytes(), limits={"fuel": 2_000_000_000})
                deployed.append(name)
            except WasmhostError as exc:  # one bad example must not keep the server from starting
                print(f"warning: example {path.name} not deployed: {exc.code}: {exc.message}", file=sys.stderr)
    return deployed


def collect_garbage() -> None:
    """Once at start-up: what deleted functions and crashes left on disk."""
    from .host import Host
    from .settings import Settings

    with Host(Settings.from_env()) as host:
        host.collect_garbage()


def print_welcome(base: str, names: list[str], token: bool) -> None:
    auth = ' -H "Authorization: Bearer $WASMHOST_ADMIN_TOKEN"' if token else ""
    lines = [f"wasmhost is serving on {base}", ""]
    if names:
        lines.append("Call the example functions:")
        for name in names:
            if name == "echo":
                lines.append(f"  curl -s -X POST --data-binary 'hello' {base}/fn/echo | od -c | head")
            elif name == "wagi-routes":
                lines.append(f"  curl -i {base}/fn/wagi-routes/hello")
            elif name in EXAMPLE_CALLS:
                lines.append(f"  curl -s {EXAMPLE_CALLS[name]}".replace("BASE", base))
            else:
                lines.append(f"  curl -i {base}/fn/{name}")
    lines += ["", "Deploy your own:",
              f"  curl -X PUT{auth} -H 'Content-Type: application/wasm' --data-binary @my.wasm {base}/v1/functions/my-fn",
              f"  curl{auth} {base}/v1/functions",
              f"  curl {base}/metrics | grep wasmhost_invocations", ""]
    print("\n".join(lines), flush=True)


def serve(*, host: str, port: int, data: Path | None, workers: int, token_file: Path | None,
          insecure: bool, examples: Path | None, log_level: str) -> int:
    from .settings import Settings

    if workers < 1:
        raise BadRequest("--workers must be at least 1")
    if token_file is not None:  # a file given here wins over a token in the environment
        settings = Settings.from_env(data_dir=data, admin_token_file=token_file.resolve())
        settings = replace(settings, admin_token=None)
    else:
        settings = Settings.from_env(data_dir=data)
    token = settings.token()
    if not token and not is_loopback(host) and not insecure:
        raise BadRequest(f"refusing to serve on {host} without an admin token: anyone could deploy code. "
                         "Set WASMHOST_ADMIN_TOKEN or --token-file, or pass --insecure")
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # uvicorn's workers build their own Settings from the environment (create_app_from_env):
    # what this command was given goes there (the token file by its path, never the token).
    os.environ["WASMHOST_DATA"] = str(data_dir)
    if settings.admin_token_file is not None and token_file is not None:
        os.environ["WASMHOST_ADMIN_TOKEN_FILE"] = str(settings.admin_token_file)
        os.environ.pop("WASMHOST_ADMIN_TOKEN", None)
    if workers > 1:  # one metrics view across worker processes
        metrics_dir = data_dir / ".metrics" / str(os.getpid())
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    collect_garbage()
    names = deploy_examples(examples) if examples is not None else []

    import uvicorn

    display = f"[{host}]" if ":" in host else host
    print_welcome(f"http://{display}:{port}", names, bool(token))
    try:
        uvicorn.run("wasmhost.http.app:create_app_from_env", factory=True, host=host, port=port,
                    workers=workers, loop="uvloop", http=HTTP_PROTOCOL, log_level=log_level,
                    access_log=False, timeout_graceful_shutdown=10, server_header=False)
    finally:
        if workers > 1:
            shutil.rmtree(data_dir / ".metrics" / str(os.getpid()), ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    try:
        sys.exit(serve(host="127.0.0.1", port=8000, data=None, workers=1, token_file=None, insecure=False,
                       examples=None, log_level="info"))
    except WasmhostError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        sys.exit(2)
