"""Run mtotrust's reliability suite and print the figures of docs/reliability.md.

    python scripts/reliability.py                 # corpus, concurrency stress, SIGKILL test, CLI (about a minute)
    python scripts/reliability.py --soak 10000000 # plus a 10M-decision soak with RSS at start and end
    python scripts/reliability.py --forged 1000000 --dlp-calls 5000000   # the figures of docs/security.md
    python scripts/reliability.py --faults-only --quick                  # only the fault scenarios, small sizes

It runs the same corpus and harness as tests/test_reliability_*.py (tests/hostile.py): every hostile input
through every public entry point (engine.resolve/mail/dlp/label_rights/teams, parse_identity,
Snapshot.load/from_documents/with_delta, Policy.load/from_data, and the CLI in a subprocess), 8 reader threads
against 100 delta-and-swap rounds, 100 SIGKILLs of a process saving the store, and 20,000 single-bit flips of a
saved store (plus 1,000 with its seal rebuilt). Exit status 1 if anything crashed, failed open, mixed generations,
lost the store or loaded a flipped store as another directory.

Then the fault scenarios of ``scripts/faults/`` (one module per class: decision-log targets that stall, are slow
or full; files that are not what they claim; CLI faults; killed and failed store saves; big inputs; lint on big
directories), one printed row each.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import faults.cli
import faults.files
import faults.lint
import faults.log
import faults.scale
import faults.store
import hostile as h

import mtotrust
from mtotrust import Snapshot, SnapshotError, TrustEngine
from mtotrust._store import SEAL_MARKER


def cli_corpus() -> h.Tally:
    """Bad snapshots and policies must exit 2 with one stderr line; hostile identities exit 0, fail closed."""
    t = h.Tally()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = root / "s.sqlite"
        h.SAMPLE.save(store)
        (root / "half.sqlite").write_bytes(store.read_bytes()[:60_000])
        (root / "typo.toml").write_text("version = 1\n[mail]\nuntaged_at = 'internal'\n")
        (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
        folder = h.make_sample_copy(root / "trunc")
        (folder / "organization.json").write_text('{"value": [')
        sample = str(h.SAMPLE_DIR)
        bad = [["check", "--snapshot", str(root / "half.sqlite"), "x@y.z"],
               ["check", "--snapshot", str(folder), "x@y.z"], ["check", "--snapshot", str(root / "nope"), "x@y.z"],
               ["check", "--snapshot", sample, "--policy", str(root / "typo.toml"), "x@y.z"],
               ["check", "--snapshot", sample, "--policy", str(root / "deep.json"), "x@y.z"],
               ["check", "--snapshot", sample], ["frobnicate"]]
        for args in bad:
            t.tried += 1
            proc = subprocess.run(
            check=False, args=[sys.executable, "-m", "mtotrust", *args], capture_output=True, text=True,
                                  timeout=120)
            lines = proc.stderr.strip().splitlines()
            if proc.returncode != 2 or len(lines) != 1 or "Traceback" in proc.stderr:
                t.crashes.append(("cli", " ".join(args)[:100], f"exit {proc.returncode}: {proc.stderr[-300:]}"))
        identities = [s for s in h.HOSTILE_STRINGS if "\x00" not in s and len(s) < 50_000
                      and not any("\ud800" <= c <= "\udfff" for c in s) and h.hostile_cap(s) <= h.Trust.EXTERNAL]
        identities += [a for a, _, e in h.CONFUSABLE_IDENTITIES if e in ("confusable", "foreign")]
        proc = subprocess.run(
            check=False, args=[sys.executable, "-m", "mtotrust", "check", "--snapshot", sample, "--json", "--",
                               *identities], capture_output=True, text=True, timeout=300)
        t.tried += len(identities)
        if proc.returncode != 0:
            t.crashes.append(("cli", "hostile identities", f"exit {proc.returncode}: {proc.stderr[-300:]}"))
        else:
            for report in json.loads(proc.stdout):
                if report["trust"] not in ("untrusted", "external") or not report["mail"]["tag_external"] \
                        or report["dlp"]["inside_organization"]:
                    t.fail_open.append(("cli", report["identity"][:80], report["trust"]))
        arg = b"x\xff@contoso.com".decode("utf-8", "surrogateescape")
        t.tried += 1
        proc = subprocess.run(
            check=False, args=[sys.executable, "-m", "mtotrust", "check", "--snapshot", sample, arg],
                              capture_output=True, timeout=120, env={"PYTHONIOENCODING": "utf-8", "PATH": ""})
        if proc.returncode not in (0, 2):
            t.crashes.append(("cli", "x\\xff@contoso.com", f"exit {proc.returncode}: {proc.stderr[-200:]!r}"))
    return t


def soak(n: int) -> dict[str, object]:
    rng = random.Random(11)
    engine = TrustEngine(h.SAMPLE, h.POLICY)
    start = h.rss_kib()
    marks = []
    t0 = time.perf_counter()
    step = max(n // 10, 1)
    for i in range(n):
        identity = h.random_identity(rng)
        if i % 4 == 0:
            engine.dlp([identity, h.LOCAL_SENDER])
        else:
            engine.mail(identity)
        if (i + 1) % step == 0:
            marks.append(h.rss_kib())
    stats = engine.stats()
    return {"decisions": n, "rss_start_kib": start, "rss_marks_kib": marks, "rss_end_kib": h.rss_kib(),
            "cache_entries": stats.cache_entries, "cache_size": stats.cache_size,
            "seconds": round(time.perf_counter() - t0, 1)}


def store_bit_flips(flips: int, resealed: int) -> collections.Counter[tuple[str, str]]:
    """Flip one random bit of the saved sample store, ``flips`` times, and load each with default options.

    Each must be a ``SnapshotError`` ("refused") or load the very directory saved ("same"); "another" is a
    failure. Then ``resealed`` flips with the seal rebuilt after the flip (only the reader's type and reference
    checks left), where "another" is counted, not a failure: only a crash (another exception) is.
    """
    def state(snap: Snapshot) -> tuple[object, ...]:
        return (snap.id, snap.taken_at, snap.tenant_id, snap.local_domains, dict(snap.tenants),
                dict(snap.domain_tenants), dict(snap.partners), list(snap.users.items()),
                {a: snap.lookup(a) for a in snap.addresses()}, dict(snap.metadata))

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    rng = random.Random(20261201)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.sqlite"
        h.SAMPLE.save(path)
        data = path.read_bytes()
        pages = data[:-32 - len(SEAL_MARKER)]
        expected = state(Snapshot.load(path))
        for i in range(flips + resealed):
            mode = "default" if i < flips else "resealed"
            damaged = bytearray(data if mode == "default" else pages)
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            if mode == "resealed":
                damaged += hashlib.sha256(damaged).digest() + SEAL_MARKER
            path.write_bytes(damaged)
            try:
                outcome = "same" if state(h.bounded(Snapshot.load, path)) == expected else "another"
            except SnapshotError:
                outcome = "refused"
            except Exception as exc:  # noqa: BLE001 - counted and reported as a crash
                outcome = f"crash {type(exc).__name__}"
            counts[mode, outcome] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak", type=int, default=0, metavar="N", help="also run N random decisions and report "
                        "RSS (10000000 for the figure in docs/reliability.md)")
    parser.add_argument("--forged", type=int, default=100_000, metavar="N", help="forged #EXT# spellings to resolve "
                        "(1000000 for the figure in docs/security.md)")
    parser.add_argument("--dlp-calls", type=int, default=200_000, metavar="N", help="DLP calls under concurrent "
                        "snapshot swaps (5000000 for the figure in docs/security.md)")
    parser.add_argument("--flips", type=int, default=20_000, metavar="N", help="single-bit flips of a saved store, "
                        "each loaded with default options (1,000 more with the seal rebuilt)")
    parser.add_argument("--quick", action="store_true", help="run the fault scenarios at small sizes")
    parser.add_argument("--faults-only", action="store_true", help="run only the fault scenarios")
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"mtotrust {mtotrust.__version__} reliability run, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
          f"Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    ok = args.faults_only or corpus_and_stress(args)
    for module in (faults.log, faults.files, faults.cli, faults.store, faults.scale, faults.lint):
        for row in module.run(quick=args.quick):
            print(f"  {'ok  ' if row.ok else 'FAIL'} {row.scenario:60} {row.value}")
            ok = ok and row.ok
    print(f"total {time.perf_counter() - started:.1f} s: {'OK' if ok else 'FAILURES'}")
    return 0 if ok else 1


def corpus_and_stress(args: argparse.Namespace) -> bool:
    """Run the corpus, the swaps, the kills, the bit flips (and the soak); print them; return whether all held."""
    total = h.Tally()
    with tempfile.TemporaryDirectory() as tmp:
        parts = [("identities x engine entry points (cached)", lambda: h.run_identity_corpus(
                     TrustEngine(h.SAMPLE, h.POLICY))),
                 ("identities x engine entry points (uncached)", lambda: h.run_identity_corpus(
                     TrustEngine(h.SAMPLE, h.POLICY, cache_size=0))),
                 ("Authentication-Results", h.run_auth_corpus),
                 ("fail-open classes (ignorables, #EXT# blocks, foreign #EXT#)", h.class_variants),
                 ("loaders (documents, deltas, folders, policies)", lambda: h.check_loaders(Path(tmp))),
                 ("CLI (subprocess)", cli_corpus)]
        for name, run in parts:
            tally = run()
            total.merge(tally)
            print(f"  {name:48} {tally.tried:7} inputs  crashes {len(tally.crashes)}  fail-open "
                  f"{len(tally.fail_open)}")
            for entry, value, what in (tally.crashes + tally.fail_open)[:10]:
                print(f"      {entry}({value}): {what[:160]}")
    print(f"inputs tried {total.tried}, crashes {len(total.crashes)}, fail-open {len(total.fail_open)}")
    swaps = h.swap_stress(swaps=100, readers=8)
    print(f"swaps survived {swaps.swaps - bool(swaps.mixed or swaps.stale or swaps.errors)}/{swaps.swaps} "
          f"(8 readers, {swaps.decisions} decisions; mixed {len(swaps.mixed)}, stale {len(swaps.stale)}, "
          f"errors {len(swaps.errors)}, cache peak {swaps.max_cache_entries})")
    kills = h.kill_writer(kills=100)
    print(f"kills survived {kills.survived}/{kills.kills} ({kills.saves_completed} complete saves between kills; "
          f"{kills.temp_files_after_kills} files left by killed writers, {kills.leftover_temp_files} after the next "
          "save)")
    for failure in kills.failures[:5]:
        print(f"      {failure}")
    forged = h.forged_ext_memory(args.forged)
    print(f"forged #EXT# spellings {forged.names}: wrong answers {forged.wrong}, per-snapshot answers kept "
          f"{forged.answers}, cache {forged.cache_entries}; RSS start {forged.rss_start_kib / 1024:.1f} MiB, every "
          "10%: " + ", ".join(f"{m / 1024:.1f}" for m in forged.rss_marks_kib) + " MiB")
    mix = h.dlp_mix(args.dlp_calls)
    print(f"DLP under concurrent updates: {mix.calls} calls, {mix.swaps} swaps, mixed answers {mix.mixed}")
    flips = store_bit_flips(args.flips, 1_000)
    for mode, label in (("default", "default load"), ("resealed", "seal rebuilt after the flip")):
        outcomes = {o: n for (m, o), n in sorted(flips.items()) if m == mode}
        print(f"store bit flips, {label}: {sum(outcomes.values())} flips: "
              + ", ".join(f"{o} {n}" for o, n in outcomes.items()))
    flips_failed = bool(flips["default", "another"]) or any(o.startswith("crash") for _, o in flips)
    ok = not (total.crashes or total.fail_open or swaps.mixed or swaps.stale or swaps.errors or kills.failures
              or kills.leftover_temp_files
              or forged.wrong or forged.answers > 2 or mix.mixed or flips_failed)
    if args.soak:
        result = soak(args.soak)
        print(f"soak {result['decisions']} decisions in {result['seconds']} s: RSS start "
              f"{result['rss_start_kib'] / 1024:.1f} MiB, end {result['rss_end_kib'] / 1024:.1f} MiB, every 10%: "
              + ", ".join(f"{m / 1024:.1f}" for m in result["rss_marks_kib"])  # type: ignore[union-attr]
              + f" MiB; cache {result['cache_entries']}/{result['cache_size']}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
