"""Two policies compared over the exhaustive space: the decision classes where they differ (``lint --compare``).

:func:`compare` evaluates the real engine under both policies on every case of the attribute space (its block
probes made from both policies' ``overrides.block``) and, with a snapshot, on every indexed address of it. A
*decision class* is an app (with its Teams action or label), the identity's trust under the baseline, and the
outcome under each policy; each class that differs is reported with its count and its minimal counterexample,
explained under both policies with the key that decided each side.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from mtotrust._explain import deciding_key, explain
from mtotrust._model import DlpDecision, LabelDecision, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust._policy import Policy
from mtotrust._snapshot import Progress, Snapshot
from mtotrust._verify.enumeration import enumerate_space
from mtotrust._verify.observe import Observation, observe, snapshot_cases
from mtotrust._verify.space import AUTH_VARIANTS, AuthVariant, Case, _trusted_id
from mtotrust._verify.verifier import ADDRESSES, SPACE, _rank, _reported

__all__ = ["Difference", "Differences", "compare"]

_Decision = Resolution | MailDecision | DlpDecision | TeamsDecision | LabelDecision
_APP_ORDER = {"resolve": 0, "mail": 1, "dlp": 2, "teams": 3, "label": 4}


@attrs.frozen(slots=True)
class Difference:
    """One decision class where two policies differ: how often, and its minimal counterexample.

    ``app`` is ``resolve``, ``mail``, ``dlp``, ``teams <action>`` or ``label '<name>'``; ``trust`` the identity's
    trust under the baseline; ``before`` and ``after`` the outcomes under the baseline and under the policy;
    ``where`` the counterexample's decision (``mail (auth: dmarc_pass)`` names its authentication).

    .. versionadded:: 0.2.0
    """

    app: str
    trust: str
    before: str
    after: str
    count: int
    identity: str
    tenant_id: str | None
    attributes: str
    where: str
    key_before: str | None
    key_after: str | None
    explanation_before: str
    explanation_after: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return attrs.asdict(self)

    def format(self, before: str, after: str) -> str:
        """Return the class as indented text, the two policies called ``before`` and ``after``.

        The text explains the counterexample under ``after`` only; :meth:`to_dict` carries both explanations.
        """
        tid = f"  tenant_id: {self.tenant_id}" if self.tenant_id else ""
        lines = [f"DIFF {self.app}, identities at trust {self.trust}: {self.before} ({before}) -> {self.after} "
                 f"({after})",
                 f"  {self.count} decision(s); minimal counterexample:",
                 f"    identity: {self.identity!r}{tid}",
                 f"    attributes: {self.attributes}",
                 f"    {self.where}",
                 f"    {before} decided by: {self.key_before or 'the directory (no policy key)'}",
                 f"    {after} decided by: {self.key_after or 'the directory (no policy key)'}",
                 f"    explanation under {after}:"]
        lines += [f"      {line}" for line in self.explanation_after.splitlines()]
        return "\n".join(lines)


@attrs.frozen(slots=True)
class Differences:
    """The result of :func:`compare`: every decision class that differs, and how much was compared.

    .. versionadded:: 0.2.0
    """

    before: str
    after: str
    fingerprint_before: str
    fingerprint_after: str
    cases: int
    decisions: int
    seconds: float
    classes: tuple[Difference, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"before": self.before, "after": self.after, "fingerprint_before": self.fingerprint_before,
                "fingerprint_after": self.fingerprint_after, "cases": self.cases, "decisions": self.decisions,
                "seconds": round(self.seconds, 3), "differences": [c.to_dict() for c in self.classes]}

    def format(self) -> str:
        """Return the comparison as text: a head line, then every class that differs."""
        head = (f"compared {self.before} ({self.fingerprint_before}) with {self.after} ({self.fingerprint_after}): "
                f"{self.cases} identities, {self.decisions} decisions in {self.seconds:.1f} s")
        if not self.classes:
            return f"{head}\nno decision differs."
        body = [c.format(self.before, self.after) for c in self.classes]
        return "\n".join([head, *body, f"{len(self.classes)} decision class(es) differ."])


def _outcomes(obs: Observation) -> Iterator[tuple[str, str, str, _Decision | None]]:
    """Yield ``(app, where, outcome, decision)`` for every decision of ``obs``."""
    yield "resolve", "resolve", obs.resolution.trust.value, obs.resolution
    for name, mail in obs.mail.items():
        yield "mail", f"mail (auth: {name})", f"{'tagged' if mail.tag_external else 'untagged'} at " \
              f"{mail.trust.value}", mail
    yield "dlp", "dlp", "inside" if obs.dlp.inside_organization else "outside", obs.dlp
    for action, teams in obs.teams.items():
        yield f"teams {action}", f"teams {action}", "allowed" if teams.allowed else "denied", teams


def _label_outcome(decision: LabelDecision | None) -> str:
    if decision is None:
        return "label not defined"
    return ", ".join(sorted(decision.rights)) or "no rights"


@attrs.define
class _Classes:
    """Per decision class: its count and its minimal counterexample so far (bounded by the number of classes)."""

    before: Policy
    after: Policy
    counts: dict[tuple[str, Trust, str, str], int] = attrs.field(factory=dict)
    best: dict[tuple[str, Trust, str, str], tuple[Any, Case, str, _Decision | None, _Decision | None]] = \
        attrs.field(factory=dict)
    cases: int = 0
    decisions: int = 0

    def add(self, a: Observation, b: Observation) -> None:
        self.cases += 1
        trust = a.resolution.trust
        pairs = list(zip(_outcomes(a), _outcomes(b), strict=True))
        for name in dict.fromkeys((*a.labels, *b.labels)):
            la, lb = a.labels.get(name), b.labels.get(name)
            pairs.append(((f"label {name!r}", f"label {name!r}", _label_outcome(la), la),
                          (f"label {name!r}", f"label {name!r}", _label_outcome(lb), lb)))
        self.decisions += len(pairs)
        for (app, where, before, da), (_, _, after, db) in pairs:
            if before == after:
                continue
            key = (app, trust, before, after)
            order = self.counts.get(key, 0)
            self.counts[key] = order + 1
            rank = _rank(a.case, order)
            if key not in self.best or rank < self.best[key][0]:
                self.best[key] = (rank, a.case, where, da, db)

    def differences(self) -> tuple[Difference, ...]:
        found = []
        for key in sorted(self.best, key=lambda k: (_APP_ORDER[k[0].split(" ")[0]], k[0], -k[1].rank, k[2], k[3])):
            app, trust, before, after = key
            _, case, where, da, db = self.best[key]
            found.append(Difference(
                app=app, trust=trust.value, before=before, after=after, count=self.counts[key],
                identity=case.identity, tenant_id=case.tenant_id,
                attributes=case.facts.describe() if case.facts else "from the given snapshot", where=where,
                key_before=deciding_key(da, self.before) if da is not None else _no_label(app),
                key_after=deciding_key(db, self.after) if db is not None else _no_label(app),
                explanation_before=explain(da) if da is not None else "the label is not defined",
                explanation_after=explain(db) if db is not None else "the label is not defined"))
        return tuple(found)


def _shared_variants(policy: Policy, baseline: Policy) -> tuple[AuthVariant, ...]:
    """Return the mail variants both sides are shown, the same message to each.

    A variant whose message depends on the policy (a header stamped by its first trusted authserv-id) is split in
    one per policy, named after the authserv-id, so each side also sees the message the other side trusts: a
    moved boundary shows as mail that stops (or starts) counting.
    """
    shared: list[AuthVariant] = []
    for v in AUTH_VARIANTS:
        makers = {repr(v.make("probe.example", p)): p for p in (policy, baseline)}
        if len(makers) == 1:
            shared.append(v)
            continue
        for p in makers.values():
            shared.append(attrs.evolve(v, name=f"{v.name} ({_trusted_id(p)})", make=_made_as_for(v, p)))
    return tuple(shared)


def _made_as_for(variant: AuthVariant, policy: Policy) -> Callable[[str, Policy], Any]:
    """Return ``variant``'s maker that makes the message as for ``policy``, whichever policy evaluates it."""
    return lambda domain, _evaluating: variant.make(domain, policy)


