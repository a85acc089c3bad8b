"""The core fast paths of issue 11, each pinned to its readable path (no timing here: see ``benchmarks/run.py``).

- :func:`~mtotrust._model.make_resolution` builds exactly what ``Resolution(...)`` builds;
- the engine's per-domain miss answers for plain ASCII addresses (``_State.plain_miss``) answer like
  :func:`~mtotrust._resolve.resolve`, for any text at a domain whose miss answer is known;
- the answers kept for indexed addresses equal the resolver's and share their strings and reasons;
- ``Policy.fingerprint``, ``block_entries`` and ``trusted_authserv_ids`` read what pydantic's private attributes hold.
"""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import HOST, LOCAL_DOMAINS, snapshots

from mtotrust import Policy, Resolution, Snapshot, Trust, TrustEngine
from mtotrust._model import DirectoryUser, make_resolution
from mtotrust._resolve import resolve
from mtotrust.testing.strategies import policies

SMALL = settings(max_examples=int(__import__("os").environ.get("MTOTRUST_PROPERTY_EXAMPLES", "40")))

_texts = st.text(max_size=12)
_optional_texts = st.none() | _texts
_users = st.none() | st.builds(DirectoryUser, id=_texts, mail=_optional_texts)
# Local parts near the edge of the plain path: atext, dots (leading, trailing, doubled), '@', '#EXT#', blanks,
# upper case, non-ASCII, and over-long ones (the 320-character limit).
_local_parts = st.one_of(
    st.text(st.sampled_from("abcXYZ09.!#$%&'*+/=?^_`{|}~-@\" \t\u00e9"), max_size=16),
    st.sampled_from(["a#ext#", "ann_fabrikam.com#EXT#", "x" * 320, "a" * 64, ".a", "a.", "a..b", ""]),
)
_DOMAINS = (*LOCAL_DOMAINS, HOST, "fabrikam.com", "litware.com", "example.org", "unknown.example",
            "xn--bcher-kva.example", "fabrikarn.com")


class TestMakeResolution:
    @given(_texts, st.sampled_from(list(Trust)), st.lists(_texts, max_size=3).map(tuple), _optional_texts, _users,
           _optional_texts, _optional_texts, _texts, _texts)
    def test_equals_the_attrs_init(self, identity: str, trust: Trust, reasons: tuple[str, ...], address: str | None,
                                   user: DirectoryUser | None, home: str | None, tenant_id: str | None,
                                   snapshot_id: str, fingerprint: str) -> None:
        """Every field, equality and hash are those of Resolution(...) with the same arguments."""
        expected = Resolution(identity, trust, reasons, address, user, home, tenant_id, snapshot_id, fingerprint)
        actual = make_resolution(identity, trust, reasons, address, user, home, tenant_id, snapshot_id, fingerprint)
        assert attrs.asdict(expected, recurse=False) == attrs.asdict(actual, recurse=False)
        assert expected == actual
        assert hash(expected) == hash(actual)
        assert type(actual) is Resolution


class TestPlainMisses:
    @given(snapshots(), st.lists(st.tuples(_local_parts, st.sampled_from(_DOMAINS)), min_size=1, max_size=8),
           st.sampled_from([Policy.default(), Policy.from_data({"overrides": {"block": ["nobody@fabrikam.com",
                                                                                         "*.example"]}})]))
    @SMALL
    def test_answer_like_the_resolver(self, snap: Snapshot, pairs: list[tuple[str, str]], policy: Policy) -> None:
        """After one miss per domain is learnt, any text at that domain resolves as resolve() does, twice over."""
        engine = TrustEngine(snap, policy, cache_size=0)
        for domain in _DOMAINS:
            engine.resolve(f"nobody.learnt@{domain}")
        for local, domain in pairs:
            for text in (f"{local}@{domain}", f"{local}@{domain}".upper(), f" {local}@{domain}\t"):
                expected = resolve(snap, text, policy)
                assert expected == engine.resolve(text)
                assert expected == engine.resolve(text)

    @given(snapshots())
    @SMALL
    def test_after_a_delta(self, snap: Snapshot) -> None:
        """Miss answers carried into a state after update() are stamped with the new snapshot and see its users."""
        engine = TrustEngine(snap, cache_size=0)
        for domain in _DOMAINS:
            engine.resolve(f"nobody.learnt@{domain}")
        new = snap.with_delta([{"value": [{"id": "new1", "mail": "nobody.learnt@fabrikam.com",
                                           "userPrincipalName": "nobody.learnt_fabrikam.com#EXT#@" + HOST,
                                           "userType": "Member", "accountEnabled": True,
                                           "creationType": "Invitation"}]}])
        engine.update(new)
        for domain in _DOMAINS:
            for text in (f"nobody.learnt@{domain}", f"other.one@{domain}"):
                assert resolve(new, text) == engine.resolve(text)


class TestKeptAnswers:
    @given(snapshots(), policies())
    @SMALL
    def test_equal_the_resolver_and_share_their_parts(self, snap: Snapshot, policy: Policy) -> None:
        """Every indexed address answers as resolve() does; the kept answer's strings and reasons are shared."""
        engine = TrustEngine(snap, policy, cache_size=0)
        kept: dict[tuple[str, ...], tuple[str, ...]] = {}
        for address in sorted(snap.addresses()):
            expected = resolve(snap, address, policy)
            actual = engine.resolve(address)
            assert expected == actual
            assert engine.resolve(address) is actual  # kept: the second ask is the same object
            user = actual.user
            if user is not None and user.mail == actual.identity:
                assert actual.identity is user.mail
            if actual.address == actual.identity:
                assert actual.address is actual.identity
            if "blocked" not in actual.reasons:
                assert kept.setdefault(actual.reasons, actual.reasons) is actual.reasons


class TestPolicyReads:
    @given(policies())
    def test_fast_reads_equal_pydantic_private_attributes(self, policy: Policy) -> None:
        """The derived values read from the private dict are those pydantic's attribute access gives."""
        assert policy._fingerprint == policy.fingerprint  # the readable path it is pinned to
        assert policy._block_entries == policy.block_entries
        assert policy._authserv_ids == policy.trusted_authserv_ids
        copy = policy.model_copy()
        assert (copy.fingerprint, copy.block_entries) == (policy.fingerprint, policy.block_entries)
