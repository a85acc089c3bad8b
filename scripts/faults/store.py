"""Store faults (issue 10, "The store"): killed saves, a full disk, the target's mode and a symbolic link.

- 20 SIGKILLs of a process saving a 100k-user store at a random moment: the bytes and files the killed saves
  left beside the store (each next save removes them), and what is left after one more save (must be 0).
- The save time of that store with the temporary file's journal and syncs off (as saved) and with SQLite's
  defaults (a rollback journal, a sync per commit), median of a few saves.
- A save that does not fit: on a 1 MiB tmpfs (ENOSPC; needs root and mount, else skipped with a note) and
  under ``ulimit -f`` (EFBIG, in a subprocess): a SnapshotError naming the path, the target unchanged, nothing
  left.
- The mode of a 0644 store is kept; a new store is 0644 under umask 022; a save through a symlink keeps the link.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mtotrust._store as store_module
from faults import Row
from mtotrust import Snapshot, SnapshotError
from mtotrust._builder import SnapshotBuilder

__all__ = ["run"]

_MB = 1 << 20


def _builder(users: int) -> SnapshotBuilder:
    """Return a builder of ``users`` users, half local members, half synced members of one MTO tenant."""
    builder = SnapshotBuilder().tenant("fabrikam")
    for i in range(users):
        if i % 2:
            builder.member(f"user{i}@contoso.com")
        else:
            builder.synced_member(f"person{i}@fabrikam.com")
    return builder


def _beside(path: Path) -> list[Path]:
    """Return the files in the folder of ``path`` other than itself."""
    return [p for p in path.parent.iterdir() if p.name != path.name]


def _killed_saves(snap: Snapshot, folder: Path, kills: int, save_seconds: float) -> Row:
    """SIGKILL a process saving ``snap`` in a loop ``kills`` times; measure what is left, then after one save."""
    target = folder / "store.sqlite"
    snap.save(target)
    rng = random.Random(10)
    left_bytes = left_files = 0
    for _ in range(kills):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: save until killed
            try:
                os.write(ready_w, b"r")
                while True:
                    snap.save(target)
            finally:
                os._exit(0)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        time.sleep(rng.uniform(0.0, save_seconds))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        found = _beside(target)
        left_files += len(found)
        left_bytes += sum(p.stat().st_size for p in found)
    loads = Snapshot.load(target, verify=True).id == snap.id
    snap.save(target)
    after = _beside(target)
    after_bytes = sum(p.stat().st_size for p in after)
    return Row(f"store: {kills} SIGKILLs of a {len(snap.users):,}-user save, then one more save",
               f"killed saves left {left_bytes / _MB:.1f} MB in {left_files} files (each removed by the next save); "
               f"after the last save {after_bytes} bytes in {len(after)} files; store loads: {loads}",
               not after and loads)


@contextlib.contextmanager
def _sqlite_defaults() -> Iterator[None]:
    """Save with SQLite's default journal and syncs (what ``save`` did before), for the comparison."""
    saved = store_module._TEMP_PRAGMAS
    store_module._TEMP_PRAGMAS = ()
    try:
        yield
    finally:
        store_module._TEMP_PRAGMAS = saved


