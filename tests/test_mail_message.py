"""Tests for TrustEngine.mail_message: a whole message (bytes or email.message.Message) decided like engine.mail."""

# The house style asserts `expected == actual` (style.md, lesson 11), which SIM300 calls a Yoda condition.

from __future__ import annotations

import email
import email.message
import email.policy
import time
from collections.abc import Iterator
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import MailDecision, Policy, Snapshot, Trust, TrustEngine
from mtotrust._fromaddr import MAX_HEADER_BYTES
from mtotrust.mailauth import MAX_FROM_LENGTH

SNAPSHOT = Snapshot.sample()
POLICY = Policy.load(str(resources.files("mtotrust") / "sample" / "policy.toml"))
MTO_SENDER = "cameron@fabrikam.com"
PASS = "mx.contoso.com;\r\n dkim=pass header.d=fabrikam.com;\r\n dmarc=pass action=none header.from=fabrikam.com"
FAIL = "mx.contoso.com; dmarc=fail action=quarantine header.from=fabrikam.com"
NONE = "mx.contoso.com; dmarc=none header.from=fabrikam.com"


def engine() -> TrustEngine:
    return TrustEngine(SNAPSHOT, POLICY)


def message(*fields: str, body: bytes = b"Hello,\r\n\r\nthe agenda is attached.\r\n") -> bytes:
    """The bytes of a message with ``fields`` ("Name: value") as its header section, in that order."""
    head = "".join(f"{field}\r\n" for field in ("Received: from mail.fabrikam.com by mx.contoso.com", *fields))
    return head.encode("utf-8") + b"\r\n" + body


def mto_message(*auth: str, sender: str = f"Cameron <{MTO_SENDER}>") -> bytes:
    return message(f"From: {sender}", "To: megan@contoso.com", *(f"Authentication-Results: {v}" for v in auth),
                   "Subject: Quarterly review")


def as_messages(raw: bytes) -> Iterator[email.message.Message | bytes]:
    """The same message as bytes, a bytearray, a compat32 Message and an EmailMessage (policy.default)."""
    yield raw
    yield bytearray(raw)  # type: ignore[misc]  # bytes-like is accepted too
    yield email.message_from_bytes(raw, policy=email.policy.compat32)
    yield email.message_from_bytes(raw, policy=email.policy.default)


def assert_fails_closed(decision: MailDecision, reason: str, eng: TrustEngine) -> None:
    assert (True, Trust.UNTRUSTED, False, (reason,), eng.snapshot.id, eng.policy.fingerprint,
            POLICY.mail.subject_tag) == (
        decision.tag_external, decision.trust, decision.authenticated, decision.reasons, decision.snapshot_id,
        decision.policy_fingerprint, decision.subject_tag)


class TestSameAsMail:
    def test_authenticated_mto_member_untagged(self) -> None:
        """An MTO member's message with the boundary's dmarc=pass is decided as engine.mail and is not tagged."""
        eng = engine()
        decision = eng.mail_message(mto_message(PASS))

        assert (eng.mail(MTO_SENDER, [PASS]), False) == (decision, decision.tag_external)

    def test_unauthenticated_mto_member_tagged(self) -> None:
        """Without Authentication-Results the decision is engine.mail without auth: tagged, auth_missing."""
        eng = engine()
        decision = eng.mail_message(mto_message())

        assert (eng.mail(MTO_SENDER), True, True) == (
            decision, decision.tag_external, "auth_missing" in decision.reasons)

    def test_untrusted_authserv_id_tagged(self) -> None:
        """A header from an authserv-id the policy does not trust is decided as engine.mail with it: tagged."""
        eng = engine()
        value = "evil.example; dmarc=pass header.from=fabrikam.com"
        decision = eng.mail_message(mto_message(value))

        assert (eng.mail(MTO_SENDER, [value]), True) == (decision, decision.tag_external)

    def test_display_name_ignored(self) -> None:
        """Display names and comments around the address do not change the decision."""
        eng = engine()
        decisions = {eng.mail_message(mto_message(PASS, sender=sender)) for sender in (
            MTO_SENDER, f"<{MTO_SENDER}>", f'"Fabrikam, Cameron (CEO)" <{MTO_SENDER}>',
            f"=?utf-8?q?Cam=C3=A9ron?= <{MTO_SENDER}>", f"{MTO_SENDER} (Cameron)",
            f"Cameron\r\n <{MTO_SENDER}>")}

        assert {eng.mail(MTO_SENDER, [PASS])} == decisions

    def test_display_name_naming_another_address_ignored(self) -> None:
        """A display name that looks like a local address does not make the sender local."""
        eng = engine()
        decision = eng.mail_message(mto_message(sender='"megan@contoso.com" <someone@example.org>'))

        assert eng.mail("someone@example.org") == decision

    def test_address_case_and_folding(self) -> None:
        """The address as written (any case) resolves like engine.mail with it."""
        eng = engine()
        decision = eng.mail_message(mto_message(PASS, sender="Cameron\r\n\t<Cameron@FABRIKAM.com>"))

        assert (eng.mail("Cameron@FABRIKAM.com", [PASS]), False) == (decision, decision.tag_external)

    def test_non_ascii_address(self) -> None:
        """An SMTPUTF8 From in UTF-8 bytes is decided as engine.mail with the decoded address."""
        eng = engine()
        auth = "mx.contoso.com; dmarc=pass header.from=bücher.example"
        decision = eng.mail_message(mto_message(auth, sender="Jörg <jörg@bücher.example>"))

        assert eng.mail("jörg@bücher.example", [auth]) == decision


