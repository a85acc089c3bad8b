"""Tests for mtotrust.mailflow._message: the X-MTOTrust field and the Subject tag, written into a message's bytes."""

# The house style asserts `expected == actual` (style.md, lesson 11), which SIM300 calls a Yoda condition.

from __future__ import annotations

import base64
import email.header
import email.parser
import email.policy
import email.quoprimime
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import MailDecision, Policy, Snapshot, Trust, TrustEngine
from mtotrust.mailflow._message import FIELD, header_field, header_section, rewrite

SNAPSHOT = Snapshot.sample()
POLICY = Policy.load(str(resources.files("mtotrust") / "sample" / "policy.toml"))
VALUE = ("trust=mto_member; tag=no; reasons=auth_dmarc_pass,mto_active; "
         "snapshot=sha256:0123456789abcdef0123456789abcdef; policy=0123abcd0123abcd0123abcd0123abcd")
TAG = "[External]"
BODY = b"Hello,\r\n\r\nthe agenda is attached.\r\n"


def unfold(data: bytes) -> bytes:
    """RFC 5322 unfolding: the line ends inside a field removed."""
    return data.replace(b"\r\n", b"").replace(b"\n", b"")


def top_field(result: bytes) -> bytes:
    """The first field of ``result``, with its continuation lines."""
    found = re.match(rb"[^\n]*\n(?:[ \t][^\n]*\n)*", result)
    assert found is not None
    return found.group()


def subject(result: bytes) -> str:
    """The first Subject of ``result`` as a mail reader displays it (the standard library's modern policy)."""
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(result)
    return str(parsed["subject"])


def items(data: bytes) -> list[tuple[str, str]]:
    """The header fields a compat32 parser reads from ``data``, as ``(name, value)``, in order."""
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    return [(name, str(value)) for name, value in parsed.raw_items()]


def decision(*auth: str) -> MailDecision:
    head = "".join(f"Authentication-Results: {a}\r\n" for a in auth)
    raw = f"From: Cameron <cameron@fabrikam.com>\r\n{head}Subject: Review\r\n\r\nbody\r\n".encode()
    return TrustEngine(SNAPSHOT, POLICY).mail_message(raw)


class TestHeaderField:
    """header_field: the X-MTOTrust value for a decision."""

    def test_untagged_decision(self) -> None:
        """An untagged decision writes its trust, tag=no, its reasons in order, the snapshot id and the policy."""
        d = decision("mx.contoso.com; dmarc=pass action=none header.from=fabrikam.com")
        assert (Trust.MTO_MEMBER, False) == (d.trust, d.tag_external)
        assert (f"trust=mto_member; tag=no; reasons={','.join(d.reasons)}; snapshot={SNAPSHOT.id}; "
                f"policy={POLICY.fingerprint}") == header_field(d)

    def test_tagged_decision(self) -> None:
        """A tagging decision writes tag=yes and its lower trust."""
        d = decision()
        assert d.tag_external
        assert header_field(d).startswith(f"trust={d.trust.value}; tag=yes; reasons={d.reasons[0]}")

    def test_no_reasons(self) -> None:
        """A decision without reasons writes reasons=none, never an empty list."""
        d = attrs.evolve(decision(), reasons=())
        assert "; reasons=none; " in header_field(d)

    def test_value_is_written_unfolded_by_rewrite(self) -> None:
        """The value of a real decision goes through rewrite and reads back unfolded as it was."""
        value = header_field(decision())
        result = rewrite(b"From: a@b.c\r\n\r\n", value)
        assert (FIELD, value) == (items(result)[0][0], unfold(items(result)[0][1].encode()).decode())


