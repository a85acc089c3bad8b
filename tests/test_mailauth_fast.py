"""The fast path of ``parse_authentication_results`` is pinned to the readable parser.

``_fast_parse`` reads the common form of a value with one pattern; wherever it answers, its answer must be the
parser's (and the parser must not reject the value). Values are built from the pieces a header is made of, and
from the pieces that make a parser stumble: comments nested and escaped, quoted strings, bare line breaks,
control characters, ``none``, versions.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mtotrust.mailauth import _fast_parse, _Parser, parse_authentication_results

PIECES = [
    "mx.contoso.com", "MX.Contoso.COM.", "dkim", "spf", "dmarc", "compauth", "auth", "pass", "fail", "none",
    "NONE", "header", "from", "d", "smtp", "mailfrom", "reason", "action", "100", "1", "01", "10", "0", "a@b.c",
    "fabrikam.com", "x=y", "b64+/==", "_x-", "é", "ü@例え.jp",
    ";", ";", "=", "=", "/", ".", " ", " ", "\t", "\r\n ", "\n ", "\r\n", "\r", "\n",
    "(c)", "(sender IP is 203.0.113.5)", "(a;b)", "((n))", "(\\))", "(", ")", '"q"', '"', '"a b"@x', '"a\\"b"',
    "\x00", "\x85", "\x7f", "\x1f", ",", "@", "Authentication-Results:", "authentication-results :",
]
pieces = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


def common_form() -> st.SearchStrategy[str]:
    """Well-formed values of the common form: what boundaries and Exchange Online write."""
    ws = st.sampled_from(["", " ", "  ", "\t", "\r\n ", " (c) ", "(sender IP is 1.2.3.4)"])
    keyword = st.sampled_from(["spf", "dkim", "DMARC", "compauth", "auth", "arc", "x-ms-exchange"])
    word = st.sampled_from(["pass", "fail", "none", "softpass", "bestguesspass", "Neutral"])
    prop = st.tuples(ws, st.sampled_from(["header.from", "header.d", "smtp.mailfrom", "reason", "action",
                                          "header . from", "policy.dmarc"]), ws, ws,
                     st.sampled_from(["fabrikam.com", "100", "none", "a@b.c", "b64+/=="])).map(
        lambda t: f"{t[0]} {t[1]}{t[2]}={t[3]}{t[4]}")
    resinfo = st.tuples(keyword, ws, st.sampled_from(["", "/1"]), ws, word, st.lists(prop, max_size=4)).map(
        lambda t: f"{t[0]}{t[1]}{t[2]}={t[3]}{t[4]}{''.join(t[5])}")
    results = st.lists(st.tuples(ws, resinfo, ws), min_size=1, max_size=5).map(
        lambda items: ";".join(a + r + b for a, r, b in items))
    authserv = st.sampled_from(["mx.contoso.com", "mx.contoso.com 1", "MX.CONTOSO.COM.", "relay-1.example"])
    with_id = st.tuples(ws, authserv, ws, results, st.sampled_from(["", ";", "\r\n"])).map(
        lambda t: f"{t[0]}{t[1]}{t[2]};{t[3]}{t[4]}")
    return st.one_of(with_id, results)


def near_common_form() -> st.SearchStrategy[str]:
    """A common-form value with one piece inserted or one character dropped: the edge of the fast path's form."""
    insert = st.tuples(common_form(), st.integers(0, 400), st.sampled_from(PIECES)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:])
    drop = st.tuples(common_form(), st.integers(0, 400)).map(lambda t: t[0][:t[1]] + t[0][t[1] + 1:])
    return st.one_of(insert, drop)


@settings(max_examples=1000)
@given(st.one_of(pieces, near_common_form()))
def test_where_the_fast_path_answers_it_answers_as_the_parser(value: str) -> None:
    fast = _fast_parse(value)
    if fast is not None:
        assert _Parser(value).parse() == fast


@settings(max_examples=500)
@given(common_form())
def test_the_fast_path_reads_the_common_form_exactly(value: str) -> None:
    fast = _fast_parse(value)
    slow = _Parser(value).parse()
    assert fast == slow or (fast is None and any(r.method == "none" for r in slow.results))
    assert parse_authentication_results(value) == slow


def test_the_fast_path_reads_boundary_and_exchange_online_headers() -> None:
    for value in ("mx.contoso.com; spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=fabrikam.com; dkim=pass "
                  "(signature was verified) header.d=fabrikam.com; dmarc=pass action=none header.from=fabrikam.com;"
                  " compauth=pass reason=100",
                  "spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=fabrikam.com; dkim=pass (signature was "
                  "verified)\r\n header.d=fabrikam.com;dmarc=pass action=none header.from=fabrikam.com;compauth=pass"
                  " reason=100"):
        assert _fast_parse(value) == _Parser(value).parse()
        assert _fast_parse(value) is not None
