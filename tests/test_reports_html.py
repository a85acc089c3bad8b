"""The HTML page of the audit, inventory and diff reports: its structure, then the page in real headless Chromium.

The structure tests parse the page with :mod:`html.parser` (self-contained, the summary, the SVG charts with the
report's numbers, the sortable tables, the print rules, every value escaped, the same bytes twice), on the bundled
sample's reports and on reports built by hand. The ``chromium`` tests open it in the installed Chromium
(``tests/chromium.py``): the DOM after load, sorting by the address (``#sort=TABLE.COLUMN``) and by clicking a
header, hostile directory values that run no script, a screenshot and a printout. In CI a missing Chromium is a
failure, never a skip (``.ci/run`` installs it). ``MTOTRUST_UPDATE_SCREENSHOTS=1`` also copies the screenshots of
the sample's reports to ``docs/img/report-KIND.png``.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import html as html_module
import os
import re
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from chromium import PACKAGE, PNG_SIGNATURE, Chromium, chromium_command

from mtotrust import Policy, Snapshot, reports
from mtotrust.reports._html import REPORTS

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"

# -- the reports ---------------------------------------------------------------------------------------------------


@functools.cache
def sample_report(kind: str) -> dict[str, Any]:
    """The report of ``kind`` on the bundled sample (default policy; the diff from classic to default)."""
    snapshot = Snapshot.sample()
    if kind == "audit":
        return reports.audit(snapshot, Policy.default())
    if kind == "inventory":
        return reports.inventory(snapshot, Policy.default())
    return reports.diff(snapshot, Policy.classic(), Policy.default(), a_name="classic", b_name="default")


HOSTILE = '<script>document.documentElement.setAttribute("data-pwned", "script")</script>'
HOSTILE_IMG = '<img src=x onerror="document.documentElement.setAttribute(\'data-pwned\', \'img\')">'
HOSTILE_ATTR = '" onmouseover="alert(1)" data-pwned="attribute'
HOSTILE_VALUES = (HOSTILE, HOSTILE_IMG, HOSTILE_ATTR, "<script>alert(1)</script>")


def built_audit() -> dict[str, Any]:
    """An audit report built by hand, with counts that sort differently as text and as numbers."""
    return {
        "snapshot_id": "sha256:0123456789abcdef0123456789abcdef", "policy_fingerprint": "3f0e4cbd62d223c4",
        "findings": [
            {"kind": "synced_from_removed_tenant", "severity": "high", "count": 9, "examples": [
                {"user_id": "u-9", "address": "nora@northwindtraders.com", "tenant_id": "t-5",
                 "tenant_name": "Northwind", "state": "removed"}],
             "fix": "Delete the synced objects of the removed tenant."},
            {"kind": "address_claimed_twice", "severity": "high", "count": 100, "examples": [
                {"user_id": "u-2", "address": "jo@fabrikam.com", "user_ids": ["u-2", "u-3"]}],
             "fix": "Remove the address from all objects but one."},
            {"kind": "mto_user_typed_guest", "severity": "medium", "count": 10, "examples": [
                {"user_id": "u-4", "address": "pat@fabrikam.com"}, {"user_id": "u-6", "address": "lee@litware.com"}],
             "fix": "Change the userType to Member."},
            {"kind": "external_without_mail", "severity": "low", "count": 3, "examples": [
                {"user_id": "u-5", "address": "kim@fabrikam.com"}], "fix": "Sync the mail attribute."},
            {"kind": "mto_size", "severity": "info", "count": 4, "examples": [], "fix": "Nothing to do."},
        ],
    }


def built_inventory() -> dict[str, Any]:
    """An inventory report built by hand: three tenants and none, every trust level but internal."""
    def row(n: int, tenant: str | None, state: str | None, partner: bool | None, trust: str | None) -> dict[str, Any]:
        return {"user_id": f"u-{n:02}", "address": f"user{n}@{tenant or 'gmail'}.example",
                "source_tenant_id": tenant and f"t-{tenant}", "source_tenant_name": tenant and tenant.capitalize(),
                "tenant_state": state, "partner_in_mto": partner, "trust": trust,
                "reasons": [] if trust is None else [f"tenant_{state}", "synced"]}
    return {
        "snapshot_id": "sha256:0123456789abcdef0123456789abcdef", "policy_fingerprint": "3f0e4cbd62d223c4",
        "rows": [*(row(n, "fabrikam", "active", True, "mto_member") for n in range(1, 6)),
                 row(6, "tailspin", "pending", True, "external"),
                 row(7, "northwind", "removed", False, "untrusted"),
                 row(8, "fabrikam", "active", True, "guest"),
                 row(9, None, None, None, None)],
    }


def built_diff() -> dict[str, Any]:
    """A diff report built by hand: every app, every direction."""
    def example(n: int, a: str, b: str) -> dict[str, Any]:
        return {"address": f"user{n}@fabrikam.com", "user_id": f"u-{n}", "a": a, "b": b}
    apps = {
        "mail": (84, 84, 0, [example(1, "tagged [External]", "untagged")], [], []),
        "dlp": (84, 80, 4, [example(2, "outside", "inside")], [example(3, "inside", "outside")], []),
        "teams": (31, 10, 20, [example(4, "chat", "chat, call")], [example(5, "chat, call", "chat")],
                  [example(6, "chat", "call")]),
        "labels": (0, 0, 0, [], [], []),
    }
    return {
        "a": {"name": "classic", "policy_fingerprint": "aaaa000011112222"},
        "b": {"name": "default", "policy_fingerprint": "bbbb333344445555"},
        "snapshot_id": "sha256:0123456789abcdef0123456789abcdef", "identities": 485, "mail_assumes": "dmarc=pass",
        "apps": {app: {"changed": c, "raised": r, "lowered": low,
                       "examples": {"raised": up, "lowered": down, "mixed": mixed}}
                 for app, (c, r, low, up, down, mixed) in apps.items()},
    }


BUILT = {"audit": built_audit, "inventory": built_inventory, "diff": built_diff}
SOURCES: dict[str, Callable[[str], dict[str, Any]]] = {"sample": sample_report, "built": lambda kind: BUILT[kind]()}


def hostile(kind: str) -> dict[str, Any]:
    """The built report of ``kind`` with markup where the directory's values go (names, addresses, ids)."""
    report = BUILT[kind]()
    if kind == "audit":
        report["findings"][0]["examples"][0].update(tenant_name=HOSTILE, address=HOSTILE_IMG, user_id=HOSTILE_ATTR)
        report["findings"][1]["examples"][0]["address"] = HOSTILE_VALUES[3]
    elif kind == "inventory":
        report["rows"][0].update(source_tenant_name=HOSTILE, address=HOSTILE_IMG, user_id=HOSTILE_ATTR)
        report["rows"][5].update(source_tenant_name=HOSTILE_VALUES[3])
    else:
        report["a"]["name"] = HOSTILE
        report["apps"]["dlp"]["examples"]["raised"][0].update(address=HOSTILE_IMG, user_id=HOSTILE_ATTR,
                                                              a=HOSTILE_VALUES[3])
    return report


