"""Differential and property tests for the bundled UTS #39 skeleton (``mtotrust._confusables``).

ICU's SpoofChecker (``pyicu-wheels``, a dev dependency) is the reference.
"""

from __future__ import annotations

import functools
import string
import sys
import threading
import time
import unicodedata

import icu
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtotrust import _confusables
from mtotrust._confusables import data_version, skeleton

_CHECKER = icu.SpoofChecker()
_ICU_NFD = icu.Normalizer2.getNFDInstance()


def icu_skeleton(text: str) -> str:
    """ICU's UTS #39 skeleton of *text* (the type argument is ignored since ICU 58)."""
    return str(_CHECKER.getSkeleton(0, text))


def _table() -> dict[str, str]:
    return _confusables._load()[0]


@functools.cache
def version_skew() -> frozenset[str]:
    """Code points whose NFD or combining class differ between Python's unicodedata and ICU's Unicode.

    Python 3.11 ships Unicode 14.0 and the table is Unicode 16.0: code points
    assigned since then normalise differently, which the module documents.
    """
    skew = set()
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        same_ccc = unicodedata.combining(ch) == icu.Char.getCombiningClass(cp)
        if not same_ccc or unicodedata.normalize("NFD", ch) != _ICU_NFD.normalize(ch):
            skew.add(ch)
    return frozenset(skew)


@functools.cache
def non_idempotent_sources() -> frozenset[str]:
    """Table entries whose prototype contains a character the table maps again."""
    table = _table()
    return frozenset(ch for ch, proto in table.items() if any(p in table for p in proto))


# Characters most likely to matter: table sources, the characters of their
# prototypes, and combining marks (which exercise NFD reordering).
def _interesting_characters() -> list[str]:
    table = _table()
    chars = set(table) | {p for proto in table.values() for p in proto}
    chars |= {chr(cp) for cp in range(0x300, 0x370)}
    return sorted(chars - version_skew())


# Surrogates are left out: Python holds them singly, ICU (UTF-16) pairs adjacent ones; addresses reject them
# before any skeleton is computed (category Cs), so the difference never reaches the resolver.
_plain_text = st.text(alphabet=st.characters(exclude_characters=version_skew(), exclude_categories=["Cs"]))
_confusable_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(_interesting_characters()),
        st.characters(exclude_characters=version_skew(), exclude_categories=["Cs"]),
    ),
    max_size=24,
)

DOMAIN_LABELS = [
    "paypal",
    "p\u0430ypal",  # Cyrillic small a
    "fabrikam",
    "fabrikarn",
    "contoso",
    "c\u03bfnt\u03bfs\u03bf",  # Greek small omicron
    "microsoft",
    "rnicrosoft",
    "\u0251pple",  # Latin small alpha
    "apple",
    "g00gle",
    "google",
    "xn--80ak6aa92e",
    "woodgrovebank",
    "w\u043e\u043edgr\u043evebank",  # Cyrillic small o
    "northwindtraders",
    "n\u043erthwind-traders",
    "adatum",
    "\u0430d\u0430tum",
    "litware1",
    "litwarel",
    "tailspintoys",
    "ta\u0131lsp\u0131ntoys",  # dotless i
    "\uff50\uff41\uff59\uff50\uff41\uff4c",  # full-width
    "pa\u200dypal",  # zero-width joiner
    "caf\u00e9",
    "cafe\u0301",
]


class TestDifferentialAgainstICU:
    def test_every_table_entry(self) -> None:
        """Each code point in the table has exactly ICU's skeleton."""
        table = _table()
        assert len(table) > 9000
        mismatches = [f"U+{ord(ch):04X}" for ch in table if skeleton(ch) != icu_skeleton(ch)]
        assert mismatches == []

    def test_every_code_point(self) -> None:
        """Every non-surrogate code point, listed or not, has ICU's skeleton."""
        mismatches = []
        for cp in range(sys.maxunicode + 1):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            ch = chr(cp)
            if skeleton(ch) != icu_skeleton(ch):
                mismatches.append(f"U+{cp:04X}")
        assert mismatches == []

    @pytest.mark.parametrize("label", DOMAIN_LABELS)
    def test_domain_labels(self, label: str) -> None:
        """Realistic domain labels and their lookalikes get ICU's skeleton."""
        assert skeleton(label) == icu_skeleton(label)

    @pytest.mark.parametrize(
        ("genuine", "lookalike"),
        [
            ("paypal", "p\u0430ypal"),
            ("fabrikam", "fabrikarn"),
            ("contoso", "c\u03bfnt\u03bfs\u03bf"),
            ("microsoft", "rnicrosoft"),
            ("apple", "\u0251pple"),
            ("GOOGLE", "G00GLE"),
            ("paypal", "\uff50\uff41\uff59\uff50\uff41\uff4c"),
        ],
    )
    def test_lookalikes_are_confusable(self, genuine: str, lookalike: str) -> None:
        """A lookalike label has the same skeleton as the label it imitates."""
        assert skeleton(lookalike) == skeleton(genuine)

    def test_distinct_labels_stay_distinct(self) -> None:
        """Different labels keep different skeletons, and case matters: '0' imitates 'O', not 'o'."""
        assert skeleton("contoso") != skeleton("fabrikam")
        assert skeleton("paypal") != skeleton("paypai")
        assert skeleton("g00gle") != skeleton("google")

    @settings(max_examples=400, deadline=None)
    @given(_plain_text)
    def test_arbitrary_text(self, text: str) -> None:
        """Arbitrary text (outside the Unicode-version skew) has ICU's skeleton."""
        assert skeleton(text) == icu_skeleton(text)

    @settings(max_examples=400, deadline=None)
    @given(_confusable_text)
    def test_text_rich_in_confusables(self, text: str) -> None:
        """Text built mostly from table sources, prototypes and combining marks has ICU's skeleton."""
        assert skeleton(text) == icu_skeleton(text)

    def test_version_skew_is_only_unassigned_code_points(self) -> None:
        """Python and ICU normalise alike every code point assigned in Python's unicodedata."""
        assigned = sorted(f"U+{ord(ch):04X}" for ch in version_skew() if unicodedata.category(ch) != "Cn")
        assert assigned == []


