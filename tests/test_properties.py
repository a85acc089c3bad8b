"""Hypothesis properties of the trust core (issue 2): normalisation, fail-closed rules, monotone policies, cache."""



from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import PENDING, REMOVED, TRUST_NAMES, probe_addresses, snapshot_documents, snapshots, trust_names

from mtotrust import IdentityError, Policy, Snapshot, Trust, TrustEngine
from mtotrust._address import normalize_address
from mtotrust._policy import TEAMS_ACTIONS
from mtotrust._resolve import resolve

SMALL = settings(max_examples=int(__import__("os").environ.get("MTOTRUST_PROPERTY_EXAMPLES", "40")))

_atext = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
                                 "éÉßİıΣσςÅǅ"), min_size=1, max_size=12)
_label = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-üÜéöß"),
                 min_size=1, max_size=12)
addresses = st.builds(lambda local, labels: f"{local}@{'.'.join(labels)}",
                      st.lists(_atext, min_size=1, max_size=3).map(".".join),
                      st.lists(_label, min_size=1, max_size=3))
blanks = st.text(st.sampled_from(" \t"), max_size=3)
all_addresses = st.one_of(addresses, st.text(max_size=40))


def _normal(text):
    try:
        local, domain = normalize_address(text)
    except IdentityError:
        return None
    return f"{local}@{domain}"


class TestNormalisation:
    @given(all_addresses)
    def test_idempotent(self, text):
        """Normalising a normal address gives it back unchanged."""
        once = _normal(text)
        if once is not None:
            assert once == _normal(once)

    @given(addresses, blanks, blanks)
    def test_blank_insensitive(self, text, before, after):
        """ASCII blanks around an address never change its normal form or validity."""
        assert _normal(text) == _normal(before + text + after)

    @given(addresses)
    def test_ascii_case_insensitive(self, text):
        """Upper-casing ASCII letters never changes the normal form."""
        upper = "".join(c.upper() if c.isascii() else c for c in text)
        assert _normal(text) == _normal(upper)


class TestFailClosedRules:
    @given(snapshots())
    @SMALL
    def test_pending_or_removed_never_mto_member(self, snap):
        """No address at a pending or removed tenant's domain ever resolves to mto_member."""
        for address in probe_addresses(snap):
            result = resolve(snap, address)
            if result.home_tenant_id is not None and snap.tenants.get(result.home_tenant_id) is not None \
                    and snap.tenants[result.home_tenant_id].state in ("pending", "removed"):
                assert Trust.MTO_MEMBER != result.trust
            if result.home_tenant_id in (PENDING, REMOVED) and result.trust == Trust.MTO_MEMBER:
                assert "active" == snap.tenants[result.home_tenant_id].state

    @given(snapshots())
    @SMALL
    def test_guest_object_never_above_guest(self, snap):
        """A userType Guest object at a non-local domain never resolves above guest."""
        for address in probe_addresses(snap):
            result = resolve(snap, address)
            domain = (result.address or "").rpartition("@")[2]
            if result.user is not None and result.user.user_type == "Guest" and domain not in snap.local_domains:
                assert result.trust <= Trust.GUEST


def _threshold_policy(mail, dlp, teams):
    return Policy.from_data({"mail": {"untagged_at": mail}, "dlp": {"inside_at": dlp},
                             "teams": dict(zip(TEAMS_ACTIONS, teams, strict=True))})


def _raised(low, high):
    return TRUST_NAMES[max(TRUST_NAMES.index(low), TRUST_NAMES.index(high))]


class TestMonotonePolicy:
    @given(snapshots(), trust_names, trust_names, st.lists(trust_names, min_size=6, max_size=6),
           trust_names, trust_names, st.lists(trust_names, min_size=6, max_size=6))
    @SMALL
    def test_raising_thresholds_never_grants_more(self, snap, mail, dlp, teams, mail2, dlp2, teams2):
        """With every threshold raised, nothing untagged, inside or allowed before becomes more permissive."""
        low = _threshold_policy(mail, dlp, teams)
        high = _threshold_policy(_raised(mail, mail2), _raised(dlp, dlp2),
                                 [_raised(a, b) for a, b in zip(teams, teams2, strict=True)])
        lo_engine, hi_engine = TrustEngine(snap, low), TrustEngine(snap, high)
        for address in probe_addresses(snap):
            for auth in (None, f"{address.rpartition('@')[2]}; dmarc=pass header.from={address.rpartition('@')[2]}"):
                if lo_engine.mail(address, auth).tag_external:
                    assert hi_engine.mail(address, auth).tag_external
            if not lo_engine.dlp([address]).inside_organization:
                assert not hi_engine.dlp([address]).inside_organization
            for action in TEAMS_ACTIONS:
                if not lo_engine.teams(address, action).allowed:
                    assert not hi_engine.teams(address, action).allowed

    @given(snapshots(), st.sampled_from(["guest", "mto_member", "internal"]))
    @SMALL
    def test_unauthenticated_mail_tagged(self, snap, untagged_at):
        """Whenever untagged_at is above external, unauthenticated mail is always tagged."""
        engine = TrustEngine(snap, Policy.from_data({"mail": {"untagged_at": untagged_at}}))
        for address in probe_addresses(snap):
            decision = engine.mail(address)
            assert (True, False) == (decision.tag_external, decision.trust > Trust.EXTERNAL)


