"""The resume journal of a sync: the users pages read so far, so a killed sync goes on where it stopped.

A sync reads the users delta page by page and saves the store only once, when it has them all (a store is one
sealed file, replaced whole: readers never see half a sync). Each page is first committed here together with the
link to the next one, in one SQLite transaction: a sync killed at any point (SIGKILL included) leaves at most the
pages it had, and the next sync of the same store starting from the same stored generation goes on from the last
committed page instead of starting again. The journal is the file ``.STORE.sync`` beside the store (its
``-journal`` beside it while a commit is under way); the sync that saves the store removes it. It also serves as
the lock that keeps two syncs of one store apart.

Only an unfinished sync leaves this file; it holds directory data (mode 0600) and nothing secret (links carry no
credential). ``mtotrust sync --full`` starts afresh, discarding it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

from mtotrust.sync._errors import SyncUsageError

if sys.platform != "win32":
    import fcntl

__all__ = ["Journal", "JournalRun", "Resumed", "journal_path"]

_VERSION = 2  # PRAGMA user_version of the journal layout; a journal of another layout is discarded
_SCHEMA = """
DROP TABLE IF EXISTS run;
DROP TABLE IF EXISTS page;
CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE page (seq INTEGER PRIMARY KEY, body BLOB NOT NULL, next TEXT, read_at TEXT NOT NULL);
"""


def journal_path(store: Path) -> Path:
    """Return where the journal of ``store`` lives."""
    return store.with_name(f".{store.name}.sync")


@attrs.frozen(slots=True)
class JournalRun:
    """What a sync run starts from; a journal is resumed only by a run that starts from the same."""

    tenant: str
    graph_url: str
    base_id: str  # the stored generation's Snapshot.id ("" for no store)
    base_link: str  # the stored delta link ("" for none)
    full: bool = attrs.field(default=False, eq=False)  # a full round (not part of what must match to resume)

    def as_rows(self) -> list[tuple[str, str]]:
        """Return the rows the journal keeps."""
        return sorted({**attrs.asdict(self), "full": "1" if self.full else ""}.items())


@attrs.frozen(slots=True)
class Resumed:
    """What a journal holds of an unfinished run."""

    bodies: list[bytes]  # the committed pages, in order
    next_link: str | None  # the link after the last one (None: the last page held the delta link)
    read_at: str  # when the last page was read (ISO 8601)
    full: bool  # the pages are a full round


class Journal:
    """The journal of one store (or, for a dry run, one in memory that nothing outlives)."""

    def __init__(self, store: Path | None) -> None:
        self.path = None if store is None else journal_path(store)
        self._lock: int | None = None
        if self.path is not None:
            self._lock = _lock(self.path)
        try:
            self._db = sqlite3.connect(":memory:" if self.path is None else self.path, isolation_level=None)
            # A commit survives the process being killed (the OS has the pages); no fsync per page.
            self._db.execute("PRAGMA synchronous=OFF")
            if self._db.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
                self._db.executescript(_SCHEMA + f"PRAGMA user_version = {_VERSION};")
        except sqlite3.Error as exc:
            self.close()
            raise SyncUsageError(f"cannot use the sync journal {str(self.path)!r} ({exc}); remove it and sync "
                                 "again (with --full)") from exc

    def resume(self, run: JournalRun) -> Resumed | None:
        """Return what the journal holds of ``run`` (the same tenant, Graph, stored generation and delta link)."""
        rows = dict(self._db.execute("SELECT key, value FROM run"))
        full = rows.pop("full", "")
        if rows != {k: v for k, v in run.as_rows() if k != "full"}:
            return None
        pages = self._db.execute("SELECT body, next, read_at FROM page ORDER BY seq").fetchall()
        if not pages:
            return None
        return Resumed([bytes(body) for body, _, _ in pages], pages[-1][1], pages[-1][2], bool(full))

    def start(self, run: JournalRun) -> None:
        """Forget what the journal holds and start ``run``."""
        with self._transaction():
            self._db.execute("DELETE FROM page")
            self._db.execute("DELETE FROM run")
            self._db.executemany("INSERT INTO run VALUES (?, ?)", run.as_rows())

    def commit(self, body: bytes, next_link: str | None, read_at: str) -> None:
        """Commit one page (the response body as read, and when) and the link to the next one, together."""
        with self._transaction():
            self._db.execute("INSERT INTO page (body, next, read_at) VALUES (?, ?, ?)", (body, next_link, read_at))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def remove(self) -> None:
        """Close and delete the journal (the sync it served has saved the store)."""
        self._close(keep=False)

    def close(self) -> None:
        """Close the journal, keeping its file if it holds pages to resume from (else it is deleted)."""
        self._close(keep=True)

    def _close(self, *, keep: bool) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            keep = keep and db.execute("SELECT 1 FROM page LIMIT 1").fetchone() is not None
            db.close()
            del self._db
        if self.path is not None and not keep:  # under the lock still: no other sync is using it
            for leftover in (self.path, self.path.with_name(self.path.name + "-journal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _lock(path: Path) -> int:
    """Create (0600) or open the journal file and hold its exclusive lock, or say which sync holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SyncUsageError(f"cannot create the sync journal {str(path)!r} beside the store ({exc.strerror}); "
                             "sync to a store in a folder this account may write") from exc
    if sys.platform == "win32":  # no flock: two syncs of one store are not kept apart there
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SyncUsageError(f"another sync of this store is running (it holds {str(path)!r}); wait for it to "
                             "finish") from None
    return fd
