"""Decisions per second with the decision log writing to a healthy, a stalled, a slow and a full target.

Four threads make mail decisions for distinct addresses (``cache_size=0``, so the cache hides nothing) for a fixed
time; a thread still inside a decision when the time is up is counted as blocked. Each row gives decisions/s, its
ratio to the run without a log and to the run with a healthy file, and the log's ``dropped``/``errors`` counts.

Any working log costs the deciding threads what building its line costs (an HMAC, a time stamp, the JSON), about
half a decision; that is the healthy file's figure. A target that stalls, crawls or refuses every write must cost no
more: its row is ok when no thread blocked and it reached ``THRESHOLD`` × the healthy file's decisions/s. 0.5
leaves room for the noise of a shared 2-core machine (rounds of one scenario vary by up to 1.5×) and is far from
what a log that waits on its target gives (before the queue: a stall blocked every thread within 200 decisions; a
400 KB/s reader held decisions to 0.05× the healthy file). The healthy file is ok when nothing blocked, was
dropped or failed.

Standalone: ``cd scripts && python -c "import faults.log as m; print(*m.run(quick=True), sep='\\n')"``; with
``PYTHONPATH`` naming another tree's ``mtotrust`` it measures that one (how the figures before the queue were made).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from faults import Row
from mtotrust import DecisionLog, Policy, Snapshot, TrustEngine

THRESHOLD = 0.5
"""Least decisions/s with a faulty target, as a fraction of the run with a healthy file."""
THREADS = 4
SLOW_BYTES_PER_SECOND = 400_000
GRACE_SECONDS = 2.0
"""How long a thread gets to finish its decision once the time is up before it counts as blocked."""

_SLOW_READER = f"""
import os, sys, time
start, total = time.monotonic(), 0
while chunk := os.read(0, 4096):
    total += len(chunk)
    time.sleep(max(0.0, total / {SLOW_BYTES_PER_SECOND} - (time.monotonic() - start)))
"""


def _measure(log: DecisionLog | None, seconds: float) -> tuple[float, int]:
    """Return (decisions/s, threads blocked) for ``THREADS`` threads deciding for ``seconds``."""
    engine = TrustEngine(Snapshot.sample(), Policy.default(), cache_size=0, decision_log=log)
    stop = threading.Event()
    counts = [0] * THREADS

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            engine.mail(f"user{n}.{i}@fabrikam.com")
            i += 1
            counts[n] = i

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - start
    done = sum(counts)
    deadline = time.monotonic() + GRACE_SECONDS
    for t in pool:
        t.join(max(0.0, deadline - time.monotonic()))
    return done / elapsed, sum(t.is_alive() for t in pool)


@contextlib.contextmanager
def _pipe(reader: list[str] | None) -> Iterator[IO[str]]:
    """The write end of a pipe as a text stream, read by ``reader`` (a command) or by nobody."""
    read_fd, write_fd = os.pipe()
    proc = None if reader is None else subprocess.Popen(reader, stdin=read_fd)
    stream = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        yield stream
    finally:
        os.close(read_fd)  # a writer still blocked on a pipe nobody reads gets EPIPE and lets go
        if proc is not None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            stream.close()


Target = Callable[[Path], contextlib.AbstractContextManager[IO[str] | str | None]]


def _once(target: Target, seconds: float, tmp: Path) -> tuple[float, int, int, int]:
    """Return (decisions/s, threads blocked, dropped, errors) for one run against a fresh ``target``."""
    with target(tmp) as where:
        log = None if where is None else DecisionLog(where, salt=b"reliability")
        rate, blocked = _measure(log, seconds)
        if log is None:
            return rate, blocked, 0, 0
        if hasattr(log, "flush"):
            log.close(timeout=0.1)  # what a stalled or slow target has not taken is left to the daemon writer
        else:  # the log from before the queue, measured for the figures of docs/reliability.md
            with contextlib.suppress(OSError):  # before the queue, closing /dev/full raised
                log.close()
        return rate, blocked, getattr(log, "dropped", 0), log.errors


def _nothing(_: Path) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


def _file(tmp: Path) -> contextlib.AbstractContextManager[str]:
    return contextlib.nullcontext(str(tmp / "decisions.jsonl"))


def _full(_: Path) -> contextlib.AbstractContextManager[str]:
    return contextlib.nullcontext("/dev/full")


def run(quick: bool) -> list[Row]:
    """Measure decisions/s with no log, then a healthy file, a stalled pipe, a 400 KB/s reader and /dev/full.

    The scenarios run in rounds (one quick, three in full), each round through all of them in turn so a burst of
    load elsewhere on the machine hits every scenario alike; a row gives the best round and the most blocked.
    """
    seconds, rounds = (1.0, 1) if quick else (2.0, 3)
    scenarios: list[tuple[str, Target]] = [
        ("none (no log)", _nothing),
        ("healthy file", _file),
        ("stalled target (a pipe nobody reads)", lambda _: _pipe(None)),
        (f"slow target (a reader taking {SLOW_BYTES_PER_SECOND // 1000} KB/s)",
         lambda _: _pipe([sys.executable, "-c", _SLOW_READER])),
        ("full target (/dev/full)", _full),
    ]
    results: list[list[tuple[float, int, int, int]]] = [[] for _ in scenarios]
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for (_, target), found in zip(scenarios, results, strict=True):
                found.append(_once(target, seconds, Path(folder)))
    best = [max(rate for rate, *_ in found) for found in results]
    rows = []
    for n, ((name, _), found) in enumerate(zip(scenarios, results, strict=True)):
        blocked = max(b for _, b, *_ in found)
        dropped, errors = found[-1][2:]
        value = f"{best[n]:,.0f} decisions/s ("
        if blocked:
            value += f"{blocked} of {THREADS} threads blocked; "
        value += f"{best[n] / best[0]:.2f}x no log"
        if n == 0:
            ok = True
        elif n == 1:
            ok = blocked == dropped == errors == 0
        else:
            value += f", {best[n] / best[1]:.2f}x healthy file"
            ok = blocked == 0 and best[n] >= THRESHOLD * best[1]
        if n:
            value += f"; dropped {dropped:,}, errors {errors:,} in the last round"
        rows.append(Row(f"decision log: {name}", value + ")", ok))
    return rows
