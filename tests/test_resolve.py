"""Tests for the resolution rules (docs/concepts.md): one test (or one small class) per rule."""



from __future__ import annotations

import pytest
from strategies import ACTIVE, DOMAINS, HOST, LITWARE, LOCAL, MINI, OUTSIDE, PENDING, build, native, synced

from mtotrust import Identity, Snapshot, Trust
from mtotrust._resolve import resolve

U, E, G, M, I = Trust.UNTRUSTED, Trust.EXTERNAL, Trust.GUEST, Trust.MTO_MEMBER, Trust.INTERNAL


@pytest.fixture(name="mini", scope="module")
def _mini():
    return Snapshot.load(MINI)


def trust(snapshot, identity):
    return resolve(snapshot, identity).trust


class TestMiniFixture:
    """The hand-written folder in tests/data/mini: one identity per special case, delta applied."""

    @pytest.mark.parametrize(("identity", "expected"), [
        ("megan@contoso.com", I),  # native member at a local domain
        ("megan@contoso.onmicrosoft.com", I),  # the same object through a secondary smtp: proxy
        ("sales@contoso.com", I),  # disabled shared mailbox at a local domain
        ("cameron@fabrikam.com", M),  # synced member of an active tenant
        ("cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com", M),  # its #EXT# UPN, decoded
        ("dana@fabrikam.com", E),  # disabled
        ("pat@fabrikam.com", G),  # userType Guest
        ("kim@fabrikam.com", G),  # UPN says Litware
        ("tara@tailspintoys.com", G),  # pending tenant
        ("lee@litware.com", G),  # partner policy false
        ("ana@adatum.com", G),  # tenant not in the MTO
        ("sam@fabrikam.com", E),  # foreign address on a native object
        ("jo@fabrikam.com", U),  # two objects
        ("nora@northwindtraders.com", E),  # removed by the delta: no object
        ("new.hire@fabrikam.com", M),  # added by the delta
        ("omar@fabrikam.com", M),  # same id twice in the delta: the last (enabled) wins
        ("someone@example.org", E),
        ("megan@c\u043entoso.com", U),
        ("not-an-address", U),
    ])
    def test_expected_trust(self, mini, identity, expected):
        """Each fixture identity resolves to the trust its special case calls for."""
        assert expected == trust(mini, identity)


class TestNormalisationRule:
    def test_blank_and_case_variants_resolve_alike(self, mini):
        """Blanks and case do not change the outcome or the normalised address."""
        plain, noisy = resolve(mini, "cameron@fabrikam.com"), resolve(mini, " \tCameron@FABRIKAM.com ")
        assert (plain.trust, plain.address, plain.user) == (noisy.trust, noisy.address, noisy.user)

    def test_unicode_domain_matches_a_label(self):
        """An object stored with the A-label matches an identity spelled in Unicode, and vice versa."""
        snap = build([synced("u1", "ann@xn--mnchen-3ya.de")],
                     domain_map={**DOMAINS, "münchen.de": ACTIVE})
        assert M == trust(snap, "ann@MÜNCHEN.de")
        assert "ann@xn--mnchen-3ya.de" == resolve(snap, "ann@münchen.de").address

    @pytest.mark.parametrize("text", ["", "megan", "a@b@contoso.com", "megan@contoso.com.", "megan＠contoso.com",
                                      '"megan"@contoso.com', "megan\r\n@contoso.com", "meg\u200ban@contoso.com"])
    def test_invalid_identity_is_untrusted(self, mini, text):
        """An invalid identity resolves to untrusted with the single reason invalid_identity, never raising."""
        result = resolve(mini, text)
        assert (U, ("invalid_identity",), None) == (result.trust, result.reasons, result.address)


