"""UTS #39 confusable skeletons, from a bundled table (no ICU at run time).

Two strings are *confusable* when their skeletons are equal.  UTS #39 section 4
defines ``skeleton(X) = NFD(map(NFD(X)))``, where ``map`` replaces each
character by its prototype from Unicode's confusables.txt.  The table shipped
in ``mtotrust/data/confusables.txt`` holds that mapping for every NFD-stable
code point, generated from ICU's SpoofChecker by
``scripts/refresh_confusables.py``; see the file header for its ICU and
Unicode versions and its licence (Unicode License V3).

Normalisation uses the running Python's :mod:`unicodedata`.  When that is older
than the table's Unicode version (Python 3.11 ships Unicode 14.0, the table is
Unicode 16.0) a few dozen code points unassigned in Python's database but
assigned later -- new canonical decompositions and new non-zero combining
classes -- are normalised as Python sees them, so a string that combines them
with other combining marks may get a skeleton that differs from ICU's.  Every
single code point, and every string free of such code points, matches ICU.

The skeleton is *not* idempotent: a few prototypes (for example the one for
U+01C4 LATIN CAPITAL LETTER DZ WITH CARON) contain characters that are
themselves mapped, exactly as with ICU.  Compare skeletons; do not re-skeleton
them.
"""

from __future__ import annotations

import threading
import unicodedata
from importlib import resources

__all__ = ["data_version", "skeleton"]

_DATA_FILE = "confusables.txt"

_lock = threading.Lock()
# (prototype table, version string, the table's ASCII rows for str.translate); set once, atomically, by _load().
_data: tuple[dict[str, str], str, dict[int, str]] | None = None


def _parse(text: str) -> tuple[dict[str, str], str]:
    """Parse the data file into the prototype table and a ``"ICU x, Unicode y"`` version string."""
    table: dict[str, str] = {}
    meta: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                meta.setdefault(key.strip(), value.strip())
            continue
        source, sep, proto = line.partition("\t")
        if not sep:
            raise ValueError(f"{_DATA_FILE}:{lineno}: expected SOURCE<TAB>PROTOTYPE, got {line!r}")
        table[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in proto.split())
    try:
        version = f"ICU {meta['ICU version']}, Unicode {meta['Unicode version']}"
    except KeyError as exc:
        raise ValueError(f"{_DATA_FILE}: header lacks the {exc.args[0]!r} line") from None
    return table, version


def _load() -> tuple[dict[str, str], str, dict[int, str]]:
    """Return the prototype table, its version and its ASCII rows, reading the data file once (thread-safe)."""
    global _data  # noqa: PLW0603 -- the module-level cache is the point
    data = _data
    if data is None:
        with _lock:
            data = _data
            if data is None:
                text = (resources.files("mtotrust") / "data" / _DATA_FILE).read_text(encoding="utf-8")
                table, version = _parse(text)
                data = _data = table, version, {ord(ch): proto for ch, proto in table.items() if ch.isascii()}
    return data


def skeleton(text: str) -> str:
    r"""Return the UTS #39 skeleton of *text*: ``NFD(map(NFD(text)))``.

    Two strings are confusable when their skeletons are equal, e.g.
    ``skeleton("p\u0430ypal") == skeleton("paypal")`` (Cyrillic ``\u0430``) and
    ``skeleton("rnicrosoft") == skeleton("microsoft")``.  The skeleton is a
    comparison key, not display text.
    """
    table, _, ascii_rows = _load()
    if text.isascii():
        # NFD leaves ASCII as it is, so the map is one translate, and the outer NFD matters only when a prototype
        # is not ASCII: the same skeleton for about a twentieth of the cost (a 1M-row domains.json)
        mapped = text.translate(ascii_rows)
        return mapped if mapped.isascii() else unicodedata.normalize("NFD", mapped)
    mapped = "".join([table.get(ch, ch) for ch in unicodedata.normalize("NFD", text)])
    return unicodedata.normalize("NFD", mapped)


def data_version() -> str:
    """Return the versions the bundled table was built from, e.g. ``"ICU 77.1, Unicode 16.0"``."""
    return _load()[1]
