"""mtotrust.testing: SnapshotBuilder, the assertion helpers and the hypothesis strategies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import Identity, MailAuth, Policy, Snapshot, Trust, TrustEngine, parse_identity
from mtotrust._builder import ext_upn, external_object, guest_object, native_object, synced_member_object
from mtotrust._errors import IdentityError
from mtotrust._graph import UsersPage
from mtotrust.testing import (
    SnapshotBuilder,
    assert_allowed,
    assert_inside,
    assert_policy_sound,
    assert_rights,
    assert_tagged,
    assert_trust,
    assertions,
    strategies,
)
from mtotrust.testing.invariants import INVARIANTS, by_name

pytest_plugins = ["pytester"]

LABELS = Policy.from_data({"labels": {"Confidential": {"internal": "Co-Author", "mto_member": "Viewer"}}})


@pytest.fixture(name="engine")
def _engine() -> TrustEngine:
    return TrustEngine(Snapshot.sample(), LABELS)


class TestSnapshotBuilder:
    """SnapshotBuilder writes real Graph JSON, and each kind of object resolves to the trust it deserves."""

    def test_issue_example(self) -> None:
        """The one-liner of the issue builds a snapshot with an MTO member."""
        snap = SnapshotBuilder().tenant("litware", state="active").synced_member("li@litware.com").build()
        assert TrustEngine(snap).resolve("li@litware.com").trust == Trust.MTO_MEMBER

    def test_every_kind(self) -> None:
        """Each builder call gives the trust its kind of object deserves."""
        b = (SnapshotBuilder().tenant("litware", partner=True).synced_member("li@litware.com")
             .guest("gus@litware.com").synced_member("off@litware.com", enabled=False)
             .synced_member("eve@litware.com", user_type=None)
             .tenant("tailspin", state="pending").synced_member("tom@tailspin.com")
             .tenant("wingtip", state=None).synced_member("wy@wingtip.com")
             .tenant("fourth", partner=False).synced_member("fo@fourth.com")
             .tenant("adatum", in_mto=False).synced_member("ana@adatum.com")
             .member("megan@contoso.com").shared_mailbox("sales@contoso.com"))
        engine = TrustEngine(b.build())
        expected = {"li@litware.com": "mto_member", "gus@litware.com": "guest", "off@litware.com": "external",
                    "eve@litware.com": "guest", "tom@tailspin.com": "guest", "wy@wingtip.com": "guest",
                    "fo@fourth.com": "guest", "ana@adatum.com": "guest", "megan@contoso.com": "internal",
                    "sales@contoso.com": "internal", "li_litware.com#EXT#@contoso.onmicrosoft.com": "mto_member"}
        assert {a: engine.resolve(a).trust.value for a in expected} == expected

    def test_tenant_ids(self) -> None:
        """Tenant ids are stable per name, and a given tenant id is checked by the resolver."""
        b = SnapshotBuilder().tenant("litware").synced_member("li@litware.com")
        tid = b.tenant_id("litware")
        assert tid == SnapshotBuilder().tenant("litware").tenant_id("litware")
        engine = TrustEngine(b.build())
        assert engine.resolve(Identity("li@litware.com", tid)).trust == Trust.MTO_MEMBER
        assert engine.resolve(Identity("li@litware.com", b.local_tenant_id)).trust == Trust.UNTRUSTED

    def test_write_round_trips(self, tmp_path: Path) -> None:
        """write() produces a snapshot folder that Snapshot.load reads like the in-memory build."""
        b = (SnapshotBuilder().tenant("litware").synced_member("li@litware.com")
             .delta(id="gone", **{"@removed": {"reason": "deleted"}}))
        folder = b.write(tmp_path / "snap")
        assert sorted(p.name for p in folder.iterdir()) == ["delta", "domains.json", "mto.json",
                                                            "organization.json", "partners.json", "users"]
        page = json.loads((folder / "users" / "0001.json").read_text(encoding="utf-8"))
        UsersPage.model_validate(page)
        loaded = Snapshot.load(folder)
        assert set(loaded.addresses()) == set(b.build().addresses())

    def test_documents_are_copies(self) -> None:
        """Mutating returned documents does not change the builder."""
        b = SnapshotBuilder()
        b.documents()["mto"]["value"].clear()
        assert b.documents()["mto"]["value"]


HOST = "contoso.onmicrosoft.com"


class TestGraphShapes:
    """The one builder of Graph user shapes: exact objects, omitted fields, and SnapshotBuilder built on it."""

    def test_synced_member(self) -> None:
        """A cross-tenant-synced member: Member, creationType null, #EXT# UPN, federated ExternalAzureAD identity."""
        assert synced_member_object("u1", "li.wu@litware.com", host=HOST, display_name="Li Wu") == {
            "id": "u1", "displayName": "Li Wu", "userPrincipalName": "li.wu_litware.com#EXT#@contoso.onmicrosoft.com",
            "mail": "li.wu@litware.com", "otherMails": [], "proxyAddresses": ["SMTP:li.wu@litware.com"],
            "userType": "Member", "creationType": None, "accountEnabled": True,
            "identities": [
                {"signInType": "federated", "issuer": "ExternalAzureAD", "issuerAssignedId": None},
                {"signInType": "userPrincipalName", "issuer": HOST,
                 "issuerAssignedId": "li.wu_litware.com#EXT#@contoso.onmicrosoft.com"},
            ],
        }

    def test_native_and_guest(self) -> None:
        """A native member has only the UPN identity; a guest is Guest and Invitation with the synced shape."""
        assert native_object("u2", "megan@contoso.com", host=HOST) == {
            "id": "u2", "userPrincipalName": "megan@contoso.com", "mail": "megan@contoso.com", "otherMails": [],
            "proxyAddresses": ["SMTP:megan@contoso.com"], "userType": "Member", "creationType": None,
            "accountEnabled": True,
            "identities": [{"signInType": "userPrincipalName", "issuer": HOST,
                            "issuerAssignedId": "megan@contoso.com"}],
        }
        guest = guest_object("u3", "gus@litware.com", host=HOST)
        synced = synced_member_object("u3", "gus@litware.com", host=HOST)
        assert (guest["userType"], guest["creationType"]) == ("Guest", "Invitation")
        assert {k: v for k, v in guest.items() if k not in ("userType", "creationType")} == {
            k: v for k, v in synced.items() if k not in ("userType", "creationType")}

    def test_omitted_and_null_fields(self) -> None:
        """``...`` leaves a field out, ``None`` writes null; the key order is fixed."""
        user = synced_member_object("u4", "eve@litware.com", host=HOST, user_type=..., enabled=None)
        assert "userType" not in user
        assert user["accountEnabled"] is None
        assert list(native_object("u5", "a@contoso.com", host=HOST, display_name="A", external_state=None)) == [
            "id", "displayName", "userPrincipalName", "mail", "otherMails", "proxyAddresses", "userType",
            "creationType", "accountEnabled", "externalUserState", "identities"]

    def test_external_identities(self) -> None:
        """The federated identity follows the issuer: a one-time-passcode guest's names its address; none unredeemed."""
        otp = external_object("u6", "x@gmail.com", host=HOST, user_type="Guest", creation_type="Invitation",
                              issuer="mail")
        assert otp["identities"][0] == {"signInType": "federated", "issuer": "mail", "issuerAssignedId": "x@gmail.com"}
        pending = external_object("u7", "y@gmail.com", host=HOST, user_type="Guest", creation_type="Invitation",
                                  external_state="PendingAcceptance", issuer=None)
        assert [i["signInType"] for i in pending["identities"]] == ["userPrincipalName"]
        moved = synced_member_object("u8", "kim@fabrikam.com", host=HOST, home="kim@litware.com")
        assert moved["userPrincipalName"] == ext_upn("kim@litware.com", HOST) == "kim_litware.com#EXT#@" + HOST
        assert moved["mail"] == "kim@fabrikam.com"

    def test_snapshot_builder_uses_the_shapes(self) -> None:
        """SnapshotBuilder's users are the shapes, with a display name and a stable id, and resolve as their kind."""
        b = (SnapshotBuilder().tenant("litware").synced_member("li@litware.com").guest("gus@litware.com")
             .member("megan@contoso.com"))
        users = b.documents()["users"][0]["value"]
        assert users == [synced_member_object(users[0]["id"], "li@litware.com", host=HOST, display_name="Li"),
                         guest_object(users[1]["id"], "gus@litware.com", host=HOST, display_name="Gus"),
                         native_object(users[2]["id"], "megan@contoso.com", host=HOST, display_name="Megan")]
        engine = TrustEngine(SnapshotBuilder().tenant("litware").user(
            **synced_member_object("u9", "li@litware.com", host=HOST)).build())
        assert engine.resolve("li@litware.com").trust == Trust.MTO_MEMBER


