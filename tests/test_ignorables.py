"""Invisible characters: every Unicode Default_Ignorable_Code_Point is rejected in an address, before UTS-46.

The bundled table (``mtotrust/data/ignorables.txt``) is checked against ICU (``pyicu-wheels``, a dev dependency),
the same reference as the confusables table. The class the tests pin: a default-ignorable code point of any
category (Hangul fillers are letters, U+034F and the variation selectors are marks, not format characters)
anywhere in an address makes it invalid, so UTS-46 never gets the chance to drop it silently.
"""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import icu
import idna
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import ACTIVE, HOST, build, native, synced

from mtotrust import IdentityError, Snapshot, Trust, TrustEngine, parse_identity
from mtotrust._address import (
    _ignorables,
    _parse_ignorables,
    ignorables_version,
    is_default_ignorable,
    normalize_address,
    normalize_domain,
)
from mtotrust._confusables import data_version
from mtotrust._directory import user_addresses
from mtotrust.testing.strategies import addresses, idn_addresses

REPO = Path(__file__).resolve().parent.parent
SAMPLE = Snapshot.sample()
ENGINE = TrustEngine(SAMPLE)
_DI = icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT


def icu_ignorable(cp: int) -> bool:
    """ICU's Default_Ignorable_Code_Point property of one code point."""
    return bool(icu.Char.hasBinaryProperty(cp, _DI))


def table_code_points() -> list[int]:
    """Every code point the bundled table lists, ascending."""
    return [cp for first, last in _ignorables()[1] for cp in range(first, last + 1)]


IGNORABLES = [chr(cp) for cp in table_code_points()]

# The reported examples, each spliced into the sample's MTO member cameron@fabrikam.com: (address, code point,
# name, part). Before the fix, those in the domain resolved to the real member and those in the local part
# resolved `external`.
EXAMPLES = [
    ("cameron@fabri\u3164kam.com", "U+3164 HANGUL FILLER", "domain"),
    ("cameron@fabri\uffa0kam.com", "U+FFA0 HALFWIDTH HANGUL FILLER", "domain"),
    ("cameron@fabri\u115fkam.com", "U+115F HANGUL CHOSEONG FILLER", "domain"),
    ("cameron@fabri\u1160kam.com", "U+1160 HANGUL JUNGSEONG FILLER", "domain"),
    ("cameron@fabri\u034fkam.com", "U+034F COMBINING GRAPHEME JOINER", "domain"),
    ("cameron@fabri\ufe00kam.com", "U+FE00 VARIATION SELECTOR-1", "domain"),
    ("cameron@fabrikam\ufe0f.com", "U+FE0F VARIATION SELECTOR-16", "domain"),
    ("cameron@fabri\U000e0100kam.com", "U+E0100 VARIATION SELECTOR-17", "domain"),
    ("cameron@fabrikam.com\U000e01ef", "U+E01EF VARIATION SELECTOR-256", "domain"),
    ("came\u3164ron@fabrikam.com", "U+3164 HANGUL FILLER", "local part"),
    ("cameron\uffa0@fabrikam.com", "U+FFA0 HALFWIDTH HANGUL FILLER", "local part"),
    ("\u115fcameron@fabrikam.com", "U+115F HANGUL CHOSEONG FILLER", "local part"),
    ("came\u034fron@fabrikam.com", "U+034F COMBINING GRAPHEME JOINER", "local part"),
    ("cameron\ufe0f@fabrikam.com", "U+FE0F VARIATION SELECTOR-16", "local part"),
    ("cam\U000e0100eron@fabrikam.com", "U+E0100 VARIATION SELECTOR-17", "local part"),
    ("came\u200bron@fabrikam.com", "U+200B ZERO WIDTH SPACE", "local part"),  # category Cf: rejected before too
]


