"""Tests for address normalisation and the strict parser (the first step of resolution: normalise)."""



from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import Identity, IdentityError, parse_identity
from mtotrust._address import (
    _normalize_trimmed,
    domain_skeleton,
    normalize_address,
    normalize_domain,
    proxy_smtp_address,
    split_ext_upn,
)


class TestNormalizeAddress:
    @pytest.mark.parametrize("text", [" megan@contoso.com", "megan@contoso.com\t", " \t megan@contoso.com \t"])
    def test_trims_ascii_blanks(self, text):
        """ASCII spaces and tabs at either end are trimmed."""
        assert ("megan", "contoso.com") == normalize_address(text)

    @pytest.mark.parametrize("text", ["\u00a0megan@contoso.com", "megan@contoso.com\u3000", "megan@contoso.com\n",
                                      "\u200bmegan@contoso.com", "\u3164megan@contoso.com", "megan@contoso.com\ufe0f"])
    def test_does_not_trim_other_blanks(self, text):
        """Non-ASCII spaces, line breaks, zero-width and other invisible characters at the ends are rejected."""
        with pytest.raises(IdentityError):
            normalize_address(text)

    def test_lower_cases_local_part_and_domain(self):
        """Case never distinguishes two addresses."""
        assert ("megan", "contoso.com") == normalize_address("MEGAN@Contoso.COM")

    def test_lower_not_casefold(self):
        """The local part uses str.lower, so ß stays ß (casefold would make it ss and merge two mailboxes)."""
        assert ("straße", "contoso.com") == normalize_address("STRAßE@contoso.com")

    def test_local_part_nfc(self):
        """A decomposed local part is composed (NFC) so both spellings match."""
        assert normalize_address("re\u0301my@contoso.com") == normalize_address("r\u00e9my@contoso.com")

    def test_domain_to_a_label(self):
        """A Unicode domain becomes its UTS-46 A-label."""
        assert ("a", "xn--mnchen-3ya.de") == normalize_address("a@München.de")

    def test_domain_non_transitional(self):
        """UTS-46 non-transitional processing keeps ß (transitional would map it to ss)."""
        assert ("a", "xn--fa-hia.de") == normalize_address("a@faß.de")

    def test_a_label_input_equals_unicode_input(self):
        """The A-label and the Unicode spelling of a domain are the same domain."""
        assert normalize_address("a@xn--mnchen-3ya.de") == normalize_address("a@MÜNCHEN.de")

    def test_fullwidth_letters_in_domain_map(self):
        """Fullwidth compatibility letters in the domain map to ASCII under UTS-46."""
        assert ("a", "contoso.com") == normalize_address("a@ＣＯＮＴＯＳＯ.com")

    @pytest.mark.parametrize("text", ["megan＠contoso.com", "megan＠x@contoso.com", "megan@x＠contoso.com"])
    def test_fullwidth_at_is_not_at(self, text):
        """A fullwidth ＠ is no separator, and beside a real @ it makes the address invalid."""
        with pytest.raises(IdentityError):
            normalize_address(text)

    @pytest.mark.parametrize("text", ['"megan"@contoso.com', '"a b"@contoso.com', "a\\b@contoso.com"])
    def test_quoted_local_part_rejected(self, text):
        """Quoted local parts (and their escapes) are rejected."""
        with pytest.raises(IdentityError):
            normalize_address(text)

    @pytest.mark.parametrize("text", [".a@x.com", "a.@x.com", "a..b@x.com", "a b@x.com", "a,b@x.com"])
    def test_local_part_must_be_dot_atom(self, text):
        """Leading, trailing or double dots and specials outside atext are rejected."""
        with pytest.raises(IdentityError):
            normalize_address(text)

    def test_utf8_local_part_allowed(self):
        """RFC 6531 allows UTF-8 in the local part."""
        assert ("δοκιμή", "contoso.com") == normalize_address("ΔΟΚΙΜΉ@contoso.com")

    def test_atext_specials_allowed(self):
        """Every RFC 5322 atext special is accepted in a dot-atom."""
        assert ("a!#$%&'*+/=?^_`{|}~-b", "x.com") == normalize_address("a!#$%&'*+/=?^_`{|}~-b@x.com")

    @pytest.mark.parametrize("text", ["a@contoso.com.", "a@contoso.com\u3002", "a@contoso.com\uff0e"])
    def test_trailing_dot_rejected(self, text):
        """A trailing dot on the domain is rejected, also when it comes from a mapped full stop."""
        with pytest.raises(IdentityError):
            normalize_address(text)

    def test_320_characters_accepted(self):
        """An address of exactly 320 characters (63-character labels) is accepted."""
        domain = ".".join(["d" * 63] * 3) + "." + "e" * 61  # 253 characters
        text = "a" * (320 - 1 - len(domain)) + "@" + domain
        assert 320 == len(text)
        assert (text.split("@")[0], domain) == normalize_address(text)

    def test_321_characters_rejected(self):
        """An address over 320 characters is rejected, naming the length."""
        text = "a" * 300 + "@" + "b" * 16 + ".com"
        with pytest.raises(IdentityError, match="321"):
            normalize_address(text)

    def test_label_over_63_rejected(self):
        """A 64-character domain label is rejected; 63 is fine."""
        assert ("a", "b" * 63 + ".com") == normalize_address("a@" + "b" * 63 + ".com")
        with pytest.raises(IdentityError):
            normalize_address("a@" + "b" * 64 + ".com")


