"""Checks of what callers hand the Host: names, versions, config, policy (limits: Settings).

Every input is checked once, here at the Host boundary, and refused with `bad_request`
saying what the rule is; the stores below only assert their invariants (store/__init__.py).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import BadRequest

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # fullmatch: "$" alone would accept a trailing "\n"
CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
ENTRYPOINT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
MAX_CONFIG_ENTRIES = 256
MAX_CONFIG_BYTES = 64 * 1024
MAX_VERSION = 2**63 - 1  # what a registry column holds


def valid_name(name: Any) -> bool:
    return type(name) is str and NAME.fullmatch(name) is not None


def validate_name(name: str) -> str:
    """Return `name` if it is a valid function name (it becomes a URL segment and a file-safe key)."""
    if not isinstance(name, str):
        raise BadRequest(f"function name must be a string, not {type(name).__name__}")
    if NAME.fullmatch(name) is None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise BadRequest(
            f"invalid function name {shown!r}: names are 1-63 characters of a-z, 0-9 and '-',"
            " starting with a letter or digit")
    return name


def check_version(version: int | None) -> int | None:
    if version is not None and (type(version) is not int or not 1 <= version <= MAX_VERSION):
        raise BadRequest(f"invalid version {str(version)[:40]!r}: versions are positive integers")
    return version


def check_entrypoint(entrypoint: str | None) -> str | None:
    if entrypoint is not None and (not isinstance(entrypoint, str) or not ENTRYPOINT.fullmatch(entrypoint)):
        raise BadRequest(f"invalid entrypoint {str(entrypoint)[:60]!r}")
    return entrypoint


def check_private(private: bool | None) -> bool | None:
    if private is not None and type(private) is not bool:
        raise BadRequest(f"private must be true or false, got {private!r}"[:120])
    return private


def check_concurrency(concurrency: int | None, maximum: int) -> int | None:
    """A function's cap on calls at once: 0 (the server default) to the server's `maximum`."""
    if concurrency is None:
        return None
    if type(concurrency) is not int or concurrency < 0:
        raise BadRequest(f"concurrency must be a non-negative integer, got {concurrency!r}"[:120])
    if concurrency > maximum:
        raise BadRequest(f"concurrency={concurrency} exceeds the server's max_concurrency {maximum}",
                         maximum=maximum)
    return concurrency


def check_config(config: Mapping[str, Any] | None) -> dict[str, str]:
    """Config variables become WASI environment entries and msgpack map keys:
    keep them to plain names and NUL-free strings, and bounded."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise BadRequest("config must be an object of string keys to string values")
    if len(config) > MAX_CONFIG_ENTRIES:
        raise BadRequest(f"config has {len(config)} entries; at most {MAX_CONFIG_ENTRIES} are allowed")
    out: dict[str, str] = {}
    total = 0
    for key, value in config.items():
        if not isinstance(key, str) or not CONFIG_KEY.fullmatch(key):
            raise BadRequest(f"invalid config key {str(key)[:60]!r}: keys are 1-128 characters of "
                             "letters, digits, '_', '.', '-', not starting with a digit")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"config value for {key!r} must be a string")
        text = str(value)
        if "\x00" in text:
            raise BadRequest(f"config value for {key!r} contains a NUL byte")
        try:
            size = len(text.encode())
        except UnicodeEncodeError:  # a lone surrogate: not text UTF-8 (or a WASI environment) can carry
            raise BadRequest(f"config value for {key!r} is not valid Unicode text (a lone surrogate)") from None
        total += len(key) + size
        out[key] = text
    if total > MAX_CONFIG_BYTES:
        raise BadRequest(f"config is {total} bytes; at most {MAX_CONFIG_BYTES} are allowed")
    return out
