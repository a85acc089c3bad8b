r"""The self-contained HTML page of the audit, inventory and diff reports: :func:`html`.

One file that fetches nothing: inline CSS, charts as inline SVG, and one small inline script that sorts a table
when a header is clicked (or when the address ends in ``#sort=TABLE.COLUMN`` or ``#sort=TABLE.COLUMN:descending``,
which is how a bookmark or a test asks for an order). A Content-Security-Policy meta element allows that script
and that style sheet by their hashes and nothing else, so even markup that slipped through would neither run nor
load anything. Every value the report carries is escaped with :func:`html.escape` (identities and tenant names
come from the directory), its unprintable characters (controls, bidi controls, lone surrogates) shown as escapes
such as ``\u202e``, so the page is valid UTF-8 and no value reverses the text around it. The page is a
function of the report alone: the same report gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from typing import Any, NamedTuple

from mtotrust._explain import printable
from mtotrust._model import Trust
from mtotrust.reports._audit import SEVERITIES

__all__ = ["REPORTS", "html"]

REPORTS = ("audit", "inventory", "diff")
"""The reports :func:`html` draws a page of."""

_STYLE = """
*{box-sizing:border-box}
html{color-scheme:light}
body{margin:0 auto;max-width:1240px;padding:24px 32px;font:14px/1.45 system-ui,"Segoe UI",Roboto,"DejaVu Sans",
Arial,sans-serif;color:#1b1f24;background:#fff}
h1{font-size:24px;margin:0 0 12px}
h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
code{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:4px 20px;margin:0;padding:12px 16px;
border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa}
dl.summary dt{font-weight:600}
dl.summary dd{margin:0;overflow-wrap:anywhere}
.charts{display:flex;flex-wrap:wrap;gap:16px 40px}
figure{margin:0;flex:1 1 540px;min-width:0}
figcaption{font-weight:600;margin:0 0 6px}
figure.small{flex:1 1 260px}
p.note{margin:8px 0 0;color:#57606a}
svg{display:block;max-width:100%;height:auto;font-size:13px}
svg text{fill:#1b1f24}
svg .bar{fill:#57606a}
svg .high,svg .lowered,svg .removed,svg .untrusted{fill:#b42318}
svg .medium,svg .pending,svg .external{fill:#c4640a}
svg .low,svg .guest{fill:#b8a200}
svg .info,svg .changed{fill:#5b6b7c}
svg .raised,svg .active,svg .mto_member{fill:#1a7f37}
svg .internal{fill:#0b5cad}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0 8px}
caption{text-align:left;font-weight:600;padding:4px 0;caption-side:top}
th,td{padding:4px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #d8dee4}
td{overflow-wrap:break-word}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.id{overflow-wrap:anywhere;font:11.5px/1.5 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
table{table-layout:fixed}
#findings [data-key=severity]{width:9%}#findings [data-key=kind]{width:25%}#findings [data-key=count]{width:8%}
#examples [data-key=kind]{width:23%}#examples [data-key=address]{width:23%}#examples [data-key=user_id]{width:15%}
#accounts [data-key=address]{width:20%}#accounts [data-key=user_id]{width:15%}
#accounts [data-key=source_tenant]{width:11%}#accounts [data-key=tenant_state]{width:8%}
#accounts [data-key=partner_in_mto]{width:9%}#accounts [data-key=trust]{width:9%}
#changes [data-key=app]{width:6%}#changes [data-key=direction]{width:9%}#changes [data-key=address]{width:21%}
#changes [data-key=user_id]{width:15%}#changes [data-key=a]{width:22%}
thead th{position:sticky;top:0;z-index:1;background:#eaeef2}
th button{all:unset;cursor:pointer;font-weight:600}
th button:focus-visible{outline:2px solid #0969da;outline-offset:2px}
th[aria-sort] button::after{content:"\\a0\\2195";color:#8c959f}
th[aria-sort=ascending] button::after{content:"\\a0\\25B2";color:inherit}
th[aria-sort=descending] button::after{content:"\\a0\\25BC";color:inherit}
tbody tr:nth-child(even){background:#f6f8fa}
p.empty{color:#57606a}
@page{size:landscape;margin:12mm}
@media print{
body{max-width:none;padding:0;color:#000;background:#fff;font-size:10pt}
h2{border-color:#000}
dl.summary{background:#fff;border-color:#000}
p.note{color:#000}
svg text{fill:#000}
svg .bar{fill:#8c8c8c;stroke:#000;stroke-width:.5}
thead{display:table-header-group}
thead th{position:static;background:#fff;border-bottom:2px solid #000}
th[aria-sort] button::after,th[aria-sort=ascending] button::after,th[aria-sort=descending] button::after{content:""}
table{font-size:9pt}
th,td{padding:3px 6px;border-color:#000}
td.id{font-size:8.5pt}
.hint{display:none}
tbody tr:nth-child(even){background:#fff}
tr,figure,dl.summary{break-inside:avoid}
h2{break-after:avoid}
}
"""

_SCRIPT = """
(function () {
  "use strict";
  var collator = new Intl.Collator("en", {numeric: true, sensitivity: "base"});
  function key(row, index, numeric) {
    var cell = row.cells[index];
    var text = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    if (!numeric) { return text; }
    var number = parseFloat(text);
    return isNaN(number) ? -Infinity : number;
  }
  function sort(table, header, direction) {
    var index = header.cellIndex, numeric = header.getAttribute("data-type") === "number";
    var sign = direction === "descending" ? -1 : 1, body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, index, numeric), y = key(b, index, numeric);
      return sign * (numeric ? (x < y ? -1 : (x > y ? 1 : 0)) : collator.compare(x, y));
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(header.parentNode.cells, function (cell) { cell.setAttribute("aria-sort", "none"); });
    header.setAttribute("aria-sort", direction);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable th button"), function (button) {
    button.addEventListener("click", function () {
      var header = button.parentNode;
      sort(header.closest("table"), header,
           header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending");
    });
  });
  function fromHash() {
    var match = /^#sort=([\\w-]+)\\.([\\w-]+)(?::(ascending|descending))?$/.exec(location.hash);
    var table = match && document.getElementById(match[1]);
    var header = table && table.querySelector('th[data-key="' + match[2] + '"]');
    if (header) { sort(table, header, match[3] || "ascending"); }
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_CSP = f"default-src 'none'; style-src {_digest(_STYLE)}; script-src {_digest(_SCRIPT)}"


def html(kind: str, report: Mapping[str, Any]) -> str:
    """Return the page of one report: ``kind`` is ``"audit"``, ``"inventory"`` or ``"diff"``, ``report`` its dict.

    The page holds a summary (the snapshot id, the policy fingerprint(s), the key counts), inline SVG charts with
    text labels and a title each, and tables that sort when a header is clicked; it prints black on white.

    Raises:
        ValueError: ``kind`` is not one of :data:`REPORTS`.
    """
    page = _PAGES.get(kind)
    if page is None:
        raise ValueError(f"unknown report kind {kind!r}: expected one of {', '.join(REPORTS)}")
    title, summary, body = page(report)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} \u2014 {escape(str(report['snapshot_id']))}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{escape(title)}</h1>\n"
        f"{_summary(summary)}</header>\n<main>\n{body}</main>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


# -- the three pages -----------------------------------------------------------------------------------------------

_Page = tuple[str, list[tuple[str, str]], str]
"""A page's title, its summary (term, HTML value) and its body (HTML)."""

_NO_ADDRESS = "(no address)"  # the trust of an inventory row whose object the index holds under no address
_PARTNER = {True: "in MTO", False: "not in MTO", None: "none"}  # isInMultiTenantOrganization, None: no policy


def _audit(report: Mapping[str, Any]) -> _Page:
    findings: list[Mapping[str, Any]] = list(report["findings"])
    per_severity = Counter(str(f["severity"]) for f in findings)
    by_rank = list(reversed(SEVERITIES))
    summary = [
        ("Snapshot", _code(report["snapshot_id"])),
        ("Policy fingerprint", _code(report["policy_fingerprint"])),
        ("Findings", escape(str(len(findings)))),
        ("By severity", escape(_counts((s, per_severity[s]) for s in by_rank))),
    ]
    charts = [
        _chart("chart-severity", "Findings by severity", "findings",
               [_Bar(s, per_severity[s], s) for s in by_rank]),
        _chart("chart-findings", "Count per finding", "objects, tenants or domains",
               [_Bar(str(f["kind"]), int(f["count"]), str(f["severity"]), note=str(f["severity"]))
                for f in findings]),
    ]
    findings_table = _table("findings", "Findings", [
        _Column("severity", "Severity"), _Column("kind", "Finding"), _Column("count", "Count", "num"),
        _Column("fix", "Fix"),
    ], [[_Cell(f["severity"], SEVERITIES.index(f["severity"])), _Cell(f["kind"]), _number(f["count"]),
         _Cell(f["fix"])] for f in findings])
    examples_table = _table("examples", "Examples (up to 5 per finding)", [
        _Column("kind", "Finding"), _Column("address", "Address"), _Column("user_id", "User id", "id"),
        _Column("details", "Details"),
    ], [[_Cell(f["kind"]), _Cell(e.get("address")), _Cell(e.get("user_id")), _Cell(_details(e))]
        for f in findings for e in f["examples"]])
    return "mtotrust audit", summary, _charts(charts) + _section("Findings", findings_table + examples_table)


def _inventory(report: Mapping[str, Any]) -> _Page:
    rows: list[Mapping[str, Any]] = list(report["rows"])
    per_trust = Counter(r["trust"] or _NO_ADDRESS for r in rows)
    levels = [t.value for t in reversed(Trust)]
    levels += sorted(set(per_trust) - set(levels))
    tenants: dict[str, tuple[str, str]] = {}  # tenant id ("" for none) -> its label and its MTO state ("" for none)
    for r in rows:
        tenant_id = r["source_tenant_id"] or ""
        tenants.setdefault(tenant_id, (_text(r["source_tenant_name"]) or tenant_id or "(no home tenant)",
                                       r["tenant_state"] or ""))
    per_tenant = Counter(r["source_tenant_id"] or "" for r in rows)
    order = sorted(per_tenant, key=lambda t: (-per_tenant[t], tenants[t][0], t))
    in_mto = sum(1 for r in rows if r["partner_in_mto"] is True)
    summary = [
        ("Snapshot", _code(report["snapshot_id"])),
        ("Policy fingerprint", _code(report["policy_fingerprint"])),
        ("Accounts synced from another tenant", escape(str(len(rows)))),
        ("Source tenants", escape(str(len(set(per_tenant) - {""})))),
        ("By trust", escape(_counts((t, per_trust[t]) for t in levels if per_trust[t]))),
        ("Partner policy says in the MTO", escape(f"{in_mto} of {len(rows)} accounts")),
    ]
    charts = [
        _chart("chart-trust", "Accounts per trust level", "accounts", [_Bar(t, per_trust[t], t) for t in levels]),
        _chart("chart-tenants", "Accounts per source tenant", "accounts",
               [_Bar(tenants[t][0], per_tenant[t], tenants[t][1] or "outside",
                     note=tenants[t][1] or ("outside the MTO" if t else "")) for t in order]),
    ]
    table = _table("accounts", "Accounts", [
        _Column("address", "Address"), _Column("user_id", "User id", "id"),
        _Column("source_tenant", "Source tenant"),
        _Column("tenant_state", "MTO state"), _Column("partner_in_mto", "Partner policy"),
        _Column("trust", "Trust"), _Column("reasons", "Reasons"),
    ], [[_Cell(r["address"]), _Cell(r["user_id"]), _Cell(r["source_tenant_name"] or r["source_tenant_id"]),
         _Cell(r["tenant_state"]), _Cell(_PARTNER[r["partner_in_mto"]]), _Cell(r["trust"], _trust_rank(r["trust"])),
         _Cell(r["reasons"])] for r in rows])
    return "mtotrust inventory", summary, _charts(charts) + _section("Accounts", table)


def _diff(report: Mapping[str, Any]) -> _Page:
    a, b = report["a"], report["b"]
    apps: Mapping[str, Mapping[str, Any]] = report["apps"]
    names = list(apps)  # in the report's order (mtotrust.reports.APPS)
    summary = [
        ("Snapshot", _code(report["snapshot_id"])),
        ("Policy A", f"{escape(_text(a['name']))} {_code(a['policy_fingerprint'])}"),
        ("Policy B", f"{escape(_text(b['name']))} {_code(b['policy_fingerprint'])}"),
        ("Identities compared", escape(str(report["identities"]))),
        ("Changed decisions", escape(_counts((app, int(apps[app]["changed"])) for app in names))),
        ("Mail decided as if", _code(report["mail_assumes"])),
    ]
    mixed = _counts((app, n) for app in names
                    if (n := int(apps[app]["changed"]) - int(apps[app]["raised"]) - int(apps[app]["lowered"])))
    note = (f"Mail is decided as if the boundary had authenticated the sender ({report['mail_assumes']}). "
            f"Changed = raised + lowered + mixed (some actions or rights gained, others lost); mixed: {mixed}.")
    top = max((int(apps[app]["changed"]) for app in names), default=0)  # one scale for the four charts
    charts = [_chart(f"chart-{app}", f"{app}: changed decisions", "identities, from A to B",
                     [_Bar(what, int(apps[app][what]), what) for what in ("changed", "raised", "lowered")],
                     width=_SMALL, top=top) for app in names]
    table = _table("changes", "Examples (up to 5 per app and direction)", [
        _Column("app", "App"), _Column("direction", "Direction"), _Column("address", "Address"),
        _Column("user_id", "User id", "id"), _Column("a", f"Under A ({_text(a['name'])})"),
        _Column("b", f"Under B ({_text(b['name'])})"),
    ], [[_Cell(app), _Cell(direction), _Cell(e["address"]), _Cell(e["user_id"]), _Cell(e["a"]), _Cell(e["b"])]
        for app in names for direction, kept in apps[app]["examples"].items() for e in kept])
    title = f"mtotrust diff: {_text(a['name'])} \u2192 {_text(b['name'])}"
    return title, summary, _charts(charts, note=note) + _section("Examples", table)


_PAGES: dict[str, Callable[[Mapping[str, Any]], _Page]] = {"audit": _audit, "inventory": _inventory, "diff": _diff}


# -- pieces ------------------------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    r"""Return a report value as text: nothing for None, yes/no for a bool, a list joined with commas.

    Unprintable characters are escaped (:func:`~mtotrust._explain.printable`): a bidi control in a display name
    shows as ``\u202e`` instead of reversing the text after it, and a lone surrogate as ``\ud800``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return printable(str(value))


def _code(value: Any) -> str:
    return f"<code>{escape(_text(value))}</code>"


def _counts(pairs: Iterable[tuple[str, int]]) -> str:
    """Return ``high 3 · medium 5``, or ``none``."""
    return " \u00b7 ".join(f"{name} {count}" for name, count in pairs) or "none"


def _summary(items: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{escape(term)}</dt><dd>{value}</dd>\n" for term, value in items)
    return f'<dl class="summary">\n{rows}</dl>\n'


def _section(heading: str, content: str) -> str:
    return f"<section>\n<h2>{escape(heading)}</h2>\n{content}</section>\n"


def _charts(figures: Sequence[str], *, note: str = "") -> str:
    said = f'<p class="note">{escape(note)}</p>\n' if note else ""
    return _section("Charts", '<div class="charts">\n' + "".join(figures) + "</div>\n" + said)


def _details(example: Mapping[str, Any]) -> str:
    """Return what an audit example says besides its object: ``Tenant name: Northwind; State: removed``."""
    return "; ".join(f"{key.replace('_', ' ').capitalize()}: {_text(value)}" for key, value in example.items()
                     if key not in ("user_id", "address"))


def _trust_rank(trust: str | None) -> int:
    return -1 if trust is None else Trust(trust).rank


# -- tables --------------------------------------------------------------------------------------------------------

class _Column(NamedTuple):
    key: str
    label: str
    css: str = ""  # "num": a number (right-aligned, sorted as one); "id": an object or tenant id (monospace)


class _Cell(NamedTuple):
    value: Any
    sort: int | None = None  # the key the script sorts by, when it is not the text


def _number(value: Any) -> _Cell:
    return _Cell(f"{int(value):,}", int(value))


def _table(table_id: str, caption: str, columns: Sequence[_Column], rows: Sequence[Sequence[_Cell]]) -> str:
    """Return a table the page's script sorts, or a line saying it is empty."""
    if not rows:
        return f'<p class="empty">{escape(caption)}: none.</p>\n'
    head = "".join(f'<th scope="col" data-key="{escape(c.key)}"{_th_attributes(c)} aria-sort="none">'
                   f'<button type="button">{escape(c.label)}</button></th>' for c in columns)
    body = "".join("<tr>" + "".join(_td(c, cell) for c, cell in zip(columns, row, strict=True)) + "</tr>\n"
                   for row in rows)
    return (f'<table class="sortable" id="{escape(table_id)}">\n<caption>{escape(caption)} ({len(rows)}<span '
            f'class="hint">; click a header to sort</span>)</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            f"{body}</tbody>\n</table>\n")


def _th_attributes(column: _Column) -> str:
    if column.css == "num":
        return ' data-type="number" class="num"'
    return f' class="{column.css}"' if column.css else ""


def _td(column: _Column, cell: _Cell) -> str:
    attributes = f' class="{column.css}"' if column.css else ""
    if cell.sort is not None:
        attributes += f' data-sort="{cell.sort}"'
    return f"<td{attributes}>{escape(_text(cell.value))}</td>"


# -- charts --------------------------------------------------------------------------------------------------------

class _Bar(NamedTuple):
    label: str
    value: int
    css: str  # the class that colours it (a severity, trust level, tenant state or direction)
    note: str = ""  # said after the value, so that the chart reads without colour


_WIDTH = 600
_SMALL = 280  # the width of one of several charts drawn side by side
_ROW = 24
_BAR = 16
_MAX_LABEL = 34  # characters; a longer label is cut (its bar's title says it whole)
# Advances at 13 px, rounded up from DejaVu Sans (wider than most sans-serif fonts), so that a label never runs
# into its bar or off the chart: narrow and wide ASCII characters, every other one, and East Asian wide ones.
_NARROW = frozenset(" !'(),-./:;IJ[\\]fijlrt|")
_WIDE = frozenset("#%&+<=>@DGMOQW^mw~")


def _width(text: str) -> float:
    """Return an upper estimate of how wide ``text`` is drawn in the charts' 13 px font."""
    return sum(5.3 if c in _NARROW else 13.0 if c in _WIDE or unicodedata.east_asian_width(c) in "WF" else 8.4
               for c in text)


def _chart(chart_id: str, title: str, unit: str, bars: Sequence[_Bar], *, width: int = _WIDTH,
           top: int | None = None) -> str:
    """Return a horizontal bar chart as a figure: one labelled bar per entry, its value written after it.

    ``top`` is the value of a full-length bar (by default the largest value), so that charts can share a scale.
    """
    labels = [b.label if len(b.label) <= _MAX_LABEL else b.label[: _MAX_LABEL - 1] + "\u2026" for b in bars]
    label_width = int(max((_width(label) for label in labels), default=0)) + 14
    value_width = int(max((_width(_value(b)) for b in bars), default=0)) + 10
    span = width - label_width - value_width
    full = (max((b.value for b in bars), default=0) if top is None else top) or 1
    parts: list[str] = []
    for row, (bar, label) in enumerate(zip(bars, labels, strict=True)):
        y = 4 + row * _ROW
        length = max(bar.value / full * span, 2.0 if bar.value else 0.0)
        parts.append(
            f'<g><title>{escape(bar.label)}: {escape(_value(bar))}</title>'
            f'<text x="{label_width - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar {escape(bar.css)}" x="{label_width}" y="{y}" width="{length:.1f}" height="{_BAR}"/>'
            f'<text class="value" x="{label_width + length + 6:.1f}" y="{y + 13}">{escape(_value(bar))}</text></g>')
    if not bars:
        parts.append('<text x="0" y="17">none</text>')
    height = 8 + max(len(bars), 1) * _ROW
    desc = "; ".join(f"{b.label}: {_value(b)}" for b in bars) or "none"
    small = ' class="small"' if width < _WIDTH else ""
    return (f'<figure{small}>\n<figcaption>{escape(title)}</figcaption>\n'
            f'<svg id="{chart_id}" role="img" aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc"'
            f' width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<title id="{chart_id}-title">{escape(title)} ({escape(unit)})</title>'
            f'<desc id="{chart_id}-desc">{escape(desc)}</desc>\n' + "\n".join(parts) + "\n</svg>\n</figure>\n")


def _value(bar: _Bar) -> str:
    return f"{bar.value:,}" + (f" ({bar.note})" if bar.note else "")
