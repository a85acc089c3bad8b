"""Store faults: a failed or killed ``Snapshot.save`` leaves the target as it was and nothing beside it.

design.md section 2 (rev 2): a later save removes what a killed one left, under a lock between writers; every
save error is a ``SnapshotError`` naming the target; the store keeps the target's mode (0644 under the umask
for a new file); a save through a symbolic link writes the link's target; any id or address text that ``save``
accepts, ``load`` reads back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hostile as h
import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from strategies import build, synced

import mtotrust._store as store_module
from mtotrust import Snapshot, SnapshotError
from mtotrust._builder import SnapshotBuilder

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork (Linux)")

A = build([synced("a1", "ann@fabrikam.com")])
B = build([synced("b1", "bob@fabrikam.com"), synced("b2", "cy@fabrikam.com")])


def beside(path: Path) -> list[str]:
    """Return the names in the folder of ``path`` other than its own."""
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def child(work: Callable[[], None]) -> int:
    """Fork; the child runs ``work`` and exits 0 (or 1 when it raised); return the child's pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int) -> int:
    """Wait for ``pid`` and return its exit status (minus the signal number when a signal ended it)."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def paused_write(before_return: Callable[[], None]) -> Callable[..., None]:
    """Return a ``_write`` that writes the whole store, then calls ``before_return`` (the save is mid-way)."""
    real = store_module._write

    def write(conn: Any, parts: Any) -> None:
        real(conn, parts)
        before_return()
    return write


def killed_mid_save(target: Path) -> int:
    """Fork a child that saves B to ``target`` and is SIGKILLed once its temporary file is written; reap it."""
    def work() -> None:
        store_module._write = paused_write(lambda: os.kill(os.getpid(), signal.SIGKILL))
        B.save(target)
    return exit_code(child(work))


class TestLeftovers:
    """What a killed save leaves, the next save removes; a live save's temporary file is never touched."""

    def test_a_later_save_removes_what_killed_saves_left_and_nothing_else(self, tmp_path: Path) -> None:
        """A save SIGKILLed with its temporary file complete, and the names an older mtotrust's killed saves
        left (``.NAME.<random>.tmp`` and its ``-journal``), are gone after the next save; other files stay."""
        target = tmp_path / "s.sqlite"
        A.save(target)
        assert killed_mid_save(target) == -signal.SIGKILL
        left = beside(target)
        assert any(name.endswith(".tmp") for name in left), left  # the kill left its temporary file
        old = [".s.sqlite.k3_x9a0q.tmp", ".s.sqlite.k3_x9a0q.tmp-journal"]
        others = [".s.sqlite.keep.tmp", ".s.sqlite.k3_x9a0q.tmp.bak", ".t.sqlite.k3_x9a0q.tmp", "s.sqlite.k3_x9a0q.tmp",
                  ".s.sqlite.other.k3_x9a0q.tmp"]
        for name in old + others:
            (tmp_path / name).write_bytes(b"x" * 100)
        B.save(target)
        assert (beside(target), Snapshot.load(target, verify=True).id) == (sorted(others), B.id)

    def test_a_save_waits_for_a_live_save_and_then_cleans_up_after_a_killed_one(self, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
        """One saver was killed mid-write; a second is mid-write when a third starts: the third waits for the
        second (whose save succeeds: its temporary file was not removed), then removes the killed one's file."""
        target = tmp_path / "s.sqlite"
        A.save(target)
        assert killed_mid_save(target) == -signal.SIGKILL
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()

        def live() -> None:
            def pause() -> None:
                os.write(ready_w, b"r")
                os.read(go_r, 1)
            store_module._write = paused_write(pause)
            B.save(target)

        waiting = threading.Event()
        real_flock = fcntl.flock

        def flock(fd: int, operation: int) -> None:
            waiting.set()
            real_flock(fd, operation)
        errors: list[Exception] = []

        def third() -> None:
            try:
                A.save(target)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        thread = threading.Thread(target=third)
        second = child(live)
        os.close(ready_w)
        os.close(go_r)
        try:
            assert os.read(ready_r, 1) == b"r"  # the second saver holds the lock, its temporary file written
            monkeypatch.setattr(fcntl, "flock", flock)
            thread.start()
            assert waiting.wait(60)  # the third saver is at the lock, before it looks for leftovers
        finally:
            with contextlib.suppress(BrokenPipeError):
                os.write(go_w, b"g")  # never leave the second saver paused
            second_exit = exit_code(second)
        thread.join(60)
        assert (second_exit, errors, beside(target), Snapshot.load(target, verify=True).id) == (0, [], [], A.id)


class TestErrors:
    """Every failed save is a SnapshotError naming the target; the target is unchanged and nothing is left."""

    def test_a_file_size_limit_mid_write(self, tmp_path: Path) -> None:
        """A save that hits ``ulimit -f`` (EFBIG, as a full disk would) fails with the path and the fix."""
        (tmp_path / "store").mkdir()
        target = tmp_path / "store" / "s.sqlite"
        A.save(target)
        before = target.read_bytes()
        big = SnapshotBuilder()
        for i in range(2000):  # a store of about 350 KB
            big.member(f"user{i}@contoso.com")
        folder = big.write(tmp_path / "big")
        program = (
            "import json, resource, signal, sys\n"
            "from mtotrust import Snapshot, SnapshotError\n"
            "snap = Snapshot.load(sys.argv[1])\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
            "try:\n"
            "    snap.save(sys.argv[2])\n"
            "except SnapshotError as exc:\n"
            "    print(json.dumps([exc.file, str(exc)]))\n"
        )
        done = subprocess.run([sys.executable, "-c", program, str(folder), str(target)], capture_output=True, text=True,
                              timeout=120, check=True)
        file, message = json.loads(done.stdout)
        assert (file, target.read_bytes() == before, beside(target)) == (str(target), True, [])
        assert message.startswith(f"{target}: cannot be saved")
        assert "file size limit (ulimit -f)" in message or "a write failed" in message, message

    @pytest.mark.parametrize("where", ["missing folder", "symlink loop", "folder"])
    def test_a_path_that_cannot_be_a_store(self, tmp_path: Path, where: str) -> None:
        """A missing folder, a link to itself, or a folder at the path is refused with the path and a fix."""
        path = {"missing folder": tmp_path / "nowhere" / "s.sqlite", "symlink loop": tmp_path / "loop",
                "folder": tmp_path / "dir"}[where]
        if where == "symlink loop":
            path.symlink_to(path)
        if where == "folder":
            path.mkdir()
        with pytest.raises(SnapshotError) as caught:
            A.save(path)
        assert caught.value.file == str(path)
        assert any(fix in str(caught.value) for fix in ("create it first", "remove it", "give the path of a store"))
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name] if where != "missing folder" else [])

    def test_text_sqlite_cannot_store(self, tmp_path: Path) -> None:
        """A lone surrogate (which Graph JSON can escape) is refused with the value, not a UnicodeEncodeError."""
        snap = build([synced("u1", "ann@fabrikam.com", otherMails=["x\ud800@contoso.com"])])
        target = tmp_path / "s.sqlite"
        A.save(target)
        with pytest.raises(SnapshotError) as caught:
            snap.save(target)
        assert (caught.value.file, caught.value.value) == (str(target), "x\ud800@contoso.com")
        assert "lone surrogate (U+D800)" in str(caught.value)
        assert (Snapshot.load(target).id, beside(target)) == (A.id, [])