class TestHeaderSection:
    """header_section: the lines before the first empty line."""

    @pytest.mark.parametrize(("message", "expected"), [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore", b"A: 1\r\nB: 2\r\n"),
        (b"A: 1\nB: 2\n\nbody\n\nmore", b"A: 1\nB: 2\n"),
        (b"A: 1\nB: 2\r\n\r\nbody", b"A: 1\nB: 2\r\n"),
        (b"A: 1\n\r\nB: 2\r\n\r\nbody", b"A: 1\n"),  # an LF line end, then an empty CRLF line
        (b"A: 1\r\n\nB: 2\r\n\r\nbody", b"A: 1\r\n"),  # a CRLF line end, then an empty LF line
        (b"A: 1\r\nB: 2\r\n", b"A: 1\r\nB: 2\r\n"),  # no empty line: all header
        (b"A: 1\r\nB: 2", b"A: 1\r\nB: 2"),
        (b"\r\nA: 1\r\n\r\n", b""),  # the first line is empty: no header section
        (b"\nA: 1\n", b""),
        (b"", b""),
        (b"A: 1\r\n \r\n\r\nbody", b"A: 1\r\n \r\n"),  # a line of one space continues a field; it is not empty
    ])
    def test_cut_at_the_first_empty_line(self, message: bytes, expected: bytes) -> None:
        """The section ends at the first empty line, CRLF or LF, and is the whole message without one."""
        assert expected == header_section(message)

    def test_decides_like_the_whole_message(self) -> None:
        """The engine decides the header section as it decides the whole message."""
        raw = (b"From: Cameron <cameron@fabrikam.com>\r\nAuthentication-Results: mx.contoso.com; dmarc=pass "
               b"header.from=fabrikam.com\r\nSubject: x\r\n\r\nFrom: someone@else.example\r\n")
        engine = TrustEngine(SNAPSHOT, POLICY)
        whole, section = engine.mail_message(raw), engine.mail_message(header_section(raw))
        assert (whole.trust, whole.reasons) == (section.trust, section.reasons)


def msg(*fields: str, body: bytes = BODY, eol: str = "\r\n") -> bytes:
    return "".join(f + eol for f in fields).encode() + eol.encode() + body


class TestXMTOTrust:
    """rewrite: one X-MTOTrust field, first; every inbound one removed."""

    def test_added_first(self) -> None:
        """The field goes at the very top, above Received, and nothing else changes."""
        raw = msg("Received: from a by b", "Subject: Hi")
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v")

    @pytest.mark.parametrize("forged", [
        "X-MTOTrust: trust=internal; tag=no",
        "x-mtotrust: trust=internal",
        "X-MTOTRUST:trust=internal",
        "X-MTOTrust: trust=internal;\r\n tag=no;\r\n\treasons=forged",
        "X-MTOTrust : trust=internal",  # obsolete syntax (RFC 5322 4.5.3): the same field
        "X-MTOTrust\t: trust=internal",
    ])
    @pytest.mark.parametrize("where", ["top", "middle", "end"])
    def test_forged_removed(self, forged: str, where: str) -> None:
        """A forged field, in any case, folded or in the obsolete form, is removed wherever it is."""
        fields = ["Received: from a by b", "From: a@b.c", "Subject: Hi"]
        at = {"top": 0, "middle": 2, "end": 3}[where]
        raw = msg(*fields[:at], forged, *fields[at:])
        assert b"X-MTOTrust: v\r\n" + msg(*fields) == rewrite(raw, "v")

    def test_forged_last_line_of_a_header_only_message(self) -> None:
        """A forged field on the last line of a message without an empty line, and without a line end, goes."""
        assert b"X-MTOTrust: v\r\nFrom: a@b.c\r\n" == rewrite(b"From: a@b.c\r\nX-MTOTrust: trust=internal", "v")

    @pytest.mark.parametrize("other", ["X-MTOTrust-Extra: keep", "X-MTOTrustX: keep", "XX-MTOTrust: keep",
                                       "X-MTOTrust", "Comment: X-MTOTrust: no"])
    def test_other_names_kept(self, other: str) -> None:
        """Only the exact name is removed: a longer name, a line without a colon, a value naming it stay."""
        raw = msg("From: a@b.c", other)
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v")

    def test_in_body_kept(self) -> None:
        """An X-MTOTrust line in the body (a forwarded message, a MIME part) is body, kept byte for byte."""
        body = b"--b\r\nContent-Type: message/rfc822\r\n\r\nX-MTOTrust: trust=internal\r\n\r\nx\r\n--b--\r\n"
        raw = msg("From: a@b.c", "Content-Type: multipart/mixed; boundary=b", body=body)
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v")

    def test_many_forged_all_removed(self) -> None:
        """Every copy goes, however many there are."""
        raw = msg(*(["X-MTOTrust: forged", "A: 1"] * 100))
        assert b"X-MTOTrust: v\r\n" + msg(*(["A: 1"] * 100)) == rewrite(raw, "v")

    def test_folded_at_semicolons(self) -> None:
        """A long value is folded after "; " so that no line passes 78 characters, and unfolds to the value."""
        field = top_field(rewrite(msg("From: a@b.c"), VALUE))
        lines = field.split(b"\r\n")[:-1]
        assert len(lines) > 1
        assert all(len(line) <= 78 for line in lines)
        assert all(line.endswith(b";") for line in lines[:-1])
        assert b"X-MTOTrust: " + VALUE.encode() == unfold(field)

    def test_short_value_one_line(self) -> None:
        """A value that fits is written on one line."""
        result = rewrite(b"A: 1\r\n\r\n", "trust=internal; tag=no")
        assert b"X-MTOTrust: trust=internal; tag=no\r\n" == top_field(result)

    def test_overlong_part_not_split(self) -> None:
        """A part longer than a line stays whole on its own line (folding only ever replaces the space after ";")."""
        value = "a=1; reasons=" + "x" * 90 + "; b=2"
        field = top_field(rewrite(b"A: 1\r\n\r\n", value))
        assert b"X-MTOTrust: a=1;\r\n reasons=" + b"x" * 90 + b";\r\n b=2\r\n" == field

    @pytest.mark.parametrize("value", ["trust=x\r\nBcc: evil@x", "a\nb", "a\rb", "a\x00b", "trust=é"])
    def test_bad_value_refused(self, value: str) -> None:
        """A value that would break the header section (line breaks, controls, non-ASCII) is a ValueError naming it."""
        with pytest.raises(ValueError, match=re.escape(repr(value))):
            rewrite(b"A: 1\r\n\r\n", value)