class TestHeaderOrder:
    def test_topmost_first(self) -> None:
        """Authentication-Results values are passed topmost first: the boundary's topmost pass counts."""
        eng = engine()

        assert (eng.mail(MTO_SENDER, [PASS, FAIL]), False) == (
            eng.mail_message(mto_message(PASS, FAIL)), eng.mail_message(mto_message(PASS, FAIL)).tag_external)

    def test_topmost_fail_wins_over_lower_pass(self) -> None:
        """A topmost fail is what counts, even with a pass lower down: a spoofed MTO sender is untrusted."""
        eng = engine()
        decision = eng.mail_message(mto_message(FAIL, PASS))

        assert (eng.mail(MTO_SENDER, [FAIL, PASS]), Trust.UNTRUSTED, True) == (
            decision, decision.trust, "spoof_suspected" in decision.reasons)

    def test_order_among_other_fields(self) -> None:
        """Other fields between the Authentication-Results values do not change their order."""
        eng = engine()
        raw = message(f"Authentication-Results: {NONE}", f"From: {MTO_SENDER}", "Received: by relay",
                      f"Authentication-Results: {PASS}")

        assert eng.mail(MTO_SENDER, [NONE, PASS]) == eng.mail_message(raw)


class TestForgedHeader:
    def test_forged_lower_pass_does_not_count(self) -> None:
        """A forged dmarc=pass below the boundary's topmost header is never read: the message stays tagged."""
        eng = engine()
        decision = eng.mail_message(mto_message(NONE, PASS))

        assert (True, False) == (decision.tag_external, decision.authenticated)

    def test_forged_header_with_other_authserv_id_skipped(self) -> None:
        """A sender's header with a foreign authserv-id above the boundary's is skipped, not counted."""
        eng = engine()
        decision = eng.mail_message(mto_message("evil.example; dmarc=pass header.from=fabrikam.com", NONE))

        assert (True, False) == (decision.tag_external, decision.authenticated)