class TestExtUpnRule:
    def test_decoded_at_local_domain(self, mini):
        """An #EXT# UPN at a local domain decodes to alias@homedomain and says so."""
        result = resolve(mini, "Cameron_Fabrikam.com#EXT#@contoso.onmicrosoft.com")
        assert "cameron@fabrikam.com" == result.address
        assert "ext_upn_decoded" in result.reasons
        assert ACTIVE == result.home_tenant_id

    def test_foreign_ext_is_ordinary_address(self):
        """An #EXT# name at a domain that is not local is an ordinary foreign address, not decoded."""
        upn = "cameron_fabrikam.com#EXT#@fabrikam.onmicrosoft.com"
        snap = build([synced("u1", "cameron@fabrikam.com")])
        result = resolve(snap, upn)
        assert "cameron_fabrikam.com#ext#@fabrikam.onmicrosoft.com" == result.address
        assert "ext_upn_decoded" not in result.reasons
        assert E == result.trust  # no object carries that literal address

    def test_two_unknown_homes_are_no_evidence(self):
        """A synced object at a domain no tenant owns: its #EXT# name names no home either, which proves nothing
        (neither agrees nor disagrees), and the unknown home caps it at guest."""
        result = resolve(build([synced("u1", "wendy@woodgrovebank.com")]), "wendy@woodgrovebank.com")
        assert Trust.GUEST == result.trust and "home_tenant_unknown" in result.reasons
        assert not {"home_evidence_agrees", "home_evidence_disagrees"} & set(result.reasons)

    @pytest.mark.parametrize("upn", ["#EXT#@contoso.onmicrosoft.com", "cameron#EXT#@contoso.onmicrosoft.com",
                                     "_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                                     "cameron_#EXT#@contoso.onmicrosoft.com",
                                     "a_fabrikam.com#EXT##EXT#@contoso.onmicrosoft.com"])
    def test_malformed_at_local_domain_is_invalid(self, mini, upn):
        """A malformed #EXT# name at a local domain is invalid_identity, not a local address."""
        result = resolve(mini, upn)
        assert (U, ("invalid_identity",)) == (result.trust, result.reasons)


class TestDomainRule:
    def test_subdomain_is_a_different_domain(self):
        """A subdomain of a known domain is unknown: its object-less address is external, never internal."""
        snap = build([native("u1", "megan@contoso.com")])
        assert E == trust(snap, "megan@mail.contoso.com")
        assert E == trust(snap, "x@eu.fabrikam.com")
        assert "domain_unknown" in resolve(snap, "megan@mail.contoso.com").reasons

    def test_parent_domain_is_a_different_domain(self):
        """The parent of a local domain is not local."""
        snap = build([], local_domains=("sales.contoso.com",), domain_map={})
        assert E == trust(snap, "megan@contoso.com")

    @pytest.mark.parametrize("lookalike", ["megan@c\u043entoso.com", "megan@c\u03bfntoso.com",
                                           "cameron@fabrikarn.com"])
    def test_confusable_unknown_domain_untrusted(self, lookalike):
        """An unknown domain whose skeleton equals a known one (Cyrillic, Greek, rn/m) is untrusted."""
        result = resolve(build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com")]),
                         lookalike)
        assert (U, "confusable_domain") == (result.trust, result.reasons[-1])

    def test_confusable_only_without_exact_match(self):
        """A domain that is known exactly is never called confusable, even if it looks like another."""
        snap = build([synced("u1", "ann@fabrikarn.com")], domain_map={**DOMAINS, "fabrikarn.com": ACTIVE})
        result = resolve(snap, "ann@fabrikarn.com")
        assert (M, False) == (result.trust, "confusable_domain" in result.reasons)

    def test_no_substring_matching(self):
        """A domain that merely contains a known one is just unknown."""
        result = resolve(build([]), "x@fabrikam.com.evil.example")
        assert (E, "domain_unknown") == (result.trust, result.reasons[0])

    def test_domain_of_local_tenant_that_is_not_verified(self):
        """A domains.json domain of the local tenant that organization.json does not verify is not internal."""
        snap = build([synced("u1", "x@contoso.net"), synced("u2", "g@contoso.net", userType="Guest")],
                     domain_map={**DOMAINS, "contoso.net": LOCAL})
        assert (G, G, E) == (trust(snap, "x@contoso.net"), trust(snap, "g@contoso.net"),
                             trust(snap, "nobody@contoso.net"))