class TestSubjectTag:
    """rewrite with subject_tag: the first Subject prefixed once; a Subject added when there is none."""

    def test_prefixed(self) -> None:
        """The tag, one space, then the original text."""
        assert b"X-MTOTrust: v\r\nSubject: [External] Hi there\r\n\r\nb" == rewrite(
            b"Subject: Hi there\r\n\r\nb", "v", subject_tag=TAG)

    def test_no_space_after_colon(self) -> None:
        """A Subject written without a space after the colon gets one before the tag."""
        assert b"Subject: [External] Hi\r\n" == rewrite(b"Subject:Hi\r\n", "v", subject_tag=TAG)[15:]

    @pytest.mark.parametrize("text", ["[External] Hi", "[External]Hi", "   [External] Hi", "\t[External]",
                                      "[External]", " [External]\r\n next line"])
    def test_already_tagged(self, text: str) -> None:
        """A Subject that already starts with the tag (leading white space ignored) is not prefixed again."""
        raw = msg("From: a@b.c", f"Subject:{text}")
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v", subject_tag=TAG)

    def test_folded(self) -> None:
        """A folded Subject is prefixed on its first line; its continuation lines stay."""
        raw = msg("Subject: Quarterly\r\n review of\r\n\tthe plan")
        assert b"X-MTOTrust: v\r\n" + msg("Subject: [External] Quarterly\r\n review of\r\n\tthe plan") == rewrite(
            raw, "v", subject_tag=TAG)

    def test_text_on_continuation_line(self) -> None:
        """A Subject whose text starts on a continuation line gets the tag on its first line: the fold is the space."""
        result = rewrite(msg("Subject:\r\n Quarterly review"), "v", subject_tag=TAG)
        assert b"X-MTOTrust: v\r\n" + msg("Subject: [External]\r\n Quarterly review") == result
        assert "[External] Quarterly review" == subject(result)

    def test_empty_subject(self) -> None:
        """An empty Subject becomes the tag alone."""
        assert b"X-MTOTrust: v\r\nSubject: [External]\r\n\r\nb" == rewrite(b"Subject:\r\n\r\nb", "v", subject_tag=TAG)
        assert b"X-MTOTrust: v\r\nSubject:  [External]\r\n\r\nb" == rewrite(
            b"Subject:  \r\n\r\nb", "v", subject_tag=TAG)

    def test_long_first_line_folds(self) -> None:
        """When the tagged first line would pass 78 characters, the text moves to a continuation line."""
        long = "word " * 13 + "end"
        result = rewrite(msg(f"Subject: {long}"), "v", subject_tag=TAG)
        assert b"X-MTOTrust: v\r\n" + msg(f"Subject: [External]\r\n {long}") == result
        assert f"[External] {long}" == subject(result)

    def test_missing_subject_added(self) -> None:
        """A tagged message without a Subject gets "Subject: <tag>" right after X-MTOTrust."""
        raw = msg("From: a@b.c", "To: c@d.e")
        assert b"X-MTOTrust: v\r\nSubject: [External]\r\n" + raw == rewrite(raw, "v", subject_tag=TAG)

    def test_only_first_subject(self) -> None:
        """A second Subject field is left as it is: never a second prefix, never a second Subject."""
        raw = msg("Subject: one", "Subject: two")
        assert b"X-MTOTrust: v\r\n" + msg("Subject: [External] one", "Subject: two") == rewrite(
            raw, "v", subject_tag=TAG)

    @pytest.mark.parametrize("name", ["subject", "SUBJECT", "Subject ", "sUbJeCt\t"])
    def test_subject_name_any_case(self, name: str) -> None:
        """The Subject field is found in any case and in the obsolete form with white space before the colon."""
        assert f"X-MTOTrust: v\r\n{name}: [External] Hi\r\n".encode() == rewrite(
            f"{name}: Hi\r\n".encode(), "v", subject_tag=TAG)

    def test_not_a_subject(self) -> None:
        """Subjects-Extra and a line "Subject" without a colon are not the Subject: one is added."""
        raw = msg("Subjects: x", "Subject", "X-Subject: y")
        assert b"X-MTOTrust: v\r\nSubject: [External]\r\n" + raw == rewrite(raw, "v", subject_tag=TAG)

    def test_no_tag_leaves_subject(self) -> None:
        """Without a tag (an untagged decision), neither the Subject nor its absence changes."""
        assert b"X-MTOTrust: v\r\nA: 1\r\n" == rewrite(b"A: 1\r\n", "v")
        assert b"X-MTOTrust: v\r\nSubject: Hi\r\n" == rewrite(b"Subject: Hi\r\n", "v", subject_tag=" \t ")

    def test_tag_white_space_ignored(self) -> None:
        """White space around the tag is ignored, so a tag written with it still tags once."""
        once = rewrite(b"Subject: Hi\r\n", "v", subject_tag=" [External] ")
        assert b"X-MTOTrust: v\r\nSubject: [External] Hi\r\n" == once
        assert once == rewrite(once, "v", subject_tag=" [External] ")

    @pytest.mark.parametrize("tag", ["[Ext]\r\nBcc: evil@x", "[Ext]\n", "[E\x00]", "[\ud800]"])
    def test_bad_tag_refused(self, tag: str) -> None:
        """A tag with a line break, a control character or a lone surrogate is a ValueError naming it."""
        with pytest.raises(ValueError, match=re.escape(repr(tag))):
            rewrite(b"Subject: Hi\r\n", "v", subject_tag=tag)


