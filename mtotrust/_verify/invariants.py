"""The invariant catalogue: named properties of a sane policy, and the checks that find their violations.

Each :class:`Invariant` of :data:`INVARIANTS` either looks at one case's answers (``check_case``) or compares
answers across cases (``check_all``: monotonicity); a check yields a :class:`Violation` per failure, naming the
app and the decision to explain. ``reference_agrees`` compares the engine with
:mod:`mtotrust._verify.reference`.

Observations are read once, in order, and never kept (:func:`scan`): a comparison across cases
(:class:`Comparison`) folds each observation into what it needs (monotonicity: the first answer per app and
trust level), so checking a directory of any size holds a bounded number of observations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import attrs

from mtotrust._model import DlpDecision, LabelDecision, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust._policy import Policy
from mtotrust._verify.observe import Observation
from mtotrust._verify.reference import reference_blocked, reference_decisions
from mtotrust._verify.space import AUTH_VARIANTS

__all__ = ["INVARIANTS", "CaseCheck", "Comparison", "GlobalCheck", "Invariant", "Violation", "scan"]

_INACTIVE = frozenset({"pending", "removed", "stateless", "not_in_mto", "unknown"})
"""Home states whose identities can never be MTO members."""


@attrs.frozen(slots=True)
class Violation:
    """One place an invariant fails: the observation, the app, what went wrong and the decision to explain."""

    observation: Observation
    app: str
    detail: str
    decision: Resolution | MailDecision | DlpDecision | TeamsDecision | LabelDecision
    also: Resolution | MailDecision | DlpDecision | TeamsDecision | LabelDecision | None = None


class Comparison(Protocol):
    """A check across cases, fed one observation at a time: it keeps only what its verdict needs.

    .. versionadded:: 0.1.0
    """

    def add(self, obs: Observation) -> None:
        """Take one observation into account (it must not be kept unless the verdict needs it)."""

    def violations(self, policy: Policy) -> Iterator[Violation]:
        """Yield the violations among every observation added so far."""


CaseCheck = Callable[[Observation, Policy], Iterator[Violation]]
GlobalCheck = Callable[[], Comparison]
"""Makes a fresh :class:`Comparison` for one verification run."""


@attrs.frozen(slots=True)
class Invariant:
    """A named, documented property of a sane policy, checked on every evaluated combination.

    ``per_case`` invariants look at one identity's answers; the others (monotonicity) compare answers across
    identities.

    .. versionadded:: 0.1.0
    """

    name: str
    summary: str
    check_case: CaseCheck | None = None
    check_all: GlobalCheck | None = None

    def violations(self, observations: Iterable[Observation], policy: Policy) -> list[Violation]:
        """Return every violation of this invariant among ``observations``, in :func:`scan` order."""
        return [v for _, v in scan((self,), observations, policy)]


def scan(invariants: Iterable[Invariant], observations: Iterable[Observation], policy: Policy
         ) -> Iterator[tuple[Invariant, Violation]]:
    """Yield every violation of ``invariants`` among ``observations``, reading each observation once.

    Per invariant, the order is fixed: its per-case violations in observation order, then its comparison's.
    Nothing but the comparisons' own state is kept, so the observations may come from a generator.
    """
    chosen = tuple(invariants)
    per_case = [(inv, inv.check_case) for inv in chosen if inv.check_case is not None]
    across = [(inv, inv.check_all()) for inv in chosen if inv.check_all is not None]
    for obs in observations:
        for inv, check in per_case:
            for v in check(obs, policy):
                yield inv, v
        for _, comparison in across:
            comparison.add(obs)
    for inv, comparison in across:
        for v in comparison.violations(policy):
            yield inv, v


def _inactive_capped(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.case.home_state in _INACTIVE and obs.resolution.trust > Trust.GUEST:
        yield Violation(obs, "resolve", f"resolved to {obs.resolution.trust} from a {obs.case.home_state} home",
                        obs.resolution)


def _inactive_tagged(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.case.home_state in _INACTIVE:
        for name, d in obs.mail.items():
            if not d.tag_external:
                yield Violation(obs, f"mail (auth: {name})", "mail is not tagged [External]", d)


def _inactive_outside(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.case.home_state in _INACTIVE and obs.dlp.inside_organization:
        yield Violation(obs, "dlp", "counted inside the organization", obs.dlp)


def _unauth_capped(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    for name, d in obs.mail.items():
        if not d.authenticated and d.trust > Trust.EXTERNAL:
            yield Violation(obs, f"mail (auth: {name})", f"unauthenticated mail keeps trust {d.trust}", d)


def _unauth_tagged(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    for name, d in obs.mail.items():
        if not d.authenticated and not d.tag_external:
            yield Violation(obs, f"mail (auth: {name})", "unauthenticated mail is not tagged [External]", d)


def _spoof(obs: Observation, policy: Policy) -> Iterator[Violation]:
    if not obs.case.protected or obs.case.domain is None:
        return
    for variant in AUTH_VARIANTS:
        if variant.meaning(policy, obs.case.local)[1]:
            d = obs.mail[variant.name]
            if d.trust != Trust.UNTRUSTED or not d.tag_external:
                yield Violation(obs, f"mail (auth: {variant.name})",
                                f"failed authentication for a protected domain gave trust {d.trust}, "
                                f"tagged={d.tag_external}", d)


def _guest_tagged(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    for name, d in obs.mail.items():
        if d.trust <= Trust.GUEST and not d.tag_external:
            yield Violation(obs, f"mail (auth: {name})", f"mail at trust {d.trust} is not tagged [External]", d)


def _guest_outside(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.resolution.trust <= Trust.GUEST and obs.dlp.inside_organization:
        yield Violation(obs, "dlp", f"a recipient at trust {obs.resolution.trust} counts as inside", obs.dlp)


def _untrusted_nothing(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.resolution.trust != Trust.UNTRUSTED:
        return
    for action, t in obs.teams.items():
        if t.allowed:
            yield Violation(obs, f"teams {action}", "allowed for an untrusted identity", t)
    for label, lab in obs.labels.items():
        if lab.rights:
            yield Violation(obs, f"label {label!r}", f"grants {', '.join(sorted(lab.rights))} to an untrusted "
                            "identity", lab)
    if obs.dlp.inside_organization:
        yield Violation(obs, "dlp", "an untrusted recipient counts as inside", obs.dlp)
    for name, d in obs.mail.items():
        if not d.tag_external:
            yield Violation(obs, f"mail (auth: {name})", "mail from an untrusted sender is not tagged", d)


def _blocked(obs: Observation, policy: Policy) -> Iterator[Violation]:
    if reference_blocked(policy, obs.case.address, obs.case.identity) and obs.resolution.trust != Trust.UNTRUSTED:
        yield Violation(obs, "resolve", f"a blocked identity resolved to {obs.resolution.trust}", obs.resolution)


def _mismatch(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    f = obs.case.facts
    if f is not None and f.tenant_id == "mismatch" and f.home != "unknown" \
            and obs.resolution.trust != Trust.UNTRUSTED:
        yield Violation(obs, "resolve", f"a wrong tenant id resolved to {obs.resolution.trust}", obs.resolution)


def _unresolvable(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    f = obs.case.facts
    if f is not None and (f.home in ("invalid", "confusable") or f.objects >= 2) \
            and obs.resolution.trust != Trust.UNTRUSTED:
        yield Violation(obs, "resolve", f"resolved to {obs.resolution.trust}", obs.resolution)


def _member_evidence(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    f = obs.case.facts
    if f is None or obs.resolution.trust != Trust.MTO_MEMBER:
        return
    proven = (f.home == "active" and f.objects == 1 and f.external in ("federated", "invitation", "ext_upn")
              and f.user_type == "Member" and f.enabled is True and f.partner != "false"
              and f.tenant_id != "mismatch")
    if not proven:
        yield Violation(obs, "resolve", "mto_member without the full evidence (one external, enabled Member object "
                        "of an active tenant)", obs.resolution)


def _dlp_threshold(obs: Observation, policy: Policy) -> Iterator[Violation]:
    inside_at = Trust(policy.dlp.inside_at)
    for d in (obs.dlp, obs.dlp_group):
        low = [r for r in d.recipients if r.trust < inside_at]
        if d.inside_organization and low:
            yield Violation(obs, "dlp", f"inside although {low[0].identity!r} is {low[0].trust}", d)


def _reference_agrees(obs: Observation, policy: Policy) -> Iterator[Violation]:
    if (obs.resolution.trust, obs.resolution.reasons) != (obs.uncached.trust, obs.uncached.reasons):
        yield Violation(obs, "resolve", f"cached answer {obs.resolution.trust} differs from uncached "
                        f"{obs.uncached.trust}", obs.resolution)
    want = reference_decisions(obs.case, policy)
    if want is None:
        return
    if obs.resolution.trust != want.trust:
        yield Violation(obs, "resolve", f"engine says {obs.resolution.trust}, reference says {want.trust}",
                        obs.resolution)
        return
    for name, d in obs.mail.items():
        if (d.tag_external, d.trust) != want.mail[name]:
            yield Violation(obs, f"mail (auth: {name})", f"engine says tagged={d.tag_external} at {d.trust}, "
                            f"reference says tagged={want.mail[name][0]} at {want.mail[name][1]}", d)
    if obs.dlp.inside_organization != want.dlp:
        yield Violation(obs, "dlp", f"engine says inside={obs.dlp.inside_organization}, reference {want.dlp}",
                        obs.dlp)
    for action, t in obs.teams.items():
        if t.allowed != want.teams[action]:
            yield Violation(obs, f"teams {action}", f"engine says allowed={t.allowed}, reference "
                            f"{want.teams[action]}", t)
    for label, lab in obs.labels.items():
        if lab.rights != want.labels[label]:
            yield Violation(obs, f"label {label!r}", f"engine grants {sorted(lab.rights)}, reference "
                            f"{sorted(want.labels[label])}", lab)


@attrs.define
class _Monotonic:
    """A higher trust never gets a worse ``outcome`` than a lower trust, per key (first answer per key and trust)."""

    outcome: Callable[[Observation], Iterable[tuple[str, Trust, Any, Any]]]
    better: Callable[[Any, Any], bool]
    what: str
    seen: dict[tuple[str, Trust], tuple[Any, Observation, Any]] = attrs.field(factory=dict)

    def add(self, obs: Observation) -> None:
        """Remember ``obs``'s answer for each (key, trust) not seen yet."""
        for key, trust, value, decision in self.outcome(obs):
            self.seen.setdefault((key, trust), (value, obs, decision))

    def violations(self, _policy: Policy) -> Iterator[Violation]:
        """Yield a violation per (key, lower trust, higher trust) whose higher trust gets the worse outcome."""
        seen = self.seen
        for (key, low), (low_value, _, low_decision) in sorted(seen.items(), key=lambda kv: (kv[0][0], kv[0][1].rank)):
            for high in Trust:
                if high <= low or (key, high) not in seen:
                    continue
                high_value, high_obs, decision = seen[(key, high)]
                if self.better(low_value, high_value):
                    yield Violation(high_obs, key, f"{self.what}: trust {high} gets {_show(high_value)} but the "
                                    f"lower trust {low} gets {_show(low_value)}", decision, also=low_decision)