# -- a small DOM, from html.parser ---------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    """An element: its tag, its attributes and its children (elements and text)."""

    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        """This element and every element inside it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find(self, tag: str, **attrs: str) -> list[Node]:
        """Every element inside (or this one) with ``tag`` (``*`` for any) and these attribute values."""
        return [n for n in self.iter() if tag in ("*", n.tag) and all(n.attrs.get(k) == v for k, v in attrs.items())]

    def one(self, tag: str, **attrs: str) -> Node:
        """The one element :meth:`find` finds; fail if there is not exactly one."""
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}> elements"
        return found[0]

    def text(self) -> str:
        """The text inside, as the DOM's textContent."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class Tree(HTMLParser):
    """Parse a page into :class:`Node` elements (``root``); the doctype is kept in ``doctype``."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.doctype = ""
        self._open = [self.root]
        self.feed(page)
        self.close()

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self._open[-1].children.append(node)
        if tag not in VOID:
            self._open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self._open[-1].tag == tag, f"</{tag}> closes <{self._open[-1].tag}>"
        self._open.pop()

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(data)


def parse(page: str) -> Node:
    """Parse ``page``; fail if an element is left open."""
    tree = Tree(page)
    assert [n.tag for n in tree._open] == ["#document"], "unclosed elements"
    return tree.root


def summary(root: Node) -> dict[str, str]:
    """The summary's terms and values."""
    dl = root.one("dl", **{"class": "summary"})
    terms = [n for n in dl.children if isinstance(n, Node)]
    return {dt.text(): dd.text() for dt, dd in zip(terms[::2], terms[1::2], strict=True)}