def b_word(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?b?{base64.b64encode(text.encode()).decode()}?="


def q_word(text: str) -> str:
    return email.quoprimime.header_encode(text.encode(), charset="utf-8")


class TestEncodedWords:
    """The tag check decodes RFC 2047 encoded-words; a non-ASCII tag is written as one."""

    @pytest.mark.parametrize("word", [b_word, q_word])
    def test_encoded_subject_prefixed(self, word: Callable[[str], str]) -> None:
        """An encoded-word Subject is prefixed in plain text and displays as the tag, a space, its text."""
        result = rewrite(msg(f"Subject: {word('Grüße aus Köln')}"), "v", subject_tag=TAG)
        assert "[External] Grüße aus Köln" == subject(result)
        assert b"Subject: [External] =?utf-8?" in result

    @pytest.mark.parametrize("text", [b_word("[External] Hi"), q_word("[External] Hi"), q_word("[External]") + " Hi",
                                      b_word("[Ext") + " " + b_word("ernal] Hi"), "=?UTF-8?Q?=5BExternal=5D?= Hi",
                                      b_word("[External] Hi", "utf-8*en")])
    def test_encoded_tag_recognised(self, text: str) -> None:
        """A Subject whose decoded text starts with the tag (in one word or split across words) is left alone."""
        raw = msg(f"Subject: {text}")
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v", subject_tag=TAG)

    @pytest.mark.parametrize("text", [
        "=?utf-8?b?!!!not base64?=", "=?x-unknown?q?abc?=", "=?rot13?q?abc?=", "=?idna?b?4pyT?=",
        "=?base64?b?YWJj?=", "=?utf-16?b?YQ==?=", "=?punycode?q?=FF=FE?=", "=?undefined?q?x?=",
        "=?utf-8?b?/w==?=", "=?utf-8?q?=FF?=", "=?utf-8?q??=", "=?utf-8?b?YW?=",
    ])
    def test_undecodable_never_raises(self, text: str) -> None:
        """A bad charset or bad encoding never raises: the word is compared as written, and the Subject tagged."""
        raw = msg(f"Subject: {text} tail")
        assert b"X-MTOTrust: v\r\n" + msg(f"Subject: [External] {text} tail") == rewrite(raw, "v", subject_tag=TAG)

    def test_undecodable_after_tag(self) -> None:
        """A Subject that starts with the tag as written, then a word that cannot be decoded, is tagged already."""
        raw = msg("Subject: [External] =?x-unknown?b?!!?=")
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v", subject_tag=TAG)

    @pytest.mark.parametrize("word", ["=?utf-8?q??=", "=?utf-8?q?x?=", "=?x-unknown?q?x?="])
    def test_many_words_bounded(self, word: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A Subject of thousands of encoded-words (empty ones too) is decided from its first few, and tagged."""
        calls: list[str] = []

        def counting(header: str) -> list[tuple[bytes | str, str | None]]:
            calls.append(header)
            return decode_header(header)

        decode_header = email.header.decode_header
        monkeypatch.setattr(email.header, "decode_header", counting)
        words = " ".join([word] * 20_000)
        result = rewrite(msg(f"Subject: {words} x"), "v", subject_tag=TAG)
        assert result.startswith(f"X-MTOTrust: v\r\nSubject: [External]\r\n {word}".encode())
        assert len(calls) <= len(TAG)

    @pytest.mark.parametrize("tag", ["[Extérieur]", "[外部]", "[Внешний] ✉", "[" + "外部" * 20 + "]",
                                     "[=?utf-8?q?x?=]", "=?"])
    def test_tag_written_encoded(self, tag: str) -> None:
        """A non-ASCII tag, or one holding "=?", is written as encoded-words (7-bit), displays as itself, tags once."""
        once = rewrite(msg("Subject: Quarterly review"), "v", subject_tag=tag)
        head = header_section(once)
        assert head.isascii()
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))
        assert f"{tag} Quarterly review" == subject(once)
        assert once == rewrite(once, "v", subject_tag=tag)

    def test_non_ascii_tag_before_encoded_word(self) -> None:
        """Before an encoded-word Subject, the tag's space is encoded too (white space between words is not shown)."""
        once = rewrite(msg(f"Subject: {q_word('Grüße')}"), "v", subject_tag="[外部]")
        assert "[外部] Grüße" == subject(once)
        assert once == rewrite(once, "v", subject_tag="[外部]")

    def test_non_ascii_tag_added(self) -> None:
        """A missing Subject is added as the encoded tag."""
        result = rewrite(msg("From: a@b.c"), "v", subject_tag="[外部]")
        assert result.startswith(b"X-MTOTrust: v\r\nSubject: =?utf-8?b?")
        assert "[外部]" == subject(result)

    def test_raw_utf8_tag_recognised(self) -> None:
        """An SMTPUTF8 Subject that starts with the tag in raw UTF-8 is tagged already."""
        raw = b"Subject: " + "[外部] 会議".encode() + b"\r\n\r\nb"
        assert b"X-MTOTrust: v\r\n" + raw == rewrite(raw, "v", subject_tag="[外部]")

    def test_ascii_tag_before_raw_utf8(self) -> None:
        """An 8-bit Subject is prefixed without touching its bytes."""
        raw = b"Subject: \xe4\xbc\x9a\xe8\xad\xb0 \xff\r\n\r\nb"
        assert b"X-MTOTrust: v\r\nSubject: [External] \xe4\xbc\x9a\xe8\xad\xb0 \xff\r\n\r\nb" == rewrite(
            raw, "v", subject_tag=TAG)


class TestBytes:
    """rewrite keeps everything else byte for byte, with the message's own line ends."""

    def test_lf_only(self) -> None:
        """A message with LF line ends gets its added lines with LF, folded field included."""
        raw = msg("From: a@b.c", "X-MTOTrust: forged", eol="\n", body=b"body\nline\n")
        result = rewrite(raw, VALUE, subject_tag=TAG)
        assert b"\r" not in result
        assert result.endswith(b"Subject: [External]\nFrom: a@b.c\n\nbody\nline\n")
        assert b"X-MTOTrust: " + VALUE.encode() == unfold(top_field(result))

    def test_lf_long_subject_folds_with_lf(self) -> None:
        """A fold in an LF message is LF and a space."""
        result = rewrite(b"Subject: " + b"x " * 40 + b"\n\n", "v", subject_tag=TAG)
        assert b"X-MTOTrust: v\nSubject: [External]\n " + b"x " * 40 + b"\n\n" == result

    def test_header_only(self) -> None:
        """A message without an empty line is all header: rewritten, and still without one."""
        assert b"X-MTOTrust: v\r\nFrom: a@b.c\r\nSubject: [External] Hi" == rewrite(
            b"From: a@b.c\r\nSubject: Hi", "v", subject_tag=TAG)
        assert b"X-MTOTrust: v\r\nSubject: [External]\r\n" == rewrite(b"", "v", subject_tag=TAG)

    @pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
    def test_empty_header_section(self, eol: bytes) -> None:
        """A message whose first line is empty has no fields: the body (header-like lines too) is kept."""
        raw = eol + b"X-MTOTrust: trust=internal" + eol + b"Subject: Hi" + eol
        assert b"X-MTOTrust: v" + eol + b"Subject: [External]" + eol + raw == rewrite(raw, "v", subject_tag=TAG)

    def test_lf_then_crlf_separator(self) -> None:
        """An empty CRLF line after an LF line end ends the header section: what follows is body."""
        raw = b"From: a@b.c\n\r\nX-MTOTrust: body\r\n"
        assert b"X-MTOTrust: v\n" + raw == rewrite(raw, "v")

    def test_body_byte_for_byte(self) -> None:
        """An 8-bit body with long lines, bare CRs, NULs and no final line end comes back as it was."""
        body = bytes(range(256)) * 4 + b"x" * 5000 + b"\r\n\r\n\rX-MTOTrust: a\r\nSubject: b"
        raw = msg("From: a@b.c", "MIME-Version: 1.0", "Content-Transfer-Encoding: 8bit", body=body)
        result = rewrite(raw, VALUE, subject_tag=TAG)
        assert result.endswith(b"\r\n\r\n" + body)
        assert result.count(body) == 1

    def test_garbage_and_eight_bit_fields_kept(self) -> None:
        """Lines without a colon, 8-bit fields, odd bytes and obsolete syntax are kept as they are, in order."""
        fields = [b"From sender@x Mon Jan 1 00:00:00 2024", b"Received: from a\r\n\tby b", b"no colon here",
                  b"X-8bit: \xe4\xf6\xfc \xff\x00", b"Odd: \x0b\x0c\x1c\x1d\x1e\x85 \r z", b"Date : Mon, 1 Jan 2024",
                  b"\xe4-Name: v", b": empty name"]
        raw = b"".join(f + b"\r\n" for f in fields) + b"\r\nbody"
        assert b"X-MTOTrust: v\r\nSubject: [External]\r\n" + raw == rewrite(raw, "v", subject_tag=TAG)

    def test_garbage_line_does_not_hide_fields(self) -> None:
        """Fields after a line without a colon are still in the header section: a forged copy there goes."""
        raw = msg("From: a@b.c", "garbage", "X-MTOTrust: trust=internal", "Subject: Hi")
        assert b"X-MTOTrust: v\r\n" + msg("From: a@b.c", "garbage", "Subject: [External] Hi") == rewrite(
            raw, "v", subject_tag=TAG)

    @pytest.mark.parametrize("orphan", [" X-MTOTrust: trust=internal", "\ttag=no", " a\r\n b"])
    @pytest.mark.parametrize("forged", [(), ("X-MTOTrust: trust=internal",)])
    def test_continuation_before_any_field_dropped(self, orphan: str, forged: tuple[str, ...]) -> None:
        """Continuation lines before the first field belong to none and are dropped: they cannot continue ours."""
        raw = msg(orphan, *forged, "From: a@b.c")
        result = rewrite(raw, "v")
        assert b"X-MTOTrust: v\r\n" + msg("From: a@b.c") == result
        assert ("X-MTOTrust", "v") == items(result)[0]

    def test_header_of_continuations_only(self) -> None:
        """A header section of nothing but continuation lines leaves only the new field."""
        assert b"X-MTOTrust: v\r\n\r\nbody" == rewrite(b" a\r\n\tb\r\n\r\nbody", "v")

    def test_large_header_linear(self) -> None:
        """A header of 50,000 fields, forged copies among them, is rewritten in one pass (no quadratic work)."""
        fields = [f"X-Field-{i}: value {i}\r\n continued" for i in range(50_000)]
        forged = list(fields)
        for i in range(0, 50_000, 5_000):
            forged.insert(i, "X-MTOTrust: forged")
        raw = msg(*forged, "Subject: Hi")
        assert b"X-MTOTrust: v\r\n" + msg(*fields, "Subject: [External] Hi") == rewrite(raw, "v", subject_tag=TAG)
        every = msg(*(["X-MTOTrust: forged"] * 50_000))
        assert b"X-MTOTrust: v\r\n\r\n" + BODY == rewrite(every, "v")


# --- properties ---------------------------------------------------------------------------------------------

# Field names: RFC 5322 ftext (printable ASCII but the colon), as parsers read them.
NAME = st.lists(st.sampled_from([bytes([c]) for c in range(33, 127) if c != ord(":")]), min_size=1, max_size=12)
# Value bytes: anything but a line break (CR or LF).
TEXT = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
CONTINUATION = st.builds(bytes.__add__, st.sampled_from([b" ", b"\t"]), TEXT)
WSP = st.sampled_from([b"", b" ", b"  ", b"\t"])
PLAIN = st.text(st.sampled_from("abcXYZ019 .,!-'\"()[]:;"), max_size=30).map(str.strip)
ENCODED = st.builds(lambda t, q: q_word(t) if q else b_word(t), st.text(max_size=15), st.booleans())
TAGS = st.one_of(st.sampled_from(["[External]", "[EXT]", "EXTERNAL:", "[Externe]", "[Extérieur]", "[外部]"]),
                 st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=40))
VALUES = st.one_of(st.just(VALUE), st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                                    min_size=1, max_size=100), min_size=1, max_size=8).map("; ".join))