class TestTableAgainstICU:
    def test_every_code_point(self) -> None:
        """For every code point 0..0x10FFFF, the table and its compiled pattern agree with ICU."""
        listed = set(table_code_points())
        pattern = _ignorables()[0]
        mismatches = [f"U+{cp:04X}" for cp in range(sys.maxunicode + 1)
                      if icu_ignorable(cp) != (cp in listed) or (cp in listed) != bool(pattern.fullmatch(chr(cp)))]
        assert mismatches == []
        assert len(listed) == 4174  # Unicode 16.0

    def test_same_unicode_version_as_confusables(self) -> None:
        """The table names the Unicode version of the installed ICU and of the bundled confusables table."""
        assert ignorables_version() == icu.UNICODE_VERSION
        assert data_version().endswith(f"Unicode {ignorables_version()}")

    def test_ascii_holds_none(self) -> None:
        """No ASCII code point is default-ignorable: the ASCII fast paths need no check."""
        assert [ch for ch in map(chr, range(0x80)) if is_default_ignorable(ch)] == []

    def test_class_is_wider_than_format_characters(self) -> None:
        """The table holds letters (Lo), marks (Mn) and unassigned code points besides format characters (Cf)."""
        assert {"Cf", "Lo", "Mn", "Cn"} <= {unicodedata.category(ch) for ch in IGNORABLES}
        for ch in "\u3164\uffa0\u115f\u1160\u034f\u180b\ufe00\ufe0f\U000e0100\U000e01ef\u200b\u00ad\ufeff":
            assert is_default_ignorable(ch), f"U+{ord(ch):04X}"

    def test_every_code_point_uts46_deletes_is_listed(self) -> None:
        """Every code point the installed idna's UTS-46 table ignores (deletes) is in the table.

        So nothing UTS-46 drops silently can reach it: the rejection covers the whole class, for this idna.
        """
        from idna.uts46data import uts46_starts, uts46_statuses

        ends = [*uts46_starts[1:], sys.maxunicode + 1]
        ignored = [cp for start, end, status in zip(uts46_starts, ends, uts46_statuses, strict=True)
                   if status == ord("I") for cp in range(start, end)]
        assert len(ignored) > 200
        # the table is read right: the mapping deletes each of them
        assert [cp for cp in ignored if idna.uts46_remap(f"a{chr(cp)}b") != "ab"] == []
        assert [f"U+{cp:04X}" for cp in ignored if not is_default_ignorable(chr(cp))] == []

    def test_refresh_script_check_passes(self) -> None:
        """``scripts/refresh_ignorables.py --check`` finds the bundled file up to date with the installed ICU."""
        done = subprocess.run([sys.executable, str(REPO / "scripts" / "refresh_ignorables.py"), "--check"],
                              capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "up to date" in done.stdout


class TestRejected:
    @pytest.mark.parametrize(("text", "code_point", "part"), EXAMPLES)
    def test_resolves_untrusted(self, text: str, code_point: str, part: str) -> None:
        """Each reported example resolves untrusted (invalid_identity), never to the real member."""
        found = ENGINE.resolve(text)
        assert found.trust is Trust.UNTRUSTED
        assert found.reasons == ("invalid_identity",)
        assert found.user is None

    @pytest.mark.parametrize(("text", "code_point", "part"), EXAMPLES)
    def test_parse_identity_names_value_and_code_point(self, text: str, code_point: str, part: str) -> None:
        """parse_identity raises IdentityError naming the value, the part and the invisible code point."""
        with pytest.raises(IdentityError) as info:
            parse_identity(text)
        assert info.value.value == text
        assert f"the {part} contains the invisible character {code_point} (default-ignorable)" in str(info.value)
        assert repr(text) in str(info.value)

    def test_real_member_still_resolves(self) -> None:
        """Without the invisible character the address is the MTO member it imitates."""
        assert ENGINE.resolve("cameron@fabrikam.com").trust is Trust.MTO_MEMBER

    def test_unassigned_code_point_is_named_by_number(self) -> None:
        """A reserved (unassigned) default-ignorable code point is rejected and named by number."""
        with pytest.raises(IdentityError, match=r"U\+FFF0 \(unassigned, default-ignorable\)"):
            parse_identity("cameron\ufff0@fabrikam.com")

    @pytest.mark.parametrize("domain", ["fabri\u3164kam.com", "fabrikam\u034f.com", "fabri\ufe0fkam.com"])
    def test_normalize_domain_rejects(self, domain: str) -> None:
        """A bare domain (as policies and the resolver's domain tables use) is rejected too."""
        with pytest.raises(IdentityError, match="invisible character"):
            normalize_domain(domain)

    def test_a_label_hiding_zero_width_non_joiner(self) -> None:
        """An xn-- label decoding to U+200C (IDNA2008 allows it after a virama) is rejected like its Unicode form."""
        u_label = "\u0915\u094d\u200c\u0937"
        a_label = "xn--" + u_label.encode("punycode").decode("ascii")
        idna.encode(f"{a_label}.com", uts46=True, std3_rules=True)  # valid IDNA2008: the check is ours
        for text in (f"a@{a_label}.com", f"a@{u_label}.com"):
            with pytest.raises(IdentityError, match="U\\+200C ZERO WIDTH NON-JOINER"):
                parse_identity(text)
        assert ENGINE.resolve(f"a@{a_label}.com").trust is Trust.UNTRUSTED

    def test_a_label_without_invisible_characters_passes(self) -> None:
        """An ordinary xn-- domain, and its #EXT# form, are unaffected by the decoded-label check."""
        assert normalize_address("a@xn--mnchen-3ya.de") == ("a", "xn--mnchen-3ya.de")
        assert normalize_address("a_xn--mnchen-3ya.de#EXT#@x.com") == ("a_xn--mnchen-3ya.de#ext#", "x.com")


_VALID = st.one_of(addresses(), idn_addresses(), st.sampled_from(sorted(SAMPLE.addresses())))


class TestInsertionProperty:
    @given(_VALID, st.sampled_from(IGNORABLES), st.integers(min_value=0))
    def test_inserting_any_ignorable_anywhere_invalidates(self, address: str, ch: str, where: int) -> None:
        """Inserting any default-ignorable code point at any position of a valid address makes it invalid."""
        try:
            normalize_address(address)
        except IdentityError:
            assume(False)
        at = where % (len(address) + 1)
        text = address[:at] + ch + address[at:]
        with pytest.raises(IdentityError, match="invisible character"):
            normalize_address(text)
        assert ENGINE.resolve(text).reasons == ("invalid_identity",)


class TestDirectoryValues:
    def test_values_with_invisible_characters_are_not_indexed(self) -> None:
        """Directory values holding a default-ignorable code point index nothing (the Normalizer skips them)."""
        member = synced("u-cameron", "cameron@fabrikam.com")
        decoy = native("u-decoy", "decoy@contoso.com",
                       otherMails=["cameron@fabri\u3164kam.com", "came\u034fron@fabrikam.com"],
                       proxyAddresses=["SMTP:decoy@contoso.com", "smtp:cameron@fabrikam\ufe0f.com"])
        snap = build([member, decoy])
        assert not any(is_default_ignorable(ch) for key in snap.addresses() for ch in key)
        assert [user.id for user in snap.lookup("cameron@fabrikam.com")] == ["u-cameron"]
        # before the fix UTS-46 dropped U+3164 and U+FE0F, so the decoy answered to the member's address
        found = TrustEngine(snap).resolve("cameron@fabrikam.com")
        assert found.trust is Trust.MTO_MEMBER
        assert found.home_tenant_id == ACTIVE

    def test_user_addresses_skip_invisible_values(self) -> None:
        """user_addresses (the object-match step) keeps only the values free of invisible characters."""
        decoy = native("u-decoy", "decoy@contoso.com", otherMails=["cameron@fabri\uffa0kam.com"])
        user = build([decoy]).users["u-decoy"]
        assert user.other_mails == ("cameron@fabri\uffa0kam.com",)
        assert user_addresses(user, frozenset({"contoso.com", HOST})) == {"decoy@contoso.com"}

    def test_delta_values_with_invisible_characters_are_not_indexed(self) -> None:
        """A user added by a delta page with an invisible character in its mail is not indexed under it."""
        snap = build([synced("u-cameron", "cameron@fabrikam.com")],
                     delta=[[native("u-decoy", "cameron@fabri\u115fkam.com")]])
        assert [user.id for user in snap.lookup("cameron@fabrikam.com")] == ["u-cameron"]


class TestLoading:
    def test_ascii_never_loads_the_table(self) -> None:
        """Normalising ASCII addresses without xn-- labels, valid or not, never reads the table.

        (An xn-- label is decoded and checked once per distinct domain: the domain cache keeps the answer.)
        """
        code = ("import mtotrust._address as a\n"
                "for t in ('Megan@Contoso.com', ' a.b@x.co ', 'a..b@x.com', 'a@b@c', 'a@-x.com', 'a@x.com.'):\n"
                "    try: a.normalize_address(t)\n"
                "    except a.IdentityError: pass\n"
                "print(a._ignorables.cache_info().currsize, a._find_invisible is a._load_find_invisible)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
        assert done.stdout.split() == ["0", "True"]

    def test_parses_ranges_and_version(self) -> None:
        """A range line and a single code point line parse to inclusive ranges; the header gives the version."""
        parsed = _parse_ignorables("# Unicode version: 9.9\n00AD\n115F..1160\n")
        assert parsed == (((0xAD, 0xAD), (0x115F, 0x1160)), "9.9")

    @pytest.mark.parametrize("body", ["00AG\n", "1160..115F\n", "0100\n00AD\n", "00AD\n00AE\n", "110000\n"])
    def test_malformed_or_unordered_line_is_rejected(self, body: str) -> None:
        """A non-hex, reversed, unordered, adjacent or out-of-range line raises ValueError naming the line."""
        with pytest.raises(ValueError, match="ignorables.txt:"):
            _parse_ignorables("# Unicode version: 1\n" + body)

    def test_missing_version_header_is_rejected(self) -> None:
        """A file without the Unicode version line raises ValueError."""
        with pytest.raises(ValueError, match="Unicode version"):
            _parse_ignorables("00AD\n")
