"""Writing files so that a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path

import xxhash

from .. import errors
from .layout import TEMP_PREFIX

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_error(exc: OSError, what: str) -> errors.WasmhostError:
    """A failed write of ours as the error a client should see: storage_full for a full disk."""
    if exc.errno in _FULL_ERRNOS:
        return errors.StorageFull(f"could not store {what}: the disk is full; nothing was stored")
    return errors.InternalError(f"could not store {what}: {exc.strerror}")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX needs the directory fsynced too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`data` at `path`, durably: a temp file beside it, fsync, rename over, fsync the directory.
    On any failure the temp file is removed and the error raised (the old file, if any, stays)."""
    if not path.parent.is_dir():  # a new shard: its entry in the parent must be durable too
        path.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(path.parent.parent)
    tmp = path.parent / f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{os.urandom(6).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def checksum(path: Path) -> str:
    """`<size>:<XXH3-128>` of a file, as artifact sums hold it. XXH3, not CRC32: a CRC32 was
    most of a disk-tier cold start (bench/design-figures.md: checksum)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return "0:0"
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            return f"{size}:{xxhash.xxh3_128_hexdigest(view)}"
    finally:
        os.close(fd)


def read_small(path: Path, limit: int = 4096) -> bytes:
    """At most `limit` bytes from the start of a small file (a sum)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