class TestFileAttributes:
    """The new store is the old one's kind of file, where the old one was."""

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444])
    def test_the_mode_of_the_replaced_store_is_kept(self, tmp_path: Path, mode: int) -> None:
        """A 0644 store stays readable by the accounts that read it (it used to become 0600)."""
        target = tmp_path / "s.sqlite"
        A.save(target)
        target.chmod(mode)
        B.save(target)
        assert stat.S_IMODE(target.stat().st_mode) == mode

    def test_the_owner_and_group_of_the_replaced_store_are_kept_where_the_account_may(self, tmp_path: Path) -> None:
        """Root gives the new store the old one's owner and group; another account keeps a group it is in."""
        target = tmp_path / "s.sqlite"
        A.save(target)
        owner = (1234, 5678) if os.geteuid() == 0 else (os.geteuid(), os.getgroups()[-1])
        os.chown(target, *owner)
        B.save(target)
        assert (target.stat().st_uid, target.stat().st_gid) == owner

    @pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
    def test_a_new_store_gets_0666_under_the_umask(self, tmp_path: Path, umask: int, mode: int) -> None:
        """Like any file the account creates (the umask is the caller's, read by the kernel, never changed)."""
        target = tmp_path / "s.sqlite"
        program = (f"import os, sys\nos.umask({umask})\nfrom mtotrust import Snapshot\n"
                   "Snapshot.sample().save(sys.argv[1])\n")
        subprocess.run([sys.executable, "-c", program, str(target)], timeout=120, check=True)
        assert stat.S_IMODE(target.stat().st_mode) == mode

    @pytest.mark.parametrize("relative", [False, True])
    def test_a_save_through_a_symlink_writes_the_link_target(self, tmp_path: Path, relative: bool) -> None:
        """The link stays a link; the file it points at (in another folder) is the new store."""
        (tmp_path / "real").mkdir()
        real = tmp_path / "real" / "store.sqlite"
        A.save(real)
        link = tmp_path / "current.sqlite"
        link.symlink_to(Path("real") / "store.sqlite" if relative else real)
        B.save(link)
        assert (link.is_symlink(), Snapshot.load(real).id, Snapshot.load(link).id) == (True, B.id, B.id)
        assert (sorted(p.name for p in tmp_path.iterdir()), beside(real)) == (["current.sqlite", "real"], [])