def table_rows(root: Node, table_id: str) -> list[list[str]]:
    """The text of every cell of the table's body, row by row."""
    body = root.one("table", id=table_id).one("tbody")
    return [[td.text() for td in tr.find("td")] for tr in body.find("tr")]


def column(root: Node, table_id: str, key: str) -> list[str]:
    """The text of one column of a table, top to bottom."""
    keys = [th.attrs["data-key"] for th in root.one("table", id=table_id).find("th")]
    return [row[keys.index(key)] for row in table_rows(root, table_id)]


def header(root: Node, table_id: str, key: str) -> Node:
    """The header cell of one column."""
    return root.one("table", id=table_id).one("th", **{"data-key": key})


def sort_keys(root: Node, table_id: str, key: str) -> list[str | None]:
    """The ``data-sort`` attribute of one column's cells, top to bottom."""
    keys = [th.attrs["data-key"] for th in root.one("table", id=table_id).find("th")]
    return [tr.find("td")[keys.index(key)].attrs.get("data-sort")
            for tr in root.one("table", id=table_id).one("tbody").find("tr")]


def bars(root: Node, chart_id: str) -> list[str]:
    """What each bar of a chart says in its title: ``label: value``."""
    return [g.one("title").text() for g in root.one("svg", id=chart_id).find("g")]


def expected_bars(kind: str, report: dict[str, Any]) -> dict[str, list[str]]:
    """Some charts of the page of ``report`` and what their bars must say, from the report's own numbers."""
    if kind == "audit":
        return {"chart-findings": [f"{f['kind']}: {f['count']:,} ({f['severity']})" for f in report["findings"]]}
    if kind == "inventory":
        trust = [row["trust"] for row in report["rows"]]
        return {"chart-trust": [f"{level}: {trust.count(level)}"
                                for level in ("internal", "mto_member", "guest", "external", "untrusted")]
                + (["(no address): 1"] if None in trust else [])}
    return {f"chart-{app}": [f"{what}: {counts[what]:,}" for what in ("changed", "raised", "lowered")]
            for app, counts in report["apps"].items()}


def expected_rows(kind: str, report: dict[str, Any]) -> dict[str, int]:
    """The tables of the page of ``report`` and how many body rows each must have."""
    if kind == "audit":
        return {"findings": len(report["findings"]),
                "examples": sum(len(f["examples"]) for f in report["findings"])}
    if kind == "inventory":
        return {"accounts": len(report["rows"])}
    return {"changes": sum(len(v) for app in report["apps"].values() for v in app["examples"].values())}


def check_page(kind: str, report: dict[str, Any], root: Node) -> None:
    """The summary, the charts (with the report's numbers as text) and the tables of ``report`` are in ``root``."""
    facts = summary(root)
    assert report["snapshot_id"] == facts["Snapshot"]
    if kind == "diff":
        assert f"{report['a']['name']} {report['a']['policy_fingerprint']}" == facts["Policy A"]
        assert f"{report['b']['name']} {report['b']['policy_fingerprint']}" == facts["Policy B"]
        assert str(report["identities"]) == facts["Identities compared"]
    else:
        assert report["policy_fingerprint"] == facts["Policy fingerprint"]
    svgs = root.find("svg")
    assert len(svgs) == (4 if kind == "diff" else 2)
    for svg in svgs:
        assert svg.attrs["role"] == "img"
        assert svg.one("title", id=svg.attrs["aria-labelledby"] or "").text().strip()
        assert svg.one("desc", id=svg.attrs["aria-describedby"] or "").text().strip()
        for g in svg.find("g"):  # every bar has its label and its value as text, not only a length and a colour
            label, value = (t.text() for t in g.find("text"))
            assert f"{label.rstrip(chr(0x2026))}" in g.one("title").text() and value
            assert g.one("title").text().endswith(f": {value}")
            assert 1 == len(g.find("rect"))
    for chart_id, said in expected_bars(kind, report).items():
        assert said == bars(root, chart_id)
    for table_id, count in expected_rows(kind, report).items():
        assert count == len(table_rows(root, table_id)), table_id
        for th in root.one("table", id=table_id).find("th"):
            assert th.attrs["aria-sort"] == "none"
            assert th.one("button").text()


# -- the page's structure ------------------------------------------------------------------------------------------

