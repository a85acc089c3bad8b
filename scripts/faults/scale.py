"""Big inputs cost what they should: one user with many addresses, a huge domain map, one huge users page.

- **Many addresses on one user**: a folder whose one user has 10k, 20k and 100k ``proxyAddresses`` (then
  ``otherMails``) is loaded (``Snapshot.load``), saved (``Snapshot.save``) and given a one-field delta
  (``with_delta``); each figure is the best of three. Linear means the 100k figure is about ten times the 10k
  one; the rule allows three times that (the 10k figures are a few milliseconds, so noise moves the ratio a
  lot), which still tells linear from quadratic (a hundred times).
- **A 1M-row domains.json**: a store holding 1M domains (quick: 100k) is loaded; its confusable skeletons must
  not be computed by the load (the rule) but on the first lookup that needs them, whose cost is shown too, and
  the store answers that lookup as the folder does.
- **One huge users page**: the same seeded directory (``python -m benchmarks.generate``, 1M users, about 550 MB
  of pages; quick: 50k users with the streaming threshold and window lowered to 1 MiB in the child) loaded from
  one page (streamed), from one page with the whole-page reader (the reading before streaming) and from 1,000-user
  pages, each in its own process that reports its peak RSS (``VmHWM`` read in the child). The rule: the
  same ``Snapshot.id`` everywhere, and the streamed page peaks at most 1.5 page sizes above the small pages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faults import Row
from mtotrust import Snapshot

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
TENANT = "11111111-1111-4111-8111-111111111111"
LINEAR_SLACK = 3.0  # the largest size may cost up to three times its share of the smallest size's time
PAGE_SLACK = 1.5  # the streamed page may peak this many page sizes above the 1,000-user pages

_LOAD = """
import json, sys, time


def peak_kib():  # VmHWM: this process's own peak (ru_maxrss also counts the forked parent's pages)
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


import mtotrust._graph as graph
from mtotrust import Snapshot
if sys.argv[2] != "-":
    graph.STREAM_BYTES = int(sys.argv[2])  # a small page streamed, with a window scaled down alike
    graph._STREAM_WINDOW = min(graph._STREAM_WINDOW, int(sys.argv[2]))
start = time.perf_counter()
snapshot = Snapshot.load(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "id": snapshot.id, "users": len(snapshot.users),
                  "peak_kib": peak_kib()}))
"""


def _best(action: Callable[[], object], tries: int = 3) -> float:
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _write_folder(folder: Path, domains: dict[str, str], users: list[dict[str, Any]]) -> Path:
    (folder / "users").mkdir(parents=True)
    (folder / "organization.json").write_text(json.dumps({"value": [{"id": TENANT, "verifiedDomains": [
        {"name": "contoso.com", "isDefault": True}, {"name": "contoso.onmicrosoft.com", "isInitial": True}]}]}))
    (folder / "mto.json").write_text(json.dumps({"value": [{"tenantId": TENANT, "state": "active"}]}))
    (folder / "domains.json").write_text(json.dumps({"value": [{"domainName": d, "tenantId": t}
                                                               for d, t in domains.items()]}))
    (folder / "users" / "0001.json").write_text(json.dumps({"value": users}))
    return folder


def _one_user(count: int, field: str) -> dict[str, Any]:
    values = [f"alias{i}@contoso.com" for i in range(count)]
    return {"id": "u1", "userPrincipalName": "ann@contoso.com", "mail": "ann@contoso.com", "userType": "Member",
            "accountEnabled": True, field: [f"smtp:{v}" for v in values] if field == "proxyAddresses" else values}


def many_addresses(sizes: tuple[int, ...]) -> list[Row]:
    """Load, save and one-field delta of one user with many addresses: seconds per size, ratio to the first."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="mtotrust-scale-") as tmp:
        for field in ("proxyAddresses", "otherMails"):
            figures: dict[str, list[float]] = {"load": [], "save": [], "one-field delta": []}
            for count in sizes:
                folder = _write_folder(Path(tmp) / f"{field}{count}", {"contoso.com": TENANT},
                                       [_one_user(count, field)])
                snapshot = Snapshot.load(folder)
                figures["load"].append(_best(lambda folder=folder: Snapshot.load(folder)))
                figures["save"].append(_best(lambda s=snapshot, f=folder: s.save(f / "s.sqlite")))
                delta = [{"value": [{"id": "u1", "userType": "Guest"}]}]
                figures["one-field delta"].append(_best(lambda s=snapshot, d=delta: s.with_delta(d)))
            for what, seconds in figures.items():
                ratios = [s / seconds[0] for s in seconds]
                shown = " · ".join(f"{n // 1000}k: {s:.3f} s (×{r:.1f})" for n, s, r in zip(sizes, seconds, ratios,
                                                                                             strict=True))
                linear = sizes[-1] / sizes[0]
                rows.append(Row(f"scale: one user, {field}, {what}", shown, ratios[-1] <= LINEAR_SLACK * linear))
    return rows


