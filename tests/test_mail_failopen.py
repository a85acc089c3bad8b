"""Fail-open classes of the mail path, each pinned by the rule that closes it (not by one example).

- A header counts by its authserv-id alone, so a counting header that cannot be parsed is a failure and never
  lets a lower one decide.
- Each pass aligns on its own: a pass for another domain (or for none) never counts for the sender.
- A ``MailAuth`` is read as the raw header is: case-insensitive words, unknown words as no result, wrong types
  refused when it is built and read as a failure when it was built around that check.
- Only the first ``MAX_VALUES`` (64) values are read, and a value that does not count is skipped without a parse.
"""

# The house style asserts `expected == actual` (style.md, lesson 11), which SIM300 calls a Yoda condition.

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import overload
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import MailAuth, MailDecision, Policy, Snapshot, Trust, TrustEngine
from mtotrust import mailauth as ma
from mtotrust.mailauth import MAX_VALUES, parse_authentication_results, select_counting_header, to_mail_auth

SAMPLE = Snapshot.sample()
MX = "mx.contoso.com"
TRUSTED = frozenset({MX})
ENGINE = TrustEngine(SAMPLE, Policy.from_data({"mail": {"trusted_authserv_ids": [MX]}}), cache_size=0)
EO_ENGINE = TrustEngine(SAMPLE, Policy.from_data(
    {"mail": {"trusted_authserv_ids": [MX], "accept_exchange_online_results": True}}), cache_size=0)
MTO = "cameron@fabrikam.com"  # an MTO member: protected, untagged when authenticated
LOCAL = "megan@contoso.com"  # a local sender: protected, SMTP AUTH counts
PASS = f"{MX}; dmarc=pass header.from=fabrikam.com"
LOCAL_PASS = f"{MX}; dmarc=pass header.from=contoso.com"
EOP_PASS = ("spf=pass smtp.mailfrom=fabrikam.com; dmarc=pass action=none header.from=fabrikam.com;"
            "compauth=pass reason=100")


def outcome(decision: MailDecision) -> tuple[bool, Trust, bool]:
    """(authenticated, trust, tagged): what a mail decision means for the message."""
    return decision.authenticated, decision.trust, decision.tag_external


SPOOFED = (False, Trust.UNTRUSTED, True)
PASSED = (True, Trust.MTO_MEMBER, False)
UNAUTHENTICATED = (False, Trust.EXTERNAL, True)


# -- 2. a counting header counts by its authserv-id alone ----------------------------------------------------

# Trusted headers (by their first token) that cannot be parsed after it. Each fell through to the forged pass
# below it before: the first token was read with the comment or the dot after it.
BROKEN_TRUSTED = [
    pytest.param(f"{MX} (unclosed; dmarc=fail header.from=fabrikam.com", id="unclosed-comment-after-id"),
    pytest.param(f"{MX}(unclosed; dmarc=fail", id="unclosed-comment-touching-id"),
    pytest.param(f"{MX} 1 (unclosed; dmarc=fail", id="unclosed-comment-after-version"),
    pytest.param(f"{MX.upper()} (", id="upper-case-id-lone-parenthesis"),
    pytest.param(f"Authentication-Results: {MX} (x", id="field-name-then-unclosed-comment"),
    pytest.param(f"{MX}. (unclosed", id="trailing-dot-then-unclosed-comment"),
]


