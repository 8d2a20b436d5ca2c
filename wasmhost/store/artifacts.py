"""Compiled modules on disk (the cache's disk tier), for one engine configuration.

`artifacts/<fingerprint>/ab/<digest>.cwasm` and a `.sum` beside it (size and XXH3-128),
written after it: wasmtime trusts artifact bytes, so an artifact is only handed out after
its sum matched; a missing sum (a crash between the two writes) or a wrong one gets it
removed and recompiled from its blob. Artifacts are a cache: removing one is always safe.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterable

from .files import checksum, read_small, write_atomic
from .layout import ARTIFACT_SUFFIX, SUM_SUFFIX, DataDir, digest_of, is_temp

log = logging.getLogger("wasmhost.store")


class ArtifactFiles:
    def __init__(self, data: DataDir, fingerprint: str) -> None:
        self.data = data
        self.fingerprint = fingerprint
        self.rejected = 0  # artifacts found corrupt (and removed)

    def path(self, digest: str) -> Path:
        return self.data.artifact(self.fingerprint, digest)

    def verified(self, digest: str) -> tuple[Path, int] | None:
        """The artifact's path and size when it exists and its sum matches; None otherwise. A
        mismatched one is removed (counted in `rejected`)."""
        path = self.path(digest)
        try:
            expected = read_small(self.data.sum_of(path)).decode("ascii", "replace").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("artifact checksum for %s unreadable (%s); recompiling", digest[:12], exc)
            return None
        try:
            actual = checksum(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            actual = f"unreadable: {exc.strerror}"
        if actual != expected:
            self.reject(digest, "checksum mismatch")
            return None
        return path, int(actual.partition(":")[0])

    def reject(self, digest: str, why: str) -> None:
        """Remove an artifact found bad (by its sum, or by wasmtime), to be recompiled."""
        self.rejected += 1
        log.warning("artifact for %s rejected (%s); recompiling", digest[:12], why[:120])
        self.discard(digest)

    def write(self, digest: str, data: bytes) -> bool:
        """Write the artifact, then its sum (a crash in between leaves no sum: recompiled). False
        when it could not be written (a full disk): the module still runs, only the next
        process's first call compiles, so that is logged, not raised."""
        path = self.path(digest)
        sum_path = self.data.sum_of(path)
        try:
            # A sum left from an earlier artifact would describe other bytes: remove it first, so a
            # sum that exists was always written after the artifact beside it.
            try:
                sum_path.unlink()
            except FileNotFoundError:
                pass
            write_atomic(path, data)
            write_atomic(sum_path, checksum(path).encode())
            return True
        except OSError as exc:
            log.error("could not write artifact for %s: %s", digest[:12], exc)
            self.discard(digest)
            return False

    def discard(self, digest: str) -> None:
        """Remove the artifact and its sum, if there."""
        path = self.path(digest)
        for victim in (self.data.sum_of(path), path):
            try:
                victim.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("could not remove artifact file %s: %s", victim.name, exc.strerror)

    def collect(self, referenced: Iterable[str], min_age_s: float) -> int:
        """Remove, for every engine configuration, artifacts of digests no version uses and
        temp files, older than `min_age_s` (a deploy in flight writes its artifact before its
        row); returns how many files went."""
        keep = set(referenced)
        cutoff = time.time() - min_age_s
        removed = 0
        for _, path in self.data.artifact_files():
            digest = digest_of(path, ARTIFACT_SUFFIX) or digest_of(path, SUM_SUFFIX)
            if not is_temp(path) and digest in keep:
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed
