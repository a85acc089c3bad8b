"""CLI faults: a bad policy without ``--snapshot``, an ASCII locale, a full or closed stdout, a changed policy.

Each scenario runs ``python -m mtotrust`` in a subprocess, with stdout buffered as in a shell (no
``PYTHONUNBUFFERED``), and checks what the operator sees: the exit code and the stderr lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from faults import Row

TESTS = Path(__file__).resolve().parent.parent.parent / "tests"
if str(TESTS) not in sys.path:  # hostile.py holds the identity corpus (reliability.py puts it on the path too)
    sys.path.insert(0, str(TESTS))

import hostile as h  # noqa: E402 - needs the path above

from mtotrust import Policy  # noqa: E402 - after hostile, which imports it anyway

__all__ = ["run"]

_SAMPLE = str(h.SAMPLE_DIR)
_DROPPED = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONUNBUFFERED")
_FULL = "mtotrust: cannot write the output (No space left on device)"


def _env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _DROPPED}, **settings}


def _mtotrust(*args: str, env: dict[str, str] | None = None,
              stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mtotrust", *args], stdout=stdout, stderr=subprocess.PIPE,
                          env=_env() if env is None else env, check=False, timeout=600)


def _lines(proc: subprocess.CompletedProcess[bytes]) -> list[str]:
    return proc.stderr.decode("utf-8", "replace").splitlines()


def _bad_policy_lines(root: Path) -> Row:
    """``check --policy BAD`` without ``--snapshot``: exit 2 and one stderr line, for each kind of bad file."""
    bad = {"typo": "version = 1\n[mail]\nuntaged_at = 'internal'\n", "empty": "", "no version": "[dlp]\n",
           "syntax": "version = \n"}
    seen = {}
    for name, text in bad.items():
        path = root / f"{name.replace(' ', '_')}.toml"
        path.write_text(text, encoding="utf-8")
        proc = _mtotrust("check", "--policy", str(path), "megan@contoso.com")
        seen[name] = (proc.returncode, len(_lines(proc)))
    ok = all(value == (2, 1) for value in seen.values())
    shown = ", ".join(f"{name}: exit {code}, {n} line(s)" for name, (code, n) in seen.items())
    return Row("cli: bad --policy without --snapshot (exit, stderr lines)", shown, ok)


def _locale(quick: bool) -> Row:
    """Every identity of the confusable corpus gets the same answer under ``LC_ALL=C`` as under UTF-8."""
    identities = [address for address, _, _ in h.CONFUSABLE_IDENTITIES]
    if quick:  # the non-ASCII ones are where the locale matters
        identities = [a for a in identities if not a.isascii()][:200]
    identities += ["josé@contoso.com", "cameron@fabrik\u0430m.com"]

    def answers(env: dict[str, str]) -> list[tuple[str, str, list[str]]]:
        proc = _mtotrust("check", "--json", "--snapshot", _SAMPLE, *identities, env=env)
        if proc.returncode != 0:
            return []
        return [(r["identity"], r["trust"], r["reasons"]) for r in json.loads(proc.stdout)]

    utf8 = answers(_env(LC_ALL="C.UTF-8"))
    ascii_ = answers(_env(LC_ALL="C", PYTHONUTF8="0"))
    same = sum(a == b for a, b in zip(utf8, ascii_, strict=False))
    ok = len(utf8) == len(ascii_) == len(identities) == same
    return Row("cli: LC_ALL=C PYTHONUTF8=0 answers equal UTF-8 ones (confusable corpus)",
               f"{same}/{len(identities)} identities", ok)


def _full_disk(command: list[str]) -> Row:
    with Path("/dev/full").open("wb") as full:
        proc = _mtotrust(*command, stdout=full.fileno())
    lines = _lines(proc)
    ok = proc.returncode == 2 and lines == [_FULL]
    shown = f"exit {proc.returncode}: {' | '.join(lines)[:120]}"
    return Row(f"cli: mtotrust {command[0]} > /dev/full (exit 2, one line)", shown, ok)


def _closed_pipe() -> Row:
    """A reader that is gone before the first write (``| head`` that has exited): exit 0, nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _mtotrust("demo", stdout=write_end)
    finally:
        os.close(write_end)
    lines = _lines(proc)
    return Row("cli: mtotrust demo into a closed pipe (exit 0, silent)",
               f"exit {proc.returncode}, {len(lines)} stderr line(s)", proc.returncode == 0 and not lines)


def _fingerprint(root: Path) -> Row:
    """A policy edited after review: ``--policy-fingerprint`` makes check, lint and demo exit 2 with one line."""
    path = root / "reviewed.toml"
    path.write_bytes((h.SAMPLE_DIR / "policy.toml").read_bytes())
    reviewed = Policy.load(path).fingerprint
    with path.open("a", encoding="utf-8") as fh:
        fh.write('\n[overrides]\nblock = ["x.example"]\n')
    runs = {
        "check": _mtotrust("check", "--policy", str(path), "--policy-fingerprint", reviewed, "megan@contoso.com"),
        "lint": _mtotrust("lint", str(path), "--policy-fingerprint", reviewed),
        "demo": _mtotrust("demo", "--policy", str(path), "--policy-fingerprint", reviewed),
    }
    ok = all(p.returncode == 2 and len(_lines(p)) == 1 and reviewed in _lines(p)[0] for p in runs.values())
    shown = ", ".join(f"{name}: exit {p.returncode}, {len(_lines(p))} line(s)" for name, p in runs.items())
    return Row("cli: --policy-fingerprint of a changed policy (exit 2, one line)", shown, ok)


def run(quick: bool) -> list[Row]:
    """Run the CLI fault scenarios; ``quick`` checks 200 non-ASCII identities of the corpus instead of all."""
    with tempfile.TemporaryDirectory(prefix="mtotrust-cli-faults-") as tmp:
        root = Path(tmp)
        return [
            _bad_policy_lines(root),
            _locale(quick),
            _full_disk(["check", "--snapshot", _SAMPLE, "megan@contoso.com"]),
            _full_disk(["demo"]),
            _closed_pipe(),
            _fingerprint(root),
        ]
