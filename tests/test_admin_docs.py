"""docs/admin.md's command outputs are the commands' real outputs on the bundled sample.

Each block that starts with ``$ mtotrust ...`` is run (from the repository root, so ``examples/policy.toml``
resolves); every line the page prints must come in the real output, in the same order. A line ``…`` stands for
lines the page leaves out, and a line ending in ``…`` for the rest of a line it cuts.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "admin.md"


def blocks() -> list[tuple[list[str], list[str]]]:
    """(command arguments, printed lines) of every ``$ mtotrust`` block of the page."""
    found = []
    for block in re.findall(r"```\n(\$ mtotrust .*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL):
        first, *printed = block.rstrip("\n").split("\n")
        found.append((shlex.split(first[2:])[1:], printed))
    return found


def test_the_page_shows_every_report() -> None:
    """The page runs explain, audit, inventory and diff."""
    assert {"explain", "audit", "inventory", "diff"} <= {args[0] for args, _ in blocks()}


@pytest.mark.parametrize(("args", "printed"), blocks(), ids=[" ".join(args) for args, _ in blocks()])
def test_printed_output_is_real(args: list[str], printed: list[str]) -> None:
    """Every line the page prints for a command is in its real output, in order."""
    done = subprocess.run([sys.executable, "-m", "mtotrust", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    real = done.stdout.split("\n")
    position = 0
    for line in printed:
        if line.strip() == "…":
            continue
        prefix = line[:-1] if line.endswith("…") else None
        for index in range(position, len(real)):
            if real[index] == line or (prefix is not None and real[index].startswith(prefix)):
                position = index + 1
                break
        else:
            raise AssertionError(f"docs/admin.md prints {line!r} for `mtotrust {' '.join(args)}`, which the command "
                                 f"does not print (after line {position} of its output)")
