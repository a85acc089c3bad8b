"""``mtotrust replay``: message traces -> Parquet rows, each decided by the snapshot in force (``replay`` extra).

Exit codes: 0 replayed (bad trace rows are reported on stderr, never fatal); 2 bad usage or input (a missing or
unreadable trace file, a file of no known trace format, a snapshot or policy that cannot be loaded, an ``--out``
that cannot be written); 3 internal error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtotrust.cli._common import (
    EXIT_OK,
    UsageError,
    atomic_file,
    load_policy,
    load_snapshot,
    output,
    output_json,
    progress,
    require_extra,
)

if TYPE_CHECKING:
    import argparse
    from types import ModuleType

    from mtotrust._policy import Policy
    from mtotrust.replay import BadRow, SnapshotHistory

__all__ = ["run"]

_BAD_SHOWN = 5  # bad rows listed on stderr (all are counted)

UNAUTHENTICATED = ("no row carried authentication (message traces have no Authentication-Results, and no DMARC "
                   "verdict was in the trace), and this policy requires authentication, so it tags every message "
                   "it would otherwise trust: the mail figures show the policy's treatment of unauthenticated mail, "
                   "not what Exchange saw")
"""The note printed when no decided row had authentication and the policy requires it."""


def run(args: argparse.Namespace) -> int:
    """Replay the traces, write the decided rows to ``--out`` and print the summary (``--json``: one object)."""
    # The extra's modules come through require_extra: the CLI imports no third-party package itself.
    pq = require_extra("replay", "pyarrow.parquet")
    pc = require_extra("replay", "pyarrow.compute")

    from mtotrust.replay import OUTPUT_SCHEMA, SnapshotHistory, read_traces

    for path in args.traces:
        if not Path(path).is_file():
            raise UsageError(f"mtotrust replay: --traces {path}: no such file")
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"mtotrust replay: --out {out} is a folder; give a file name, such as "
                         f"{out / 'replay.parquet'}")
    policy = load_policy(args.policy, args.policy_fingerprint)
    history = SnapshotHistory([load_snapshot(path) for path in args.snapshot], policy)
    counts = _Counts(pc)
    with atomic_file(args.out, "--out") as temp:  # created first: an --out that cannot be written is said now
        try:
            read = read_traces(args.traces)
        except (ValueError, OSError) as exc:  # a file of no known format, or unreadable
            raise UsageError(f"mtotrust replay: {exc}") from None
        _report_bad(read.bad)
        with progress("deciding") as bar, pq.ParquetWriter(temp, OUTPUT_SCHEMA) as writer:
            for batch in read.batches:
                decided = history.evaluate(batch)
                writer.write_batch(decided)
                counts.add(decided)
                if bar is not None:
                    bar(counts.rows, read.rows, "trace rows")
    summary = _summary(args, read.formats, read.bad, history, policy, counts)
    if args.json:
        output_json(summary)
    else:
        _print(summary)
    return EXIT_OK


def _report_bad(bad: list[BadRow]) -> None:
    """Say on stderr how many trace rows were bad, and the first few as ``path:line: reason``."""
    if not bad:
        return
    print(f"mtotrust replay: {len(bad)} bad trace rows (not decided, not in the output):", file=sys.stderr)
    for row in bad[:_BAD_SHOWN]:
        print(f"  {row.path}:{row.line}: {row.reason}", file=sys.stderr)
    if len(bad) > _BAD_SHOWN:
        print(f"  ... and {len(bad) - _BAD_SHOWN} more", file=sys.stderr)


class _Counts:
    """The summary's counts, added up batch by batch from the decided rows."""

    def __init__(self, compute: ModuleType) -> None:
        self._pc = compute
        self.rows = 0
        self.tagged = 0
        self.inside = 0
        self.before_first = 0
        self.auth = {"authentication_results": 0, "trace_dmarc": 0, "absent": 0}

    def add(self, decided: Any) -> None:
        """Count one decided ``OUTPUT_SCHEMA`` record batch."""
        pc = self._pc

        def true(column: str) -> int:
            found: int | None = pc.sum(decided.column(column)).as_py()
            return found or 0

        self.rows += decided.num_rows
        self.tagged += true("tag_external")
        self.inside += true("recipient_inside")
        self.before_first += true("before_first_snapshot")
        for item in pc.value_counts(decided.column("auth_source")).to_pylist():
            self.auth[item["values"]] += item["counts"]


def _summary(args: argparse.Namespace, formats: dict[str, str], bad: list[BadRow], history: SnapshotHistory,
             policy: Policy, counts: _Counts) -> dict[str, Any]:
    """Return the summary as one JSON-ready object, with the same keys every run."""
    from_trace = counts.auth["authentication_results"] + counts.auth["trace_dmarc"]
    notes = []
    if counts.rows and not from_trace and policy.mail.require_authentication:
        notes.append(UNAUTHENTICATED)
    return {
        "out": str(args.out),
        "rows": counts.rows,
        "bad_rows": len(bad),
        "bad_rows_first": [{"path": b.path, "line": b.line, "reason": b.reason} for b in bad[:_BAD_SHOWN]],
        "formats": formats,
        "snapshots": [{"snapshot_id": s.id, "taken_at": s.taken_at.isoformat()} for s in history.snapshots],
        "policy_fingerprint": policy.fingerprint,
        "mail": {"tagged": counts.tagged, "untagged": counts.rows - counts.tagged},
        "recipients": {"inside": counts.inside, "outside": counts.rows - counts.inside},
        "authentication": {"from_trace": from_trace, "none": counts.auth["absent"], "by_source": counts.auth},
        "before_first_snapshot": counts.before_first,
        "notes": notes,
    }


def _print(s: dict[str, Any]) -> None:
    """Print the summary as text."""
    files = ", ".join(f"{path} ({fmt})" for path, fmt in s["formats"].items())
    output(f"replayed {s['rows']} rows into {s['out']} from {files}")
    output(f"bad rows: {s['bad_rows']}" + (" (listed on stderr; not in the output)" if s["bad_rows"] else ""))
    snapshots = ", ".join(f"{x['snapshot_id']} (taken {x['taken_at']})" for x in s["snapshots"])
    output(f"snapshots: {snapshots}; policy {s['policy_fingerprint']}")
    output(f"mail: {s['mail']['tagged']} tagged external, {s['mail']['untagged']} untagged")
    output(f"recipients: {s['recipients']['inside']} inside the organization, {s['recipients']['outside']} outside")
    auth = s["authentication"]
    output(f"authentication: {auth['from_trace']} rows from the trace ({auth['by_source']['trace_dmarc']} its DMARC "
           f"verdict, {auth['by_source']['authentication_results']} Authentication-Results), {auth['none']} none")
    output(f"before the first snapshot: {s['before_first_snapshot']} rows (decided against the oldest, flagged)")
    for note in s["notes"]:
        output(f"note: {note}")
