"""Lint on big directories: ``verify(policy, snapshot)`` costs time linear in the users, and bounded memory.

For each size, one child process writes the seeded benchmark directory (``python -m benchmarks.generate``: 60 %
internal members, 25 % synced members of active MTO tenants, pending/removed tenants, guests, odd objects) as a
snapshot folder, and another loads it with ``Snapshot.load`` (as ``mtotrust lint --snapshot`` does) and verifies
``Policy.default()`` on it. The verifying child reports its seconds and its own peak RSS (``VmHWM``, read in
the child: ``ru_maxrss`` and the parent's ``RUSAGE_CHILDREN`` would also count the pages of the process it was
forked from),
and its RSS once the snapshot is loaded, so verification's own share shows.

The rule: the largest directory's process stays under 2 GB, the cost per checked case grows by at most half
from the smallest directory to the largest, and verification's own memory (peak minus loaded) does not grow
with the directory (within 64 MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from faults import Row

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
FULL = (10_000, 100_000, 1_000_000)
QUICK = (1_000, 10_000)
PEAK_LIMIT_MB = 2048
SLOWDOWN_LIMIT = 1.5  # seconds per case, largest over smallest directory
GROWTH_LIMIT_MB = 64  # verification's own memory, largest minus smallest directory

_VERIFY = """
import json, sys, time


def peak_kib():  # VmHWM: this process's own peak (ru_maxrss also counts the forked parent's pages)
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


from mtotrust import Policy, Snapshot
from mtotrust._verify import verify
snapshot = Snapshot.load(sys.argv[1])
loaded = peak_kib()
start = time.perf_counter()
report = verify(Policy.default(), snapshot)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "cases": report.cases, "ok": report.ok, "loaded_kib": loaded,
                  "peak_kib": peak_kib()}))
"""


def measure(users: int) -> dict[str, float]:
    """Generate a directory of ``users`` and verify it in a fresh process; return its figures (MB, seconds)."""
    with tempfile.TemporaryDirectory(prefix="mtotrust-lint-") as tmp:
        folder = Path(tmp) / "snapshot"
        subprocess.run([sys.executable, "-m", "benchmarks.generate", str(folder), "--users", str(users)],
                       cwd=ROOT, check=True, capture_output=True, text=True)
        done = subprocess.run([sys.executable, "-c", _VERIFY, str(folder)], cwd=ROOT, check=True,
                              capture_output=True, text=True)
    found = json.loads(done.stdout)
    return {"users": users, "seconds": found["seconds"], "cases": found["cases"], "sound": found["ok"],
            "loaded_mb": found["loaded_kib"] / 1024, "peak_mb": found["peak_kib"] / 1024}


def run(quick: bool) -> list[Row]:
    """Verify the default policy on directories of growing size; a row per size and one for the scaling."""
    figures = [measure(n) for n in (QUICK if quick else FULL)]
    rows = [Row(f"lint: verify {f['users']:,.0f} users",
                f"{f['seconds']:.1f} s ({f['cases']:,.0f} cases), peak RSS {f['peak_mb']:.0f} MB "
                f"(snapshot loaded: {f['loaded_mb']:.0f} MB)",
                bool(f["sound"]) and f["peak_mb"] < PEAK_LIMIT_MB) for f in figures]
    small, big = figures[0], figures[-1]
    slowdown = (big["seconds"] / big["cases"]) / (small["seconds"] / small["cases"])
    growth = (big["peak_mb"] - big["loaded_mb"]) - (small["peak_mb"] - small["loaded_mb"])
    rows.append(Row(f"lint: cost from {small['users']:,.0f} to {big['users']:,.0f} users",
                    f"{slowdown:.2f}x seconds per case, verification's own memory {growth:+.0f} MB",
                    slowdown <= SLOWDOWN_LIMIT and growth <= GROWTH_LIMIT_MB))
    return rows
