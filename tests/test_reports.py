"""The admin reports (audit, inventory, diff): their contents, text, CSV and JSON, and their commands."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import stat
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from strategies import (
    ACTIVE,
    LITWARE,
    LOCAL,
    OUTSIDE,
    PENDING,
    REMOVED,
    build,
    domains,
    mto,
    native,
    organization,
    synced,
)
from strategies import partners as partner_rows

from mtotrust import TEAMS_ACTIONS, MailAuth, Policy, Snapshot, TrustEngine, reports
from mtotrust._resolve import _upn_home
from mtotrust.cli import main
from mtotrust.cli._common import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE

SAMPLE = Snapshot.sample()
DEFAULT = Policy.default()
# A directory with nothing to report: one local member, the local tenant and one active partner with its domain.
CLEAN: dict[str, Any] = {"states": {LOCAL: "active", ACTIVE: "active"},
         "domain_map": {"contoso.com": LOCAL, "contoso.onmicrosoft.com": LOCAL, "fabrikam.com": ACTIVE}}


def clean(users=(), **changes):
    """Build the CLEAN directory with ``users`` (beside one local member) and ``changes`` to its arguments."""
    return build([native("u0", "megan@contoso.com"), *users], **{**copy.deepcopy(CLEAN), **changes})


def joined(tenant, state, domain):
    """The changes to CLEAN that add one tenant, in ``state``, with its ``domain``."""
    return {"states": {**CLEAN["states"], tenant: state}, "domain_map": {**CLEAN["domain_map"], domain: tenant}}


def counts(report):
    return {f["kind"]: f["count"] for f in report["findings"]}


def guid(i):
    return f"{i:08d}-0000-4000-8000-{i:012d}"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- audit -------------------------------------------------------------------------------------------------------

class TestAudit:
    def test_sample_reports_every_kind(self):
        """The bundled sample is built so that every finding kind occurs."""
        report = reports.audit(SAMPLE, DEFAULT)
        assert list(reports.FINDINGS) == sorted(counts(report), key=list(reports.FINDINGS).index)
        assert all(count > 0 for count in counts(report).values())

    def test_contract(self):
        """Keys in contract order, findings by severity then catalogue order, at most 5 sorted examples each."""
        report = reports.audit(SAMPLE, DEFAULT)
        assert ["snapshot_id", "policy_fingerprint", "findings"] == list(report)
        assert (SAMPLE.id, DEFAULT.fingerprint) == (report["snapshot_id"], report["policy_fingerprint"])
        catalogue = list(reports.FINDINGS)
        order = [(-reports.SEVERITIES.index(f["severity"]), catalogue.index(f["kind"])) for f in report["findings"]]
        assert sorted(order) == order
        for finding in report["findings"]:
            assert ["kind", "severity", "count", "examples", "fix"] == list(finding)
            assert finding["severity"] in reports.SEVERITIES
            assert len(finding["examples"]) <= min(5, finding["count"])
            assert finding["fix"].endswith(".")
            if finding["examples"] and "user_id" in finding["examples"][0]:
                assert ["user_id", "address"] == list(finding["examples"][0])[:2]
                keys = [(e["address"], e["user_id"]) for e in finding["examples"]]
                assert sorted(keys) == keys

    def test_sample_examples(self):
        """The named special cases of the sample are where the audit says."""
        examples = {f["kind"]: f["examples"] for f in reports.audit(SAMPLE, DEFAULT)["findings"]}
        assert ["jo@fabrikam.com"] == [e["address"] for e in examples["address_claimed_twice"]]
        assert 2 == len(examples["address_claimed_twice"][0]["user_ids"])
        assert ["sam@fabrikam.com"] == [e["address"] for e in examples["native_object_with_partner_domain"]]
        assert [("fabrikarn.com", "fabrikam.com")] == [(e["domain"], e["confusable_with"])
                                                       for e in examples["confusable_domain"]]
        assert ["Woodgrove Bank"] == [e["tenant_name"] for e in examples["mto_tenant_without_domain"]]
        assert {"Litware", "Northwind"} == {e["tenant_name"] for e in examples["partner_policy_disagrees"]}
        assert ["adatum.com"] == [e["domain"] for e in examples["domain_outside_mto"]]
        assert "pat@fabrikam.com" in [e["address"] for e in examples["mto_user_typed_guest"]]

    def test_clean_directory_reports_only_its_size(self):
        """A healthy directory reports the MTO size alone, as info."""
        report = reports.audit(clean(), DEFAULT)
        assert [{"kind": "mto_size", "severity": "info", "count": 2, "examples": []}] == [
            {k: v for k, v in f.items() if k != "fix"} for f in report["findings"]]
        assert "https://learn.microsoft.com/entra/identity/multi-tenant-organizations/" \
               "multi-tenant-organization-overview" in report["findings"][0]["fix"]

    @pytest.mark.parametrize(("users", "changes", "kind", "count"), [
        ([synced("u1", "a@northwindtraders.com"), synced("u2", "b@northwindtraders.com")],
         joined(REMOVED, "removed", "northwindtraders.com"), "synced_from_removed_tenant", 2),
        ([synced("u1", "a@tailspintoys.com")], joined(PENDING, "pending", "tailspintoys.com"),
         "synced_from_pending_tenant", 1),
        ([synced("u1", "a@tailspintoys.com", userType="Guest")], joined(PENDING, "pending", "tailspintoys.com"),
         "mto_user_typed_guest", 0),
        ([synced("u1", "a@fabrikam.com", userType="Guest")], {}, "mto_user_typed_guest", 1),
        ([synced("u1", "a@fabrikam.com"), synced("u2", "b@fabrikam.com", otherMails=["a@fabrikam.com"])], {},
         "address_claimed_twice", 1),
        ([native("u1", "sam@contoso.com", otherMails=["sam@fabrikam.com"])], {}, "native_object_with_partner_domain",
         1),
        ([native("u1", "sam@contoso.com", otherMails=["sam@fabrikam.com"], userType="Guest")], {},
         "native_object_with_partner_domain", 0),
        ([], {"states": {LOCAL: "active", ACTIVE: "active", LITWARE: "pending"}}, "mto_tenant_without_domain", 1),
        ([], {"domain_map": {**CLEAN["domain_map"], "adatum.com": OUTSIDE, "adatum.net": OUTSIDE}},
         "domain_outside_mto", 2),
        ([native("u1", "sam@contoso.com", otherMails=["sam@fabrikarn.com", "kim@fabrikarn.com"])], {},
         "confusable_domain", 1),
        ([], {"partner_rows": {ACTIVE: False}}, "partner_policy_disagrees", 1),
        ([], {"partner_rows": {ACTIVE: True, OUTSIDE: True, PENDING: True},
              **joined(PENDING, "pending", "tailspintoys.com")}, "partner_policy_disagrees", 1),
        ([], {"partner_rows": {REMOVED: True}, **joined(REMOVED, "removed", "northwindtraders.com")},
         "partner_policy_disagrees", 1),
        ([], {"partner_rows": {ACTIVE: None}}, "partner_policy_disagrees", 0),
        ([synced("u1", "a@fabrikam.com", mail=...), synced("u2", "b@fabrikam.com")], {}, "external_without_mail", 1),
    ])
    def test_each_kind_on_a_built_directory(self, users, changes, kind, count):
        """Each kind counts what it says on a directory built to hold (or just not hold) it."""
        assert count == counts(reports.audit(clean(users, **changes), DEFAULT)).get(kind, 0)

    def test_example_details(self):
        """An object's example names its tenant; one synced without mail is named by its decoded #EXT# address."""
        snapshot = clean([synced("u1", "a@northwindtraders.com", mail=...)],
                         **joined(REMOVED, "removed", "northwindtraders.com"))
        examples = {f["kind"]: f["examples"] for f in reports.audit(snapshot, DEFAULT)["findings"]}
        assert [{"user_id": "u1", "address": "a@northwindtraders.com", "tenant_id": REMOVED, "tenant_name": "5555",
                 "state": "removed"}] == examples["synced_from_removed_tenant"]
        assert [{"user_id": "u1", "address": "a@northwindtraders.com"}] == examples["external_without_mail"]

    @pytest.mark.parametrize(("active", "pending", "severity"), [(100, 0, "info"), (100, 7, "info"), (101, 0, "high")])
    def test_mto_size(self, active, pending, severity):
        """Up to 100 active tenants (the owner included) is info; a 101st makes it high. Pending ones do not count."""
        states = {LOCAL: "active", **{guid(i): "active" for i in range(1, active)},
                  **{guid(1000 + i): "pending" for i in range(pending)}}
        finding = next(f for f in reports.audit(clean(states=states), DEFAULT)["findings"] if f["kind"] == "mto_size")
        assert (severity, active) == (finding["severity"], finding["count"])
        assert "100 active tenants" in finding["fix"]

    def test_over_the_limit_comes_first(self):
        """A high mto_size sorts with the high findings, before every medium one."""
        states = {LOCAL: "active", **{guid(i): "active" for i in range(1, 101)}}
        findings = reports.audit(clean(states=states), DEFAULT)["findings"]
        assert ["mto_size", "mto_tenant_without_domain", "domain_outside_mto"] == [f["kind"] for f in findings]


