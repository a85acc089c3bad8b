"""The exhaustive verifier: :func:`verify` and what it reports (:class:`Report`, :class:`Finding`).

:func:`verify` enumerates the attribute space (:mod:`mtotrust._verify.enumeration`), evaluates the real engine
on every case and app (:mod:`mtotrust._verify.observe`), checks the chosen invariants
(:mod:`mtotrust._verify.invariants`) and reports each violated one with its count and a minimal counterexample
(the case closest to a plain active MTO member) with the engine's explanation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import attrs

from mtotrust._engine import TrustEngine
from mtotrust._explain import explain
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust._verify.enumeration import enumerate_space
from mtotrust._verify.invariants import INVARIANTS, Invariant, Violation
from mtotrust._verify.observe import observe, snapshot_cases

__all__ = ["Finding", "Report", "verify"]


@attrs.frozen(slots=True)
class Finding:
    """A violated invariant: how often, and its minimal counterexample with the engine's explanation.

    .. versionadded:: 0.1.0
    """

    invariant: str
    summary: str
    count: int
    identity: str
    tenant_id: str | None
    attributes: str
    app: str
    detail: str
    explanation: str
    contrast: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return attrs.asdict(self)

    def format(self) -> str:
        """Return the finding as indented text."""
        lines = [f"FAIL {self.invariant}: {self.summary}",
                 f"  {self.count} violation(s); minimal counterexample:",
                 f"    identity: {self.identity!r}" + (f"  tenant_id: {self.tenant_id}" if self.tenant_id else ""),
                 f"    attributes: {self.attributes}",
                 f"    {self.app}: {self.detail}",
                 "    explanation:"]
        lines += [f"      {line}" for line in self.explanation.splitlines()]
        if self.contrast:
            lines.append("    compared with:")
            lines += [f"      {line}" for line in self.contrast.splitlines()]
        return "\n".join(lines)


def _key(item: tuple[int, Violation]) -> tuple[int, int, str, int]:
    order, v = item
    facts = v.observation.case.facts
    return (facts.complexity if facts else 99, len(v.observation.case.identity), v.observation.case.identity, order)


def _finding(inv: Invariant, found: list[Violation]) -> Finding:
    _, v = min(enumerate(found), key=_key)
    case = v.observation.case
    return Finding(invariant=inv.name, summary=inv.summary, count=len(found), identity=case.identity,
                   tenant_id=case.tenant_id, attributes=case.facts.describe() if case.facts else "from the given "
                   "snapshot", app=v.app, detail=v.detail, explanation=explain(v.decision),
                   contrast=explain(v.also) if v.also else None)


@attrs.frozen(slots=True)
class Report:
    """The result of :func:`verify`: every invariant checked, the findings, and how much was enumerated.

    .. versionadded:: 0.1.0
    """

    policy_fingerprint: str
    cases: int
    decisions: int
    seconds: float
    checked: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """Whether no invariant is violated."""
        return not self.findings

    def violated(self) -> tuple[str, ...]:
        """Return the names of the violated invariants."""
        return tuple(f.invariant for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"ok": self.ok, "policy_fingerprint": self.policy_fingerprint, "cases": self.cases,
                "decisions": self.decisions, "seconds": round(self.seconds, 3), "checked": list(self.checked),
                "findings": [f.to_dict() for f in self.findings]}

    def format(self) -> str:
        """Return the report as text: one line per invariant, details for each failure."""
        bad = {f.invariant: f for f in self.findings}
        lines = [f"verified policy {self.policy_fingerprint}: {self.cases} identities, {self.decisions} decisions "
                 f"in {self.seconds:.1f} s"]
        for name in self.checked:
            lines.append(bad[name].format() if name in bad else f"ok   {name}")
        lines.append(f"{len(self.findings)} invariant(s) violated." if self.findings else "all invariants hold.")
        return "\n".join(lines)


def verify(policy: Policy | None = None, snapshot: Snapshot | None = None, *,
           invariants: Iterable[Invariant | str] | None = None) -> Report:
    """Enumerate the attribute space, evaluate the real engine everywhere and check the invariants.

    Args:
        policy: the policy to verify (default :meth:`Policy.default`).
        snapshot: a real snapshot whose every indexed address is checked too (the space is always checked).
        invariants: the invariants (or their names) to check; default all of :data:`INVARIANTS`.

    Returns:
        a :class:`Report`; ``report.ok`` is true when nothing is violated.

    Raises:
        KeyError: for an unknown invariant name.

    .. versionadded:: 0.1.0
    """
    policy = policy if policy is not None else Policy.default()
    by_name = {i.name: i for i in INVARIANTS}
    chosen = [by_name[i] if isinstance(i, str) else i for i in (invariants if invariants is not None else INVARIANTS)]
    start = time.perf_counter()
    space, cases = enumerate_space(policy)
    observations = observe(TrustEngine(space, policy), TrustEngine(space, policy, cache_size=0), cases,
                            "megan@contoso.com")
    if snapshot is not None:
        extra = snapshot_cases(snapshot, policy)
        if extra:
            anchor = extra[0].identity
            observations += observe(TrustEngine(snapshot, policy), TrustEngine(snapshot, policy, cache_size=0),
                                     extra, anchor)
    findings = []
    for inv in chosen:
        found = inv.violations(observations, policy)
        if found:
            findings.append(_finding(inv, found))
    decisions = sum(2 + len(o.mail) + 2 + len(o.teams) + len(o.labels) for o in observations)
    return Report(policy.fingerprint, len(observations), decisions, time.perf_counter() - start,
                  tuple(i.name for i in chosen), tuple(findings))
