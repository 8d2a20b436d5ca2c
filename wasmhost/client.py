"""A small synchronous client for a wasmhost server's HTTP API (httpx).

    client = Client()                      # $WASMHOST_URL or http://127.0.0.1:8000, $WASMHOST_ADMIN_TOKEN
    client.deploy("hello", wasm, fuel=10**8, config={"GREETING": "hi"})
    client.invoke("hello", "/a/b", method="POST", data=b"x").content

Admin calls (`/v1/...`) answer JSON or raise `ClientError` carrying the server's
error `code` and `message`; a host that cannot be reached, a timeout or an answer
that is not wasmhost's raise `ClientError` too, with codes of their own
(`unreachable`, `client_timeout`, `connection_error`, `invalid_url`,
`unexpected_response`). `invoke` never raises for an HTTP status: it returns the
response, and `invoke_error(response)` says whether the call failed (as opposed to the
function answering an error status of its own).

The admin token is sent to `/v1/...` routes, and to a function only when asked
(`invoke(..., auth=True)`, for a private function): the server removes a header
carrying its own token before the guest sees the request, but a token that is not
this server's would reach the guest. It never appears in an error message.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from . import __version__
from .errors import WasmhostError

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "WASMHOST_URL"
TOKEN_ENV = "WASMHOST_ADMIN_TOKEN"
TOKEN_FILE_ENV = "WASMHOST_ADMIN_TOKEN_FILE"
LIMIT_KEYS = ("fuel", "timeout_ms", "memory_mb")


class ClientError(WasmhostError):
    """A failed call: the server's error (`code`, `message`, HTTP `status`, `details`), or one of
    the client's own (`unreachable`, `client_timeout`, ...; `status` is then None)."""

    def __init__(self, code: str, message: str, status: int | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, **dict(details or {}))
        self.code = code  # type: ignore[misc]  # an instance value: whatever the server said
        self.status = status

    def __repr__(self) -> str:
        return f"ClientError({self.code!r}, {self.message!r}, status={self.status!r})"


def default_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """$WASMHOST_ADMIN_TOKEN, else the contents of the file named by $WASMHOST_ADMIN_TOKEN_FILE."""
    token = environ.get(TOKEN_ENV, "").strip()
    path = environ.get(TOKEN_FILE_ENV, "").strip()
    if not token and path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ClientError("bad_request", f"cannot read ${TOKEN_FILE_ENV} ({path}): {exc.strerror}") from None
    return token or None


def safe_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _if_match(version: int | None) -> dict[str, str]:
    """The If-Match header that makes a write conditional on `version` being active."""
    return {} if version is None else {"if-match": f'"{int(version)}"'}


