"""How long ``mtotrust --help`` takes to answer, next to ``import mtotrust``.

    python -m benchmarks.cli_startup              # best of 15 runs each, after one warm-up run
    python -m benchmarks.cli_startup --repeat 30

Each command runs as a fresh subprocess; the runs are interleaved (one of each per round) so that a busy
machine slows every row alike. The figure is the best (lowest) wall time, the usual measure of start-up cost:
noise only ever adds time. Every ratio is to ``python -c "import mtotrust"``, the floor for any command (the
CLI lives inside the package). The target, ``mtotrust --help`` under 1.5x that floor, is reported, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5


def _console_script() -> str | None:
    """The installed ``mtotrust`` script: next to this interpreter (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / ("mtotrust.exe" if os.name == "nt" else "mtotrust")
    return str(beside) if beside.exists() else shutil.which("mtotrust")


def _commands() -> list[tuple[str, list[str] | None]]:
    script = _console_script()
    return [
        ('python -c "pass"', [sys.executable, "-c", "pass"]),
        ('python -c "import mtotrust"', [sys.executable, "-c", "import mtotrust"]),
        ("python -m mtotrust --help", [sys.executable, "-m", "mtotrust", "--help"]),
        ("mtotrust check --help", [script, "check", "--help"] if script else None),
        ("mtotrust lint --help", [script, "lint", "--help"] if script else None),
    ]


def _time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def measure(repeat: int) -> dict[str, float | None]:
    """Return the best wall time in seconds of each command (``None``: the console script is not installed)."""
    commands = _commands()
    for _, argv in commands:  # warm-up: the file system cache and .pyc files
        if argv is not None:
            _time_once(argv)
    best: dict[str, float | None] = {name: None for name, _ in commands}
    for _ in range(repeat):
        for name, argv in commands:
            if argv is not None:
                elapsed = _time_once(argv)
                previous = best[name]
                best[name] = elapsed if previous is None else min(previous, elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli_startup", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per command (default 15)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    best = measure(args.repeat)
    base = best['python -c "import mtotrust"']
    assert base is not None
    print(f"mtotrust CLI start-up, best of {args.repeat} runs after a warm-up ({sys.executable}, "
          f"Python {sys.version.split()[0]})\n")
    width = max(len(name) for name in best)
    print(f"{'command':<{width}}  {'ms':>7}  {'ratio':>6}")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 6}")
    for name, seconds in best.items():
        if seconds is None:
            print(f"{name:<{width}}  {'not installed':>15}")
        else:
            print(f"{name:<{width}}  {seconds * 1e3:7.1f}  {seconds / base:5.2f}x")
    helped = best["python -m mtotrust --help"]
    assert helped is not None
    verdict = "met" if helped / base < TARGET else "MISSED"
    print(f"\ntarget: mtotrust --help under {TARGET}x import mtotrust: {helped / base:.2f}x, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