def _median_save(snap: Snapshot, target: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        snap.save(target)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _save_time(snap: Snapshot, folder: Path, repeats: int) -> tuple[Row, float]:
    target = folder / "timed.sqlite"
    now = _median_save(snap, target, repeats)
    with _sqlite_defaults():
        before = _median_save(snap, target, repeats)
    size = target.stat().st_size
    return Row(f"store: save time of a {len(snap.users):,}-user store ({size / _MB:.1f} MB), median of {repeats}",
               f"{now:.2f} s with no journal and one fsync; {before:.2f} s with SQLite's rollback journal and syncs",
               now <= before * 1.1), now


def _refused(target: Path, before: bytes, message: str) -> tuple[str, bool]:
    """Return the printed outcome of a save that had to fail, and whether it held."""
    unchanged = target.read_bytes() == before
    left = _beside(target)
    ok = message.startswith(f"{target}: cannot be saved") and unchanged and not left
    return f"SnapshotError {message[len(str(target)) + 2:][:90]!r}...; target unchanged: {unchanged}; " \
           f"{len(left)} files left", ok


def _full_disk(small: Snapshot, big: Snapshot, folder: Path) -> Row:
    """Save ``big`` over ``small`` on a 1 MiB tmpfs."""
    mount = folder / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        return Row("store: save on a full disk (1 MiB tmpfs, ENOSPC)",
                   f"not run: mount failed ({done.stderr.strip()[:80]}); see the ulimit -f row", True)
    try:
        target = mount / "store.sqlite"
        small.save(target)
        before = target.read_bytes()
        try:
            big.save(target)
        except SnapshotError as exc:
            value, ok = _refused(target, before, str(exc))
        else:
            value, ok = "saved: the store fitted, the scenario did not fill the disk", False
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    return Row("store: save on a full disk (1 MiB tmpfs, ENOSPC)", value, ok)


_LIMITED = (
    "import resource, signal, sys\n"
    "from mtotrust import Snapshot, SnapshotError\n"
    "snap = Snapshot.load(sys.argv[1])\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
    "try:\n"
    "    snap.save(sys.argv[2])\n"
    "except SnapshotError as exc:\n"
    "    print(exc)\n"
)


def _file_size_limit(small: Snapshot, big: SnapshotBuilder, folder: Path) -> Row:
    """Save ``big`` over ``small`` in a process limited to 1 MiB files (``ulimit -f``; EFBIG)."""
    source = big.write(folder / "big-folder")
    (folder / "limited").mkdir()
    target = folder / "limited" / "store.sqlite"
    small.save(target)
    before = target.read_bytes()
    done = subprocess.run([sys.executable, "-c", _LIMITED, str(source), str(target)], capture_output=True,
                          text=True, timeout=600, check=False)
    value, ok = _refused(target, before, done.stdout.strip())
    return Row("store: save over the file size limit (ulimit -f 1 MiB, EFBIG)", value, ok and not done.returncode)


def _attributes(snap: Snapshot, folder: Path) -> list[Row]:
    kept = folder / "mode.sqlite"
    snap.save(kept)
    kept.chmod(0o644)
    snap.save(kept)
    mode = stat.S_IMODE(kept.stat().st_mode)
    new = folder / "new.sqlite"
    program = "import os, sys\nos.umask(0o022)\nfrom mtotrust import Snapshot\nSnapshot.sample().save(sys.argv[1])\n"
    subprocess.run([sys.executable, "-c", program, str(new)], check=True, timeout=600)
    new_mode = stat.S_IMODE(new.stat().st_mode)
    (folder / "real").mkdir()
    real = folder / "real" / "store.sqlite"
    snap.save(real)
    link = folder / "link.sqlite"
    link.symlink_to(real)
    snap.save(link)
    linked = link.is_symlink() and Snapshot.load(real).id == snap.id and not _beside(real)
    return [Row("store: mode of a replaced 0644 store; a new store under umask 022",
                f"{mode:04o} kept; new {new_mode:04o}", mode == 0o644 and new_mode == 0o644),
            Row("store: save through a symlink", f"link kept: {link.is_symlink()}, its target written: {linked}",
                linked)]


def run(quick: bool) -> list[Row]:
    """Run the store scenarios; ``quick``: a 5,000-user store and 5 kills (a few seconds)."""
    users, kills, repeats = (5_000, 5, 3) if quick else (100_000, 20, 5)
    builder = _builder(users)
    snap = builder.build()
    small = _builder(10).build()
    with tempfile.TemporaryDirectory(prefix="mtotrust-store-faults-") as tmp:
        folder = Path(tmp)
        timing, seconds = _save_time(snap, folder, repeats)
        (folder / "kills").mkdir()
        rows = [_killed_saves(snap, folder / "kills", kills, seconds), timing]
        big = _builder(20_000)  # a 3.5 MB store: larger than the 1 MiB tmpfs and the 1 MiB file size limit
        rows.append(_full_disk(small, big.build(), folder))
        rows.append(_file_size_limit(small, big, folder))
        rows += _attributes(small, folder)
    return rows
