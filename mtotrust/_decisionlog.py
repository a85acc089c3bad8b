"""Opt-in decision log: one JSON line per app decision, identities hashed unless asked otherwise.

Decisions never wait on the log. ``record`` builds the line in the deciding thread (that is the log's CPU cost)
and hands it to a bounded queue; one daemon thread writes the queue to the target. Whatever the target does —
stall, crawl, refuse every write — only that thread waits: when the queue is full a record is dropped and
counted, a write that fails is counted, each is reported once through the ``mtotrust`` logger, and a line in the
log itself says how many records a gap lost once the target takes lines again.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import errno
import hmac
import json
import logging
import os
import threading
import time
import weakref
from typing import IO, Any, Protocol

from mtotrust._model import AppDecision, DlpDecision, LabelDecision, MailDecision, Resolution

__all__ = ["DEFAULT_QUEUE_SIZE", "DecisionLog", "outcome"]

_log = logging.getLogger("mtotrust")

DEFAULT_QUEUE_SIZE = 10_000
"""Lines a decision log holds for its writer before it drops records (about 4 MB of lines)."""

_LINGER_SECONDS = 0.01
"""How long the writer lets lines gather after a write: one wake-up per batch, not one per decision."""
_RETRY_SECONDS = 0.1
"""How often the writer tries again to open a FIFO that has no reader yet."""
_EXIT_SECONDS = 1.0
"""How long interpreter exit waits, in all, for every log's queue to reach its target."""
_GAP_PREFIX = '{"dropped": '
"""How a gap line starts (a decision line starts with ``{"time"``); the class docstring describes the line."""
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def outcome(decision: AppDecision) -> tuple[str, str]:
    """Return ``(app, outcome)`` words for a decision, as the log and ``engine.stats()`` count them."""
    if isinstance(decision, MailDecision):
        return "mail", "tagged" if decision.tag_external else "untagged"
    if isinstance(decision, DlpDecision):
        return "dlp", decision.access_scope
    if isinstance(decision, LabelDecision):
        return "labels", "granted" if decision.rights else "no_rights"
    return "teams", "allowed" if decision.allowed else "denied"


def _resolutions(decision: AppDecision) -> tuple[Resolution, ...]:
    return decision.recipients if isinstance(decision, DlpDecision) else (decision.resolution,)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _warning(message: str, *args: object) -> None:
    """Log a warning of the log's own; a handler or filter that raises only loses the warning."""
    with contextlib.suppress(Exception):
        _log.warning(message, *args)


def _records(lines: collections.deque[str]) -> int:
    """Count the decision lines among ``lines`` (gap lines are the log's own, not records)."""
    return sum(not line.startswith(_GAP_PREFIX) for line in lines)


def _salt(salt: object) -> bytes:
    """Return the HMAC key for ``salt``: random per process for ``None``, else non-empty bytes or str."""
    if salt is None:
        return os.urandom(16)
    key = salt.encode() if isinstance(salt, str) else salt
    if isinstance(key, bytes) and key:
        return key
    # The value itself is never shown: a salt given in the wrong type may still be the deployment's secret.
    what = "an empty salt" if isinstance(key, bytes) else f"a salt of type {type(salt).__name__}"
    raise ValueError(f"DecisionLog: {what} cannot key the identity hash (an empty key lets anyone with a list of "
                     "addresses recover the logged identities); give non-empty bytes or str, e.g. from a secret "
                     "store, or salt=None for a random per-process salt")