# -- inventory ---------------------------------------------------------------------------------------------------

class TestInventory:
    def test_rows_are_what_the_engine_resolves(self):
        """One row per external object, each with the engine's trust, reasons and home tenant for its address."""
        report = reports.inventory(SAMPLE, DEFAULT)
        assert ["snapshot_id", "policy_fingerprint", "rows"] == list(report)
        rows = report["rows"]
        assert {u.id for u in SAMPLE.users.values() if SAMPLE.is_external(u)} == {r["user_id"] for r in rows}
        assert len(rows) == len({r["user_id"] for r in rows})
        engine = TrustEngine(SAMPLE, DEFAULT)
        for row in rows:
            assert list(reports.ROW_KEYS) == list(row)
            resolution = engine.resolve(row["address"])
            user = SAMPLE.users[row["user_id"]]
            assert user in SAMPLE.lookup(row["address"])
            assert (resolution.trust.value, list(resolution.reasons)) == (row["trust"], row["reasons"])
            # the address's home; for a domain no tenant maps, the #EXT# name's or another address's (object_home)
            if resolution.home_tenant_id is not None or _upn_home(SAMPLE, user):
                assert row["source_tenant_id"] == (resolution.home_tenant_id or _upn_home(SAMPLE, user))
            tenant = SAMPLE.tenants.get(row["source_tenant_id"] or "")
            assert (tenant.display_name if tenant else None, tenant.state if tenant else None) == (
                row["source_tenant_name"], row["tenant_state"])
            assert SAMPLE.partners.get(row["source_tenant_id"] or "") == row["partner_in_mto"]
        keys = [(r["source_tenant_name"] is None, r["source_tenant_name"] or "", r["address"], r["user_id"])
                for r in rows]
        assert sorted(keys) == keys
        assert {"mto_member", "guest", "external", "untrusted"} <= {r["trust"] for r in rows}

    def test_primary_mail_else_first_indexed_address(self):
        """A row names the object by its mail; without one, by the first address the index holds for it."""
        snapshot = clean([synced("u1", "a@fabrikam.com", otherMails=["0@fabrikam.com"]),
                          synced("u2", "b@fabrikam.com", mail=..., otherMails=["0b@fabrikam.com"])])
        rows = {r["user_id"]: r for r in reports.inventory(snapshot, DEFAULT)["rows"]}
        assert ("a@fabrikam.com", "0b@fabrikam.com") == (rows["u1"]["address"], rows["u2"]["address"])

    def test_object_without_any_address(self):
        """An external object the index holds under no address is listed, with nothing resolved."""
        snapshot = clean([synced("u1", "a@fabrikam.com", mail=..., userPrincipalName="not-an-address",
                                 proxyAddresses=[])])
        [row] = reports.inventory(snapshot, DEFAULT)["rows"]
        assert {"user_id": "u1", "address": None, "source_tenant_id": None, "source_tenant_name": None,
                "tenant_state": None, "partner_in_mto": None, "trust": None, "reasons": []} == row

    def test_policy_decides_trust(self):
        """The policy's block list reaches the rows (and its fingerprint the report)."""
        blocking = Policy.from_data({"overrides": {"block": ["cameron@fabrikam.com"]}})
        report = reports.inventory(SAMPLE, blocking)
        row = next(r for r in report["rows"] if r["address"] == "cameron@fabrikam.com")
        assert ("untrusted", "blocked", blocking.fingerprint) == (row["trust"], row["reasons"][-1],
                                                                  report["policy_fingerprint"])

    def test_csv(self):
        """The CSV is the rows under a header of their keys, read back by the csv module to the same values."""
        report = reports.inventory(SAMPLE, DEFAULT)
        parsed = list(csv.reader(io.StringIO(reports.csv_rows(report))))
        assert list(reports.ROW_KEYS) == parsed[0]
        assert len(report["rows"]) == len(parsed) - 1
        for row, line in zip(report["rows"], parsed[1:], strict=True):
            assert [row["user_id"], row["address"], row["trust"], " ".join(row["reasons"])] == [
                line[0], line[1], line[6], line[7]]
            assert {True: "true", False: "false", None: ""}[row["partner_in_mto"]] == line[5]


