"""Tests for the four app decisions, through the engine: mail tagging, DLP scope, labels, Teams, overrides."""



from __future__ import annotations

import pytest
from strategies import build, native, synced

from mtotrust import Identity, MailAuth, Policy, PolicyError, Snapshot, Trust, TrustEngine

U, E, G, M, I = Trust.UNTRUSTED, Trust.EXTERNAL, Trust.GUEST, Trust.MTO_MEMBER, Trust.INTERNAL
MX = "mx.contoso.com"
SNAP = build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com"),
              synced("u3", "pat@fabrikam.com", userType="Guest"), synced("u4", "dana@fabrikam.com",
                                                                         accountEnabled=False)])


def engine(**sections):
    """An engine on SNAP whose policy trusts mx.contoso.com, with ``sections`` merged in."""
    data = {"mail": {"trusted_authserv_ids": [MX]}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return TrustEngine(SNAP, Policy.from_data(data))


def dmarc_pass(domain="fabrikam.com", authserv=MX):
    prefix = f"{authserv}; " if authserv else ""
    return f"{prefix}spf=pass smtp.mailfrom={domain}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"


class TestMailAuthentication:
    def test_aligned_dmarc_pass_authenticates(self):
        """A trusted header with dmarc=pass for the sender's domain authenticates: an MTO member is untagged."""
        decision = engine().mail("cameron@fabrikam.com", dmarc_pass())
        assert (True, M, False, "") == (decision.authenticated, decision.trust, decision.tag_external,
                                        decision.subject_tag)

    @pytest.mark.parametrize(("compauth", "expected"), [
        ("compauth=pass reason=100", True), ("compauth=pass reason=109", True), ("compauth=pass reason=701", True),
        ("compauth=pass reason=201", False), ("compauth=softpass reason=201", False), ("compauth=pass", False),
        ("compauth=none reason=905", False)])
    def test_compauth_reasons(self, compauth, expected):
        """compauth=pass counts only with a 1xx or 7xx reason."""
        header = f"{MX}; dmarc=none header.from=fabrikam.com; {compauth} header.from=fabrikam.com"
        assert expected == engine().mail("cameron@fabrikam.com", header).authenticated

    def test_bestguesspass_does_not_count(self):
        """dmarc=bestguesspass is not a pass."""
        header = f"{MX}; dmarc=bestguesspass header.from=fabrikam.com"
        assert False is engine().mail("cameron@fabrikam.com", header).authenticated

    def test_misaligned_header_from(self):
        """A pass for another domain does not authenticate the sender."""
        decision = engine().mail("cameron@fabrikam.com", dmarc_pass("attacker.example"))
        assert (False, E, True) == (decision.authenticated, decision.trust, decision.tag_external)
        assert "auth_misaligned" in decision.reasons

    def test_header_from_missing(self):
        """A header that names no From domain cannot align."""
        assert False is engine().mail("cameron@fabrikam.com", f"{MX}; dmarc=pass").authenticated

    def test_untrusted_authserv_id_ignored(self):
        """A header stamped by an authserv-id the policy does not trust does not count."""
        assert False is engine().mail("cameron@fabrikam.com", dmarc_pass(authserv="mx.evil.example")).authenticated

    def test_forged_trusted_header_below(self):
        """Only the topmost trusted header counts: a forged pass below a real failure is ignored."""
        headers = [f"{MX}; dmarc=none header.from=fabrikam.com", dmarc_pass()]
        assert False is engine().mail("cameron@fabrikam.com", headers).authenticated

    def test_untrusted_header_above_skipped(self):
        """A header of another authserv-id above the trusted one is skipped, not used."""
        headers = [dmarc_pass(authserv="mx.evil.example").replace("dmarc=pass", "dmarc=pass"),
                   f"{MX}; dmarc=none header.from=fabrikam.com"]
        assert False is engine().mail("cameron@fabrikam.com", headers).authenticated
        headers = ["mx.evil.example; dmarc=none header.from=fabrikam.com", dmarc_pass()]
        assert True is engine().mail("cameron@fabrikam.com", headers).authenticated

    def test_exchange_online_header_only_when_accepted(self):
        """Exchange Online's id-less header counts only with accept_exchange_online_results."""
        eop = ("spf=pass (sender IP is 40.107.1.2) smtp.mailfrom=fabrikam.com; dkim=pass (signature was verified) "
               "header.d=fabrikam.com;dmarc=pass action=none header.from=fabrikam.com;compauth=pass reason=100")
        assert False is engine().mail("cameron@fabrikam.com", eop).authenticated
        accepted = engine(mail={"accept_exchange_online_results": True})
        assert True is accepted.mail("cameron@fabrikam.com", eop).authenticated

    def test_unparsable_topmost_counting_header_fails(self):
        """An unparsable topmost trusted header is a failure: a valid pass below it is never used."""
        headers = [f"{MX}; dmarc=pass header.from=(unclosed", dmarc_pass()]
        decision = engine().mail("cameron@fabrikam.com", headers)
        assert (False, True) == (decision.authenticated, decision.tag_external)
        assert "auth_header_unparsable" in decision.reasons

    @pytest.mark.parametrize("failure", ["dmarc=fail", "compauth=fail reason=000"])
    def test_fail_on_mto_domain_is_spoof(self, failure):
        """An explicit failure for an MTO-domain sender is untrusted (spoof_suspected)."""
        decision = engine().mail("cameron@fabrikam.com", f"{MX}; {failure} header.from=fabrikam.com")
        assert (U, True, True) == (decision.trust, decision.tag_external, "spoof_suspected" in decision.reasons)

    def test_fail_on_local_domain_is_spoof(self):
        """An explicit failure for a local-domain sender is untrusted."""
        decision = engine().mail("megan@contoso.com", f"{MX}; dmarc=fail header.from=contoso.com")
        assert (U, True) == (decision.trust, "spoof_suspected" in decision.reasons)

    def test_fail_beside_pass_is_failure(self):
        """dmarc=pass with compauth=fail beside it does not authenticate."""
        header = f"{MX}; dmarc=pass header.from=fabrikam.com; compauth=fail reason=000 header.from=fabrikam.com"
        decision = engine().mail("cameron@fabrikam.com", header)
        assert (False, U) == (decision.authenticated, decision.trust)

    def test_fail_on_other_domain_is_just_unauthenticated(self):
        """An explicit failure for a domain neither local nor MTO is only unauthenticated (external)."""
        decision = engine().mail("x@example.org", f"{MX}; dmarc=fail header.from=example.org")
        assert (E, False) == (decision.trust, "spoof_suspected" in decision.reasons)

    def test_smtp_auth_for_local_sender(self):
        """auth=pass (SMTP AUTH submission) authenticates a local-domain sender."""
        decision = engine().mail("megan@contoso.com", f"{MX}; auth=pass smtp.auth=megan@contoso.com")
        assert (True, I, False) == (decision.authenticated, decision.trust, decision.tag_external)

    def test_smtp_auth_not_for_foreign_sender(self):
        """auth=pass does not authenticate a sender at a foreign domain."""
        decision = engine().mail("cameron@fabrikam.com", f"{MX}; auth=pass smtp.auth=cameron@fabrikam.com")
        assert (False, E) == (decision.authenticated, decision.trust)


class TestMailAuthGiven:
    def test_trusted_as_given(self):
        """A MailAuth built by the app is trusted as given."""
        decision = engine().mail("cameron@fabrikam.com", MailAuth(dmarc="pass", header_from="fabrikam.com"))
        assert (True, M) == (decision.authenticated, decision.trust)

    def test_given_header_from_must_align(self):
        """A given header_from must still align with the sender's domain."""
        decision = engine().mail("cameron@fabrikam.com", MailAuth(dmarc="pass", header_from="evil.example"))
        assert (False, E) == (decision.authenticated, decision.trust)

    def test_given_header_from_case_and_idn(self):
        """Alignment compares normalised domains."""
        decision = engine().mail("cameron@fabrikam.com", MailAuth(compauth="pass", header_from="FABRIKAM.COM"))
        assert True is decision.authenticated

    def test_smtp_auth_local(self):
        """MailAuth(smtp_auth=True) authenticates a local sender, not a foreign one."""
        e = engine()
        assert (True, False) == (e.mail("megan@contoso.com", MailAuth(smtp_auth=True)).authenticated,
                                 e.mail("cameron@fabrikam.com", MailAuth(smtp_auth=True)).authenticated)

    def test_given_fail_local_is_spoof(self):
        """A given dmarc=fail for a local sender is untrusted."""
        assert U == engine().mail("megan@contoso.com", MailAuth(dmarc="fail", header_from="contoso.com")).trust


class TestMailTagging:
    def test_unauthenticated_capped_at_external(self):
        """Without authentication an MTO member and an internal sender are capped at external and tagged."""
        e = engine()
        for sender in ("cameron@fabrikam.com", "megan@contoso.com"):
            decision = e.mail(sender)
            assert (E, True, False, "[External]") == (decision.trust, decision.tag_external,
                                                     decision.authenticated, decision.subject_tag)

    def test_require_authentication_false(self):
        """With require_authentication false the resolution's trust stands."""
        decision = engine(mail={"require_authentication": False}).mail("cameron@fabrikam.com")
        assert (M, False) == (decision.trust, decision.tag_external)

    @pytest.mark.parametrize(("untagged_at", "sender", "tagged"), [
        ("mto_member", "cameron@fabrikam.com", False), ("internal", "cameron@fabrikam.com", True),
        ("internal", "megan@contoso.com", False), ("guest", "pat@fabrikam.com", False),
        ("mto_member", "pat@fabrikam.com", True), ("external", "dana@fabrikam.com", False)])
    def test_untagged_at(self, untagged_at, sender, tagged):
        """tag_external is true exactly when the trust is below mail.untagged_at."""
        domain = sender.rpartition("@")[2]
        e = engine(mail={"untagged_at": untagged_at})
        assert tagged == e.mail(sender, dmarc_pass(domain)).tag_external

    def test_subject_tag(self):
        """subject_tag is the policy's tag on tagged mail and empty on untagged mail."""
        e = engine(mail={"subject_tag": "[EXT]"})
        assert ("[EXT]", "") == (e.mail("x@example.org").subject_tag,
                                 e.mail("cameron@fabrikam.com", dmarc_pass()).subject_tag)

    def test_invalid_sender_tagged(self):
        """An invalid sender is untrusted and tagged."""
        decision = engine().mail("not an address", dmarc_pass())
        assert (U, True) == (decision.trust, decision.tag_external)


class TestDlp:
    def test_all_inside(self):
        """Every recipient at or above dlp.inside_at is inside the organization."""
        decision = engine().dlp(["megan@contoso.com", "cameron@fabrikam.com"])
        assert (True, "InOrganization") == (decision.inside_organization, decision.access_scope)

    def test_empty_inside(self):
        """No recipients: nothing is shared, so inside."""
        assert True is engine().dlp([]).inside_organization

    def test_one_outside(self):
        """One recipient below inside_at makes the whole share NotInOrganization."""
        decision = engine().dlp(["megan@contoso.com", "cameron@fabrikam.com", "pat@fabrikam.com"])
        assert ("NotInOrganization", [I, M, G]) == (decision.access_scope, [r.trust for r in decision.recipients])

    def test_bare_string(self):
        """A bare string is one recipient, not a sequence of characters."""
        decision = engine().dlp("cameron@fabrikam.com")
        assert (1, True) == (len(decision.recipients), decision.inside_organization)

    def test_identity_recipient(self):
        """An Identity with a wrong tenant id is outside."""
        assert False is engine().dlp(Identity("cameron@fabrikam.com", "44444444-4444-4444-8444-444444444444")
                                     ).inside_organization

    @pytest.mark.parametrize(("inside_at", "expected"), [("internal", False), ("mto_member", True), ("guest", True)])
    def test_inside_at(self, inside_at, expected):
        """dlp.inside_at sets the bar."""
        assert expected == engine(dlp={"inside_at": inside_at}).dlp(["cameron@fabrikam.com"]).inside_organization


class TestLabels:
    @pytest.fixture(name="e")
    def _engine(self):
        return engine(labels={"Confidential": {"internal": "Co-Author", "mto_member": "Viewer"},
                              "Highly Confidential": {"internal": ["VIEW", "DOCEDIT", "EDIT"]}})

    def test_rights_per_trust(self, e):
        """Each trust level gets what the label maps it to, and unlisted levels nothing."""
        assert (frozenset({"VIEW", "VIEWRIGHTSDATA", "REPLY", "REPLYALL", "OBJMODEL"}), frozenset(),
                frozenset({"VIEW", "DOCEDIT", "EDIT"})) == (
            e.label_rights("cameron@fabrikam.com", "Confidential").rights,
            e.label_rights("pat@fabrikam.com", "Confidential").rights,
            e.label_rights("megan@contoso.com", "Highly Confidential").rights)

    def test_unknown_label(self, e):
        """An unknown label is a PolicyError."""
        with pytest.raises(PolicyError, match="Secret"):
            e.label_rights("megan@contoso.com", "Secret")


class TestTeams:
    @pytest.mark.parametrize(("action", "guest", "mto_member"), [
        ("chat", True, True), ("call", True, True), ("meeting_lobby_bypass", False, True),
        ("file_sharing", False, True), ("presence", False, True), ("people_search", False, True)])
    def test_default_minimums(self, action, guest, mto_member):
        """Under the default policy a guest may chat and call only; an MTO member may do everything."""
        e = engine()
        assert (guest, mto_member) == (e.teams("pat@fabrikam.com", action).allowed,
                                       e.teams("cameron@fabrikam.com", action).allowed)

    def test_classic_denies_mto_member(self):
        """Under the classic policy an MTO member may not share files but may chat."""
        e = TrustEngine(SNAP, Policy.classic())
        assert (False, True) == (e.teams("cameron@fabrikam.com", "file_sharing").allowed,
                                 e.teams("cameron@fabrikam.com", "chat").allowed)

    def test_unknown_action(self):
        """An unknown action is a PolicyError."""
        with pytest.raises(PolicyError):
            engine().teams("cameron@fabrikam.com", "screen_share")


class TestOverrides:
    @pytest.mark.parametrize("entry", ["cameron@fabrikam.com", "fabrikam.com", "*.fabrikam.com"])
    def test_block_every_app(self, entry):
        """A blocked identity is untrusted for resolve, mail, DLP, labels and Teams alike."""
        e = engine(overrides={"block": [entry]}, labels={"L": {"mto_member": "Viewer", "untrusted": []}})
        resolution = e.resolve("cameron@fabrikam.com")
        assert (U, "blocked") == (resolution.trust, resolution.reasons[-1])
        assert (U, True) == (e.mail("cameron@fabrikam.com", dmarc_pass()).trust,
                             e.mail("cameron@fabrikam.com", dmarc_pass()).tag_external)
        assert False is e.dlp(["cameron@fabrikam.com"]).inside_organization
        assert frozenset() == e.label_rights("cameron@fabrikam.com", "L").rights
        assert False is e.teams("cameron@fabrikam.com", "chat").allowed

    def test_wildcard_covers_subdomain_not_parent(self):
        """*.fabrikam.com blocks eu.fabrikam.com but an entry for eu.fabrikam.com leaves fabrikam.com alone."""
        wild = engine(overrides={"block": ["*.fabrikam.com"]})
        exact = engine(overrides={"block": ["eu.fabrikam.com"]})
        assert (U, M) == (wild.resolve("x@eu.fabrikam.com").trust, exact.resolve("cameron@fabrikam.com").trust)

    def test_block_ext_upn_by_home_address(self):
        """Blocking the home address also blocks its #EXT# spelling."""
        e = engine(overrides={"block": ["cameron@fabrikam.com"]})
        assert U == e.resolve("cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com").trust

    def test_block_never_raises_trust(self):
        """Blocking an unrelated domain leaves everyone else as they were."""
        e = engine(overrides={"block": ["example.org"]})
        assert (M, I) == (e.resolve("cameron@fabrikam.com").trust, e.resolve("megan@contoso.com").trust)


def test_upper_case_authserv_id_in_policy_counts():
    """A header from an authserv-id the policy spells in upper case authenticates the sender."""
    engine = TrustEngine(Snapshot.sample(), Policy.from_data({"mail": {"trusted_authserv_ids": ["MX.CONTOSO.COM"]}}))
    decision = engine.mail("cameron@fabrikam.com", "mx.contoso.com; dmarc=pass header.from=fabrikam.com")
    assert (True, False) == (decision.authenticated, decision.tag_external)
