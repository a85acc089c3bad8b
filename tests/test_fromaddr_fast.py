"""The plain-header fast path of ``message_fields`` is pinned to the standard library's parser.

``_plain_fields`` reads a header section without the ``email`` package when it is plain (ASCII, one kind of
line end, every line a field or its continuation); wherever it answers, its ``From`` and
``Authentication-Results`` values must be exactly those the parser path gives.
"""

from __future__ import annotations

import re
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtotrust import FromAddressError
from mtotrust import _fromaddr as fromaddr
from mtotrust._fromaddr import _plain_fields, message_fields

LINES = [
    "From: Cameron <cameron@fabrikam.com>", "from:cameron@fabrikam.com", "FROM :x@y.z", "From x@y.z Mon Nov 30",
    "Authentication-Results: mx.contoso.com; dmarc=pass header.from=fabrikam.com",
    "authentication-results:\tmx.contoso.com; spf=pass", "Authentication-Results : mx; none",
    "Subject: hi", "Subject:", "To: ada@contoso.com", "X-A:b:c", ":no name", "no colon here", " folded tail",
    "\tdkim=pass header.d=fabrikam.com", "  ", "", "Received: from a by b; Mon, 30 Nov 2026 08:00:00 +0000",
    "X-Odd: \x00\x7f", "X-Bin: caf\u00e9", "X-V: a\x0bb", "X-R: a\rb", ">From: x@y.z", "From:", "From: \t",
]
ENDS = ["\r\n", "\n", "\r"]


def blocks() -> st.SearchStrategy[bytes]:
    line = st.tuples(st.sampled_from(LINES), st.sampled_from(ENDS + ["\r\n"] * 6)).map("".join)
    return st.tuples(st.lists(line, max_size=12), st.sampled_from(["\r\n", "\n", "", "\r\n\r\n"])).map(
        lambda t: ("".join(t[0]) + t[1]).encode("utf-8", "surrogateescape"))


def parser_fields(block: bytes) -> tuple[list[str], list[str]] | str:
    """What ``message_fields`` answers through the standard library's parser: the fields, or the error's reason."""
    with mock.patch.object(fromaddr, "_plain_fields", return_value=None):
        try:
            return message_fields(block)
        except FromAddressError as exc:
            return exc.reason


@settings(max_examples=1500)
@given(blocks())
def test_where_the_fast_path_answers_it_answers_as_the_parser(block: bytes) -> None:
    fast = _plain_fields(block)
    if fast is not None:
        assert parser_fields(block) == fast


@pytest.mark.parametrize("block", [
    b"Return-Path: <b@fabrikam.com>\r\nFrom: \"C W\" <c@fabrikam.com>\r\nAuthentication-Results: mx.contoso.com;\r\n"
    b" spf=pass smtp.mailfrom=fabrikam.com;\r\n dmarc=pass header.from=fabrikam.com\r\nSubject: Q\r\n\r\n",
    b"From: c@fabrikam.com\nAuthentication-Results: a; none\nAuthentication-Results: b; none\n\n",
    b"From: c@fabrikam.com",
])
def test_the_fast_path_reads_what_mail_servers_pass_on(block: bytes) -> None:
    assert _plain_fields(block) is not None
    assert _plain_fields(block) == parser_fields(block)


PLAIN = [line for line in LINES if line and line.isascii() and not line.startswith((" ", "\t", ":", ">"))
         and line.split(":", 1)[0].strip() == line.split(":", 1)[0] and ":" in line and "\r" not in line
         and "\x0b" not in line]


@settings(max_examples=500)
@given(st.lists(st.tuples(st.sampled_from(PLAIN), st.lists(st.sampled_from([" folded", "\tmore", "  x=y"]),
                                                              max_size=2)), min_size=1, max_size=10),
       st.sampled_from(["\r\n", "\n"]))
def test_plain_sections_take_the_fast_path(fields: list[tuple[str, list[str]]], end: str) -> None:
    block = ("".join(end.join([first, *rest]) + end for first, rest in fields) + end).encode()
    assert _plain_fields(block) is not None
    assert _plain_fields(block) == parser_fields(block)


# -- the From value -------------------------------------------------------------------------------------------

FROM_PIECES = [
    "cameron@fabrikam.com", "Cameron.White@Fabrikam.COM", "a", "b.c", "@", ".", "..", "<", ">", " ", "  ", "\t",
    '"Cameron White"', '"Doe, John"', '"a\\"b"', '""', '"', "Cameron", "White", "=?utf-8?q?J=C3=B6rg?=",
    "=?a?q?x.y?=", "=?", "?=", "(comment)", "(", ")", ",", ";", ":", "group:", "[1.2.3.4]", "\r\n ", "\r\n",
    "é", "x!#$%&'*+/=?^_`{|}~-y", "mailto:", "<>", '"a b"@x.y', "a@b", "a@b.", ".a@b",
]


def one_mailbox(value: str, *, fast: bool) -> str:
    """``_one_mailbox(value)``, or the reason it refused the value; with or without the plain-form fast path."""
    with mock.patch.object(fromaddr, "_PLAIN_FROM", fromaddr._PLAIN_FROM if fast else re.compile(r"(?!)")):
        try:
            return fromaddr._one_mailbox(value)
        except FromAddressError as exc:
            return f"refused: {exc.reason}"


def plain_from() -> st.SearchStrategy[str]:
    """From values of the plain forms, as mail clients write them."""
    atom = st.sampled_from(["Cameron", "White", "ada", "O'Brien", "x_y", "J.", "a-b"])
    name = st.lists(st.one_of(atom, st.sampled_from(['"Cameron White"', '"Doe, John"', '""', '"é"'])), max_size=3)
    addr = st.sampled_from(["cameron@fabrikam.com", "Ada.L@Contoso.COM", "a+b@c.d", "x@y", "a..b@c", "a@b..c"])
    return st.tuples(st.sampled_from(["", " "]), name, st.sampled_from([" ", "", "  "]), addr, st.booleans(),
                     st.sampled_from(["", " ", "\t"])).map(
        lambda t: f"{t[0]}{' '.join(t[1])}{t[2]}<{t[3]}>{t[5]}" if t[4] or t[1] else f"{t[0]}{t[3]}{t[5]}")


@settings(max_examples=1500)
@given(st.one_of(st.lists(st.sampled_from(FROM_PIECES), max_size=10).map("".join), plain_from()))
def test_a_from_value_reads_the_same_with_and_without_the_fast_path(value: str) -> None:
    assert one_mailbox(value, fast=True) == one_mailbox(value, fast=False)


def test_the_fast_path_reads_what_mail_clients_write() -> None:
    for value, address in [('"Cameron White" <cameron@fabrikam.com>', "cameron@fabrikam.com"),
                           ("Ada Lovelace <Ada.L@Contoso.COM>", "Ada.L@Contoso.COM"), ("a@b.c", "a@b.c"),
                           (" <x@y> ", "x@y")]:
        with mock.patch.object(fromaddr, "_FromParser", side_effect=AssertionError("the parser was used")):
            assert fromaddr._one_mailbox(value) == address
