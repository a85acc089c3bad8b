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

import argparse
import datetime as dt
import sys
from pathlib import Path

import icu

# Run as ``python scripts/refresh_ignorables.py``: the scripts directory is sys.path[0], so the sibling
# script's licence text and date rule are shared rather than copied.
from refresh_confusables import REPO_ROOT, UNICODE_LICENSE_V3, generation_date

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


def _body(text: str) -> list[str]:
    """Return the data lines of a rendered file (everything but comments and blank lines)."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="file to write (default: %(default)s)"
    )
    parser.add_argument(
        "--date", help="generation date to record, YYYY-MM-DD (default: SOURCE_DATE_EPOCH or today)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the ranges in --output differ from ICU's; write nothing",
    )
    args = parser.parse_args(argv)

    ranges = iter_ranges()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if _body(current) != _body(render(ranges, dt.date(1970, 1, 1))):
            print(f"{args.output}: out of date with ICU {icu.ICU_VERSION}; run: {REFRESH_COMMAND}")
            return 1
        print(f"{args.output}: up to date ({len(ranges)} ranges, ICU {icu.ICU_VERSION})")
        return 0

    text = render(ranges, generation_date(args.date))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    versions = f"ICU {icu.ICU_VERSION}, Unicode {icu.UNICODE_VERSION}"
    print(f"wrote {len(ranges)} ranges to {args.output} ({versions})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
