"""Address and domain normalisation: the first resolution step (docs/concepts.md, "Normalise").

One function per idea: :func:`normalize_address` is the only parser of an e-mail address, used for the
identities apps ask about and for every address in the directory, so both sides are compared in the same form.

Invisible characters are every Default_Ignorable_Code_Point of Unicode (whatever their category: the Hangul
fillers are letters, U+034F and the variation selectors are marks), read from ``mtotrust/data/ignorables.txt``
(generated from ICU by ``scripts/refresh_ignorables.py``, the same Unicode version as the confusables table)
on the first non-ASCII address and rejected before NFC and UTS-46, which would otherwise drop them silently.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from importlib import resources

import idna

from mtotrust._confusables import skeleton
from mtotrust._errors import IdentityError, shown

__all__ = [
    "ASCII_ATEXT",
    "ASCII_DOT_ATOM",
    "MAX_ADDRESS_LENGTH",
    "domain_skeleton",
    "ignorables_version",
    "is_default_ignorable",
    "normalize_address",
    "normalize_domain",
    "proxy_smtp_address",
    "split_ext_upn",
    "split_plain_ascii",
]

MAX_ADDRESS_LENGTH = 320
"""Longest address accepted (RFC 3696 erratum: 64 + 1 + 255)."""

_EXT = "#ext#"
_DOMAIN_CACHE_SIZE = 1 << 16
# RFC 5322 atext, ASCII part; non-ASCII is allowed by RFC 6531 and checked by category below.
ASCII_ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
"""Regex class of the ASCII characters RFC 5322 allows in an unquoted local part (atext)."""
ASCII_DOT_ATOM = rf"{ASCII_ATEXT}+(?:\.{ASCII_ATEXT}+)*"
"""Regex of an ASCII dot-atom local part: atext runs joined by single dots."""
_ASCII_DOT_ATOM = re.compile(ASCII_DOT_ATOM)
# The common case, checked in one C-level pass: an ASCII dot-atom local part at an LDH domain. For such an
# address UTS-46 processing is lower-casing; anything else (IDN, "--" as in xn-- labels) takes the full path.
# (Matched against the lower-cased text; no groups: capturing costs more than partition.)
_ASCII_ADDRESS = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_DOMAIN_LENGTH = 253
_ATEXT_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-")
# Control, format (zero-width, bidi), surrogate, private-use and unassigned code points, and every space or
# separator but the ASCII space: none of them belongs in an address, and several hide what a user reads.
_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_AT_LOOKALIKES = ("\uff20", "\ufe6b")  # FULLWIDTH and SMALL COMMERCIAL AT
_IGNORABLES_FILE = "ignorables.txt"


def _parse_ignorables(text: str) -> tuple[tuple[tuple[int, int], ...], str]:
    """Parse the ignorables data file into its inclusive code point ranges and its Unicode version.

    Raises ``ValueError`` naming the line for a malformed, unordered or adjacent range, or a missing header.
    """
    ranges: list[tuple[int, int]] = []
    version = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() == "Unicode version" and version is None:
                version = value.strip()
            continue
        if not line:
            continue
        first_text, sep, last_text = line.partition("..")
        try:
            first, last = int(first_text, 16), int(last_text if sep else first_text, 16)
        except ValueError:
            raise ValueError(f"{_IGNORABLES_FILE}:{lineno}: expected FIRST..LAST or FIRST in hex, "
                             f"got {line!r}") from None
        if not 0 <= first <= last <= 0x10FFFF or (ranges and first <= ranges[-1][1] + 1):
            raise ValueError(f"{_IGNORABLES_FILE}:{lineno}: range {line!r} is out of order, adjacent to the "
                             "previous one or outside 0..10FFFF")
        ranges.append((first, last))
    if version is None:
        raise ValueError(f"{_IGNORABLES_FILE}: header lacks the 'Unicode version' line")
    return tuple(ranges), version


@functools.cache
def _ignorables() -> tuple[re.Pattern[str], tuple[tuple[int, int], ...], str]:
    """Return a pattern matching any default-ignorable code point, the ranges and their Unicode version.

    Read once per process, on the first non-ASCII text (ASCII holds no default-ignorable code point); two
    threads racing on the first call parse the same small file twice at worst and keep one result.
    """
    text = (resources.files("mtotrust") / "data" / _IGNORABLES_FILE).read_text(encoding="utf-8")
    ranges, version = _parse_ignorables(text)
    pattern = re.compile("[" + "".join(f"\\U{first:08X}-\\U{last:08X}" for first, last in ranges) + "]")
    return pattern, ranges, version


def is_default_ignorable(ch: str) -> bool:
    """Return whether the one character ``ch`` is a Unicode Default_Ignorable_Code_Point (an invisible one)."""
    return _ignorables()[0].fullmatch(ch) is not None


def ignorables_version() -> str:
    """Return the Unicode version of the bundled default-ignorable table, e.g. ``"16.0"``."""
    return _ignorables()[2]


def _load_find_invisible(text: str) -> re.Match[str] | None:
    """Load the table, point ``_find_invisible`` at its pattern's ``search`` and search ``text`` (first call only)."""
    global _find_invisible  # noqa: PLW0603 -- rebinding once keeps later calls free of any lookup
    _find_invisible = _ignorables()[0].search
    return _find_invisible(text)


