"""``engine.explain`` and ``mtotrust explain``: every step with its evidence, the deciding key, the first failure.

Expectations are read from the bundled sample where they can be (tenant names and states, the attributes that
carry an address, the policy's keys), so an extended sample changes no assertion.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mtotrust import Identity, MailAuth, Policy, Snapshot, Trust, TrustEngine, explain
from mtotrust._builder import SnapshotBuilder
from mtotrust._explain import CAPS, FIXES, REASONS, first_failed, matched_attributes
from mtotrust._model import AppDecision, Decision, Resolution
from mtotrust._policy import TEAMS_ACTIONS
from mtotrust.cli import main
from mtotrust.cli._common import EXIT_OK, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = ROOT / "mtotrust" / "sample" / "policy.toml"
SNAP = Snapshot.sample()
POLICY = Policy.load(POLICY_FILE)
ENGINE = TrustEngine(SNAP, POLICY)
PASS = "mx.contoso.com; dmarc=pass header.from=fabrikam.com"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tenant(tenant_id: str | None) -> str:
    """``tenant NAME (ID)`` as the sample names the tenant."""
    assert tenant_id is not None
    row = SNAP.tenants.get(tenant_id)
    name = row.display_name if row is not None else (SNAP.display_name if tenant_id == SNAP.tenant_id else None)
    return f"tenant {name} ({tenant_id})" if name else f"tenant {tenant_id}"


def step(resolution: Resolution, code: str) -> int:
    return resolution.reasons.index(code) + 1


def failed_line(where: str, code: str, text: str) -> str:
    return f"The first check that failed ({where}, {code}): {text}.\nWhat would change it: {FIXES[code]}."


class TestEachTrustLevel:
    """One identity of each trust level of the sample: the evidence named, and the first failure of negative ones."""

    def test_internal(self) -> None:
        """megan@contoso.com: a verified domain of the local tenant (named), the object, its attributes; no failure."""
        resolution = ENGINE.resolve("megan@contoso.com")
        text = ENGINE.explain(resolution)
        assert resolution.trust == Trust.INTERNAL and resolution.user is not None
        attributes = matched_attributes(resolution.user, "megan@contoso.com", SNAP)
        assert "mail" in attributes
        assert f"contoso.com is a verified domain of the local {tenant(SNAP.tenant_id)}" in text
        assert f"object {resolution.user.id} carries megan@contoso.com in its mail" in text
        assert "first check that failed" not in text and first_failed(resolution, SNAP, POLICY) is None

    def test_mto_member(self) -> None:
        """cameron@fabrikam.com: the tenant by name and its state, the partner row, the #EXT# name; no failure."""
        resolution = ENGINE.resolve("cameron@fabrikam.com")
        text = ENGINE.explain(resolution)
        home = resolution.home_tenant_id
        assert resolution.trust == Trust.MTO_MEMBER and home is not None and resolution.user is not None
        assert "userPrincipalName #EXT#" in matched_attributes(resolution.user, "cameron@fabrikam.com", SNAP)
        assert f"home {tenant(home)}:" in text.splitlines()[0]
        assert f"domains.json maps fabrikam.com to {tenant(home)}" in text
        assert f"{tenant(home)} is in state {SNAP.tenants[home].state} in mto.json" in text
        assert f"the partner policy row of {tenant(home)} has isInMultiTenantOrganization: true" in text
        assert f"its userPrincipalName {resolution.user.user_principal_name} is an #EXT# name" in text
        assert "first check that failed" not in text

    def test_guest_removed_tenant(self) -> None:
        """nora@northwindtraders.com: her tenant is removed; that is the first failure, and rejoining the fix."""
        resolution = ENGINE.resolve("nora@northwindtraders.com")
        home = resolution.home_tenant_id
        assert resolution.trust == Trust.GUEST and home is not None and SNAP.tenants[home].state == "removed"
        evidence = f"{tenant(home)} is in state removed in mto.json"
        assert failed_line(f"step {step(resolution, 'tenant_removed')}", "tenant_removed", evidence) \
            in ENGINE.explain(resolution)
        assert "a tenant must be active in the MTO for its synced users to count as MTO members" in FIXES[
            "tenant_removed"]

    def test_guest_user_type(self) -> None:
        """pat@fabrikam.com: userType Guest is the first failure, mapping userType to Member the fix."""
        resolution = ENGINE.resolve("pat@fabrikam.com")
        failure = first_failed(resolution, SNAP, POLICY)
        assert resolution.trust == Trust.GUEST and failure is not None
        assert ("user_type_guest", f"step {step(resolution, 'user_type_guest')}") == (failure.code, failure.where)
        assert "userType to Member" in failure.fix and failure.fix in ENGINE.explain(resolution)

    def test_external_unknown_address(self) -> None:
        """An address no object carries: the domain is unknown, no object; being synced or invited is the fix."""
        resolution = ENGINE.resolve("nobody@example.org")
        text = ENGINE.explain(resolution)
        assert resolution.trust == Trust.EXTERNAL
        assert "example.org is neither a verified domain of the local tenant nor in domains.json" in text
        assert failed_line(f"step {step(resolution, 'no_object')}", "no_object", "no object has nobody@example.org in "
                           "mail, userPrincipalName, otherMails or proxyAddresses") in text

    def test_external_disabled(self) -> None:
        """dana@fabrikam.com: a disabled account; accountEnabled is the evidence."""
        resolution = ENGINE.resolve("dana@fabrikam.com")
        failure = first_failed(resolution, SNAP, POLICY)
        assert resolution.trust == Trust.EXTERNAL and failure is not None and failure.code == "account_disabled"
        steps = ENGINE.explain(resolution)
        assert f"  {step(resolution, 'account_disabled')}. account_disabled: the account is disabled" in steps

    def test_untrusted_invalid(self) -> None:
        """An invalid identity: invalid_identity is the first failure, a well-formed address the fix."""
        text = ENGINE.explain(ENGINE.resolve("not-an-address"))
        assert text.startswith("'not-an-address' is untrusted:")
        assert failed_line("step 1", "invalid_identity", REASONS["invalid_identity"]) in text

    def test_untrusted_confusable(self) -> None:
        """A lookalike domain: the known domain it imitates and that domain's tenant are named."""
        resolution = ENGINE.resolve("cameron@fabrikarn.com")
        looks = SNAP.lookalike_of("fabrikarn.com")
        assert resolution.trust == Trust.UNTRUSTED and looks is not None
        evidence = f"fabrikarn.com is no known domain, but its skeleton is that of {looks}, a domain of " \
                   f"{tenant(SNAP.domain_tenants.get(looks, SNAP.tenant_id))}"
        assert failed_line("step 1", "confusable_domain", evidence) in ENGINE.explain(resolution)

    def test_ambiguous_names_every_object(self) -> None:
        """An address two objects carry: both object ids are named."""
        resolution = ENGINE.resolve("jo@fabrikam.com")
        ids = [u.id for u in SNAP.lookup("jo@fabrikam.com")]
        assert resolution.trust == Trust.UNTRUSTED and len(ids) > 1
        assert all(i in ENGINE.explain(resolution) for i in ids)

    def test_home_evidence_disagrees_names_both_tenants(self) -> None:
        """kim@fabrikam.com's #EXT# name names Litware: both tenants are named."""
        resolution = ENGINE.resolve("kim@fabrikam.com")
        failure = first_failed(resolution, SNAP, POLICY)
        assert failure is not None and failure.code == "home_evidence_disagrees"
        assert tenant(SNAP.domain_tenants["litware.com"]) in failure.text
        assert tenant(resolution.home_tenant_id) in failure.text


