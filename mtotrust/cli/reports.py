"""``mtotrust audit``, ``inventory`` and ``diff``: the admin reports of :mod:`mtotrust.reports` on the command line.

Each prints its report as text by default, or ``--json`` (keys in the report's order, so the same input gives the
same bytes), or for ``inventory`` ``--csv``; ``--html FILE`` also writes the report as one self-contained page,
atomically (a reader sees the old file or the new one), after checking, before the report is built, that its folder
is writable. ``audit --fail-on SEVERITY`` exits 1 when a finding is at or above that severity; ``mto_size`` under
the limit (``info``) is a figure, not a problem, and never counts (``--fail-on info`` passes on a clean directory).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from mtotrust._errors import MtoTrustError
from mtotrust._policy import Policy, policy_named
from mtotrust.cli._common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    UsageError,
    atomic_file,
    load_policy,
    load_snapshot,
    output,
    output_json,
)

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Run the report ``args.report`` names (``audit``, ``inventory`` or ``diff``) from its parsed arguments."""
    from mtotrust import reports

    kind: str = args.report
    if kind == "inventory" and args.csv and args.json:
        raise UsageError("mtotrust inventory: --csv and --json do not go together: choose one")
    # --html's file first: one that cannot be written is said before the report is built.
    with contextlib.ExitStack() as stack:
        html = None if args.html is None else stack.enter_context(atomic_file(args.html, "--html"))
        # The policies before the snapshot: a bad one is then the only line on stderr, not one after the
        # bundled-sample notice.
        report: dict[str, Any]
        if kind == "diff":
            a, b = _named(args.policy_a, "POLICY_A"), _named(args.policy_b, "POLICY_B")
            report = reports.diff(load_snapshot(args.snapshot), a, b, a_name=args.policy_a, b_name=args.policy_b)
        else:
            policy = load_policy(args.policy, args.policy_fingerprint)
            make = reports.audit if kind == "audit" else reports.inventory
            report = make(load_snapshot(args.snapshot), policy)
        if html is not None:
            html.write_text(reports.html(kind, report), encoding="utf-8")
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


def _named(name: str, which: str) -> Policy:
    """Return the policy ``classic``, ``default`` or a policy file names (``diff``'s arguments)."""
    try:
        return policy_named(name)
    except MtoTrustError as exc:
        raise UsageError(f"mtotrust diff: {which} {name!r} is neither 'classic', 'default' nor a valid policy file: "
                         f"{' '.join(str(exc).split())}") from None