class TestInputs:
    @pytest.mark.parametrize("raw", [
        pytest.param(mto_message(PASS), id="authenticated"),
        pytest.param(mto_message(), id="no-auth"),
        pytest.param(mto_message(sender="a@x.com, b@x.com"), id="ambiguous"),
        pytest.param(message("Subject: no From"), id="missing"),
        pytest.param(mto_message(PASS, sender="Jörg <jörg@bücher.example>"), id="utf-8"),
    ])
    def test_bytes_and_messages_agree(self, raw: bytes) -> None:
        """bytes, bytearray, a compat32 Message and an EmailMessage of one message give one decision."""
        eng = engine()

        assert [eng.mail_message(raw)] * 4 == [eng.mail_message(m) for m in as_messages(raw)]

    def test_lf_line_endings(self) -> None:
        """A message with bare LF line endings is read like one with CRLF."""
        eng = engine()

        assert eng.mail_message(mto_message(PASS)) == eng.mail_message(mto_message(PASS).replace(b"\r\n", b"\n"))

    def test_built_email_message(self) -> None:
        """An EmailMessage built in code (headers set as values) is decided like its bytes."""
        eng = engine()
        built = email.message.EmailMessage()
        built["From"] = f'"Fabrikam, Cameron" <{MTO_SENDER}>'
        built["Authentication-Results"] = "mx.contoso.com; dmarc=pass header.from=fabrikam.com"
        built.set_content("Hello")

        assert (eng.mail(MTO_SENDER, ["mx.contoso.com; dmarc=pass header.from=fabrikam.com"]), False) == (
            eng.mail_message(built), eng.mail_message(built).tag_external)

    def test_built_email_message_with_defective_from(self) -> None:
        """An EmailMessage whose From was set with a value its parser found defective fails closed."""
        eng = engine()
        built = email.message.EmailMessage()
        built["From"] = "alice@example.org)<bob@example.org>"

        assert ("from_missing",) == eng.mail_message(built).reasons

    def test_built_compat32_message(self) -> None:
        """A compat32 Message built in code is decided from the values as set."""
        eng = engine()
        built = email.message.Message()
        built["From"] = f"Cameron <{MTO_SENDER}>"
        built["Authentication-Results"] = PASS

        assert eng.mail(MTO_SENDER, [PASS]) == eng.mail_message(built)

    def test_body_not_parsed(self) -> None:
        """A From-like line in the body is not a header: only the header section counts."""
        eng = engine()
        raw = mto_message(PASS, sender=MTO_SENDER) + b"From: someone@example.org\r\n"

        assert eng.mail(MTO_SENDER, [PASS]) == eng.mail_message(raw)

    def test_headers_only(self) -> None:
        """A message of header fields only, with no empty line, is read."""
        eng = engine()

        assert eng.mail(MTO_SENDER) == eng.mail_message(f"From: {MTO_SENDER}\r\n".encode())


class TestFromMissing:
    @pytest.mark.parametrize("raw", [
        pytest.param(message("To: megan@contoso.com"), id="no-field"),
        pytest.param(message("From:"), id="empty"),
        pytest.param(message("From:   "), id="blank"),
        pytest.param(message("From: undisclosed-recipients:;"), id="empty-group"),
        pytest.param(message("From: garbage"), id="garbage"),
        pytest.param(message("From: alice@example.org)<cameron@fabrikam.com>"), id="cve-2023-27043"),
        pytest.param(message("From: <@relay.example:cameron@fabrikam.com>"), id="source-route"),
        pytest.param(b"From: J\xf6rg <cameron@fabrikam.com>\r\n\r\n", id="not-utf-8"),
        pytest.param(b"", id="empty-message"),
    ])
    def test_from_missing(self, raw: bytes) -> None:
        """No readable From mailbox: untrusted, tagged, unauthenticated, from_missing, of this engine's state."""
        eng = engine()

        assert_fails_closed(eng.mail_message(raw), "from_missing", eng)

    def test_names_the_value(self) -> None:
        """The decision's resolution names the unreadable From value, and explain says why."""
        eng = engine()
        decision = eng.mail_message(message("From: undisclosed-recipients:;"))

        assert ("undisclosed-recipients:;", True) == (
            decision.resolution.identity, "from_missing" in eng.explain(decision))


class TestFromAmbiguous:
    @pytest.mark.parametrize("raw", [
        pytest.param(message(f"From: {MTO_SENDER}, megan@contoso.com"), id="two-mailboxes"),
        pytest.param(message(f"From: {MTO_SENDER}", "From: megan@contoso.com"), id="two-fields"),
        pytest.param(message(f"From: {MTO_SENDER}", f"From: {MTO_SENDER}"), id="same-field-twice"),
        pytest.param(message(f"From: Team: {MTO_SENDER};"), id="group"),
        pytest.param(message(f"From: {MTO_SENDER}", f"Authentication-Results: {PASS}", "From:"), id="second-empty"),
    ])
    def test_from_ambiguous(self, raw: bytes) -> None:
        """Several mailboxes, several From fields or a group: untrusted and tagged, from_ambiguous."""
        eng = engine()

        assert_fails_closed(eng.mail_message(raw), "from_ambiguous", eng)

    def test_authenticated_but_ambiguous_is_tagged(self) -> None:
        """A second From field is tagged even with the boundary's pass for the first mailbox's domain."""
        eng = engine()
        raw = message(f"From: {MTO_SENDER}", "From: megan@contoso.com", f"Authentication-Results: {PASS}")

        assert_fails_closed(eng.mail_message(raw), "from_ambiguous", eng)