def many_domains(count: int) -> list[Row]:
    """Store load time with ``count`` domains; skeletons wait for the first confusable lookup."""
    domains = {f"d{i}.example": TENANT for i in range(count)}
    domains["contoso.com"] = TENANT
    with tempfile.TemporaryDirectory(prefix="mtotrust-scale-") as tmp:
        folder = _write_folder(Path(tmp) / "folder", domains, [_one_user(1, "otherMails")])
        from_folder = Snapshot.load(folder)
        store = Path(tmp) / "s.sqlite"
        from_folder.save(store)
        start = time.perf_counter()
        loaded = Snapshot.load(store)
        load_seconds = time.perf_counter() - start
        lazy = loaded._skeletons._table is None  # the load computed no skeleton
        start = time.perf_counter()
        answer = loaded.lookalike_of("contoso.corn")
        lookup_seconds = time.perf_counter() - start
        same = answer == from_folder.lookalike_of("contoso.corn") == "contoso.com"
    return [Row(f"scale: store load with {count:,} domains",
                f"load {load_seconds:.2f} s (skeletons computed: {'none' if lazy else 'all'}); first confusable "
                f"lookup {lookup_seconds:.2f} s, answers as the folder: {same}", lazy and same)]


def _load_child(folder: Path, stream_bytes: int | None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _LOAD, str(folder), "-" if stream_bytes is None else
                           str(stream_bytes)], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def one_big_page(users: int, stream_bytes: int | None) -> list[Row]:
    """Peak RSS of one big users page (streamed, whole-page reader) against the same users in 1,000-user pages."""
    with tempfile.TemporaryDirectory(prefix="mtotrust-scale-") as tmp:
        small = Path(tmp) / "small"
        subprocess.run([sys.executable, "-m", "benchmarks.generate", str(small), "--users", str(users)],
                       cwd=ROOT, check=True, capture_output=True, text=True)
        big = Path(tmp) / "big"
        shutil.copytree(small, big)
        pages = sorted((big / "users").glob("*.json"))
        with (Path(tmp) / "one.json").open("w", encoding="utf-8") as out:
            out.write('{"value": [')
            for n, page in enumerate(pages):
                text = page.read_text(encoding="utf-8")
                out.write(("" if n == 0 else ", ") + text[len('{"value": ['):-len("]}")])
                page.unlink()
            out.write("]}")
        (Path(tmp) / "one.json").rename(big / "users" / "0001.json")
        page_mb = (big / "users" / "0001.json").stat().st_size / 1e6
        streamed = _load_child(big, stream_bytes)
        whole = _load_child(big, 1 << 62)
        paged = _load_child(small, None)
    same = streamed["id"] == whole["id"] == paged["id"] and streamed["users"] == paged["users"] == users
    mb = {name: found["peak_kib"] / 1024 for name, found in (("streamed", streamed), ("whole", whole),
                                                             ("paged", paged))}
    lowered = "" if stream_bytes is None else f", streaming threshold and window lowered to {stream_bytes >> 20} MiB"
    return [Row(f"scale: one {page_mb:.0f} MB users page ({users:,} users{lowered}), peak RSS",
                f"streamed {mb['streamed']:,.0f} MB in {streamed['seconds']:.1f} s · whole-page reader "
                f"{mb['whole']:,.0f} MB in {whole['seconds']:.1f} s · 1,000-user pages {mb['paged']:,.0f} MB in "
                f"{paged['seconds']:.1f} s; same Snapshot.id: {same}",
                same and mb["streamed"] <= mb["paged"] + PAGE_SLACK * page_mb)]


def run(quick: bool) -> list[Row]:
    """Every scale scenario: quick sizes in well under 20 s, full sizes in a few minutes."""
    return [*many_addresses((10_000, 20_000, 50_000) if quick else (10_000, 20_000, 100_000)),
            *many_domains(100_000 if quick else 1_000_000),
            *one_big_page(*((50_000, 1 << 20) if quick else (1_000_000, None)))]