_find_invisible: Callable[[str], re.Match[str] | None] = _load_find_invisible
"""Return the first default-ignorable code point of a text as a match, or ``None`` (one C-level scan)."""


def _invisible_rule(ch: str, part: str) -> str:
    """Return the rule an invisible ``ch`` found in the ``part`` of an address breaks, naming the code point."""
    name = unicodedata.name(ch, "")
    what = f"U+{ord(ch):04X} {name} (default-ignorable)" if name else f"U+{ord(ch):04X} (unassigned, default-ignorable)"
    return f"the {part} contains the invisible character {what}; remove it"


def _fail(text: str, rule: str) -> IdentityError:
    return IdentityError(f"invalid address {shown(text)}: {rule}", value=text)


def _bad_character(text: str) -> str | None:
    """Return why ``text`` holds a character no address may hold, or ``None``."""
    for ch in text:
        if ch < "\x80":
            if ch < " " or ch == "\x7f":
                return f"control character U+{ord(ch):04X} is not allowed"
            continue
        category = unicodedata.category(ch)
        if category in _REJECTED_CATEGORIES:
            name = unicodedata.name(ch, "unnamed")
            return (f"character U+{ord(ch):04X} ({name}, category {category}) is not allowed; "
                    "remove invisible, control and non-ASCII space characters")
    return None


def _check_local_part(local: str, whole: str) -> str:
    if not local:
        raise _fail(whole, "the local part before '@' is empty")
    if local.isascii():
        if _ASCII_DOT_ATOM.fullmatch(local) is None:
            raise _fail(whole, "the local part must be a dot-atom (letters, digits, !#$%&'*+/=?^_`{|}~- and "
                               "single inner dots); quoted local parts are not accepted")
        return local.lower()
    if not local.isprintable():
        raise _fail(whole, _bad_character(local) or "a character that cannot be printed is not allowed")
    for atom in local.split("."):
        if not atom:
            raise _fail(whole, "the local part has an empty dot-separated part (leading, trailing or '..')")
        for ch in atom:
            if ch < "\x80" and ch not in _ATEXT_ASCII:
                raise _fail(whole, f"character {ch!r} is not allowed in an unquoted local part")
    return unicodedata.normalize("NFC", local).lower()


