"""The ``X-MTOTrust`` field and the Subject tag, written into the raw bytes of a message.

Pure functions over the bytes a client sent in DATA: nothing here parses a message into objects or serialises
one (the ``email`` package re-folds and re-encodes what it writes, so a message would not keep its bytes). A
rewrite finds the header section (up to the first empty line), finds the few fields it changes with one regular
expression over it, and joins slices of the original around them: the body is copied once, by the final
``b"".join``, and the work is linear in the size of the header section.

Line structure (RFC 5322 section 2.2, https://www.rfc-editor.org/rfc/rfc5322#section-2.2): a line ends with LF
(CRLF or a bare LF, as Postfix reads SMTP input); a bare CR is not a line break. A line that starts with a space
or a tab continues the field above it (folding, section 2.2.3); any other line starts a field (``name:``) or is
kept as it is when it has no colon (obsolete or garbage syntax).
"""

from __future__ import annotations

import base64
import email.errors
import email.header
import functools
import re
from collections.abc import Iterator

from mtotrust import MailDecision
from mtotrust._fromaddr import _ENCODED_WORD

__all__ = ["FIELD", "header_field", "header_section", "rewrite"]

FIELD = "X-MTOTrust"
"""The name of the header field the filter writes (and removes from inbound mail, in any case).

.. versionadded:: 0.2.0
"""

_MAX_LINE = 78
"""The line length RFC 5322 section 2.1.1 asks for (SHOULD); fields this module writes are folded to it."""

# A field this module changes, at the start of a line that is not a continuation: X-MTOTrust or Subject, in any
# case, with the obsolete white space before the colon (RFC 5322 section 4.5.3: "X-MTOTrust :" is the same field,
# and Postfix reads it so). ASCII-only case folding: a bytes pattern. At the first line, and after a line end: a
# pattern that starts with the literal LF is searched many times faster than one that starts with "^".
_WANTED = rb"(?i:(x-mtotrust|subject))[ \t]*+:"
_WANTED_FIRST = re.compile(_WANTED)
_WANTED_NEXT = re.compile(rb"\n" + _WANTED)
# Where a field that starts before it ends: after a line end not followed by a space or tab (a continuation).
_FIELD_END = re.compile(rb"\n(?![ \t])")
_LINE_BREAK = re.compile(rb"\r?\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TAG_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")  # controls, and lone surrogates (no UTF-8)
# RFC 2047 section 2: an encoded-word is at most 75 characters; "=?utf-8?b?" and "?=" take 12 of them, and 40
# base64 characters (30 bytes) leave room for "Subject: " on the same line within 78.
_WORD_BYTES = 30


def header_field(decision: MailDecision) -> str:
    """Return the value of the ``X-MTOTrust`` field for ``decision`` (no name, no line end).

    ``trust=<level>; tag=<yes|no>; reasons=<code,...>; snapshot=<id>; policy=<fingerprint>``: the reasons in the
    decision's order, comma-joined, and ``reasons=none`` for a decision without any (the engine always gives at
    least one; ``none`` is not a reason code). The snapshot id and the fingerprint are written as the decision
    carries them.

    .. versionadded:: 0.2.0
    """
    reasons = ",".join(decision.reasons) or "none"
    tag = "yes" if decision.tag_external else "no"
    return (f"trust={decision.trust.value}; tag={tag}; reasons={reasons}; snapshot={decision.snapshot_id}; "
            f"policy={decision.policy_fingerprint}")


def _header_end(message: bytes) -> tuple[int, int]:
    """Return where the header section ends and where the body starts (after the first empty line).

    The core's cut for the decision (``mtotrust._fromaddr._header_block``) may run past the first empty line
    when it is ``LF CRLF`` or the first line, because its parser decides there; a rewrite needs the line itself.
    """
    for empty in (b"\n", b"\r\n"):  # the first line
        if message.startswith(empty):
            return 0, len(empty)
    crlf = message.find(b"\n\r\n")  # bytes.find, not a pattern: a message without an empty line is read fast
    lf = message.find(b"\n\n", 0, len(message) if crlf < 0 else crlf + 1)
    if lf >= 0:
        return lf + 1, lf + 2
    return (len(message), len(message)) if crlf < 0 else (crlf + 1, crlf + 3)


def header_section(message: bytes) -> bytes:
    """Return the header section of ``message``: every line before the first empty line, with its line end.

    The whole message when it has no empty line; ``b""`` when its first line is empty. This is what
    :meth:`~mtotrust.TrustEngine.mail_message` should decide on: exactly the fields :func:`rewrite` sees.

    .. versionadded:: 0.2.0
    """
    return message[: _header_end(message)[0]]


def _line_end(message: bytes) -> bytes:
    """Return the message's own line end (its first line's), CRLF for a message of one line."""
    first = message.find(b"\n")
    return b"\n" if first >= 0 and message[first - 1 : first] != b"\r" else b"\r\n"


