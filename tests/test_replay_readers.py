"""mtotrust.replay readers: every export format, dates, bad rows with their lines, BOM/CRLF/UTF-16, empty files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")

from mtotrust.replay._readers import BadRow, TraceRead, read_traces  # noqa: E402
from mtotrust.replay._schema import TRACE_SCHEMA  # noqa: E402

DATA = Path(__file__).parent / "data" / "traces"


def _rows(read: TraceRead) -> list[dict[str, object]]:
    return [row for batch in read.batches for row in batch.to_pylist()]


def _bad(read: TraceRead) -> list[tuple[int, str]]:
    return [(b.line, b.reason) for b in read.bad]


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_graph_page() -> None:
    path = DATA / "graph_page.json"
    read = read_traces([path])
    assert read.formats == {str(path): "graph_json"}
    assert read.rows == 3
    rows = _rows(read)
    assert [(r["message_id"], r["sender"], r["recipient"], r["received"]) for r in rows] == [
        ("<m1@contoso.com>", "alice@contoso.com", "bob@fabrikam.com", _utc(2026, 11, 30, 8, 15, 2)),
        ("<m2@contoso.com>", "alice@contoso.com", "carol@fabrikam.com", _utc(2026, 11, 30, 9, 0, 0, 123456)),
        ("<m3@contoso.com>", "dave@contoso.com", "erin@fabrikam.com", _utc(2026, 11, 30, 8, 30)),
    ]
    assert all(r["direction"] is None and r["dmarc"] is None and r["authentication_results"] is None for r in rows)
    assert all(b.path == str(path) for b in read.bad)
    assert _bad(read) == [
        (4, "senderAddress missing"),
        (5, "receivedDateTime 'yesterday' is not a date and time"),
        (6, "recipientAddress 'not-an-address' is not an address"),
        (7, "JSON item is a str, not an object"),
    ]


def test_graph_json_lines_crlf() -> None:
    read = read_traces([DATA / "graph_lines.jsonl"])
    assert read.formats == {str(DATA / "graph_lines.jsonl"): "graph_json"}
    assert [r["message_id"] for r in _rows(read)] == ["<j1@contoso.com>", "<j2@contoso.com>"]
    assert len(read.bad) == 1
    assert read.bad[0].line == 2
    assert read.bad[0].reason.startswith("JSON line does not parse")


def test_messagetracev2_json() -> None:
    read = read_traces([DATA / "v2_export.json"])
    assert read.formats == {str(DATA / "v2_export.json"): "messagetracev2_json"}
    assert [(r["message_id"], r["recipient"], r["received"]) for r in _rows(read)] == [
        ("<v1@contoso.com>", "bob@fabrikam.com", _utc(2026, 11, 30, 8, 15, 2)),  # \/Date(ms)\/ (Windows PS 5.1)
        ("<v2@contoso.com>", "carol@fabrikam.com", _utc(2026, 11, 30, 8, 15, 2, 500000)),  # naive ISO: UTC
    ]
    assert _bad(read) == [(3, "RecipientAddress 'a@b@fabrikam.com' is not an address"), (4, "MessageId missing")]


def test_messagetracev2_csv_bom_crlf_type_line() -> None:
    path = DATA / "v2_export.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf#TYPE")
    assert b"\r\n" in path.read_bytes()
    read = read_traces([path])
    assert read.formats == {str(path): "messagetracev2_csv"}
    assert [(r["message_id"], r["sender"], r["received"]) for r in _rows(read)] == [
        ("<c1@contoso.com>", "alice@contoso.com", _utc(2026, 11, 30, 8, 15, 2)),  # en-US "8:15:02 AM"
        ("<c2@contoso.com>", "alice@contoso.com", _utc(2026, 11, 30, 13, 5, 9)),  # a two-line quoted subject
        ("<c3@contoso.com>", "alice@contoso.com", _utc(2026, 11, 30, 23, 59, 59)),  # invariant culture
        ("<c6@contoso.com>", "alice@contoso.com", _utc(2026, 11, 30, 10, 0)),  # after a blank line
    ]
    assert _bad(read) == [
        (7, "Received '30/11/2026 08:15:02' is not a date and time"),  # day first: never guessed
        (8, "RecipientAddress missing"),
        (9, "expected 10 fields, got 3"),
    ]


def test_extended_csv() -> None:
    path = DATA / "extended.csv"
    read = read_traces([path])
    assert read.formats == {str(path): "extended_csv"}
    rows = _rows(read)
    assert [(r["message_id"], r["sender"], r["recipient"], r["direction"], r["dmarc"]) for r in rows] == [
        ("<e1@fabrikam.com>", "mallory@fabrikam.com", "alice@contoso.com", "inbound", "pass"),
        ("<e1@fabrikam.com>", "mallory@fabrikam.com", "bob@contoso.com", "inbound", "pass"),
        ("<e2@contoso.com>", "alice@contoso.com", "zed@fabrikam.com", "outbound", None),
        ("<e3@evil.example>", "ceo@contoso.com", "alice@contoso.com", "inbound", "fail"),
    ]
    assert rows[0]["received"] == _utc(2026, 11, 30, 8, 15, 2, 123000)  # the first event (RECEIVE), not DELIVER
    assert _bad(read) == [
        (6, "date_time_utc missing"),
        (7, "sender_address '@contoso.com' is not an address"),
        (8, "expected 27 fields, got 3"),
    ]


def test_several_files_and_batches_follow_the_schema() -> None:
    paths = [DATA / "graph_page.json", DATA / "v2_export.csv", DATA / "extended.csv", DATA / "empty.csv"]
    read = read_traces(paths, batch_size=2)
    assert read.rows == 11
    assert [b.num_rows for b in read.batches] == [2, 2, 2, 2, 2, 1]
    assert all(b.schema == TRACE_SCHEMA for b in read.batches)
    assert len(read.bad) == 4 + 3 + 3
    assert set(read.formats) == {str(p) for p in paths}
    assert pa.Table.from_batches(read.batches).column("received").null_count == 0


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    blank = tmp_path / "blank.json"
    blank.write_text("  \r\n")
    header = tmp_path / "header.csv"
    header.write_text("Received,SenderAddress,RecipientAddress,MessageId\r\n")
    page = tmp_path / "page.json"
    page.write_text('{"@odata.context": "x", "value": []}')
    array = tmp_path / "array.json"
    array.write_text("[]")
    read = read_traces([DATA / "empty.csv", blank, header, page, array])
    assert read.rows == 0
    assert read.batches == []
    assert read.bad == []
    assert read.formats == {str(DATA / "empty.csv"): "empty", str(blank): "empty", str(header): "messagetracev2_csv",
                            str(page): "graph_json", str(array): "empty"}


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("people.csv", "name,email\nalice,alice@contoso.com\n", "matches no known export"),
        ("other.json", '[{"name": "alice"}]', "match no export"),
        ("broken.json", '[{"messageId": ', "JSON does not parse"),
        ("object.json", '{\n"a": 1\n}', "match no export"),
        ("type-only.csv", "#TYPE Something\n", "no CSV header"),
    ],
)
def test_unknown_format_is_an_error_naming_the_file(tmp_path: Path, name: str, content: str, says: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=says) as caught:
        read_traces([path])
    assert str(path) in str(caught.value)


def test_binary_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.xlsx"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not utf-8 text") as caught:
        read_traces([path])
    assert str(path) in str(caught.value)


def test_unknown_fixture_file() -> None:
    with pytest.raises(ValueError, match="unknown.csv"):
        read_traces([DATA / "unknown.csv"])


def test_utf16_extended_csv(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes((DATA / "extended.csv").read_text().replace("\n", "\r\n").encode("utf-16"))
    assert read_traces([path]).rows == 4
    assert _bad(read_traces([path])) == _bad(read_traces([DATA / "extended.csv"]))


def test_oversized_csv_field_is_a_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    good = '"2026-11-30T10:00:00Z","a@b.example","c@d.example","<x@b>"\n'
    huge = '"' + "x" * 200_000 + '",1,2,3\n'
    path.write_text("Received,SenderAddress,RecipientAddress,MessageId\n" + good + huge + good)
    read = read_traces([path])
    assert read.rows == 2
    assert [(b.line, b.reason.startswith("CSV: field larger")) for b in read.bad] == [(3, True)]


def test_json_single_object_and_odd_values(tmp_path: Path) -> None:
    single = tmp_path / "one.json"
    single.write_text('{\n  "Received": "2026-11-30T08:15:02+01:00",\n  "SenderAddress": "A@B.example",\n'
                      '  "RecipientAddress": "c@d.example",\n  "MessageId": "<1@b>"\n}\n')
    odd = tmp_path / "odd.json"
    odd.write_text('[{"receivedDateTime": 17, "senderAddress": "a@b.example", "recipientAddress": "c@d.example",'
                   ' "messageId": "<1@b>"}, {"Received": "2026-11-30T08:15:02Z"}, {"other": 1}]')
    read = read_traces([single, odd])
    assert [(r["sender"], r["received"]) for r in _rows(read)] == [("a@b.example", _utc(2026, 11, 30, 7, 15, 2))]
    assert read.formats == {str(single): "messagetracev2_json", str(odd): "graph_json"}
    assert _bad(read) == [
        (1, "receivedDateTime is not a string: int"),
        (2, "a messagetracev2_json object in a graph_json file"),
        (3, "JSON object has neither Graph nor Get-MessageTraceV2 fields"),
    ]


def test_bad_row_is_a_value() -> None:
    assert BadRow("f.csv", 3, "why") == BadRow("f.csv", 3, "why")


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        read_traces([], batch_size=0)


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("12/1/2026 12:00:00 AM", _utc(2026, 12, 1, 0, 0)),
        ("12/1/2026 12:30:00 PM", _utc(2026, 12, 1, 12, 30)),
        ("1/2/2026 1:02:03 pm", _utc(2026, 1, 2, 13, 2, 3)),
        ("01/02/2026 00:00:00", _utc(2026, 1, 2, 0, 0)),
        ("2026-01-02T03:04:05.5-05:00", _utc(2026, 1, 2, 8, 4, 5, 500000)),
        ("/Date(1796026502123+0100)/", _utc(2026, 11, 30, 8, 15, 2, 123000)),
        ("13/1/2026 1:00:00 AM", None),
        ("2/30/2026 1:00:00 AM", None),
        ("1/2/2026 13:00:00 PM", None),
        ("1/2/2026 0:00:00 AM", None),
        ("2026-01-02 03:04", _utc(2026, 1, 2, 3, 4)),
        ("Friday", None),
        # digits that are not ASCII (int() would read them) are not a date: never guessed
        ("\u0661\u0661/30/2026 8:15:02 AM", None),
        ("/Date(\uff11764490502000)/", None),
        ("\uff12\uff10\uff12\uff16-11-30T08:15:02Z", None),
    ],
)
def test_dates(tmp_path: Path, shown: str, expected: datetime | None) -> None:
    path = tmp_path / "dates.csv"
    path.write_text(f'Received,SenderAddress,RecipientAddress,MessageId\n"{shown}",a@b.example,c@d.example,<1@b>\n')
    read = read_traces([path])
    if expected is None:
        assert _bad(read) == [(2, f"Received {shown!r} is not a date and time")]
    else:
        assert [r["received"] for r in _rows(read)] == [expected]
