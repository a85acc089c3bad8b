"""Tests for mtotrust.mailauth: the Authentication-Results parser, the choice of the header that counts, and From."""

# The house style asserts `expected == actual` (style.md, lesson 11), which SIM300 calls a Yoda condition.

from __future__ import annotations

import contextlib
import email.header
import email.headerregistry
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtotrust
from mtotrust import mailauth
from mtotrust._errors import AuthResultsError, FromAddressError, MtoTrustError, shown
from mtotrust._model import MailAuth
from mtotrust.mailauth import (
    MAX_FROM_LENGTH,
    MAX_LENGTH,
    AuthResults,
    MethodResult,
    from_address,
    parse_authentication_results,
    select_counting_header,
    to_mail_auth,
)
from mtotrust.testing.strategies import addresses

EOP = (
    "spf=pass (sender IP is 40.107.1.2) smtp.mailfrom=fabrikam.com; dkim=pass (signature was verified) "
    "header.d=fabrikam.com;dmarc=pass action=none header.from=fabrikam.com;compauth=pass reason=100"
)
EOP_PARSED = AuthResults(
    None,
    (
        MethodResult("spf", "pass", None, (("smtp.mailfrom", "fabrikam.com"),)),
        MethodResult("dkim", "pass", None, (("header.d", "fabrikam.com"),)),
        MethodResult("dmarc", "pass", None, (("action", "none"), ("header.from", "fabrikam.com"))),
        MethodResult("compauth", "pass", "100", (("reason", "100"),)),
    ),
)
TRUSTED = frozenset({"mx.contoso.com"})


def parse(value: str) -> AuthResults:
    return parse_authentication_results(value)


def error_of(value: object) -> AuthResultsError:
    with pytest.raises(AuthResultsError) as info:
        parse_authentication_results(value)  # type: ignore[arg-type]
    return info.value


class TestMethodResult:
    def test_prop_returns_first_value(self) -> None:
        """prop returns the value of the first property of that name."""
        result = MethodResult("dkim", "pass", None, (("header.d", "a.example"), ("header.d", "b.example")))

        assert "a.example" == result.prop("header.d")

    def test_prop_is_case_insensitive(self) -> None:
        """prop finds a property whatever the case of the name asked for."""
        result = MethodResult("dmarc", "pass", None, (("header.from", "a.example"),))

        assert "a.example" == result.prop("Header.From")

    def test_prop_missing_is_none(self) -> None:
        """prop returns None for a property the result does not carry."""
        assert None is MethodResult("spf", "pass").prop("smtp.mailfrom")


class TestAuthResults:
    def test_get_filters_by_method_case_insensitively(self) -> None:
        """get returns every result of the method in header order, whatever the case asked for."""
        first, second = MethodResult("dkim", "pass"), MethodResult("dkim", "fail")
        results = AuthResults("example.com", (first, MethodResult("spf", "pass"), second))

        assert (first, second) == results.get("DKIM")

    def test_get_missing_is_empty(self) -> None:
        """get returns an empty tuple for a method that is absent."""
        assert () == AuthResults(None, ()).get("dmarc")


class TestParseExchangeOnline:
    def test_eop_header(self) -> None:
        """Exchange Online's header without an authserv-id parses, keeping bare action= and reason= pairs."""
        assert EOP_PARSED == parse(EOP)

    def test_eop_header_with_field_name(self) -> None:
        """The Authentication-Results: field name in front of the value is skipped."""
        assert EOP_PARSED == parse("Authentication-Results: " + EOP)

    def test_eop_header_with_field_name_in_other_case_and_trailing_crlf(self) -> None:
        """The field name is matched case-insensitively and the field's own CRLF is ignored."""
        assert EOP_PARSED == parse("authentication-results :" + EOP + "\r\n")

    def test_other_field_name_is_not_skipped(self) -> None:
        """Only the Authentication-Results field name is skipped; a longer name is read as an authserv-id."""
        value = "Authentication-Results-Original: " + EOP

        expected = (
            f"expected ';' before the next result at position 31 in Authentication-Results {repr(value)[:77]}..."
        )
        assert expected == str(error_of(value))

    def test_dkim_none_unsigned(self) -> None:
        """EOP's dkim=none (message not signed) header.d=none parses as a dkim result of none."""
        value = (
            "spf=none (sender IP is 1.2.3.4) smtp.mailfrom=x.com; "
            "dkim=none (message not signed) header.d=none;"
        )

        expected = AuthResults(
            None,
            (
                MethodResult("spf", "none", None, (("smtp.mailfrom", "x.com"),)),
                MethodResult("dkim", "none", None, (("header.d", "none"),)),
            ),
        )
        assert expected == parse(value)

    def test_dmarc_fail_oreject(self) -> None:
        """EOP's dmarc=fail action=oreject keeps the action and the From domain."""
        value = "dmarc=fail action=oreject header.from=x.com;compauth=fail reason=000"

        expected = AuthResults(
            None,
            (
                MethodResult("dmarc", "fail", None, (("action", "oreject"), ("header.from", "x.com"))),
                MethodResult("compauth", "fail", "000", (("reason", "000"),)),
            ),
        )
        assert expected == parse(value)

    def test_method_version_without_authserv_id(self) -> None:
        """A first token followed by / is a versioned method, so the header has no authserv-id."""
        assert AuthResults(None, (MethodResult("dkim", "pass"),)) == parse("dkim/1=pass")