class TestAssertions:
    """Assertion helpers pass silently and fail with the explanation."""

    def test_assert_trust(self, engine: TrustEngine) -> None:
        """assert_trust returns the resolution, or fails naming both trusts and the reasons."""
        assert assert_trust(engine, "cameron@fabrikam.com", Trust.MTO_MEMBER).user is not None
        with pytest.raises(AssertionError) as info:
            assert_trust(engine, "nora@northwindtraders.com", "mto_member")
        message = str(info.value)
        assert "expected 'nora@northwindtraders.com' to resolve to mto_member, but it is guest" in message
        assert "tenant_removed" in message

    def test_assert_trust_tenant_id(self, engine: TrustEngine) -> None:
        """tenant_id= asks as an app that knows the home tenant."""
        assert_trust(engine, "cameron@fabrikam.com", "untrusted", tenant_id="44444444-4444-4444-8444-444444444444")

    def test_assert_tagged(self, engine: TrustEngine) -> None:
        """assert_tagged checks both ways and explains the mail decision."""
        assert_tagged(engine, "cameron@fabrikam.com")
        assert_tagged(engine, "cameron@fabrikam.com", MailAuth(dmarc="pass", header_from="fabrikam.com"),
                      tagged=False)
        with pytest.raises(AssertionError, match="unauthenticated_capped"):
            assert_tagged(engine, "cameron@fabrikam.com", tagged=False)

    def test_assert_rights(self, engine: TrustEngine) -> None:
        """assert_rights takes a level name or rights, and lists missing and extra rights."""
        assert_rights(engine, "cameron@fabrikam.com", "Confidential", "Viewer")
        assert_rights(engine, "pat@fabrikam.com", "Confidential", [])
        with pytest.raises(AssertionError, match=r"missing rights .*EDIT.*unexpected rights none"):
            assert_rights(engine, "cameron@fabrikam.com", "Confidential", "Co-Author")

    def test_assert_allowed_and_inside(self, engine: TrustEngine) -> None:
        """Teams and DLP helpers check both ways."""
        assert_allowed(engine, "cameron@fabrikam.com", "presence")
        assert_allowed(engine, "pat@fabrikam.com", "presence", allowed=False)
        assert_inside(engine, "cameron@fabrikam.com")
        with pytest.raises(AssertionError, match="NotInOrganization"):
            assert_inside(engine, ["pat@fabrikam.com"])

    def test_failure_traceback_hides_the_helpers(self, pytester: pytest.Pytester) -> None:
        """A failing helper's traceback ends at the test's line, without the helper's own source."""
        pytester.makepyfile("""
            import pytest
            from mtotrust.testing import assert_allowed, assert_inside, assert_rights, assert_tagged, assert_trust

            def test_trust(trust_engine):
                assert_trust(trust_engine, "nora@northwindtraders.com", "mto_member")

            def test_tagged(trust_engine):
                assert_tagged(trust_engine, "cameron@fabrikam.com", tagged=False)

            @pytest.mark.mtotrust(policy={"labels": {"C": {"mto_member": "Viewer"}}})
            def test_rights(trust_engine):
                assert_rights(trust_engine, "cameron@fabrikam.com", "C", "Co-Owner")

            def test_allowed(trust_engine):
                assert_allowed(trust_engine, "pat@fabrikam.com", "presence")

            def test_inside(trust_engine):
                assert_inside(trust_engine, ["pat@fabrikam.com"])
            """)
        result = pytester.runpytest("-p", "no:cacheprovider", "--tb=long")
        result.assert_outcomes(failed=5)
        result.stdout.fnmatch_lines(['>       assert_trust(trust_engine, "nora@northwindtraders.com", "mto_member")',
                                     "E       AssertionError: expected 'nora@northwindtraders.com' to resolve *"])
        helper_code = {line.strip() for line in Path(assertions.__file__).read_text(encoding="utf-8").splitlines()
                       if line.startswith("    ") and "(" in line}
        shown_code = {line.lstrip(" >").strip() for line in result.outlines if line.startswith((" ", ">"))}
        assert ([], []) == ([line for line in result.outlines if "assertions.py" in line],
                            sorted(shown_code & helper_code))

    def test_assert_policy_sound(self) -> None:
        """assert_policy_sound fails with the report, and ignore= leaves invariants out."""
        with pytest.raises(AssertionError, match="FAIL guest_outside"):
            assert_policy_sound(Policy.from_data({"dlp": {"inside_at": "guest"}}))
        report = assert_policy_sound(Policy.from_data({"dlp": {"inside_at": "guest"}}),
                                     ignore=["guest_outside", "inactive_tenant_outside"])
        assert "guest_outside" not in report.checked
        with pytest.raises(KeyError, match="no invariant named 'nope'"):
            assert_policy_sound(ignore=["nope"])

    def test_catalogue(self) -> None:
        """Every invariant has a unique snake_case name and a summary."""
        names = [i.name for i in INVARIANTS]
        assert len(names) == len(set(names))
        assert all(n.islower() and " " not in n and i.summary for n, i in zip(names, INVARIANTS, strict=True))
        assert by_name("guest_outside").name == "guest_outside"