@functools.lru_cache(maxsize=1024)  # a value repeats: one per decision class of a snapshot and policy
def _folded(value: str, eol: bytes) -> bytes:
    """Return ``X-MTOTrust: value`` and its line end, folded at ``"; "`` where a line would pass 78 characters.

    A fold replaces the space after ``;`` by the line end and a space, so unfolding (removing the line ends, RFC
    5322 section 2.2.3) gives ``value`` back exactly; a part longer than a line stays whole.
    """
    bad = _CONTROL.search(value)
    if bad is not None or not value.isascii():
        what = "a non-ASCII character" if bad is None else f"the control character {bad.group()!r}"
        msg = f"X-MTOTrust value {value!r} holds {what}; build it with header_field(decision)"
        raise ValueError(msg)
    lines = [f"{FIELD}: "]
    for i, part in enumerate(value.split("; ")):
        if i and len(lines[-1]) + 2 + len(part) > _MAX_LINE:
            lines[-1] += ";"
            lines.append(" " + part)
        else:
            lines[-1] += "; " + part if i else part
    return eol.join(line.encode("ascii") for line in lines) + eol


def _encoded_words(text: str, eol: bytes) -> bytes:
    """Return ``text`` as RFC 2047 encoded-words (UTF-8, B), folded between words.

    Each word holds whole characters (RFC 2047 section 5) and at most 30 bytes. White space between adjacent
    encoded-words is not displayed (section 6.2), so the fold adds nothing to the text.
    """
    chunks: list[bytes] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        length = len(char.encode())
        if size + length > _WORD_BYTES:
            chunks.append("".join(chunk).encode())
            chunk.clear()
            size = 0
        chunk.append(char)
        size += length
    chunks.append("".join(chunk).encode())
    return (eol + b" ").join(b"=?utf-8?b?" + base64.b64encode(c) + b"?=" for c in chunks)


def _decoded_word(word: str) -> str | None:
    """Decode one encoded-word, or return ``None`` when it cannot be (bad base64, unknown charset)."""
    try:
        ((data, charset),) = email.header.decode_header(word)
        if not isinstance(data, bytes) or not isinstance(charset, str):  # not read as an encoded-word after all
            return None
        return data.decode(charset.partition("*")[0], "replace")  # "utf-8*en": an RFC 2231 language suffix
    except (email.errors.HeaderParseError, LookupError, ValueError):
        return None


def _displayed_start(text: str, length: int) -> str:
    """Return the start of ``text`` as displayed, RFC 2047 encoded-words decoded: ``length`` characters or more.

    Tolerant: a word that cannot be decoded is compared as written. White space between two encoded-words is
    dropped (RFC 2047 section 6.2, https://www.rfc-editor.org/rfc/rfc2047#section-6.2). Only the first
    ``length`` words are decoded (each word shows at least one character of a tag), so a long Subject, or one of
    many empty words, costs no more than a short one.
    """
    parts: list[str] = []
    pos, after_word = 0, False
    for count, found in enumerate(_ENCODED_WORD.finditer(text)):
        if count == length:
            return "".join(parts)
        gap = text[pos : found.start()]
        if not (after_word and gap.isspace()):
            parts.append(gap)
        decoded = _decoded_word(found.group())
        after_word = decoded is not None
        parts.append(found.group() if decoded is None else decoded)
        pos = found.end()
    parts.append(text[pos:])
    return "".join(parts)


def _check_tag(tag: str) -> None:
    if (bad := _TAG_BAD.search(tag)) is not None:
        msg = f"subject_tag {tag!r} holds the character {bad.group()!r}; set mail.subject_tag to text on one line"
        raise ValueError(msg)


def _encoded(tag: str) -> bool:
    """Say whether the tag is written as encoded-words: when it is not ASCII, or holds "=?".

    Text that could be read as an encoded-word is encoded too, so that the tag always displays as itself.
    """
    return not tag.isascii() or "=?" in tag


def _written(text: str, eol: bytes) -> bytes:
    """Return text as written into a header: as is, or as encoded-words (see :func:`_encoded`)."""
    return _encoded_words(text, eol) if _encoded(text) else text.encode("ascii")


def _prefix(message: bytes, field: tuple[int, int, int], tag: str, eol: bytes) -> tuple[int, bytes] | None:
    """Return where to insert the tag into a Subject field, and what; ``None`` when it is tagged already.

    ``field`` is where the field starts, where its value starts (after the colon) and where it ends.
    """
    start, colon, end = field
    value = message[colon:end]
    text = _LINE_BREAK.sub(b"", value).decode("utf-8", "replace").lstrip(" \t")  # unfolded, as displayed
    if _displayed_start(text, len(tag)).startswith(tag):
        return None
    at = colon + len(value) - len(value.lstrip(b" \t"))  # after the blanks that follow the colon
    lead = b"" if at > colon else b" "
    # Before an encoded-word, the space must be inside an encoded tag's own words: white space between two
    # encoded-words is not displayed (RFC 2047 section 6.2).
    written = _written(tag + " " if _encoded(tag) and _ENCODED_WORD.match(text) else tag, eol)
    line_end = message.find(b"\n", colon, end)
    line_end = end if line_end < 0 else line_end
    if message[at:line_end].rstrip(b"\r") == b"":  # no text, or it starts on a continuation: its fold is the space
        return at, lead + written
    line = line_end - start - (message[line_end - 1 : line_end] == b"\r")
    space = eol + b" " if line + len(lead) + len(written) + 1 > _MAX_LINE else b" "  # fold: the text moves down
    return at, lead + written + space