class TestParseRfc8601Examples:
    def test_b2_none(self) -> None:
        """RFC 8601 B.2: an authserv-id with version 1 and none has no results."""
        assert AuthResults("example.org", ()) == parse("Authentication-Results: example.org 1; none")

    def test_b3_spf(self) -> None:
        """RFC 8601 B.3: one SPF result with smtp.mailfrom."""
        expected = AuthResults(
            "example.com", (MethodResult("spf", "pass", None, (("smtp.mailfrom", "example.net"),)),)
        )

        assert expected == parse("Authentication-Results: example.com; spf=pass smtp.mailfrom=example.net")

    def test_b4_smtp_auth_and_spf(self) -> None:
        """RFC 8601 B.4: SMTP AUTH with a comment and an address, then SPF, over folded lines."""
        value = (
            "Authentication-Results: example.com;\r\n"
            "                  auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n"
            "                  spf=pass smtp.mailfrom=example.net"
        )

        expected = AuthResults(
            "example.com",
            (
                MethodResult("auth", "pass", None, (("smtp.auth", "sender@example.net"),)),
                MethodResult("spf", "pass", None, (("smtp.mailfrom", "example.net"),)),
            ),
        )
        assert expected == parse(value)

    def test_b4_iprev(self) -> None:
        """RFC 8601 B.4: iprev with policy.iprev carrying an IP address."""
        value = (
            "Authentication-Results: example.com; iprev=pass\r\n                  policy.iprev=192.0.2.200"
        )

        expected = AuthResults(
            "example.com", (MethodResult("iprev", "pass", None, (("policy.iprev", "192.0.2.200"),)),)
        )
        assert expected == parse(value)

    def test_b5_several_methods(self) -> None:
        """RFC 8601 B.5: auth and a failing SPF in one header."""
        value = (
            "Authentication-Results: example.com;\r\n"
            "                  auth=pass (cram-md5) smtp.auth=sender@example.com;\r\n"
            "                  spf=fail smtp.mailfrom=example.com"
        )

        expected = AuthResults(
            "example.com",
            (
                MethodResult("auth", "pass", None, (("smtp.auth", "sender@example.com"),)),
                MethodResult("spf", "fail", None, (("smtp.mailfrom", "example.com"),)),
            ),
        )
        assert expected == parse(value)

    def test_b6_quoted_reasons_and_at_domain(self) -> None:
        """RFC 8601 B.6: quoted reasons are unquoted and header.i=@domain values are kept."""
        value = (
            "Authentication-Results: example.com;\r\n"
            '    dkim=pass reason="good signature"\r\n'
            "      header.i=@mail-router.example.net;\r\n"
            '    dkim=fail reason="bad signature"\r\n'
            "      header.i=@newyork.example.com"
        )

        expected = AuthResults(
            "example.com",
            (
                MethodResult(
                    "dkim",
                    "pass",
                    "good signature",
                    (("reason", "good signature"), ("header.i", "@mail-router.example.net")),
                ),
                MethodResult(
                    "dkim",
                    "fail",
                    "bad signature",
                    (("reason", "bad signature"), ("header.i", "@newyork.example.com")),
                ),
            ),
        )
        assert expected == parse(value)

    def test_b7_comments_everywhere(self) -> None:
        """RFC 8601 B.7: comments around the version, the method version, the '.', and both '=' signs."""
        value = (
            "Authentication-Results: foo.example.net (foobar) 1 (baz);\r\n"
            "    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\r\n"
            "      policy (A dot can go here) . (like that) expired\r\n"
            "      (this surprised me) = (as I wasn't expecting it) 1362471462"
        )

        expected = AuthResults(
            "foo.example.net", (MethodResult("dkim", "fail", None, (("policy.expired", "1362471462"),)),)
        )
        assert expected == parse(value)


class TestParseSyntax:
    def test_nested_comments_with_escaped_parenthesis(self) -> None:
        """Nested comments and an escaped ')' inside a comment are skipped whole."""
        value = "mx.contoso.com (outer (inner \\) still inner) outer); (c (d)) dmarc (x)=(y) pass (z (w))"

        assert AuthResults("mx.contoso.com", (MethodResult("dmarc", "pass"),)) == parse(value)

    def test_folding_with_lf_only(self) -> None:
        """A bare LF followed by whitespace folds like CRLF."""
        assert AuthResults("mx.contoso.com", (MethodResult("spf", "pass"),)) == parse(
            "mx.contoso.com;\n\tspf=pass"
        )

    def test_folding_inside_quoted_string_is_unfolded(self) -> None:
        """Folding inside a quoted reason leaves the whitespace but drops the line break."""
        expected = AuthResults(
            "mx.contoso.com", (MethodResult("dkim", "fail", "bad  sig", (("reason", "bad  sig"),)),)
        )

        assert expected == parse('mx.contoso.com; dkim=fail reason="bad\r\n  sig"')

    def test_uppercase_words_are_lowered(self) -> None:
        """Methods, results and property names are lower-cased; values and the authserv-id keep their case."""
        value = "MX.Contoso.COM; DMARC=PASS Action=None Header.From=Fabrikam.COM"

        expected = AuthResults(
            "MX.Contoso.COM",
            (MethodResult("dmarc", "pass", None, (("action", "None"), ("header.from", "Fabrikam.COM"))),),
        )
        assert expected == parse(value)

    def test_quoted_value_with_escapes(self) -> None:
        """A quoted property value is unquoted and its backslash escapes resolved."""
        value = r'mx.contoso.com; dkim=pass header.b="ab\"c;d\\"'

        expected = AuthResults(
            "mx.contoso.com", (MethodResult("dkim", "pass", None, (("header.b", 'ab"c;d\\'),)),)
        )
        assert expected == parse(value)

    def test_quoted_local_part_keeps_quotes(self) -> None:
        """An address with a quoted local-part is kept as written."""
        value = 'mx.contoso.com; auth=pass smtp.auth="john doe"@contoso.com'

        expected = AuthResults(
            "mx.contoso.com",
            (MethodResult("auth", "pass", None, (("smtp.auth", '"john doe"@contoso.com'),)),),
        )
        assert expected == parse(value)

    def test_quoted_authserv_id(self) -> None:
        """A quoted authserv-id is unquoted."""
        assert AuthResults("mx.contoso.com", (MethodResult("spf", "pass"),)) == parse(
            '"mx.contoso.com"; spf=pass'
        )

    def test_base64_and_utf8_values(self) -> None:
        """Unquoted values may carry base64 ('/', '+', '=') and UTF-8 (RFC 6532)."""
        value = "mx.contoso.com; dkim=pass header.b=Ab+/cd== header.from=bücher.example"

        expected = AuthResults(
            "mx.contoso.com",
            (
                MethodResult(
                    "dkim", "pass", None, (("header.b", "Ab+/cd=="), ("header.from", "bücher.example"))
                ),
            ),
        )
        assert expected == parse(value)

    def test_empty_results_are_skipped(self) -> None:
        """A trailing ';' and an empty result between two ';' add nothing."""
        expected = AuthResults("mx.contoso.com", (MethodResult("spf", "pass"), MethodResult("dkim", "pass")))

        assert expected == parse("mx.contoso.com; spf=pass; ; dkim=pass;")

    def test_method_called_none(self) -> None:
        """After an authserv-id, none followed by '=' is a method, not the no-result marker."""
        assert AuthResults("mx.contoso.com", (MethodResult("none", "pass"),)) == parse(
            "mx.contoso.com; none=pass"
        )

    def test_version_with_leading_zero(self) -> None:
        """Version 01 is version 1."""
        assert AuthResults("example.org", ()) == parse("example.org 01; none")