# -- diff --------------------------------------------------------------------------------------------------------

def count_directly(snapshot, a, b):
    """Count each app's changes by deciding every indexed address with two engines: no memo, no shortcut."""
    left, right = TrustEngine(snapshot, a), TrustEngine(snapshot, b)
    names = sorted(set(a.labels) | set(b.labels))
    found: dict[str, Counter[str]] = {app: Counter() for app in reports.APPS}
    for address in snapshot.addresses():
        auth = MailAuth(dmarc="pass", header_from=address.rpartition("@")[2])
        ra, rb = left.report(address, auth), right.report(address, auth)
        pairs: dict[str, tuple[set[Any], set[Any]]] = {
            "mail": (set() if ra["mail"]["tag_external"] else {"untagged"},
                     set() if rb["mail"]["tag_external"] else {"untagged"}),
            "dlp": ({"inside"} if ra["dlp"]["inside_organization"] else set(),
                    {"inside"} if rb["dlp"]["inside_organization"] else set()),
            "teams": ({x for x in TEAMS_ACTIONS if ra["teams"][x]}, {x for x in TEAMS_ACTIONS if rb["teams"][x]}),
            "labels": ({(n, r) for n in names for r in ra["labels"].get(n, [])},
                       {(n, r) for n in names for r in rb["labels"].get(n, [])}),
        }
        for app, (before, after) in pairs.items():
            if before != after:
                found[app]["changed"] += 1
                found[app]["raised" if after > before else "lowered" if after < before else "mixed"] += 1
    return {app: (c["changed"], c["raised"], c["lowered"]) for app, c in found.items()}