def _open(path: str) -> int | None:
    """Open ``path`` to append without blocking; ``None`` for a FIFO that no reader has open yet.

    A new file is created 0600 (the umask may only narrow it); an existing file keeps its mode. Once open, the
    descriptor blocks again: only the writer thread ever writes to it.
    """
    try:
        fd = os.open(path, _FLAGS | _NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return None
        raise
    os.set_blocking(fd, True)
    return fd


class _Target(Protocol):
    name: str

    def ready(self) -> bool: ...

    def write(self, text: str) -> None: ...

    def close(self) -> None: ...


class _StreamTarget:
    """A text stream the caller passed in (and keeps: closing the log leaves it open)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        name = getattr(stream, "name", None)
        self.name = name if isinstance(name, str) else repr(stream)

    def ready(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        """Leave the stream to its owner."""


class _PathTarget:
    """A path the log opened itself; a FIFO without a reader is opened later, by the writer thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = os.fspath(path)
        try:
            self.fd = _open(self.name)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot open the decision log to append to it ({exc.strerror}); give a "
                            "writable file in an existing folder", self.name) from None

    def ready(self) -> bool:
        if self.fd is None:
            self.fd = _open(self.name)
        return self.fd is not None

    def write(self, text: str) -> None:
        assert self.fd is not None  # the writer calls ready() first
        data = memoryview(text.encode("ascii"))  # lines are JSON with ensure_ascii
        while data:
            data = data[os.write(self.fd, data):]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Writer:
    """The bounded queue of one log and the daemon thread that drains it into the target.

    It holds no reference to its :class:`DecisionLog`, so a log nobody holds is collected (its finalizer
    closes the writer, which drains what is queued and exits).
    """

    def __init__(self, target: _Target, size: int) -> None:
        self.target = target
        self.size = size
        self.dropped = 0
        self.errors = 0
        self._pending: collections.deque[str] = collections.deque()
        self._accepted = 0  # lines ever queued (records and gap lines)
        self._done = 0  # lines that have left the queue: written, failed or abandoned
        self._gap = 0  # records dropped since the last gap line
        self._closed = False
        self._abandoned = False
        self._warned_drop = self._warned_error = False
        self._warners: list[threading.Thread] = []  # at most two: the first drop's and the first error's warning
        self._thread: threading.Thread | None = None
        self._reset_locks()
        _WRITERS.add(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)

    def full(self) -> bool:
        """Return whether a record would be dropped now (read without the lock: a hint that saves building it)."""
        return self._closed or len(self._pending) >= self.size

    def put(self, line: str) -> None:
        """Queue ``line``, or drop and count it when the queue is full or the log closed."""
        with self._lock:
            if self._closed or len(self._pending) >= self.size - (1 if self._gap else 0):
                first = self._drop()
            else:
                idle = not self._pending
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="mtotrust-decision-log", daemon=True)
                    thread.start()  # a RuntimeError (no threads left) reaches record(), which counts it
                    self._thread = thread
                elif idle:
                    self._has_work.notify()
                self._note_gap()
                self._pending.append(line)
                self._accepted += 1
                return
        if first:
            self._warn_drop()

    def drop(self) -> None:
        """Drop and count one record without building it."""
        with self._lock:
            first = self._drop()
        if first:
            self._warn_drop()

    def _drop(self) -> bool:
        """Count a dropped record (lock held); return whether it is the log's first."""
        self.dropped += 1
        if not self._closed:
            self._gap += 1
        first, self._warned_drop = not self._warned_drop, True
        return first

    def _note_gap(self) -> None:
        """Queue the line that says how many records were dropped since the last one, if any were (lock held)."""
        if self._gap:
            self._pending.append(f'{_GAP_PREFIX}{self._gap}, "time": "{_now()}"}}\n')
            self._accepted += 1
            self._gap = 0

    def _warn(self, message: str, *args: object) -> None:
        """Log a warning from a thread of its own: a handler writing to the sink that stalled must stall no decision.

        :meth:`flush` waits for it (within its timeout), so what a flushed log said is in the host's log.
        """
        warner = threading.Thread(target=_warning, args=(message, *args), name="mtotrust-decision-log-warning",
                                  daemon=True)
        with contextlib.suppress(RuntimeError):  # no thread left: the count still says it
            warner.start()
            self._warners.append(warner)

    def _warn_drop(self) -> None:
        if self._closed:
            self._warn("mtotrust decision log to %s: a record came after close(); decisions go on, and such "
                         "records are counted in DecisionLog.dropped", self.target.name)
            return
        self._warn("mtotrust decision log to %s: the target takes lines slower than decisions come (%d lines "
                     "queued); decisions go on, and records are dropped, counted in DecisionLog.dropped and noted "
                     "in the log once it takes lines again", self.target.name, self.size)

    def failed(self, records: int, exc: BaseException) -> None:
        """Count ``records`` that could not be written; report the first failure."""
        with self._lock:
            self.errors += records
            first, self._warned_error = not self._warned_error, True
        if first:
            self._warn("mtotrust decision log to %s: cannot write (%s: %s); decisions go on, and records that "
                         "could not be written are counted in DecisionLog.errors", self.target.name,
                         type(exc).__name__, exc)

    def flush(self, timeout: float | None) -> bool:
        """Wait until every line queued so far has left the queue; ``False`` when ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            goal = self._accepted
            while self._done < goal:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining)
        return self._join_warners(deadline)

    def _join_warners(self, deadline: float | None) -> bool:
        """Wait for the warnings under way to be logged, until ``deadline``; return whether they were."""
        for warner in list(self._warners):
            warner.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if warner.is_alive():
                return False
        return True

    def stop(self) -> None:
        """Refuse new records; the thread drains the queue, closes the target and exits."""
        with self._lock:
            self._closed = True
            self._has_work.notify()
            thread = self._thread
        if thread is None:
            self.target.close()

    def close(self, timeout: float | None) -> bool:
        """Stop, and wait up to ``timeout`` for the thread to write the queue; return whether it all went."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
        return self._join_warners(deadline) and not self._abandoned

    def after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its queue is the parent's to write."""
        self._reset_locks()
        self._pending.clear()
        self._accepted = self._done = self._gap = 0
        self._thread = None
        self._warners = []

    def _run(self) -> None:
        try:
            self._drain()
        finally:
            with self._lock:
                if self._pending:  # never reached the target (a FIFO that got no reader before close)
                    self._abandoned = True
                    self.dropped += _records(self._pending)
                    self._pending.clear()
                self._done = self._accepted
                self._progress.notify_all()
            self.target.close()

    def _drain(self) -> None:
        # The writer takes the whole queue at once (a swap, so deciding threads never wait behind it): under a
        # busy GIL it gets few turns, and each turn must be able to empty the queue.
        batch: collections.deque[str] = collections.deque()
        while True:
            with self._lock:
                if not batch:
                    while not self._pending and not self._closed:
                        self._has_work.wait()
                    if not self._pending:
                        return
                    batch, self._pending = self._pending, collections.deque()
                closing = self._closed
            try:
                if not self.target.ready():
                    if closing:  # give the batch back: _run counts what never reached the target
                        with self._lock:
                            self._pending.extendleft(reversed(batch))
                        return
                    with self._lock:
                        self._has_work.wait(_RETRY_SECONDS)
                    continue
                self.target.write("".join(batch))
            except Exception as exc:  # noqa: BLE001 - whatever the target raises, decisions go on
                self.failed(_records(batch), exc)
            with self._lock:
                self._done += len(batch)
                if not self._pending:
                    self._note_gap()
                self._progress.notify_all()
            if not closing:
                time.sleep(_LINGER_SECONDS)
            batch = collections.deque()