class TestParseErrors:
    def test_empty_string(self) -> None:
        """An empty value is an error that says nothing was found."""
        expected = (
            "expected an authserv-id or a result, found nothing at position 0 in Authentication-Results ''"
        )

        assert expected == str(error_of(""))

    def test_unclosed_comment(self) -> None:
        """An unclosed comment is an error at the opening parenthesis."""
        value = "mx.contoso.com; dmarc=pass (unclosed (nested)"

        expected = f"unclosed comment at position 27 in Authentication-Results {value!r}"
        assert expected == str(error_of(value))

    def test_dmarc_without_result(self) -> None:
        """'dmarc=' with no result is an error naming the method."""
        expected = "expected a result for method 'dmarc' at position 6 in Authentication-Results 'dmarc='"

        assert expected == str(error_of("dmarc="))

    def test_nul(self) -> None:
        """A NUL is an error at its position."""
        value = "mx.contoso.com; dmarc=pass\x00"

        expected = (
            f"control character '\\x00' is not allowed at position 26 in Authentication-Results {value!r}"
        )
        assert expected == str(error_of(value))

    def test_too_long(self) -> None:
        """A 100 KB value is refused before parsing, echoing it cut to 80 characters, and naming its length."""
        value = "mx.contoso.com; dmarc=pass " + "a" * 100_000

        expected = (
            f"Authentication-Results {repr(value)[:77]}... is {len(value)} characters long, more than 65536"
        )
        assert expected == str(error_of(value))

    def test_huge_version(self) -> None:
        """A 5000-digit version is refused without converting it to int, and the message stays short."""
        value = "mx.contoso.com " + "9" * 5000 + "; none"

        expected = (
            f"unsupported version {repr('9' * 200)[:77]}... (only 1 is defined) at position 15"
            f" in Authentication-Results {repr(value)[:77]}..."
        )
        assert expected == str(error_of(value))

    def test_longest_allowed_value_parses(self) -> None:
        """A value of exactly MAX_LENGTH characters is parsed."""
        value = "mx.contoso.com; spf=pass (" + "c" * (MAX_LENGTH - 27) + ")"

        assert AuthResults("mx.contoso.com", (MethodResult("spf", "pass"),)) == parse(value)

    def test_error_carries_whole_value(self) -> None:
        """The error keeps the whole offending value as .value."""
        value = "x" * 200 + "="

        assert value == error_of(value).value

    def test_not_a_string(self) -> None:
        """bytes are refused with an AuthResultsError naming the type."""
        assert "an Authentication-Results value must be str, not bytes" == str(error_of(b"spf=pass"))

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (
                "mx.contoso.com",
                "expected ';' and results after the authserv-id 'mx.contoso.com' at position 14",
            ),
            ("mx.contoso.com spf=pass", "expected ';' before the next result at position 15"),
            ("mx.contoso.com 2; none", "unsupported version '2' (only 1 is defined) at position 15"),
            ("mx.contoso.com; none; spf=pass", "'none' must be the only result at position 22"),
            ("mx.contoso.com; spf=pass; none", "'none' must be the only result at position 26"),
            ("mx.contoso.com; none x", "expected ';' before the next result at position 21"),
            ("mx.contoso.com; spf pass", "expected '=' after method 'spf' at position 20"),
            ("mx.contoso.com; spf/=pass", "expected a version for method 'spf' at position 20"),
            ("mx.contoso.com; spf=pass smtp.=x", "expected a property name after 'smtp.' at position 30"),
            ("mx.contoso.com; spf=pass smtp.mailfrom", "expected '=' after 'smtp.mailfrom' at position 38"),
            (
                "mx.contoso.com; spf=pass smtp.mailfrom=;",
                "expected a value for 'smtp.mailfrom' at position 39",
            ),
            ('mx.contoso.com; dkim=fail reason="bad', "unclosed quoted-string at position 33"),
            (
                'mx.contoso.com; auth=pass smtp.auth="a b"@',
                "expected a domain after the quoted local-part of 'smtp.auth' at position 42",
            ),
            ("mx.contoso.com; spf=pass =x", "expected a property or ';' after spf=pass at position 25"),
            (
                "mx.contoso.com;\r\nspf=pass",
                "line break not followed by whitespace (not folding) at position 15",
            ),
            (
                "mx.contoso.com;\r spf=pass",
                "line break not followed by whitespace (not folding) at position 15",
            ),
            ("=pass", "expected an authserv-id or a method at position 0"),
            ("mx.contoso.com; dmarc=pässt", "expected a property or ';' after dmarc=p at position 23"),
        ],
    )
    def test_malformed(self, value: str, expected: str) -> None:
        """Each malformed value is an error naming what was expected, the position and the value."""
        assert f"{expected} in Authentication-Results {value!r}" == str(error_of(value))


