"""User invariants: the ``[[invariants]]`` vocabulary word by word, the ``@invariant`` form, and bad definitions.

:data:`BASE` and each of its :data:`MUTATIONS` carry every rule of :data:`WORDS` (invariants change no decision);
each is verified once, for the rules that hold or fail on it, and each word reads its findings from the shared
reports. A counterexample is checked by
evaluating it again with a fresh engine on the verifier's space and reading the rule word by word
(:func:`holds_by_hand`), never by trusting the verifier's own text.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mtotrust import Policy, Trust, TrustEngine
from mtotrust._errors import PolicyError
from mtotrust._model import DlpDecision
from mtotrust._policy import INVARIANT_APPS, TEAMS_ACTIONS, TENANT_STATES, USAGE_RIGHTS, expand_grant
from mtotrust._snapshot import Snapshot
from mtotrust._verify import INVARIANTS, Finding, Report, enumerate_space, verify
from mtotrust._verify.invariants import scan
from mtotrust._verify.observe import Observation, observe
from mtotrust._verify.space import AUTH_VARIANTS, Case
from mtotrust._verify.user import UserInvariant, declared, load_module
from mtotrust._verify.verifier import Checker
from mtotrust.testing import Point, invariant

Rule = dict[str, Any]
TRUSTS = [t.value for t in Trust]

BASE: dict[str, Any] = {
    "version": 1,
    "labels": {"Confidential": {"internal": "Co-Author", "mto_member": "Viewer"},
               "Public": {"internal": "Co-Owner", "mto_member": "Co-Author", "guest": "Viewer"}},
}
"""The default policy with two labels: ``Public`` grants guests rights, so a ``label`` filter has work to do."""

MUTATIONS: dict[str, tuple[str, object]] = {
    "guest_coowner": ("labels.Confidential.guest", "Co-Owner"),
    "untagged_internal": ("mail.untagged_at", "internal"),
    "untagged_external": ("mail.untagged_at", "external"),
    "no_auth_required": ("mail.require_authentication", False),
    "dlp_external": ("dlp.inside_at", "external"),
    "guest_file_sharing": ("teams.file_sharing", "guest"),
    "block_active_true": ("overrides.block", ["active-true.example"]),
}
"""The minimally changed policies: one key of :data:`BASE` each."""
CAPPED_EXTERNAL = 'mail.require_authentication = true, mail.untagged_at = "external"'
"""The key that decides unauthenticated mail under ``untagged_at = "external"``: the cap, then the threshold."""


@attrs.frozen
class Word:
    """One vocabulary case: a rule, the policy it holds on, the one it fails on, and what the failure shows."""

    id: str
    rule: Rule
    holds_on: str
    fails_on: str
    key: str | None
    """The deciding policy key the counterexample's finding must name."""
    detail: str
    """Text the finding's detail must contain."""
    facts: Mapping[str, object] = attrs.field(factory=dict)
    """Fields of the counterexample's :class:`Point` the scope forces."""
    widen: str | None = None
    """A filter without which the rule fails on ``holds_on``: the word is what narrowed it."""


def _tenant_state_case(state: str) -> Word:
    return Word(f"tenant_state={state}", {"app": "dlp", "tenant_state": state, "expect": "outside"}, "base",
                "dlp_external", 'dlp.inside_at = "external"', "counts inside", {"tenant_state": state})


