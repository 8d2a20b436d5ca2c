"""Module bytes as content-addressed files: written once and durably, read back verified.

A blob is named by the sha256 of its bytes (`layout.DataDir.blob`), so two deploys of the same
module share one file and a damaged file is detected by reading it. Which blobs are in use is
the registry's knowledge, not this module's: the registry decides under its write lock, and
calls `remove` and `sweep` with what it knows.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

from .. import errors
from .files import storage_error, write_atomic
from .layout import BLOB_SUFFIX, DataDir, digest_of, is_temp


class BlobFiles:
    def __init__(self, data: DataDir) -> None:
        self.data = data

    def path(self, digest: str) -> Path:
        return self.data.blob(digest)

    def put(self, code: bytes) -> str:
        """Store a module durably and return its sha256; the bytes are on disk when this returns."""
        assert isinstance(code, (bytes, bytearray, memoryview)), "a module is bytes"
        data = bytes(code)
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        try:
            with contextlib.suppress(FileNotFoundError):
                # Equal size is not equal bytes: a blob damaged on disk must be rewritten, not
                # trusted, or the new version would be committed pointing at corrupt bytes.
                if path.stat().st_size == len(data) and path.read_bytes() == data:
                    os.utime(path)  # a fresh mtime keeps `sweep` away until the row is committed
                    return digest
            # atomic; concurrent writers of one digest write equal bytes; read-only once written
            write_atomic(path, data, mode=0o444)
        except OSError as exc:
            raise storage_error(exc, f"module blob {digest}") from exc
        return digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def read(self, digest: str) -> bytes:
        """The module bytes, verified against their digest (a bad disk must not run bad code)."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise errors.InternalError(f"module blob {digest} is missing from the data directory") from exc
        except OSError as exc:
            raise errors.InternalError(f"could not read module blob {digest}: {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise errors.InternalError(f"module blob {digest} is corrupt (its sha256 does not match)")
        return data

    def check(self, digest: str, size: int) -> None:
        """InternalError unless the blob is stored with `size` bytes (a version's row is about
        to point at it)."""
        try:
            stored = self.path(digest).stat().st_size
        except FileNotFoundError:
            raise errors.InternalError(f"module blob {digest} is not stored (put_blob comes first)") from None
        except OSError as exc:
            raise errors.InternalError(f"could not check module blob {digest}: {exc.strerror}") from exc
        if stored != size:
            raise errors.InternalError(f"module blob {digest} has {stored} bytes, not {size}")

    def remove(self, digest: str) -> bool:
        """Delete one blob; False if it was not there."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise errors.InternalError(f"could not remove module blob {digest}: {exc.strerror}") from exc
        return True

    def sweep(self, referenced: set[str], min_age_s: float) -> list[str]:
        """Delete blobs not in `referenced` and stale temp files, both older than `min_age_s`;
        return the digests of the blobs deleted, sorted."""
        removed: list[str] = []
        cutoff = time.time() - min_age_s
        try:
            for path in self.data.blob_files():
                digest = digest_of(path, BLOB_SUFFIX)
                if not (is_temp(path) or (digest is not None and digest not in referenced)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()
                        if digest is not None:
                            removed.append(digest)
        except OSError as exc:
            raise errors.InternalError(f"could not collect module blobs: {exc.strerror}") from exc
        return sorted(removed)
