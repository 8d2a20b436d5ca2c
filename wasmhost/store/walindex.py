"""Has anything been committed to a SQLite database in WAL mode? Asked without SQLite.

Every commit in WAL mode rewrites the header of the WAL index (the -shm file,
https://sqlite.org/walformat.html: two copies of a 48-byte header holding the frame count,
salts and checksums). While those bytes are unchanged nothing was committed, so the registry
can skip `PRAGMA data_version`, which costs a read transaction and file locks
(bench/design-figures.md: data-version).
"""

from __future__ import annotations

import os
from pathlib import Path

HEADER_BYTES = 96


def _sqlites_descriptor(path: Path) -> int | None:
    """The descriptor SQLite itself holds on `path`, or None. Linux only (/proc/self/fd).

    Why not open the file ourselves: closing *any* descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included (and CPython's mmap dups the descriptor
    and closes the dup). Without its lock on the -shm file, another process opening the
    database thinks it is the first, truncates and rebuilds the WAL index under our feet
    (SIGBUS for a mapping of it; broken read marks for SQLite). Reading through SQLite's
    own descriptor opens and closes nothing.
    """
    try:
        want = os.stat(path)
        with os.scandir("/proc/self/fd") as fds:
            for entry in fds:
                try:
                    st = os.stat(entry.path)  # follows the link: no descriptor opened
                except OSError:
                    continue  # closed meanwhile, or the scandir's own descriptor
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    return int(entry.name)
    except (OSError, ValueError):
        return None
    return None


class WalIndexHeader:
    """The WAL-index header of `database`, read through SQLite's descriptor.

    Make one while a connection to `database` is open (SQLite holds the -shm file open until
    its last connection closes) and call `forget` before closing that connection, since the
    descriptor's number may then be reused for another file.
    """

    def __init__(self, database: Path) -> None:
        self._fd = _sqlites_descriptor(database.with_name(database.name + "-shm"))

    @property
    def in_use(self) -> bool:
        return self._fd is not None

    def read(self) -> bytes | None:
        """The header bytes, or None when they cannot be read (then ask SQLite)."""
        if self._fd is None:
            return None
        try:
            return os.pread(self._fd, HEADER_BYTES, 0)
        except OSError:
            return None

    def forget(self) -> None:
        self._fd = None
