"""The ``From`` field (RFC 5322) and the header fields of a message the mail decision reads.

:func:`from_address` is public as :func:`mtotrust.mailauth.from_address`. It uses its own small parser rather
than ``email.utils.getaddresses`` (whose ``strict`` mode, the fix for CVE-2023-27043, arrived only in Python
3.11.10) or ``email.headerregistry`` (which recovers an address from malformed input, is slow on long values and
raises on some inputs): every token is one regular-expression match, comments are skipped with a depth counter,
values over :data:`MAX_FROM_LENGTH` are refused, and nothing is recovered from a malformed value (fail closed).
"""

from __future__ import annotations

import email.errors
import email.header
import email.headerregistry
import email.message
import email.parser
import email.policy
import re
from collections.abc import Sequence

from mtotrust._errors import FromAddressError, shown

__all__ = ["AUTH_RESULTS_FIELD", "MAX_FROM_LENGTH", "MAX_HEADER_BYTES", "from_address", "message_fields"]

AUTH_RESULTS_FIELD = "authentication-results"
"""The header field name the mail decision reads results from, lower case."""


# --- From ---------------------------------------------------------------------------------------------------

MAX_FROM_LENGTH = 8 * 1024
"""Longest ``From`` field value, in characters, that :func:`from_address` reads (any mailbox fits in far less)."""

MAX_HEADER_BYTES = 256 * 1024
"""Longest header section, in bytes, that :func:`message_fields` parses from a message given as bytes.

Postfix truncates header sections at 100 KiB by default (``header_size_limit``). A longer one is not cut (a
field cut short could name another address): the message is refused whole, as ``from_missing``, so it is
tagged; parsing it would cost the standard library's parser about 0.15 s per MiB.
"""

_MISSING, _AMBIGUOUS = "from_missing", "from_ambiguous"
# C0 and C1 controls other than tab, CR and LF, DEL, and lone surrogates (undecodable bytes): never in a header.
_FROM_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Whitespace and folding (a line break is only ever allowed before a space or tab).
_FWS = re.compile(r"(?:[ \t]|\r?\n[ \t])+")
# RFC 5322 atext widened by RFC 6532 (every non-ASCII character): everything but controls, space and specials.
_ATOM = re.compile(r'[^\x00-\x20"(),.:;<>@\[\\\]\x7f-\x9f]+')
# Quoted-string and domain literal: each alternative starts with a different character, so a failed match
# backtracks one step per character at most.
_QUOTED = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n]|\r?\n[ \t])*"')
_LITERAL = re.compile(r"\[(?:[^\[\]\\\r\n]|\r?\n[ \t])*\]")
_COMMENT_STOP = re.compile(r"[()\\]")
# An RFC 2047 encoded-word as senders write it in display names, specials and all (``=?utf-8?q?Doe,_John?=``,
# though RFC 2047 section 5 asks for "=2C"). Only ever a display-name word, never part of an address.
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_SPECIALS = frozenset("<>@,:;.")
_WORDS = frozenset({"atom", "quoted"})
_PHRASE = frozenset({"atom", "quoted", "encoded", "."})
_ATOMS, _LITERALS, _AT, _CLOSE = frozenset({"atom"}), frozenset({"literal"}), frozenset("@"), frozenset(">")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What an EmailMessage's own header parser may report about a From it parsed without making it unclear:
# obsolete but valid syntax ("John Q. Public", an empty list element) and an RFC 6532 local part. Its str()
# is the value re-serialised from what it parsed (display names quoted where needed), which is read here.
_HARMLESS_DEFECTS = (email.errors.ObsoleteHeaderDefect, email.errors.NonASCIILocalPartDefect)
_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _from_error(reason: str, what: str, value: object) -> FromAddressError:
    return FromAddressError(f"{what} in From {shown(value)}", reason=reason, value=value)