class TestApps:
    """The app's own steps, the policy key that decided, and the first failure of a negative answer."""

    def test_mail_unauthenticated(self) -> None:
        """An unauthenticated message from an MTO member: tagged; missing authentication is the first failure."""
        decision = ENGINE.mail("cameron@fabrikam.com")
        text = ENGINE.explain(decision)
        assert decision.tag_external
        assert f'Decided by: mail.require_authentication = true, mail.untagged_at = "{POLICY.mail.untagged_at}"' in text
        number = len(decision.resolution.reasons) + 1
        assert failed_line(f"step {number}", "auth_missing", REASONS["auth_missing"]) in text

    def test_mail_authenticated(self) -> None:
        """An authenticated message from an MTO member: untagged, by mail.untagged_at; nothing failed."""
        decision = ENGINE.mail("cameron@fabrikam.com", PASS)
        text = ENGINE.explain(decision)
        assert not decision.tag_external
        assert f'Decided by: mail.untagged_at = "{POLICY.mail.untagged_at}"' in text
        assert "first check that failed" not in text

    def test_mail_guest_fails_at_the_identity(self) -> None:
        """An authenticated message from a guest is tagged for the identity's failure, not the mail's."""
        failure = first_failed(ENGINE.mail("pat@fabrikam.com", MailAuth(dmarc="pass", header_from="fabrikam.com")),
                               SNAP, POLICY)
        assert failure is not None and failure.code == "user_type_guest"

    def test_dlp_names_the_recipient(self) -> None:
        """NotInOrganization: the recipient below dlp.inside_at and its first failed check."""
        decision = ENGINE.dlp(["megan@contoso.com", "nora@northwindtraders.com"])
        text = ENGINE.explain(decision)
        nora = decision.recipients[1]
        assert f'Decided by: dlp.inside_at = "{POLICY.dlp.inside_at}"' in text
        assert f"below it: nora@northwindtraders.com ({nora.trust.value})" in text
        assert f"(nora@northwindtraders.com, step {step(nora, 'tenant_removed')}, tenant_removed)" in text

    def test_teams_denied(self) -> None:
        """A Teams action a guest may not take: its key, and the identity's failure first."""
        decision = ENGINE.teams("nora@northwindtraders.com", "presence")
        text = ENGINE.explain(decision)
        assert not decision.allowed
        assert f'Decided by: teams.presence = "{POLICY.teams.presence}"' in text
        assert "(step 6, tenant_removed)" in text and "Other checks that failed: teams_below_minimum." in text

    def test_teams_counts_only_checks_below_the_minimum(self) -> None:
        """A guest who contradicts its tenant id may not chat (minimum external): the mismatch failed, not userType."""
        decision = ENGINE.teams(Identity("pat@fabrikam.com", SNAP.domain_tenants["litware.com"]), "chat")
        failure = first_failed(decision, SNAP, POLICY)
        assert Trust(POLICY.teams.chat) == Trust.EXTERNAL and not decision.allowed
        assert "user_type_guest" in decision.reasons and failure is not None and failure.code == "tenant_id_mismatch"

    def test_label_no_entry(self) -> None:
        """A label without rights for the trust: the label's entry (or its absence) decided."""
        decision = ENGINE.label_rights("nora@northwindtraders.com", "Confidential")
        text = ENGINE.explain(decision)
        assert not decision.rights and "guest" not in POLICY.labels["Confidential"]
        assert "Decided by: labels.Confidential (no entry for guest)" in text and "(step 6, tenant_removed)" in text

    def test_label_no_level_above(self) -> None:
        """No level between the identity's and the one that has rights fails: the label itself is the failure."""
        decision = ENGINE.label_rights("cameron@fabrikam.com", "Highly Confidential")
        failure = first_failed(decision, SNAP, POLICY)
        assert not decision.rights and failure is not None and failure.code == "label_no_rights"
        assert 'labels."Highly Confidential" (no entry for mto_member)' in ENGINE.explain(decision)

    def test_label_granted(self) -> None:
        """Granted rights name the key and the rights."""
        decision = ENGINE.label_rights("cameron@fabrikam.com", "Confidential")
        grant = json.dumps(POLICY.labels["Confidential"]["mto_member"])
        assert f"Decided by: labels.Confidential.mto_member = {grant}" in ENGINE.explain(decision)