class TestSelectCountingHeader:
    def test_forged_header_above_trusted_is_skipped(self) -> None:
        """A header with an untrusted authserv-id above the trusted one does not count."""
        forged = "evil.example; dmarc=pass header.from=contoso.com"
        trusted = "mx.contoso.com; dmarc=fail header.from=contoso.com"

        expected = (trusted, parse(trusted))
        assert expected == select_counting_header(
            [forged, trusted], trusted_authserv_ids=TRUSTED, accept_exchange_online=False
        )

    def test_trusted_unparsable_header_does_not_fall_through(self) -> None:
        """A trusted header that cannot be parsed is returned with None, never a valid header below it."""
        broken = "mx.contoso.com; dmarc="
        valid = "mx.contoso.com; dmarc=pass header.from=contoso.com"

        assert (broken, None) == select_counting_header(
            [broken, valid], trusted_authserv_ids=TRUSTED, accept_exchange_online=False
        )

    def test_trusted_oversized_header_is_unparsable(self) -> None:
        """A trusted header longer than MAX_LENGTH counts and is unparsable."""
        huge = "mx.contoso.com; spf=pass " + "(x)" * MAX_LENGTH

        assert (huge, None) == select_counting_header(
            [huge, "mx.contoso.com; dmarc=pass"], trusted_authserv_ids=TRUSTED, accept_exchange_online=False
        )

    def test_exchange_online_header_ignored_by_default(self) -> None:
        """A header without an authserv-id does not count unless Exchange Online results are accepted."""
        assert (None, None) == select_counting_header(
            EOP, trusted_authserv_ids=TRUSTED, accept_exchange_online=False
        )

    def test_exchange_online_header_accepted(self) -> None:
        """With accept_exchange_online, the header without an authserv-id counts."""
        assert (EOP, EOP_PARSED) == select_counting_header(
            [EOP], trusted_authserv_ids=frozenset(), accept_exchange_online=True
        )

    def test_exchange_online_untrusted_id_still_skipped(self) -> None:
        """accept_exchange_online does not make a header with an untrusted authserv-id count."""
        values = ["evil.example; dmarc=pass", EOP]

        assert (EOP, EOP_PARSED) == select_counting_header(
            values, trusted_authserv_ids=TRUSTED, accept_exchange_online=True
        )

    def test_topmost_counting_header_wins(self) -> None:
        """Of several counting headers, the topmost is returned."""
        top = "mx.contoso.com; dmarc=fail"
        values = [top, "mx.contoso.com; dmarc=pass", EOP]

        assert (top, parse(top)) == select_counting_header(
            values, trusted_authserv_ids=TRUSTED, accept_exchange_online=True
        )

    def test_exchange_online_topmost_wins_over_trusted_below(self) -> None:
        """An Exchange Online header above a trusted one counts when Exchange Online results are accepted."""
        assert (EOP, EOP_PARSED) == select_counting_header(
            [EOP, "mx.contoso.com; dmarc=fail"], trusted_authserv_ids=TRUSTED, accept_exchange_online=True
        )

    def test_authserv_id_compared_case_insensitively(self) -> None:
        """The authserv-id matches a trusted one whatever the case on either side."""
        value = "MX.CONTOSO.COM; spf=pass"

        assert (value, parse(value)) == select_counting_header(
            value, trusted_authserv_ids=frozenset({"Mx.Contoso.Com"}), accept_exchange_online=False
        )

    def test_malformed_untrusted_headers_are_skipped(self) -> None:
        """Malformed headers that do not count are skipped, even ones whose start cannot be read."""
        good = "mx.contoso.com 1; none"
        values = ["evil.example; dmarc=", "(unclosed", "", good]

        assert (good, parse(good)) == select_counting_header(
            values, trusted_authserv_ids=TRUSTED, accept_exchange_online=False
        )

    def test_unreadable_header_counts_as_unparsable_with_exchange_online(self) -> None:
        """Accepting EO, a header whose start cannot be read may be EOP's, so it counts and fails closed."""
        assert ("(unclosed", None) == select_counting_header(
            ["(unclosed", EOP], trusted_authserv_ids=TRUSTED, accept_exchange_online=True
        )

    def test_no_headers(self) -> None:
        """No header values means no counting header."""
        assert (None, None) == select_counting_header(
            [], trusted_authserv_ids=TRUSTED, accept_exchange_online=True
        )

    def test_non_string_value_is_refused(self) -> None:
        """A value that is not a str is an AuthResultsError, not a silent skip."""
        with pytest.raises(AuthResultsError) as info:
            select_counting_header(
                [b"mx.contoso.com; spf=pass"],  # type: ignore[list-item]
                trusted_authserv_ids=TRUSTED,
                accept_exchange_online=False,
            )

        assert "an Authentication-Results value must be str, not bytes" == str(info.value)


def auth(*results: MethodResult) -> AuthResults:
    return AuthResults("mx.contoso.com", results)