def app_counts(report):
    return {app: (c["changed"], c["raised"], c["lowered"]) for app, c in report["apps"].items()}


class TestDiff:
    def test_classic_default_on_the_sample(self):
        """classic -> default raises exactly the MTO members, in mail, DLP and Teams; no labels in either."""
        report = reports.diff(SAMPLE, Policy.classic(), DEFAULT, a_name="classic", b_name="default")
        assert ["a", "b", "snapshot_id", "identities", "mail_assumes", "apps"] == list(report)
        assert ({"name": "classic", "policy_fingerprint": Policy.classic().fingerprint},
                {"name": "default", "policy_fingerprint": DEFAULT.fingerprint}, SAMPLE.id, "dmarc=pass") == (
            report["a"], report["b"], report["snapshot_id"], report["mail_assumes"])
        assert len(list(SAMPLE.addresses())) == report["identities"]
        engine = TrustEngine(SAMPLE, DEFAULT)
        members = sum(1 for a in SAMPLE.addresses() if engine.resolve(a).trust.value == "mto_member")
        assert members > 0
        expected = {"mail": (members, members, 0), "dlp": (members, members, 0), "teams": (members, members, 0),
                    "labels": (0, 0, 0)}
        assert expected == app_counts(report)
        assert expected == count_directly(SAMPLE, Policy.classic(), DEFAULT)
        mail = report["apps"]["mail"]
        assert ["changed", "raised", "lowered", "examples"] == list(mail)
        assert (5, [], []) == (len(mail["examples"]["raised"]), mail["examples"]["lowered"],
                               mail["examples"]["mixed"])
        first = mail["examples"]["raised"][0]
        assert ["address", "user_id", "a", "b"] == list(first)
        assert ("tagged [External]", "untagged") == (first["a"], first["b"])
        assert SAMPLE.lookup(first["address"])[0].id == first["user_id"]

    def test_reverse_lowers(self):
        """default -> classic is the mirror image."""
        report = reports.diff(SAMPLE, DEFAULT, Policy.classic(), a_name="default", b_name="classic")
        assert {app: (c, l, r) for app, (c, r, l) in count_directly(SAMPLE, Policy.classic(), DEFAULT).items()} \
            == app_counts(report)

    @pytest.mark.parametrize(("a", "b"), [
        ({"labels": {"L": {"mto_member": "Viewer"}}}, {"labels": {"L": {"mto_member": "Reviewer"}}}),
        ({"labels": {"L": {"mto_member": "Viewer"}}}, {"labels": {"L": {"mto_member": ["VIEW", "PRINT"]}}}),
        ({"labels": {"L": {"guest": "Viewer"}}}, {"labels": {"M": {"guest": "Viewer", "internal": "Co-Owner"}}}),
        ({"teams": {"chat": "guest", "call": "internal"}}, {"teams": {"chat": "internal", "call": "guest"}}),
        ({"mail": {"untagged_at": "guest"}, "dlp": {"inside_at": "internal"}},
         {"mail": {"untagged_at": "internal"}, "dlp": {"inside_at": "guest"}}),
        ({"overrides": {"block": ["fabrikam.com"]}}, {}),
        ({"overrides": {"block": ["fabrikam.com"]}, "mail": {"untagged_at": "guest"}},
         {"overrides": {"block": ["fabrikam.com"]}}),
        ({}, {"snapshot": {"max_age": "1s"}}),
    ])
    def test_counts_equal_deciding_every_identity(self, a, b):
        """Raised, lowered and mixed changes (labels over both policies' labels) count as deciding each one does,
        whether the two policies resolve alike (one resolution serves both) or not (a block list, a max_age)."""
        pa, pb = Policy.from_data(a), Policy.from_data(b)
        report = reports.diff(SAMPLE, pa, pb, a_name="a.toml", b_name="b.toml")
        assert count_directly(SAMPLE, pa, pb) == app_counts(report)
        assert any(c["changed"] for c in report["apps"].values())
        for change in report["apps"].values():
            for direction, listed in change["examples"].items():
                assert len(listed) <= 5
                assert sorted(e["address"] for e in listed) == [e["address"] for e in listed], direction

    def test_mixed_examples_in_words(self):
        """A label that grants other rights (neither more nor fewer) is a mixed change, shown in words."""
        pa = Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}})
        pb = Policy.from_data({"labels": {"L": {"mto_member": ["VIEW", "PRINT"]}}})
        labels = reports.diff(SAMPLE, pa, pb, a_name="a", b_name="b")["apps"]["labels"]
        assert (0, 0) == (labels["raised"], labels["lowered"])
        assert {"a": "L: Viewer", "b": "L: PRINT VIEW"} == {k: labels["examples"]["mixed"][0][k] for k in "ab"}

    def test_ambiguous_address_has_no_user_id(self):
        """An address two objects carry is one identity, of no one object: its example has no user id."""
        snapshot = clean([synced("u1", "a@fabrikam.com"),
                          synced("u2", "b@fabrikam.com", otherMails=["a@fabrikam.com"])])
        report = reports.diff(snapshot, DEFAULT, Policy.from_data({"mail": {"untagged_at": "untrusted"}}), a_name="a",
                              b_name="b")
        assert [("a@fabrikam.com", None)] == [(e["address"], e["user_id"]) for e in
                                              report["apps"]["mail"]["examples"]["raised"]]

    def test_same_policy_changes_nothing(self):
        report = reports.diff(SAMPLE, DEFAULT, Policy.default(), a_name="default", b_name="default")
        assert all((0, 0, 0) == v for v in app_counts(report).values())