class TestPolicyEffects:
    def test_blocked(self) -> None:
        """overrides.block decides, and removing the entry is the fix."""
        engine = TrustEngine(SNAP, Policy.from_data({"version": 1, "overrides": {"block": ["cameron@fabrikam.com"]}}))
        text = engine.explain(engine.resolve("cameron@fabrikam.com"))
        assert "Decided by: overrides.block" in text and FIXES["blocked"] in text

    def test_stale(self) -> None:
        """A stale snapshot: when it was taken and snapshot.max_age are the evidence."""
        taken = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
        snap = Snapshot.from_documents(**SnapshotBuilder().tenant("fabrikam").synced_member("cameron@fabrikam.com")
                                       .documents(), taken_at=taken)
        engine = TrustEngine(snap, Policy.from_data({"version": 1, "snapshot": {"max_age": "1h"}}))
        resolution = engine.resolve("cameron@fabrikam.com")
        text = engine.explain(resolution)
        assert resolution.reasons[-1] == "snapshot_stale"
        assert f'the snapshot was taken at {taken.isoformat()}; snapshot.max_age = "1h"' in text
        assert 'Decided by: snapshot.max_age = "1h"' in text


class TestWithoutTheSnapshot:
    """explain(decision) alone still explains; another snapshot or policy than the decision's is not used."""

    def test_module_function(self) -> None:
        """Without a snapshot: every code, the tenant id (no name), the object's attribute; the first failure."""
        resolution = ENGINE.resolve("nora@northwindtraders.com")
        text = explain(resolution)
        home = resolution.home_tenant_id
        assert all(f"{code}: " in text for code in resolution.reasons)
        assert f"tenant {home} is in state removed in mto.json" in text and "Northwind" not in text
        assert "carries nora@northwindtraders.com in its mail" in text
        assert "The first check that failed (step 6, tenant_removed)" in text

    def test_another_snapshot_or_policy_is_ignored(self) -> None:
        """A snapshot or policy the decision was not made from would be false evidence: it is not read."""
        other = SnapshotBuilder().tenant("fabrikam").synced_member("cameron@fabrikam.com").build()
        decision = ENGINE.teams("nora@northwindtraders.com", "presence")
        assert explain(decision, other, Policy.classic()) == explain(decision) != ENGINE.explain(decision)

    def test_built_snapshot(self) -> None:
        """A pending tenant of a built snapshot: its name and state, joining the fix."""
        snap = SnapshotBuilder().tenant("litware", state="pending").synced_member("li@litware.com").build()
        engine = TrustEngine(snap)
        resolution = engine.resolve("li@litware.com")
        failure = first_failed(resolution, snap, engine.policy)
        assert failure is not None and failure.code == "tenant_pending" and "is in state pending" in failure.text
        assert "the tenant joins the MTO" in engine.explain(resolution)