class TestToMailAuth:
    def test_eop_pass(self) -> None:
        """EOP's dmarc=pass and compauth=pass reason=100 give a pass for the From domain."""
        expected = MailAuth(dmarc="pass", compauth="pass", header_from="fabrikam.com", smtp_auth=False)

        assert expected == to_mail_auth(EOP_PARSED)

    @pytest.mark.parametrize(
        ("result", "reason", "expected"),
        [
            ("pass", "100", "pass"),
            ("pass", "109", "pass"),
            ("pass", "701", "pass"),
            ("pass", None, "none"),
            ("pass", "201", "none"),
            ("pass", "1000", "none"),
            ("pass", "1a0", "none"),
            ("pass", "\u0661\u0660\u0660", "none"),  # Arabic-Indic digits
            ("softpass", "201", "softpass"),
            ("fail", "000", "fail"),
            ("none", "300", "none"),
            ("temperror", None, "none"),
        ],
    )
    def test_compauth_words(self, result: str, reason: str | None, expected: str) -> None:
        """compauth is pass only with a 1xx or 7xx reason; softpass and fail stay; the rest is none."""
        props = (("reason", reason),) if reason is not None else ()

        assert expected == to_mail_auth(auth(MethodResult("compauth", result, reason, props))).compauth

    def test_bestguesspass_kept_as_written(self) -> None:
        """dmarc=bestguesspass is passed on as written, not as pass."""
        assert "bestguesspass" == to_mail_auth(auth(MethodResult("dmarc", "bestguesspass"))).dmarc

    def test_dmarc_fail_wins(self) -> None:
        """Any dmarc=fail makes dmarc fail, even after a pass."""
        results = auth(MethodResult("dmarc", "pass"), MethodResult("dmarc", "fail"))

        assert "fail" == to_mail_auth(results).dmarc

    def test_compauth_fail_wins(self) -> None:
        """Any compauth=fail makes compauth fail, even after a qualified pass."""
        results = auth(MethodResult("compauth", "pass", "100"), MethodResult("compauth", "fail", "000"))

        assert "fail" == to_mail_auth(results).compauth

    def test_first_result_without_fail(self) -> None:
        """Without a fail, the first dmarc result is used."""
        results = auth(MethodResult("dmarc", "none"), MethodResult("dmarc", "pass"))

        assert "none" == to_mail_auth(results).dmarc

    def test_header_from_falls_back_to_compauth(self) -> None:
        """Without a pass, and without a dmarc header.from, compauth's header.from is used."""
        results = auth(
            MethodResult("dmarc", "none"),
            MethodResult("compauth", "none", None, (("header.from", "a.example"),)),
        )

        assert "a.example" == to_mail_auth(results).header_from

    def test_dmarc_pass_without_domain_is_not_credited_to_compauths(self) -> None:
        """A dmarc pass that names no domain is not credited to the domain compauth names: it aligns with none."""
        results = auth(
            MethodResult("dmarc", "pass"),
            MethodResult("compauth", "pass", None, (("header.from", "a.example"),)),
        )

        assert MailAuth(dmarc="pass", compauth="none", header_from="") == to_mail_auth(results)

    def test_pass_named_by_another_result_is_written_none(self) -> None:
        """A dmarc pass without a domain beside a compauth pass for a.example: the dmarc pass is written none."""
        results = auth(
            MethodResult("dmarc", "pass"),
            MethodResult("compauth", "pass", "100", (("reason", "100"), ("header.from", "a.example"))),
        )

        assert MailAuth(dmarc="none", compauth="pass", header_from="a.example") == to_mail_auth(results)

    def test_compauth_takes_the_dmarc_domain(self) -> None:
        """A qualified compauth pass without header.from was computed for the DMARC result's domain."""
        results = parse("mx.contoso.com; dmarc=none header.from=b.example; compauth=pass reason=100")

        assert MailAuth(dmarc="none", compauth="pass", header_from="b.example") == to_mail_auth(results)

    def test_compauth_between_two_dmarc_domains_names_none(self) -> None:
        """When the DMARC results name two domains, a compauth pass without its own names none."""
        results = parse(
            "mx.contoso.com; compauth=pass reason=100; dmarc=none header.from=a.example; "
            "dmarc=none header.from=b.example"
        )

        assert MailAuth(dmarc="none", compauth="pass", header_from="") == to_mail_auth(results)

    def test_smtp_auth(self) -> None:
        """auth=pass (RFC 8601 B.4) sets smtp_auth."""
        results = parse("example.com; auth=pass (cram-md5) smtp.auth=sender@example.net")

        assert MailAuth(smtp_auth=True) == to_mail_auth(results)

    def test_smtp_auth_fail(self) -> None:
        """auth=fail does not set smtp_auth."""
        assert MailAuth(smtp_auth=False) == to_mail_auth(auth(MethodResult("auth", "fail")))

    def test_no_results(self) -> None:
        """A header with none gives an empty MailAuth."""
        assert MailAuth() == to_mail_auth(parse("example.org 1; none"))


# --- properties ---------------------------------------------------------------------------------------------

HEADERISH = st.text(alphabet=st.sampled_from('ab.=;/ @()"\\\r\n\t1\x00é'), max_size=60)
KEYWORD = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,8}", fullmatch=True)
CFWS = st.sampled_from([" ", "\t", "\r\n ", " (c) ", " (a (b \\) c) d) ", "(x)", "\n\t"])
OPT_CFWS = st.one_of(st.just(""), CFWS)
PLAIN = st.from_regex(r"[A-Za-z0-9.@+/=_-]{1,15}", fullmatch=True)
QUOTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=15)


@st.composite
def values(draw: st.DrawFn) -> tuple[str, str]:
    """Draw (rendered, expected) for a property value: a plain token or a quoted-string."""
    if draw(st.booleans()):
        text = draw(PLAIN)
        return text, text
    text = draw(QUOTABLE)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"', text