WORDS: tuple[Word, ...] = (
    # app: one per app
    Word("app=resolve", {"app": "resolve", "tenant_state": "active", "partner": "true",
                         "expect_trust_at_most": "untrusted"}, "block_active_true", "base", None,
         "above expect_trust_at_most untrusted", {"app": "resolve", "tenant_state": "active", "partner": "true"},
         widen="partner"),
    Word("app=mail", {"app": "mail", "trust_at_least": "mto_member", "authentication": "pass",
                      "expect": "untagged"}, "base", "untagged_internal", 'mail.untagged_at = "internal"',
         "is tagged [External]", {"app": "mail", "authentication": "pass"}, widen="authentication"),
    Word("app=dlp", {"app": "dlp", "tenant_state": "removed", "expect": "outside"}, "base", "dlp_external",
         'dlp.inside_at = "external"', "counts inside", {"app": "dlp", "tenant_state": "removed"},
         widen="tenant_state"),
    Word("app=teams", {"app": "teams", "action": "file_sharing", "trust_at_most": "guest", "expect": "denied"},
         "base", "guest_file_sharing", 'teams.file_sharing = "guest"', "file_sharing allowed at trust guest",
         {"app": "teams", "action": "file_sharing", "trust": Trust.GUEST}, widen="action"),
    Word("app=labels", {"app": "labels", "label": "Confidential", "trust_at_most": "guest", "expect": "no_rights"},
         "base", "guest_coowner", 'labels.Confidential.guest = "Co-Owner"', "at trust guest",
         {"app": "labels", "label": "Confidential", "trust": Trust.GUEST}, widen="label"),
    # the scope's filters
    Word("trust", {"app": "dlp", "trust": "external", "expect": "outside"}, "base", "dlp_external",
         'dlp.inside_at = "external"', "at trust external counts inside", {"trust": Trust.EXTERNAL}, widen="trust"),
    Word("trust (list)", {"app": "dlp", "trust": ["untrusted", "guest"], "expect": "outside"}, "base",
         "dlp_external", 'dlp.inside_at = "external"', "at trust guest counts inside", {"trust": Trust.GUEST},
         widen="trust"),
    Word("trust_at_least", {"app": "teams", "action": "file_sharing", "trust_at_least": "guest",
                            "expect": "allowed"}, "guest_file_sharing", "base", 'teams.file_sharing = "mto_member"',
         "file_sharing denied at trust guest", {"trust": Trust.GUEST}, widen="trust_at_least"),
    Word("trust_at_most", {"app": "mail", "trust_at_most": "external", "expect": "tagged"}, "base",
         "untagged_external", 'mail.untagged_at = "external"', "is not tagged [External]", widen="trust_at_most"),
    *(_tenant_state_case(state) for state in ("pending", "stateless", "not_in_mto", "unknown")),
    Word("tenant_state (list)", {"app": "dlp", "tenant_state": ["local", "pending"], "trust_at_most": "guest",
                                 "expect": "outside"}, "base", "dlp_external", 'dlp.inside_at = "external"',
         "counts inside", {"tenant_state": "pending"}, widen="trust_at_most"),
    Word("partner", {"app": "dlp", "partner": False, "expect": "outside"}, "base", "dlp_external",
         'dlp.inside_at = "external"', "counts inside", {"partner": "false"}, widen="partner"),
    Word("authentication=none", {"app": "mail", "authentication": "none", "expect": "tagged"}, "base",
         "untagged_external", CAPPED_EXTERNAL,
         "is not tagged [External]", {"authentication": "none", "trust": Trust.MTO_MEMBER}, widen="authentication"),
    Word("authentication=fail", {"app": "mail", "authentication": "fail", "expect": "tagged"}, "base",
         "untagged_external", CAPPED_EXTERNAL, "is not tagged [External]",
         {"authentication": "fail"}, widen="authentication"),
    Word("label (list)", {"app": "labels", "label": ["Confidential"], "trust_at_most": "guest",
                          "rights_exclude": ["OWNER", "EXPORT"]}, "base", "guest_coowner",
         'labels.Confidential.guest = "Co-Owner"', "grants {EXPORT, OWNER}, which rights_exclude forbids",
         {"label": "Confidential"}, widen="trust_at_most"),
    Word("action (list)", {"app": "teams", "action": ["file_sharing", "presence"], "trust_at_most": "guest",
                           "expect": "denied"}, "base", "guest_file_sharing", 'teams.file_sharing = "guest"',
         "file_sharing allowed", {"action": "file_sharing"}, widen="action"),
    # expectations: every expect word
    Word("expect=tagged", {"app": "mail", "trust": "guest", "expect": "tagged"}, "base", "untagged_external",
         CAPPED_EXTERNAL, "is not tagged [External]", {"trust": Trust.GUEST},
         widen="trust"),
    Word("expect=untagged", {"app": "mail", "trust": "mto_member", "authentication": "pass", "expect": "untagged"},
         "base", "untagged_internal", 'mail.untagged_at = "internal"', "at trust mto_member is tagged",
         {"trust": Trust.MTO_MEMBER}, widen="authentication"),
    Word("expect=inside", {"app": "dlp", "trust_at_least": "external", "expect": "inside"}, "dlp_external", "base",
         'dlp.inside_at = "mto_member"', "counts outside", widen="trust_at_least"),
    Word("expect=outside", {"app": "dlp", "trust_at_most": "guest", "expect": "outside"}, "base", "dlp_external",
         'dlp.inside_at = "external"', "counts inside", widen="trust_at_most"),
    Word("expect=allowed", {"app": "teams", "action": "file_sharing", "trust": "guest", "expect": "allowed"},
         "guest_file_sharing", "base", 'teams.file_sharing = "mto_member"', "file_sharing denied at trust guest",
         {"trust": Trust.GUEST}, widen="trust"),
    Word("expect=denied", {"app": "teams", "action": "file_sharing", "trust": "guest", "expect": "denied"}, "base",
         "guest_file_sharing", 'teams.file_sharing = "guest"', "file_sharing allowed at trust guest",
         {"trust": Trust.GUEST}, widen="trust"),
    Word("expect=no_rights", {"app": "labels", "label": "Confidential", "trust": "guest", "expect": "no_rights"},
         "base", "guest_coowner", 'labels.Confidential.guest = "Co-Owner"', "grants {DOCEDIT", {"label":
         "Confidential", "trust": Trust.GUEST}, widen="trust"),
    # rights bounds and the decided trust
    Word("rights_at_most", {"app": "labels", "label": "Confidential", "trust_at_most": "guest",
                            "rights_at_most": "Viewer"}, "base", "guest_coowner",
         'labels.Confidential.guest = "Co-Owner"', "beyond rights_at_most", {"trust": Trust.GUEST},
         widen="trust_at_most"),
    Word("rights_at_least", {"app": "labels", "label": "Confidential", "trust": "guest",
                             "rights_at_least": ["VIEW", "EDIT"]}, "guest_coowner", "base",
         "labels.Confidential (no entry for guest)", "grants no rights: {EDIT, VIEW} missing from rights_at_least",
         {"trust": Trust.GUEST}, widen="trust"),
    Word("rights_exclude", {"app": "labels", "label": "Confidential", "trust": "guest", "rights_exclude": "Viewer"},
         "base", "guest_coowner", 'labels.Confidential.guest = "Co-Owner"', "which rights_exclude forbids",
         {"trust": Trust.GUEST}, widen="trust"),
    Word("expect_trust_at_most", {"app": "mail", "authentication": "none", "expect_trust_at_most": "external"},
         "base", "no_auth_required", 'mail.untagged_at = "mto_member"', "above expect_trust_at_most external",
         {"authentication": "none"}, widen="authentication"),
    Word("expect_trust_at_least", {"app": "mail", "trust_at_least": "mto_member", "authentication": "none",
                                   "expect_trust_at_least": "mto_member"}, "no_auth_required", "base",
         'mail.require_authentication = true, mail.untagged_at = "mto_member"',
         "decided at trust external, below expect_trust_at_least mto_member", {"authentication": "none"},
         widen="trust_at_least"),
    Word("every expectation must hold", {"app": "mail", "trust_at_least": "mto_member", "authentication": "pass",
                                         "expect_trust_at_least": "mto_member", "expect": "untagged"},
         "base", "untagged_internal", 'mail.untagged_at = "internal"', "is tagged [External]"),
)
"""Every vocabulary word, each on a policy it holds on and a minimally changed one it fails on."""


