"""Files that are not what they claim: FIFOs, devices, huge files, empty and cut policies.

Each case runs ``mtotrust check`` in a subprocess with a 60 s limit, as an operator would meet the fault: a
users page that is a FIFO nobody writes, a page and a policy linked to ``/dev/zero``, ``--snapshot /dev/zero``,
an empty policy, and a policy cut after its ``version`` line given with the reviewed ``--policy-fingerprint``.
The rule: every one exits 2 at once (no hang, no ``MemoryError``) with one stderr line that says what the file is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faults import Row
from mtotrust import Policy

__all__ = ["run"]

SAMPLE = Path(__file__).resolve().parents[2] / "mtotrust" / "sample"


def _check(*args: str) -> tuple[int, list[str], float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mtotrust", "check", *args, "x@y.z"], capture_output=True,
                          text=True, timeout=60, check=False)
    return proc.returncode, proc.stderr.strip().splitlines(), time.perf_counter() - start


def run(quick: bool) -> list[Row]:  # noqa: ARG001 - every case is small
    """One row per kind of file that is not what it claims."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="mtotrust-files-") as tmp:
        root = Path(tmp)
        fifo_folder, zero_folder = root / "fifo", root / "zero"
        for folder in (fifo_folder, zero_folder):
            shutil.copytree(SAMPLE, folder)
        page = sorted((fifo_folder / "users").glob("*.json"))[0]
        page.unlink()
        os.mkfifo(page)
        zero_page = sorted((zero_folder / "users").glob("*.json"))[0]
        zero_page.unlink()
        zero_page.symlink_to("/dev/zero")
        (root / "zero.toml").symlink_to("/dev/zero")
        (root / "empty.toml").write_text("", encoding="utf-8")
        reviewed = (SAMPLE / "policy.toml").read_text(encoding="utf-8")
        cut = root / "cut.toml"
        cut.write_text(reviewed[: reviewed.index("\n", reviewed.index("version")) + 1], encoding="utf-8")
        fingerprint = Policy.load(SAMPLE / "policy.toml").fingerprint
        cases = [
            ("a users page that is a FIFO nobody writes", ("--snapshot", str(fifo_folder)), "FIFO"),
            ("a users page linked to /dev/zero", ("--snapshot", str(zero_folder)), "character device"),
            ("--snapshot /dev/zero", ("--snapshot", "/dev/zero"), "character device"),
            ("--policy linked to /dev/zero", ("--policy", str(root / "zero.toml")), "character device"),
            ("an empty --policy file", ("--policy", str(root / "empty.toml")), "version"),
            ("a policy cut after its version line, with --policy-fingerprint",
             ("--policy", str(cut), "--policy-fingerprint", fingerprint), "fingerprint"),
        ]
        for what, args, word in cases:
            code, lines, seconds = _check(*args)
            said = lines[0].replace(str(root), "TMP") if lines else ""
            rows.append(Row(f"files: {what}", f"exit {code} in {seconds:.1f} s, {len(lines)} line: {said[:110]}",
                            code == 2 and len(lines) == 1 and word in said))
    return rows