@st.composite
def resinfos(draw: st.DrawFn) -> tuple[str, MethodResult]:
    """Draw (rendered, expected) for one method result with properties and comments."""
    method, result = draw(KEYWORD), draw(KEYWORD)
    text = method + draw(OPT_CFWS)
    if draw(st.booleans()):
        text += "/" + draw(OPT_CFWS) + str(draw(st.integers(0, 99))) + draw(OPT_CFWS)
    text += "=" + draw(OPT_CFWS) + result
    reason, props = None, []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(
            st.one_of(st.sampled_from(["reason", "action", "Reason"]), KEYWORD.map(lambda k: "h." + k))
        )
        rendered, value = draw(values())
        ptype, _, name = key.partition(".")
        shown_key = ptype + (draw(OPT_CFWS) + "." + draw(OPT_CFWS) + name if name else "")
        text += draw(CFWS) + shown_key + draw(OPT_CFWS) + "=" + draw(OPT_CFWS) + rendered
        if key.lower() == "reason" and reason is None:
            reason = value
        props.append((key.lower(), value))
    return text, MethodResult(method.lower(), result.lower(), reason, tuple(props))


@st.composite
def headers(draw: st.DrawFn) -> tuple[str, AuthResults]:
    """Draw (rendered, expected) for a well-formed header, with or without an authserv-id."""
    drawn = draw(st.lists(resinfos(), min_size=1, max_size=4))
    authserv_id = draw(st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True)))
    separators = [draw(OPT_CFWS) + ";" + draw(OPT_CFWS) for _ in drawn]
    body = "".join(sep + text for sep, (text, _) in zip(separators, drawn, strict=True))
    if authserv_id is None:
        body = body[len(separators[0]) :]
    else:
        body = authserv_id + draw(st.sampled_from(["", " 1", " (v) 1 (w)"])) + body
    prefix = draw(st.sampled_from(["", "Authentication-Results:", "Authentication-Results: "]))
    return prefix + draw(OPT_CFWS) + body + draw(OPT_CFWS), AuthResults(
        authserv_id, tuple(r for _, r in drawn)
    )


def parses_or_refuses(value: str) -> None:
    with contextlib.suppress(AuthResultsError):
        parse_authentication_results(value)


class TestProperties:
    @given(st.text())
    def test_arbitrary_text_only_raises_auth_results_error(self, value: str) -> None:
        """Parsing arbitrary text returns a result or raises AuthResultsError, nothing else."""
        parses_or_refuses(value)

    @given(HEADERISH)
    def test_header_like_text_only_raises_auth_results_error(self, value: str) -> None:
        """Parsing text made of the header's special characters raises nothing but AuthResultsError."""
        parses_or_refuses(value)

    @given(st.lists(HEADERISH, max_size=4), st.booleans())
    def test_select_never_raises_on_text(self, values_: list[str], accept: bool) -> None:
        """select_counting_header returns a pair for any list of strings and never raises."""
        value, results = select_counting_header(
            values_, trusted_authserv_ids=frozenset({"a"}), accept_exchange_online=accept
        )

        assert True is (value is None or value in values_)
        assert True is (results is None or value is not None)

    @given(headers())
    def test_round_trip(self, drawn: tuple[str, AuthResults]) -> None:
        """A generated well-formed header parses back to the results and properties it was built from."""
        text, expected = drawn

        assert expected == parse_authentication_results(text)

    @given(headers())
    def test_round_trip_through_select(self, drawn: tuple[str, AuthResults]) -> None:
        """A generated header counts when its authserv-id is trusted (or absent, under EO) and parses back."""
        text, expected = drawn
        trusted = frozenset({expected.authserv_id or "unused.example"})

        assert (text, expected) == select_counting_header(
            [text], trusted_authserv_ids=trusted, accept_exchange_online=expected.authserv_id is None
        )


# --- From ---------------------------------------------------------------------------------------------------


def from_error(value: object) -> FromAddressError:
    with pytest.raises(FromAddressError) as info:
        from_address(value)  # type: ignore[arg-type]
    return info.value