@functools.lru_cache(maxsize=_DOMAIN_CACHE_SIZE)
def _domain_a_label(domain: str) -> str:
    """Return the UTS-46 (non-transitional) A-label form of ``domain``.

    Raises ``ValueError`` whose message is the rule broken; callers wrap it with the whole value.
    """
    if not domain:
        raise ValueError("the domain is empty")
    if domain.endswith("."):
        raise ValueError("the domain ends with a dot; remove the trailing dot")
    if not domain.isascii():
        # before UTS-46, which deletes default-ignorable code points (U+3164, U+034F, U+FE0F ...) silently
        found = _find_invisible(domain)
        if found is not None:
            raise ValueError(_invisible_rule(found.group(), "domain"))
    if not domain.isprintable():
        raise ValueError(_bad_character(domain) or "a character that cannot be printed is not allowed")
    try:
        encoded = idna.encode(domain, uts46=True, std3_rules=True, transitional=False)
    except idna.IDNAError as exc:
        raise ValueError(f"the domain is not a valid internationalised domain name ({exc})") from None
    a_label = encoded.decode("ascii").lower()
    if a_label.endswith("."):  # UTS-46 maps U+3002, U+FF0E and U+FF61 to "."
        raise ValueError("the domain ends with a dot (after mapping full stops); remove the trailing dot")
    if "xn--" in a_label:
        _check_a_labels(a_label)
    return a_label


def _check_a_labels(a_label: str) -> None:
    """Raise ``ValueError`` if an ``xn--`` label of a valid A-label domain decodes to an invisible character.

    IDNA2008 disallows every default-ignorable code point but U+200C and U+200D, which it allows after a virama
    (CONTEXTJ): rejected here too, as they are in a Unicode domain.
    """
    for label in a_label.split("."):
        if label.startswith("xn--"):
            try:
                u_label = label[4:].encode("ascii").decode("punycode")
            except UnicodeError:  # pragma: no cover -- idna.encode has decoded and validated every xn-- label
                continue
            found = _find_invisible(u_label)
            if found is not None:
                raise ValueError(_invisible_rule(found.group(), f"domain label {label!r} (decoded)"))


def normalize_domain(domain: str) -> str:
    """Return ``domain`` as a lower-case A-label (punycode) domain, or raise :class:`IdentityError`.

    UTS-46 non-transitional processing maps case and compatibility forms (``ＣＯＮＴＯＳＯ.com`` is
    ``contoso.com``); the result is cached per domain because the mapping is slow.

    .. versionadded:: 0.1.0
    """
    try:
        return _domain_a_label(domain.strip(" \t"))
    except ValueError as exc:
        raise _fail(domain, str(exc)) from None


@functools.lru_cache(maxsize=_DOMAIN_CACHE_SIZE)
def domain_skeleton(a_label: str) -> str:
    """Return the UTS-39 confusable skeleton of an A-label domain, computed on its Unicode form.

    .. versionadded:: 0.1.0
    """
    if a_label.isascii() and "xn--" not in a_label and a_label.islower():
        # no label to decode: idna.decode would return the text as it is (or refuse it, which keeps it too),
        # at fifteen times the cost of the skeleton itself
        return skeleton(a_label)
    try:
        unicode_form = idna.decode(a_label)
    except idna.IDNAError:
        unicode_form = a_label
    return skeleton(unicode_form)


def normalize_address(text: str) -> tuple[str, str]:
    """Split and normalise an e-mail address into ``(local_part, a_label_domain)``.

    Trims ASCII spaces and tabs at both ends only; rejects invisible (every Unicode default-ignorable code point,
    such as U+200B, U+3164 HANGUL FILLER or U+FE0F, before NFC and UTS-46), control, format and non-ASCII space
    characters anywhere, anything but exactly one ASCII ``@``, quoted local parts, a trailing dot, addresses over
    320 characters and labels over 63; lower-cases the NFC local part with ``str.lower`` (not ``casefold``: it
    would merge distinct mailboxes) and maps the domain to its UTS-46 A-label.

    Raises:
        IdentityError: naming the value and the rule it breaks.

    .. versionadded:: 0.1.0
    """
    if not isinstance(text, str):
        raise IdentityError(f"an address must be a str, not {type(text).__name__}: {text!r:.80}", value=text)
    trimmed = text.strip(" \t")
    if len(trimmed) > MAX_ADDRESS_LENGTH:
        raise _fail(trimmed, f"the address is {len(trimmed)} characters long; at most {MAX_ADDRESS_LENGTH}")
    if trimmed.isascii():
        parts = split_plain_ascii(trimmed)
        if parts is not None:
            return parts
    return _normalize_trimmed(trimmed)


