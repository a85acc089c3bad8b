"""Read the mail headers mtotrust decides on: ``Authentication-Results`` (RFC 8601) and ``From`` (RFC 5322).

The ``authres`` package raises on Exchange Online's form, which has no authserv-id
(``spf=pass (sender IP is …) smtp.mailfrom=…;dmarc=pass action=none header.from=…;compauth=pass reason=100``),
and drops EOP's bare ``action=`` pairs, so mtotrust carries this small hand-written tokenizer instead. It is
linear in the length of the value (no backtracking regular expressions) and refuses values over 64 KiB.

:func:`select_counting_header` decides which value counts from its authserv-id alone, read with one regular
expression and no parse, and reads at most :data:`MAX_VALUES` values, so a message with many values costs little.

:func:`from_address` reads the one mailbox of a ``From`` field with its own small parser (in
``mtotrust._fromaddr``, for the reasons given in its docstring).

Most values take a fast path first (:func:`_fast_parse`): the common form, without quoted-strings, backslashes
or nested comments, is split at ``;`` and each result matched by one pattern, with its reading cached; the
readable parser reads everything else, and ``tests/test_mailauth_fast.py`` pins the one to the other.

Why this module is over 700 lines: it is one concept, the reading of ``Authentication-Results``, and its parts
(the tokenizer, its fast path, the counting rule's quick check, the reduction to per-result alignment) share the
same token rules; split apart, the fast paths and the parser could drift, and the property tests that pin one to
the other would have to reach into several modules.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

import attrs

from mtotrust._errors import AuthResultsError, FromAddressError, shown
from mtotrust._fromaddr import MAX_FROM_LENGTH, from_address
from mtotrust._model import MailAuth

__all__ = [
    "MAX_FROM_LENGTH",
    "MAX_LENGTH",
    "MAX_VALUES",
    "AuthResults",
    "AuthResultsError",
    "FromAddressError",
    "MethodResult",
    "from_address",
    "parse_authentication_results",
    "select_counting_header",
    "to_mail_auth",
]

MAX_LENGTH = 64 * 1024
"""Longest header value, in characters, that :func:`parse_authentication_results` accepts."""

MAX_VALUES = 64
"""Most ``Authentication-Results`` values, topmost first, that :func:`select_counting_header` reads."""

# A comment or quoted-string before or in the authserv-id is read within this many characters only (a boundary
# writes no such thing): a value whose start is still unread there counts, so it is parsed and fails closed.
_ID_WINDOW = 1024

# Every pattern is a single character class repeated: it matches in linear time, whatever the input.
_KEYWORD = re.compile(r"[A-Za-z0-9_-]+")  # RFC 5321 ldh-str, widened by "_" that real MTAs emit
_RFC2045_CLASS = r"!#$%&'*+\-.0-9A-Z^_`a-z{|}~"  # RFC 2045 token: printable ASCII minus tspecials
_TOKEN = re.compile(f"[{_RFC2045_CLASS}]+")
# An unquoted property value: RFC 8601 allows a token or an address, real headers also carry base64 ("/", "=")
# and RFC 6532 UTF-8, so take everything up to whitespace, a comment, a quote or ";".
_VALUE = re.compile(r'[^\x00-\x20\x7f;()"]+')
_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BAD_BREAK = re.compile(r"\r(?!\n)|\r?\n(?![ \t])")  # a line break that is not folding
# The field name, when the caller kept it: ASCII case-insensitive, so it is what str.lower() equality finds.
# Possessive: once read, it is never read again as the first token. The parser and every check below use it.
_FIELD_PREFIX = r"(?:(?ai:authentication-results)[ \t]*:)?+"
_FIELD = re.compile(_FIELD_PREFIX)
_WS = r"[ \t\r\n]"
# The start of a value, for deciding whether it counts without parsing it: the field name, white space, then
# group 1, the first token (up to ";", "(" or white space), and group 2, the first "=", "/" or "(" after the
# white space that follows it. Nothing in it can fail, so it never backtracks.
_HEAD = re.compile(rf"{_FIELD_PREFIX}{_WS}*([^ \t\r\n;(]*){_WS}*([=/(]?)")
_ID_TOKEN = re.compile(r"[^ \t\r\n;(]*")


# The fast path (see _fast_parse) reads a value without quoted-strings, backslashes or nested comments: there, once
# its plain comments are blanked, ";" only ever separates results, and each piece is matched by one pattern.
_FAST_COMMENT = re.compile(r"\([^()\\;]*+\)")
_FAST_WS = r"[ \t\r\n]*+"
_FAST_ID = re.compile(rf"{_FAST_WS}([{_RFC2045_CLASS}]++){_FAST_WS}(?:([0-9]++){_FAST_WS})?")
_FAST_KEY = r"[A-Za-z0-9_-]++"
_FAST_VALUE = r'[^\x00-\x20\x7f;()"]++'  # _VALUE, possessive
# A property, with its name, its sub-name and its value as groups (for findall), and the same without groups.
_FAST_PROPERTY = rf"({_FAST_KEY}){_FAST_WS}(?:\.{_FAST_WS}({_FAST_KEY}){_FAST_WS})?={_FAST_WS}({_FAST_VALUE})"
_FAST_ANY_PROPERTY = rf"{_FAST_KEY}{_FAST_WS}(?:\.{_FAST_WS}{_FAST_KEY}{_FAST_WS})?={_FAST_WS}{_FAST_VALUE}"
_FAST_RESINFO = re.compile(
    rf"{_FAST_WS}({_FAST_KEY}){_FAST_WS}(?:/{_FAST_WS}[0-9]++{_FAST_WS})?={_FAST_WS}({_FAST_KEY})"
    rf"((?:{_FAST_WS}{_FAST_ANY_PROPERTY})*+){_FAST_WS}")
_FAST_PROPERTIES = re.compile(_FAST_PROPERTY)


@attrs.frozen(slots=True, cache_hash=True)  # hashed once: the fast path's results are cache keys (see _claims)
class MethodResult:
    """One ``resinfo``: a method, its result, the ``reason`` and every ``key=value`` pair after it.

    ``method`` and ``result`` are lower-case. ``properties`` keeps the pairs in header order with lower-case
    keys: ``ptype.property`` ones such as ``("header.from", "contoso.com")`` and EOP's bare ones such as
    ``("action", "none")`` and ``("reason", "100")`` (so the reason is also in ``reason``). Quoted values are
    unquoted. A method version (``dkim/1``) is dropped.

    .. versionadded:: 0.1.0
    """

    method: str
    result: str
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def prop(self, name: str) -> str | None:
        """Return the value of the first property called ``name`` (case-insensitive), or ``None``."""
        key = name.lower()
        return next((value for k, value in self.properties if k == key), None)


@attrs.frozen(slots=True)
class AuthResults:
    """A parsed header: its ``authserv_id`` (``None`` in Exchange Online's form) and its results in order.

    ``results`` is empty for ``example.org 1; none``.

    .. versionadded:: 0.1.0
    """

    authserv_id: str | None
    results: tuple[MethodResult, ...] = ()

    def get(self, method: str) -> tuple[MethodResult, ...]:
        """Return the results of ``method`` (case-insensitive), in header order."""
        key = method.lower()
        return tuple(r for r in self.results if r.method == key)


def _require_str(value: object) -> None:
    if not isinstance(value, str):
        msg = f"an Authentication-Results value must be str, not {type(value).__name__}"
        raise AuthResultsError(msg, value=value)


class _Parser:
    """A cursor over one header value; every method advances ``pos`` or raises :class:`AuthResultsError`."""

    __slots__ = ("pos", "text", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.text = value.rstrip("\r\n")  # the field's own CRLF, if the caller kept it
        field = _FIELD.match(self.text)  # the same pattern as _HEAD's, so the two agree on where the value starts
        self.pos = field.end() if field else 0  # it always matches, perhaps the empty string

    def fail(self, what: str, pos: int | None = None) -> AuthResultsError:
        where = self.pos if pos is None else pos
        msg = f"{what} at position {where} in Authentication-Results {shown(self.value)}"
        return AuthResultsError(msg, value=self.value)

    def validate(self) -> None:
        if bad := _CONTROL.search(self.text):
            raise self.fail(f"control character {bad.group()!r} is not allowed", bad.start())
        if bad := _BAD_BREAK.search(self.text):
            raise self.fail("line break not followed by whitespace (not folding)", bad.start())

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.fail(what)
        self.pos += 1

    def skip_cfws(self) -> None:
        """Skip folding whitespace and RFC 5322 comments, nested and with backslash escapes."""
        text, i, depth, start = self.text, self.pos, 0, self.pos
        while i < len(text):
            char = text[i]
            if depth:
                if char == "\\":
                    i += 1
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
            elif char == "(":
                depth, start = 1, i
            elif char not in " \t\r\n":
                break
            i += 1
        if depth:
            raise self.fail("unclosed comment", start)
        self.pos = i

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    def quoted(self) -> str:
        """Read a quoted-string at ``pos`` and return it unquoted and unfolded."""
        text, i, out = self.text, self.pos + 1, list[str]()
        while i < len(text):
            char = text[i]
            if char == '"':
                self.pos = i + 1
                return "".join(out)
            if char == "\\" and i + 1 < len(text):
                i += 1
                char = text[i]
            if char not in "\r\n":
                out.append(char)
            i += 1
        raise self.fail("unclosed quoted-string")

    def authserv_id(self) -> str | None:
        """Read up to the first resinfo; return the authserv-id, or ``None`` if the value starts with one."""
        self.skip_cfws()
        if self.pos >= len(self.text):
            raise self.fail("expected an authserv-id or a result, found nothing")
        start = self.pos
        if self.peek() == '"':
            return self.quoted()
        token = self.match(_TOKEN, "an authserv-id or a method")
        self.skip_cfws()
        if self.peek() in ("=", "/"):  # a method: Exchange Online's form, which has no authserv-id
            self.pos = start
            return None
        return token

    def parse(self) -> AuthResults:
        self.validate()
        authserv_id = self.authserv_id()
        results: list[MethodResult] = []
        if authserv_id is None:
            results.append(self.resinfo())
        else:
            self.skip_cfws()
            if version := _DIGITS.match(self.text, self.pos):
                if version.group().lstrip("0") != "1":  # no int(): 5000 digits would raise ValueError
                    raise self.fail(f"unsupported version {shown(version.group())} (only 1 is defined)")
                self.pos = version.end()
                self.skip_cfws()
            if self.pos >= len(self.text):
                raise self.fail(f"expected ';' and results after the authserv-id {authserv_id!r}")
        none = False
        while True:
            self.skip_cfws()
            if self.pos >= len(self.text):
                return AuthResults(authserv_id, tuple(results))
            self.expect(";", "expected ';' before the next result")
            self.skip_cfws()
            if self.peek() in ("", ";"):  # an empty resinfo, such as a trailing ";": nothing to record
                continue
            if none:
                raise self.fail("'none' must be the only result")
            start = self.pos
            if self.match(_KEYWORD, "a method").lower() == "none" and authserv_id is not None:
                self.skip_cfws()
                if self.peek() not in ("=", "/"):  # RFC 8601 no-result, not a method called "none"
                    if results:
                        raise self.fail("'none' must be the only result", start)
                    none = True
                    continue
            self.pos = start
            results.append(self.resinfo())

    def resinfo(self) -> MethodResult:
        """Read ``method[/version]=result`` and the reason and properties after it, up to ``;`` or the end."""
        method = self.match(_KEYWORD, "a method").lower()
        self.skip_cfws()
        if self.peek() == "/":
            self.pos += 1
            self.skip_cfws()
            self.match(_DIGITS, f"a version for method {method!r}")
            self.skip_cfws()
        self.expect("=", f"expected '=' after method {method!r}")
        self.skip_cfws()
        result = self.match(_KEYWORD, f"a result for method {method!r}").lower()
        reason: str | None = None
        properties: list[tuple[str, str]] = []
        while True:
            self.skip_cfws()
            if self.peek() in ("", ";"):
                return MethodResult(method, result, reason, tuple(properties))
            key = self.match(_KEYWORD, f"a property or ';' after {method}={result}").lower()
            self.skip_cfws()
            if self.peek() == ".":
                self.pos += 1
                self.skip_cfws()
                key += "." + self.match(_KEYWORD, f"a property name after {key + '.'!r}").lower()
                self.skip_cfws()
            self.expect("=", f"expected '=' after {key!r}")
            self.skip_cfws()
            value = self.pvalue(key)
            if key == "reason" and reason is None:
                reason = value
            properties.append((key, value))

    def pvalue(self, key: str) -> str:
        """Read a quoted-string, a token or an address (``local@domain``, ``"quoted local"@domain``)."""
        if self.peek() != '"':
            return self.match(_VALUE, f"a value for {key!r}")
        start = self.pos
        unquoted = self.quoted()
        if self.peek() != "@":
            return unquoted
        self.pos += 1
        self.match(_VALUE, f"a domain after the quoted local-part of {key!r}")
        # A quoted local-part keeps its quotes: unquoted, "a b"@x and a b@x would read the same.
        return self.text[start : self.pos]


def _fast_parse(value: str) -> AuthResults | None:
    """Parse a value of the common form as :class:`_Parser` does, or return ``None`` (the parser decides).

    The common form is what boundaries and Exchange Online write: no quoted-string, no backslash, comments that
    hold no parenthesis or ";", and no character the parser refuses. Its comments blanked, the value splits at
    ";" into pieces, each matched whole by one pattern. ``tests/test_mailauth_fast.py`` pins it to the parser:
    wherever it answers, the answer is the parser's.
    """
    text = value.rstrip("\r\n")
    field = _FIELD.match(text)
    if field and field.end():
        text = text[field.end():]
    if '"' in text or "\\" in text:
        return None
    # isprintable() is false for every control character and line break (and for a few other characters): only
    # then are the parser's own checks needed, whose search is slower than the whole rest of this function.
    if not text.isprintable() and (_CONTROL.search(text) or _BAD_BREAK.search(text)):
        return None
    if "(" in text or ")" in text:
        text = _FAST_COMMENT.sub(" ", text)
        if "(" in text or ")" in text:  # nested, unclosed or holding ";"
            return None
    pieces = text.split(";")
    head = _FAST_ID.fullmatch(pieces[0])
    if head is not None:  # an authserv-id, and perhaps a version, then at least one ";"
        version = head.group(2)
        if len(pieces) == 1 or (version is not None and version.lstrip("0") != "1"):
            return None
        authserv_id: str | None = head.group(1)
        del pieces[0]
    else:
        authserv_id = None
    results: list[MethodResult] = []
    for piece in pieces:
        result = _fast_result(piece)
        if result is None:  # an empty result, such as a trailing ";"; Exchange Online's form starts with one
            if authserv_id is None and not results:
                return None
        elif result is False:
            return None
        else:
            results.append(result)
    return AuthResults(authserv_id, tuple(results))


@functools.lru_cache(maxsize=4096)
def _fast_result(piece: str) -> MethodResult | Literal[False] | None:
    """Read one ``;``-separated piece of a common-form value with its comments blanked (see :func:`_fast_parse`).

    Returns its result, ``None`` for an empty piece, or ``False`` when the parser must read the value. Cached:
    the pieces of a domain's results repeat from message to message (the comments that vary are blanked).
    """
    found = _FAST_RESINFO.fullmatch(piece)
    if found is None:
        return False if piece.strip(" \t\r\n") else None
    method, result, rest = found.groups()
    method = method.lower()
    if method == "none":  # RFC 8601's no-result, or a method of that name: the parser tells them apart
        return False
    reason, properties = None, list[tuple[str, str]]()
    for name, sub, prop in _FAST_PROPERTIES.findall(rest) if rest else ():
        key = f"{name.lower()}.{sub.lower()}" if sub else name.lower()
        if key == "reason" and reason is None:
            reason = prop
        properties.append((key, prop))
    return MethodResult(method, result.lower(), reason, tuple(properties))


def parse_authentication_results(value: str) -> AuthResults:
    """Parse one ``Authentication-Results`` value, with or without the field name.

    Accepts RFC 8601 (authserv-id, optional version ``1``, ``none`` or ``;``-separated results, comments and
    folding wherever CFWS may stand) and Exchange Online's form, which starts with a result instead of an
    authserv-id. Empty results (a trailing ``;``) are skipped.

    .. versionadded:: 0.1.0

    Args:
        value: The header value, as received (folded or unfolded).

    Returns:
        The parsed header.

    Raises:
        AuthResultsError: The value is malformed or longer than :data:`MAX_LENGTH`; the message names the
            value (its first 80 characters) and the position.

    """
    _require_str(value)
    if len(value) > MAX_LENGTH:
        msg = (
            f"Authentication-Results {shown(value)} is {len(value)} characters long, more than {MAX_LENGTH}"
        )
        raise AuthResultsError(msg, value=value)
    return _fast_parse(value) or _Parser(value).parse()


def _normal_id(authserv_id: str) -> str:
    """Return an authserv-id as it is compared: lower-case, one trailing dot dropped."""
    lowered = authserv_id.lower()
    return lowered[:-1] if lowered.endswith(".") else lowered


@attrs.frozen(slots=True)
class _Trusted:
    """A set of trusted authserv-ids as :func:`select_counting_header` compares them, with its quick check.

    ``ids`` are lower-case without a trailing dot. ``quick`` is one compiled pattern that rules out, without a
    parse, the values that cannot count: without Exchange Online results it matches only a value that may start
    with a trusted authserv-id (or with a quoted-string or a comment, read more carefully); with them, only a
    value that starts with an authserv-id that is not trusted, which is skipped. It may let through values that
    do not count (the exact check after it decides), never the reverse.
    """

    ids: frozenset[str]
    quick: re.Pattern[str]
    skip_on_match: bool


@functools.lru_cache(maxsize=32)
def _trusted(ids: frozenset[str], accept_exchange_online: bool) -> _Trusted:
    """Return the compared ids and the quick check for one set of trusted ids (a policy's set is reused)."""
    normal = frozenset(n for n in map(_normal_id, ids) if n)
    if not all(i.isascii() for i in normal):  # no quick check: the exact one decides every value
        return _Trusted(normal, re.compile(r"(?!)" if accept_exchange_online else ""), accept_exchange_online)
    # Case-insensitive matching lets through every value whose first token lower-cases to an ASCII id (and a
    # few more, such as KELVIN SIGN for k): the quick check may only let too much through. The quantifiers are
    # possessive, so nothing backtracks and the match is linear.
    alternatives = "|".join(re.escape(i) for i in sorted(normal, key=len, reverse=True))
    # A trusted id, read either way (see _counts): what follows cannot continue an RFC 2045 token.
    trusted_id = rf"(?i:{alternatives})\.?(?![{_RFC2045_CLASS}])" if normal else r"(?!)"
    if accept_exchange_online:  # skip a value whose first token is a plain authserv-id that is not trusted
        pattern = rf"{_FIELD_PREFIX}{_WS}*+(?!\")(?!{trusted_id})[^ \t\r\n;(=/]++(?:\Z|;|{_WS}++(?![=/(]))"
        return _Trusted(normal, re.compile(pattern), skip_on_match=True)
    pattern = rf"{_FIELD_PREFIX}{_WS}*+(?:[\"(]|{trusted_id})"  # may count: look closer
    return _Trusted(normal, re.compile(pattern), skip_on_match=False)


def _first_ids(text: str, start: int, end: int) -> tuple[str, str]:
    """Return the first token at ``start`` read both ways, as compared (lower-case, one trailing dot dropped).

    The first reading goes up to ``;``, ``(`` or white space; the second as far as the text is an RFC 2045
    token, which is what the parser reads as the authserv-id (so ``mx.contoso.com"`` and ``mx.contoso.com,``
    read as ``mx.contoso.com``). Either reading makes a value count.
    """
    spaced = _ID_TOKEN.match(text, start, end)
    strict = _TOKEN.match(text, start, end)
    return _normal_id(spaced.group() if spaced else ""), _normal_id(strict.group() if strict else "")


def _read_head(value: str) -> tuple[tuple[str, ...], bool] | None:
    """Read the start of a value that the one-pattern check cannot judge: a comment, a quoted authserv-id.

    Returns ``(ids, method_first)``: the authserv-id read both ways, as compared (empty when the start cannot
    be read), and whether the value starts with a method (Exchange Online's form); or ``None`` when the start
    runs past the first ``_ID_WINDOW`` characters unread: a comment, a quoted-string or the white space before
    the first token, the first token itself or the white space after it reaches the end of the window while
    the value goes on. A cut-off piece is never judged (``mx.cont`` of ``mx.contoso.com``, ``dmarc`` of
    ``dmarc=fail``), so such a value counts and its parse decides.
    """
    window = value[:_ID_WINDOW]
    parser = _Parser(window)
    cut = len(value) > len(window)  # the value goes on past the window
    end = len(parser.text)
    try:
        parser.skip_cfws()
        if parser.peek() == '"':
            return (_normal_id(parser.quoted()),), False
        found = _ID_TOKEN.match(parser.text, parser.pos)
        token = found.group() if found else ""
        if cut and parser.pos + len(token) >= end:  # the token, or what comes before it, reaches the cut
            return None
        ids = _first_ids(parser.text, parser.pos, end)
        if "=" in token or "/" in token:
            return ids, True  # the ids too: the parser may read a trusted id before the "=" (mx.contoso.com"=)
        parser.pos += len(token)
        parser.skip_cfws()
    except AuthResultsError:
        return None if cut else ((), False)
    if cut and parser.pos >= end:  # the white space after the token reaches the cut: a "=" may follow
        return None
    if token and parser.peek() in ("=", "/"):
        return ids, True
    return ids, False


def _counted(value: str, trusted: frozenset[str], why: str) -> tuple[str, AuthResults | None]:
    """Parse the value that counts, or return ``(value, None)``: a failure.

    It fails when the value cannot be parsed, or when the parse disagrees with ``why`` it counts: ``"id"`` and
    ``"?"`` (a start that could not be read) need a trusted authserv-id, ``"eo"`` none, ``"?eo"`` either.
    """
    try:
        results = parse_authentication_results(value)
    except AuthResultsError:
        return value, None
    found = results.authserv_id
    agrees = why in ("eo", "?eo") if found is None else _normal_id(found) in trusted
    return value, results if agrees else None


def _counts(value: str, trusted: frozenset[str], accept_exchange_online: bool) -> str:
    """Return why ``value`` counts, exactly: ``"id"``, ``"eo"``, ``"?"``/``"?eo"``, or ``""`` (it does not).

    ``"id"``: its first token (read either way, see :func:`_first_ids`) is a trusted authserv-id. ``"eo"``:
    Exchange Online's results are accepted and it has no authserv-id (a method first, or no readable start).
    ``"?"``: its start runs past ``_ID_WINDOW`` unread, or it is longer than :data:`MAX_LENGTH` and its start
    (the white space, the first token and the white space after it) reaches that limit, so it may carry a
    trusted id and counts (``"?eo"`` when Exchange Online's results are accepted, so that its parse may also
    show none). Such a value cannot be parsed, or its parse decides: it is never judged on a cut-off piece.
    """
    head = _HEAD.match(value, 0, MAX_LENGTH)  # bounded work, even for an oversized value
    if len(value) > MAX_LENGTH and (head is None or head.end() >= MAX_LENGTH):  # its start is cut off
        return "?eo" if accept_exchange_online else "?"
    token = head[1].lower() if head else ""
    if token in trusted or (token.endswith(".") and token[:-1] in trusted):
        return "id"
    start, after = (head.start(1), head[2]) if head else (0, "")
    eo = accept_exchange_online
    if token[:1] == '"' or (after == "(" and (eo or not token)):  # a quoted id, or a comment to read past
        read = _read_head(value)
        if read is None:
            return "?eo" if eo else "?"
        ids, method_first = read
        if any(i in trusted for i in ids):
            return "id"
        return "eo" if eo and (method_first or not any(ids)) else ""
    if _first_ids(value, start, MAX_LENGTH)[1] in trusted:  # the id as the parser reads it: mx.contoso.com"x"
        return "id"
    return "eo" if eo and (not token or after or "=" in token or "/" in token) else ""


def select_counting_header(
    values: str | Sequence[str], *, trusted_authserv_ids: frozenset[str], accept_exchange_online: bool
) -> tuple[str | None, AuthResults | None]:
    """Return the topmost header value that counts, and its parse.

    A value counts by its authserv-id alone: the first token of the value (after the field name and white
    space, up to ``;``, ``(`` or white space; a quoted-string unquoted; past leading comments), compared
    case-insensitively with one trailing dot ignored on either side, is in ``trusted_authserv_ids``. With
    ``accept_exchange_online``, the topmost value without an authserv-id (Exchange Online's form, which starts
    with a method, or one whose start cannot be read) counts too. Values that do not count are skipped, even
    when malformed, most at the cost of one regular-expression match (no parse). The one that counts is never
    passed over, so a forged header lower down cannot stand in for it: if it cannot be parsed after its
    authserv-id, the answer is ``(value, None)``, a failure. Only the first :data:`MAX_VALUES` values are read.

    .. versionadded:: 0.1.0

    Args:
        values: One value or the values in message order, topmost first.
        trusted_authserv_ids: The authserv-ids that this organization's boundary stamps.
        accept_exchange_online: Also count the topmost header without an authserv-id.

    Returns:
        ``(value, results)`` for the counting header; ``(value, None)`` when it cannot be parsed, which the
        caller must treat as a failure; ``(None, None)`` when none of the values read counts.

    Raises:
        AuthResultsError: A value read is not a ``str``.

    """
    ids = trusted_authserv_ids if isinstance(trusted_authserv_ids, frozenset) else frozenset(trusted_authserv_ids)
    trusted = _trusted(ids, bool(accept_exchange_online))
    quick, skip_on_match = trusted.quick.match, trusted.skip_on_match
    for value in (values,) if isinstance(values, str) else itertools.islice(values, MAX_VALUES):
        if not isinstance(value, str):
            _require_str(value)
        # One match: cannot count. Not for a value over MAX_LENGTH, which the quick check reads only up to the
        # limit (its \Z matches there): the exact check reads whether its start reaches the limit.
        if len(value) <= MAX_LENGTH and (quick(value, 0, MAX_LENGTH) is not None) is skip_on_match:
            continue
        why = _counts(value, trusted.ids, accept_exchange_online)
        if why:
            return _counted(value, trusted.ids, why)
    return None, None


def _compauth_word(result: MethodResult) -> str:
    if result.result == "pass":
        reason = result.reason or ""
        qualified = len(reason) == 3 and reason.isascii() and reason.isdigit() and reason[0] in "17"
        return "pass" if qualified else "none"  # EOP's 1xx/7xx pass; no or another reason does not count
    return result.result if result.result in ("fail", "softpass") else "none"


def _combine(words: list[str]) -> str | None:
    if not words:
        return None
    return "fail" if "fail" in words else words[0]


def _dmarc_domain(dmarc: Sequence[MethodResult]) -> str:
    """Return the one From domain a header's DMARC results name (as first written), or ``""`` for none or several."""
    froms = [f for r in dmarc if (f := r.prop("header.from")) is not None]
    return froms[0] if froms and all(f.lower() == froms[0].lower() for f in froms) else ""


def _own_from(results: Sequence[MethodResult], dmarc: Sequence[MethodResult]) -> str | None:
    """Return the From domain the first of ``results`` was computed for, ``None`` when there is no result.

    That is its own ``header.from``; for compauth without one, the DMARC results' (``""`` when they name none or
    several); for dmarc without one, ``""``.
    """
    if not results:
        return None
    own = results[0].prop("header.from")
    if own is not None:
        return own
    return "" if results[0].method == "dmarc" else _dmarc_domain(dmarc)


class _Claims(NamedTuple):
    """What authentication results claim, for the mail decision: each pass with the domain it aligns with.

    ``failed`` is an explicit ``fail`` (DMARC or composite authentication). ``passes`` holds, for each pass that
    counts, the From domain it was computed for: ``""`` when it names none (it aligns with no sender), ``None``
    only for an app's :class:`MailAuth` without ``header_from`` (no alignment check). ``smtp_auth`` is true for
    mail submitted with SMTP AUTH. (A named tuple: built on every message, it costs a fraction of a record.)
    """

    failed: bool = False
    passes: tuple[str | None, ...] = ()
    smtp_auth: bool = False


_FAILED = _Claims(failed=True)
"""The claims of a source that cannot be read: an explicit failure."""


def _claims(results: AuthResults) -> _Claims:
    """Read parsed results for the mail decision (see :func:`_claims_of`)."""
    return _claims_of(results.results)


@functools.lru_cache(maxsize=4096)
def _claims_of(results: tuple[MethodResult, ...]) -> _Claims:
    """Read parsed results for the mail decision, each pass aligned on its own (see :class:`_Claims`).

    DMARC and composite authentication each count by their first result, or ``fail`` if any is (as in
    :func:`to_mail_auth`). A pass counts for the domain in its own ``header.from``; a ``compauth`` pass without
    one, for the ``header.from`` of the DMARC results in the same header. So a pass for another domain, or for
    no domain, never counts for the sender. Cached: a domain's results repeat from message to message, and the
    fast path hands out the very same :class:`MethodResult` objects for them.
    """
    dmarc: list[MethodResult] = []
    compauth: list[MethodResult] = []
    smtp_auth = failed = False
    for result in results:
        if result.method == "dmarc":
            dmarc.append(result)
            failed = failed or result.result == "fail"
        elif result.method == "compauth":
            compauth.append(result)
            failed = failed or result.result == "fail"
        elif result.method == "auth":
            smtp_auth = smtp_auth or result.result == "pass"
    if failed:
        return _Claims(True, (), smtp_auth)
    passes: list[str | None] = []
    if dmarc and dmarc[0].result == "pass":
        passes.append(_own_from(dmarc, dmarc))
    if compauth and _compauth_word(compauth[0]) == "pass":
        passes.append(_own_from(compauth, dmarc))
    return _Claims(False, tuple(passes), smtp_auth)


def to_mail_auth(results: AuthResults) -> MailAuth:
    """Reduce parsed results to one :class:`~mtotrust._model.MailAuth`, with no pass for another domain in it.

    ``dmarc`` is the first dmarc result (``"fail"`` if any is), as written: ``bestguesspass`` stays and does
    not count. ``compauth`` is ``"pass"`` only for ``pass`` with a reason of three digits starting with 1 or
    7, ``"softpass"`` or ``"fail"`` as written, and ``"none"`` otherwise (an unqualified pass included);
    again ``"fail"`` if any is. ``smtp_auth`` is true when an ``auth`` result is ``pass``.

    Each pass was computed for one From domain: the result's own ``header.from`` or, for ``compauth`` without
    one, the DMARC results'. ``header_from`` is the domain of the first pass that names one (DMARC's first);
    a pass for another domain, or for none, is then written ``"none"``, so the one ``header_from`` never
    credits it. When no pass names a domain, ``header_from`` is ``""`` (it aligns with no sender); without a
    pass it is the first dmarc ``header.from``, else the first compauth one. The engine itself decides from
    the parsed results, each pass aligned on its own, and never needs this reduction.

    .. versionadded:: 0.1.0
    """
    dmarc, compauth = results.get("dmarc"), results.get("compauth")
    dmarc_word = _combine([r.result for r in dmarc])
    compauth_word = _combine([_compauth_word(r) for r in compauth])
    dmarc_from, compauth_from = _own_from(dmarc, dmarc), _own_from(compauth, dmarc)
    pass_froms = [f for word, f in ((dmarc_word, dmarc_from), (compauth_word, compauth_from)) if word == "pass"]
    header_from: str | None
    if pass_froms:
        header_from = next((f for f in pass_froms if f), "")
        if header_from:  # a pass whose own domain is not header_from must not be credited to it
            if dmarc_word == "pass" and (dmarc_from or "").lower() != header_from.lower():
                dmarc_word = "none"
            if compauth_word == "pass" and (compauth_from or "").lower() != header_from.lower():
                compauth_word = "none"
    else:
        froms = (r.prop("header.from") for r in dmarc + compauth)
        header_from = next((f for f in froms if f is not None), None)
    return MailAuth(
        dmarc=dmarc_word,
        compauth=compauth_word,
        header_from=header_from,
        smtp_auth=any(r.result == "pass" for r in results.get("auth")),
    )
