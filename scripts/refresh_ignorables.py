"""Regenerate ``mtotrust/data/ignorables.txt`` from ICU's Default_Ignorable_Code_Point property.

The bundled file lists, as inclusive code point ranges, every code point with the
Unicode property Default_Ignorable_Code_Point (DerivedCoreProperties.txt): the
characters Unicode says to render as nothing when unsupported -- zero-width and
bidi controls, the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, U+034F
COMBINING GRAPHEME JOINER, variation selectors, tag characters and the code
points reserved for future ones.  ``mtotrust._address`` rejects every one of them
in an address (local part and domain) before NFC and UTS-46, without ICU at run
time.

It comes from the same ICU build as ``mtotrust/data/confusables.txt`` (see
``scripts/refresh_confusables.py``), so both files name the same Unicode
version.  ICU is a development dependency only (``pip install pyicu-wheels``,
part of the ``dev`` extra).  Usage, from the repository root::

    python scripts/refresh_ignorables.py            # rewrite the file
    python scripts/refresh_ignorables.py --check    # exit 1 if it differs from ICU's

Refresh both Unicode data files together when ICU is upgraded::

    python scripts/refresh_confusables.py && python scripts/refresh_ignorables.py

The output depends only on the ICU build and the generation date.  Pin the date
with ``--date YYYY-MM-DD`` or the ``SOURCE_DATE_EPOCH`` environment variable to
get byte-identical output.
"""

from __future__ import annotations

import datetime as dt
import sys

import icu

# Run as ``python scripts/refresh_ignorables.py``: the scripts directory is sys.path[0], so the sibling
# script's licence text and date rule are shared rather than copied.
from refresh_confusables import REPO_ROOT, UNICODE_LICENSE_V3, check_or_write, parse_args

DEFAULT_OUTPUT = REPO_ROOT / "mtotrust" / "data" / "ignorables.txt"
REFRESH_COMMAND = "pip install pyicu-wheels && python scripts/refresh_ignorables.py"


def iter_ranges() -> list[tuple[int, int]]:
    """Return the inclusive ``(first, last)`` ranges of ICU's Default_Ignorable_Code_Point set, ascending.

    Built from ``icu.Char.hasBinaryProperty`` over every code point, so the ranges are maximal runs.
    """
    prop = icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if not icu.Char.hasBinaryProperty(cp, prop):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


def _range_line(first: int, last: int) -> str:
    """Render one range as ``XXXX`` or ``XXXX..YYYY`` (upper-case hex, at least four digits)."""
    return f"{first:04X}" if first == last else f"{first:04X}..{last:04X}"


def render(ranges: list[tuple[int, int]], date: dt.date) -> str:
    """Render the data file: the header comment, then one range per line."""
    count = sum(last - first + 1 for first, last in ranges)
    header = [
        "mtotrust: Default_Ignorable_Code_Point (invisible characters rejected in addresses).",
        "",
        "Derived from Unicode's DerivedCoreProperties.txt (Unicode License V3, reproduced",
        "below) via ICU, which compiles that property into its data.",
        "",
        f"ICU version: {icu.ICU_VERSION}",
        f"Unicode version: {icu.UNICODE_VERSION}",
        f"Generated: {date.isoformat()}",
        f"Refresh: {REFRESH_COMMAND}",
        f"Ranges: {len(ranges)}",
        f"Code points: {count}",
        "",
        "Format: FIRST..LAST, or FIRST alone for a single code point: an inclusive range",
        "of upper-case hex code points, one per line, ascending and not adjacent.  Every",
        "code point listed has Default_Ignorable_Code_Point=Yes and no other has; see",
        "mtotrust/_address.py.",
        "",
        *UNICODE_LICENSE_V3.splitlines(),
    ]
    lines = [f"# {line}".rstrip() for line in header]
    lines.extend(_range_line(first, last) for first, last in ranges)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv, __doc__ or "", DEFAULT_OUTPUT, "ranges")
    ranges = iter_ranges()
    return check_or_write(args, lambda date: render(ranges, date), len(ranges), "ranges", REFRESH_COMMAND)


if __name__ == "__main__":
    raise SystemExit(main())