class TestCountsByAuthservIdAlone:
    """A header counts by its first token alone; if it counts and cannot be parsed after that token, it is an
    explicit failure (spoof_suspected for a protected sender), never a reason to read a lower header."""

    def test_review_example(self) -> None:
        """The reviewed case: an unclosed comment after the trusted id above a forged pass is spoofing."""
        decision = ENGINE.mail(MTO, [f"{MX} (unclosed; dmarc=fail header.from=fabrikam.com", PASS])

        assert (SPOOFED, True, True) == (outcome(decision), "auth_header_unparsable" in decision.reasons,
                                         "spoof_suspected" in decision.reasons)

    @pytest.mark.parametrize("top", BROKEN_TRUSTED)
    def test_broken_trusted_header_is_selected_unparsed(self, top: str) -> None:
        """select_counting_header returns the broken trusted header with no parse, never the pass below it."""
        assert (top, None) == select_counting_header([top, PASS], trusted_authserv_ids=TRUSTED,
                                                     accept_exchange_online=False)

    @pytest.mark.parametrize("top", BROKEN_TRUSTED)
    @pytest.mark.parametrize("sender", [MTO, LOCAL])
    def test_broken_trusted_header_is_spoofing_for_protected_senders(self, top: str, sender: str) -> None:
        """For a local or MTO sender the broken trusted header makes the mail untrusted, whatever lies below."""
        below = PASS if sender == MTO else LOCAL_PASS

        assert SPOOFED == outcome(ENGINE.mail(sender, [top, below]))

    @pytest.mark.parametrize("top", BROKEN_TRUSTED)
    def test_broken_trusted_header_counts_under_exchange_online(self, top: str) -> None:
        """Accepting Exchange Online's results, the broken trusted header still counts above EOP's pass."""
        assert SPOOFED == outcome(EO_ENGINE.mail(MTO, [top, EOP_PASS]))

    def test_trailing_dot_in_policy_is_ignored(self) -> None:
        """A trusted id written with a trailing dot in the policy counts for the header without one."""
        engine = TrustEngine(SAMPLE, Policy.from_data({"mail": {"trusted_authserv_ids": ["MX.Contoso.com."]}}))

        assert (SPOOFED, PASSED) == (outcome(engine.mail(MTO, [f"{MX}; dmarc=fail header.from=fabrikam.com",
                                                                PASS])), outcome(engine.mail(MTO, [PASS])))

    def test_parse_that_disagrees_with_the_token_is_unparsable(self) -> None:
        """A trusted token the parser reads as a method (Exchange Online's form) is a failure, not results."""
        top = f"{MX} = pass; dmarc=pass header.from=fabrikam.com"

        assert (top, None) == select_counting_header([top, PASS], trusted_authserv_ids=TRUSTED,
                                                     accept_exchange_online=True)

    @pytest.mark.parametrize("top", [
        pytest.param(f"{MX}x; dmarc=fail header.from=fabrikam.com", id="longer-token"),
        pytest.param(f"x{MX}; dmarc=fail header.from=fabrikam.com", id="prefix"),
        pytest.param(f"{MX}..; dmarc=fail header.from=fabrikam.com", id="two-trailing-dots"),
    ])
    def test_other_tokens_do_not_count(self, top: str) -> None:
        """A first token that is not a trusted id (as compared) does not count, so the header below decides."""
        assert PASSED == outcome(ENGINE.mail(MTO, [top, PASS]))

    @pytest.mark.parametrize("top", [
        pytest.param(f"(boundary) {MX}; dmarc=fail header.from=fabrikam.com", id="leading-comment"),
        pytest.param(f'"{MX}"; dmarc=fail header.from=fabrikam.com', id="quoted-id"),
        pytest.param(f"{MX}.; dmarc=fail header.from=fabrikam.com", id="trailing-dot"),
        pytest.param(f'{MX}"x"; dmarc=pass header.from=fabrikam.com', id="quote-after-id"),
        pytest.param(f"{MX},; dmarc=pass header.from=fabrikam.com", id="comma-after-id"),
        pytest.param(f"{MX}\u212a; dmarc=pass header.from=fabrikam.com", id="kelvin-sign-after-id"),
        pytest.param("(" + "c" * 2000 + f") {MX}; dmarc=fail header.from=fabrikam.com", id="long-leading-comment"),
        pytest.param('"' + "q" * 2000 + '"; dmarc=pass header.from=fabrikam.com', id="long-quoted-id"),
        pytest.param("(" + "c" * 2000 + ") mx.internal.example; dmarc=pass header.from=fabrikam.com",
                     id="long-comment-then-untrusted-id"),
        pytest.param(f" \r\n\t{MX.upper()}.; dmarc=fail header.from=fabrikam.com", id="folded-upper-dot"),
        pytest.param(f"authentication-results : {MX}; dmarc=fail header.from=fabrikam.com", id="field-name"),
    ])
    def test_trusted_forms_count(self, top: str) -> None:
        """A trusted id after a comment, quoted, folded, after the field name, with a trailing dot or with a
        character after it that cannot continue an authserv-id counts; so does a start too long to read: it
        fails (its fail, or it cannot be parsed), and the pass below it is never read."""
        assert SPOOFED == outcome(ENGINE.mail(MTO, [top, PASS]))

    def test_id_cut_at_the_window_counts(self) -> None:
        """A trusted id that a leading comment pushes across _ID_WINDOW is not read as its cut-off piece
        (mx.cont): the header counts, its fail decides, and the forged pass below is never read."""
        top = "(" + "x" * 1008 + f") {MX}; dmarc=fail header.from=fabrikam.com"
        selected, results = select_counting_header([top, PASS], trusted_authserv_ids=TRUSTED,
                                                   accept_exchange_online=False)

        assert (top, MX, SPOOFED) == (selected, results and results.authserv_id, outcome(ENGINE.mail(MTO, [top, PASS])))

    def test_white_space_to_the_window_counts(self) -> None:
        """A comment and white space that reach the end of _ID_WINDOW leave the start unread: the value counts."""
        top = "(c)" + " " * 2000 + f"{MX}; dmarc=fail header.from=fabrikam.com"

        assert (top, SPOOFED) == (select_counting_header([top, PASS], trusted_authserv_ids=TRUSTED,
                                                         accept_exchange_online=False)[0],
                                  outcome(ENGINE.mail(MTO, [top, PASS])))

    def test_method_cut_at_the_window_counts_under_exchange_online(self) -> None:
        """Accepting Exchange Online's results, a method cut at _ID_WINDOW (dmarc of dmarc=fail) is not taken
        for an untrusted authserv-id: the header counts, its fail decides over the forged pass below."""
        top = "(" + "x" * 1016 + ") dmarc=fail header.from=fabrikam.com"
        selected, results = select_counting_header([top, EOP_PASS], trusted_authserv_ids=TRUSTED,
                                                   accept_exchange_online=True)

        assert (top, None, SPOOFED) == (selected, results and results.authserv_id,
                                        outcome(EO_ENGINE.mail(MTO, [top, EOP_PASS])))

    @pytest.mark.parametrize(("top", "eo"), [
        pytest.param("d" * ma.MAX_LENGTH + "=fail", True, id="eo-token-past-the-limit"),
        pytest.param("d" * (ma.MAX_LENGTH + 10), True, id="eo-token-to-the-end"),
        pytest.param(" " * ma.MAX_LENGTH + f"{MX}; dmarc=fail", False, id="white-space-past-the-limit"),
        pytest.param(MX[:7] + "d" * ma.MAX_LENGTH, False, id="token-past-the-limit"),
    ])
    def test_token_past_max_length_counts_unparsable(self, top: str, eo: bool) -> None:
        """A value over MAX_LENGTH whose first token (or the white space before it) reaches the limit counts
        and cannot be parsed: auth_header_unparsable, spoof_suspected, never the forged pass below it."""
        below, engine = (EOP_PASS, EO_ENGINE) if eo else (PASS, ENGINE)
        decision = engine.mail(MTO, [top, below])

        assert ((top, None), SPOOFED, True, True) == (
            select_counting_header([top, below], trusted_authserv_ids=TRUSTED, accept_exchange_online=eo),
            outcome(decision), "auth_header_unparsable" in decision.reasons, "spoof_suspected" in decision.reasons)

    def test_oversized_value_with_a_short_untrusted_id_is_skipped(self) -> None:
        """An oversized value whose untrusted first token ends well within the limit still does not count."""
        top = "mx.internal.example; " + "x" * ma.MAX_LENGTH

        assert PASSED == outcome(ENGINE.mail(MTO, [top, PASS]))

    @given(st.sampled_from(["", "Authentication-Results:", " ", "\r\n\t"]),
           st.sampled_from([MX, MX.upper(), MX.title(), MX + ".", "Mx.Contoso.COM."]),
           st.one_of(st.just(""), st.tuples(st.sampled_from([";", "(", " ", "\t", "\r\n "]),
                                            st.text(st.sampled_from('ab=;/ ()"\\.\r\n1é'), max_size=30))
                     .map("".join)))
    def test_any_value_with_a_trusted_first_token_is_the_one_read(self, start: str, authserv_id: str,
                                                                    rest: str) -> None:
        """Whatever follows a trusted first token, that value is the one selected, never the pass below it; and
        the decision is the same as for that value alone."""
        top = start + authserv_id + rest

        selected, _ = select_counting_header([top, PASS], trusted_authserv_ids=TRUSTED,
                                             accept_exchange_online=False)

        assert (top, outcome(ENGINE.mail(MTO, [top]))) == (selected, outcome(ENGINE.mail(MTO, [top, PASS])))


