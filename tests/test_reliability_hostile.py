"""Hostile input through every public entry point (issue 5): nothing crashes, nothing hangs, nothing fails open.

The corpus and the checks live in ``tests/hostile.py``; ``scripts/reliability.py`` runs the same ones and
prints the figures of ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import hostile as h
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtotrust import (
    Identity,
    IdentityError,
    MailAuth,
    Policy,
    PolicyError,
    Snapshot,
    SnapshotError,
    Trust,
    TrustEngine,
    parse_identity,
)

ENGINE = TrustEngine(h.SAMPLE, h.POLICY)
NOCACHE = TrustEngine(h.SAMPLE, h.POLICY, cache_size=0)


# -- the curated corpus ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", [ENGINE, NOCACHE], ids=["cached", "uncached"])
def test_identity_corpus_fails_closed_everywhere(engine: TrustEngine) -> None:
    """Control characters, CR/LF, NUL, lone surrogates, 100 KB strings, 64-label domains, #EXT# edge cases,
    look-alikes and wrong types: never above external, mail tagged, DLP NotInOrganization, no exception."""
    tally = h.run_identity_corpus(engine)
    assert tally.tried > 5000
    tally.assert_clean()


def test_corpus_covers_what_the_issue_lists() -> None:
    texts = [s for s in h.HOSTILE_STRINGS if isinstance(s, str)]
    assert any("\r\n" in s for s in texts)
    assert any("\x00" in s for s in texts)
    assert any(any("\ud800" <= c <= "\udfff" for c in s) for s in texts)
    assert any(len(s) >= 100_000 for s in texts)
    assert any(s.count(".") >= 64 for s in texts)
    assert any("#EXT##EXT#" in s for s in texts)
    assert any(s.startswith("cameronfabrikam") for s in texts)
    originals = {original for _, original, _ in h.CONFUSABLE_IDENTITIES}
    assert set(h.LOCAL_DOMAINS) | set(h.MTO_DOMAINS) <= originals
    # every local and MTO domain has at least one look-alike that UTS-39 calls confusable
    flagged = {original for _, original, e in h.CONFUSABLE_IDENTITIES if e == "confusable"}
    assert set(h.LOCAL_DOMAINS) | set(h.MTO_DOMAINS) <= flagged


_FIRST_OTHER_LABEL = [c for c in h.CONFUSABLE_IDENTITIES
                      if c[2] != "same" and c[0].split("@")[1].split(".")[0] != c[1].split(".")[0]][:1]
_HAND_PICKED = [("megan@cont\u043eso.com", "contoso.com", "confusable"),
                ("cameron@fabrikarn.com", "fabrikam.com", "confusable"),
                ("megan@\u0441\u043ent\u043e\u0455\u043e.com", "contoso.com", "confusable"),
                ("cameron@f\u0430brik\u0430m.com", "fabrikam.com", "confusable"),
                ("lee@litw\u0430re.com", "litware.com", "confusable"),
                ("megan@contoso.c\u043e.uk", "contoso.co.uk", "confusable")]


@pytest.mark.parametrize(("address", "original", "expectation"), [*_FIRST_OTHER_LABEL, *_HAND_PICKED])
def test_lookalike_sender_is_untrusted_and_tagged_even_when_authenticated(address: str, original: str,
                                                                         expectation: str) -> None:
    domain = address.partition("@")[2]
    resolution = ENGINE.resolve(address)
    if expectation == "confusable":
        assert resolution.trust is Trust.UNTRUSTED
        assert "confusable_domain" in resolution.reasons
    decision = ENGINE.mail(address, MailAuth(dmarc="pass", header_from=domain))
    assert decision.tag_external
    assert decision.trust <= Trust.EXTERNAL


@pytest.mark.parametrize(("text", "expected"), h.EXT_CASES)
def test_ext_upn_edge_cases(text: str, expected: Trust) -> None:
    assert ENGINE.resolve(text).trust is expected


def test_auth_corpus_never_authenticates_a_forgery() -> None:
    """Unknown methods, duplicate headers, comments, forged authserv-ids, RFC 8601 quoting, oversized and
    malformed values; genuine controls do authenticate, explicit failures for protected domains are spoofing."""
    tally = h.run_auth_corpus()
    assert tally.tried > 100
    tally.assert_clean()


def test_loaders_raise_their_documented_error(tmp_path: Path) -> None:
    """Malformed, truncated, wrong-typed, huge and deeply nested Graph pages, delta pages, snapshot folders and
    policies: ``SnapshotError`` / ``PolicyError`` with a bounded message, never another exception."""
    tally = h.check_loaders(tmp_path)
    assert tally.tried > 100
    tally.assert_clean()


def test_errors_name_the_file_the_path_and_the_value() -> None:
    docs = h.sample_documents()
    docs["users"][1]["value"][3]["accountEnabled"] = "yes"
    with pytest.raises(SnapshotError) as info:
        Snapshot.from_documents(**docs)
    assert info.value.file == "users[1]"
    assert info.value.path == "$.value[3].accountEnabled"
    assert info.value.value == "yes"
    assert "'yes'" in str(info.value)
    with pytest.raises(PolicyError) as perr:
        Policy.from_data({"dlp": {"inside_at": "root"}})
    assert perr.value.key == "dlp.inside_at"
    assert "'root'" in str(perr.value)
    with pytest.raises(IdentityError) as ierr:
        parse_identity("megan@contoso.com\r\nBcc: x@evil.example")
    assert ierr.value.value == "megan@contoso.com\r\nBcc: x@evil.example"


def test_a_store_holding_a_lone_surrogate_saves_or_refuses_with_snapshot_error(tmp_path: Path) -> None:
    """Graph JSON may escape a lone surrogate (``"\\ud800"``); the snapshot accepts it, so saving it must not
    raise an undocumented ``UnicodeEncodeError``."""
    docs = h.sample_documents()
    docs["users"][0]["value"][0]["mail"] = "\ud800x@contoso.com"
    snap = Snapshot.from_documents(**docs)
    try:
        snap.save(tmp_path / "s.sqlite")
    except SnapshotError:
        return
    assert Snapshot.load(tmp_path / "s.sqlite", verify=True).users.keys() == snap.users.keys()


# -- generated input -------------------------------------------------------------------------------------------

def _fails_closed(identity: object) -> None:
    cap = h.hostile_cap(identity)
    for auth in (None, MailAuth(dmarc="pass", header_from=h._domain_part(identity))):
        decision = h.bounded(ENGINE.mail, identity, auth)
        assert decision.trust <= h.bounded(ENGINE.resolve, identity).trust or decision.trust <= Trust.EXTERNAL
        if cap <= Trust.EXTERNAL:
            assert decision.tag_external
    dlp = h.bounded(ENGINE.dlp, [identity])
    if cap <= Trust.EXTERNAL:
        assert dlp.access_scope == "NotInOrganization"


@settings(max_examples=300)
@given(h.hostile_text())
def test_any_text_resolves_without_raising_and_agrees_with_the_strict_parser(text: str) -> None:
    resolution = h.bounded(ENGINE.resolve, text)
    try:
        identity = parse_identity(text)
    except IdentityError:
        assert resolution.trust is Trust.UNTRUSTED
        assert "invalid_identity" in resolution.reasons
        _fails_closed(text)
        return
    domain = identity.address.rpartition("@")[2]
    if domain not in h.KNOWN_DOMAINS:  # an unknown domain can never be above external
        assert resolution.trust <= Trust.EXTERNAL
    _fails_closed(text)


@settings(max_examples=300)
@given(h.hostile_address())
def test_spliced_addresses_fail_closed(text: str) -> None:
    resolution = h.bounded(ENGINE.resolve, text)
    if resolution.trust > Trust.EXTERNAL:  # only a valid address at a known domain may get there
        assert resolution.address is not None
        assert resolution.address.rpartition("@")[2] in h.KNOWN_DOMAINS
    _fails_closed(text)


@settings(max_examples=300)
@given(h.confusable_address())
def test_generated_lookalikes_are_never_untagged(address: str) -> None:
    domain = address.partition("@")[2]
    expectation = h.confusable_expectation(domain, "")
    resolution = ENGINE.resolve(address)
    if expectation == "confusable":
        assert resolution.trust is Trust.UNTRUSTED
        assert "confusable_domain" in resolution.reasons
    if expectation != "same":
        assert resolution.trust <= Trust.EXTERNAL
        assert ENGINE.mail(address, MailAuth(dmarc="pass", header_from=domain)).tag_external
        assert not ENGINE.dlp([address]).inside_organization


_TRUSTED_ID = re.compile(r'\s*(?:\([^)]*\)\s*)*"?mx\.contoso\.com"?(?:[\s;(]|$)', re.IGNORECASE)


@settings(max_examples=300)
@given(st.one_of(h.auth_header(), st.lists(h.auth_header(), max_size=3)))
def test_generated_auth_headers_never_raise_and_never_authenticate_a_bad_sender(auth: str | list[str]) -> None:
    for sender in (h.MTO_SENDER, "cameron@fabrik\u0430m.com", "x@evil.example"):
        decision = h.bounded(ENGINE.mail, sender, auth)
        if sender != h.MTO_SENDER:
            assert decision.tag_external
            assert decision.trust <= Trust.EXTERNAL
        elif decision.authenticated:  # then the topmost counting header really passed for fabrikam.com
            # the topmost header whose authserv-id is exactly mx.contoso.com (not mx.contoso.com.evil)
            top = next(v for v in ([auth] if isinstance(auth, str) else auth) if _TRUSTED_ID.match(v))
            assert "pass" in top
            assert "fabrikam.com" in top


@settings(max_examples=150)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["value", "id", "mail", "accountEnabled", "userType", "otherMails",
                                         "@removed", "tenantId", "domainName", "verifiedDomains", "name"]),
                        inner, max_size=5), max_leaves=30),
       st.sampled_from(["organization", "mto", "domains", "partners", "users", "delta"]))
def test_arbitrary_json_in_any_document_loads_or_raises_snapshot_error(doc: object, role: str) -> None:
    kwargs = h.sample_documents()
    kwargs[role] = [doc] if role in ("users", "delta") else doc
    try:
        snap = h.bounded(Snapshot.from_documents, **kwargs)
    except SnapshotError:
        return
    assert TrustEngine(snap).mail("x@evil.example").tag_external


@settings(max_examples=150)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["version", "mail", "dlp", "teams", "labels", "overrides", "snapshot",
                                         "untagged_at", "inside_at", "block", "max_age", "chat", "internal"]),
                        inner, max_size=5), max_leaves=30))
def test_arbitrary_policy_data_loads_or_raises_policy_error(data: object) -> None:
    with contextlib.suppress(PolicyError):
        h.bounded(Policy.from_data, data)


def test_identity_objects_with_hostile_tenant_ids() -> None:
    assert ENGINE.resolve(Identity("cameron@fabrikam.com", "22222222-2222-4222-8222-222222222222\x00")).trust \
        is Trust.UNTRUSTED
    assert ENGINE.resolve(Identity("megan@contoso.com", "22222222-2222-4222-8222-222222222222")).trust \
        is Trust.UNTRUSTED
    assert not ENGINE.dlp([Identity("cameron@fabrikam.com", "x" * 100_000)]).inside_organization