# -- text --------------------------------------------------------------------------------------------------------

class TestText:
    @pytest.mark.parametrize("kind", ["audit", "inventory", "diff"])
    def test_header_names_snapshot_and_fingerprints(self, kind):
        report = (reports.diff(SAMPLE, Policy.classic(), DEFAULT, a_name="classic", b_name="default")
                  if kind == "diff" else getattr(reports, kind)(SAMPLE, DEFAULT))
        header = reports.text(kind, report).splitlines()[0]
        assert header.startswith(f"mtotrust {kind}")
        assert SAMPLE.id in header
        assert DEFAULT.fingerprint in header
        if kind == "diff":
            assert Policy.classic().fingerprint in header

    def test_audit_table(self):
        """One table row per finding (severity, kind, count), then each finding's fix and examples."""
        report = reports.audit(SAMPLE, DEFAULT)
        shown = reports.text("audit", report)
        for finding in report["findings"]:
            assert f"[{finding['severity']}] {finding['kind']}: {finding['count']}" in shown
            assert any(line.split() == [finding["severity"], finding["kind"], str(finding["count"])]
                       for line in shown.splitlines())
            for example in finding["examples"]:
                assert str(example.get("address", example.get("tenant_id", example.get("domain")))) in shown

    def test_unprintable_values_are_escaped(self):
        """A tenant display name cannot send escape sequences to the terminal."""
        tenants = mto(CLEAN["states"])
        tenants["value"][1]["displayName"] = "Evil\x1b[2J\u202eBank"
        snapshot = Snapshot.from_documents(organization=organization(), mto=tenants, domains=domains({}),
                                           users=[{"value": [native("u0", "megan@contoso.com")]}],
                                           partners=partner_rows({ACTIVE: False}))
        report = reports.audit(snapshot, DEFAULT)
        shown = reports.text("audit", report)
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "Evil\\x1b[2J\\u202eBank" in shown

    def test_unknown_kind(self):
        with pytest.raises(ValueError, match="unknown report kind"):
            reports.text("nope", {})