# Header lines the standard library's parser does not read as fields: each hid the From (and the
# Authentication-Results) after it, so the first From alone decided.
HIDDEN = [
    pytest.param(message(f"From: {MTO_SENDER}", "From : evil@x", f"Authentication-Results: {PASS}",
                         "Subject: s"), id="space-before-colon"),
    pytest.param(message(f"From: {MTO_SENDER}", f"Authentication-Results: {PASS}", "From : evil@x"),
                 id="space-before-colon-last"),
    pytest.param(f"From : evil@x\r\nFrom: {MTO_SENDER}\r\nAuthentication-Results: {PASS}\r\n\r\n".encode(),
                 id="space-before-colon-first"),
    pytest.param(message(f"From: {MTO_SENDER}", f"Authentication-Results: {PASS}", "no colon here",
                         "From: evil@x"), id="colon-less-line-then-from"),
    pytest.param(message(f"From: {MTO_SENDER}", "Authentication-Results : evil", "From: evil@x"),
                 id="space-before-colon-other-field"),
]


class TestHiddenFields:
    """A header line that is not read as a field may hide a From naming another mailbox: from_ambiguous."""

    @pytest.mark.parametrize("raw", HIDDEN)
    def test_hidden_from_is_ambiguous(self, raw: bytes) -> None:
        """As bytes or parsed by the caller (compat32 or policy.default): untrusted and tagged, even with a pass."""
        eng = engine()

        for decision in [eng.mail_message(m) for m in as_messages(raw)]:
            assert_fails_closed(decision, "from_ambiguous", eng)

    def test_field_name_with_trailing_space_is_a_from(self) -> None:
        """A Message built with a "From " field holds two From fields, not one."""
        eng = engine()
        built = email.message.Message()
        built["From"] = MTO_SENDER
        built["From "] = "evil@x"
        built["Authentication-Results"] = PASS

        assert_fails_closed(eng.mail_message(built), "from_ambiguous", eng)

    def test_normal_message_unaffected(self) -> None:
        """A message whose every header line is a field (a From-like body line included) is decided as before."""
        eng = engine()
        raw = mto_message(PASS, sender=MTO_SENDER) + b"From : someone@example.org\r\nno colon\r\n"

        assert [eng.mail(MTO_SENDER, [PASS])] * 2 == [eng.mail_message(raw), eng.mail_message(mto_message(
            PASS, sender=MTO_SENDER))]
        assert [eng.mail(MTO_SENDER, [PASS])] * 4 == [eng.mail_message(m) for m in as_messages(
            mto_message(PASS, sender=MTO_SENDER))]


HOSTILE = [
    pytest.param(message("From: " + "a" * 1_000_000 + "@x.com"), id="1-MB-From"),
    pytest.param(message("From: " + "," * 10_000 + MTO_SENDER), id="10000-commas"),
    pytest.param(message("From: " + ", ".join([MTO_SENDER] * 2000)), id="2000-mailboxes"),
    pytest.param(message(f"From: {MTO_SENDER}\x00", f"Authentication-Results: {PASS}\x00"), id="nuls"),
    pytest.param(message(*[f"From: {MTO_SENDER}"] * 10_000), id="10000-From-fields"),
    pytest.param(message("From: " + "(" * 100_000 + MTO_SENDER), id="deep-comment"),
    pytest.param(message("From:" + "\r\n " * 5000 + MTO_SENDER), id="5000-folds"),
    pytest.param(b"\xff\xfe\x00" * 100_000, id="binary"),
    pytest.param(b"From: " + b"\r" * 100_000 + MTO_SENDER.encode(), id="bare-crs"),
    pytest.param(b"From: x\r\n" + b"X: " + b"y" * 1_000_000 + b"\r\n\r\n", id="1-MB-field"),
    pytest.param(message(f"From: {MTO_SENDER}", body=b"x" * 20_000_000), id="20-MB-body"),
]