def split_plain_ascii(trimmed: str) -> tuple[str, str] | None:
    """Return ``(local, domain)`` lower-cased for a trimmed plain-ASCII address, or ``None``.

    Plain means a dot-atom local part at an LDH domain without ``--``: for such an address every rule of
    :func:`normalize_address` reduces to lower-casing. ``None`` means "use the full rules", not "invalid".
    """
    if len(trimmed) > MAX_ADDRESS_LENGTH:
        return None
    lowered = trimmed.lower()
    if _ASCII_ADDRESS.fullmatch(lowered) is None:
        return None
    local, _, domain = lowered.partition("@")
    if "--" in domain or len(domain) > _MAX_DOMAIN_LENGTH:
        return None
    return local, domain


def _normalize_trimmed(trimmed: str) -> tuple[str, str]:
    """Normalise a trimmed address by every rule (the path for anything but plain ASCII)."""
    if any(at in trimmed for at in _AT_LOOKALIKES):
        raise _fail(trimmed, "a look-alike '@' (fullwidth or small commercial at) is not an address separator")
    count = trimmed.count("@")
    if count != 1:
        raise _fail(trimmed, "an address needs exactly one '@'" if count == 0 else
                    f"an address needs exactly one '@', found {count}")
    local, _, domain = trimmed.partition("@")
    if not trimmed.isascii():
        # anywhere, before NFC and UTS-46 (ASCII holds no default-ignorable code point)
        found = _find_invisible(trimmed)
        if found is not None:
            part = "local part" if found.start() < len(local) else "domain"
            raise _fail(trimmed, _invisible_rule(found.group(), part))
    # str.isprintable is False exactly for the rejected categories (and keeps the common case in C).
    if not trimmed.isprintable():
        raise _fail(trimmed, _bad_character(trimmed) or "a character that cannot be printed is not allowed")
    local = _check_local_part(local, trimmed)
    if not domain:
        raise _fail(trimmed, "the domain after '@' is empty")
    try:
        a_label = _domain_a_label(domain)
    except ValueError as exc:
        raise _fail(trimmed, str(exc)) from None
    return local, a_label


def split_ext_upn(local: str, whole: str) -> tuple[str, str] | None:
    """Decode a normalised ``alias_homedomain#ext#`` local part into ``(alias, home_a_label_domain)``.

    Returns ``None`` when the local part carries no ``#EXT#`` marker. The caller decides whether the host
    is a local verified domain (only then is the UPN decoded at all).

    Raises:
        IdentityError: for a malformed marker (no ``_``, several ``#EXT#``, empty alias or home domain).

    .. versionadded:: 0.1.0
    """
    if _EXT not in local:
        return None
    if local.count(_EXT) != 1 or not local.endswith(_EXT):
        raise _fail(whole, "an #EXT# user principal name has exactly one '#EXT#' right before '@'")
    encoded = local[: -len(_EXT)]
    alias, sep, home = encoded.rpartition("_")
    if not sep or not alias or not home:
        raise _fail(whole, "an #EXT# user principal name reads 'alias_homedomain#EXT#@host'; "
                           "the alias or home domain is missing")
    try:
        home_domain = _domain_a_label(home)
    except ValueError as exc:
        raise _fail(whole, f"the home domain encoded in the #EXT# name is invalid: {exc}") from None
    alias = _check_local_part(alias, whole)
    return alias, home_domain


def proxy_smtp_address(proxy: str) -> str | None:
    """Return the address of an ``SMTP:``/``smtp:`` proxy address, ``None`` for other kinds (``X500:`` ...).

    .. versionadded:: 0.1.0
    """
    if proxy.startswith(("SMTP:", "smtp:")):
        return proxy[5:]
    return None