# -- the commands ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean") / "clean.sqlite"
    clean().save(path)
    return str(path)


class TestCommands:
    @pytest.mark.parametrize("argv", [["audit"], ["inventory"], ["diff", "classic", "default"]])
    def test_text_and_json(self, capsys, argv):
        """Text by default; --json is the report itself, the same as the library's."""
        code, out, err = run(capsys, *argv)
        assert EXIT_OK == code and "bundled sample" in err
        assert out.startswith(f"mtotrust {argv[0]}")
        code, out, _ = run(capsys, *argv, "--json")
        expected = (reports.diff(SAMPLE, Policy.classic(), DEFAULT, a_name="classic", b_name="default")
                    if argv[0] == "diff" else getattr(reports, argv[0])(SAMPLE, DEFAULT))
        assert (EXIT_OK, expected) == (code, json.loads(out))
        assert json.dumps(expected, indent=2, ensure_ascii=False) + "\n" == out

    def test_inventory_csv(self, capsys):
        code, out, _ = run(capsys, "inventory", "--csv")
        assert (EXIT_OK, reports.csv_rows(reports.inventory(SAMPLE, DEFAULT))) == (code, out)

    @pytest.mark.parametrize(("fail_on", "store", "code"), [
        (None, False, EXIT_OK), ("high", False, EXIT_PROBLEMS), ("low", False, EXIT_PROBLEMS),
        ("low", True, EXIT_OK), ("medium", True, EXIT_OK), ("info", True, EXIT_OK),
    ])
    def test_fail_on(self, capsys, clean_store, fail_on, store, code):
        """--fail-on exits 1 when a finding is at or above the severity; an under-limit mto_size never counts."""
        argv = ["audit", *(["--snapshot", clean_store] if store else []), *(["--fail-on", fail_on] if fail_on else [])]
        assert code == run(capsys, *argv)[0]

    @pytest.mark.parametrize("argv", [["audit"], ["inventory"], ["diff", "classic", "default"]])
    def test_html_file(self, capsys, tmp_path, argv):
        """--html FILE writes the page (and stdout still gets the text); a file it replaces keeps its mode."""
        page = tmp_path / "report.html"
        page.write_text("old")
        page.chmod(0o640)
        code, out, _ = run(capsys, *argv, "--html", str(page), "--json")
        assert EXIT_OK == code
        assert reports.html(argv[0], json.loads(out)) == page.read_text(encoding="utf-8")
        assert 0o640 == stat.S_IMODE(page.stat().st_mode)
        assert ["report.html"] == [p.name for p in tmp_path.iterdir()]

    def test_html_through_a_symlink(self, capsys, tmp_path, clean_store):
        """A symbolic link is followed: its target gets the page, the link stays a link."""
        (tmp_path / "pages").mkdir()
        target, link = tmp_path / "pages" / "audit.html", tmp_path / "latest.html"
        link.symlink_to(target)
        assert EXIT_OK == run(capsys, "audit", "--snapshot", clean_store, "--html", str(link))[0]
        assert link.is_symlink() and target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        assert ["audit.html"] == [p.name for p in (tmp_path / "pages").iterdir()]

    def test_html_to_a_missing_folder(self, capsys, tmp_path, clean_store):
        code, out, err = run(capsys, "audit", "--snapshot", clean_store, "--html", str(tmp_path / "none" / "r.html"))
        assert (EXIT_USAGE, "") == (code, out)
        assert 1 == len(err.splitlines()) and "cannot write --html" in err

    def test_html_onto_a_folder(self, capsys, tmp_path):
        code, _, err = run(capsys, "inventory", "--html", str(tmp_path))
        assert EXIT_USAGE == code and "cannot write --html" in err
        assert [] == list(tmp_path.iterdir())

    def test_diff_policy_file(self, capsys, tmp_path):
        """A policy file is named in the report as given."""
        policy = tmp_path / "p.toml"
        policy.write_text('version = 1\n[mail]\nuntagged_at = "guest"\n')
        code, out, _ = run(capsys, "diff", "default", str(policy), "--json")
        report = json.loads(out)
        assert (EXIT_OK, str(policy), Policy.load(policy).fingerprint) == (code, report["b"]["name"],
                                                                          report["b"]["policy_fingerprint"])
        assert report["apps"]["mail"]["raised"] > 0

    @pytest.mark.parametrize(("argv", "says"), [
        (["diff", "classic", "nosuch"], "POLICY_B 'nosuch'"),
        (["diff", "bogus.toml", "default"], "POLICY_A 'bogus.toml'"),
        (["diff", "classic"], "POLICY_B"),
        (["audit", "--fail-on", "critical"], "--fail-on"),
        (["audit", "--snapshot", "/nonexistent/snapshot"], "/nonexistent/snapshot"),
        (["inventory", "--policy", "/nonexistent/p.toml"], "/nonexistent/p.toml"),
        (["inventory", "--csv", "--json"], "--csv and --json"),
        (["audit", "--policy-fingerprint", "0123456789abcdef"], "0123456789abcdef"),
        (["diff", "classic", "default", "--policy", "x.toml"], "--policy"),
    ])
    def test_bad_arguments(self, capsys, argv, says):
        """Bad usage exits 2 with one line on stderr naming the problem, and prints nothing on stdout."""
        code, out, err = run(capsys, *argv)
        assert (EXIT_USAGE, "") == (code, out)
        assert 1 == len(err.splitlines()), err
        assert says in err


