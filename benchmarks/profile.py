"""Profile the uncached resolve path and the load paths with cProfile.

    python -m benchmarks.profile [--size 100k] [--seed 7] [--queries 20000] [--top 20]

Prints the top functions by own time (tottime) and by cumulative time for: 20,000 uncached resolutions
(``TrustEngine(snap, cache_size=0).resolve``) over the benchmark query mix, ``Snapshot.load`` of the Graph JSON
folder, and ``Snapshot.load`` of the SQLite store. ``.prof`` files are written to ``benchmarks/out/`` for
snakeviz or ``python -m pstats``. The data come from ``benchmarks/out/`` (made by ``benchmarks.run`` or here).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from pathlib import Path

from benchmarks import generate as gen
from benchmarks.run import OUT, ensure_folder


def _report(prof: cProfile.Profile, title: str, top: int, path: Path) -> None:
    prof.dump_stats(path)
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key)
        stats.print_stats(top)
        body = buf.getvalue()
        start = body.find("   ncalls")
        print(f"\n--- {title}: top {top} by {key} ---")
        print(body[start:].rstrip())


def main(argv: list[str] | None = None) -> int:
    """Profile resolve and load at one size."""
    from mtotrust import Snapshot, TrustEngine

    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--size", default="100k")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--only", choices=("resolve", "json", "sqlite"), action="append")
    args = parser.parse_args(argv)
    only = set(args.only or ("resolve", "json", "sqlite"))
    n = gen.parse_size(args.size)
    d = gen.build(n, args.seed)
    folder = ensure_folder(d)
    label = gen.size_label(n)
    sqlite_path = OUT / f"snapshot-{label}-seed{args.seed}.sqlite"

    if "json" in only:
        prof = cProfile.Profile()
        prof.enable()
        snap = Snapshot.load(folder)
        prof.disable()
        _report(prof, f"Snapshot.load(Graph JSON folder, {label})", args.top, OUT / f"profile-load-json-{label}.prof")
    else:
        snap = Snapshot.load(folder)
    if "sqlite" in only:
        if not sqlite_path.exists():
            snap.save(sqlite_path)
        prof = cProfile.Profile()
        prof.enable()
        Snapshot.load(sqlite_path)
        prof.disable()
        _report(prof, f"Snapshot.load(SQLite, {label})", args.top, OUT / f"profile-load-sqlite-{label}.prof")
    if "resolve" in only:
        queries = gen.query_mix(d, args.queries)
        resolve = TrustEngine(snap, cache_size=0).resolve
        for q in queries:  # warm the per-domain caches, as a running service would be
            resolve(q)
        prof = cProfile.Profile()
        prof.enable()
        for q in queries:
            resolve(q)
        prof.disable()
        _report(prof, f"uncached resolve x{len(queries)} ({label})", args.top,
                OUT / f"profile-resolve-{label}.prof")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