class TestFromAddress:
    def test_display_name_ignored(self) -> None:
        """The display name is dropped and the address returned."""
        assert "cameron@fabrikam.com" == from_address("Cameron Fabrikam <cameron@fabrikam.com>")

    def test_bare_address(self) -> None:
        """A bare addr-spec is the address."""
        assert "cameron@fabrikam.com" == from_address("cameron@fabrikam.com")

    def test_angle_address_without_display_name(self) -> None:
        """An angle-addr without a display name is the address."""
        assert "cameron@fabrikam.com" == from_address("<cameron@fabrikam.com>")

    def test_quoted_display_name_with_comma_is_one_mailbox(self) -> None:
        """A comma inside a quoted display name does not split the mailbox."""
        assert "j@x.com" == from_address('"Doe, John" <j@x.com>')

    def test_quoted_display_name_with_address_and_escapes(self) -> None:
        """A quoted display name holding an address, quotes and backslashes is still only a display name."""
        assert "bob@example.org" == from_address(r'"alice@example.org \"<x@y.z>\" \\" <bob@example.org>')

    def test_encoded_word_display_name(self) -> None:
        """An RFC 2047 encoded-word display name is read as a word, not decoded."""
        assert "jorg@x.com" == from_address("=?utf-8?q?J=C3=B6rg?= <jorg@x.com>")

    def test_encoded_word_with_comma(self) -> None:
        """An encoded-word carrying a raw comma (which RFC 2047 asks to encode) stays one display-name word."""
        assert "j@x.com" == from_address("=?utf-8?q?Doe,_John?= <j@x.com>")

    def test_encoded_word_hiding_an_address_is_not_decoded(self) -> None:
        """An address inside an encoded-word display name never becomes the address."""
        assert "bob@good.example" == from_address("=?utf-8?q?alice@evil.example?= <bob@good.example>")

    def test_comments_ignored(self) -> None:
        """Comments anywhere CFWS may stand, nested and with quoted-pairs, are dropped."""
        value = r"(a (nested \) one)) Alice (b) <(c)alice(d)@(e)x.com(f)> (Alice Doe)"

        assert "alice@x.com" == from_address(value)

    def test_comment_display_name(self) -> None:
        """The old form address (Name) gives the address."""
        assert "a@x.com" == from_address("a@x.com (Alice)")

    def test_folded(self) -> None:
        """CRLF or LF followed by whitespace is folding, also inside a display name."""
        assert "a@x.com" == from_address('"Alice\r\n Doe"\r\n <a@x.com>\n\t(c)')

    def test_non_ascii_address(self) -> None:
        """An RFC 6532 (SMTPUTF8) address and display name are read as written."""
        assert "jörg@bücher.de" == from_address("Jörg Müller <jörg@bücher.de>")

    def test_returned_as_written(self) -> None:
        """The address keeps its case: normalising it is the resolver's job."""
        assert "John.Doe@Contoso.COM" == from_address("John <John.Doe@Contoso.COM>")

    def test_quoted_local_part_keeps_quotes(self) -> None:
        """A quoted local part is returned with its quotes, unfolded."""
        assert '"john\\" doe"@x.com' == from_address('"john\\"\r\n doe"@x.com')

    def test_domain_literal(self) -> None:
        """A domain literal is returned as written."""
        assert "a@[192.0.2.1]" == from_address("a@[192.0.2.1]")

    def test_obsolete_forms(self) -> None:
        """RFC 5322 obsolete syntax a receiver must accept: dots in a display name, spaces around dots, empty
        list elements."""
        assert ["jqp@x.com", "a.b@x.com", "a@x.com"] == [
            from_address("John Q. Public <jqp@x.com>"),
            from_address("a . b @ x . com"),
            from_address(" , a@x.com ,, "),
        ]

    def test_field_crlf_dropped(self) -> None:
        """The field's own trailing CRLF is ignored."""
        assert "a@x.com" == from_address("a@x.com\r\n")

    def test_sequence_of_one_value(self) -> None:
        """A sequence with one From value reads that value."""
        assert "a@x.com" == from_address(["A <a@x.com>"])

    def test_error_class(self) -> None:
        """FromAddressError is a ValueError and an MtoTrustError, exported from mtotrust and mtotrust.mailauth."""
        assert (True, True, True) == (
            issubclass(FromAddressError, ValueError),
            issubclass(FromAddressError, MtoTrustError),
            mtotrust.FromAddressError is mailauth.FromAddressError is FromAddressError,
        )


MISSING = [
    pytest.param("", id="empty"),
    pytest.param(" \r\n ", id="blank"),
    pytest.param("undisclosed-recipients:;", id="empty-group"),
    pytest.param("garbage", id="garbage"),
    pytest.param("Alice", id="name-only"),
    pytest.param("@x.com", id="no-local-part"),
    pytest.param("a@", id="no-domain"),
    pytest.param("a@x..com", id="empty-label"),
    pytest.param("a..b@x.com", id="double-dot"),
    pytest.param("Bob <>", id="null-address"),
    pytest.param("Alice <a@x.com", id="unclosed-angle"),
    pytest.param("Alice <a@x.com> trailing", id="text-after-angle"),
    pytest.param("alice@example.org)<bob@example.org>", id="cve-2023-27043"),
    pytest.param("alice@example.org <bob@example.org>", id="address-as-bare-name"),
    pytest.param("a@x.com b@y.com", id="two-addresses-without-comma"),
    pytest.param("<@relay.example:a@x.com>", id="source-route"),
    pytest.param("(unclosed <a@x.com>", id="unclosed-comment"),
    pytest.param('"unclosed <a@x.com>', id="unclosed-quote"),
    pytest.param("a@x.com\x00", id="nul"),
    pytest.param("a@x.com\r\nBcc: victim@example.org", id="crlf-injection"),
    pytest.param("a@x.com\rb", id="bare-cr"),
    pytest.param("a\udcc3@x.com", id="lone-surrogate"),
    pytest.param("From: a@x.com", id="field-name-included"),
    pytest.param("a" * MAX_FROM_LENGTH + "@x.com", id="over-long"),
    pytest.param([], id="no-field"),
    pytest.param(b"a@x.com", id="bytes"),
    pytest.param([b"a@x.com"], id="bytes-in-sequence"),
    pytest.param(None, id="none"),
]
AMBIGUOUS = [
    pytest.param("a@x.com, b@y.com", id="two-mailboxes"),
    pytest.param("a@x.com, a@x.com", id="same-mailbox-twice"),
    pytest.param('"Doe, John" <j@x.com>, <k@x.com>', id="quoted-then-second"),
    pytest.param("g: a@x.com;", id="group-of-one"),
    pytest.param("g: a@x.com, b@y.com;", id="group-of-two"),
    pytest.param("undisclosed-recipients:;, a@x.com", id="empty-group-and-mailbox"),
    pytest.param(["a@x.com", "a@x.com"], id="two-fields"),
    pytest.param(["a@x.com", ""], id="second-field-empty"),
]


