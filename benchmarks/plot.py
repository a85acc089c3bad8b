"""Chart of µs per decision against directory size, from the results of ``benchmarks.run``.

    python -m benchmarks.run --plot PATH                  # run, then draw the chart of that run
    python -m benchmarks.plot RESULTS.json [OUT.png]      # redraw a saved run (default OUT: RESULTS.png)

One line per way: mtotrust cached, mtotrust uncached, the plain-Python baseline, Cedar (cedarpy) and Casbin,
one point per directory size, both axes logarithmic (the ways span 0.2-100 µs). A way a run did not time
(not installed, skipped at 1M) has no point at that size; a way with no point at all has no line. matplotlib
(the ``bench`` extra) is imported when a chart is drawn, with the Agg backend: no display is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.generate import size_label

__all__ = ["SERIES", "TITLE", "plot", "points"]

TITLE = "µs per decision against directory size"

# (key in a result's "ways", legend label, line style): the chart's ways, drawn in this order
SERIES: tuple[tuple[str, str, str], ...] = (
    ("cached", "mtotrust cached (default cache, warm)", "o-"),
    ("uncached", "mtotrust uncached (cache_size=0)", "s-"),
    ("baseline", "plain Python: strip/lower + dict + checks", "^--"),
    ("cedar", "Cedar (cedarpy, Entities reused)", "D-."),
    ("casbin", "Casbin ABAC", "v:"),
)


def points(results: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """Return ``(users, µs/decision)`` for one way, by directory size, at the sizes where the run timed it."""
    return sorted((r["users"], r["ways"][key]["us"]) for r in results if "us" in r["ways"].get(key, {}))


def plot(results: list[dict[str, Any]], path: Path, title: str = TITLE) -> None:
    """Write a PNG chart of µs/decision against directory size for the results of ``benchmarks.run``.

    Args:
        results: the per-size dicts built by ``benchmarks.run.bench_size`` (the ``"results"`` list of a saved
            run's JSON).
        path: where to write the PNG; its folder is created if missing.
        title: the chart's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, no window
    from matplotlib.ticker import FuncFormatter, LogLocator

    sizes = sorted({r["users"] for r in results})
    fig = Figure(figsize=(8, 4.8), dpi=110, layout="constrained")
    ax = fig.subplots()
    for key, label, style in SERIES:
        pts = points(results, key)
        if pts:
            ax.plot([n for n, _ in pts], [us for _, us in pts], style, label=label, markersize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [size_label(n).replace("m", "M") for n in sizes])
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.minorticks_off()
    if len(sizes) == 1:  # one size: give the lone points some room either side
        ax.set_xlim(sizes[0] / 3, sizes[0] * 3)
    ax.set_xlabel("directory size (users)")
    ax.set_ylabel("µs per decision (log scale)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})  # no version stamp: a redraw is byte-stable


def main(argv: list[str] | None = None) -> int:
    """Redraw the chart of a saved run: ``python -m benchmarks.plot RESULTS.json [OUT.png]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results-*.json written by benchmarks.run")
    parser.add_argument("out", type=Path, nargs="?", help="the PNG to write (default: RESULTS with .png)")
    args = parser.parse_args(argv)
    saved = json.loads(args.results.read_text(encoding="utf-8"))
    results = saved["results"] if isinstance(saved, dict) else saved
    out: Path = args.out or args.results.with_suffix(".png")
    git = saved.get("git") if isinstance(saved, dict) else None
    plot(results, out, TITLE + (f" (mtotrust {git})" if git else ""))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