def _rules() -> list[Rule]:
    """Every rule of :data:`WORDS` named by its id, and its widened twin (the rule without ``widen``)."""
    rules: list[Rule] = []
    for word in WORDS:
        rules.append({"name": word.id, **word.rule})
        if word.widen is not None:
            rules.append({"name": f"{word.id} without {word.widen}",
                          **{k: v for k, v in word.rule.items() if k != word.widen}})
    return rules


def _checked_on(name: str) -> list[str]:
    """The rules a policy's report needs: those that hold or fail on it, and the widened twins of those it holds."""
    names = [w.id for w in WORDS if name in (w.holds_on, w.fails_on)]
    return names + [f"{w.id} without {w.widen}" for w in WORDS if w.widen and w.holds_on == name]


def _set(data: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = changed
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return changed


def policy_data(name: str, *, invariants: bool = True) -> dict[str, Any]:
    """Return the document of the policy ``name`` (``base`` or a mutation), with every rule unless told."""
    data = BASE if name == "base" else _set(BASE, *MUTATIONS[name])
    return {**data, "invariants": _rules()} if invariants else copy.deepcopy(data)


class Verified:
    """Each policy of the module built, enumerated and verified once, on first use."""

    def __init__(self) -> None:
        self._policies: dict[str, Policy] = {}
        self._reports: dict[str, Report] = {}
        self._spaces: dict[str, tuple[Snapshot, dict[tuple[str, str | None], Case]]] = {}

    def policy(self, name: str) -> Policy:
        """Return the policy ``name`` with every rule of :data:`WORDS`."""
        if name not in self._policies:
            self._policies[name] = Policy.from_data(policy_data(name))
        return self._policies[name]

    def report(self, name: str) -> Report:
        """Return ``verify`` of the policy ``name``, checking the rules that hold or fail on it (by name)."""
        if name not in self._reports:
            self._reports[name] = verify(self.policy(name), invariants=_checked_on(name))
        return self._reports[name]

    def space(self, name: str) -> tuple[Snapshot, dict[tuple[str, str | None], Case]]:
        """Return the verifier's space for the policy ``name`` and its cases by (identity, tenant id)."""
        if name not in self._spaces:
            space, cases = enumerate_space(self.policy(name))
            self._spaces[name] = space, {(c.identity, c.tenant_id): c for c in cases}
        return self._spaces[name]


@pytest.fixture(name="verified", scope="module")
def _verified() -> Verified:
    return Verified()


def finding_named(report: Report, name: str) -> Finding:
    """Return the finding of the invariant ``name`` (failing the test if it holds)."""
    found = [f for f in report.findings if f.invariant == name]
    assert found, f"{name!r} holds; findings: {report.violated()}"
    return found[0]


def recheck(policy: Policy, space: Snapshot, cases: Mapping[tuple[str, str | None], Case],
            finding: Finding) -> tuple[Point, Any]:
    """Evaluate a finding's counterexample again with a fresh engine: the point as a rule reads it, the decision."""
    case = cases[finding.identity, finding.tenant_id]
    engine = TrustEngine(space, policy)
    q = case.query
    # an identity that is no address has no known tenant
    state = "unknown" if case.home_state == "invalid" else case.home_state
    point = Point("resolve", case.identity, case.tenant_id, engine.resolve(q).trust, state, case.partner,
                  case.facts)
    if m := re.fullmatch(r"mail \(auth: (\w+)\)", finding.app):
        variant = next(v for v in AUTH_VARIANTS if v.name == m[1])
        passed, failed = variant.meaning(policy, case.local)
        outcome = "pass" if passed else "fail" if failed else "none"
        return (attrs.evolve(point, app="mail", auth=variant.name, authentication=outcome),
                engine.mail(q, variant.make(case.domain or "", policy)))
    if m := re.fullmatch(r"label '(.+)'", finding.app):
        return attrs.evolve(point, app="labels", label=m[1]), engine.label_rights(q, m[1])
    if m := re.fullmatch(r"teams (\w+)", finding.app):
        return attrs.evolve(point, app="teams", action=m[1]), engine.teams(q, m[1])
    if finding.app == "dlp":
        return attrs.evolve(point, app="dlp"), engine.dlp([q])
    assert finding.app == "resolve", finding.app
    return point, engine.resolve(q)


def _among(wanted: object, value: object) -> bool:
    """Whether ``value`` is what a filter asks for: no filter, the value, or one of a list (TOML booleans read)."""
    if wanted is None:
        return True
    options = wanted if isinstance(wanted, list) else [wanted]
    return value in [str(o).lower() if isinstance(o, bool) else o for o in options]


def in_scope_by_hand(rule: Mapping[str, Any], point: Point) -> bool:
    """Whether a rule's scope speaks of ``point``, read filter by filter."""
    low, high = rule.get("trust_at_least"), rule.get("trust_at_most")
    return (point.app == rule["app"] and _among(rule.get("trust"), point.trust.value)
            and (low is None or point.trust >= Trust(low)) and (high is None or point.trust <= Trust(high))
            and _among(rule.get("tenant_state"), point.tenant_state) and _among(rule.get("partner"), point.partner)
            and _among(rule.get("authentication"), point.authentication)
            and _among(rule.get("label"), point.label) and _among(rule.get("action"), point.action))


def expectations_by_hand(rule: Mapping[str, Any], decision: Any) -> bool:
    """Whether ``decision`` meets every expectation of ``rule``, read word by word."""
    decided = decision.recipients[0].trust if isinstance(decision, DlpDecision) else decision.trust
    outcome: dict[str, Callable[[], bool]] = {
        "tagged": lambda: decision.tag_external, "untagged": lambda: not decision.tag_external,
        "inside": lambda: decision.inside_organization, "outside": lambda: not decision.inside_organization,
        "allowed": lambda: decision.allowed, "denied": lambda: not decision.allowed,
        "no_rights": lambda: not decision.rights}
    met: list[bool] = []
    if "expect" in rule:
        met.append(outcome[rule["expect"]]())
    if "rights_at_most" in rule:
        met.append(decision.rights <= expand_grant(rule["rights_at_most"]))
    if "rights_at_least" in rule:
        met.append(decision.rights >= expand_grant(rule["rights_at_least"]))
    if "rights_exclude" in rule:
        met.append(not decision.rights & expand_grant(rule["rights_exclude"]))
    if "expect_trust_at_most" in rule:
        met.append(decided <= Trust(rule["expect_trust_at_most"]))
    if "expect_trust_at_least" in rule:
        met.append(decided >= Trust(rule["expect_trust_at_least"]))
    return all(met)


def holds_by_hand(rule: Mapping[str, Any], point: Point, decision: Any) -> bool:
    """Whether ``rule`` holds on one decision: it does not speak of it, or every expectation is met."""
    return not in_scope_by_hand(rule, point) or expectations_by_hand(rule, decision)


class TestVocabulary:
    """Each word of ``[[invariants]]`` narrows the scope or decides the check as documented."""

    @pytest.mark.parametrize("word", WORDS, ids=[w.id for w in WORDS])
    def test_word_holds_then_fails_with_its_counterexample(self, word: Word, verified: Verified) -> None:
        """The rule holds on one policy; one changed key breaks it, with an in-scope counterexample and its key."""
        assert word.id in verified.report(word.holds_on).checked
        assert word.id not in verified.report(word.holds_on).violated()
        finding = finding_named(verified.report(word.fails_on), word.id)
        assert finding.key == word.key
        assert word.detail in finding.detail
        space, cases = verified.space(word.fails_on)
        point, decision = recheck(verified.policy(word.fails_on), space, cases, finding)
        assert in_scope_by_hand(word.rule, point)
        assert not expectations_by_hand(word.rule, decision)
        assert finding.trust == point.trust.value
        for field, value in word.facts.items():
            assert getattr(point, field) == value

    @pytest.mark.parametrize("word", [w for w in WORDS if w.widen], ids=[w.id for w in WORDS if w.widen])
    def test_word_is_what_narrowed(self, word: Word, verified: Verified) -> None:
        """Without the word the same rule fails where it held, on a point the word leaves out."""
        name = f"{word.id} without {word.widen}"
        finding = finding_named(verified.report(word.holds_on), name)
        space, cases = verified.space(word.holds_on)
        point, decision = recheck(verified.policy(word.holds_on), space, cases, finding)
        assert not in_scope_by_hand(word.rule, point)
        assert not expectations_by_hand(word.rule, decision)


# -- the issue's "done when": design.md section 12's two invariants, with guests given Co-Owner -----------------

DONE_WHEN = """\
version = 1

[labels.Confidential]
internal = "Co-Author"
mto_member = "Viewer"
guest = "Co-Owner"

[[invariants]]
name = "guests never get Confidential rights"
app = "labels"
label = "Confidential"
trust_at_most = "guest"
expect = "no_rights"

[[invariants]]
name = "removed tenants never pass DLP"
app = "dlp"
tenant_state = "removed"
expect = "outside"
"""
GUESTS_RULE = "guests never get Confidential rights"
REMOVED_RULE = "removed tenants never pass DLP"


@invariant(app="labels", label="Confidential", trust_at_most="guest")
def guests_get_no_confidential_rights(point: Point, decision: Any) -> bool:
    """Guests never get rights on Confidential."""
    return not decision.rights


def _answering(value: object) -> UserInvariant:
    """Return an invariant over DLP whose function answers ``value`` (or raises it, for an exception)."""
    def answer(_point: Point, _decision: Any) -> bool:
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]  # the wrong answers are the point of the test
    return invariant(app="dlp", name="answers")(answer)