def _monotonic(outcome: Callable[[Observation], Iterable[tuple[str, Trust, Any, Any]]],
               better: Callable[[Any, Any], bool], what: str) -> GlobalCheck:
    """Build a check that a higher trust never gets a worse ``outcome`` than a lower trust, per key."""
    return functools.partial(_Monotonic, outcome, better, what)


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}" if value else "no rights"
    return str(value)


def _mail_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    for d in obs.mail.values():
        yield "mail", d.trust, "untagged" if not d.tag_external else "tagged", d


def _dlp_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    yield "dlp", obs.resolution.trust, "inside" if obs.dlp.inside_organization else "outside", obs.dlp


def _teams_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    for action, t in obs.teams.items():
        yield f"teams {action}", t.trust, "allowed" if t.allowed else "denied", t


def _label_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    for label, lab in obs.labels.items():
        yield f"label {label!r}", lab.trust, lab.rights, lab


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("inactive_tenant_capped",
              "An identity whose home tenant is pending, removed, of unknown MTO state, outside the MTO or "
              "unknown resolves to at most guest: userType Member alone never elevates.", _inactive_capped),
    Invariant("inactive_tenant_tagged",
              "Mail from an identity of a pending, removed or non-MTO tenant is always tagged [External], "
              "however it is authenticated.", _inactive_tagged),
    Invariant("inactive_tenant_outside",
              "DLP never counts a recipient of a pending, removed or non-MTO tenant inside the organization.",
              _inactive_outside),
    Invariant("unauthenticated_mail_capped",
              "Unauthenticated mail never keeps a trust above external (mail.require_authentication).",
              _unauth_capped),
    Invariant("unauthenticated_mail_tagged",
              "Unauthenticated mail is always tagged [External] (mail.untagged_at above external).",
              _unauth_tagged),
    Invariant("spoofed_mail_untrusted",
              "Mail whose DMARC or composite authentication fails for a local or MTO domain is untrusted and "
              "tagged, even when a lower (possibly forged) header passes.", _spoof),
    Invariant("guest_mail_tagged",
              "Mail at guest trust or below is always tagged [External] (mail.untagged_at above guest).",
              _guest_tagged),
    Invariant("guest_outside",
              "DLP never counts a recipient at guest trust or below inside the organization (dlp.inside_at "
              "above guest).", _guest_outside),
    Invariant("untrusted_gets_nothing",
              "An untrusted identity (invalid, look-alike, ambiguous, blocked, wrong tenant id) gets no Teams "
              "action, no label rights, no DLP inside, and its mail is tagged.", _untrusted_nothing),
    Invariant("blocked_untrusted",
              "Every overrides.block entry resolves to untrusted, however strong the directory evidence.",
              _blocked),
    Invariant("tenant_id_mismatch_untrusted",
              "A caller's tenant id that differs from the domain's home tenant makes the identity untrusted.",
              _mismatch),
    Invariant("unresolvable_untrusted",
              "Invalid identities, confusable look-alike domains and addresses carried by two objects resolve to "
              "untrusted.", _unresolvable),
    Invariant("mto_member_needs_evidence",
              "mto_member only with all the evidence: one external, enabled Member object of an active tenant, "
              "no partner flag false, agreeing #EXT# home and a matching tenant id.", _member_evidence),
    Invariant("dlp_inside_threshold",
              "A DLP decision is inside only when every recipient is at or above dlp.inside_at.", _dlp_threshold),
    Invariant("monotonic_mail", "Higher trust is never tagged where lower trust is untagged.",
              check_all=_monotonic(_mail_outcomes, lambda lo, hi: lo == "untagged" and hi == "tagged", "mail")),
    Invariant("monotonic_dlp", "Higher trust is never outside where lower trust is inside.",
              check_all=_monotonic(_dlp_outcomes, lambda lo, hi: lo == "inside" and hi == "outside", "DLP")),
    Invariant("monotonic_teams", "Higher trust is never denied a Teams action lower trust is allowed.",
              check_all=_monotonic(_teams_outcomes, lambda lo, hi: lo == "allowed" and hi == "denied", "Teams")),
    Invariant("monotonic_label_rights",
              "Label rights only grow with trust: guest ⊆ mto_member ⊆ internal for every label.",
              check_all=_monotonic(_label_outcomes, lambda lo, hi: not lo <= hi, "label rights")),
    Invariant("reference_agrees",
              "The cached engine equals the uncached engine and the reference evaluator (the trust and app "
              "rules, read from the attributes) on every combination and app.", _reference_agrees),
)
"""The invariant catalogue, in report order."""
