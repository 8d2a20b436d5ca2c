"""The data directory: where each thing wasmhost keeps lives, and how its files are named.

    <data>/registry.sqlite3                         functions, versions, policies (store/registry.py)
    <data>/logs.sqlite3                             recent invocation logs (store/logs.py)
    <data>/blobs/sha256/ab/<digest>.wasm            module bytes, named by their sha256 (store/blobs.py)
    <data>/artifacts/<fingerprint>/ab/<digest>.cwasm  compiled code for one engine configuration
    <data>/artifacts/<fingerprint>/ab/<digest>.sum    its size and XXH3-128, written after it

A file being written is `.tmp-*` beside its final name until it is renamed into place
(`files.write_atomic`). This module is the one that knows these names: the registry, the
artifact store, garbage collection and `wasmhost fsck` all ask it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REGISTRY_DB = "registry.sqlite3"
LOGS_DB = "logs.sqlite3"
TEMP_PREFIX = ".tmp-"
BLOB_SUFFIX = ".wasm"
ARTIFACT_SUFFIX = ".cwasm"
SUM_SUFFIX = ".sum"
DIGEST = re.compile(r"[0-9a-f]{64}")  # sha256, lower-case hex (fullmatch)


def is_temp(path: Path) -> bool:
    """A file a write left behind before renaming it into place."""
    return path.name.startswith(TEMP_PREFIX)


def digest_of(path: Path, suffix: str) -> str | None:
    """The digest a blob or artifact file is named by, or None for any other name."""
    if not path.name.endswith(suffix):
        return None
    digest = path.name[:-len(suffix)]
    return digest if DIGEST.fullmatch(digest) else None


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path

    @property
    def registry_db(self) -> Path:
        return self.root / REGISTRY_DB

    @property
    def logs_db(self) -> Path:
        return self.root / LOGS_DB

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def blob(self, digest: str) -> Path:
        assert DIGEST.fullmatch(digest), "a blob is named by a sha256 digest"
        return self.blobs / digest[:2] / f"{digest}{BLOB_SUFFIX}"

    def artifacts_of(self, fingerprint: str) -> Path:
        return self.artifacts / fingerprint

    def artifact(self, fingerprint: str, digest: str) -> Path:
        assert DIGEST.fullmatch(digest), "an artifact is named by its module's sha256 digest"
        return self.artifacts / fingerprint / digest[:2] / f"{digest}{ARTIFACT_SUFFIX}"

    @staticmethod
    def sum_of(artifact: Path) -> Path:
        return artifact.with_suffix(SUM_SUFFIX)

    def blob_files(self) -> Iterator[Path]:
        """Every file in the blob shards (blobs, temp files, strays)."""
        if self.blobs.is_dir():
            yield from sorted(self.blobs.glob("*/*"))

    def artifact_files(self) -> Iterator[tuple[str, Path]]:
        """(fingerprint, path) of every file in the artifact shards."""
        if self.artifacts.is_dir():
            for engine_dir in sorted(self.artifacts.iterdir()):
                if engine_dir.is_dir():
                    for path in sorted(engine_dir.glob("*/*")):
                        yield engine_dir.name, path