@dataclass(frozen=True)
class Field:
    """A header field: its name and its lines (the first one's text after the colon, then continuations)."""

    name: bytes
    lines: tuple[bytes, ...]

    def raw(self, eol: bytes) -> bytes:
        return self.name + b":" + eol.join(self.lines) + eol

    @property
    def forged(self) -> bool:
        return self.name.lower() == b"x-mtotrust"

    @property
    def subject(self) -> bool:
        return self.name.lower() == b"subject"


def case_of(name: bytes) -> st.SearchStrategy[bytes]:
    flips = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return flips.map(lambda f: bytes(c ^ 32 if flip and chr(c).isalpha() else c for c, flip in zip(name, f,
                                                                                                   strict=True)))


OTHER = st.builds(lambda n, first, more: Field(b"".join(n), (first, *more)), NAME, TEXT,
                  st.lists(CONTINUATION, max_size=3).map(tuple))
FORGED = st.builds(lambda n, first, more: Field(n, (first, *more)), case_of(b"X-MTOTrust"), TEXT,
                   st.lists(CONTINUATION, max_size=3).map(tuple))


@st.composite
def subjects(draw: st.DrawFn) -> Field:
    """A Subject field: plain or encoded text, on its first line or starting on a continuation, maybe folded."""
    text = draw(st.lists(st.one_of(PLAIN, ENCODED), min_size=1, max_size=3))
    lead = draw(WSP)
    if draw(st.booleans()):
        lines: tuple[bytes, ...] = (lead + text[0].encode(), *(b" " + t.encode() for t in text[1:]))
    else:
        lines = (lead, *(b" " + t.encode() for t in text))
    return Field(draw(case_of(b"Subject")), lines)