@attrs.frozen
class DoneWhen:
    """The section 12 policy, verified once with two Python invariants beside its own two."""

    policy: Policy
    report: Report
    space: Snapshot
    cases: Mapping[tuple[str, str | None], Case]


@pytest.fixture(name="done_when", scope="module")
def _done_when(tmp_path_factory: pytest.TempPathFactory) -> DoneWhen:
    path = tmp_path_factory.mktemp("done_when") / "policy.toml"
    path.write_text(DONE_WHEN)
    policy = Policy.load(path)
    space, cases = enumerate_space(policy)
    extra = [guests_get_no_confidential_rights, _answering(False)]
    return DoneWhen(policy, verify(policy, extra=extra), space, {(c.identity, c.tenant_id): c for c in cases})


class TestDoneWhen:
    """The issue's example: a guest Co-Owner grant on Confidential fails the first rule, naming guest, label, key."""

    def test_first_invariant_fails_on_a_guest_with_the_deciding_key(self, done_when: DoneWhen) -> None:
        """The counterexample resolves to guest, its app is label 'Confidential', the key is the guest grant."""
        finding = finding_named(done_when.report, GUESTS_RULE)
        case = done_when.cases[finding.identity, finding.tenant_id]
        assert TrustEngine(done_when.space, done_when.policy).resolve(case.query).trust is Trust.GUEST
        assert finding.trust == "guest"
        assert finding.app == "label 'Confidential'"
        assert finding.key == 'labels.Confidential.guest = "Co-Owner"'
        assert 'decided by: labels.Confidential.guest = "Co-Owner"' in finding.format()
        assert repr(finding.identity) in finding.format()

    def test_count_and_minimality_match_a_fresh_engine(self, done_when: DoneWhen) -> None:
        """The count is every identity at guest or below a fresh engine grants rights; none is simpler."""
        engine = TrustEngine(done_when.space, done_when.policy)
        violating = [case for case in done_when.cases.values() if engine.resolve(case.query).trust <= Trust.GUEST
                     and engine.label_rights(case.query, "Confidential").rights]
        finding = finding_named(done_when.report, GUESTS_RULE)
        assert finding.count == len(violating) > 0
        shown = done_when.cases[finding.identity, finding.tenant_id].facts
        assert shown is not None
        assert shown.complexity == min(c.facts.complexity for c in violating if c.facts is not None)

    def test_second_invariant_holds(self, done_when: DoneWhen) -> None:
        """Removed tenants stay outside for DLP: the second rule is checked and holds."""
        assert REMOVED_RULE in done_when.report.checked
        assert REMOVED_RULE not in done_when.report.violated()

    def test_python_invariant_finds_the_same_counterexample(self, done_when: DoneWhen) -> None:
        """The equivalent @invariant reports the same count, identity, app and key as the declarative one."""
        declarative = finding_named(done_when.report, GUESTS_RULE)
        python = finding_named(done_when.report, "guests_get_no_confidential_rights")
        assert python.summary == "Guests never get rights on Confidential."
        assert ((python.count, python.identity, python.tenant_id, python.app, python.key)
                == (declarative.count, declarative.identity, declarative.tenant_id, declarative.app,
                    declarative.key))

    def test_false_is_a_violation_naming_the_function(self, done_when: DoneWhen) -> None:
        """A function answering False violates everywhere; the detail names where the function is defined."""
        finding = finding_named(done_when.report, "answers")
        assert re.fullmatch(r"test_user_invariants\.py:\d+ _answering\.<locals>\.answer returned False",
                            finding.detail)
        assert finding.count == done_when.report.cases

    def test_user_invariants_leave_builtin_findings_and_fingerprint(self, done_when: DoneWhen) -> None:
        """Without its invariants the policy has the same fingerprint and exactly the same built-in findings."""
        plain = Policy.from_data(done_when.policy.model_dump(exclude={"invariants"}))
        report = verify(plain)
        builtin = {i.name for i in INVARIANTS}
        assert report.policy_fingerprint == done_when.report.policy_fingerprint
        assert report.findings == tuple(f for f in done_when.report.findings if f.invariant in builtin)
        assert report.findings  # the Co-Owner grant breaks monotonicity: there is something to keep
        assert report.checked == done_when.report.checked[:len(INVARIANTS)]


