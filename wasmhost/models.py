"""Plain values that cross layers (HTTP ↔ host ↔ sandbox ↔ registry).

They are frozen data classes so that a value handed to a worker thread cannot be
changed under it, and so that every layer agrees on one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Abi = Literal["handler", "wagi"]
ABIS: tuple[str, ...] = get_args(Abi)  # the guest interfaces, for choices and schemas
Tier = Literal["memory", "disk", "compile"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-function execution limits (guest-sdk/ABI.md §3)."""

    fuel: int
    timeout_ms: int
    memory_mb: int

    def to_dict(self) -> dict[str, int]:
        return {"fuel": self.fuel, "timeout_ms": self.timeout_ms, "memory_mb": self.memory_mb}


@dataclass(slots=True)  # not frozen: built on every call, and a frozen __init__ is slow (bench/design-figures.md: request-init)
class Request:
    """An HTTP request as a function sees it.

    `path` is the part after the function's own prefix (always starts with "/");
    `script_name` is that prefix (e.g. "/fn/hello"), which WAGI calls SCRIPT_NAME.
    Header names are lower-case; repeated headers are kept in order.
    """

    method: str = "GET"
    path: str = "/"
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    script_name: str = ""
    scheme: str = "http"
    server_name: str = "localhost"
    server_port: int = 80
    remote_addr: str = "127.0.0.1"
    http_version: str = "1.1"

    def header(self, name: str) -> str | None:
        """First value of a header, by case-insensitive name."""
        lname = name.lower()
        for key, value in self.headers:
            if key == lname:
                return value
        return None


@dataclass(slots=True)
class Response:
    """What a function answered: status, headers (repeats kept, order kept), body."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Route:
    """A WAGI sub-route declared by a module's `_routes` export."""

    path: str  # "/" + subpath, without the "/..." suffix
    export: str
    prefix: bool  # True when declared with a trailing "/..."


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """One immutable uploaded version of a function."""

    name: str
    version: int
    digest: str  # sha256 hex of the module bytes
    size: int
    abi: Abi
    imports: tuple[str, ...]  # "module.name"
    exports: tuple[str, ...]
    limits: Limits
    config: dict[str, str] = field(default_factory=dict)
    entrypoint: str | None = None  # WAGI: export run instead of _start
    routes: tuple[Route, ...] = ()
    created_at: float = 0.0  # unix seconds
    # The function's access policy, the same for all its versions (a rollback never changes
    # who may call a function): read with the version so a call needs one lookup.
    private: bool = False  # calls need a token
    concurrency: int = 0  # most calls of this function on worker threads at once (0: server default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "size": self.size,
            "abi": self.abi,
            "imports": list(self.imports),
            "exports": list(self.exports),
            "limits": self.limits.to_dict(),
            "config": dict(self.config),
            "entrypoint": self.entrypoint,
            "routes": [{"path": r.path, "export": r.export, "prefix": r.prefix} for r in self.routes],
            "created_at": self.created_at,
            "private": self.private,
            "concurrency": self.concurrency or None,
        }


@dataclass(frozen=True, slots=True)
class Expect:
    """What a write expects of a function when it commits (HTTP If-Match / If-None-Match), so
    that a read-modify-write cannot silently undo another client's change made in between.

    `versions`: one of these must be the active version (If-Match: "3"); `exists`: True, the
    function must exist (If-Match: *); False, it must not (If-None-Match: *).
    """

    versions: frozenset[int] | None = None
    exists: bool | None = None

    def allows(self, active: int | None) -> bool:
        """Whether a write may go ahead when `active` is the active version (None: no function)."""
        if self.exists is not None and self.exists != (active is not None):
            return False
        return self.versions is None or active in self.versions


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A function: its name, the active version and every version it has."""

    name: str
    active: FunctionVersion
    versions: tuple[FunctionVersion, ...]
    created_at: float
    updated_at: float

    def to_dict(self, with_versions: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "active_version": self.active.version,
            "private": self.active.private,
            "concurrency": self.active.concurrency or None,
            "active": self.active.to_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if with_versions:
            out["versions"] = [v.to_dict() for v in self.versions]
        return out


@dataclass(slots=True)
class Timings:
    """Where one invocation's time went, in seconds."""

    load: float = 0.0  # compile or deserialize or memory lookup
    instantiate: float = 0.0
    run: float = 0.0
    total: float = 0.0


@dataclass(slots=True)
class Invocation:
    """The outcome of one call: a response or a classified error, plus what it cost."""

    function: str
    version: int
    tier: Tier
    timings: Timings
    response: Response | None = None
    error: Exception | None = None  # a wasmhost.errors.WasmhostError
    fuel_used: int = 0
    logs: list[str] = field(default_factory=list)
    logs_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Deployment:
    """The answer to a deploy: the new version and what preparing it cost."""

    version: FunctionVersion
    compile_seconds: float  # 0.0 when an artifact for these bytes already existed
    tier: Tier  # where the compiled code came from at deploy

    def to_dict(self) -> dict[str, Any]:
        return {**self.version.to_dict(), "compile_ms": round(self.compile_seconds * 1000, 3),
                "code_source": self.tier}
