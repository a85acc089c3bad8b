"""Regenerate ``mtotrust/data/confusables.txt`` from ICU's SpoofChecker.

The bundled table is the single-code-point form of the UTS #39 confusable
mapping: for every code point ``c`` that is stable under NFD (according to the
running Python's ``unicodedata``) and whose ICU skeleton differs from ``c``, it
records ``c`` and its prototype.  ``mtotrust._confusables.skeleton`` rebuilds
the full UTS #39 skeleton from it without ICU at run time.

ICU is a development dependency only (``pip install pyicu-wheels``, part of the
``dev`` extra).  Usage, from the repository root::

    python scripts/refresh_confusables.py

The output depends only on the ICU build, the Python ``unicodedata`` version and
the generation date.  Pin the date with ``--date YYYY-MM-DD`` or the
``SOURCE_DATE_EPOCH`` environment variable to get byte-identical output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import icu

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "mtotrust" / "data" / "confusables.txt"
REFRESH_COMMAND = "pip install pyicu-wheels && python scripts/refresh_confusables.py"

# The Unicode License V3 notice, which must accompany copies of data derived
# from Unicode's data files (confusables.txt).
UNICODE_LICENSE_V3 = """\
UNICODE LICENSE V3

COPYRIGHT AND PERMISSION NOTICE

Copyright © 1991-2024 Unicode, Inc.

NOTICE TO USER: Carefully read the following legal agreement. BY
DOWNLOADING, INSTALLING, COPYING OR OTHERWISE USING DATA FILES, AND/OR
SOFTWARE, YOU UNEQUIVOCALLY ACCEPT, AND AGREE TO BE BOUND BY, ALL OF THE
TERMS AND CONDITIONS OF THIS AGREEMENT. IF YOU DO NOT AGREE, DO NOT
DOWNLOAD, INSTALL, COPY, DISTRIBUTE OR USE THE DATA FILES OR SOFTWARE.

Permission is hereby granted, free of charge, to any person obtaining a
copy of data files and any associated documentation (the "Data Files") or
software and any associated documentation (the "Software") to deal in the
Data Files or Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, and/or sell
copies of the Data Files or Software, and to permit persons to whom the
Data Files or Software are furnished to do so, provided that either (a)
this copyright and permission notice appear with all copies of the Data
Files or Software, or (b) this copyright and permission notice appear in
associated Documentation.

THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF ANY
KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT OF
THIRD PARTY RIGHTS.

IN NO EVENT SHALL THE COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS NOTICE
BE LIABLE FOR ANY CLAIM, OR ANY SPECIAL INDIRECT OR CONSEQUENTIAL DAMAGES,
OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS,
WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,
ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THE DATA
FILES OR SOFTWARE.

Except as contained in this notice, the name of a copyright holder shall
not be used in advertising or otherwise to promote the sale, use or other
dealings in these Data Files or Software without prior written
authorization of the copyright holder.

SPDX-License-Identifier: Unicode-3.0
"""


def _code_points(text: str) -> str:
    """Return *text* as space-separated upper-case hex code points."""
    return " ".join(f"{ord(ch):04X}" for ch in text)


def iter_mappings() -> Iterator[tuple[str, str]]:
    """Yield ``(character, prototype)`` for each NFD-stable code point ICU maps elsewhere, in order."""
    checker = icu.SpoofChecker()
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:  # surrogates are not characters
            continue
        ch = chr(cp)
        if unicodedata.normalize("NFD", ch) != ch:
            continue
        # The type argument is ignored since ICU 58 (there is a single table).
        proto = checker.getSkeleton(0, ch)
        if proto != ch:
            yield ch, proto


def generation_date(explicit: str | None) -> dt.date:
    """Pick the header date: ``--date``, else ``SOURCE_DATE_EPOCH``, else today (UTC)."""
    if explicit:
        return dt.date.fromisoformat(explicit)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).date()
    return dt.datetime.now(tz=dt.UTC).date()


def render(mappings: list[tuple[str, str]], date: dt.date) -> str:
    """Render the data file: the header comment, then one ``XXXX<TAB>YYYY ZZZZ`` line per mapping."""
    header = [
        "mtotrust: UTS #39 confusable prototypes (the single-code-point skeleton table).",
        "",
        "Derived from Unicode's confusables.txt (Unicode License V3, reproduced below)",
        "via ICU's SpoofChecker, which compiles that file into its data.",
        "",
        f"ICU version: {icu.ICU_VERSION}",
        f"Unicode version: {icu.UNICODE_VERSION}",
        f"Python unicodedata version: {unicodedata.unidata_version}",
        f"Generated: {date.isoformat()}",
        f"Refresh: {REFRESH_COMMAND}",
        f"Mappings: {len(mappings)}",
        "",
        "Format: SOURCE<TAB>PROTOTYPE, as upper-case hex code points; PROTOTYPE is",
        "space-separated and may be empty.  SOURCE ranges over the code points c with",
        "NFD(c) == c (per the Python unicodedata version above) for which ICU's",
        "getSkeleton(c) != c; PROTOTYPE is that ICU skeleton (already in NFD).",
        "UTS #39 skeleton(X) = NFD(map(NFD(X))) with map replacing each listed SOURCE",
        "by its PROTOTYPE; see mtotrust/_confusables.py.",
        "",
        *UNICODE_LICENSE_V3.splitlines(),
    ]
    lines = [f"# {line}".rstrip() for line in header]
    lines.extend(f"{ord(ch):04X}\t{_code_points(proto)}" for ch, proto in mappings)
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None, doc: str, default_output: Path, what: str) -> argparse.Namespace:
    """Parse the options every refresh script takes: ``--output``, ``--date`` and ``--check``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=default_output, help="file to write (default: %(default)s)"
    )
    parser.add_argument(
        "--date", help="generation date to record, YYYY-MM-DD (default: SOURCE_DATE_EPOCH or today)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if the {what} in --output differ from ICU's; write nothing",
    )
    return parser.parse_args(argv)


def _body(text: str) -> list[str]:
    """Return the data lines of a rendered file (everything but comments and blank lines)."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def check_or_write(args: argparse.Namespace, render_at: Callable[[dt.date], str], count: int, what: str,
                   refresh_command: str) -> int:
    """With ``--check``, return 1 when ``--output`` differs from ``render_at``'s data; else write it and return 0."""
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if _body(current) != _body(render_at(dt.date(1970, 1, 1))):
            print(f"{args.output}: out of date with ICU {icu.ICU_VERSION}; run: {refresh_command}")
            return 1
        print(f"{args.output}: up to date ({count} {what}, ICU {icu.ICU_VERSION})")
        return 0
    text = render_at(generation_date(args.date))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print(f"wrote {count} {what} to {args.output} (ICU {icu.ICU_VERSION}, Unicode {icu.UNICODE_VERSION})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv, __doc__ or "", DEFAULT_OUTPUT, "mappings")
    mappings = list(iter_mappings())
    return check_or_write(args, lambda date: render(mappings, date), len(mappings), "mappings", REFRESH_COMMAND)


if __name__ == "__main__":
    raise SystemExit(main())
