"""Concurrency and resource bounds (issue 5): hot swaps under load, a bounded cache, a flat soak.

The swap stress and the soak live in ``tests/hostile.py`` so ``scripts/reliability.py`` runs the same code
(``--soak 10000000`` for the long soak; here it is 200 000 decisions).
"""

from __future__ import annotations

import io
import json
import random
import threading

import hostile as h

from mtotrust import DecisionLog, Policy, Trust, TrustEngine


def test_eight_readers_and_a_hundred_swaps_never_see_a_mix_or_a_stale_answer() -> None:
    report = h.swap_stress(swaps=100, readers=8)
    assert report.errors == []
    assert report.mixed == []
    assert report.stale == []
    assert report.swaps == 100
    assert report.decisions > 1000  # the readers really ran while the swaps happened
    assert report.max_cache_entries <= 4096


def test_swap_deltas_really_change_the_answers() -> None:
    """The stress is only meaningful if consecutive generations answer differently."""
    one = h.SAMPLE.with_delta(h.swap_delta(h.SAMPLE, 1))
    two = one.with_delta(h.swap_delta(one, 2))
    a, b = h.reference_answers(one, h.POLICY), h.reference_answers(two, h.POLICY)
    changed = [k for k in h.SWAP_IDENTITIES if a[k] != b[k]]
    assert {"cameron@fabrikam.com", "dana@fabrikam.com", "swap.probe@fabrikam.com",
            "omar.martin@fabrikam.com"} <= set(changed)
    assert a["cameron@fabrikam.com"].trust is Trust.EXTERNAL
    assert b["cameron@fabrikam.com"].trust is Trust.MTO_MEMBER
    assert a["__dlp__"] != b["__dlp__"]


def test_after_update_returns_no_previous_answer_is_served() -> None:
    engine = TrustEngine(h.SAMPLE, h.POLICY)
    snap = h.SAMPLE
    for i in range(1, 51):
        for address in h.SWAP_IDENTITIES:
            engine.resolve(address)  # fill the cache with this generation's answers
        snap = snap.with_delta(h.swap_delta(snap, i))
        engine.update(snap)
        expected = h.reference_answers(snap, h.POLICY)
        for address in h.SWAP_IDENTITIES:
            assert engine.resolve(address) == expected[address], (i, address)


def test_policy_swaps_under_load_are_atomic_too() -> None:
    strict = Policy.classic()
    engine = TrustEngine(h.SAMPLE, h.POLICY)
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            d = engine.mail(h.MTO_SENDER, "mx.contoso.com; dmarc=pass header.from=fabrikam.com")
            # default policy: mto_member untagged; classic: tagged. Either, never an error.
            if d.trust is not Trust.MTO_MEMBER:
                errors.append(f"{d.trust} {d.reasons}")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(100):
        engine.update(policy=strict if i % 2 == 0 else h.POLICY)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []


def test_cache_never_exceeds_its_size_over_200k_random_decisions() -> None:
    size = 1000
    engine = TrustEngine(h.SAMPLE, h.POLICY, cache_size=size)
    rng = random.Random(7)
    identities = [h.random_identity(rng) for _ in range(20_000)]
    peak = 0
    for i in range(200_000):
        identity = identities[i % len(identities)] if i % 3 else h.random_identity(rng)
        if i % 2:
            engine.mail(identity)
        else:
            engine.resolve(identity)
        if i % 997 == 0:
            peak = max(peak, engine.stats().cache_entries)
    stats = engine.stats()
    assert max(peak, stats.cache_entries) <= size
    assert stats.cache_misses > 100_000  # most identities were new: the cache really churned


def test_cache_bounded_under_threads() -> None:
    engine = TrustEngine(h.SAMPLE, h.POLICY, cache_size=256)
    peaks: list[int] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        top = 0
        for _ in range(5000):
            engine.dlp([h.random_identity(rng), h.random_identity(rng)])
            top = max(top, engine.stats().cache_entries)
        peaks.append(top)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peaks) <= 256


def test_oversized_identities_are_not_cached() -> None:
    engine = TrustEngine(h.SAMPLE, h.POLICY, cache_size=10)
    for i in range(100):
        engine.resolve(f"{i}" + "a" * 100_000 + "@contoso.com")
    assert engine.stats().cache_entries <= 10


def test_decision_log_lines_stay_whole_under_eight_threads() -> None:
    stream = io.StringIO()
    log = DecisionLog(stream, salt=b"s")
    engine = TrustEngine(h.SAMPLE, h.POLICY, decision_log=log)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(500):
            engine.mail(h.random_identity(rng))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4000
    ids = {json.loads(line)["decision_id"] for line in lines}
    assert len(ids) == 4000
