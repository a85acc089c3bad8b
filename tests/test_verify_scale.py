"""``verify`` on big directories: the same findings as a full, materialised check, bounded memory, and progress."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import given, settings
from strategies import snapshots

from mtotrust import Policy, Snapshot, Trust, TrustEngine
from mtotrust import _engine as engine_module
from mtotrust._builder import SnapshotBuilder
from mtotrust._model import Resolution
from mtotrust._resolve import resolve_address as real_resolve_address
from mtotrust._verify import INVARIANTS, Observation, Report, enumerate_space, verify
from mtotrust._verify import observe as observe_module
from mtotrust._verify.observe import observe, snapshot_cases
from mtotrust._verify.verifier import ADDRESSES, SPACE, Checker

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "examples" / "bad_policy.toml"

Row = tuple[str, int, str, str, str]
"""A finding as compared here: invariant, count, counterexample identity, app, detail."""


def directory(users: int) -> Snapshot:
    """A directory of ``users`` objects: members, synced members of an active and a pending tenant, guests."""
    b = (SnapshotBuilder().tenant("fabrikam").tenant("tailspin", state="pending")
         .tenant("adatum", in_mto=False))
    for i in range(users):
        kind = i % 4
        if kind == 0:
            b.member(f"m{i}@contoso.com")
        elif kind == 1:
            b.synced_member(f"s{i}@fabrikam.com")
        elif kind == 2:
            b.synced_member(f"p{i}@tailspin.com")
        else:
            b.guest(f"g{i}@adatum.com")
    return b.build()


def sloppy(snapshot: Snapshot, local: str, domain: str) -> Resolution:
    """A broken resolver whose error depends on the address itself: every ``p1…``/``b…`` name is a member."""
    resolution = real_resolve_address(snapshot, local, domain)
    if local.startswith(("p1", "b")) and resolution.trust > Trust.UNTRUSTED:
        return attrs.evolve(resolution, trust=Trust.MTO_MEMBER)
    return resolution


@contextmanager
def broken_resolver() -> Iterator[None]:
    """Run the engine with :func:`sloppy` as its resolver."""
    with mock.patch.object(engine_module, "resolve_address", sloppy):
        yield


def snapshot_observations(policy: Policy, snapshot: Snapshot) -> list[Observation]:
    """Every observation of ``snapshot``'s addresses, kept in a list (what the verifier used to hold)."""
    addresses = sorted(snapshot.addresses())
    return list(observe(snapshot, policy, list(snapshot_cases(snapshot, policy, addresses)),
                        next(iter(addresses), "")))


def readable(observations: list[Observation], policy: Policy) -> list[Row]:
    """The readable check: every violation of every invariant in a list, then the minimal one of each.

    Minimal: the fewest attributes away from a plain active member, then the shortest identity, then the
    identity's text, then the first found (``min`` keeps the first of equals).
    """
    rows = []
    for inv in INVARIANTS:
        found = inv.violations(observations, policy)
        if found:
            best = min(found, key=lambda v: (v.observation.case.facts.complexity if v.observation.case.facts else 99,
                                             len(v.observation.case.identity), v.observation.case.identity))
            rows.append((inv.name, len(found), best.observation.case.identity, best.app, best.detail))
    return rows


def rows(report: Report) -> list[Row]:
    """The findings of a report, as compared here."""
    return [(f.invariant, f.count, f.identity, f.app, f.detail) for f in report.findings]


class TestSameFindings:
    """Streaming the directory gives exactly the findings a full list of every violation gives."""

    @pytest.mark.parametrize("broken", [False, True], ids=["bad_policy", "broken_resolver"])
    def test_verify_equals_the_full_check(self, broken: bool) -> None:
        """verify() on the space and a 40-user directory: same invariants, counts and counterexamples."""
        policy = Policy.load(BAD) if not broken else Policy.default()
        snapshot = directory(40)
        with broken_resolver() if broken else nullcontext():
            report = verify(policy, snapshot)
            space, cases = enumerate_space(policy)
            observations = list(observe(space, policy, cases, "megan@contoso.com"))
            observations += snapshot_observations(policy, snapshot)
        expected = readable(observations, policy)
        assert expected
        assert expected == rows(report)
        assert len(observations) == report.cases

    @settings(max_examples=40, deadline=None)
    @given(snapshot=snapshots())
    def test_generated_snapshots_with_a_broken_resolver(self, snapshot: Snapshot) -> None:
        """On generated directories, the streaming check finds what the full check finds, count for count."""
        policy = Policy.default()
        with broken_resolver():
            observations = snapshot_observations(policy, snapshot)
        checker = Checker(INVARIANTS, policy)
        checker.check(iter(observations))
        assert [(f.invariant, f.count, f.identity, f.app, f.detail) for f in checker.findings()] \
            == readable(observations, policy)
        assert checker.cases == len(observations)