class TestStrategies:
    """The strategies generate what they promise."""

    @given(strategies.addresses())
    def test_addresses_are_valid(self, address: str) -> None:
        """Every generated address parses."""
        parse_identity(address)

    @given(strategies.hostile_addresses())
    def test_hostile_addresses_are_rejected(self, address: str) -> None:
        """Every hostile address is rejected by the parser and untrusted by the engine."""
        with pytest.raises(IdentityError):
            parse_identity(address)
        assert TrustEngine(_SAMPLE).resolve(address).trust == Trust.UNTRUSTED

    @given(strategies.ext_upns())
    def test_ext_upns_decode(self, upn: str) -> None:
        """#EXT# names at a local domain decode without error."""
        assert TrustEngine(_SAMPLE).resolve(upn).reasons[0] == "ext_upn_decoded"

    @given(strategies.idn_addresses())
    def test_idn(self, address: str) -> None:
        """IDN addresses normalise to A-label domains."""
        assert parse_identity(address).address.rpartition("@")[2].isascii()

    @given(strategies.confusable_domains("fabrikam.com"))
    def test_confusables_untrusted(self, domain: str) -> None:
        """A look-alike of an MTO domain is untrusted (or is the domain itself)."""
        resolution = TrustEngine(_SAMPLE).resolve(f"cameron@{domain}")
        assert domain == "fabrikam.com" or resolution.trust == Trust.UNTRUSTED

    @given(st.lists(strategies.graph_users(), max_size=5, unique_by=lambda u: u["id"]), strategies.mto_tenants())
    def test_graph_users_and_tenants_load(self, users: list[dict[str, object]],
                                          tenants: list[dict[str, object]]) -> None:
        """Generated Graph objects and MTO rows are accepted by the snapshot loader."""
        b = SnapshotBuilder()
        docs = b.documents()
        snap = Snapshot.from_documents(organization=docs["organization"], mto={"value": tenants},
                                       domains=docs["domains"], users=[{"value": users}])
        assert len(snap.users) == len(users)

    @given(strategies.snapshots(), st.data())
    def test_snapshots_never_raise(self, snapshot: Snapshot, data: st.DataObject) -> None:
        """Every app answers for every generated identity on every generated snapshot."""
        engine = TrustEngine(snapshot, data.draw(strategies.policies()))
        identity = data.draw(strategies.identities(snapshot))
        engine.mail(identity, data.draw(strategies.auth_results_headers()))
        engine.mail(identity, data.draw(strategies.mail_auths()))
        engine.dlp([identity])
        engine.teams(identity, "chat")

    @given(strategies.policies(sane=True))
    def test_sane_policies_keep_guests_out(self, policy: Policy) -> None:
        """Sane policies keep guests tagged and outside."""
        assert Trust(policy.mail.untagged_at) > Trust.GUEST
        assert Trust(policy.dlp.inside_at) > Trust.GUEST


_SAMPLE = Snapshot.sample()
