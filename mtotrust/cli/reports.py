"""``mtotrust audit``, ``inventory`` and ``diff``: the admin reports of :mod:`mtotrust.reports` on the command line.

Each prints its report as text by default, or ``--json`` (keys in the report's order, so the same input gives the
same bytes), or for ``inventory`` ``--csv``; ``--html FILE`` also writes the report as one self-contained page,
atomically (a reader sees the old file or the new one), after checking, before the report is built, that its folder
is writable. ``audit --fail-on SEVERITY`` exits 1 when a finding is at or above that severity; ``mto_size`` under
the limit (``info``) is a figure, not a problem, and never counts (``--fail-on info`` passes on a clean directory).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtotrust._errors import MtoTrustError
from mtotrust._policy import Policy, policy_named
from mtotrust.cli._common import EXIT_OK, EXIT_PROBLEMS, UsageError, load_policy, load_snapshot, output, output_json

if TYPE_CHECKING:
    import argparse

__all__ = ["run", "write_atomic"]


def run(args: argparse.Namespace) -> int:
    """Run the report ``args.report`` names (``audit``, ``inventory`` or ``diff``) from its parsed arguments."""
    from mtotrust import reports

    kind: str = args.report
    if kind == "inventory" and args.csv and args.json:
        raise UsageError("mtotrust inventory: --csv and --json do not go together: choose one")
    if args.html is not None:
        _check_target(args.html, kind)
    # The policies first: a bad one is then the only line on stderr, not one after the bundled-sample notice.
    report: dict[str, Any]
    if kind == "diff":
        a, b = _named(args.policy_a, "POLICY_A"), _named(args.policy_b, "POLICY_B")
        report = reports.diff(load_snapshot(args.snapshot), a, b, a_name=args.policy_a, b_name=args.policy_b)
    else:
        policy = load_policy(args.policy, args.policy_fingerprint)
        make = reports.audit if kind == "audit" else reports.inventory
        report = make(load_snapshot(args.snapshot), policy)
    if args.html is not None:
        write_atomic(args.html, reports.html(kind, report), command=kind)
    if args.json:
        output_json(report)
    elif kind == "inventory" and args.csv:
        output(reports.csv_rows(report), end="")
    else:
        output(reports.text(kind, report))
    if kind == "audit" and args.fail_on is not None:
        floor = reports.SEVERITIES.index(args.fail_on)
        # An mto_size under the limit (info) is a figure, not a problem: it never fails the run.
        problems = [f for f in report["findings"] if not (f["kind"] == "mto_size" and f["severity"] == "info")]
        if any(reports.SEVERITIES.index(f["severity"]) >= floor for f in problems):
            return EXIT_PROBLEMS
    return EXIT_OK


def _check_target(path: str, command: str) -> None:
    """Fail early, before the report is built, when ``--html`` names nothing or a file that cannot be written.

    Raises:
        UsageError: ``path`` is empty or a folder, or its folder does not exist or is not writable.
    """
    if not path:
        raise UsageError(f"mtotrust {command}: --html needs a file name (got an empty one)")
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UsageError(f"mtotrust {command}: cannot write --html {path!r}: it is a folder")
    if not target.parent.is_dir():
        raise UsageError(f"mtotrust {command}: cannot write --html {path!r}: no folder {str(target.parent)!r}")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise UsageError(f"mtotrust {command}: cannot write --html {path!r}: the folder is not writable")


def _named(name: str, which: str) -> Policy:
    """Return the policy ``classic``, ``default`` or a policy file names (``diff``'s arguments)."""
    try:
        return policy_named(name)
    except MtoTrustError as exc:
        raise UsageError(f"mtotrust diff: {which} {name!r} is neither 'classic', 'default' nor a valid policy file: "
                         f"{' '.join(str(exc).split())}") from None


def write_atomic(path: str, content: str, *, command: str) -> None:
    """Write ``content`` (UTF-8) to ``path`` atomically: a temporary file in the same folder, renamed over it.

    A symbolic link is followed (its target is replaced); a file it replaces keeps its mode, a new one gets
    ``0o666`` under the umask. On any failure the file at ``path`` is unchanged and no temporary file is left.

    Raises:
        UsageError: the file cannot be written (no such folder, no permission, a full disk, a folder at
            ``path``); one line naming it and the ``--html`` option of ``command``.
    """
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        try:
            mode: int | None = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)
                fh.write(content.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    except OSError as exc:
        raise UsageError(f"mtotrust {command}: cannot write --html {path!r}: {exc.strerror or exc}") from None