class TestBoundedMemory:
    """What verification holds at once does not grow with the directory."""

    @staticmethod
    def peak_observations(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> int:
        """Verify the seeded bad policy on ``snapshot``; return the most observations alive at any one time."""
        live, peak = [0], [0]

        def gone() -> None:
            live[0] -= 1

        def made(**fields: Any) -> Observation:
            obs = Observation(**fields)
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            weakref.finalize(obs, gone)
            return obs

        monkeypatch.setattr(observe_module, "Observation", made)
        assert verify(Policy.load(BAD), snapshot).findings
        return peak[0]

    def test_observations_held_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Ten times the users, not one more observation held: each is dropped once it is checked."""
        small = self.peak_observations(directory(200), monkeypatch)
        big = self.peak_observations(directory(2000), monkeypatch)
        assert big == small
        assert big < len(INVARIANTS) * 5

    def test_answers_held_per_engine(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The engines' per-address answers are bounded: a fresh engine takes over every ENGINE_SPAN addresses."""
        made: list[TrustEngine] = []

        def engine(snapshot: Snapshot, policy: Policy, *, cache_size: int = engine_module.DEFAULT_CACHE_SIZE
                   ) -> TrustEngine:
            made.append(TrustEngine(snapshot, policy, cache_size=cache_size))
            return made[-1]

        monkeypatch.setattr(observe_module, "ENGINE_SPAN", 300)
        monkeypatch.setattr(observe_module, "TrustEngine", engine)
        snapshot = directory(1500)
        verify(Policy.default(), snapshot)
        ours = [e for e in made if e.snapshot is snapshot]
        assert len(ours) >= 3 * len(list(snapshot.addresses())) // 300
        # the span's own addresses, plus the next one (a DLP group's neighbour) and the group's anchor
        assert max(e.stats().precomputed_answers for e in ours) <= 300 + 2


class TestProgress:
    """verify(progress=...) reports each phase from 0 to its total, and an exception from it stops the run."""

    def test_phases_counted_to_their_totals(self) -> None:
        """Space, then snapshot: done increases from 0 to total in each; the totals add up to the cases."""
        calls: list[tuple[int, int, str]] = []
        snapshot = directory(1200)
        report = verify(Policy.default(), snapshot, progress=lambda done, total, what: calls.append(
            (done, total, what)))
        phases = [what for _, _, what in calls]
        assert phases == sorted(phases, key=[SPACE, ADDRESSES].index)
        totals = {}
        for name in (SPACE, ADDRESSES):
            mine = [(done, total) for done, total, what in calls if what == name]
            done = [d for d, _ in mine]
            assert done[0] == 0
            assert done == sorted(set(done))
            assert len(done) > 2
            assert {t for _, t in mine} == {mine[-1][1]}
            assert done[-1] == mine[-1][1]
            totals[name] = mine[-1][1]
        assert totals[ADDRESSES] == len(list(snapshot.addresses()))
        assert totals[SPACE] + totals[ADDRESSES] == report.cases

    def test_without_a_snapshot_only_the_space(self) -> None:
        """Without a snapshot only the space phase is reported, ending at the number of cases."""
        calls: list[tuple[int, int, str]] = []
        report = verify(Policy.default(), progress=lambda done, total, what: calls.append((done, total, what)))
        assert {what for _, _, what in calls} == {SPACE}
        assert calls[-1] == (report.cases, report.cases, SPACE)

    def test_an_exception_propagates(self) -> None:
        """An exception raised by the callback (say, KeyboardInterrupt's stand-in) stops verify and propagates."""
        class StopError(Exception):
            pass

        calls: list[int] = []

        def progress(done: int, _total: int, _what: str) -> None:
            calls.append(done)
            if done > 0:
                raise StopError

        with pytest.raises(StopError):
            verify(Policy.default(), directory(10), progress=progress)
        assert calls == [0, 1000]