# -- bad definitions -----------------------------------------------------------------------------------------

LABELS = {"Confidential": {"internal": "Co-Author"}}
BAD_DEFINITIONS: list[tuple[str, list[Rule], str, str]] = [
    ("unknown key", [{"name": "a", "app": "labels", "expect": "no_rights", "colour": "red"}], "invariants.0.colour",
     "colour"),
    ("expect word of another app", [{"name": "a", "app": "dlp", "expect": "tagged"}], "invariants.0.expect",
     "'inside', 'outside'"),
    ("expect on resolve", [{"name": "a", "app": "resolve", "expect": "denied"}], "invariants.0.expect",
     "expect_trust_at_most"),
    ("label on dlp", [{"name": "a", "app": "dlp", "label": "Confidential", "expect": "outside"}],
     "invariants.0.label", "app = 'labels' only"),
    ("authentication on teams", [{"name": "a", "app": "teams", "authentication": "pass", "expect": "denied"}],
     "invariants.0.authentication", "app = 'mail' only"),
    ("action on labels", [{"name": "a", "app": "labels", "action": "chat", "expect": "no_rights"}],
     "invariants.0.action", "app = 'teams' only"),
    ("rights bound on mail", [{"name": "a", "app": "mail", "rights_at_most": "Viewer"}],
     "invariants.0.rights_at_most", "app = 'labels' only"),
    ("unknown label", [{"name": "a", "app": "labels", "label": "Secret", "expect": "no_rights"}],
     "invariants.0.label", "'Secret'"),
    ("duplicate names", [{"name": "a", "app": "dlp", "expect": "outside"},
                         {"name": "b", "app": "dlp", "expect": "inside"},
                         {"name": "a", "app": "labels", "expect": "no_rights"}], "invariants.2.name", "used twice"),
    ("no expectation", [{"name": "a", "app": "dlp", "trust": "guest"}], "invariants.0.expect", "states nothing"),
    ("trust_at_least above trust_at_most", [{"name": "a", "app": "dlp", "trust_at_least": "internal",
                                             "trust_at_most": "guest", "expect": "outside"}],
     "invariants.0.trust_at_least", "above trust_at_most"),
    ("bad tenant_state", [{"name": "a", "app": "dlp", "tenant_state": "gone", "expect": "outside"}],
     "invariants.0.tenant_state", "'gone'"),
    ("bad tenant_state in a list", [{"name": "a", "app": "dlp", "tenant_state": ["removed", "gone"],
                                     "expect": "outside"}], "invariants.0.tenant_state.1", "'gone'"),
    ("bad partner", [{"name": "a", "app": "dlp", "partner": "maybe", "expect": "outside"}], "invariants.0.partner",
     "'maybe'"),
    ("bad trust", [{"name": "a", "app": "dlp", "trust": "boss", "expect": "outside"}], "invariants.0.trust",
     "'boss'"),
    ("bad trust_at_most", [{"name": "a", "app": "dlp", "trust_at_most": "boss", "expect": "outside"}],
     "invariants.0.trust_at_most", "'boss'"),
    ("bad expect_trust_at_least", [{"name": "a", "app": "dlp", "expect_trust_at_least": "boss"}],
     "invariants.0.expect_trust_at_least", "'boss'"),
    ("bad right", [{"name": "a", "app": "labels", "rights_at_most": ["VIEW", "FLY"]}],
     "invariants.0.rights_at_most.1", "'FLY'"),
    ("bad action", [{"name": "a", "app": "teams", "action": "dance", "expect": "denied"}], "invariants.0.action",
     "'dance'"),
    ("bad app", [{"name": "a", "app": "chat", "expect": "outside"}], "invariants.0.app", "'chat'"),
    ("no name", [{"app": "dlp", "expect": "outside"}], "invariants.0.name", "required"),
]


