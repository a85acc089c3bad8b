"""The exhaustive verifier: :func:`verify` and what it reports (:class:`Report`, :class:`Finding`).

:func:`verify` enumerates the attribute space (:mod:`mtotrust._verify.enumeration`), evaluates the real engine
on every case and app (:mod:`mtotrust._verify.observe`), checks the chosen invariants
(:mod:`mtotrust._verify.invariants`) and reports each violated one with its count and a minimal counterexample
(the case closest to a plain active MTO member) with the engine's explanation.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import attrs

from mtotrust._errors import PolicyError
from mtotrust._explain import deciding_key, explain
from mtotrust._policy import TEAMS_ACTIONS, Policy
from mtotrust._snapshot import Progress, Snapshot
from mtotrust._verify.enumeration import enumerate_space
from mtotrust._verify.invariants import INVARIANTS, Invariant, Violation, scan
from mtotrust._verify.observe import Observation, observe, snapshot_cases
from mtotrust._verify.space import AUTH_VARIANTS, Case
from mtotrust._verify.user import UserInvariant, declared

__all__ = ["ADDRESSES", "PROGRESS_EVERY", "SPACE", "Checker", "Finding", "Report", "verify"]


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
    key: str | None = None
    """The policy key that decided the counterexample, with its value (``None``: the directory alone decided)."""
    trust: str | None = None
    """The counterexample identity's own trust (its resolution)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return attrs.asdict(self)

    def format(self) -> str:
        """Return the finding as indented text."""
        lines = [f"FAIL {self.invariant}: {self.summary}",
                 f"  {self.count} violation(s); minimal counterexample:",
                 f"    identity: {self.identity!r}" + (f" (trust {self.trust})" if self.trust else "")
                 + (f"  tenant_id: {self.tenant_id}" if self.tenant_id else ""),
                 f"    attributes: {self.attributes}",
                 f"    {self.app}: {self.detail}",
                 f"    decided by: {self.key or 'the directory (no policy key)'}",
                 "    explanation:"]
        lines += [f"      {line}" for line in self.explanation.splitlines()]
        if self.contrast:
            lines.append("    compared with:")
            lines += [f"      {line}" for line in self.contrast.splitlines()]
        return "\n".join(lines)


def _rank(case: Case, order: int) -> tuple[int, int, str, int]:
    """How minimal a counterexample is: closest to a plain active member, then the shortest identity, then first."""
    return (case.facts.complexity if case.facts else 99, len(case.identity), case.identity, order)


def _keys(v: Violation, policy: Policy) -> str | None:
    """Name the key that decided the violation, and the one that decided what it is compared with."""
    key = deciding_key(v.decision, policy)
    also = deciding_key(v.also, policy) if v.also is not None else None
    if also is None or also == key:
        return key
    return f"{key or 'the directory (no policy key)'}; compared with: {also}"


def _finding(inv: Invariant, count: int, v: Violation, policy: Policy) -> Finding:
    case = v.observation.case
    return Finding(invariant=inv.name, summary=inv.summary, count=count, identity=case.identity,
                   tenant_id=case.tenant_id, attributes=case.facts.describe() if case.facts else "from the given "
                   "snapshot", app=v.app, detail=v.detail, explanation=explain(v.decision),
                   contrast=explain(v.also) if v.also else None, key=_keys(v, policy),
                   trust=v.observation.resolution.trust.value)


class Checker:
    """The invariants' verdict over a stream of observations, kept in bounded memory.

    Per invariant only the count of its violations and its minimal counterexample so far are kept (the
    minimum of :func:`_rank`, the same one a full list of violations would give), and the observations pass
    through :func:`~mtotrust._verify.invariants.scan` once, so a directory of any size costs the same memory.
    """

    def __init__(self, invariants: Iterable[Invariant], policy: Policy) -> None:
        self.invariants = tuple(invariants)
        self.policy = policy
        self.cases = 0
        self.decisions = 0
        self._per_case = 2 + len(AUTH_VARIANTS) + 2 + len(TEAMS_ACTIONS) + len(policy.labels)
        self._counts: dict[str, int] = {}
        self._best: dict[str, tuple[tuple[int, int, str, int], Violation]] = {}

    def _counted(self, observations: Iterable[Observation]) -> Iterator[Observation]:
        for obs in observations:
            self.cases += 1
            self.decisions += self._per_case
            yield obs

    def check(self, observations: Iterable[Observation]) -> None:
        """Check every invariant on ``observations`` (read once, not kept); call once per run."""
        for inv, v in scan(self.invariants, self._counted(observations), self.policy):
            order = self._counts.get(inv.name, 0)
            self._counts[inv.name] = order + 1
            rank = _rank(v.observation.case, order)
            best = self._best.get(inv.name)
            if best is None or rank < best[0]:
                self._best[inv.name] = (rank, v)

    def findings(self) -> tuple[Finding, ...]:
        """Return a finding per violated invariant, in the order the invariants were given."""
        return tuple(_finding(inv, self._counts[inv.name], self._best[inv.name][1], self.policy)
                     for inv in self.invariants if inv.name in self._best)


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


SPACE = "attribute space"
"""``what`` of :func:`verify`'s progress while it checks the synthetic attribute space (counting cases)."""
ADDRESSES = "snapshot addresses"
"""``what`` of :func:`verify`'s progress while it checks the given snapshot (counting indexed addresses)."""
PROGRESS_EVERY = 1000
"""Cases between two progress calls."""


