"""Build the example and hostile WebAssembly modules from their WAT sources.

    python modules/build.py [--out DIR] [--force]

Compiles every ``modules/**/*.wat`` with ``wasmtime.wat2wasm`` into
``OUT/<same relative path>.wasm`` (default OUT: ``modules/build/``) and
generates two modules that cannot be written in WAT:

* ``hostile/invalid_bytes.wasm``: bytes that are not wasm at all;
* ``hostile/truncated.wasm``: the first half of the compiled
  ``hello_handler.wasm``, cut so that it no longer validates.

From Python (with the repository root on ``sys.path``)::

    from modules.build import build_all
    paths = build_all(out_dir)      # {"hello_handler": Path, "hostile/unreachable": Path, ...}

A ``.wasm`` is rebuilt only when its source is newer, so calling ``build_all``
repeatedly is cheap. Files are written to a temporary name and renamed into
place, so a concurrent reader never sees a partial module.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import wasmtime

MODULES_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = MODULES_DIR / "build"

# Deterministic garbage: a recognisable text repeated, then a few fixed
# bytes that look random. Starts with "this", not "\0asm", so no parser
# mistakes it for wasm.
INVALID_BYTES = b"this is not wasm\x00" * 8 + bytes.fromhex("8f3ac1d25e0b77e4196fa0c3")

TRUNCATED_SOURCE = "hello_handler"  # the module whose first half is truncated.wasm


def _needs_build(target: Path, *sources: Path) -> bool:
    """True if target is missing or older than any of its sources."""
    if not target.exists():
        return True
    built = target.stat().st_mtime_ns
    return any(src.stat().st_mtime_ns > built for src in sources)


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary build outputs
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _truncate_invalid(wasm: bytes) -> bytes:
    """The first half of ``wasm``, shortened further if that still validated.

    A cut that lands exactly on a section boundary could in principle leave
    a valid module; take bytes off until wasmtime refuses it.
    """
    engine = wasmtime.Engine()
    cut = len(wasm) // 2
    while cut > 0:
        head = wasm[:cut]
        try:
            wasmtime.Module.validate(engine, head)
        except wasmtime.WasmtimeError:
            return head
        cut -= 1
    raise RuntimeError("could not produce an invalid truncation")  # pragma: no cover


def wat_sources(modules_dir: Path = MODULES_DIR) -> dict[str, Path]:
    """Every WAT source, keyed by name ("hello_handler", "hostile/unreachable")."""
    sources = {}
    for wat in sorted(modules_dir.rglob("*.wat")):
        rel = wat.relative_to(modules_dir)
        if rel.parts[0] == "build":  # never pick up files from a build tree
            continue
        sources[rel.with_suffix("").as_posix()] = wat
    return sources


def build_all(out_dir: str | os.PathLike | None = None, *, force: bool = False) -> dict[str, Path]:
    """Build every module into ``out_dir``; return {name: path of the .wasm}.

    Raises ``wasmtime.WasmtimeError`` (with the file name in the message)
    if a WAT source does not parse or the result is not valid wasm.
    """
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    out = out.resolve()
    built: dict[str, Path] = {}

    engine = None
    for name, wat in wat_sources().items():
        target = out / f"{name}.wasm"
        if force or _needs_build(target, wat):
            # wat2wasm only parses the text; validate too, so that a type error
            # in a WAT file fails here, naming the file, and not in some test.
            engine = engine or wasmtime.Engine()
            try:
                wasm = wasmtime.wat2wasm(wat.read_text(encoding="utf-8"))
                wasmtime.Module.validate(engine, wasm)
            except wasmtime.WasmtimeError as e:
                raise wasmtime.WasmtimeError(f"{wat}: {e}") from e
            _write_atomic(target, wasm)
        built[name] = target

    invalid = out / "hostile" / "invalid_bytes.wasm"
    if force or not invalid.exists() or invalid.read_bytes() != INVALID_BYTES:
        _write_atomic(invalid, INVALID_BYTES)
    built["hostile/invalid_bytes"] = invalid

    source = built[TRUNCATED_SOURCE]
    truncated = out / "hostile" / "truncated.wasm"
    if force or _needs_build(truncated, source):
        _write_atomic(truncated, _truncate_invalid(source.read_bytes()))
    built["hostile/truncated"] = truncated

    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="rebuild everything")
    args = parser.parse_args(argv)
    try:
        built = build_all(args.out, force=args.force)
    except wasmtime.WasmtimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, path in sorted(built.items()):
        print(f"{name:32} {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