class TestStore:
    @given(snapshot_documents())
    @settings(max_examples=25)
    def test_sqlite_round_trip_preserves_every_resolution(self, docs):
        """Save then load gives the same resolution for every probe address."""
        snap = Snapshot.from_documents(**docs)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "s.sqlite"
            snap.save(path)
            loaded = Snapshot.load(path)
        assert {a: resolve(snap, a) for a in probe_addresses(snap)} == \
            {a: resolve(loaded, a) for a in probe_addresses(snap)}


class TestCacheProperties:
    @given(snapshots(), snapshots(), st.sampled_from([Policy.default(), Policy.classic()]))
    @SMALL
    def test_no_stale_answer_after_update(self, old, new, policy):
        """After update, every answer equals a fresh engine's on the new snapshot and policy."""
        engine = TrustEngine(old)
        probes = probe_addresses(old) + probe_addresses(new)
        for address in probes:  # fill the cache from the old state
            engine.resolve(address)
            engine.mail(address)
        engine.update(new, policy=policy)
        fresh = TrustEngine(new, policy, cache_size=0)
        for address in probes:
            assert fresh.resolve(address) == engine.resolve(address)
            assert fresh.mail(address) == engine.mail(address)
            assert fresh.dlp([address]) == engine.dlp([address])

    @given(snapshots(), st.lists(st.one_of(st.sampled_from(["cameron@fabrikam.com", " Ann@Fabrikam.com"]),
                                           all_addresses), max_size=5))
    @SMALL
    def test_cached_equals_uncached(self, snap, extra):
        """The cached path answers exactly like cache_size=0, asked twice over."""
        cached, uncached = TrustEngine(snap), TrustEngine(snap, cache_size=0)
        probes = probe_addresses(snap) + extra
        for _ in range(2):
            for address in probes:
                assert uncached.resolve(address) == cached.resolve(address)
                for action in TEAMS_ACTIONS:
                    assert uncached.teams(address, action) == cached.teams(address, action)
                assert uncached.mail(address) == cached.mail(address)


def _noisy(address: str, draw_case: int, blanks_before: str, blanks_after: str) -> str:
    """The same identity as an app may send it: other case, blanks around."""
    cased = address.upper() if draw_case == 1 else address.title() if draw_case == 2 else address
    return f"{blanks_before}{cased}{blanks_after}"


class TestEngineAgainstTheResolver:
    @given(snapshots(), st.lists(st.tuples(st.integers(0, 2), blanks, blanks), min_size=1, max_size=3),
           st.lists(all_addresses, max_size=4), st.sampled_from([None, "22222222-2222-4222-8222-222222222222",
                                                                "44444444-4444-4444-8444-444444444444"]))
    @SMALL
    def test_fast_paths_answer_like_the_resolver(self, snap, noise, extra, tenant_id):
        """Precomputed answers, per-domain miss answers and the cache all agree with resolve() itself."""
        from mtotrust import Identity

        engines = (TrustEngine(snap), TrustEngine(snap, cache_size=0))
        for address in probe_addresses(snap) + extra:
            for case, before, after in noise:
                text = _noisy(address, case, before, after)
                for identity in (text, Identity(text, tenant_id)):
                    expected = resolve(snap, identity)
                    for engine in engines:
                        for _ in range(2):  # the second time from the answers, templates or cache
                            assert expected == engine.resolve(identity)

    @given(snapshot_documents(), st.data())
    @SMALL
    def test_answers_kept_across_a_delta_equal_a_fresh_engine(self, docs, data):
        """After update(snapshot.with_delta(...)), every answer equals a fresh engine's on the new snapshot."""
        snap = Snapshot.from_documents(**docs)
        engine = TrustEngine(snap, cache_size=0)
        probes = probe_addresses(snap)
        for address in probes:
            engine.resolve(address)
        users = docs["users"][0]["value"]
        changes = []
        for user in data.draw(st.lists(st.sampled_from(users), max_size=3, unique_by=lambda u: u["id"])
                              if users else st.just([])):
            change = data.draw(st.sampled_from([
                {"id": user["id"], "@removed": {"reason": "deleted"}},
                {"id": user["id"], "accountEnabled": False},
                {"id": user["id"], "userType": "Guest"},
                {"id": user["id"], "mail": "moved@fabrikam.com", "otherMails": ["cameron@fabrikam.com"]},
            ]))
            changes.append(change)
        new = snap.with_delta([{"value": changes}])
        engine.update(new)
        fresh = TrustEngine(new, cache_size=0)
        for address in [*probes, *probe_addresses(new)]:
            assert fresh.resolve(address) == engine.resolve(address)