class TestObjectRule:
    @pytest.mark.parametrize("field", ["mail", "otherMails", "proxy_smtp", "proxy_SMTP", "upn"])
    def test_every_address_field_matches(self, field):
        """mail, otherMails, smtp:/SMTP: proxies and the UPN all find the object."""
        user = synced("u1", "cameron@fabrikam.com", mail=None, proxyAddresses=[], otherMails=[])
        user["userPrincipalName"] = "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com"
        address = "alt@fabrikam.com"
        if field == "mail":
            user["mail"] = address
        elif field == "otherMails":
            user["otherMails"] = [address]
        elif field == "upn":
            address = "cameron@fabrikam.com"  # found through the decoded #EXT# UPN
        else:
            user["proxyAddresses"] = [f"{field[-4:]}:{address}"]
        result = resolve(build([user]), address)
        assert "u1" == (result.user.id if result.user else None)

    def test_other_proxy_kinds_do_not_match(self):
        """X500: and SIP: proxies are not mail addresses."""
        user = native("u1", "megan@contoso.com", proxyAddresses=["SIP:megan@fabrikam.com", "X500:megan@fabrikam.com"])
        assert resolve(build([user]), "megan@fabrikam.com").user is None

    def test_two_objects_are_ambiguous(self):
        """Two distinct objects carrying one address make it untrusted, whatever each would be alone."""
        snap = build([synced("u1", "jo@fabrikam.com"), native("u2", "jo@contoso.com", otherMails=["JO@fabrikam.com"])])
        result = resolve(snap, "jo@fabrikam.com")
        assert (U, "ambiguous_match", None) == (result.trust, result.reasons[-1], result.user)

    def test_one_object_with_address_twice_is_not_ambiguous(self):
        """An address on mail, proxy and otherMails of the same object is one match."""
        user = synced("u1", "cameron@fabrikam.com", otherMails=["cameron@fabrikam.com"])
        assert M == trust(build([user]), "cameron@fabrikam.com")

    def test_ambiguous_at_local_domain(self):
        """Ambiguity also makes a local-domain address untrusted."""
        snap = build([native("u1", "info@contoso.com"), native("u2", "x@contoso.com", otherMails=["info@contoso.com"])])
        assert U == trust(snap, "info@contoso.com")

    def test_no_object_is_external(self):
        """An MTO-domain address with no object is external (no_object)."""
        result = resolve(build([]), "nobody@fabrikam.com")
        assert (E, "no_object") == (result.trust, result.reasons[-1])


class TestExternalObjectRule:
    @pytest.mark.parametrize("signal", ["federated", "ext_upn", "invitation"])
    def test_each_signal_alone_suffices(self, signal):
        """A federated ExternalAzureAD identity, an #EXT# UPN or creationType Invitation alone makes it external."""
        user = synced("u1", "cameron@fabrikam.com", creationType=None, identities=[],
                      userPrincipalName="cameron@fabrikam.onmicrosoft.com")
        if signal == "federated":
            user["identities"] = [{"signInType": "federated", "issuer": "ExternalAzureAD"}]
        elif signal == "ext_upn":
            user["userPrincipalName"] = "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com"
        else:
            user["creationType"] = "Invitation"
        result = resolve(build([user]), "cameron@fabrikam.com")
        assert (M, True) == (result.trust, "object_external" in result.reasons)

    def test_federated_other_issuer_is_not_external(self):
        """A federated identity from another issuer (MicrosoftAccount) is no external-object signal on its own."""
        user = synced("u1", "cameron@fabrikam.com", creationType=None, userPrincipalName="c@contoso.com",
                      identities=[{"signInType": "federated", "issuer": "MicrosoftAccount"}])
        assert E == trust(build([user]), "cameron@fabrikam.com")

    def test_native_object_with_foreign_address_is_external(self):
        """A native local object carrying a foreign address proves nothing: external."""
        user = native("u1", "sam.native@contoso.com", otherMails=["sam@fabrikam.com"])
        result = resolve(build([user]), "sam@fabrikam.com")
        assert (E, True) == (result.trust, "object_not_external" in result.reasons)


class TestUserTypeRule:
    @pytest.mark.parametrize(("user_type", "expected", "reason"), [
        ("Member", M, "user_type_member"), ("Guest", G, "user_type_guest"), (..., G, "user_type_missing"),
        (None, G, "user_type_missing"), ("member", G, "user_type_not_member")])
    def test_user_type(self, user_type, expected, reason):
        """Only userType Member can be an MTO member; Guest, missing or anything else caps at guest."""
        result = resolve(build([synced("u1", "a@fabrikam.com", userType=user_type)]), "a@fabrikam.com")
        assert (expected, True) == (result.trust, reason in result.reasons)


class TestAccountEnabledRule:
    @pytest.mark.parametrize(("enabled", "expected", "reason"), [
        (True, M, "account_enabled"), (False, E, "account_disabled"), (..., E, "account_enabled_missing"),
        (None, E, "account_enabled_missing")])
    def test_account_enabled(self, enabled, expected, reason):
        """A disabled account, or one whose accountEnabled is missing (fail closed), is external."""
        result = resolve(build([synced("u1", "a@fabrikam.com", accountEnabled=enabled)]), "a@fabrikam.com")
        assert (expected, True) == (result.trust, reason in result.reasons)