def wasmhost_error(response: httpx.Response) -> ClientError | None:
    """The error a response carries in wasmhost's shape, or None: status >= 400, content type
    application/json, and a JSON object whose "error" is an object with a string "code"."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return None
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    return ClientError(error["code"], str(error.get("message", "")), response.status_code, details)


def invoke_error(response: httpx.Response) -> ClientError | None:
    """Whether a function call failed (not: whether the function answered an error status).

    - Status below 400: never.
    - The guest ran (the server sets `x-wasmhost-version` on everything a guest answered and on
      every guest failure): a failure only when the body is in wasmhost's error shape AND its
      `request_id` is this response's `x-request-id`, which is how the host reports a trap, fuel,
      timeout, bad response... A guest's own 4xx/5xx, even a JSON `{"error": {"code": ...}}` of
      its own, is its answer. (A guest that copies the request id into exactly that shape would
      be taken for a failure; it can only know the id when the caller sent `x-request-id`.)
    - No guest ran (no such function or version, overloaded, request too large, a bad method,
      or something in front of wasmhost answered): always a failure; `http_error` when the
      body is not in wasmhost's shape.
    """
    if response.status_code < 400:
        return None
    error = wasmhost_error(response)
    if "x-wasmhost-version" in response.headers:
        request_id = response.headers.get("x-request-id")
        if error is not None and request_id and error.details.get("request_id") == request_id:
            return error
        return None
    if error is not None:
        return error
    snippet = response.content[:200].decode("utf-8", "replace").strip()
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    return ClientError("http_error", f"HTTP {response.status_code}{reason}" + (f": {snippet}" if snippet else ""),
                       response.status_code)


def _reason(exc: Exception) -> str:
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text or type(exc).__name__


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60) -> None:
        self.url = (url or os.environ.get(URL_ENV, "").strip() or DEFAULT_URL).rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        self.token = token if token is not None else default_token()
        self.timeout = timeout
        try:
            self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False,
                                      headers={"user-agent": f"wasmhost-cli/{__version__}"})
        except (httpx.InvalidURL, ValueError) as exc:
            raise ClientError("invalid_url", f"invalid wasmhost URL {safe_url(self.url)!r}: {exc}") from None

    # ---- transport ------------------------------------------------------------------

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send and read the whole body as received (no Content-Encoding decoding)."""
        where = safe_url(self.url)
        try:
            response = self._http.send(request, stream=True)
            try:
                raw = b"".join(response.iter_raw())
            finally:
                response.close()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ClientError("unreachable", f"cannot reach wasmhost at {where}: {_reason(exc)}. "
                              "Is `wasmhost serve` running?") from None
        except httpx.TimeoutException:
            raise ClientError("client_timeout", f"wasmhost at {where} did not answer within "
                              f"{self.timeout:g} s") from None
        except httpx.UnsupportedProtocol as exc:
            raise ClientError("invalid_url", f"invalid wasmhost URL {where!r}: {_reason(exc)}") from None
        except httpx.TransportError as exc:
            raise ClientError("connection_error", f"the connection to wasmhost at {where} failed: "
                              f"{_reason(exc)}") from None
        # The bytes exactly as the server sent them. httpx would otherwise decode a body the
        # guest marked with Content-Encoding; `invoke` promises the body untouched.
        response._content = raw
        return response

    def _admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        try:
            request = self._http.build_request(method, path, headers=headers, **kwargs)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ClientError("invalid_url", f"invalid wasmhost URL {safe_url(self.url)!r}: {exc}") from None
        response = self._send(request)
        if response.status_code >= 400:
            raise wasmhost_error(response) or self._unexpected(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._admin(method, path, **kwargs)
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise self._unexpected(response) from None

    def _unexpected(self, response: httpx.Response) -> ClientError:
        snippet = response.content[:200].decode("utf-8", "replace").strip()
        return ClientError("unexpected_response",
                           f"{safe_url(self.url)} answered HTTP {response.status_code} with something that is not "
                           f"a wasmhost answer ({snippet!r}); is the URL right?", response.status_code)

    @staticmethod
    def _fn(name: str) -> str:
        return "/v1/functions/" + quote(name, safe="")

    # ---- admin API ------------------------------------------------------------------

    def deploy(self, name: str, wasm: bytes, *, fuel: int | None = None, timeout_ms: int | None = None,
               memory_mb: int | None = None, config: dict[str, str] | None = None, abi: str | None = None,
               entrypoint: str | None = None, private: bool | None = None,
               concurrency: int | None = None, if_version: int | None = None) -> dict[str, Any]:
        """Upload a new version (it becomes active). Returns the version with `compile_ms` and
        `code_source`. Raw `application/wasm` when there is only limits, multipart otherwise.
        `private`/`concurrency` set the function's policy (None: keep it). `if_version`: only if
        that is still the active version (else ClientError `precondition_failed`, 412)."""
        expect = _if_match(if_version)
        limits = {k: v for k, v in zip(LIMIT_KEYS, (fuel, timeout_ms, memory_mb)) if v is not None}
        if private is not None:
            limits["private"] = "true" if private else "false"
        if concurrency is not None:
            limits["concurrency"] = concurrency
        if config is None and abi is None and entrypoint is None:
            return self._json("PUT", self._fn(name), content=wasm, params=limits,
                              headers={"content-type": "application/wasm", **expect})
        options: dict[str, Any] = {"config": config or {}, "limits": limits}
        if entrypoint is not None:
            options["entrypoint"] = entrypoint
        if abi is not None:
            options["abi"] = abi
        policy = {k: limits.pop(k) for k in ("private", "concurrency") if k in limits}
        return self._json("PUT", self._fn(name), data={"config": json.dumps(options)}, params=policy,
                          files={"module": (f"{name}.wasm", wasm, "application/wasm")}, headers=expect)

    def update(self, name: str, *, fuel: int | None = None, timeout_ms: int | None = None,
               memory_mb: int | None = None, config: dict[str, str] | None = None,
               if_version: int | None = None) -> dict[str, Any]:
        """New limits and/or config as a new version; limits not given keep their values.
        Returns the new version."""
        body: dict[str, Any] = {k: v for k, v in zip(LIMIT_KEYS, (fuel, timeout_ms, memory_mb)) if v is not None}
        if config is not None:
            body["config"] = config
        return dict(self._json("PATCH", self._fn(name), json=body, headers=_if_match(if_version)))

    def set_policy(self, name: str, *, private: bool | None = None,
                   concurrency: int | None = None, if_version: int | None = None) -> dict[str, Any]:
        """Make a function private or public, or set how many of its calls may run at once
        (0: the server default). No new version. Returns the active version."""
        body = {k: v for k, v in (("private", private), ("concurrency", concurrency)) if v is not None}
        return dict(self._json("PATCH", self._fn(name), json=body, headers=_if_match(if_version)))

    def list(self) -> list[dict[str, Any]]:
        """Every function with its active version (no version history)."""
        return list(self._json("GET", "/v1/functions").get("functions", []))

    def info(self, name: str) -> dict[str, Any]:
        """One function: `active_version`, `active`, `versions` (all of them), times."""
        return dict(self._json("GET", self._fn(name)))

    def delete(self, name: str, if_version: int | None = None) -> None:
        self._admin("DELETE", self._fn(name), headers=_if_match(if_version))

    def rollback(self, name: str, version: int | None = None, if_version: int | None = None) -> dict[str, Any]:
        """Make `version` active (None: the one before the active one). Returns that version."""
        body = {} if version is None else {"version": version}
        return dict(self._json("POST", self._fn(name) + "/rollback", json=body, headers=_if_match(if_version)))

    def logs(self, name: str, limit: int = 20, request_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Recent invocations of `name`, newest first, each with its log lines."""
        params: dict[str, Any] = {"limit": limit}
        if request_id:
            params["request_id"] = request_id
        return list(self._json("GET", self._fn(name) + "/logs", params=params).get("invocations", []))

    def server_info(self) -> dict[str, Any]:
        """Version, engine, default and maximum limits, sizes, concurrency, cache."""
        return dict(self._json("GET", "/v1/info"))

    # ---- function calls -------------------------------------------------------------

    def invoke(self, name: str, path: str = "", *, method: str = "GET", data: bytes = b"",
               headers: Iterable[tuple[str, str]] = (), query: str = "", auth: bool = False) -> httpx.Response:
        """Call `/fn/<name><path>[?query]` (`name` may be `hello@3` to pin a version). Returns the
        response whatever its status; `.content` is the body exactly as sent. Only the headers
        given (plus Host, User-Agent, Accept, Content-Length) reach the function: no admin token
        (`auth=True` sends it for a private function; the server strips it), and no
        Accept-Encoding unless given."""
        if path and not path.startswith("/"):
            path = "/" + path
        target = "/fn/" + quote(name, safe="@") + path + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in headers]
        if auth and self.token:
            headers.append(("authorization", f"Bearer {self.token}"))
        try:
            request = self._http.build_request(method.upper(), target, content=data or None, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ClientError("invalid_url", f"invalid URL for {name!r}: {exc}") from None
        if not any(k.lower() == "accept-encoding" for k, _ in headers):
            del request.headers["accept-encoding"]  # as curl: the guest sees only what was asked
        return self._send(request)

    # ---- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
