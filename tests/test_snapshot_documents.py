"""``Snapshot.with_documents`` (tenant-level documents replaced, users kept) and pages given as response bytes.

Both are what a sync builds on: every run fetches the organization, the MTO tenants and the partners anew and applies
the users delta on top of the stored users, and users pages arrive as HTTP response bodies. The readable reference
for each is the same data built from scratch with ``Snapshot.from_documents``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtotrust import Snapshot, SnapshotError, TrustEngine
from mtotrust.testing import SnapshotBuilder
from mtotrust.testing.strategies import snapshot_builders


def _rebuilt(docs: dict[str, Any], **replaced: Any) -> Snapshot:
    """The reference: every document as given, with the replaced ones, built from scratch."""
    merged = {**docs, **replaced}
    return Snapshot.from_documents(organization=merged["organization"], mto=merged["mto"],
                                   domains=merged["domains"], partners=merged["partners"], users=merged["users"],
                                   delta=merged["delta"])


def _answers(snap: Snapshot) -> dict[str, Any]:
    """Every resolution the snapshot gives for its own addresses (trust, reasons, user id)."""
    engine = TrustEngine(snap)
    return {a: (r.trust, r.reasons, r.user.id if r.user else None)
            for a in sorted(snap.addresses()) for r in [engine.resolve(a)]}


def _fabrikam() -> SnapshotBuilder:
    return (SnapshotBuilder().member("megan@contoso.com").tenant("fabrikam", state="active")
            .synced_member("cameron@fabrikam.com").tenant("adatum", state="pending").synced_member("ann@adatum.com"))


class TestWithDocuments:
    """A snapshot with some tenant-level documents replaced is the snapshot those documents describe."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(builder=snapshot_builders(), other=snapshot_builders(), pick=st.sets(
        st.sampled_from(("organization", "mto", "domains", "partners")), min_size=1))
    def test_same_as_rebuilt(self, builder: SnapshotBuilder, other: SnapshotBuilder, pick: set[str]) -> None:
        """Replacing any documents gives the id and the resolutions of building everything from scratch."""
        docs, others = builder.documents(), other.documents()
        replaced = {name: others[name] for name in pick}
        got = builder.build().with_documents(**replaced)
        expected = _rebuilt(docs, **replaced)
        assert expected.id == got.id
        assert _answers(expected) == _answers(got)
        assert dict(expected.users) == dict(got.users)

    def test_after_a_delta(self) -> None:
        """On a snapshot that carries a delta overlay, the replaced result still holds the delta's changes."""
        builder = _fabrikam()
        docs = builder.documents()
        gone = docs["users"][0]["value"][1]["id"]
        delta = [{"value": [{"id": gone, "@removed": {"reason": "deleted"}}]}]
        mto = {"value": [{**t, "state": "removed"} for t in docs["mto"]["value"]]}
        got = builder.build().with_delta(delta).with_documents(mto=mto)
        expected = _rebuilt(docs, mto=mto, delta=delta)
        assert expected.id == got.id
        assert _answers(expected) == _answers(got)

    def test_new_local_domain_reindexes(self) -> None:
        """A new verified domain re-indexes the users: an ``#EXT#`` name at it now resolves by its home address."""
        builder = SnapshotBuilder(domains=("contoso.com",)).tenant("fabrikam")
        builder.user(id="u1", userPrincipalName="cam_fabrikam.com#EXT#@contoso.new", userType="Member",
                     accountEnabled=True, creationType="Invitation")
        docs = builder.documents()
        organization = json.loads(json.dumps(docs["organization"]))
        organization["value"][0]["verifiedDomains"].append({"name": "contoso.new"})
        before = builder.build()
        got = before.with_documents(organization=organization)
        assert before.lookup("cam@fabrikam.com") == ()
        assert [u.id for u in got.lookup("cam@fabrikam.com")] == ["u1"]
        assert _rebuilt(docs, organization=organization).id == got.id

    def test_keeps_taken_at_and_metadata_unless_given(self, tmp_path: Any) -> None:
        """``taken_at`` and the store's metadata carry over; a given ``taken_at`` is the result's."""
        store = tmp_path / "s.sqlite"
        _fabrikam().build().save(store, metadata={"sync.delta_link": "x"})
        loaded = Snapshot.load(store)
        same = loaded.with_documents(partners={"value": []})
        assert (loaded.taken_at, {"sync.delta_link": "x"}) == (same.taken_at, dict(same.metadata))
        earlier = loaded.taken_at.replace(year=2020)
        assert earlier == loaded.with_documents(partners={"value": []}, taken_at=earlier).taken_at

    @pytest.mark.parametrize(("name", "doc", "where"), [
        ("mto", {"value": [{"tenantId": 7}]}, "mto.json"),
        ("organization", {"value": []}, "organization.json"),
        ("domains", {"value": [{"domainName": "a.com", "tenantId": "x"}, {"domainName": "a.com", "tenantId": "y"}]},
         "domains.json"),
        ("partners", {"rows": []}, "partners.json"),
    ])
    def test_bad_document_names_it(self, name: str, doc: Any, where: str) -> None:
        """A document that is not valid is a SnapshotError naming the document, as from_documents does."""
        with pytest.raises(SnapshotError, match=where):
            _fabrikam().build().with_documents(**{name: doc})