def _no_label(app: str) -> str:
    return f"labels (no {app})"


def compare(policy: Policy, baseline: Policy, snapshot: Snapshot | None = None, *, names: tuple[str, str] =
            ("policy", "baseline"), progress: Progress | None = None) -> Differences:
    """Return the decision classes where ``policy`` decides otherwise than ``baseline``, one counterexample each.

    Both policies are evaluated by the real engine on every case of the attribute space (its block probes from
    both; each mail variant the same message to both, a header of each side's boundary when they differ) and,
    given ``snapshot``, on each of its indexed addresses; memory is bounded by the number of classes.
    A label only one policy defines is compared as ``label not defined`` on the other side.

    Args:
        policy: the policy being changed (``after``).
        baseline: the policy it is compared with (``before``), such as the one deployed or :meth:`Policy.classic`.
        snapshot: a real snapshot whose addresses are compared too.
        names: what to call ``policy`` and ``baseline`` in the text.
        progress: as for :func:`~mtotrust._verify.verifier.verify`.

    .. versionadded:: 0.2.0
    """
    start = time.perf_counter()
    space, cases = enumerate_space(policy, others=(baseline,))
    classes = _Classes(baseline, policy)
    anchor = "megan@contoso.com"
    variants = _shared_variants(policy, baseline)
    pairs: Iterable[tuple[Observation, Observation]] = _reported(
        zip(observe(space, baseline, cases, anchor, variants), observe(space, policy, cases, anchor, variants),
            strict=True), len(cases), progress, SPACE)
    if snapshot is not None:
        addresses = sorted(snapshot.addresses())
        first = next(iter(addresses), "")
        mine, theirs = itertools.tee(snapshot_cases(snapshot, baseline, addresses))
        pairs = itertools.chain(pairs, _reported(
            zip(observe(snapshot, baseline, mine, first, variants), observe(snapshot, policy, theirs, first, variants),
                strict=True), len(addresses), progress, ADDRESSES))
    for a, b in pairs:
        classes.add(a, b)
    return Differences(names[1], names[0], baseline.fingerprint, policy.fingerprint, classes.cases,
                       classes.decisions, time.perf_counter() - start, classes.differences())