class TestNeverRaises:
    @pytest.mark.parametrize("raw", HOSTILE)
    def test_hostile_bytes(self, raw: bytes) -> None:
        """Hostile messages give a decision within a generous time guard, and none of them is untagged."""
        eng = engine()
        start = time.perf_counter()
        decision = eng.mail_message(raw)

        assert (True, True) == (decision.tag_external, time.perf_counter() - start < 10.0)

    def test_many_auth_headers(self) -> None:
        """1,500 Authentication-Results fields (a header section under the cap) are read within the time guard; the
        topmost counts."""
        eng = engine()
        raw = message(*[f"Authentication-Results: {PASS}"] * 1_500, f"From: {MTO_SENDER}")
        assert len(raw) < MAX_HEADER_BYTES
        start = time.perf_counter()
        decision = eng.mail_message(raw)

        assert (eng.mail(MTO_SENDER, [PASS]), True) == (decision, time.perf_counter() - start < 10.0)

    def test_crlf_injection_in_built_message(self) -> None:
        """A From value set in code with CRLF injection (compat32 stores it as given) is from_missing."""
        built = email.message.Message()
        built["From"] = f"{MTO_SENDER}\r\nBcc: victim@example.org"
        built["Authentication-Results"] = PASS

        assert ("from_missing",) == engine().mail_message(built).reasons

    @pytest.mark.parametrize("value", [
        pytest.param(None, id="none"),
        pytest.param(12, id="int"),
        pytest.param(f"From: {MTO_SENDER}\r\n\r\n", id="str"),
        pytest.param([mto_message(PASS)], id="list"),
    ])
    def test_not_a_message_is_internal_error(self, value: object) -> None:
        """Anything but a Message or bytes fails closed with internal_error, like engine.mail on an error."""
        eng = engine()

        assert_fails_closed(eng.mail_message(value), "internal_error", eng)  # type: ignore[arg-type]

    def test_broken_message_is_internal_error(self) -> None:
        """A Message whose headers cannot be read fails closed with internal_error."""

        class Broken(email.message.Message):
            def raw_items(self) -> Iterator[tuple[str, str]]:
                raise RuntimeError("unreadable")

        eng = engine()

        assert_fails_closed(eng.mail_message(Broken()), "internal_error", eng)

    def test_non_str_header_value_is_internal_error(self) -> None:
        """A header value that is neither str nor a header object fails closed with internal_error."""
        built = email.message.Message()
        built._headers.append(("From", 42))  # type: ignore[attr-defined]
        eng = engine()

        assert_fails_closed(eng.mail_message(built), "internal_error", eng)

    @given(st.binary(max_size=300))
    def test_arbitrary_bytes(self, raw: bytes) -> None:
        """Any bytes give a MailDecision; only a single readable From can leave it untagged."""
        decision = engine().mail_message(raw)

        assert True is (decision.tag_external or decision.resolution.address is not None)

    @given(st.lists(st.sampled_from([f"From: {MTO_SENDER}", f"Authentication-Results: {PASS}", "From: a@x.com, b",
                                     "From:", "Authentication-Results: (", "To: x", " folded", "\x00", ""]),
                    max_size=6))
    def test_field_soup(self, fields: list[str]) -> None:
        """Any mix of From and Authentication-Results lines is untagged only with exactly one From field."""
        raw = "\r\n".join(fields).encode() + b"\r\n\r\n"
        decision = engine().mail_message(raw)
        froms = len(email.message_from_bytes(raw).get_all("From", []))

        assert True is (decision.tag_external or froms == 1)


class TestLimits:
    def test_from_at_the_cap_is_read(self) -> None:
        """A From value of exactly MAX_FROM_LENGTH characters is read."""
        name = "a" * (MAX_FROM_LENGTH - len(MTO_SENDER) - 3)
        eng = engine()

        assert eng.mail(MTO_SENDER, [PASS]) == eng.mail_message(mto_message(PASS, sender=f"{name} <{MTO_SENDER}>"))

    def test_from_over_the_cap_is_missing(self) -> None:
        """A From value one character over MAX_FROM_LENGTH is from_missing."""
        name = "a" * (MAX_FROM_LENGTH - len(MTO_SENDER) - 2)
        eng = engine()

        assert_fails_closed(eng.mail_message(mto_message(PASS, sender=f"{name} <{MTO_SENDER}>")), "from_missing",
                            eng)

    def test_header_section_under_the_cap_is_read(self) -> None:
        """A message whose header section is just under MAX_HEADER_BYTES is decided like engine.mail."""
        filler = ["X-Filler: " + "x" * 990] * ((MAX_HEADER_BYTES - 2_000) // 1_002)
        raw = message(f"From: Cameron <{MTO_SENDER}>", f"Authentication-Results: {PASS}", *filler)
        eng = engine()

        assert len(raw) < MAX_HEADER_BYTES
        assert eng.mail(MTO_SENDER, [PASS]) == eng.mail_message(raw)

    def test_header_section_over_the_cap_is_refused_whole(self) -> None:
        """A header section over MAX_HEADER_BYTES (100,000 one-character results) is from_missing, never cut."""
        raw = message(f"From: Cameron <{MTO_SENDER}>", f"Authentication-Results: {PASS}",
                      *["Authentication-Results: x"] * 100_000)
        eng = engine()

        assert_fails_closed(eng.mail_message(raw), "from_missing", eng)