class TestBadDefinitions:
    """A bad ``[[invariants]]`` entry is a PolicyError whose key and message name the offending key."""

    @pytest.mark.parametrize(("rules", "key", "says"), [b[1:] for b in BAD_DEFINITIONS],
                             ids=[b[0] for b in BAD_DEFINITIONS])
    def test_from_data(self, rules: list[Rule], key: str, says: str) -> None:
        """Policy.from_data refuses the entry, naming its key path and what is wrong."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data({"labels": LABELS, "invariants": rules})
        assert info.value.key == key
        assert str(info.value).startswith(f"{key}: ")
        assert says in str(info.value)

    @pytest.mark.parametrize("suffix", ["toml", "json"])
    def test_load_names_the_file_and_key(self, suffix: str, tmp_path: Path) -> None:
        """Policy.load of a file with a bad invariant names the file and the key."""
        path = tmp_path / f"policy.{suffix}"
        rules = [{"name": "ok", "app": "dlp", "expect": "outside"}, {"name": "a", "app": "dlp", "expect": "tagged"}]
        data = {"version": 1, "invariants": rules}
        path.write_text(json.dumps(data) if suffix == "json" else to_toml(data))
        with pytest.raises(PolicyError) as info:
            Policy.load(path)
        assert info.value.key == "invariants.1.expect"
        assert str(path) in str(info.value)

    def test_name_of_a_builtin_is_refused_by_verify(self) -> None:
        """An invariant named like a built-in is a PolicyError from verify, naming the clash."""
        policy = Policy.from_data({"invariants": [{"name": "guest_mail_tagged", "app": "dlp", "expect": "outside"}]})
        with pytest.raises(PolicyError) as info:
            verify(policy)
        assert info.value.key == "name"
        assert "'guest_mail_tagged'" in str(info.value)
        assert "built-in" in str(info.value)

    def test_python_invariant_named_like_a_policy_invariant_is_refused(self) -> None:
        """A Python invariant sharing a name with the policy's own is a PolicyError, not a silent shadow."""
        policy = Policy.from_data({"invariants": [{"name": "twin", "app": "dlp", "expect": "outside"}]})
        twin = invariant(app="dlp", name="twin")(lambda _point, _decision: True)
        with pytest.raises(PolicyError, match="'twin'") as info:
            verify(policy, extra=[twin])
        assert info.value.key == "name"


# -- the Python form's errors ----------------------------------------------------------------------------------

class TestPythonForm:
    """An @invariant that misbehaves is a PolicyError naming it; module loading names the file."""

    def test_raising_function(self) -> None:
        """A function that raises stops verification with a PolicyError naming the invariant and the error."""
        with pytest.raises(PolicyError) as info:
            verify(Policy.default(), invariants=[], extra=[_answering(ValueError("no idea"))])
        assert info.value.key == "answers"
        assert "'answers'" in str(info.value)
        assert "ValueError: no idea" in str(info.value)
        assert isinstance(info.value.__cause__, ValueError)

    @pytest.mark.parametrize("answer", [None, 1, "yes"])
    def test_non_bool_answer(self, answer: object) -> None:
        """An answer other than True or False (None, 1, a str) is a PolicyError naming it."""
        with pytest.raises(PolicyError) as info:
            verify(Policy.default(), invariants=[], extra=[_answering(answer)])
        assert info.value.key == "answers"
        assert f"returned {answer!r}" in str(info.value)

    def test_unknown_label(self) -> None:
        """A Python invariant naming a label the policy lacks is a PolicyError with key ``label``."""
        secret = invariant(app="labels", label="Secret")(lambda _point, _decision: True)
        with pytest.raises(PolicyError, match="'Secret'") as info:
            verify(Policy.from_data({"labels": LABELS}), extra=[secret])
        assert info.value.key == "label"

    @pytest.mark.parametrize(("scope", "key"), [
        ({"app": "labels", "colour": "red"}, "colour"),
        ({"app": "labels", "expect": "no_rights"}, "expect"),
        ({"app": "dlp", "label": "Confidential"}, "label"),
        ({"app": "mail", "trust_at_most": "boss"}, "trust_at_most"),
        ({"app": "dlp", "trust_at_least": "internal", "trust_at_most": "guest"}, "trust_at_least"),
        ({"app": "chat"}, "app"),
    ])
    def test_bad_scope_at_decoration(self, scope: dict[str, Any], key: str) -> None:
        """A scope word or value the vocabulary refuses fails when the function is decorated, naming the key."""
        with pytest.raises(PolicyError) as info:
            invariant(**scope)(lambda _point, _decision: True)
        assert info.value.key == key
        assert "@invariant" in str(info.value)

    def test_load_module_finds_every_invariant_in_order(self, tmp_path: Path) -> None:
        """load_module returns the module's invariants in definition order, named and summarised."""
        path = tmp_path / "rules.py"
        path.write_text(textwrap.dedent('''\
            from mtotrust.testing import invariant

            @invariant(app="dlp", tenant_state="removed")
            def removed_outside(point, decision):
                """Removed tenants stay outside."""
                return not decision.inside_organization

            @invariant(app="teams", name="no guest file sharing", action="file_sharing", trust="guest")
            def no_sharing(point, decision):
                return not decision.allowed
            '''))
        found = load_module(path)
        assert [i.name for i in found] == ["removed_outside", "no guest file sharing"]
        assert found[0].summary == "Removed tenants stay outside."
        assert found[1].summary.startswith("Python invariant rules.py:")

    @pytest.mark.parametrize(("text", "says"), [
        ("X = 1\n", "defines no invariant"),
        ("def broken(:\n", "SyntaxError"),
        (None, "not a Python file"),
    ], ids=["no invariant", "syntax error", "missing file"])
    def test_load_module_errors_name_the_file(self, text: str | None, says: str, tmp_path: Path) -> None:
        """A module without invariants, with a syntax error, or missing is a PolicyError naming the file."""
        path = tmp_path / "rules.py"
        if text is not None:
            path.write_text(text)
        with pytest.raises(PolicyError) as info:
            load_module(path)
        assert str(path) in str(info.value)
        assert says in str(info.value)