# -- any text save accepts, load reads -------------------------------------------------------------------------

TEXT = st.text(st.characters(codec=None), max_size=8)  # every code point: controls, "\n", "\x1e", "\x1f", surrogates
SHARED = "dup@fabrikam.com"  # every user answers to it: an ambiguous address, whose ids the store lists
ADDRESS = st.one_of(TEXT, st.builds("{}@{}".format, TEXT, st.sampled_from(["contoso.com", "Fabrikam.COM"])),
                    st.sampled_from([SHARED, " Dup@fabrikam.com"]))
PROXY = st.builds(str.__add__, st.sampled_from(["SMTP:", "smtp:", "X500:", ""]), ADDRESS)
USERS = st.lists(st.tuples(TEXT, ADDRESS, st.lists(ADDRESS, max_size=3), st.lists(PROXY, max_size=3)),
                 min_size=1, max_size=4, unique_by=lambda user: user[0])


def saved_state(snap: Snapshot) -> tuple[Any, ...]:
    """Return what a store must give back: the id, the users and every lookup."""
    return snap.id, dict(snap.users), {address: snap.lookup(address) for address in snap.addresses()}


@pytest.fixture(scope="module")
def round_trip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the path every generated snapshot is saved to (one store, replaced each time)."""
    return tmp_path_factory.mktemp("round-trip") / "s.sqlite"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=USERS)
@example(users=[("a\nb", SHARED, [], []), ("c", SHARED, [], [])])  # the id that made the store unloadable
@example(users=[("\x1ea", SHARED, [], []), ("b\x1f", SHARED, [], [])])
def test_whatever_save_accepts_load_reads_back(round_trip_path: Path,
                                               users: list[tuple[str, str, list[str], list[str]]]) -> None:
    """Ids and addresses of any text, on ambiguous addresses too: the loaded store is the saved snapshot, or
    the save refuses text SQLite cannot store (a lone surrogate) with a SnapshotError."""
    try:
        snap = build([synced(uid, SHARED, mail=mail, otherMails=others, proxyAddresses=proxies)
                      for uid, mail, others, proxies in users])
    except SnapshotError:  # text the snapshot itself refuses
        reject()
    refused: object = None
    try:
        snap.save(round_trip_path)
    except SnapshotError as exc:
        refused = exc.value
    if refused is None:
        assert saved_state(Snapshot.load(round_trip_path, verify=True)) == saved_state(snap)
    else:
        assert isinstance(refused, str)
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in refused)



def test_a_fifo_planted_as_the_lock_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Someone with write access to the folder makes ``.NAME.lock`` a FIFO: save says so at once, never hangs."""
    target = tmp_path / "s.sqlite"
    os.mkfifo(tmp_path / ".s.sqlite.lock")
    with pytest.raises(SnapshotError, match="lock file .* is not a regular file"):
        h.bounded(Snapshot.sample().save, target, timeout=30)  # raises hostile.Hang if save waits on the FIFO
    assert not target.exists()
