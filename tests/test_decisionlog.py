"""The decision log never stops a decision: stalled, absent or full targets; flush and close; salt; file mode."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import DecisionLog, Snapshot, TrustEngine

SAMPLE = Snapshot.sample()
HANG_GUARD = 60.0
"""Seconds a thread gets before a test calls it hung (a hang guard, not a timing assert: healthy runs take ms)."""


def _decide(log: DecisionLog, threads: int, each: int) -> int:
    """Make ``threads * each`` distinct mail decisions from several threads; return how many came back."""
    engine = TrustEngine(SAMPLE, decision_log=log, cache_size=0)
    returned: list[int] = []

    def worker(n: int) -> None:
        for i in range(each):
            engine.mail(f"user{n}.{i}@example.org")
        returned.append(each)

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(HANG_GUARD)
    return sum(returned)


class _Drain:
    """Read a pipe's read end to EOF on a thread, as a reader that finally catches up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := os.read(self.fd, 1 << 16):
            self.chunks.append(chunk)

    def lines(self) -> list[dict[str, Any]]:
        self.thread.join(HANG_GUARD)
        os.close(self.fd)
        return [json.loads(line) for line in b"".join(self.chunks).decode("ascii").splitlines()]


def _decide_through_a_stall(tmp_path: Path, while_stalled: Callable[[], None]) -> None:
    """2,000 decisions from 4 threads into a pipe nobody reads, all returning; ``while_stalled`` runs before the
    reader catches up, then every record is either written or counted as dropped."""
    with _stalled("pipe", tmp_path) as (log, read_fd):
        assert 2000 == _decide(log, threads=4, each=500)
        assert log.dropped > 0
        while_stalled()
        drain = _Drain(read_fd)
        assert log.close(timeout=HANG_GUARD)
    assert 2000 == len([x for x in drain.lines() if "decision_id" in x]) + log.dropped


class _StalledHandler(logging.Handler):
    """A host's log handler writing to a sink that stalled: ``emit`` waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.unblock = threading.Event(), threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.unblock.wait(3 * HANG_GUARD)  # longer than _decide waits for a decision


def _open_files() -> set[str]:
    """Return the paths this process has open (Linux)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed while we look
            found.add(str(fd.readlink()))
    return found


def _drop_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mtotrust" and "DecisionLog.dropped" in r.getMessage()]


@contextlib.contextmanager
def _stalled(kind: str, tmp_path: Path) -> Iterator[tuple[DecisionLog, int]]:
    """A log whose target nobody reads: an ``os.pipe()`` as a text stream, or a FIFO path with an idle reader.

    The pipe holds one page (4 KiB), less than the 100 lines the log may queue: whatever the thread schedule, the
    writer is stuck in a write before the decisions are done, as with any target that stopped reading.
    """
    if kind == "pipe":
        read_fd, write_fd = os.pipe()
        fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, 4096)
        with os.fdopen(write_fd, "w", encoding="utf-8") as stream:
            yield DecisionLog(stream, salt=b"s", queue_size=100), read_fd
        return
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(read_fd, True)
    fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, 4096)
    yield DecisionLog(fifo, salt=b"s", queue_size=100), read_fd