class TestBytesPages:
    """A users or delta page given as a response body's bytes reads exactly as its decoded JSON does."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(builder=snapshot_builders())
    def test_same_as_decoded(self, builder: SnapshotBuilder) -> None:
        """The same pages as bytes and as decoded JSON give the same id and resolutions, users and delta alike."""
        docs = builder.documents()
        as_bytes = [json.dumps(page).encode() for page in docs["users"]]
        decoded = _rebuilt(docs)
        got = _rebuilt(docs, users=[], delta=as_bytes)
        assert decoded.id == got.id == _rebuilt(docs, users=as_bytes).id
        assert _answers(decoded) == _answers(got)

    def test_bad_bytes_name_the_page(self) -> None:
        """A page whose bytes are not a users page is a SnapshotError naming the page, as a bad file is."""
        docs = _fabrikam().documents()
        with pytest.raises(SnapshotError, match=r"users\[0\]"):
            _rebuilt(docs, users=[b'{"value": [{"id": 5}]}'])
        with pytest.raises(SnapshotError, match=r"delta\[0\]"):
            _rebuilt(docs, delta=[b'{"value": ['])


class TestDigestAfterDeltas:
    """A snapshot changed by deltas saves a store that loads back with its id (the users digest stays in range)."""

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(builder=snapshot_builders(max_users=3), cut=st.integers(0, 20))
    def test_save_after_deltas(self, tmp_path_factory: pytest.TempPathFactory, builder: SnapshotBuilder,
                               cut: int) -> None:
        """A loaded store (which knows its digest) with users removed one delta at a time (the digest drops by
        each, below zero before it wraps) then saved keeps the id on load."""
        store = tmp_path_factory.mktemp("digest") / "s.sqlite"
        builder.build().save(store)
        snap = Snapshot.load(store)
        for uid in sorted(snap.users)[:cut]:
            snap = snap.with_delta([{"value": [{"id": uid, "@removed": {"reason": "deleted"}}]}])
        snap.save(store)
        assert snap.id == Snapshot.load(store).id


class TestFromUsers:
    """``Snapshot.from_users``: the tenant documents and directory records a caller converted itself."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(builder=snapshot_builders())
    def test_same_as_from_documents(self, builder: SnapshotBuilder) -> None:
        """The records of a snapshot's users, given back with its documents, give the same id and resolutions."""
        docs = builder.documents()
        expected = _rebuilt(docs)
        got = Snapshot.from_users(organization=docs["organization"], mto=docs["mto"], domains=docs["domains"],
                                  partners=docs["partners"], users=list(expected.users.values()))
        assert expected.id == got.id
        assert _answers(expected) == _answers(got)

    def test_bad_users(self) -> None:
        """An id given twice is a SnapshotError naming it; a user that is no DirectoryUser is a TypeError."""
        docs = _fabrikam().documents()
        users = list(_rebuilt(docs).users.values())
        kwargs = {"organization": docs["organization"], "mto": docs["mto"], "domains": docs["domains"]}
        with pytest.raises(SnapshotError, match=repr(users[0].id)):
            Snapshot.from_users(**kwargs, users=[users[0], users[0]])
        with pytest.raises(TypeError, match=r"users\[1\] must be a DirectoryUser"):
            Snapshot.from_users(**kwargs, users=[users[0], {"id": "x"}])  # type: ignore[list-item]