@pytest.fixture(params=REPORTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestStructure:
    """The page as html.parser reads it."""

    @pytest.mark.parametrize("source", SOURCES)
    def test_summary_charts_and_tables(self, kind: str, source: str) -> None:
        """The summary names the snapshot and the policy fingerprint(s); each chart is an SVG with a title, a
        description and, per bar, its label and value as text; each table has its rows and sortable headers."""
        report = SOURCES[source](kind)
        check_page(kind, report, parse(reports.html(kind, report)))

    @pytest.mark.parametrize("source", SOURCES)
    def test_self_contained(self, kind: str, source: str) -> None:
        """A charset first, a Content-Security-Policy that allows nothing but the page's own style and script (by
        their hashes), no element or attribute that loads anything, no URL in an attribute or the style."""
        page = reports.html(kind, SOURCES[source](kind))
        root = parse(page)
        assert page.startswith("<!DOCTYPE html>")
        head = root.one("head")
        first = next(n for n in head.children if isinstance(n, Node))
        assert first.attrs == {"charset": "utf-8"}
        policy = head.one("meta", **{"http-equiv": "Content-Security-Policy"}).attrs["content"] or ""
        style, script = root.one("style").text(), root.one("script").text()
        assert policy == f"default-src 'none'; style-src {digest(style)}; script-src {digest(script)}"
        loaders = {"link", "img", "iframe", "object", "embed", "base", "audio", "video", "source", "image", "use"}
        assert [] == [n.tag for n in root.iter() if n.tag in loaders]
        assert [] == [(n.tag, k) for n in root.iter() for k in n.attrs if k in ("src", "href", "xlink:href")]
        assert [] == [v for n in root.iter() for v in n.attrs.values() if v and re.search(r"(?i)[a-z]+:/|data:", v)]
        assert re.search(r"(?i)url\(|@import|@font-face|[a-z]+://", style) is None

    def test_print_rules(self) -> None:
        """Printed: landscape, black on white, headers neither sticky nor sort marks, repeated on every page,
        rows and charts not cut across pages."""
        style = parse(reports.html("inventory", sample_report("inventory"))).one("style").text()
        assert "@page{size:landscape" in style
        printed = style[style.index("@media print{"):]
        for rule in ("color:#000;background:#fff", "thead{display:table-header-group}", "position:static",
                     "tr,figure,dl.summary{break-inside:avoid}", 'button::after{content:""}', "svg text{fill:#000}"):
            assert rule in printed

    def test_numbers_and_ranks_sort_by_key(self) -> None:
        """A numeric column says so (the script compares numbers), and severity and trust cells carry their rank."""
        root = parse(reports.html("audit", built_audit()))
        assert header(root, "findings", "count").attrs["data-type"] == "number"
        assert ["9", "100", "10", "3", "4"] == sort_keys(root, "findings", "count")
        assert ["3", "3", "2", "1", "0"] == sort_keys(root, "findings", "severity")
        inventory = parse(reports.html("inventory", built_inventory()))
        assert ["3", "3", "3", "3", "3", "1", "0", "2", "-1"] == sort_keys(inventory, "accounts", "trust")

    def test_values_in_words(self) -> None:
        """A missing value is an empty cell, the partner policy reads in MTO / not in MTO / none, reasons and an
        audit example's other keys are spelled out."""
        inventory = parse(reports.html("inventory", built_inventory()))
        assert ["in MTO"] * 6 + ["not in MTO", "in MTO", "none"] == column(inventory, "accounts", "partner_in_mto")
        assert ["Fabrikam"] * 5 + ["Tailspin", "Northwind", "Fabrikam", ""] == column(inventory, "accounts",
                                                                                     "source_tenant")
        assert "tenant_active, synced" == column(inventory, "accounts", "reasons")[0]
        audit = parse(reports.html("audit", built_audit()))
        assert ["Tenant id: t-5; Tenant name: Northwind; State: removed", "User ids: u-2, u-3", "", "", ""] == column(
            audit, "examples", "details")

    def test_hostile_values_are_escaped(self, kind: str) -> None:
        """Markup in a tenant name, an address or an id stays text: the page has its one script, no event
        handler attribute, and the values read back exactly as the directory gave them."""
        page = reports.html(kind, hostile(kind))
        root = parse(page)
        assert 1 == len(root.find("script"))
        assert [] == [k for n in root.iter() for k in n.attrs if k.startswith("on") or k == "data-pwned"]
        assert [] == root.find("img")
        text = root.text()
        for value in HOSTILE_VALUES:
            assert value in text
            assert value not in page  # only its escaped form is

    @pytest.mark.parametrize("source", SOURCES)
    def test_deterministic(self, kind: str, source: str) -> None:
        """The same report gives the same bytes (no clock, no randomness), on the sample computed twice too."""
        report = SOURCES[source](kind)
        again = copy.deepcopy(report) if source == "built" else sample_report.__wrapped__(kind)
        assert reports.html(kind, report) == reports.html(kind, again)

    def test_empty_tables(self) -> None:
        """An inventory with no synced account says so instead of drawing an empty table."""
        root = parse(reports.html("inventory", {**built_inventory(), "rows": []}))
        assert [] == root.find("table")
        assert "Accounts: none." == root.one("p", **{"class": "empty"}).text()
        assert ["internal: 0", "mto_member: 0", "guest: 0", "external: 0", "untrusted: 0"] == bars(root, "chart-trust")
        assert [] == bars(root, "chart-tenants")
        assert "none" == root.one("svg", id="chart-tenants").one("desc").text()

    def test_unknown_kind(self) -> None:
        """Only the three reports have a page."""
        with pytest.raises(ValueError, match="unknown report kind 'explain'"):
            reports.html("explain", built_audit())


def digest(text: str) -> str:
    """The CSP source expression of an inline element's text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# -- in Chromium ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    """The installed Chromium; locally a missing one skips, in CI it fails (.ci/run installs it)."""
    if chromium_command() is None:
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed: .ci/run must install the Debian package {PACKAGE!r}")
        pytest.skip(f"Chromium is not installed: install the Debian package {PACKAGE!r} (.ci/run does)")
    return Chromium(tmp_path_factory.mktemp("chromium"))


def write(tmp_path: Path, kind: str, report: dict[str, Any]) -> Path:
    path = tmp_path / f"{kind}.html"
    path.write_text(reports.html(kind, report), encoding="utf-8")
    return path


def loaded(browser: Chromium, path: Path, fragment: str = "") -> Node:
    """The DOM of the page at ``path`` after load, parsed."""
    return parse(browser.dump_dom(path.as_uri() + fragment))


# A page that shows the report in a same-origin frame (srcdoc), clicks header buttons in it, then copies the
# frame's DOM into a <pre> of its own, which --dump-dom prints (escaped, as text).
CLICKER = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<iframe id="report" srcdoc="{page}"></iframe><pre id="dom"></pre>
<script>
document.getElementById("report").addEventListener("load", function () {{
  var frame = document.getElementById("report").contentDocument;
  {clicks}.forEach(function (click) {{
    frame.querySelector("#" + click[0] + " th[data-key='" + click[1] + "'] button").click();
  }});
  document.getElementById("dom").textContent = frame.documentElement.outerHTML;
}});
</script></body></html>"""


def clicked(browser: Chromium, tmp_path: Path, kind: str, report: dict[str, Any],
            clicks: list[tuple[str, str]]) -> Node:
    """The DOM of the report's page after clicking each (table id, column key) header in turn."""
    path = tmp_path / "clicker.html"
    clicks_js = "[" + ", ".join(f'["{t}", "{k}"]' for t, k in clicks) + "]"
    page = html_module.escape(reports.html(kind, report))
    path.write_text(CLICKER.format(page=page, clicks=clicks_js), encoding="utf-8")
    outer = parse(browser.dump_dom(path.as_uri()))
    return parse(outer.one("pre", id="dom").text())


@pytest.mark.chromium
class TestInChromium:
    """The page in headless Chromium: what is there after load, sorting, hostile values, a screenshot."""

    def test_dom_after_load(self, browser: Chromium, tmp_path: Path, kind: str) -> None:
        """After load the DOM of the sample's page holds the summary, the charts and the tables, untouched by the
        script (the built pages load in the tests below)."""
        report = sample_report(kind)
        check_page(kind, report, loaded(browser, write(tmp_path, kind, report)))

    def test_sort_by_address(self, browser: Chromium, tmp_path: Path) -> None:
        """``#sort=findings.count`` sorts numerically (9 < 10 < 100) and marks the header; ``:descending`` turns it
        round; severity sorts by rank, not by name."""
        path = write(tmp_path, "audit", built_audit())
        up = loaded(browser, path, "#sort=findings.count")
        assert ["3", "4", "9", "10", "100"] == column(up, "findings", "count")
        assert "ascending" == header(up, "findings", "count").attrs["aria-sort"]
        assert "none" == header(up, "findings", "kind").attrs["aria-sort"]
        down = loaded(browser, path, "#sort=findings.severity:descending")
        assert ["high", "high", "medium", "low", "info"] == column(down, "findings", "severity")
        assert "descending" == header(down, "findings", "severity").attrs["aria-sort"]

    def test_sort_text_and_trust(self, browser: Chromium, tmp_path: Path) -> None:
        """Text columns sort as text (an empty cell first), trust by its rank."""
        path = write(tmp_path, "inventory", built_inventory())
        by_trust = loaded(browser, path, "#sort=accounts.trust:descending")
        assert ["mto_member"] * 5 + ["guest", "external", "untrusted", ""] == column(by_trust, "accounts", "trust")
        by_name = loaded(browser, path, "#sort=accounts.source_tenant")
        assert ["", "Fabrikam", "Fabrikam", "Fabrikam", "Fabrikam", "Fabrikam", "Fabrikam", "Northwind",
                "Tailspin"] == column(by_name, "accounts", "source_tenant")

    def test_click_sorts(self, browser: Chromium, tmp_path: Path) -> None:
        """Clicking a header sorts ascending, clicking it again descending, and the mark follows the last click."""
        once = clicked(browser, tmp_path, "audit", built_audit(), [("findings", "count")])
        assert ["3", "4", "9", "10", "100"] == column(once, "findings", "count")
        assert "ascending" == header(once, "findings", "count").attrs["aria-sort"]
        twice = clicked(browser, tmp_path, "audit", built_audit(),
                        [("findings", "kind"), ("findings", "count"), ("findings", "count"),
                         ("examples", "address"), ("examples", "address")])
        assert ["100", "10", "9", "4", "3"] == column(twice, "findings", "count")
        assert ["none", "none", "descending", "none"] == [
            th.attrs["aria-sort"] for th in twice.one("table", id="findings").find("th")]
        assert "descending" == header(twice, "examples", "address").attrs["aria-sort"]
        addresses = column(twice, "examples", "address")
        assert sorted(addresses, reverse=True) == addresses

    def test_hostile_values_run_no_script(self, browser: Chromium, tmp_path: Path, kind: str) -> None:
        """Markup from the directory shows as text in Chromium and runs nothing (no data-pwned attribute)."""
        root = loaded(browser, write(tmp_path, kind, hostile(kind)))
        assert [] == [n.tag for n in root.iter() if "data-pwned" in n.attrs]
        assert [] == root.find("img")
        text = root.one("body").text()
        for value in HOSTILE_VALUES:
            assert value in text

    def test_policy_blocks_injected_markup(self, browser: Chromium, tmp_path: Path) -> None:
        """Should markup ever slip through unescaped, the page's Content-Security-Policy stops it: an injected
        script and event handler do not run, while the page's own script still does (it sorts)."""
        page = reports.html("audit", built_audit())
        injected = page.replace("<main>", "<main>" + HOSTILE + HOSTILE_IMG, 1)
        assert injected != page
        path = tmp_path / "injected.html"
        path.write_text(injected, encoding="utf-8")
        root = loaded(browser, path, "#sort=findings.count")
        assert [] == [n.tag for n in root.iter() if "data-pwned" in n.attrs]
        assert "ascending" == header(root, "findings", "count").attrs["aria-sort"]

    def test_screenshot(self, browser: Chromium, tmp_path: Path, kind: str) -> None:
        """Chromium renders the sample's page to a 1280 x 1600 PNG of some substance; with
        MTOTRUST_UPDATE_SCREENSHOTS=1 it becomes docs/img/report-KIND.png."""
        png = tmp_path / f"report-{kind}.png"
        shot = browser.screenshot(write(tmp_path, kind, sample_report(kind)).as_uri(), png)
        assert shot.startswith(PNG_SIGNATURE)
        assert (1280, 1600) == struct.unpack(">II", shot[16:24])  # IHDR: width, height
        assert len(shot) > 10_000  # a blank page compresses to far less
        if os.environ.get("MTOTRUST_UPDATE_SCREENSHOTS") == "1":
            shutil.copyfile(png, DOCS_IMG / png.name)

    def test_printout(self, browser: Chromium, tmp_path: Path) -> None:
        """The inventory prints to a PDF of several pages (its table runs on)."""
        pdf = browser.print_pdf(write(tmp_path, "inventory", sample_report("inventory")).as_uri(),
                                tmp_path / "inventory.pdf")
        assert pdf.startswith(b"%PDF-")
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) > 1