class TestCatalogue:
    def test_fixes(self) -> None:
        """Every capping code has a fix, and every fixed code is a catalogued reason."""
        assert set(CAPS) <= set(FIXES) <= set(REASONS)
        assert {"auth_missing", "tagged_below_untagged_at", "recipient_below_inside_at", "teams_below_minimum",
                "label_no_rights"} <= set(FIXES)

    def test_every_indexed_address_has_its_attribute(self) -> None:
        """The attribute that carries an address is recomputed for every object of every indexed address."""
        missing = [(a, u.id) for a in SNAP.addresses() for u in SNAP.lookup(a) if not matched_attributes(u, a, SNAP)]
        assert [] == missing


def cli_decisions(identity: Identity, auth: str | None, app: str | None) -> list[Decision]:
    """The decisions mtotrust explain prints, in its order, made by ENGINE."""
    apps: list[AppDecision] = []
    if app in (None, "mail"):
        apps.append(ENGINE.mail(identity, auth))
    if app in (None, "dlp"):
        apps.append(ENGINE.dlp([identity]))
    if app in (None, "teams"):
        apps += [ENGINE.teams(identity, action) for action in TEAMS_ACTIONS]
    if app in (None, "labels"):
        apps += [ENGINE.label_rights(identity, label) for label in sorted(POLICY.labels)]
    return [*([ENGINE.resolve(identity)] if app is None else []), *apps]