class TestStalledTarget:
    @pytest.mark.parametrize("kind", ["pipe", "fifo"])
    def test_decisions_go_on_and_the_log_says_what_it_dropped(self, kind: str, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
        """A target nobody reads never blocks a decision: the log drops and counts, warns once, and once the
        reader catches up writes every queued record plus a line saying how many the gap lost."""
        caplog.set_level(logging.WARNING, logger="mtotrust")
        with _stalled(kind, tmp_path) as (log, read_fd):
            assert 2000 == _decide(log, threads=4, each=500)
            assert log.dropped > 0
            assert not log.flush(timeout=0.05)
            drain = _Drain(read_fd)
            assert log.close(timeout=HANG_GUARD)
        lines = drain.lines()
        records = [x for x in lines if "decision_id" in x]
        gaps = [x for x in lines if "dropped" in x]
        assert 2000 == len(records) + log.dropped
        assert log.dropped == sum(x["dropped"] for x in gaps)
        assert all({"dropped", "time"} == x.keys() for x in gaps)
        assert 1 == len(_drop_warnings(caplog))

    def test_a_host_handler_stalled_like_the_target_stalls_no_decision(self, tmp_path: Path) -> None:
        """The log's warnings may go to the same stalled sink as its lines (one collector for both): a handler
        that never returns holds up only the warning, never a decision."""
        handler = _StalledHandler()
        logger = logging.getLogger("mtotrust")
        logger.addHandler(handler)

        def warned_then_freed() -> None:
            assert handler.entered.wait(HANG_GUARD), "the drop was never warned"
            handler.unblock.set()

        try:
            _decide_through_a_stall(tmp_path, warned_then_freed)
        finally:
            handler.unblock.set()
            logger.removeHandler(handler)

    def test_a_raising_log_filter_never_reaches_the_decision(self, tmp_path: Path) -> None:
        """A host's filter on the ``mtotrust`` logger that raises loses the warning, not the decision."""
        def refuse(record: logging.LogRecord) -> bool:
            raise RuntimeError("a broken filter")

        logger = logging.getLogger("mtotrust")
        logger.addFilter(refuse)
        try:
            _decide_through_a_stall(tmp_path, lambda: None)
        finally:
            logger.removeFilter(refuse)

    def test_fifo_without_a_reader_does_not_block_the_constructor(self, tmp_path: Path) -> None:
        """A FIFO path with no reader yet builds at once; its records reach the FIFO when a reader opens it."""
        fifo = tmp_path / "log.fifo"
        os.mkfifo(fifo)
        built: list[DecisionLog] = []
        maker = threading.Thread(target=lambda: built.append(DecisionLog(fifo, hash_identities=False)), daemon=True)
        maker.start()
        maker.join(HANG_GUARD)
        try:
            assert built, "the constructor blocked on a FIFO without a reader"
            log = built[0]
            assert 6 == _decide(log, threads=2, each=3)
            assert not log.flush(timeout=0.05)
            read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            assert log.close(timeout=HANG_GUARD)
            os.set_blocking(read_fd, True)
            lines = _Drain(read_fd).lines()
        finally:
            if maker.is_alive():  # let a constructor blocked in open() return
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        assert 6 == len(lines)
        assert {f"user{n}.{i}@example.org" for n in range(2) for i in range(3)} == {x["identities"][0] for x in lines}


class TestFullTarget:
    def test_dev_full_counts_errors_and_decisions_go_on(self, caplog: pytest.LogCaptureFixture) -> None:
        """Every record that /dev/full refuses is counted in errors, reported once, and no decision fails."""
        caplog.set_level(logging.WARNING, logger="mtotrust")
        with DecisionLog("/dev/full", salt=b"s") as log:
            assert 300 == _decide(log, threads=3, each=100)
            assert log.flush()
            assert (300, 0) == (log.errors, log.dropped)
        errors = [r for r in caplog.records if r.name == "mtotrust" and "DecisionLog.errors" in r.getMessage()]
        assert 1 == len(errors)
        assert "/dev/full" in errors[0].getMessage()


class TestFlushAndClose:
    def test_flush_returns_once_every_queued_line_is_written(self) -> None:
        """After flush(), every decision so far is a line in the stream."""
        stream = io.StringIO()
        log = DecisionLog(stream, salt=b"s")
        assert 800 == _decide(log, threads=4, each=200)
        assert log.flush()
        assert 800 == len(stream.getvalue().splitlines())
        assert log.flush(timeout=0)

    def test_a_closed_log_drops_and_counts_and_leaves_a_given_stream_open(self) -> None:
        """Records after close() are counted as dropped, never raised; a stream passed in stays open."""
        stream = io.StringIO()
        log = DecisionLog(stream, salt=b"s")
        assert 1 == _decide(log, threads=1, each=1)
        assert log.close()
        assert 5 == _decide(log, threads=1, each=5)
        assert (5, 0) == (log.dropped, log.errors)
        assert not stream.closed
        assert 1 == len(stream.getvalue().splitlines())

    def test_as_a_context_manager_it_writes_everything_and_closes_its_file(self, tmp_path: Path) -> None:
        """Leaving the with block writes every line and closes the descriptor the log opened."""
        path = tmp_path / "decisions.jsonl"
        with DecisionLog(path, salt=b"s") as log:
            assert 50 == _decide(log, threads=2, each=25)
            assert str(path) in _open_files()
        assert str(path) not in _open_files()
        assert 50 == len(path.read_text(encoding="ascii").splitlines())

    def test_a_missing_folder_is_refused_at_once_naming_the_path(self, tmp_path: Path) -> None:
        """A path in a folder that does not exist raises in the constructor, with the path and the fix."""
        path = tmp_path / "missing" / "decisions.jsonl"
        with pytest.raises(FileNotFoundError, match="existing folder") as info:
            DecisionLog(path)
        assert str(path) in str(info.value)

    def test_a_forked_child_logs_its_own_decisions_once(self, tmp_path: Path) -> None:
        """A child process's records reach the file; the parent's queue is not written twice."""
        path = tmp_path / "decisions.jsonl"
        log = DecisionLog(path, hash_identities=False)
        engine = TrustEngine(SAMPLE, decision_log=log, cache_size=0)
        engine.mail("parent@example.org")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            engine.mail("child@example.org")
            os._exit(0 if log.close(timeout=HANG_GUARD) else 1)
        _, status = os.waitpid(pid, 0)
        assert log.close()
        assert 0 == os.waitstatus_to_exitcode(status)
        logged = [json.loads(x)["identities"][0] for x in path.read_text(encoding="ascii").splitlines()]
        assert ["child@example.org", "parent@example.org"] == sorted(logged)


def _log_with(salt: object) -> DecisionLog:
    return DecisionLog(io.StringIO(), salt=salt)  # type: ignore[arg-type]


class TestSalt:
    @given(salt=st.one_of(st.binary(max_size=8), st.text(max_size=8), st.integers(), st.floats(),
                          st.binary(min_size=1, max_size=8).map(bytearray), st.lists(st.integers(), max_size=2)),
           text=st.text(max_size=40))
    def test_a_salt_keys_hmac_sha256_or_is_refused(self, salt: object, text: str) -> None:
        """Non-empty bytes or str key HMAC-SHA-256 exactly as before; anything else is a ValueError."""
        if not (isinstance(salt, (bytes, str)) and salt):
            with pytest.raises(ValueError, match="give non-empty bytes or str"):
                _log_with(salt)
            return
        key = salt.encode() if isinstance(salt, str) else salt
        digest = hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]
        assert "hmac:" + digest == _log_with(salt).identity(text)

    @pytest.mark.parametrize(("salt", "named"), [(b"", "empty salt"), ("", "empty salt"), (12345, "type int")])
    def test_the_error_names_the_problem_and_the_fix(self, salt: object, named: str) -> None:
        """An empty or wrongly typed salt is refused, saying what is wrong and where a salt should come from."""
        with pytest.raises(ValueError, match="secret store") as info:
            _log_with(salt)
        assert named in str(info.value)

    def test_a_wrongly_typed_secret_is_not_echoed(self) -> None:
        """The error names the type, never the value: a secret in the wrong type stays out of logs."""
        with pytest.raises(ValueError, match="bytearray") as info:
            _log_with(bytearray(b"hunter2-deployment-key"))
        assert "hunter2" not in str(info.value)


class TestFileMode:
    def test_a_new_file_is_0600_under_umask_022_and_an_existing_one_keeps_its_mode(self, tmp_path: Path) -> None:
        """The log never creates a world-readable file, and never changes the mode of a file it appends to."""
        new, existing = tmp_path / "new.jsonl", tmp_path / "existing.jsonl"
        existing.write_text("")
        existing.chmod(0o640)
        old = os.umask(0o022)
        try:
            for path in (new, existing):
                with DecisionLog(path, salt=b"s") as log:
                    assert 1 == _decide(log, threads=1, each=1)
        finally:
            os.umask(old)
        assert (0o600, 0o640) == (stat.S_IMODE(new.stat().st_mode), stat.S_IMODE(existing.stat().st_mode))
        assert 1 == len(existing.read_text(encoding="ascii").splitlines())