DETERMINISM = """
import contextlib, io, json, pathlib, sys
from mtotrust.cli import main
page = pathlib.Path(sys.argv[1])
for argv in json.loads(sys.argv[2]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--html", str(page)]) == 0
    print(repr(out.getvalue()), repr(page.read_text(encoding="utf-8")))
"""


def test_deterministic_across_processes(tmp_path):
    """Two processes (with different hash seeds) print the same bytes for every report, format and page."""
    runs = [["audit"], ["audit", "--json"], ["inventory"], ["inventory", "--json"], ["inventory", "--csv"],
            ["diff", "classic", "default"], ["diff", "classic", "default", "--json"]]
    outputs = [subprocess.run([sys.executable, "-c", DETERMINISM, str(tmp_path / "page.html"), json.dumps(runs)],
                              capture_output=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2")]
    assert outputs[0] == outputs[1]
    assert len(runs) == len(outputs[0].splitlines())


class TestReviewFixes:
    """Regression tests of the issue-16 review (F1, F2, F6, F9, F10, F12, S3)."""

    def test_removed_tenant_user_at_unmapped_domain(self):
        """F1: a domain no tenant maps falls back to the home the object's #EXT# name decodes to."""
        from strategies import HOST

        from mtotrust._builder import ext_upn
        snap = build([synced("u1", "nora@nwsub.com", userPrincipalName=ext_upn("nora@northwindtraders.com", HOST))])
        kinds = [f["kind"] for f in reports.audit(snap, DEFAULT)["findings"]]
        assert "synced_from_removed_tenant" in kinds
        [row] = reports.inventory(snap, DEFAULT)["rows"]
        assert (REMOVED, "removed") == (row["source_tenant_id"], row["tenant_state"])

    def test_another_address_names_no_home(self):
        """Without #EXT# evidence, an otherMails address at a partner's domain does not make the object that
        partner's (anyone's otherMails may hold it): the home stays unknown, as the resolver has it."""
        snap = build([synced("u1", "nora@nwsub.com", userPrincipalName="nora@nwsub.com",
                             otherMails=["nora@northwindtraders.com"])])
        [row] = reports.inventory(snap, DEFAULT)["rows"]
        assert None is row["source_tenant_id"]
        assert "synced_from_removed_tenant" not in {f["kind"] for f in reports.audit(snap, DEFAULT)["findings"]}

    def test_mto_size_without_states(self):
        """F2: mto.json read without states: every listed tenant counts, the example and fix say so."""
        from strategies import STATES
        snap = build(states=dict.fromkeys(STATES))
        [size] = [f for f in reports.audit(snap, DEFAULT)["findings"] if f["kind"] == "mto_size"]
        assert size["count"] == len(STATES)
        assert [{"tenants_listed": len(STATES), "states_unknown": len(STATES)}] == size["examples"]
        assert "unknown" in size["fix"]

    def test_claimed_twice_ids_are_bounded(self):
        """S3: an address seven objects claim lists five ids and the count."""
        snap = build([native(f"n{i}", "x@contoso.com") for i in range(7)])
        [claimed] = [f for f in reports.audit(snap, DEFAULT)["findings"] if f["kind"] == "address_claimed_twice"]
        [example] = claimed["examples"]
        assert (5, 7) == (len(example["user_ids"]), example["user_count"])

    def test_lone_surrogate_and_bidi_are_escaped(self):
        """F6/F7/F9: a lone surrogate or a bidi control shows as an escape in text, HTML and CSV."""
        rows = mto()
        for row in rows["value"]:
            if row["tenantId"] == REMOVED:
                row["displayName"] = "Nor\ud800th\u202e"
        snap = Snapshot.from_documents(organization=organization(), mto=rows, domains=domains(),
                                       users=[{"value": [synced("u1", "nora@northwindtraders.com")]}])
        for kind in ("audit", "inventory"):
            report = reports.audit(snap, DEFAULT) if kind == "audit" else reports.inventory(snap, DEFAULT)
            for shown in (reports.text(kind, report), reports.html(kind, report)):
                shown.encode("utf-8")
                assert "Nor\\ud800th\\u202e" in shown and "\u202e" not in shown
        reports.csv_rows(reports.inventory(snap, DEFAULT)).encode("utf-8")
        diff = reports.diff(snap, Policy.classic(), DEFAULT, a_name="a\x1b[31m\u202e", b_name="b")
        assert reports.text("diff", diff).splitlines()[0].startswith("mtotrust diff a\\x1b[31m\\u202e -> b:")
        assert "\u202e" not in reports.html("diff", diff)

    def test_html_surrogate_cli_exits_0(self, capsys, tmp_path):
        """F6: the page of a directory with a lone surrogate is written (valid UTF-8), exit 0."""
        rows = mto()
        for row in rows["value"]:
            if row["tenantId"] == REMOVED:
                row["displayName"] = "Bad\ud800"
        folder = tmp_path / "snap"
        folder.mkdir()
        for name, body in (("organization.json", organization()), ("mto.json", rows), ("domains.json", domains())):
            (folder / name).write_text(json.dumps(body), encoding="utf-8")
        (folder / "users").mkdir()
        (folder / "users" / "0001.json").write_text(json.dumps({"value": [synced("u1", "a@northwindtraders.com")]}))
        page = tmp_path / "audit.html"
        assert EXIT_OK == run(capsys, "audit", "--snapshot", str(folder), "--html", str(page))[0]
        assert "Bad\\ud800" in page.read_bytes().decode("utf-8")

    @pytest.mark.parametrize(("target", "says"), [("", "needs a file name"), ("{tmp}/no/such/x.html", "no folder"),
                                                  ("{tmp}", "it is a folder")])
    def test_html_target_checked_first(self, capsys, tmp_path, target, says):
        """F12: an empty --html, or one whose folder does not exist, is a usage error."""
        code, _, err = run(capsys, "audit", "--html", target.format(tmp=tmp_path))
        assert EXIT_USAGE == code and says in err

    def test_fail_on_info_counts_real_info_findings(self, capsys):
        """F10: --fail-on info still fails on a real info finding (domain_outside_mto), not on mto_size."""
        assert EXIT_PROBLEMS == run(capsys, "audit", "--fail-on", "info")[0]  # the sample has info findings