_T = TypeVar("_T")


def _reported(observations: Iterable[_T], total: int, progress: Progress | None, what: str) -> Iterator[_T]:
    """Yield ``observations``, calling ``progress(done, total, what)`` before the first, every so often and last.

    ``done`` counts the observations the consumer has finished with: it is called once the consumer asks for
    the next one, so ``done == total`` means the whole phase is checked.
    """
    if progress is not None:
        progress(0, total, what)
    for done, obs in enumerate(observations, start=1):
        yield obs
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
            progress(done, total, what)


def verify(policy: Policy | None = None, snapshot: Snapshot | None = None, *,
           invariants: Iterable[Invariant | UserInvariant | str] | None = None,
           extra: Iterable[Invariant | UserInvariant] = (), progress: Progress | None = None) -> Report:
    """Enumerate the attribute space, evaluate the real engine everywhere and check the invariants.

    Memory stays bounded whatever the size of ``snapshot``: its addresses are checked one at a time, and each
    invariant keeps only its count and its minimal counterexample so far (:class:`Checker`). Each address is
    checked on its own rather than one representative per class of equal attributes: the verifier is there to
    catch an engine whose answers depend on more than a correct one reads (an address, a cache key, a DLP group
    with its neighbour), so it cannot assume that every member of a class gets its representative's answers.

    Args:
        policy: the policy to verify (default :meth:`Policy.default`).
        snapshot: a real snapshot whose every indexed address is checked too (the space is always checked).
        invariants: the invariants (or their names: a built-in's, or one of the policy's ``[[invariants]]``) to
            check; default every built-in of :data:`INVARIANTS` and every invariant the policy declares.
        extra: more invariants to check after those, such as ``@invariant`` functions.
        progress: if given, called as ``progress(done, total, what)``: for the space (``what`` is
            :data:`SPACE`, counting its cases), then for the snapshot (:data:`ADDRESSES`, counting its indexed
            addresses), before the first case, every :data:`PROGRESS_EVERY` cases and with ``done == total`` at
            the end of each phase. It runs on the calling thread; an exception it raises stops the verification
            and propagates.

    Returns:
        a :class:`Report`; ``report.ok`` is true when nothing is violated.

    Raises:
        KeyError: for an unknown invariant name.
        PolicyError: two invariants share a name, a user invariant names a label the policy does not define or
            speaks of no decision at all (its filters match nothing), a Python invariant raises or returns
            something other than a bool.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``progress``; memory no longer grows with the snapshot.
    .. versionchanged:: 0.2.0 the policy's ``[[invariants]]`` are checked too; ``extra``; user invariants.
    """
    policy = policy if policy is not None else Policy.default()
    examined: dict[str, list[int]] = {}
    chosen = _chosen(policy, invariants, extra, examined)
    start = time.perf_counter()
    space, cases = enumerate_space(policy)
    checker = Checker(chosen, policy)
    stream: Iterable[Observation] = _reported(observe(space, policy, cases, "megan@contoso.com"), len(cases),
                                              progress, SPACE)
    if snapshot is not None:
        addresses = sorted(snapshot.addresses())
        extra_cases = observe(snapshot, policy, snapshot_cases(snapshot, policy, addresses),
                              next(iter(addresses), ""))
        stream = itertools.chain(stream, _reported(extra_cases, len(addresses), progress, ADDRESSES))
    checker.check(stream)
    vacuous = [name for name, count in examined.items() if count[0] == 0]
    if vacuous:
        raise PolicyError(f"invariant {vacuous[0]!r} speaks of no decision: no identity of the space matches all its "
                          "filters (a local tenant has no partner flag, say), so it would hold without checking "
                          "anything; widen or remove it", key=vacuous[0], value=vacuous[0])
    return Report(policy.fingerprint, checker.cases, checker.decisions, time.perf_counter() - start,
                  tuple(i.name for i in chosen), checker.findings())


def _chosen(policy: Policy, invariants: Iterable[Invariant | UserInvariant | str] | None,
            extra: Iterable[Invariant | UserInvariant], examined: dict[str, list[int]]) -> list[Invariant]:
    """Resolve names, bind user invariants to ``policy`` and refuse two invariants of one name.

    ``examined`` gets a counter per user invariant: how many decisions it is checked on.
    """
    everything: list[Invariant | UserInvariant] = [*INVARIANTS, *declared(policy)]
    by_name = {i.name: i for i in everything}
    wanted: Iterable[Invariant | UserInvariant | str] = invariants if invariants is not None else everything
    picked: list[Invariant | UserInvariant] = [by_name[i] if isinstance(i, str) else i for i in wanted]
    chosen = [i.bind(policy, examined.setdefault(i.name, [0])) if isinstance(i, UserInvariant) else i
              for i in (*picked, *extra)]
    seen: set[str] = set()
    for inv in chosen:
        if inv.name in seen:
            builtin = " (a built-in invariant's name)" if inv.name in {i.name for i in INVARIANTS} else ""
            raise PolicyError(f"two invariants are named {inv.name!r}{builtin}; give each its own name", key="name",
                              value=inv.name)
        seen.add(inv.name)
    return chosen
