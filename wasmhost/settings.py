"""Server settings, read from `WASMHOST_*` environment variables.

One frozen value built once at start-up and passed down explicitly: no module
reads the environment on its own, so tests can build any configuration.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import BadRequest
from .models import Limits

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("data"))
    # Per-function limits: defaults for a deploy that names none, and maxima no deploy may exceed.
    default_fuel: int = 1_000_000_000
    max_fuel: int = 20_000_000_000
    default_timeout_ms: int = 10_000
    max_timeout_ms: int = 60_000
    default_memory_mb: int = 64
    max_memory_mb: int = 512
    # Server-wide sizes.
    max_module_bytes: int = 64 * MIB
    max_request_bytes: int = 16 * MIB
    max_response_bytes: int = 16 * MIB
    max_log_bytes: int = 64 * 1024
    # Concurrency: invocations in flight and waiting for a worker.
    max_concurrency: int = 32
    max_queue: int = 256
    # Per function (and per worker process): at most this many of one function's calls on
    # worker threads at once (a function may set its own, up to max_concurrency; 0 here:
    # max_concurrency // 4, at least 1), and at most function_queue more waiting for one of
    # those slots. A flood of slow calls to one function then cannot take every worker.
    function_concurrency: int = 0
    function_queue: int = 64
    # A function call's whole request body must arrive within this (slow-drip clients).
    body_timeout_s: int = 30
    # Request and response bodies held in memory at once, per worker process (bodies being
    # received, and answers over 64 KiB waiting for the client to take them); past it, 503.
    max_buffered_bytes: int = 256 * MIB
    # A connection whose client takes no byte of a pending answer for this long is closed.
    send_timeout_s: int = 30
    # Compiling at deploy: a module over isolate_compile_above_bytes (0: every module) compiles
    # in a child process that may take at most max_compile_seconds and max_compile_mb of memory.
    max_compile_seconds: int = 30
    max_compile_mb: int = 2048
    isolate_compile_above_bytes: int = 256 * 1024
    # Compiled-module cache (memory tier).
    cache_max_modules: int = 256
    cache_max_bytes: int = 512 * MIB
    # Engine.
    pooling: bool = True
    pool_instances: int = 0  # 0 = max_concurrency * 2 + 8 (deploy checks need slots too)
    pool_keep_resident_bytes: int = 64 * 1024
    max_wasm_stack: int = 512 * 1024
    epoch_tick_ms: int = 10
    # Run invocations through the C extension when it is built (else ctypes): callpath.choose.
    fastpath: bool = True
    # The admin token (WASMHOST_ADMIN_TOKEN), or a file holding it (WASMHOST_ADMIN_TOKEN_FILE);
    # never shown (repr=False): Settings may be logged.
    admin_token: str | None = field(default=None, repr=False)
    admin_token_file: Path | None = None

    def token(self) -> str | None:
        """The admin token: `admin_token`, else the contents of `admin_token_file`, else None."""
        if self.admin_token:
            return self.admin_token
        if self.admin_token_file is None:
            return None
        try:
            token = self.admin_token_file.read_text().strip()
        except OSError as exc:
            raise BadRequest(f"cannot read the token file {self.admin_token_file}: {exc.strerror}") from None
        if not token:
            raise BadRequest(f"the token file {self.admin_token_file} is empty")
        return token

    def default_limits(self) -> Limits:
        return Limits(self.default_fuel, self.default_timeout_ms, self.default_memory_mb)

    def max_limits(self) -> Limits:
        return Limits(self.max_fuel, self.max_timeout_ms, self.max_memory_mb)

    def function_slots(self, requested: int = 0) -> int:
        """How many calls of one function may run on worker threads at once."""
        limit = requested or self.function_concurrency or max(1, self.max_concurrency // 4)
        return min(limit, self.max_concurrency)

    def pool_size(self) -> int:
        return self.pool_instances or self.max_concurrency * 2 + 8

    def check_limits(self, requested: Mapping[str, Any] | None) -> dict[str, int]:
        """The limits `requested` names, parsed and checked against the maxima: a partial change
        (None values are left out) that the registry merges into a version."""
        maxima = self.max_limits().to_dict()
        changes: dict[str, int] = {}
        for key, raw in (requested or {}).items():
            if raw is None:
                continue
            if key not in maxima:
                raise BadRequest(f"unknown limit {_shown(key)}; known limits are fuel, timeout_ms, memory_mb")
            value = _integer(raw)
            if value is None or value < 1:
                raise BadRequest(f"limit {key} must be a positive integer (at most 18 digits), got {_shown(raw)}")
            if value > maxima[key]:
                raise BadRequest(f"limit {key}={_shown(value)} exceeds the server maximum {maxima[key]}",
                                 limit=key, maximum=maxima[key])
            changes[key] = value
        return changes

    def resolve_limits(self, requested: Mapping[str, Any] | None, base: Limits | None = None) -> Limits:
        """`requested` merged over `base` (or the defaults), checked against the maxima."""
        return replace(base or self.default_limits(), **self.check_limits(requested))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from `WASMHOST_<FIELD>` variables (e.g. WASMHOST_MAX_FUEL), then `overrides`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get("WASMHOST_" + f.name.upper())
            if f.name == "data_dir":
                raw = environ.get("WASMHOST_DATA", raw)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        settings = cls(**values)
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse inconsistent settings at start-up rather than at the first call."""
        for name in ("fuel", "timeout_ms", "memory_mb"):
            default, maximum = getattr(self, f"default_{name}"), getattr(self, f"max_{name}")
            if not 0 < default <= maximum:
                raise BadRequest(f"default_{name}={default} must be positive and at most max_{name}={maximum}")
        for name in ("max_module_bytes", "max_request_bytes", "max_response_bytes", "max_concurrency",
                     "cache_max_modules", "cache_max_bytes", "epoch_tick_ms", "max_wasm_stack",
                     "body_timeout_s", "max_compile_seconds", "send_timeout_s"):
            if getattr(self, name) <= 0:
                raise BadRequest(f"setting {name} must be positive")
        largest = max(self.max_request_bytes, self.max_response_bytes, self.max_module_bytes)
        if self.max_buffered_bytes < largest:
            raise BadRequest(f"setting max_buffered_bytes={self.max_buffered_bytes} must be at least the largest "
                             f"request, response or module ({largest} bytes), or such a body could never be taken")
        if self.max_compile_mb < 64:
            raise BadRequest("setting max_compile_mb must be at least 64 (the compiler process alone needs ~30 MiB)")
        for name in ("max_queue", "max_log_bytes", "function_concurrency", "function_queue",
                     "isolate_compile_above_bytes"):
            if getattr(self, name) < 0:
                raise BadRequest(f"setting {name} must not be negative")


# A limit given as text: ASCII digits only (no sign, no spaces, no "_"), at most 18 of them, so
# that int() never meets a number it refuses (CPython stops at 4,300 digits) or one past int64.
LIMIT_DIGITS = re.compile(r"[0-9]{1,18}")


def _shown(value: Any, limit: int = 60) -> str:
    """A client's value for a message, cut short (a long string; an int of thousands of
    digits, which repr() would spend time on or refuse)."""
    if isinstance(value, int) and abs(value) >= 10**limit:
        return f"<a number of more than {limit} digits>"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _integer(raw: Any) -> int | None:
    """An int from an int or a string of 1-18 ASCII digits; None for anything else
    (bools, floats, '1.9', '²', '+5', ' 5 ', '-5', a 5,000-digit string)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and LIMIT_DIGITS.fullmatch(raw):
        return int(raw)
    return None


def _parse(name: str, type_name: Any, raw: str) -> Any:
    text = str(type_name)
    try:
        if "Path" in text:
            return Path(raw)
        if "str" in text:
            return raw.strip()
        if "bool" in text:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return int(raw.replace("_", ""))
    except ValueError:
        raise BadRequest(f"environment variable WASMHOST_{name.upper()}={raw!r} is not a valid {text}") from None