class TestIdempotence:
    def test_icu_skeleton_is_not_idempotent(self) -> None:
        """ICU's own skeleton is not idempotent, e.g. for U+01C4, so neither is ours."""
        once = icu_skeleton("\u01c4")
        assert icu_skeleton(once) != once
        assert skeleton(skeleton("\u01c4")) == icu_skeleton(once)

    def test_non_idempotent_sources_are_few(self) -> None:
        """Only the handful of entries whose prototype is itself mapped break idempotence."""
        sources = non_idempotent_sources()
        assert "\u01c4" in sources
        assert len(sources) < 50

    @settings(max_examples=300, deadline=None)
    @given(_confusable_text)
    def test_idempotent_without_remapped_prototypes(self, text: str) -> None:
        """Skeleton is idempotent on text whose NFD holds none of the non-idempotent sources."""
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if ch not in non_idempotent_sources())
        once = skeleton(text)
        assert skeleton(once) == once

    @settings(max_examples=300, deadline=None)
    @given(_confusable_text)
    def test_second_application_is_a_fixed_point(self, text: str) -> None:
        """Applying skeleton twice reaches a fixed point: a third application changes nothing."""
        twice = skeleton(skeleton(text))
        assert skeleton(twice) == twice

    def test_every_table_entry_stabilises_after_two_applications(self) -> None:
        """For every table entry, skeleton∘skeleton is a fixed point, matching ICU."""
        for ch in _table():
            twice = skeleton(skeleton(ch))
            assert skeleton(twice) == twice
            assert twice == icu_skeleton(icu_skeleton(ch))


_UNMAPPED_ASCII = [ch for ch in string.ascii_lowercase + string.digits if ch not in _table()]


class TestAscii:
    def test_only_m_zero_one_are_mapped(self) -> None:
        """Among ASCII lowercase letters and digits only 'm', '0' and '1' have prototypes."""
        assert sorted(set(string.ascii_lowercase + string.digits) - set(_UNMAPPED_ASCII)) == ["0", "1", "m"]

    @pytest.mark.parametrize("ch", _UNMAPPED_ASCII)
    def test_unmapped_ascii_maps_to_itself(self, ch: str) -> None:
        """An ASCII lowercase letter or digit absent from the table is its own skeleton."""
        assert skeleton(ch) == ch

    @given(st.text(alphabet=st.sampled_from(_UNMAPPED_ASCII)))
    def test_unmapped_ascii_text_is_unchanged(self, text: str) -> None:
        """Text made only of unmapped ASCII lowercase letters and digits is its own skeleton."""
        assert skeleton(text) == text


class TestLoading:
    def test_data_version_matches_icu(self) -> None:
        """data_version() names the ICU and Unicode versions of the installed reference ICU."""
        assert data_version() == f"ICU {icu.ICU_VERSION}, Unicode {icu.UNICODE_VERSION}"

    def test_empty_text(self) -> None:
        """The empty string is its own skeleton."""
        assert skeleton("") == ""

    def test_table_loads_fast(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A cold load reads and parses the table quickly (budget 50 ms; asserted loosely for CI noise)."""
        monkeypatch.setattr(_confusables, "_data", None)
        start = time.perf_counter()
        _confusables._load()
        assert time.perf_counter() - start < 0.25

    def test_concurrent_first_calls_parse_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Many threads racing on the first call share one table, parsed exactly once."""
        monkeypatch.setattr(_confusables, "_data", None)
        calls: list[int] = []
        real_parse = _confusables._parse

        def counting_parse(text: str) -> tuple[dict[str, str], str]:
            calls.append(1)
            time.sleep(0.01)  # widen the race window
            return real_parse(text)

        monkeypatch.setattr(_confusables, "_parse", counting_parse)
        barrier = threading.Barrier(16)
        results: list[str] = []

        def worker() -> None:
            barrier.wait()
            results.append(skeleton("p\u0430ypal"))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1
        assert results == [skeleton("paypal")] * 16

    def test_malformed_line_is_rejected(self) -> None:
        """A data line without a tab raises ValueError naming the line."""
        with pytest.raises(ValueError, match=":3:"):
            _confusables._parse("# ICU version: 1\n# Unicode version: 2\n0041 0042\n")

    def test_missing_version_header_is_rejected(self) -> None:
        """A data file without the version header lines raises ValueError."""
        with pytest.raises(ValueError, match="ICU version"):
            _confusables._parse("0041\t0042\n")