def _wanted(message: bytes, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """Yield each X-MTOTrust and Subject field between ``start`` (a line start) and ``end``, in order.

    As ``(where it starts, where its value starts, whether it is X-MTOTrust)``.
    """
    first = _WANTED_FIRST.match(message, start, end)
    if first is not None:
        yield start, first.end(), len(first.group(1)) == len(FIELD)
    for found in _WANTED_NEXT.finditer(message, start, end):
        yield found.start() + 1, found.end(), len(found.group(1)) == len(FIELD)


def rewrite(message: bytes, value: str, *, subject_tag: str = "") -> bytes:
    """Return ``message`` with ``X-MTOTrust: value`` as its first field and, with a tag, the Subject tagged.

    Every inbound ``X-MTOTrust`` field is removed: the exact name in any case (``x-mtotrust``, and the obsolete
    ``X-MTOTrust :``), with its continuation lines; ``X-MTOTrust-Extra`` is another field and stays. The new field
    comes first, folded at ``"; "`` where a line would pass 78 characters (unfolded, its value is ``value``).

    With ``subject_tag`` (white space around it ignored), the first Subject field gets the tag, one space, then
    its text, unless its text as displayed (unfolded, leading white space ignored, RFC 2047 encoded-words
    decoded; a word that cannot be decoded, for a bad charset or bad base64, is compared as written) already
    starts with the tag; a message without a Subject field gets ``Subject: <tag>`` after ``X-MTOTrust``; other
    Subject fields are untouched. An ASCII tag is written as is. A non-ASCII tag (``[外部]``), or one holding
    ``=?``, is written as RFC 2047 encoded-words (UTF-8, B), so the field stays 7-bit even in a message that is
    not SMTPUTF8; the check recognises the tag both so encoded and as raw UTF-8 (8-bit text is read as UTF-8).
    When the tagged first line would pass 78 characters, the original text moves to a continuation line (the
    fold is the space).

    Everything else is kept byte for byte: the other fields (order, case, folding, 8-bit bytes, lines without a
    colon), the empty line and the body. Added lines take the message's own line end (its first line's: CRLF or
    LF). One exception: continuation lines before the first field belong to no field and are dropped, because
    left in place they would continue the new ``X-MTOTrust`` field, or, above it, make Postfix read the whole
    header section as body (``mime_state_update`` in src/global/mime_state.c, "garbage in primary header":
    https://github.com/NetBSD/src/blob/trunk/external/ibm-public/postfix/dist/src/global/mime_state.c).

    .. versionadded:: 0.2.0

    Args:
        message: The DATA content as received: a header section, then an empty line and the body (either may
            be missing).
        value: The field's value, as :func:`header_field` builds it (printable ASCII, one line).
        subject_tag: The tag, ``mail.subject_tag`` of a decision that tags; ``""`` leaves the Subject alone.

    Returns:
        The rewritten message.

    Raises:
        ValueError: ``value`` is not printable ASCII on one line, or ``subject_tag`` holds a control character
            or a lone surrogate (either would break the header section). Never for the message itself.

    """
    tag = subject_tag.strip(" \t")
    _check_tag(tag)
    eol = _line_end(message)
    head, _ = _header_end(message)
    view = memoryview(message)
    pieces: list[bytes | memoryview] = [_folded(value, eol)]
    kept = 0
    if message[:1] in (b" ", b"\t"):  # continuation lines before any field: see the docstring
        orphan = _FIELD_END.search(message, 0, head)
        kept = head if orphan is None else orphan.end()
    subject_seen = not tag
    for start, colon, ours in _wanted(message, kept, head):
        field_end = _FIELD_END.search(message, start, head)
        end = head if field_end is None else field_end.end()
        if ours:  # X-MTOTrust: drop it
            pieces.append(view[kept:start])
            kept = end
        elif not subject_seen:
            subject_seen = True
            insert = _prefix(message, (start, colon, end), tag, eol)
            if insert is not None:
                pieces += (view[kept : insert[0]], insert[1])
                kept = insert[0]
    if not subject_seen:
        pieces.insert(1, b"Subject: " + _written(tag, eol) + eol)
    pieces.append(view[kept:])
    return b"".join(pieces)
