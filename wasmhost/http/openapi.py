"""The OpenAPI 3.1 document served at /openapi.json, describing every route."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..models import ABIS

ERROR = {"$ref": "#/components/schemas/Error"}
NAME = {"name": "name", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}}
TARGET = {"name": "name", "in": "path", "required": True,
          "description": "function name, optionally pinned to a version: `hello` or `hello@3`",
          "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}(@[1-9][0-9]*)?$"}}
PATH = {"name": "path", "in": "path", "required": True, "description": "passed to the function as `path`",
        "schema": {"type": "string"}}
LIMIT_PARAMS = [
    {"name": "fuel", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "timeout_ms", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "memory_mb", "in": "query", "schema": {"type": "integer", "minimum": 1}},
]
POLICY_PARAMS = [
    {"name": "private", "in": "query", "description": "true: calls need the admin token (Authorization: Bearer)",
     "schema": {"type": "boolean"}},
    {"name": "concurrency", "in": "query", "description": "most calls of this function on worker threads at "
     "once, per worker process (0: the server default)", "schema": {"type": "integer", "minimum": 0}},
]
AUTH = [{"bearer": []}]
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": 'write only if the active version is still this one: an ETag as GET returns it ("3"), '
                           'a list of them, or "*" (the function exists); else 412 precondition_failed',
            "schema": {"type": "string"}}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "description": '"*": create the function only if it does not exist yet (else 412)',
                 "schema": {"enum": ["*"]}}
ETAG = {"ETag": {"description": 'the active version as an entity tag ("3"), for If-Match',
                 "schema": {"type": "string"}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad request or invalid module", 401: "missing or invalid admin token", 404: "not found",
            408: "the request body did not arrive in time (request_timeout)", 412: "If-Match or If-None-Match "
            "did not hold: the function changed (precondition_failed)", 413: "too large",
            502: "the function failed (trap, memory_limit, bad_response, nonzero_exit)",
            503: "overloaded (see Retry-After): no free worker, or the server's buffer budget is full",
            504: "fuel_exhausted or timeout",
            507: "the disk or the database is full; nothing was stored (storage_full)"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _invoke_operation(method: str, with_path: bool) -> dict[str, Any]:
    return {
        "summary": f"Call a function ({method.upper()})",
        "operationId": f"invoke_{method}{'_path' if with_path else ''}",
        "tags": ["functions"],
        "parameters": [TARGET] + ([PATH] if with_path else []),
        **({"requestBody": {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}
           if method in ("post", "put", "patch") else {}),
        "security": [{}, {"bearer": []}],  # a private function needs the admin token
        "responses": {"default": {"description": "whatever the function answers; Server-Timing and "
                                                 "X-Request-Id headers are always set"},
                      **_errors(400, 401, 404, 408, 413, 502, 503, 504)},
    }


INVOKE_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def build_openapi() -> dict[str, Any]:
    function_ref = {"$ref": "#/components/schemas/Function"}
    version_ref = {"$ref": "#/components/schemas/Version"}
    paths: dict[str, Any] = {
        "/v1/functions": {"get": {
            "summary": "List functions", "operationId": "list_functions", "tags": ["admin"], "security": AUTH,
            "responses": {"200": _json({"type": "object", "properties": {"functions": {"type": "array",
                                                                                      "items": function_ref}}},
                                       "functions with their active version"), **_errors(400, 401)}}},
        "/v1/functions/{name}": {
            "put": {
                "summary": "Deploy a new version (it becomes active)", "operationId": "deploy_function",
                "tags": ["admin"], "security": AUTH,
                "parameters": [NAME, *LIMIT_PARAMS, *POLICY_PARAMS,
                               {"name": "abi", "in": "query", "schema": {"enum": list(ABIS)}},
                               {"name": "entrypoint", "in": "query", "schema": {"type": "string"}},
                               IF_MATCH, IF_NONE_MATCH],
                "requestBody": {"required": True, "content": {
                    "application/wasm": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["module"], "properties": {
                        "module": {"type": "string", "format": "binary"},
                        "config": {"type": "string", "description": 'JSON: {"config": {...}, "limits": {...}, '
                                                                   '"entrypoint": "...", "abi": "...", '
                                                                   '"private": false, "concurrency": 0}'}}}}}},
                "responses": {"201": _json({"allOf": [version_ref, {"type": "object", "properties": {
                    "compile_ms": {"type": "number"}, "code_source": {"enum": ["compile", "disk"]}}}]},
                    "deployed", ETAG), **_errors(400, 401, 408, 412, 413, 503, 507)}},
            "get": {"summary": "A function with all its versions", "operationId": "get_function",
                    "tags": ["admin"], "security": AUTH, "parameters": [NAME],
                    "responses": {"200": _json(function_ref, "the function", ETAG), **_errors(400, 401, 404)}},
            "patch": {"summary": "Change limits or config (a new version, active from the next call), "
                                 "or the function's private/concurrency policy (no new version)",
                      "operationId": "update_function", "tags": ["admin"], "security": AUTH,
                      "parameters": [NAME, *LIMIT_PARAMS, *POLICY_PARAMS, IF_MATCH],
                      "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                          "limits": {"$ref": "#/components/schemas/Limits"},
                          "config": {"type": "object", "additionalProperties": {"type": "string"}},
                          "private": {"type": "boolean"}, "concurrency": {"type": "integer", "minimum": 0}}}}}},
                      "responses": {"200": _json(version_ref, "the active version", ETAG),
                                    **_errors(400, 401, 404, 408, 412, 503, 507)}},
            "delete": {"summary": "Delete a function and all its versions (its version numbers are "
                                  "not reused by a new function of that name)", "operationId": "delete_function",
                       "tags": ["admin"], "security": AUTH, "parameters": [NAME, IF_MATCH],
                       "responses": {"204": {"description": "deleted"}, **_errors(400, 401, 404, 412, 507)}},
        },
        "/v1/functions/{name}/rollback": {"post": {
            "summary": "Make an earlier version active (default: the one before the active one)",
            "operationId": "rollback_function", "tags": ["admin"], "security": AUTH,
            "parameters": [NAME, {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                           IF_MATCH],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "version": {"type": "integer", "minimum": 1}}}}}},
            "responses": {"200": _json(version_ref, "the now active version", ETAG),
                          **_errors(400, 401, 404, 408, 412, 503, 507)}}},
        "/v1/functions/{name}/logs": {"get": {
            "summary": "Recent invocations that wrote log lines or failed, with their logs, newest first", "operationId": "function_logs",
            "tags": ["admin"], "security": AUTH,
            "parameters": [NAME, {"name": "limit", "in": "query",
                                  "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                           {"name": "request_id", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object"}, "invocations"), **_errors(400, 401, 404)}}},
        "/v1/info": {"get": {"summary": "Versions, limits and engine settings", "operationId": "info",
                             "tags": ["admin"], "security": AUTH,
                             "responses": {"200": _json({"type": "object"}, "server information"), **_errors(400, 401)}}},
        "/healthz": {"get": {"summary": "The process answers", "operationId": "healthz", "tags": ["ops"],
                             "responses": {"200": _json({"type": "object"}, "ok")}}},
        "/readyz": {"get": {"summary": "Engine up and data directory writable", "operationId": "readyz",
                            "tags": ["ops"], "responses": {"200": _json({"type": "object"}, "ready"),
                                                           "503": _json({"type": "object"}, "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "tags": ["ops"],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "tags": ["ops"],
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
        "/fn/{name}": {m: _invoke_operation(m, False) for m in INVOKE_METHODS},
        "/fn/{name}/{path}": {m: _invoke_operation(m, True) for m in INVOKE_METHODS},
    }
    limits_schema = {"type": "object", "properties": {k: {"type": "integer", "minimum": 1}
                                                     for k in ("fuel", "timeout_ms", "memory_mb")}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "wasmhost", "version": __version__,
                 "description": "Serverless host for WebAssembly functions: deploy modules, call them over HTTP."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                   "request_id": {"type": "string"}}}}},
                "Limits": limits_schema,
                "Version": {"type": "object", "properties": {
                    "name": {"type": "string"}, "version": {"type": "integer"}, "digest": {"type": "string"},
                    "size": {"type": "integer"}, "abi": {"enum": list(ABIS)},
                    "imports": {"type": "array", "items": {"type": "string"}},
                    "exports": {"type": "array", "items": {"type": "string"}},
                    "limits": limits_schema, "config": {"type": "object"},
                    "entrypoint": {"type": ["string", "null"]}, "routes": {"type": "array"},
                    "created_at": {"type": "number"}, "private": {"type": "boolean"},
                    "concurrency": {"type": ["integer", "null"]}}},
                "Function": {"type": "object", "properties": {
                    "name": {"type": "string"}, "active_version": {"type": "integer"},
                    "private": {"type": "boolean"}, "concurrency": {"type": ["integer", "null"]},
                    "active": {"$ref": "#/components/schemas/Version"},
                    "versions": {"type": "array", "items": {"$ref": "#/components/schemas/Version"}},
                    "created_at": {"type": "number"}, "updated_at": {"type": "number"}}},
            },
        },
    }