class TestTenantStateRule:
    @pytest.mark.parametrize(("state", "expected", "reason"), [
        ("active", M, "tenant_active"), ("pending", G, "tenant_pending"), ("removed", G, "tenant_removed"),
        ("unknownFutureValue", G, "tenant_state_unknown"), (None, G, "tenant_state_unknown")])
    def test_state(self, state, expected, reason):
        """Only an active MTO tenant yields mto_member; pending, removed or unknown state caps at guest."""
        snap = build([synced("u1", "a@fabrikam.com")], states={LOCAL: "active", ACTIVE: state})
        result = resolve(snap, "a@fabrikam.com")
        assert (expected, True) == (result.trust, reason in result.reasons)

    def test_tenant_not_in_mto(self):
        """A known tenant missing from mto.json caps at guest even for a perfect synced member."""
        result = resolve(build([synced("u1", "ana@adatum.com")]), "ana@adatum.com")
        assert (G, True) == (result.trust, "tenant_not_in_mto" in result.reasons)

    def test_unknown_domain_home_tenant_unknown(self):
        """A perfect synced member whose domain maps to no tenant is a guest (home_tenant_unknown)."""
        result = resolve(build([synced("u1", "x@example.org")]), "x@example.org")
        assert (G, True) == (result.trust, "home_tenant_unknown" in result.reasons)


class TestPartnerPolicyRule:
    @pytest.mark.parametrize(("rows", "expected", "reason"), [
        ({LITWARE: False}, G, "partner_not_in_mto"), ({LITWARE: True}, M, "partner_in_mto"),
        ({LITWARE: None}, M, None), ({OUTSIDE: False}, M, None), (None, M, None)])
    def test_partner_policy(self, rows, expected, reason):
        """Only an explicit isInMultiTenantOrganization false blocks; true, null or no row leave it to mto.json."""
        result = resolve(build([synced("u1", "lee@litware.com")], partner_rows=rows), "lee@litware.com")
        partner_reasons = [r for r in result.reasons if r.startswith("partner_")]
        assert (expected, [reason] if reason else []) == (result.trust, partner_reasons)

    def test_partner_true_does_not_rescue_pending_tenant(self):
        """A partner row saying true cannot make a pending tenant's user an MTO member."""
        snap = build([synced("u1", "t@tailspintoys.com")], partner_rows={PENDING: True})
        assert G == trust(snap, "t@tailspintoys.com")


class TestHomeEvidenceRule:
    def test_agrees(self):
        """An #EXT# UPN naming the address's home tenant agrees."""
        result = resolve(build([synced("u1", "a@fabrikam.com")]), "a@fabrikam.com")
        assert "home_evidence_agrees" in result.reasons

    def test_disagrees_via_other_mails(self):
        """An object whose UPN names Litware, matched through another tenant's address in otherMails, is a guest."""
        user = synced("u1", "kim@litware.com", otherMails=["kim@fabrikam.com"])
        result = resolve(build([user]), "kim@fabrikam.com")
        assert (G, True) == (result.trust, "home_evidence_disagrees" in result.reasons)

    def test_other_domain_of_same_tenant_agrees(self):
        """A UPN naming another domain of the same tenant is the same home."""
        user = synced("u1", "a@fabrikam.com", userPrincipalName=f"a_fabrikam.onmicrosoft.com#EXT#@{HOST}")
        snap = build([user], domain_map={**DOMAINS, "fabrikam.onmicrosoft.com": ACTIVE})
        assert M == trust(snap, "a@fabrikam.com")

    def test_unknown_upn_home_disagrees(self):
        """A UPN naming a domain that maps to no tenant cannot vouch for the address's tenant."""
        user = synced("u1", "a@fabrikam.com", userPrincipalName=f"a_example.org#EXT#@{HOST}")
        assert G == trust(build([user]), "a@fabrikam.com")


