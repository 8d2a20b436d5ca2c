"""Shared fixtures: real modules built from modules/*.wat, real data directories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modules.build import build_all  # noqa: E402
from wasmhost.host import Host  # noqa: E402
from wasmhost.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def modules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every module in modules/ compiled from its WAT source for this test session."""
    out = tmp_path_factory.mktemp("modules")
    build_all(out)
    return out


@pytest.fixture(scope="session")
def wasm(modules_dir: Path):
    """wasm("hello_handler") / wasm("hostile/unreachable") -> bytes."""

    def load(name: str) -> bytes:
        return (modules_dir / f"{name}.wasm").read_bytes()

    return load


def small_settings(data_dir: Path, **overrides) -> Settings:
    """Limits small enough that hostile modules fail fast in tests."""
    values = dict(
        data_dir=data_dir,
        default_fuel=50_000_000, max_fuel=2_000_000_000,
        default_timeout_ms=2_000, max_timeout_ms=10_000,
        default_memory_mb=16, max_memory_mb=128,
        max_response_bytes=1 * 1024 * 1024,
        max_request_bytes=1 * 1024 * 1024,
        max_module_bytes=8 * 1024 * 1024,
        max_log_bytes=4096,
        max_concurrency=4, pool_instances=16,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return small_settings(tmp_path / "data")


@pytest.fixture
def host(settings: Settings) -> Iterator[Host]:
    with Host(settings) as h:
        yield h