# -- properties, over one shared set of observations ------------------------------------------------------------

class Observed:
    """One policy's observations of the space, made once for every property.

    Every third case is kept: the properties hold on any set of observations, and a stride of three walks
    through each user's four tenant-id variants (none, match, upper-case match, mismatch) while taking a third
    of the time. (A plain class with a short repr: hypothesis prints a test's arguments, fixtures included.)
    """

    def __init__(self, data: dict[str, Any], policy: Policy, observations: tuple[Observation, ...]) -> None:
        self.data = data
        self.policy = policy
        self.observations = observations

    def __repr__(self) -> str:
        return f"<{len(self.observations)} observations of policy {self.policy.fingerprint}>"


@pytest.fixture(name="observed", scope="module")
def _observed() -> Observed:
    data = policy_data("guest_coowner", invariants=False)
    policy = Policy.from_data(data)
    space, cases = enumerate_space(policy)
    return Observed(data, policy, tuple(observe(space, policy, cases[::3], "megan@contoso.com")))


_GRANTS = st.sampled_from(["Viewer", "Reviewer", "Co-Author", "Co-Owner"]) | st.lists(
    st.sampled_from(sorted(USAGE_RIGHTS)), min_size=1, max_size=4, unique=True)
_TRUST = st.sampled_from(TRUSTS)
_EXPECTATIONS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "resolve": {},
    "mail": {"expect": st.sampled_from(["tagged", "untagged"])},
    "dlp": {"expect": st.sampled_from(["inside", "outside"])},
    "teams": {"expect": st.sampled_from(["allowed", "denied"])},
    "labels": {"expect": st.just("no_rights"), "rights_at_most": _GRANTS, "rights_at_least": _GRANTS,
               "rights_exclude": _GRANTS},
}
_FILTERS: dict[str, tuple[str, ...]] = {
    "trust": tuple(TRUSTS), "tenant_state": TENANT_STATES, "partner": ("true", "false", "null", "absent"),
    "authentication": ("pass", "fail", "none"), "label": ("Confidential", "Public"), "action": TEAMS_ACTIONS,
}
_ONLY_FOR = {"authentication": "mail", "label": "labels", "action": "teams"}


def _filters_of(app: str) -> list[str]:
    return [w for w in _FILTERS if _ONLY_FOR.get(w, app) == app]


def _one_or_some(values: Iterable[str]) -> st.SearchStrategy[Any]:
    options = sorted(values)
    return st.sampled_from(options) | st.lists(st.sampled_from(options), min_size=1, max_size=3, unique=True)


@st.composite
def rules(draw: st.DrawFn, name: str = "generated") -> Rule:
    """Generate a valid declarative rule: an app, a few filters, and at least one expectation."""
    app = draw(st.sampled_from(INVARIANT_APPS))
    rule: Rule = {"name": name, "app": app}
    for word in _filters_of(app):
        if draw(st.integers(0, 2)) == 0:
            rule[word] = draw(_one_or_some(_FILTERS[word]))
    low, high = sorted(draw(st.lists(st.integers(0, 4), min_size=2, max_size=2)))
    if draw(st.integers(0, 2)) == 0:
        rule["trust_at_least"] = TRUSTS[low]
    if draw(st.integers(0, 2)) == 0:
        rule["trust_at_most"] = TRUSTS[high]
    expectations = {**_EXPECTATIONS[app], "expect_trust_at_most": _TRUST, "expect_trust_at_least": _TRUST}
    first = draw(st.sampled_from(sorted(expectations)))
    rule[first] = draw(expectations.pop(first))
    rule.update(draw(st.fixed_dictionaries({}, optional=expectations)))
    return rule


def narrowings() -> st.SearchStrategy[tuple[str, Any]]:
    """Generate one filter to add to a rule: a word and its value."""
    bounds = st.tuples(st.sampled_from(["trust_at_least", "trust_at_most"]), _TRUST)
    return bounds | st.one_of([st.tuples(st.just(word), _one_or_some(values)) for word, values in _FILTERS.items()])


def violations(rule: UserInvariant, observed: Observed) -> Counter[tuple[str, str | None, str]]:
    """Return the violations of ``rule`` over the shared observations, counted per (identity, tenant id, app)."""
    found = scan([rule.bind(observed.policy)], observed.observations, observed.policy)
    return Counter((v.observation.case.identity, v.observation.case.tenant_id, v.app) for _, v in found)


def declarative(rule: Rule, observed: Observed) -> UserInvariant:
    """Return ``rule`` as the policy file declares it, beside the observed policy's own keys."""
    policy = Policy.from_data({**observed.data, "invariants": [rule]})
    assert policy.fingerprint == observed.policy.fingerprint
    return declared(policy)[0]