class TestCommand:
    """mtotrust explain prints exactly engine.explain of each decision; --json; bad arguments."""

    @pytest.mark.parametrize(("address", "app"), [("nora@northwindtraders.com", None),
                                                  ("cameron@fabrikam.com", None), ("pat@fabrikam.com", "teams"),
                                                  ("cameron@fabrikam.com", "labels"), ("dana@fabrikam.com", "mail")])
    def test_text_is_engine_explain(self, capsys: pytest.CaptureFixture[str], address: str, app: str | None) -> None:
        """The output is engine.explain of the resolution and every app's decision (or --app's), blank-separated."""
        argv = ["explain", address, "--policy", str(POLICY_FILE), "--auth", PASS, *(["--app", app] if app else [])]
        code, out, _ = run(capsys, *argv)
        expected = "\n\n".join(ENGINE.explain(d) for d in cli_decisions(Identity(address), PASS, app))
        assert (EXIT_OK, expected + "\n") == (code, out)

    def test_tenant_id(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--tenant-id is checked, named as evidence."""
        litware = SNAP.domain_tenants["litware.com"]
        _, out, _ = run(capsys, "explain", "cameron@fabrikam.com", "--tenant-id", litware, "--app", "dlp")
        assert f"the app gave {litware}, but fabrikam.com belongs to" in out and "tenant_id_mismatch)" in out

    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json: the contract's keys; steps follow the reasons with their evidence; every app and action."""
        code, out, _ = run(capsys, "explain", "nora@northwindtraders.com", "--json", "--policy", str(POLICY_FILE))
        data = json.loads(out)
        resolution = ENGINE.resolve("nora@northwindtraders.com")
        assert EXIT_OK == code
        assert ["identity", "snapshot_id", "policy_fingerprint", "resolution", "steps", "first_failed", "apps"] == list(
            data)
        assert (SNAP.id, POLICY.fingerprint, resolution.to_dict()) == (
            data["snapshot_id"], data["policy_fingerprint"], data["resolution"])
        assert list(resolution.reasons) == [s["code"] for s in data["steps"]]
        removed = data["steps"][step(resolution, "tenant_removed") - 1]
        home = resolution.home_tenant_id
        assert {"tenant_id": home, "tenant_name": SNAP.tenants[str(home)].display_name, "state": "removed"} == \
            removed["evidence"]
        assert ["code", "text", "fix"] == list(data["first_failed"])
        failed = data["first_failed"]
        assert ("tenant_removed", FIXES["tenant_removed"]) == (failed["code"], failed["fix"])
        apps = data["apps"]
        assert (["mail", "dlp", "teams", "labels"], list(TEAMS_ACTIONS), sorted(POLICY.labels)) == (
            list(apps), list(apps["teams"]), list(apps["labels"]))
        presence = apps["teams"]["presence"]
        assert ["decision", "steps", "decided_by", "first_failed"] == list(presence)
        assert (["teams_below_minimum"], f'teams.presence = "{POLICY.teams.presence}"', "tenant_removed") == (
            [s["code"] for s in presence["steps"]], presence["decided_by"], presence["first_failed"]["code"])
        assert apps["dlp"]["decision"] == ENGINE.dlp(["nora@northwindtraders.com"]).to_dict()

    def test_json_positive_and_one_app(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A positive answer has no first failure; --app keeps that app only."""
        _, out, _ = run(capsys, "explain", "cameron@fabrikam.com", "--json", "--app", "mail", "--auth", PASS,
                        "--policy", str(POLICY_FILE))
        data = json.loads(out)
        mail = data["apps"]["mail"]
        assert (None, ["mail"], None) == (data["first_failed"], list(data["apps"]), mail["first_failed"])

    def test_json_is_deterministic(self, tmp_path: Path) -> None:
        """Two runs in separate processes (different hash seeds) print the same bytes."""
        argv = [sys.executable, "-m", "mtotrust", "explain", "jo@fabrikam.com", "--json", "--policy", str(POLICY_FILE)]
        outs = [subprocess.run(argv, capture_output=True, check=True, cwd=tmp_path,
                               env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
        assert outs[0] == outs[1] and json.loads(outs[0])["first_failed"]["code"] == "ambiguous_match"

    @pytest.mark.parametrize(("argv", "says"), [
        ((), "the following arguments are required: IDENTITY"),
        (("a@b.example", "--app", "chat"), "invalid choice: 'chat'"),
        (("a@b.example", "--policy", "/nonexistent/policy.toml"), "cannot be read"),
        (("a@b.example", "--policy-fingerprint", "0000000000000000"), "fingerprint"),
        (("a@b.example", "--snapshot", "/nonexistent/snapshot"), "/nonexistent/snapshot"),
    ])
    def test_bad_arguments(self, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str) -> None:
        """Bad usage: exit 2, one line on stderr naming the problem, nothing on stdout."""
        code, out, err = run(capsys, "explain", *argv)
        assert (EXIT_USAGE, "", 1) == (code, out, len(err.splitlines()))
        assert says in err


class TestReviewFixes:
    """Regression tests of the issue-16 review (F3, F4, S2, F5)."""

    OLD = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)

    def _snap(self, **kwargs: Any) -> tuple[Any, Snapshot]:
        sys.path.insert(0, str(ROOT / "tests"))
        import strategies
        return strategies, strategies.build([strategies.synced("u1", "ann@fabrikam.com")], **kwargs)

    def test_positive_answer_names_the_apps_key(self) -> None:
        """F3: a stale snapshot's cap does not decide a positive answer: the app's own key does."""
        _, snap = self._snap(taken_at=self.OLD)
        policy = Policy.from_data({"snapshot": {"max_age": "1s"}})
        decision = TrustEngine(snap, policy).teams("ann@fabrikam.com", "chat")
        assert decision.allowed
        assert "Decided by: teams.chat" in TrustEngine(snap, policy).explain(decision)
        tagged = TrustEngine(snap, policy).mail("ann@fabrikam.com", MailAuth(dmarc="pass", header_from="fabrikam.com"))
        assert "Decided by: snapshot.max_age" in TrustEngine(snap, policy).explain(tagged)

    def test_label_cap_whose_removal_grants_nothing(self) -> None:
        """F4: a cap whose removal reaches a level without rights is not the first failure."""
        _, snap = self._snap(taken_at=self.OLD)
        policy = Policy.from_data({"snapshot": {"max_age": "1s"}, "labels": {"conf": {"guest": "Viewer"}}})
        decision = TrustEngine(snap, policy).label_rights("ann@fabrikam.com", "conf")
        failure = first_failed(decision, snap, policy)
        assert failure is not None and "label_no_rights" == failure.code

    def test_no_or_higher_trust_when_no_higher_level_grants(self) -> None:
        """F4: the label fix drops "or higher trust" when no higher level grants rights."""
        _, snap = self._snap()
        policy = Policy.from_data({"labels": {"conf": {"guest": "Viewer"}}})
        decision = TrustEngine(snap, policy).label_rights("ann@fabrikam.com", "conf")
        failure = first_failed(decision, snap, policy)
        assert failure is not None and "label_no_rights" == failure.code and "higher trust" not in failure.fix

    def test_first_failure_is_one_that_alone_changes_it(self) -> None:
        """S2: dana with Litware's tenant id: Teams chat names the mismatch; the resolution needs several fixes."""
        litware = next(t.tenant_id for t in SNAP.tenants.values() if t.display_name == "Litware")
        identity = Identity("dana@fabrikam.com", litware)
        chat = ENGINE.teams(identity, "chat")
        failure = first_failed(chat, SNAP, POLICY)
        assert failure is not None and "tenant_id_mismatch" == failure.code
        text = ENGINE.explain(ENGINE.resolve(identity))
        assert "several checks must change" in text
        assert "several checks must change" not in ENGINE.explain(chat)

    def test_directory_values_are_escaped(self) -> None:
        """F5: a tenant name's control and bidi characters are escaped in explain's text."""
        strategies, _ = self._snap()
        rows = strategies.mto()
        for row in rows["value"]:
            if row["tenantId"] == strategies.ACTIVE:
                row["displayName"] = "Fab\x1b[2J\u202erikam\nX"
        snap = Snapshot.from_documents(organization=strategies.organization(), mto=rows,
                                       domains=strategies.domains(),
                                       users=[{"value": [strategies.synced("u1", "ann@fabrikam.com")]}])
        engine = TrustEngine(snap, Policy.default())
        text = engine.explain(engine.resolve("ann@fabrikam.com"))
        assert "Fab\\x1b[2J\\u202erikam\\nX" in text
        assert "\x1b" not in text and "\u202e" not in text