@dataclass(frozen=True)
class Message:
    """A generated message: its line end, fields and body."""

    eol: bytes
    fields: tuple[Field, ...]
    body: bytes

    @property
    def raw(self) -> bytes:
        return b"".join(f.raw(self.eol) for f in self.fields) + self.eol + self.body

    @property
    def kept(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.forged)


MESSAGES = st.builds(Message, st.sampled_from([b"\r\n", b"\n"]),
                     st.lists(st.one_of(OTHER, OTHER, FORGED, subjects()), max_size=12).map(tuple), st.binary())


def without_ours(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Parsed fields without X-MTOTrust and without the first Subject."""
    out = [f for f in fields if f[0].lower() != "x-mtotrust"]
    first = next((i for i, f in enumerate(out) if f[0].lower() == "subject"), None)
    return out if first is None else out[:first] + out[first + 1 :]


class TestProperties:
    """Invariants of rewrite over generated messages (any fields, folding, 8-bit, forged copies, any body)."""

    @given(MESSAGES, VALUES, st.one_of(st.just(""), TAGS))
    def test_structure(self, message: Message, value: str, tag: str) -> None:
        """Result = our field, [added Subject], the kept fields in order (first Subject maybe prefixed), the body."""
        result = rewrite(message.raw, value, subject_tag=tag)
        eol, kept = message.eol, message.kept
        top = top_field(result)
        assert value.encode() == unfold(top)[len(b"X-MTOTrust: "):]
        rest = result[len(top):]
        index = next((i for i, f in enumerate(kept) if f.subject), None)
        if index is None:
            added = b""
            if tag.strip(" \t"):
                added = top_field(rest)
                assert added.startswith(b"Subject: ")
            assert added + b"".join(f.raw(eol) for f in kept) + eol + message.body == rest
            return
        before = b"".join(f.raw(eol) for f in kept[:index])
        after = b"".join(f.raw(eol) for f in kept[index + 1 :]) + eol + message.body
        assert rest.startswith(before)
        assert rest.endswith(after)
        tagged, original = rest[len(before) : len(rest) - len(after)], kept[index].raw(eol)
        colon = len(kept[index].name) + 1
        assert tagged.startswith(original[:colon])
        assert tagged.endswith(original[colon:].lstrip(b" \t"))
        if not tag.strip(" \t"):
            assert original == tagged

    @given(MESSAGES, VALUES, st.one_of(st.just(""), TAGS))
    def test_body_and_separator(self, message: Message, value: str, tag: str) -> None:
        """The body is byte-identical and starts after the result's own first empty line."""
        result = rewrite(message.raw, value, subject_tag=tag)
        assert header_section(result) + message.eol + message.body == result

    @given(MESSAGES, VALUES, st.one_of(st.just(""), TAGS))
    def test_one_field_first(self, message: Message, value: str, tag: str) -> None:
        """A parser reads exactly one X-MTOTrust field, the first one, whose unfolded value is the value."""
        parsed = items(rewrite(message.raw, value, subject_tag=tag))
        ours = [v for k, v in parsed if k.lower() == "x-mtotrust"]
        assert (FIELD, [value]) == (parsed[0][0], [unfold(v.encode()).decode() for v in ours])

    @given(MESSAGES, VALUES, st.one_of(st.just(""), TAGS))
    def test_idempotent(self, message: Message, value: str, tag: str) -> None:
        """Rewriting the result again changes nothing: no second prefix, no second Subject, no second field."""
        once = rewrite(message.raw, value, subject_tag=tag)
        assert once == rewrite(once, value, subject_tag=tag)

    @given(MESSAGES, VALUES, st.one_of(st.just(""), TAGS))
    def test_parser_sees_same_other_headers(self, message: Message, value: str, tag: str) -> None:
        """email.parser reads the same headers, in order, but X-MTOTrust and the first Subject."""
        result = rewrite(message.raw, value, subject_tag=tag)
        assert without_ours(items(message.raw)) == without_ours(items(result))

    @given(MESSAGES, TAGS)
    def test_subject_displays_tag(self, message: Message, tag: str) -> None:
        """With a tag, the first Subject as a mail reader displays it starts with the tag."""
        result = rewrite(message.raw, "v", subject_tag=tag)
        assert subject(result).lstrip().startswith(tag.strip(" \t"))
