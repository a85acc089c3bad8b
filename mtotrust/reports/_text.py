r"""The reports as plain fixed-width text for a terminal: a header line naming what was read, then tables.

Every value from the directory is shown with its control and other unprintable characters escaped (``\x1b``), so
a display name cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from mtotrust._explain import failed_checks, printable
from mtotrust._model import Trust
from mtotrust.reports._audit import MTO_LIMIT

__all__ = ["text"]

_WIDTH = 100  # where the prose (a fix, a summary) wraps; tables are as wide as their cells
_INDENT = "  "


def text(kind: str, report: Mapping[str, Any]) -> str:
    """Return a report as text: ``kind`` is ``"audit"``, ``"inventory"`` or ``"diff"``.

    The first line names the report, its snapshot id and its policy fingerprint(s).

    Raises:
        ValueError: for another ``kind``.
    """
    if kind == "audit":
        return _audit(report)
    if kind == "inventory":
        return _inventory(report)
    if kind == "diff":
        return _diff(report)
    raise ValueError(f"unknown report kind {kind!r}; expected 'audit', 'inventory' or 'diff'")


def _cell(value: object) -> str:
    """Return a value as table text: ``-`` for none, yes/no, a list joined by commas, unprintables escaped."""
    if value is None:
        shown = "-"
    elif isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, list):
        shown = ", ".join(str(v) for v in value) or "-"
    else:
        shown = str(value)
    return printable(shown)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[int] = (),
           indent: str = "") -> list[str]:
    """Return the lines of a fixed-width table: the header, a rule, the rows; columns ``right`` right-aligned."""
    cells = [[_cell(h) for h in header], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append(indent + "  ".join(parts).rstrip())
    lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return lines


def _wrap(prose: str, indent: str = "") -> list[str]:
    return textwrap.wrap(_cell(prose), _WIDTH, initial_indent=indent, subsequent_indent=indent + _INDENT,
                         break_on_hyphens=False, break_long_words=False)


def _audit(report: Mapping[str, Any]) -> str:
    findings = report["findings"]
    lines = [f"mtotrust audit: snapshot {report['snapshot_id']}, policy {report['policy_fingerprint']}"]
    by_severity = Counter(f["severity"] for f in findings)
    summary = ", ".join(f"{by_severity[s]} {s}" for s in ("high", "medium", "low", "info") if by_severity[s])
    lines += [f"{len(findings)} finding{'' if len(findings) == 1 else 's'}: {summary}", ""]
    lines += _table(("SEVERITY", "FINDING", "COUNT"), [(f["severity"], f["kind"], f["count"]) for f in findings],
                    right=(2,))
    for finding in findings:
        of = f" of the {MTO_LIMIT} active tenants an MTO may have" if finding["kind"] == "mto_size" else ""
        lines += ["", f"[{finding['severity']}] {finding['kind']}: {finding['count']}{of}"]
        lines += _wrap(f"fix: {finding['fix']}", _INDENT)
        examples = finding["examples"]
        if examples:
            keys = list(examples[0])
            lines += _table([k.replace("_", " ").upper() for k in keys], [[e[k] for k in keys] for e in examples],
                            indent=_INDENT)
            if finding["count"] > len(examples):
                lines.append(f"{_INDENT}... and {finding['count'] - len(examples)} more")
    return "\n".join(lines)


def _inventory(report: Mapping[str, Any]) -> str:
    rows = report["rows"]
    lines = [f"mtotrust inventory: snapshot {report['snapshot_id']}, policy {report['policy_fingerprint']}"]
    trusts = Counter(row["trust"] for row in rows)
    levels = [t.value for t in sorted(Trust, reverse=True)]
    summary = ", ".join(f"{trusts[level]} {level}" for level in [*levels, None] if trusts[level])
    lines.append(f"{len(rows)} objects synced from other tenants" + (f": {summary}" if summary else ""))
    lines.append("")
    lines += _table(("ADDRESS", "USER ID", "SOURCE TENANT", "MTO STATE", "PARTNER IN MTO", "TRUST", "LOWERED BY"), [
        (row["address"], row["user_id"], row["source_tenant_name"] or row["source_tenant_id"], row["tenant_state"],
         row["partner_in_mto"], row["trust"], list(failed_checks(tuple(row["reasons"]))))
        for row in rows])
    return "\n".join(lines)


def _diff(report: Mapping[str, Any]) -> str:
    a, b = report["a"], report["b"]
    lines = [f"mtotrust diff {_cell(a['name'])} -> {_cell(b['name'])}: snapshot {report['snapshot_id']}, policies "
             f"{a['policy_fingerprint']} -> {b['policy_fingerprint']}"]
    lines += _wrap(f"{report['identities']} identities (every address the directory indexes); mail is decided as "
                   f"if authenticated ({report['mail_assumes']} for the sender's domain). raised: {b['name']} grants "
                   f"more than {a['name']}.")
    lines.append("")
    apps = report["apps"]
    lines += _table(("APP", "CHANGED", "RAISED", "LOWERED"),
                    [(app, c["changed"], c["raised"], c["lowered"]) for app, c in apps.items()], right=(1, 2, 3))
    for app, change in apps.items():
        examples = [(direction, e) for direction, listed in change["examples"].items() for e in listed]
        if examples:
            lines += ["", f"{app}: examples"]
            lines += _table(("DIRECTION", "ADDRESS", "USER ID", a["name"], b["name"]),
                            [(direction, e["address"], e["user_id"], e["a"], e["b"]) for direction, e in examples],
                            indent=_INDENT)
    return "\n".join(lines)