class _FromParser:
    """RFC 5322 ``mailbox-list`` / ``address-list`` over tokens; every method advances ``pos`` or raises."""

    __slots__ = ("pos", "tokens", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.tokens = self.tokenize(value)
        self.pos = 0

    def fail(self, what: str, at: int | None = None) -> FromAddressError:
        if at is None:
            at = self.tokens[self.pos][2] if self.pos < len(self.tokens) else len(self.value)
        return _from_error(_MISSING, f"{what} at position {at}", self.value)

    def tokenize(self, text: str) -> list[tuple[str, str, int]]:
        """Split into ``(kind, text, position)``: words (atoms, quoted-strings), domain literals and specials.

        Whitespace, folding and comments (nested, with quoted-pairs) separate tokens and are dropped.
        """
        tokens: list[tuple[str, str, int]] = []
        i, end = 0, len(text)
        while i < end:
            char = text[i]
            if char in " \t\r\n":
                found = _FWS.match(text, i)
                if found is None:
                    raise self.fail("line break not followed by whitespace (not folding)", i)
                i = found.end()
            elif char == "(":
                i = self.skip_comment(text, i)
            elif char in _SPECIALS:
                tokens.append((char, char, i))
                i += 1
            else:
                if char == '"':
                    kind, found, what = "quoted", _QUOTED.match(text, i), "unclosed quoted-string"
                elif char == "[":
                    kind, found, what = "literal", _LITERAL.match(text, i), "malformed domain literal"
                else:
                    kind, found, what = "atom", _ATOM.match(text, i), f"unexpected {char!r}"
                    encoded = _ENCODED_WORD.match(text, i) if char == "=" else None
                    if encoded is not None and (found is None or encoded.end() > found.end()):
                        kind, found = "encoded", encoded  # one with specials in it: not an atom
                if found is None:
                    raise self.fail(what, i)
                tokens.append((kind, found.group(), i))
                i = found.end()
        return tokens

    def skip_comment(self, text: str, start: int) -> int:
        depth, i = 0, start
        while (found := _COMMENT_STOP.search(text, i)) is not None:
            i = found.end()
            if found.group() == "\\":
                i += 1
            elif found.group() == "(":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return i
        raise self.fail("unclosed comment", start)

    def kind(self, at: int | None = None) -> str:
        at = self.pos if at is None else at
        return self.tokens[at][0] if at < len(self.tokens) else ""

    def expect(self, kinds: frozenset[str], what: str) -> str:
        if self.kind() not in kinds:
            raise self.fail(f"expected {what}")
        self.pos += 1
        return self.tokens[self.pos - 1][1].replace("\r", "").replace("\n", "")  # unfolded, as written

    def parse(self) -> tuple[list[str], int]:
        """Read the whole value: return its mailboxes in order, and how many groups it has."""
        mailboxes: list[str] = []
        groups = 0
        while self.pos < len(self.tokens):
            if self.kind() == ",":  # an empty list element (RFC 5322 obs-mbox-list)
                self.pos += 1
                continue
            groups += self.address(mailboxes)
            if self.kind() not in ("", ","):
                raise self.fail("expected ',' or the end after a mailbox")
        return mailboxes, groups

    def phrase_end(self) -> int:
        """Return where the run of words and dots at ``pos`` ends (a display name, or a local part)."""
        at = self.pos
        while self.kind(at) in _PHRASE:
            at += 1
        return at

    def check_phrase(self, end: int) -> None:
        if self.kind() == ".":  # RFC 5322 phrase / obs-phrase: a word first, then words and dots
            raise self.fail("expected a display name")
        self.pos = end

    def address(self, mailboxes: list[str]) -> int:
        """Read a mailbox, or a group (``name: [mailbox-list];``); return 1 for a group."""
        end = self.phrase_end()
        if self.kind(end) != ":":
            self.mailbox(mailboxes)
            return 0
        self.check_phrase(end)
        self.pos += 1
        while self.kind() != ";":
            if self.kind() == "":
                raise self.fail("expected ';' to close the group")
            if self.kind() == ",":
                self.pos += 1
                continue
            self.mailbox(mailboxes)
            if self.kind() not in (",", ";"):
                raise self.fail("expected ',' or ';' after a group member")
        self.pos += 1
        return 1

    def mailbox(self, mailboxes: list[str]) -> None:
        """Read ``[display-name] <addr-spec>`` or a bare ``addr-spec``."""
        end = self.phrase_end()
        if self.kind(end) != "<":
            mailboxes.append(self.addr_spec())
            return
        if end > self.pos:
            self.check_phrase(end)
        self.pos += 1
        if self.kind() == "@":
            raise self.fail("an obsolete source route in the angle-addr is not accepted")
        mailboxes.append(self.addr_spec())
        self.expect(_CLOSE, "'>' after the address")

    def addr_spec(self) -> str:
        """Read ``local-part@domain``; return it as written, without comments and whitespace."""
        parts = [self.expect(_WORDS, "an address")]
        while self.kind() == ".":  # dot-atom or obs-local-part: words joined by dots
            self.pos += 1
            parts += [".", self.expect(_WORDS, "a word after '.' in the local part")]
        parts.append(self.expect(_AT, "'@' after the local part"))
        if self.kind() == "literal":
            parts.append(self.expect(_LITERALS, "a domain"))
        else:
            parts.append(self.expect(_ATOMS, "a domain after '@'"))
            while self.kind() == ".":
                self.pos += 1
                parts += [".", self.expect(_ATOMS, "a domain label after '.'")]
        return "".join(parts)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++"
_PLAIN_ADDR = rf"({_ATEXT}(?:\.{_ATEXT})*+@{_ATEXT}(?:\.{_ATEXT})*+)"
_PLAIN_FROM = re.compile(
    rf'[ \t]*+(?:{_PLAIN_ADDR}|(?:(?:"[^"\\\r\n]*+"|{_ATEXT})(?:[ \t]++(?:"[^"\\\r\n]*+"|{_ATEXT}))*+[ \t]*+)?'
    rf"<{_PLAIN_ADDR}>)[ \t]*+")
"""The plain forms of a From value: ``addr`` or ``[display name] <addr>``, with ASCII dot-atoms, a display name of
atoms and simple quoted-strings, blanks, and nothing else (no comment, folding, group, literal, encoded-word)."""


def _one_mailbox(value: str) -> str:
    if len(value) > MAX_FROM_LENGTH:
        raise FromAddressError(f"From {shown(value)} is {len(value)} characters long, more than {MAX_FROM_LENGTH}",
                               reason=_MISSING, value=value)
    text = value.rstrip("\r\n")  # the field's own CRLF, if the caller kept it
    if bad := _FROM_BAD.search(text):
        raise _from_error(_MISSING, f"control character {bad.group()!r} is not allowed at position {bad.start()}",
                          value)
    # The plain forms (see _PLAIN_FROM), as the parser reads them; "=?" may start an encoded-word, which the parser
    # tells from an atom by what follows it. tests/test_fromaddr_fast.py pins this to the parser.
    if "=?" not in text and (plain := _PLAIN_FROM.fullmatch(text)) is not None:
        return plain.group(1) or plain.group(2)
    mailboxes, groups = _FromParser(text).parse()
    if not mailboxes:
        raise _from_error(_MISSING, "an empty group names no mailbox" if groups else "no mailbox", value)
    if len(mailboxes) > 1:
        raise _from_error(_AMBIGUOUS, f"{len(mailboxes)} mailboxes", value)
    if groups:
        raise _from_error(_AMBIGUOUS, "a group, not a single mailbox,", value)
    return mailboxes[0]


def from_address(value: str | Sequence[str]) -> str:
    r"""Return the address (addr-spec) of the one mailbox a message's ``From`` field names.

    Display names, comments, whitespace and folding are dropped; the address is returned as written
    (``"John Doe" <John.Doe@Contoso.com>`` gives ``John.Doe@Contoso.com``, a quoted local part keeps its quotes):
    normalising it is the resolver's job. ``"Doe, John" <j@x.com>`` is one mailbox; an encoded-word display
    name (``=?utf-8?q?J=C3=B6rg?= <j@x.com>``) is never decoded, so what it hides cannot become an address;
    non-ASCII (RFC 6532) addresses are read as written.

    The parser is mtotrust's own, and strict. ``email.utils.getaddresses`` mis-split crafted values
    (CVE-2023-27043: ``alice@example.org)<bob@example.org>``) and gained its ``strict`` mode only in a security
    release (3.11.10), so which behaviour you get depends on the patch level. ``email.headerregistry`` is
    forgiving by design: it recovers *an* address from a malformed value and reports defects, its cost grows
    faster than the length of the value (6 s for 200 KB of words), and on 3.11.7 ``a@`` makes it raise
    ``IndexError``, ``:;`` repeated ``AttributeError`` and 500 nested comments ``RecursionError``. Here every
    token is a single regular-expression match or a counted comment scan, so the time is linear in the length,
    which is capped at :data:`MAX_FROM_LENGTH`; nothing is recovered from a malformed value: it names no
    mailbox.

    Accepted: RFC 5322 ``mailbox-list`` with CFWS wherever the grammar allows it and the obsolete forms a
    receiver must accept (dots in display names, whitespace around the dots of an address, empty list
    elements), RFC 6532 UTF-8 anywhere, and group syntax (RFC 6854), which is then refused (see Raises).
    Refused as unreadable: control characters, line breaks that are not folding, source routes
    (``<@relay:a@x.com>``) and anything that is not the grammar.

    .. versionadded:: 0.1.0

    Args:
        value: One ``From`` field value (without the ``From:`` name), or every ``From`` field value of a
            message in message order (one is expected).

    Returns:
        The addr-spec, as written.

    Raises:
        FromAddressError: With ``reason`` ``"from_missing"``: no field, or a value that names no mailbox (empty,
            an empty group such as ``undisclosed-recipients:;``, malformed, not a ``str``, or longer than
            :data:`MAX_FROM_LENGTH`). With ``reason`` ``"from_ambiguous"``: several fields, several mailboxes,
            or a group with members (a group names a list, not the author). The message echoes the value
            (its first 80 characters) and, for a syntax error, the position.

    """
    values: tuple[object, ...]
    if isinstance(value, str):
        values = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        values = tuple(value)
    else:
        raise FromAddressError(f"a From value must be str or a sequence of str, not {type(value).__name__}",
                               reason=_MISSING, value=value)
    if not values:
        raise FromAddressError("no From field", reason=_MISSING, value=value)
    if len(values) > 1:
        raise FromAddressError(f"{len(values)} From fields, not one: {shown(values)}", reason=_AMBIGUOUS,
                               value=value)
    if not isinstance(values[0], str):
        raise FromAddressError(f"a From value must be str, not {type(values[0]).__name__}", reason=_MISSING,
                               value=values[0])
    return _one_mailbox(values[0])


# --- reading a message --------------------------------------------------------------------------------------


def _header_block(data: bytes) -> bytes:
    """Cut ``data`` after an empty line: all of the header section, and none of the body to speak of.

    An empty line ends the header section, so cutting at the first ``CRLF CRLF`` or ``LF LF`` keeps every header
    field; should the section end earlier (at a line the parser does not take for a field), what follows is
    body to the parser anyway.
    """
    end = data.find(b"\r\n\r\n")
    end = len(data) if end < 0 else end + 4
    lf = data.find(b"\n\n", 0, end)
    return data[: end if lf < 0 else lf + 2]


def _field_text(value: object, *, is_from: bool) -> str:
    """Return a stored header value as text: folded as received, undecodable bytes decoded as UTF-8."""
    if isinstance(value, email.headerregistry.BaseHeader):  # set on an EmailMessage: parsed when it was set
        if is_from and not all(isinstance(d, _HARMLESS_DEFECTS) for d in value.defects):
            raise FromAddressError(f"From {shown(str(value))} was set with defects {shown(value.defects)}",
                                   reason=_MISSING, value=str(value))
        return str(value)
    if isinstance(value, email.header.Header):  # compat32: what goes on the wire, encoded-words undecoded
        return value.encode()
    if not isinstance(value, str):
        raise TypeError(f"a header value must be str, not {type(value).__name__}")
    if _SURROGATE.search(value) is None:
        return value
    try:  # a parser given bytes keeps each non-ASCII byte as a surrogate escape; RFC 6532 says UTF-8
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        if is_from:
            raise _from_error(_MISSING, "bytes that are not UTF-8", value) from None
        return value  # an Authentication-Results value that does not parse, or names no usable domain


_HIDING_DEFECTS = (email.errors.MisplacedEnvelopeHeaderDefect, email.errors.MissingHeaderBodySeparatorDefect)
"""The parser's defects for a header line it did not read as a field, so that the fields after it may be hidden."""

_FROM_LINE = re.compile(r"From[ \t]*:", re.IGNORECASE)
"""A ``From`` field in the obsolete form with white space before the colon (RFC 5322 section 4.5)."""


def _hidden_field(message: email.message.Message, *, parsed_here: bool) -> str | None:
    """Say why some header line of ``message`` was not read as a field, or return ``None``.

    The standard library's parser drops ``From : x`` (white space before the colon) in the middle of the header
    section (``MisplacedEnvelopeHeaderDefect``), takes it as the Unix envelope line when it is first, and ends
    the header section at it when it is last, or at a line without a colon (``MissingHeaderBodySeparatorDefect``),
    so that every field after it goes to the body. A section parsed here from bytes holds no body, so any text
    the parser left in it came from the header section.
    """
    defects = [d for d in message.defects if isinstance(d, _HIDING_DEFECTS)]
    if defects:
        return f"a header line that is not a field ({type(defects[0]).__name__})"
    unixfrom = message.get_unixfrom()
    if isinstance(unixfrom, str) and _FROM_LINE.match(unixfrom):
        return "a From field read as the envelope line"
    rest = message.preamble if message.is_multipart() else message.get_payload()
    if isinstance(rest, str) and (rest.strip() if parsed_here else _FROM_LINE.match(rest)):
        return "a header line that ends the header section"
    return None


def _plain_section(end: str) -> re.Pattern[str]:
    """Return the pattern of a plain header section with line end ``end`` (see :func:`_plain_fields`)."""
    line = rf"[^\r\n]*+{end}"
    return re.compile(rf"(?:[!-9;-~]++:{line}(?:[ \t]{line})*+)*+(?:{end}|[!-9;-~]++:[^\r\n]*+)?")


# For a section with CRLF line ends, and one with LF alone. A field's name is printable ASCII but ":", as the
# standard library's parser reads it; ASCII makes IGNORECASE exactly str.lower() equality.
_PLAIN = {"\r\n": _plain_section("\r\n"), "\n": _plain_section("\n")}
_LINE_BREAKS_OF_STR = "\v\f\x1c\x1d\x1e"
"""ASCII characters ``str.splitlines`` and ``re``'s ``^`` may break a line at, or which the parser may treat so."""


def _plain_fields(block: bytes) -> tuple[list[str], list[str]] | None:
    """Read a plain header section as the standard library's parser reads it, or return ``None`` (it decides).

    Plain means ASCII, one kind of line end (CRLF, or LF alone), and every line a field (``name:`` with nothing
    between the name and the colon) or the folded continuation of one, up to an empty line. That is what a
    mail server passes on; the parser (``compat32``, as :data:`_HEADER_PARSER`) reads it with no defect, and
    each value is its ``header_source_parse``: the text after the colon, left-stripped, with the continuation
    lines, right-stripped of line ends. ``tests/test_fromaddr_fast.py`` pins it to the parser: wherever it
    answers, the answer is the parser's.
    """
    if not block.isascii():
        return None
    text = block.decode("ascii")
    crlf = text.count("\r\n")
    if crlf != text.count("\r") or (crlf and crlf != text.count("\n")) or any(c in text for c in _LINE_BREAKS_OF_STR):
        return None
    end = "\r\n" if crlf else "\n"
    if _PLAIN[end].fullmatch(text) is None:
        return None
    # Every line is now a field or a continuation: a field starts the text or follows a line end. Names are
    # ASCII, so lower() is the parser's case-insensitive comparison.
    low = text.lower()
    return _values(text, low, "from:", end), _values(text, low, "authentication-results:", end)


def _values(text: str, low: str, name: str, end: str) -> list[str]:
    """Return the values of the fields ``name`` (lower case, with its colon) of a plain section, in order.

    A value runs to the first line end not followed by a space or tab (its continuation lines included), left-
    stripped: what the parser's ``header_source_parse`` gives.
    """
    found: list[str] = []
    mark = end + name
    if low.startswith(name):
        begin = len(name)
    else:
        at = low.find(mark)
        begin = at + len(mark) if at >= 0 else -1
    while begin >= 0:
        stop = text.find(end, begin)
        while stop >= 0 and text.startswith((" ", "\t"), stop + len(end)):
            stop = text.find(end, stop + len(end))
        if stop < 0:
            stop = len(text)
        found.append(text[begin:stop].lstrip(" \t").rstrip("\r\n"))
        at = low.find(mark, stop)
        begin = at + len(mark) if at >= 0 else -1
    return found


def message_fields(message: email.message.Message | bytes) -> tuple[list[str], list[str]]:
    """Return a message's ``From`` and ``Authentication-Results`` values, each in message order (topmost first).

    ``bytes`` are parsed as far as the end of the header section only. Field names are compared
    case-insensitively with surrounding white space stripped (``From :`` is a From field).

    A header section the standard library's parser does not read whole fails closed, with ``from_ambiguous``:
    a line it drops (``From : x``, the obsolete form with white space before the colon,
    ``MisplacedEnvelopeHeaderDefect``) or one that ends the section early (a line without a colon,
    ``MissingHeaderBodySeparatorDefect``; ``From : x`` as the last field; for bytes, any text left after the
    fields) may hide another From field, which could name another mailbox, and Authentication-Results below it.

    Raises:
        FromAddressError: A From value that cannot be read as text; or, with ``from_ambiguous``, a header line
            that is not read as a field (see above).
        TypeError: ``message`` is neither an ``email.message.Message`` nor ``bytes``.

    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        block = _header_block(bytes(message))
        if len(block) > MAX_HEADER_BYTES:
            raise _from_error(_MISSING, f"a header section of {len(block)} bytes (more than {MAX_HEADER_BYTES})",
                              block[:80])
        fields = _plain_fields(block)
        if fields is not None:
            return fields
        message = _HEADER_PARSER.parsebytes(block)
        parsed_here = True
    elif isinstance(message, email.message.Message):
        parsed_here = False
    else:
        raise TypeError(f"message must be an email.message.Message or bytes, not {type(message).__name__}")
    if (hidden := _hidden_field(message, parsed_here=parsed_here)) is not None:
        raise FromAddressError(f"{hidden}: a From field may be hidden", reason=_AMBIGUOUS,
                               value=message.get_all("from", []))
    froms: list[str] = []
    auths: list[str] = []
    unreadable: FromAddressError | None = None
    for name, value in message.raw_items():
        key = name.strip().lower()  # "From " (white space before the colon, if a caller kept it) is a From
        if key == "from":
            try:
                froms.append(_field_text(value, is_from=True))
            except FromAddressError as exc:  # counted all the same: several From fields are from_ambiguous
                unreadable = unreadable or exc
                froms.append("")
        elif key == AUTH_RESULTS_FIELD:
            auths.append(_field_text(value, is_from=False))
    if unreadable is not None and len(froms) == 1:
        raise unreadable
    return froms, auths