FEW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class TestProperties:
    """The declarative path against a readable one, narrowing, and what user invariants leave alone."""

    @FEW
    @given(rule=rules())
    @example(rule={"name": "guests", "app": "labels", "trust_at_most": "guest", "rights_at_most": "Viewer"})
    @example(rule={"name": "mail", "app": "mail", "partner": ["true", "null"], "authentication": ["none", "fail"],
                   "expect": "untagged", "expect_trust_at_least": "guest"})
    @example(rule={"name": "dlp", "app": "dlp", "tenant_state": ["local", "active"], "expect": "outside"})
    @example(rule={"name": "teams", "app": "teams", "action": "chat", "trust_at_most": "guest", "expect": "allowed"})
    @example(rule={"name": "resolve", "app": "resolve", "trust": ["guest", "internal"], "partner": "absent",
                   "expect_trust_at_least": "mto_member"})
    def test_declarative_equals_hand_written_predicate(self, rule: Rule, observed: Observed) -> None:
        """A rule and the hand-written predicate of the same meaning find the same violations, as many times."""
        by_hand = invariant(app=rule["app"], name="by hand")(
            lambda point, decision: holds_by_hand(rule, point, decision))
        assert violations(declarative(rule, observed), observed) == violations(by_hand, observed)

    @FEW
    @given(rule=rules(), narrowing=narrowings())
    @example(rule={"name": "guests", "app": "labels", "rights_exclude": ["EDIT"]},
             narrowing=("trust_at_most", "guest"))
    def test_narrowing_never_adds_violations(self, rule: Rule, narrowing: tuple[str, Any], observed: Observed
                                             ) -> None:
        """Adding a filter to a rule finds a sub-multiset of its violations."""
        word, value = narrowing
        assume(word not in rule and _ONLY_FOR.get(word, rule["app"]) == rule["app"])
        try:
            narrow = declarative({**rule, word: value}, observed)
        except PolicyError:  # trust_at_least above trust_at_most: no narrower rule to compare
            assume(False)
            raise
        wide = violations(declarative(rule, observed), observed)
        assert all(count <= wide[key] for key, count in violations(narrow, observed).items())

    @settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(many=st.lists(rules(), min_size=1, max_size=4))
    def test_user_invariants_never_change_builtin_findings(self, many: list[Rule], observed: Observed) -> None:
        """Checked beside any user invariants, the built-ins report exactly the findings they report alone."""
        policy = Policy.from_data({**observed.data, "invariants": [{**r, "name": f"r{i}"} for i, r in
                                                                   enumerate(many)]})
        alone, beside = Checker(INVARIANTS, policy), Checker([*INVARIANTS, *(u.bind(policy) for u in
                                                                            declared(policy))], policy)
        alone.check(observed.observations)
        beside.check(observed.observations)
        builtin = {i.name for i in INVARIANTS}
        assert alone.findings() == tuple(f for f in beside.findings() if f.invariant in builtin)


# -- the fingerprint and policy files --------------------------------------------------------------------------

def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def to_toml(data: Mapping[str, Any]) -> str:
    """Write a policy document of scalars, ``labels`` tables and ``invariants`` as a TOML policy file."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if k not in ("labels", "invariants")]
    for label, levels in data.get("labels", {}).items():
        lines += ["", f"[labels.{json.dumps(label)}]", *(f"{k} = {_toml_value(v)}" for k, v in levels.items())]
    for rule in data.get("invariants", []):
        lines += ["", "[[invariants]]", *(f"{k} = {_toml_value(v)}" for k, v in rule.items() if v is not None)]
    return "\n".join(lines) + "\n"


class TestPolicyFiles:
    """Invariants are not part of the policy's meaning, and survive TOML and JSON policy files."""

    @settings(max_examples=30, deadline=None)
    @given(many=st.lists(rules(), max_size=4))
    def test_fingerprint_ignores_invariants(self, many: list[Rule]) -> None:
        """Two policies differing only in their invariants have the same fingerprint."""
        data = policy_data("base", invariants=False)
        with_rules = Policy.from_data({**data, "invariants": [{**r, "name": f"r{i}"} for i, r in enumerate(many)]})
        assert with_rules.fingerprint == Policy.from_data(data).fingerprint
        assert len(with_rules.invariants) == len(many)

    def test_fingerprint_still_tells_decisions_apart(self) -> None:
        """A changed decision key does change the fingerprint (the property above is not a constant)."""
        assert Policy.from_data(policy_data("base")).fingerprint != Policy.from_data(
            policy_data("guest_coowner")).fingerprint

    def test_toml_round_trip(self, tmp_path: Path) -> None:
        """Every vocabulary word written to [[invariants]] in a TOML file loads back as the same rules."""
        policy = Policy.from_data(policy_data("base"))
        path = tmp_path / "policy.toml"
        path.write_text(to_toml(policy.model_dump(mode="json", include={"version", "labels", "invariants"})))
        loaded = Policy.load(path)
        assert loaded.invariants == policy.invariants
        assert loaded.fingerprint == policy.fingerprint
        assert {"partner": "false"}.items() <= next(r for r in loaded.invariants if r.name == "partner").model_dump(
            ).items()

    def test_toml_booleans_are_partner_flags(self, tmp_path: Path) -> None:
        """TOML has no null: ``partner = [true, "null"]`` reads as the flags "true" and "null"."""
        path = tmp_path / "policy.toml"
        path.write_text('version = 1\n\n[[invariants]]\nname = "p"\napp = "dlp"\npartner = [true, "null"]\n'
                        'expect = "outside"\n')
        assert Policy.load(path).invariants[0].partner == ["true", "null"]

    def test_json_round_trip(self, tmp_path: Path) -> None:
        """A policy dumped to a JSON file loads back equal, invariants included."""
        policy = Policy.from_data(policy_data("base"))
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(policy.model_dump(mode="json")))
        loaded = Policy.load(path)
        assert loaded == policy
        assert loaded.invariants == policy.invariants
        assert [r.name for r in loaded.invariants] == [r["name"] for r in _rules()]