# -- 3. each pass aligns on its own ----------------------------------------------------------------------------

class TestEachPassAlignsOnItsOwn:
    """A pass counts only for the domain it was computed for: its own header.from, or for compauth without one
    the header.from of the DMARC results in the same header; a pass for another domain, or none, never counts
    for the sender."""

    @pytest.mark.parametrize("results", [
        pytest.param("dmarc=none header.from=fabrikam.com; compauth=pass reason=100 header.from=evil.example",
                     id="review-example"),
        pytest.param("compauth=pass reason=100 header.from=evil.example; dmarc=none header.from=fabrikam.com",
                     id="compauth-first"),
        pytest.param("dmarc=pass; dmarc=none header.from=fabrikam.com", id="dmarc-pass-without-domain"),
        pytest.param("dmarc=pass; compauth=none reason=451 header.from=fabrikam.com",
                     id="dmarc-pass-without-domain-beside-compauth"),
        pytest.param("compauth=pass reason=100; dmarc=none header.from=evil.example; "
                     "dmarc=none header.from=fabrikam.com", id="compauth-between-two-dmarc-domains"),
    ])
    def test_pass_for_another_domain_does_not_authenticate(self, results: str) -> None:
        """Each header, whose only pass is for another domain or none, leaves the MTO sender unauthenticated."""
        decision = ENGINE.mail(MTO, f"{MX}; {results}")

        assert (UNAUTHENTICATED, "auth_misaligned") == (outcome(decision), decision.reasons[-3])

    @pytest.mark.parametrize("results", [
        pytest.param("dmarc=none header.from=fabrikam.com; compauth=pass reason=100", id="compauth-takes-dmarc"),
        pytest.param("dmarc=none header.from=evil.example; compauth=pass reason=100 header.from=fabrikam.com",
                     id="compauth-own-domain"),
        pytest.param("dmarc=pass header.from=FABRIKAM.com; compauth=none reason=451 header.from=evil.example",
                     id="dmarc-own-domain"),
        pytest.param("dmarc=none header.from=fabrikam.com; dmarc=none header.from=Fabrikam.COM; "
                     "compauth=pass reason=100", id="dmarc-domains-agree"),
    ])
    def test_pass_for_the_sender_authenticates(self, results: str) -> None:
        """A pass computed for the sender's own domain authenticates, whatever other results name."""
        assert PASSED == outcome(ENGINE.mail(MTO, f"{MX}; {results}"))

    def test_to_mail_auth_never_credits_a_pass_to_another_domain(self) -> None:
        """to_mail_auth writes a pass for another domain as none, so its MailAuth authenticates no one with it."""
        parsed = parse_authentication_results(
            f"{MX}; dmarc=none header.from=fabrikam.com; compauth=pass reason=100 header.from=evil.example")
        given = to_mail_auth(parsed)

        assert (MailAuth(dmarc="none", compauth="pass", header_from="evil.example"), UNAUTHENTICATED) == (
            given, outcome(ENGINE.mail(MTO, given)))

    def test_to_mail_auth_demotes_the_second_pass(self) -> None:
        """When DMARC and compauth pass for different domains, the compauth pass is written none."""
        parsed = parse_authentication_results(
            f"{MX}; dmarc=pass header.from=fabrikam.com; compauth=pass reason=100 header.from=evil.example")

        assert MailAuth(dmarc="pass", compauth="none", header_from="fabrikam.com") == to_mail_auth(parsed)

    def test_to_mail_auth_pass_without_domain_aligns_with_none(self) -> None:
        """A pass that names no domain gives header_from "", which aligns with no sender."""
        given = to_mail_auth(parse_authentication_results(f"{MX}; dmarc=pass"))

        assert (MailAuth(dmarc="pass", header_from=""), UNAUTHENTICATED) == (given, outcome(ENGINE.mail(MTO, given)))

    @given(st.lists(st.tuples(st.sampled_from(["dmarc", "compauth"]),
                              st.sampled_from(["pass", "fail", "none", "softpass", "bestguesspass"]),
                              st.sampled_from(["100", "701", "201", None]),
                              st.sampled_from(["fabrikam.com", "FABRIKAM.COM", "evil.example", None])),
                    min_size=1, max_size=4))
    def test_authenticated_exactly_by_an_aligned_pass(
            self, results: list[tuple[str, str, str | None, str | None]]) -> None:
        """For any mix of dmarc and compauth results, the MTO sender is authenticated exactly when no result
        fails and the first dmarc or compauth result is a pass computed for fabrikam.com; the MailAuth that
        to_mail_auth makes never authenticates where the header does not."""
        header = f"{MX}; " + "; ".join(
            f"{method}={result}" + (f" reason={reason}" if reason else "") + (f" header.from={d}" if d else "")
            for method, result, reason, d in results)
        dmarc = [r for r in results if r[0] == "dmarc"]
        compauth = [r for r in results if r[0] == "compauth"]
        dmarc_froms = {d.lower() for _, _, _, d in dmarc if d}
        qualified = [r for r in compauth if r[1] != "pass" or (r[2] or "")[:1] in ("1", "7")]
        failed = any(r[1] == "fail" for r in results)
        dmarc_ok = bool(dmarc) and dmarc[0][1] == "pass" and (dmarc[0][3] or "").lower() == "fabrikam.com"
        first = compauth[0] if compauth else None
        compauth_ok = (first is not None and first[1] == "pass" and first in qualified
                       and (first[3].lower() if first[3] else next(iter(dmarc_froms)) if len(dmarc_froms) == 1
                            else "") == "fabrikam.com")
        expected = not failed and (dmarc_ok or compauth_ok)

        from_header = ENGINE.mail(MTO, header).authenticated
        from_reduction = ENGINE.mail(MTO, to_mail_auth(parse_authentication_results(header))).authenticated

        assert (expected, True) == (from_header, from_header or not from_reduction)


