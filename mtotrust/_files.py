"""Open the files mtotrust reads (pages, policies, stores) as what they claim to be: regular, bounded files.

A FIFO would block ``open`` (or a read) until a writer comes, and ``/dev/zero`` would read until memory runs out;
both are refused here, before a byte is read, and a regular file larger than its kind's limit is refused before
it is read into memory. The caller turns the ``(problem, fix)`` message into its own error class, so a page fails
with a ``SnapshotError`` and a policy with a ``PolicyError``.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAX_PAGE_BYTES", "MAX_POLICY_BYTES", "MAX_STORE_BYTES", "open_regular", "read_regular"]

MAX_PAGE_BYTES = 4 << 30
"""Largest JSON page (users, delta, organization, ...) mtotrust reads: 4 GiB (Graph's own pages are a few MB)."""
MAX_POLICY_BYTES = 16 << 20
"""Largest policy file: 16 MiB (a policy with 100,000 block entries is about 5 MB)."""
MAX_STORE_BYTES = 64 << 30
"""Largest SQLite store: 64 GiB (a 1M-user store is about 0.4 GB)."""

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"


def open_regular(path: Path, limit: int, error: Callable[[str], Exception]) -> io.BufferedReader:
    """Open ``path`` for reading in binary, refusing what is not a regular file of at most ``limit`` bytes.

    ``error(message)`` builds the exception raised for a file that cannot be opened, is not a regular file, or
    is too large; the message says which and what to do. The file is opened without blocking (a FIFO with no
    writer would hang a plain ``open``) and checked on the opened descriptor, so a path swapped between the
    check and the read cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot be read ({exc.strerror})") from None
    try:
        problem = _problem(os.fstat(fd), limit)
        if problem is None:
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise error(problem)


def _problem(info: os.stat_result, limit: int) -> str | None:
    """Return what makes a file unfit to read (not regular, too large), or ``None``."""
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        return f"is {kind}, not a regular file; give the path of a file saved on disk"
    if info.st_size > limit:
        return (f"is {_size(info.st_size)}, more than the {_size(limit)} mtotrust reads from such a file; "
                "split it or check that it is the right file")
    return None

def read_regular(path: Path, limit: int, error: Callable[[str], Exception]) -> bytes:
    """Return the bytes of ``path``, opened with :func:`open_regular`; a file that grew past ``limit`` is refused."""
    with open_regular(path, limit, error) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise error(f"grew past the {_size(limit)} mtotrust reads from such a file while it was read; "
                    "read it again once the writer is done")
    return data