class TestTenantIdRule:
    @pytest.mark.parametrize("tenant_id", [ACTIVE, ACTIVE.upper(), ACTIVE.title()])
    def test_match_case_insensitive(self, tenant_id):
        """A tenant id equal to the domain's home tenant, in any case, keeps mto_member."""
        result = resolve(build([synced("u1", "a@fabrikam.com")]), Identity("a@fabrikam.com", tenant_id))
        assert (M, True) == (result.trust, "tenant_id_verified" in result.reasons)

    def test_mismatch_untrusted(self):
        """A tenant id naming another tenant makes the identity untrusted."""
        result = resolve(build([synced("u1", "a@fabrikam.com")]), Identity("a@fabrikam.com", LITWARE))
        assert (U, True) == (result.trust, "tenant_id_mismatch" in result.reasons)

    def test_mismatch_without_object_untrusted(self):
        """The tenant id is checked even when no object exists (lowest trust wins)."""
        assert U == trust(build([]), Identity("x@fabrikam.com", LITWARE))

    def test_unverifiable_for_unknown_domain(self):
        """For a domain that maps to no tenant the id is unverifiable and changes nothing else."""
        with_id = resolve(build([]), Identity("x@example.org", LITWARE))
        without = resolve(build([]), "x@example.org")
        assert (E, True) == (with_id.trust, "tenant_id_unverifiable" in with_id.reasons)
        assert without.trust == with_id.trust

    def test_local_domain_wrong_tenant_untrusted(self):
        """At a local domain the local tenant id keeps internal; another id makes it untrusted."""
        snap = build([native("u1", "megan@contoso.com")])
        assert I == trust(snap, Identity("megan@contoso.com", LOCAL.upper()))
        assert U == trust(snap, Identity("megan@contoso.com", ACTIVE))


class TestLocalDomainRule:
    def test_disabled_object_is_internal(self):
        """A disabled local object (shared mailbox) is still internal."""
        assert I == trust(build([native("u1", "sales@contoso.com", accountEnabled=False)]), "sales@contoso.com")

    def test_no_object_is_internal(self):
        """A local-domain address without an object is internal (the domain is verified)."""
        result = resolve(build([]), "new@contoso.com")
        assert (I, ("local_domain", "no_object")) == (result.trust, result.reasons)

    def test_guest_object_at_local_domain_is_internal(self):
        """Object fields are evidence only at a local domain: a Guest-typed object does not lower trust."""
        assert I == trust(build([native("u1", "x@contoso.com", userType="Guest")]), "x@contoso.com")


class TestLowestTrustWins:
    def test_several_failures(self):
        """Disabled (external) and Guest (guest) and pending tenant (guest) together give external."""
        snap = build([synced("u1", "t@tailspintoys.com", accountEnabled=False, userType="Guest")])
        assert E == trust(snap, "t@tailspintoys.com")

    def test_reasons_list_every_check(self):
        """A negative answer names every failed check, so it says what would change it."""
        snap = build([synced("u1", "t@tailspintoys.com", accountEnabled=False, userType="Guest")],
                     partner_rows={PENDING: False})
        reasons = set(resolve(snap, "t@tailspintoys.com").reasons)
        assert {"account_disabled", "user_type_guest", "tenant_pending", "partner_not_in_mto",
                "object_external", "home_evidence_agrees"} <= reasons

    def test_positive_answer_lists_passed_checks(self):
        """An MTO member's reasons name every check that let it through."""
        reasons = resolve(build([synced("u1", "a@fabrikam.com")], partner_rows={ACTIVE: True}),
                          "a@fabrikam.com").reasons
        assert ("domain_known", "object_found", "object_external", "account_enabled", "user_type_member",
                "tenant_active", "partner_in_mto", "home_evidence_agrees") == reasons


class TestResolutionFields:
    def test_fields(self, mini):
        """A resolution carries the identity in normal form, the address looked up, the object and the home tenant."""
        result = resolve(mini, Identity(" Cameron@Fabrikam.com", ACTIVE))
        assert result.user is not None
        assert ("cameron@fabrikam.com", "cameron@fabrikam.com", "u-cameron", ACTIVE, ACTIVE) == (
            result.identity, result.address, result.user.id, result.home_tenant_id, result.tenant_id)

    def test_ext_name_keeps_its_normal_form(self, mini):
        """For a decoded #EXT# name, identity is the name asked about and address the home address."""
        result = resolve(mini, "Cameron_Fabrikam.com#EXT#@contoso.onmicrosoft.com")
        assert ("cameron_fabrikam.com#ext#@contoso.onmicrosoft.com", "cameron@fabrikam.com") == (
            result.identity, result.address)

    def test_invalid_identity_keeps_the_text(self, mini):
        """An invalid identity keeps the text given, so an explanation can show what was asked."""
        assert " not an address" == resolve(mini, " not an address").identity
