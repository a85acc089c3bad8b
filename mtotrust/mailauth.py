"""Read the mail headers mtotrust decides on: ``Authentication-Results`` (RFC 8601) and ``From`` (RFC 5322).

The ``authres`` package raises on Exchange Online's form, which has no authserv-id
(``spf=pass (sender IP is …) smtp.mailfrom=…;dmarc=pass action=none header.from=…;compauth=pass reason=100``),
and drops EOP's bare ``action=`` pairs, so mtotrust carries this small hand-written tokenizer instead. It is
linear in the length of the value (no backtracking regular expressions) and refuses values over 64 KiB.

:func:`from_address` reads the one mailbox of a ``From`` field with its own small parser (in
``mtotrust._fromaddr``, for the reasons given in its docstring).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from mtotrust._errors import AuthResultsError, FromAddressError, shown
from mtotrust._fromaddr import AUTH_RESULTS_FIELD, MAX_FROM_LENGTH, from_address
from mtotrust._model import MailAuth

__all__ = [
    "MAX_FROM_LENGTH",
    "MAX_LENGTH",
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

# Every pattern is a single character class repeated: it matches in linear time, whatever the input.
_KEYWORD = re.compile(r"[A-Za-z0-9_-]+")  # RFC 5321 ldh-str, widened by "_" that real MTAs emit
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 2045 token: printable ASCII minus tspecials
# An unquoted property value: RFC 8601 allows a token or an address, real headers also carry base64 ("/", "=")
# and RFC 6532 UTF-8, so take everything up to whitespace, a comment, a quote or ";".
_VALUE = re.compile(r'[^\x00-\x20\x7f;()"]+')
_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BAD_BREAK = re.compile(r"\r(?!\n)|\r?\n(?![ \t])")  # a line break that is not folding


@attrs.frozen(slots=True)
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
        self.pos = 0
        if self.text[: len(AUTH_RESULTS_FIELD)].lower() == AUTH_RESULTS_FIELD:
            rest = self.text[len(AUTH_RESULTS_FIELD) :].lstrip(" \t")
            if rest.startswith(":"):
                self.pos = len(self.text) - len(rest) + 1

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
    return _Parser(value).parse()


def _counts(value: str, trusted: frozenset[str], accept_exchange_online: bool) -> bool:
    try:
        authserv_id = _Parser(value[:MAX_LENGTH]).authserv_id()  # bounded work, even for an oversized value
    except AuthResultsError:
        # Unreadable before the first result: it may be Exchange Online's own header, so it counts (and fails)
        # when those are accepted. Otherwise it cannot carry a trusted id, and the boundary (RFC 8601 section
        # 7.1) has removed forged ones carrying it from lower down, so skipping is safe.
        return accept_exchange_online
    if authserv_id is None:
        return accept_exchange_online
    return authserv_id.lower() in trusted


def select_counting_header(
    values: str | Sequence[str], *, trusted_authserv_ids: frozenset[str], accept_exchange_online: bool
) -> tuple[str | None, AuthResults | None]:
    """Return the topmost header value that counts, and its parse.

    A header counts when its authserv-id is in ``trusted_authserv_ids`` (case-insensitive) or, with
    ``accept_exchange_online``, when it has no authserv-id. Headers that do not count are skipped even when
    malformed; the one that counts is never passed over, so a forged header lower down cannot stand in for it.

    .. versionadded:: 0.1.0

    Args:
        values: One value or the values in message order, topmost first.
        trusted_authserv_ids: The authserv-ids that this organization's boundary stamps.
        accept_exchange_online: Also count the topmost header without an authserv-id.

    Returns:
        ``(value, results)`` for the counting header; ``(value, None)`` when it cannot be parsed, which the
        caller must treat as a failure; ``(None, None)`` when no header counts.

    Raises:
        AuthResultsError: A value is not a ``str``.

    """
    trusted = frozenset(i.lower() for i in trusted_authserv_ids)
    for value in (values,) if isinstance(values, str) else values:
        _require_str(value)
        if _counts(value, trusted, accept_exchange_online):
            try:
                return value, parse_authentication_results(value)
            except AuthResultsError:
                return value, None
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


def to_mail_auth(results: AuthResults) -> MailAuth:
    """Reduce parsed results to the :class:`~mtotrust._model.MailAuth` the mail app decides on.

    ``dmarc`` is the first dmarc result (``"fail"`` if any is), as written: ``bestguesspass`` stays and does
    not count. ``compauth`` is ``"pass"`` only for ``pass`` with a reason of three digits starting with 1 or
    7, ``"softpass"`` or ``"fail"`` as written, and ``"none"`` otherwise (an unqualified pass included);
    again ``"fail"`` if any is. ``header_from`` is the first dmarc ``header.from``, else the first compauth
    one. ``smtp_auth`` is true when an ``auth`` result is ``pass``.

    .. versionadded:: 0.1.0
    """
    dmarc, compauth = results.get("dmarc"), results.get("compauth")
    froms = (r.prop("header.from") for r in dmarc + compauth)
    return MailAuth(
        dmarc=_combine([r.result for r in dmarc]),
        compauth=_combine([_compauth_word(r) for r in compauth]),
        header_from=next((f for f in froms if f is not None), None),
        smtp_auth=any(r.result == "pass" for r in results.get("auth")),
    )