class TestFromAddressErrors:
    @pytest.mark.parametrize("value", MISSING)
    def test_missing(self, value: object) -> None:
        """A value naming no readable mailbox, or no field at all, is from_missing."""
        assert "from_missing" == from_error(value).reason

    @pytest.mark.parametrize("value", AMBIGUOUS)
    def test_ambiguous(self, value: object) -> None:
        """Several mailboxes, a group, or several fields are from_ambiguous."""
        assert "from_ambiguous" == from_error(value).reason

    def test_message_names_position_and_value(self) -> None:
        """A syntax error names what was expected, the position and the value."""
        value = "alice@example.org)<bob@example.org>"

        assert f"unexpected ')' at position 17 in From {value!r}" == str(from_error(value))

    def test_value_echo_is_cut(self) -> None:
        """An over-long value is echoed cut to 80 characters, with its length, and kept whole on the error."""
        value = "a" * 10_000 + "@x.com"
        error = from_error(value)

        assert (f"From {shown(value)} is 10006 characters long, more than {MAX_FROM_LENGTH}", value) == (
            str(error),
            error.value,
        )

    def test_several_mailboxes_counted(self) -> None:
        """The from_ambiguous message says how many mailboxes there are."""
        assert "3 mailboxes in From 'a@x.com, b@x.com, c@x.com'" == str(from_error("a@x.com, b@x.com, c@x.com"))

    def test_several_fields_counted(self) -> None:
        """The message for several From fields says how many."""
        assert "2 From fields, not one: ('a@x.com', 'b@x.com')" == str(from_error(["a@x.com", "b@x.com"]))


HOSTILE_FROM = [
    pytest.param("a" * 1_000_000 + "@x.com", id="1-MB"),
    pytest.param("," * 10_000 + "a@x.com", id="10000-commas-over-cap"),
    pytest.param("," * (MAX_FROM_LENGTH - 8) + "a@x.com", id="commas-at-cap"),
    pytest.param(", ".join(["a@x.com"] * (MAX_FROM_LENGTH // 9)), id="mailboxes-at-cap"),
    pytest.param("(" * (MAX_FROM_LENGTH - 8) + "a@x.com", id="open-comments"),
    pytest.param("(" * 4000 + ")" * 4000 + "a@x.com", id="nested-comments"),
    pytest.param('"' + "\\" * (MAX_FROM_LENGTH - 1), id="backslashes"),
    pytest.param("=?" * (MAX_FROM_LENGTH // 2), id="encoded-word-starts"),
    pytest.param("=?utf-8?q?a?= " * 580 + "<a@x.com>", id="encoded-words"),
    pytest.param("a" + ".a" * 4000 + "@x.com", id="dots"),
    pytest.param("<" * MAX_FROM_LENGTH, id="angles"),
    pytest.param(":;" * 4000, id="groups"),
    pytest.param("a\x00" * 4000, id="nuls"),
    pytest.param("a@x.com\r\n" * 800, id="line-breaks"),
]


class TestFromAddressHostile:
    @pytest.mark.parametrize("value", HOSTILE_FROM)
    def test_bounded_and_only_from_address_error(self, value: str) -> None:
        """Hostile From values return an address or raise FromAddressError, within a generous time guard."""
        start = time.perf_counter()
        with contextlib.suppress(FromAddressError):
            from_address(value)

        assert True is (time.perf_counter() - start < 5.0)


# --- From properties ----------------------------------------------------------------------------------------

_PRINTABLE = frozenset(map(chr, range(0x20, 0x7F)))


@st.composite
def from_values(draw: st.DrawFn) -> tuple[str, str]:
    """Draw (From value, expected address) for one mailbox with any display name, written as a sender would."""
    address, name = draw(addresses()), draw(st.text(max_size=40))
    expected = address.strip(" \t")
    printable = set(name) <= _PRINTABLE
    style = draw(st.sampled_from(["quoted", "encoded", "comment", "angle", "bare"]))
    fold = draw(st.sampled_from([" ", "", "\r\n ", "\n\t"]))
    if style == "angle" or (not name and style != "bare"):
        return f"<{address}>", expected
    if style == "bare":
        return address, expected
    if style == "quoted" and printable:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'"{fold}<{address}>', expected
    if style == "comment" and printable:
        escaped = name.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return f"{address}{fold or ' '}({escaped})", expected
    encoded = email.header.Header(name, "utf-8").encode()
    return f"{encoded}{fold}<{address}>", expected


class TestFromAddressProperties:
    @given(from_values())
    def test_single_mailbox_gives_its_address(self, drawn: tuple[str, str]) -> None:
        """For any display name and address, written quoted, encoded, as a comment or not at all, the address
        is returned."""
        value, expected = drawn

        assert expected == from_address(value)

    @given(from_values())
    def test_agrees_with_email_headerregistry(self, drawn: tuple[str, str]) -> None:
        """Where the standard library's own parser reads one mailbox without defects, it reads the same one."""
        value, _ = drawn
        header = email.headerregistry.HeaderRegistry()("From", "".join(value.splitlines()))
        assert isinstance(header, email.headerregistry.AddressHeader)

        if not header.defects and len(header.addresses) == 1:
            assert header.addresses[0].addr_spec == from_address(value)

    @given(st.lists(from_values(), min_size=2, max_size=4))
    def test_several_mailboxes_are_ambiguous(self, drawn: list[tuple[str, str]]) -> None:
        """Any two or more well-formed mailboxes joined by commas are from_ambiguous."""
        assert "from_ambiguous" == from_error(", ".join(value for value, _ in drawn)).reason

    @given(st.text(max_size=200))
    def test_arbitrary_text_only_raises_from_address_error(self, value: str) -> None:
        """Arbitrary text gives a str or raises FromAddressError, nothing else."""
        with contextlib.suppress(FromAddressError):
            assert isinstance(from_address(value), str)

    @given(st.text(alphabet=st.sampled_from('a@.,;:<>()"\\[] \r\n\t=?'), max_size=60))
    def test_from_like_text_only_raises_from_address_error(self, value: str) -> None:
        """Text made of the From grammar's special characters raises nothing but FromAddressError."""
        with contextlib.suppress(FromAddressError):
            assert isinstance(from_address(value), str)
