"""The admin API: `/v1/functions` (deploy, list, get, patch, rollback, delete, logs).

Deploys compile modules (up to seconds for a large one), so they and every other
registry write run on Starlette's thread pool, never on the event loop.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import BadRequest, TooLarge
from ..host import Host
from ..store.logs import LogStore
from ..models import Expect
from ..inputs import validate_name
from .auth import AdminAuth
from .buffers import BufferBudget
from .deadlines import Deadlines
from .bodies import DIGITS, read_body
from .metrics import Metrics

LIMIT_KEYS = ("fuel", "timeout_ms", "memory_mb")
MAX_JSON_BYTES = 256 * 1024
RAW_WASM_TYPES = ("application/wasm", "application/octet-stream", "")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members, refusing a name given twice (RFC 8259 §4: names SHOULD be unique;
    `{"fuel": 1, "fuel": 9}` would otherwise mean whichever came last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise BadRequest(f"{what} gives {str(exc)[:40]!r} more than once") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    try:  # a "\ud800" escape decodes to a lone surrogate: not text that UTF-8 (or WASI) can carry
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} has a string with a lone surrogate escape (\\ud800-\\udfff), "
                         "which is not valid Unicode text") from None
    return value


def _query(request: Request) -> dict[str, str]:
    """The query parameters, each at most once: a repeated one (`?fuel=1&fuel=9`) is refused
    rather than letting one of its values win silently."""
    items = request.query_params.multi_items()
    params = dict(items)
    if len(params) != len(items):
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise BadRequest(f"query parameter {key[:40]!r} is given more than once; give it once")
            seen.add(key)
    return params


# RFC 9110 §8.8.3 entity-tag: [W/] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_ETAG = re.compile(rb'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)')
_BARE_VERSION = re.compile(rb"[ \t]*([0-9]{1,18})[ \t]*(?:,|$)")


def etag(version: int) -> str:
    """A function's ETag: its active version, which every change of code, limits or config
    moves (numbers are never reused, not even after a delete)."""
    return f'"{version}"'


def _expect_from(request: Request) -> Expect | None:
    """If-Match / If-None-Match as a precondition for a write (RFC 9110 §13.1.1-2).

    If-Match takes `*` or a list of ETags (`"3"`, as GET returns; a bare version number `3` is
    accepted too); weak tags never match (strong comparison). If-None-Match takes only `*`
    (create, don't replace). A header that cannot be read is 400, not ignored.
    """
    if_match = b",".join(v for k, v in request.scope["headers"] if k == b"if-match")
    if_none = b",".join(v for k, v in request.scope["headers"] if k == b"if-none-match")
    if not if_match and not if_none:
        return None
    if if_none:
        if if_match:
            raise BadRequest("give If-Match or If-None-Match, not both")
        if if_none.strip() != b"*":
            raise BadRequest('If-None-Match takes only "*" here (create the function only if it does not exist)')
        return Expect(exists=False)
    if if_match.strip() == b"*":
        return Expect(exists=True)
    versions: set[int] = set()
    at = 0
    while at < len(if_match):
        match = _ETAG.match(if_match, at) or _BARE_VERSION.match(if_match, at)
        if match is None or match.end() == at:
            raise BadRequest('If-Match must be "*" or ETags such as "3" (the active version, as GET shows it)')
        if match.re is _BARE_VERSION:
            versions.add(int(match.group(1)))
        elif match.group(1) is None and _BARE_VERSION.fullmatch(match.group(2)):  # weak tags never match
            versions.add(int(match.group(2)))
        at = match.end()
    return Expect(versions=frozenset(versions))


def _limits_from(query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """Limits from query parameters, then from the JSON (top level or under "limits"), which win."""
    limits: dict[str, Any] = {k: query[k] for k in LIMIT_KEYS if k in query}
    nested = body.get("limits") or {}
    if not isinstance(nested, dict):
        raise BadRequest('"limits" must be an object with fuel, timeout_ms and/or memory_mb')
    unknown = set(nested) - set(LIMIT_KEYS)
    if unknown:
        raise BadRequest(f"unknown limits {sorted(unknown)}; known limits are {', '.join(LIMIT_KEYS)}")
    limits.update({k: body[k] for k in LIMIT_KEYS if k in body})
    limits.update(nested)
    return limits


def _policy_from(query: Mapping[str, str], body: Mapping[str, Any]) -> tuple[bool | None, int | None]:
    """`private` and `concurrency` from the JSON, else from query parameters; None when absent."""
    private: Any = body.get("private", query.get("private"))
    if isinstance(private, str):
        private = {"true": True, "1": True, "false": False, "0": False}.get(private.strip().lower(), private)
    if private is not None and type(private) is not bool:
        raise BadRequest(f"private must be true or false, got {private!r}"[:120])
    concurrency: Any = body.get("concurrency", query.get("concurrency"))
    if isinstance(concurrency, str):  # from the query: text to a number; its bounds are the Host's
        if not DIGITS.fullmatch(concurrency):
            raise BadRequest(f"concurrency must be a non-negative integer, got {concurrency!r}"[:120])
        concurrency = int(concurrency)
    return private, concurrency


def _config_from(body: Mapping[str, Any]) -> dict[str, Any] | None:
    config = body.get("config", body.get("env"))
    if config is not None and not isinstance(config, dict):
        raise BadRequest('"config" must be an object of string variables')
    return config


class AdminApi:
    def __init__(self, host: Host, auth: AdminAuth, metrics: Metrics, logs: LogStore, buffers: BufferBudget,
                 deadlines: Deadlines) -> None:
        self.host = host
        self.buffers = buffers
        self.deadlines = deadlines
        self.auth = auth
        self.metrics = metrics
        self.logs = logs
        # Uploads may be large and come over slow links: ten body deadlines (5 min by default).
        self.upload_timeout_s = host.settings.body_timeout_s * 10

    def _policy(self, query: Mapping[str, str], body: Mapping[str, Any]) -> tuple[bool | None, int | None]:
        """The policy a request asks for (its bounds are the Host's to check)."""
        private, concurrency = _policy_from(query, body)
        if private and not self.auth.enabled:
            raise BadRequest("a private function needs a token to call it, and this server has no admin token: "
                             "start it with WASMHOST_ADMIN_TOKEN or --token-file")
        return private, concurrency

    async def deploy(self, request: Request) -> Response:
        self.auth.check(request)
        name = validate_name(request.path_params["name"])
        query = _query(request)
        wasm, options, held = await self._read_upload(request)
        try:
            return await self._deploy(request, name, query, wasm, options)
        finally:
            self.buffers.give(held)  # the upload's bytes, held until the deploy is done with them

    async def _deploy(self, request: Request, name: str, query: dict[str, str], wasm: bytes,
                      options: dict[str, Any]) -> Response:
        limits = _limits_from(query, options)
        abi = options.get("abi", query.get("abi"))
        entrypoint = options.get("entrypoint", query.get("entrypoint"))
        for key, value in (("abi", abi), ("entrypoint", entrypoint)):
            if value is not None and not isinstance(value, str):
                raise BadRequest(f'"{key}" must be a string')
        private, concurrency = self._policy(query, options)
        expect = _expect_from(request)
        try:
            deployment = await run_in_threadpool(
                self.host.deploy, name, wasm, limits=limits, config=_config_from(options),
                abi=abi, entrypoint=entrypoint, private=private, concurrency=concurrency, expect=expect)
        except Exception:
            self.metrics.deploys.labels("refused").inc()
            raise
        self.metrics.deploys.labels("ok").inc()
        self.metrics.compile_seconds.inc(deployment.compile_seconds)
        return JSONResponse(deployment.to_dict(), status_code=201,
                            headers={"location": f"/v1/functions/{name}", "etag": etag(deployment.version.version)})

    async def _read_upload(self, request: Request) -> tuple[bytes, dict[str, Any], int]:
        """Raw `application/wasm`, or multipart with a `module` file and an optional `config` JSON
        part; and how many bytes that holds in the buffer budget (the caller gives them back)."""
        limit = self.host.settings.max_module_bytes
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in RAW_WASM_TYPES:
            wasm = await read_body(request, limit, self.upload_timeout_s, self.buffers, self.deadlines)
            return wasm, {}, len(wasm)
        if content_type != "multipart/form-data":
            raise BadRequest(f"unsupported content type {content_type!r}: send application/wasm, or "
                             "multipart/form-data with a 'module' file and an optional 'config' JSON part")
        body = await read_body(request, limit + MAX_JSON_BYTES, self.upload_timeout_s, self.buffers, self.deadlines)
        try:
            wasm, options = await self._parse_multipart(request, body, limit)
        except BaseException:
            self.buffers.give(len(body))
            raise
        return wasm, options, len(body)

    async def _parse_multipart(self, request: Request, body: bytes, limit: int) -> tuple[bytes, dict[str, Any]]:

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        # Two files at most: `module`, and `config` when a client sends it as a file part.
        form = await Request(request.scope, replay).form(max_files=2, max_fields=4, max_part_size=MAX_JSON_BYTES)
        try:
            module = form.get("module")
            if not isinstance(module, UploadFile):
                raise BadRequest("multipart upload needs a file part named 'module'")
            wasm = await module.read()
            if len(wasm) > limit:
                raise TooLarge(f"module of {len(wasm)} bytes exceeds the limit of {limit} bytes", limit=limit)
            config = form.get("config")
            if isinstance(config, UploadFile):
                config = (await config.read(MAX_JSON_BYTES + 1)).decode("utf-8", "replace")
            return wasm, _json_object(config or "", "the 'config' part")
        finally:
            await form.close()

    async def list(self, request: Request) -> Response:
        self.auth.check(request)
        infos = await run_in_threadpool(self.host.list)
        return JSONResponse({"functions": [info.to_dict(with_versions=False) for info in infos]})

    async def get(self, request: Request) -> Response:
        self.auth.check(request)
        info = await run_in_threadpool(self.host.get, request.path_params["name"])
        return JSONResponse(info.to_dict(), headers={"etag": etag(info.active.version)})

    async def patch(self, request: Request) -> Response:
        self.auth.check(request)
        name = validate_name(request.path_params["name"])
        query = _query(request)
        body = _json_object(await self._json_body(request), "the request body")
        limits = _limits_from(query, body)
        config = _config_from(body)
        private, concurrency = self._policy(query, body)
        expect = _expect_from(request)
        if not limits and config is None and private is None and concurrency is None:
            raise BadRequest("nothing to update: give limits, config, private or concurrency")
        # One write: limits not named keep their values in the version active when it commits.
        version = await run_in_threadpool(
            lambda: self.host.update(name, limits=limits or None, config=config, private=private,
                                     concurrency=concurrency, expect=expect))
        return JSONResponse(version.to_dict(), headers={"etag": etag(version.version)})

    async def _json_body(self, request: Request) -> bytes:
        body = await read_body(request, MAX_JSON_BYTES, self.host.settings.body_timeout_s, self.buffers,
                               self.deadlines)
        self.buffers.give(len(body))  # parsed at once, and never more than MAX_JSON_BYTES
        return body

    async def rollback(self, request: Request) -> Response:
        self.auth.check(request)
        name = validate_name(request.path_params["name"])
        query = _query(request)
        body = _json_object(await self._json_body(request), "the request body")
        raw = body.get("version", query.get("version"))
        version: int | None = None
        if raw is not None:
            if isinstance(raw, bool) or not DIGITS.fullmatch(str(raw)) or int(raw) < 1:
                raise BadRequest(f"version must be a positive integer, got {raw!r}"[:120])
            version = int(raw)
        fv = await run_in_threadpool(self.host.rollback, name, version, _expect_from(request))
        return JSONResponse(fv.to_dict(), headers={"etag": etag(fv.version)})

    async def delete(self, request: Request) -> Response:
        self.auth.check(request)
        name = validate_name(request.path_params["name"])
        await run_in_threadpool(self.host.delete, name, _expect_from(request))
        await run_in_threadpool(self.logs.forget, name)
        return Response(status_code=204)

    async def invocation_logs(self, request: Request) -> Response:
        self.auth.check(request)
        name = validate_name(request.path_params["name"])
        query = _query(request)
        raw_limit = query.get("limit", "50")
        if not DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= 1000:
            raise BadRequest("limit must be an integer from 1 to 1000")
        await run_in_threadpool(self.host.get, name)  # 404 for an unknown function
        records = await run_in_threadpool(self.logs.recent, name, int(raw_limit),
                                          query.get("request_id"))
        return JSONResponse({"function": name, "invocations": [r.to_dict() for r in records]})

    async def info(self, request: Request) -> Response:
        self.auth.check(request)
        info = self.host.info()
        info["auth"] = {"admin_token": self.auth.enabled}
        return JSONResponse(info)