_WRITERS: weakref.WeakSet[_Writer] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Give every log's queue a short, shared moment to reach its target before the interpreter exits."""
    deadline = time.monotonic() + _EXIT_SECONDS
    for writer in list(_WRITERS):
        writer.flush(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class DecisionLog:
    """Write one JSON line per decision to a file (appended) or an open text stream, never delaying a decision.

    Lines go through a bounded queue to a background thread. When the queue is full (the target stalls or
    cannot keep up) a record is dropped and counted in :attr:`dropped`; when the target takes lines again, a line
    ``{"dropped": N, "time": "..."}`` says how many records that gap lost. A write that fails is counted in
    :attr:`errors`. Each is reported once through the ``mtotrust`` logger; nothing is ever raised to a decision.
    Use it as a context manager, or call :meth:`close` at shutdown; at interpreter exit, queued lines get about
    a second to reach their target.

    Args:
        target: a path, opened to append (created 0600 if new; an existing file keeps its mode), or a writable
            text stream. Opening never blocks: a FIFO without a reader is opened once one comes, by the writer.
        salt: the per-deployment secret identities are hashed with (HMAC-SHA-256): non-empty bytes or str.
            Without one, a random salt is drawn per process, so hashes are comparable only within one run.
        hash_identities: ``False`` writes addresses in plain text; only do this where the log is protected.
        queue_size: lines held for the writer before records are dropped.

    Raises:
        ValueError: ``salt`` is empty or neither bytes nor str, or ``queue_size`` is not a positive int.
        OSError: the path cannot be opened (a missing folder, a folder, no permission), naming the path.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Writes from a bounded queue on a background thread; ``flush``, ``dropped``, ``queue_size``, context
       manager; refuses an empty or non-bytes/str salt; creates the file 0600.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str], *, salt: bytes | str | None = None,
                 hash_identities: bool = True, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"DecisionLog: queue_size={queue_size!r} is not a positive int; give the number of "
                             f"lines to hold for the writer, e.g. {DEFAULT_QUEUE_SIZE}")
        self._salt = _salt(salt)
        self._hash = hash_identities
        sink = _PathTarget(target) if isinstance(target, (str, os.PathLike)) else _StreamTarget(target)
        self._writer = _Writer(sink, queue_size)
        weakref.finalize(self, self._writer.stop).atexit = False

    @property
    def dropped(self) -> int:
        """Number of records dropped: the queue was full (the target stalled or was slow) or the log closed."""
        return self._writer.dropped

    @property
    def errors(self) -> int:
        """Number of records whose write failed (a full disk, a closed or raising stream)."""
        return self._writer.errors

    def identity(self, text: str) -> str:
        """Return how an identity appears in the log: an HMAC of it, or itself when hashing is off."""
        if not self._hash:
            return text
        return "hmac:" + hmac.digest(self._salt, text.encode("utf-8", "surrogatepass"), "sha256").hex()[:32]

    def record(self, decision: AppDecision) -> None:
        """Queue one line for ``decision`` (the engine calls this for every app decision). Never raises or waits.

        The line holds ``time``, ``decision_id`` (32 random hex digits), ``app``, ``trust``, ``outcome``,
        ``reasons``, ``snapshot_id``, ``policy_fingerprint`` and ``identities``.
        """
        writer = self._writer
        try:
            if writer.full():
                writer.drop()
                return
            app, word = outcome(decision)
            line: dict[str, Any] = {
                "time": _now(),
                "decision_id": os.urandom(16).hex(),
                "app": app,
                "trust": decision.trust.value,
                "outcome": word,
                "reasons": list(decision.reasons),
                "snapshot_id": decision.snapshot_id,
                "policy_fingerprint": decision.policy_fingerprint,
                "identities": [self.identity(r.address or r.identity) for r in _resolutions(decision)],
            }
            writer.put(json.dumps(line, ensure_ascii=True) + "\n")
        except Exception as exc:  # noqa: BLE001 - a log failure must never break a decision
            writer.failed(1, exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line queued so far has been handed to the target (or counted in :attr:`errors`).

        Returns:
            ``True`` when the queue drained, ``False`` when ``timeout`` seconds ran out first (a stalled target).
        """
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the writer and close a file the log opened (a stream passed in is left open).

        Records after ``close`` are dropped and counted. When the target does not take the queue within
        ``timeout`` seconds the writer finishes in the background and closes the file then.

        Returns:
            ``True`` when every queued line was handed to the target and the writer stopped in time.
        """
        return self._writer.close(timeout)

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