class TestNormalizeDomain:
    def test_domain_trimmed_and_lowered(self):
        """A bare domain is trimmed and mapped to a lower-case A-label."""
        assert "xn--mnchen-3ya.de" == normalize_domain("  München.DE ")

    def test_invalid_domain_raises_identity_error(self):
        """A domain with an empty label is an IdentityError naming the value."""
        with pytest.raises(IdentityError, match="a..b"):
            normalize_domain("a..b")


class TestSplitExtUpn:
    def test_decodes_last_underscore(self):
        """The last '_' before #EXT# separates alias and home domain."""
        assert ("first_last", "fabrikam.com") == split_ext_upn("first_last_fabrikam.com#ext#", "w")

    def test_no_marker_is_none(self):
        """A local part without #EXT# is no #EXT# name."""
        assert split_ext_upn("megan", "megan@contoso.com") is None

    @pytest.mark.parametrize("local", ["#ext#", "alias#ext#", "_fabrikam.com#ext#", "alias_#ext#",
                                       "a_b.com#ext##ext#", "a_b.com#ext#x", "a_b..com#ext#"])
    def test_malformed_raises(self, local):
        """No '_', empty parts, several markers, text after the marker or a bad home domain are invalid."""
        with pytest.raises(IdentityError):
            split_ext_upn(local, local + "@contoso.onmicrosoft.com")


class TestProxySmtpAddress:
    @pytest.mark.parametrize(("proxy", "expected"), [("SMTP:a@b.com", "a@b.com"), ("smtp:a@b.com", "a@b.com"),
                                                     ("X500:/o=x", None), ("SIP:a@b.com", None),
                                                     ("Smtp:a@b.com", None)])
    def test_only_smtp_prefixes(self, proxy, expected):
        """Only SMTP:/smtp: proxies carry mail addresses."""
        assert expected == proxy_smtp_address(proxy)


class TestDomainSkeleton:
    @pytest.mark.parametrize("lookalike", ["cont\u043eso.com", "fabrikarn.com", "\u03bfffice.com"])
    def test_lookalikes_share_a_skeleton(self, lookalike):
        """Cyrillic, Greek and rn/m lookalikes have the skeleton of the Latin domain they imitate."""
        latin = {"cont\u043eso.com": "contoso.com", "fabrikarn.com": "fabrikam.com",
                 "\u03bfffice.com": "office.com"}[lookalike]
        assert domain_skeleton(normalize_domain(latin)) == domain_skeleton(normalize_domain(lookalike))

    def test_different_domains_differ(self):
        """Domains that merely resemble each other in spelling have different skeletons."""
        assert domain_skeleton("contoso.com") != domain_skeleton("contosso.com")


class TestParseIdentity:
    def test_returns_normalised_identity(self):
        """parse_identity returns an Identity with the normal address and the tenant id as given."""
        assert Identity("megan@contoso.com", "T") == parse_identity(" Megan@CONTOSO.com ", "T")

    @pytest.mark.parametrize("text", ["", "no-at", "a@b@c.com", "a\r\n@b.com", "a\x00@b.com", "\ud800@b.com",
                                      "@b.com", "a@", "a@" + "x" * 300 + ".com"])
    def test_raises_identity_error_naming_value(self, text):
        """A malformed address raises IdentityError (a ValueError) that carries and shows the value."""
        with pytest.raises(IdentityError) as info:
            parse_identity(text)
        assert text == info.value.value
        assert isinstance(info.value, ValueError)
        assert repr(text[:20])[1:-1] in str(info.value) or repr(text[:77])[1:-1] in str(info.value)

    @pytest.mark.parametrize("value", [None, 5, b"a@b.com", ["a@b.com"]])
    def test_wrong_type_raises_identity_error(self, value):
        """A non-str address is an IdentityError naming the type, not a TypeError from deep inside."""
        with pytest.raises(IdentityError, match=type(value).__name__):
            parse_identity(value)

    def test_wrong_tenant_id_type(self):
        """A non-str tenant id is an IdentityError."""
        with pytest.raises(IdentityError):
            parse_identity("a@b.com", 42)  # type: ignore[arg-type]


_ASCII_PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_ADDRESS_LIKE = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    st.text(alphabet=st.sampled_from("aZ09.!#$%&'*+/=?^_`{|}~-\"("), min_size=0, max_size=12),
    st.lists(st.text(alphabet=st.sampled_from("aZ09-_x"), min_size=0, max_size=66), min_size=1, max_size=5),
)


class TestAsciiFastPath:
    @given(st.one_of(_ADDRESS_LIKE, st.text(alphabet=_ASCII_PRINTABLE, max_size=80)))
    def test_fast_path_agrees_with_every_rule(self, text):
        """The ASCII fast path accepts and normalises exactly as the full rules do."""
        try:
            slow = _normalize_trimmed(text.strip(" \t"))
        except IdentityError:
            slow = None
        try:
            fast = normalize_address(text)
        except IdentityError:
            fast = None
        assert slow == fast
