"""``watch``: keep a long-running engine on the newest generation of a store that a sync replaces.

A sync (or any :meth:`~mtotrust.Snapshot.save`) replaces the store file whole, by renaming a new file over it, so a
new generation is a new file: a watcher polls the file's identity (device, inode, size, modification time) every
``every`` seconds and, when it changed, loads the store and swaps it into the engine with
:meth:`~mtotrust.TrustEngine.update` (in-flight decisions finish on the old snapshot; none is dropped). A store that
cannot be loaded (damaged, half-copied by hand) is not swapped in: the engine keeps the generation it has, the error
is kept in :attr:`StoreWatch.last_error`, and the next change is tried again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from mtotrust._engine import TrustEngine
from mtotrust._errors import MtoTrustError
from mtotrust._snapshot import Snapshot

__all__ = ["StoreWatch", "watch"]


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class StoreWatch:
    """A background thread that swaps each new generation of a store into an engine; see :func:`watch`.

    Use it as a context manager, or call :meth:`stop`. :meth:`check` polls once, now (a SIGHUP handler calls it).

    .. versionadded:: 0.2.0
    """

    def __init__(self, store: str | os.PathLike[str], engine: TrustEngine, every: float,
                 on_update: Callable[[Snapshot], None] | None = None) -> None:
        if not every > 0:
            raise ValueError(f"every must be a positive number of seconds, not {every!r}")
        self.store = Path(store)
        self.engine = engine
        self.every = every
        self.on_update = on_update
        self.updates = 0
        """How many new generations were swapped in."""
        self.last_error: Exception | None = None
        """Why the latest changed store was not swapped in, or what ``on_update`` raised (``None`` once a store is
        swapped in)."""
        self._seen: tuple[int, int, int, int] | None = None  # the first poll loads the store: it may be newer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mtotrust-watch:{self.store.name}", daemon=True)
        self._thread.start()

    def check(self) -> bool:
        """Poll the store once; return whether a new generation was swapped in."""
        with self._lock:
            seen = _identity(self.store)
            if seen is None or seen == self._seen:
                return False
            try:
                snapshot = Snapshot.load(self.store)
            except (MtoTrustError, OSError) as exc:
                self.last_error = exc
                self._seen = seen  # tried; the next replacement is a new file, tried again
                return False
            self._seen = seen
            self.last_error = None
            if snapshot.id == self.engine.snapshot.id and snapshot.taken_at == self.engine.snapshot.taken_at:
                return False
            self.engine.update(snapshot)
            self.updates += 1
        if self.on_update is not None:
            try:
                self.on_update(snapshot)
            except Exception as exc:  # noqa: BLE001 - the caller's callback must not stop the watching
                self.last_error = exc
        return True

    def stop(self) -> None:
        """Stop watching (waits for a poll under way)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> StoreWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a failed poll (engine.update refusing) is kept, not fatal
                self.last_error = exc


def watch(store: str | os.PathLike[str], engine: TrustEngine, *, every: float = 30.0,
          on_update: Callable[[Snapshot], None] | None = None) -> StoreWatch:
    """Watch a store file and swap every new generation a sync commits into ``engine``.

    ``engine`` is typically built from this store; the first poll loads the store and swaps it in if it is not the
    engine's snapshot (a sync may have replaced it since the engine was built). Returns the running
    :class:`StoreWatch`; ``on_update(snapshot)`` is called on the watcher's thread after each swap (what it raises
    is kept in :attr:`StoreWatch.last_error`).

    >>> with watch("contoso.sqlite", engine, every=10):  # doctest: +SKIP
    ...     serve_forever()

    .. versionadded:: 0.2.0
    """
    return StoreWatch(store, engine, every, on_update)