# -- 5. a MailAuth is read as the raw header is -----------------------------------------------------------------

class TestMailAuthReadAsHeader:
    """MailAuth result words and header_from are case-insensitive, an unknown (or non-ASCII) word is no result,
    a wrong type is a TypeError naming the field when it is built, and one built around that check is read as
    a failure: engine.mail never raises on it."""

    @pytest.mark.parametrize(("auth", "sender", "expected"), [
        pytest.param(MailAuth(dmarc="FAIL", compauth="pass", header_from="fabrikam.com"), MTO, SPOOFED,
                     id="FAIL-beside-pass"),
        pytest.param(MailAuth(dmarc="pass", compauth="Fail", header_from="fabrikam.com"), MTO, SPOOFED,
                     id="compauth-Fail"),
        pytest.param(MailAuth(dmarc="Fail", header_from="contoso.com"), LOCAL, SPOOFED, id="Fail-local"),
        pytest.param(MailAuth(dmarc="PASS", header_from="FABRIKAM.COM"), MTO, PASSED, id="PASS"),
        pytest.param(MailAuth(compauth="Pass", header_from="Fabrikam.Com"), MTO, PASSED, id="compauth-Pass"),
    ])
    def test_words_are_case_insensitive(self, auth: MailAuth, sender: str, expected: tuple[bool, Trust, bool],
                                        ) -> None:
        """A word in any case means what it means in a raw header."""
        assert expected == outcome(ENGINE.mail(sender, auth))

    @pytest.mark.parametrize("word", ["passed", " pass", "pass\n", "\uff50\uff41\uff53\uff53", "pa\u017f\u017f",
                                      "fa\u0131l", "FA\u0130L", "", "1"])
    def test_unknown_word_is_no_result(self, word: str) -> None:
        """An unknown or non-ASCII word (fullwidth, long s, dotless i) is neither a pass nor a failure."""
        decision = ENGINE.mail(MTO, MailAuth(dmarc=word, compauth=word, header_from="fabrikam.com"))

        assert (UNAUTHENTICATED, "auth_not_pass") == (outcome(decision), decision.reasons[-3])

    @pytest.mark.parametrize(("fields", "name"), [
        ({"dmarc": 1}, "dmarc"), ({"compauth": b"pass"}, "compauth"), ({"header_from": ["fabrikam.com"]},
                                                                       "header_from"),
        ({"smtp_auth": "yes"}, "smtp_auth"), ({"smtp_auth": 1}, "smtp_auth"), ({"smtp_auth": None}, "smtp_auth"),
    ])
    def test_wrong_type_is_a_type_error_naming_the_field(self, fields: dict[str, object], name: str) -> None:
        """Building a MailAuth with a field of the wrong type raises TypeError naming that field."""
        with pytest.raises(TypeError, match=rf"^MailAuth\.{name} must be "):
            MailAuth(**fields)  # type: ignore[arg-type]

    @pytest.mark.parametrize(("name", "value", "sender"), [
        ("dmarc", 1, MTO), ("compauth", ["fail"], MTO), ("header_from", 1, MTO), ("header_from", b"x", LOCAL),
        ("smtp_auth", "yes", LOCAL), ("smtp_auth", 1, LOCAL),
    ])
    def test_built_around_the_check_is_a_failure(self, name: str, value: object, sender: str) -> None:
        """A MailAuth whose field was set to a wrong type after it was built is read as a failure (spoofing for
        a protected sender), even where it would otherwise pass; engine.mail and explain do not raise."""
        auth = MailAuth(dmarc="pass", header_from=sender.partition("@")[2], smtp_auth=True)
        object.__setattr__(auth, name, value)

        decision = ENGINE.mail(sender, auth)

        assert (SPOOFED, True, False) == (outcome(decision), "auth_given_invalid" in decision.reasons,
                                          "internal_error" in decision.reasons)
        assert "auth_given_invalid: " in ENGINE.explain(decision)

    @given(st.sampled_from(["pass", "fail", "none", "softpass", "bestguesspass", "temperror"]),
           st.sampled_from(["dmarc", "compauth"]), st.integers(0, 2 ** 13 - 1),
           st.sampled_from(["fabrikam.com", "FABRIKAM.COM", "evil.example"]), st.sampled_from([MTO, LOCAL]))
    def test_same_decision_as_the_raw_header(self, word: str, method: str, mask: int, domain: str,
                                             sender: str) -> None:
        """A MailAuth with one word in any case decides as the trusted raw header with that result does (a
        compauth word with EOP's reason 100, since a MailAuth's compauth pass is a qualified one)."""
        spelled = "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(word))
        reason = " reason=100" if method == "compauth" else ""
        header = f"{MX}; {method}={spelled}{reason} header.from={domain}"
        given_auth = (MailAuth(dmarc=spelled, header_from=domain) if method == "dmarc"
                      else MailAuth(compauth=spelled, header_from=domain))

        assert outcome(ENGINE.mail(sender, header)) == outcome(ENGINE.mail(sender, given_auth))

    @given(st.one_of(st.none(), st.text(max_size=12)), st.one_of(st.none(), st.text(max_size=12)),
           st.one_of(st.none(), st.text(max_size=20)))
    def test_any_words_never_raise_and_pass_only_for_pass(self, dmarc: str | None, compauth: str | None,
                                                          header_from: str | None) -> None:
        """Any text words and domain give a decision (never an error); it is authenticated only when a word is
        an ASCII spelling of pass and none of fail."""
        decision = ENGINE.mail(MTO, MailAuth(dmarc=dmarc, compauth=compauth, header_from=header_from))
        words = [w.lower() for w in (dmarc, compauth) if w is not None and w.isascii()]

        assert "internal_error" not in decision.reasons
        assert True is (not decision.authenticated or ("pass" in words and "fail" not in words))


# -- 12. many values: only the first MAX_VALUES are read, skipping without a parse --------------------------

class _Limited(Sequence[str]):
    """A sequence of values that fails the test when any value past ``limit`` is read."""

    def __init__(self, values: list[str], limit: int) -> None:
        self._values, self._limit = values, limit

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice) or index >= self._limit:  # a slice could reach past the limit
            raise AssertionError(f"value {index} was read, past the first {self._limit}")
        return self._values[index]

    def __iter__(self) -> Iterator[str]:
        for index in range(len(self._values)):
            yield self[index]


class TestManyValues:
    """Only the first MAX_VALUES (64) values are read; a value that does not count is skipped without parsing,
    so 100,000 values cost what 64 do."""

    def test_max_values_is_64(self) -> None:
        """The cap is 64 values."""
        assert 64 == MAX_VALUES

    def test_value_past_the_cap_is_not_read(self) -> None:
        """A trusted pass below 64 other values is not read: the mail is unauthenticated (auth_header_limit)."""
        decision = ENGINE.mail(MTO, ["x"] * MAX_VALUES + [PASS])

        assert (UNAUTHENTICATED, "auth_header_limit") == (outcome(decision), decision.reasons[-4])

    def test_last_value_within_the_cap_is_read(self) -> None:
        """A trusted pass as the 64th value is read."""
        assert PASSED == outcome(ENGINE.mail(MTO, ["x"] * (MAX_VALUES - 1) + [PASS]))

    def test_select_reads_no_value_past_the_cap(self) -> None:
        """select_counting_header never touches a value past the 64th, even of 100,000."""
        values = _Limited(["a"] * 100_000, MAX_VALUES)

        assert (None, None) == select_counting_header(values, trusted_authserv_ids=TRUSTED,
                                                      accept_exchange_online=True)

    def test_engine_reads_no_value_past_the_cap(self) -> None:
        """engine.mail never touches a value past the 64th (a bad type there is not even seen)."""
        decision = ENGINE.mail(MTO, _Limited(["a"] * 100_000, MAX_VALUES))

        assert "internal_error" not in decision.reasons
        assert (UNAUTHENTICATED, "auth_header_limit") == (outcome(decision), decision.reasons[-4])

    @pytest.mark.parametrize("eo", [False, True])
    def test_skipped_values_are_not_parsed(self, eo: bool) -> None:
        """Values that do not count are skipped without a parse; only the counting one is parsed."""
        values = ["a", "mail.internal.contoso.com; dkim=pass header.d=fabrikam.com", "x" * 60_000,
                  "mx.contoso.comx; dmarc=pass", " mx.internal.example 1; spf=pass", PASS]
        with mock.patch.object(ma, "parse_authentication_results", wraps=ma.parse_authentication_results) as parse, \
                mock.patch.object(ma, "_Parser", wraps=ma._Parser) as parser:
            selected, _ = select_counting_header(values, trusted_authserv_ids=TRUSTED, accept_exchange_online=eo)

        # one parse, of the counting value, by the fast path: no value's start was read by the parser either
        assert (PASS, 1, 0) == (selected, parse.call_count, parser.call_count)

    def test_fewer_than_the_cap_untrusted_says_untrusted(self) -> None:
        """Without a counting value among fewer than 64, the reason stays auth_header_untrusted."""
        assert "auth_header_untrusted" in ENGINE.mail(MTO, ["x"] * MAX_VALUES).reasons

    @given(st.lists(st.one_of(
        st.text(st.sampled_from('mxMX.contoso;()" \t\r\n=/Aa:+1é\\,k\u212a\u017f'), max_size=40),
        st.sampled_from([PASS, EOP_PASS, f"{MX}.", f"{MX} (", f'"{MX}"; dmarc=pass', "(c) mx.contoso.com; none",
                         "Authentication-Results: mx.contoso.com; none", "authentication-results:dkim=pass",
                         f"{MX.upper()}\u212a; none", "m\u212ax.contoso.com; none",
                         "(" + "x" * 1008 + f") {MX}; none", "(" + "x" * 1016 + ") dmarc=fail",
                         "d" * ma.MAX_LENGTH + "=fail", " " * ma.MAX_LENGTH + MX]),
    ), max_size=5), st.booleans(), st.sampled_from([TRUSTED, frozenset({"MX.CONTOSO.COM.", "a"}), frozenset(),
                                                    frozenset({"mx:1", "a+b", "k"}), frozenset({"m\u017f"})]))
    def test_quick_check_never_skips_a_counting_value(self, values: list[str], eo: bool,
                                                      trusted: frozenset[str]) -> None:
        """For any values, the answer with the one-pattern quick check equals the answer with it disabled
        (every value then goes through the exact check), under either Exchange Online setting."""
        expected_with = select_counting_header(values, trusted_authserv_ids=trusted, accept_exchange_online=eo)
        real = ma._trusted(trusted, eo)
        exhaustive = ma._Trusted(real.ids, re.compile("(?!)" if eo else ""), real.skip_on_match)
        with mock.patch.object(ma, "_trusted", return_value=exhaustive):
            expected_without = select_counting_header(values, trusted_authserv_ids=trusted,
                                                      accept_exchange_online=eo)

        assert expected_without == expected_with
