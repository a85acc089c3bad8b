"""Readers: Exchange message-trace exports normalised to ``TRACE_SCHEMA`` rows.

``read_traces(paths)`` reads each file, detects its format from its content (never from its name) and yields
``TRACE_SCHEMA`` record batches, one row per message and recipient. The formats:

``graph_json``
    A page of Microsoft Graph ``GET /admin/exchange/tracing/messageTraces`` (an object with ``"value"``), a JSON array
    of ``exchangeMessageTrace`` objects, or JSON lines of them. Fields used: ``messageId``, ``receivedDateTime``
    (ISO 8601, UTC), ``senderAddress``, ``recipientAddress``
    (https://learn.microsoft.com/en-us/graph/api/resources/exchangemessagetrace).
``messagetracev2_json``
    ``Get-MessageTraceV2 | ConvertTo-Json`` (an array, or a single object when there was one result) or JSON lines.
    Fields used: ``MessageId``, ``Received``, ``SenderAddress``, ``RecipientAddress``
    (https://learn.microsoft.com/en-us/powershell/module/exchange/get-messagetracev2; its time stamps are UTC).
``messagetracev2_csv``
    ``Get-MessageTraceV2 | Export-Csv``: a header with ``Received``, ``SenderAddress``, ``RecipientAddress`` (a leading
    ``#TYPE ...`` line, written by Windows PowerShell without ``-NoTypeInformation``, is skipped).
``extended_csv``
    The extended (historical search) message-trace report: a header with ``date_time_utc``, ``sender_address``,
    ``recipient_address``. It holds one row per event, and ``recipient_address`` may list several recipients
    separated by ``;``: each (``message_id``, recipient) pair is emitted once, at its first event. ``custom_data``
    entries ``S:DMARC=<verdict>`` (``;``-separated) fill ``dmarc`` (lower-case, up to a ``|``), and
    ``directionality`` fills ``direction`` (``Incoming``/``1`` -> ``inbound``, ``Originating``/``2`` ->
    ``outbound``, anything else kept as written).

Other formats give ``direction`` and ``dmarc`` None; ``authentication_results`` is always None (traces carry no
Authentication-Results header).

Dates accepted: ISO 8601 (``Z``, ``+hh:mm`` or none; any number of fraction digits, cut to microseconds), .NET JSON
``/Date(<ms since epoch>[+-hhmm])/`` (the offset is display-only: the milliseconds are already UTC), and the forms
``Export-Csv`` writes in the en-US and invariant cultures, ``11/30/2026 8:15:02 AM`` and ``11/30/2026 08:15:02``
(month first). A time without a zone is UTC: every one of these exports writes UTC. Other cultures' day-first dates
are not guessed at: they are bad rows.

Bad rows (never fatal, never dropped silently): a missing or empty ``message_id``, sender, recipient or received
time, an unparsable time, an address without exactly one ``@`` between non-empty parts, a CSV row with the wrong
number of fields, a JSON item that is not an object, a JSON line that does not parse. Each is a ``BadRow(path,
line, reason)``: ``line`` is the 1-based line of the file where the row starts (CSV and JSON lines) or the 1-based
position of the item in the JSON array. Addresses are trimmed and lower-cased only; the engine judges the rest.

Memory: CSV files and JSON lines are streamed row by row, only the current batch is held. A JSON document (a Graph
page or a ``ConvertTo-Json`` array) is parsed whole by ``json.load``. The extended CSV keeps the set of
(message_id, recipient) pairs seen in the file.

A file whose content is none of these formats raises ``ValueError`` naming the file: it is a wrong input, not a
bad row. An empty file (or only whitespace) has no rows and format ``"empty"``.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from mtotrust.replay._schema import TRACE_SCHEMA

__all__ = ["BadRow", "TraceRead", "read_traces"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NET_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/", re.ASCII)  # ASCII digits only: int() reads any
_CSV_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?: ?([AaPp])[Mm])?", re.ASCII)
_DIRECTIONS = {"incoming": "inbound", "1": "inbound", "inbound": "inbound",
               "originating": "outbound", "2": "outbound", "outbound": "outbound"}
_SNIFF_BYTES = 65536


@dataclass(frozen=True)
class BadRow:
    """A trace row that could not be read: its file, its 1-based line (JSON array: item position) and why."""

    path: str
    line: int
    reason: str


@dataclass
class TraceRead:
    """What ``read_traces`` read: ``TRACE_SCHEMA`` batches, the row count, the bad rows and each file's format."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    bad: list[BadRow] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Row:
    message_id: str
    received_us: int
    sender: str
    recipient: str
    direction: str | None
    dmarc: str | None


class _RowError(Exception):
    """A row is bad; the message is the reason."""


class _Builder:
    """Accumulates rows column by column and cuts a batch every ``batch_size`` rows."""

    def __init__(self, out: TraceRead, batch_size: int) -> None:
        self._out = out
        self._size = batch_size
        self._cols: dict[str, list[Any]] = {name: [] for name in TRACE_SCHEMA.names}

    def add(self, row: _Row) -> None:
        cols = self._cols
        cols["message_id"].append(row.message_id)
        cols["received"].append(row.received_us)
        cols["sender"].append(row.sender)
        cols["recipient"].append(row.recipient)
        cols["direction"].append(row.direction)
        cols["authentication_results"].append(None)
        cols["dmarc"].append(row.dmarc)
        self._out.rows += 1
        if len(cols["message_id"]) >= self._size:
            self.flush()

    def flush(self) -> None:
        if not self._cols["message_id"]:
            return
        arrays = [pa.array(self._cols[f.name], type=f.type) for f in TRACE_SCHEMA]
        self._out.batches.append(pa.RecordBatch.from_arrays(arrays, schema=TRACE_SCHEMA))
        self._cols = {name: [] for name in TRACE_SCHEMA.names}


def read_traces(paths: Sequence[str | Path], *, batch_size: int = 65536) -> TraceRead:
    """Read message-trace exports into ``TRACE_SCHEMA`` batches (formats, dates and bad rows: module docstring).

    Raises ``ValueError`` for a ``batch_size`` below 1 or a file of no known format (the message names the file).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out = TraceRead()
    builder = _Builder(out, batch_size)
    for path in paths:
        name = str(path)
        with Path(path).open("rb") as raw:
            encoding = _encoding(raw.read(4))
        with Path(path).open(encoding=encoding, newline="") as text_in:
            try:
                out.formats[name] = _read_file(name, _Text(text_in), builder, out.bad)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{name}: not a message trace (not {encoding} text: {exc.reason})") from exc
    builder.flush()
    return out


class _Text:
    """A text stream with the first chunk peeked at, so format detection does not consume it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.head = stream.read(_SNIFF_BYTES)

    def lines(self) -> Iterator[str]:
        """Yield the whole text as lines, line endings kept (CR LF and LF)."""
        pending = ""
        for chunk in _chain(self.head, iter(lambda: self._stream.read(_SNIFF_BYTES), "")):
            *done, pending = (pending + chunk).split("\n")
            for line in done:
                yield line + "\n"
        if pending:
            yield pending

    def whole(self) -> str:
        """Return the whole text at once."""
        return self.head + self._stream.read()


def _encoding(start: bytes) -> str:
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _read_file(name: str, text: _Text, builder: _Builder, bad: list[BadRow]) -> str:
    head = text.head.lstrip()
    if not head:
        return "empty"
    if head.startswith(("{", "[")):
        return _read_json(name, text, builder, bad)
    return _read_csv(name, text, builder, bad)


# --- CSV -----------------------------------------------------------------------------------------------------------


def _read_csv(name: str, text: _Text, builder: _Builder, bad: list[BadRow]) -> str:
    lines = text.lines()
    skipped = 0
    for first in lines:
        if first.strip() and not first.startswith("#TYPE"):
            break
        skipped += 1
    else:
        raise ValueError(f"{name}: not a message trace (no CSV header)")
    header = [h.strip().lower() for h in next(csv.reader([first]))]
    fmt = _csv_format(header)
    if fmt is None:
        raise ValueError(f"{name}: not a message trace (CSV header {header[:6]} matches no known export)")
    reader = csv.reader(lines)
    seen: set[tuple[str, str]] = set()
    previous = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append(BadRow(name, skipped + 2 + previous, f"CSV: {exc}"))
            previous = reader.line_num
            continue
        line = skipped + 1 + previous + 1
        previous = reader.line_num
        if not fields or fields == [""]:
            continue
        if len(fields) != len(header):
            bad.append(BadRow(name, line, f"expected {len(header)} fields, got {len(fields)}"))
            continue
        record = dict(zip(header, fields, strict=True))
        try:
            if fmt == "extended_csv":
                for row in _extended_rows(record):
                    key = (row.message_id, row.recipient)
                    if key not in seen:
                        seen.add(key)
                        builder.add(row)
            else:
                builder.add(_v2_row(record))
        except _RowError as exc:
            bad.append(BadRow(name, line, str(exc)))
    return fmt


def _csv_format(header: list[str]) -> str | None:
    names = set(header)
    if {"date_time_utc", "sender_address", "recipient_address", "message_id"} <= names:
        return "extended_csv"
    if {"received", "senderaddress", "recipientaddress", "messageid"} <= names:
        return "messagetracev2_csv"
    return None


def _v2_row(record: Mapping[str, Any]) -> _Row:
    """Read a Get-MessageTraceV2 row (CSV header lower-cased, or JSON keys lower-cased)."""
    return _Row(
        message_id=_required(record.get("messageid"), "MessageId"),
        received_us=_timestamp(record.get("received"), "Received"),
        sender=_address(record.get("senderaddress"), "SenderAddress"),
        recipient=_address(record.get("recipientaddress"), "RecipientAddress"),
        direction=None,
        dmarc=None,
    )


def _extended_rows(record: Mapping[str, str]) -> list[_Row]:
    message_id = _required(record.get("message_id"), "message_id")
    received = _timestamp(record.get("date_time_utc"), "date_time_utc")
    sender = _address(record.get("sender_address"), "sender_address")
    recipients = [r for r in (record.get("recipient_address") or "").split(";") if r.strip()]
    if not recipients:
        raise _RowError("recipient_address missing")
    direction_raw = (record.get("directionality") or "").strip()
    direction = _DIRECTIONS.get(direction_raw.lower(), direction_raw) if direction_raw else None
    dmarc = _dmarc(record.get("custom_data") or "")
    return [_Row(message_id, received, sender, _address(r, "recipient_address"), direction, dmarc)
            for r in recipients]


def _dmarc(custom_data: str) -> str | None:
    for entry in custom_data.split(";"):
        key, sep, value = entry.partition("=")
        if sep and key.strip().upper() == "S:DMARC":
            verdict = value.split("|")[0].strip().lower()
            return verdict or None
    return None


# --- JSON ----------------------------------------------------------------------------------------------------------


def _read_json(name: str, text: _Text, builder: _Builder, bad: list[BadRow]) -> str:
    if text.head.lstrip().startswith("["):
        return _read_items(name, _load(name, text.whole()), builder, bad)
    lines = text.lines()
    first = next(lines)
    try:
        parsed = json.loads(first)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("value") is None:
        return _read_json_lines(name, first, lines, builder, bad)
    document = _load(name, first + "".join(lines))
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        fmt = _read_items(name, document["value"], builder, bad)
        return "graph_json" if fmt == "empty" else fmt
    return _read_items(name, [document], builder, bad)


def _load(name: str, whole: str) -> Any:
    try:
        return json.loads(whole)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: not a message trace (JSON does not parse: {exc})") from exc


def _read_json_lines(name: str, first: str, lines: Iterator[str], builder: _Builder, bad: list[BadRow]) -> str:
    fmt: str | None = None
    for number, line in enumerate(_chain(first, lines), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(name, number, f"JSON line does not parse: {exc.msg}"))
            continue
        fmt = _read_item(name, number, item, fmt, builder, bad)
    return fmt or "empty"


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    """``first``, then every item of ``rest``."""
    yield first
    yield from rest


def _read_items(name: str, items: list[Any], builder: _Builder, bad: list[BadRow]) -> str:
    fmt: str | None = None
    for position, item in enumerate(items, start=1):
        fmt = _read_item(name, position, item, fmt, builder, bad)
    return fmt or "empty"


def _read_item(name: str, line: int, item: Any, fmt: str | None, builder: _Builder, bad: list[BadRow]) -> str | None:
    """Read one JSON item; the file's format is fixed by its first object and checked against each later one."""
    if not isinstance(item, dict):
        bad.append(BadRow(name, line, f"JSON item is a {type(item).__name__}, not an object"))
        return fmt
    item_fmt = _json_format(item)
    if item_fmt is None:
        if fmt is None:
            raise ValueError(f"{name}: not a message trace (JSON object keys {sorted(item)[:6]} match no export)")
        bad.append(BadRow(name, line, "JSON object has neither Graph nor Get-MessageTraceV2 fields"))
        return fmt
    if fmt is not None and item_fmt != fmt:
        bad.append(BadRow(name, line, f"a {item_fmt} object in a {fmt} file"))
        return fmt
    try:
        if item_fmt == "graph_json":
            builder.add(_Row(
                message_id=_required(item.get("messageId"), "messageId"),
                received_us=_timestamp(item.get("receivedDateTime"), "receivedDateTime"),
                sender=_address(item.get("senderAddress"), "senderAddress"),
                recipient=_address(item.get("recipientAddress"), "recipientAddress"),
                direction=None,
                dmarc=None,
            ))
        else:
            builder.add(_v2_row({key.lower(): value for key, value in item.items()}))
    except _RowError as exc:
        bad.append(BadRow(name, line, str(exc)))
    return item_fmt


def _json_format(item: Mapping[str, Any]) -> str | None:
    if "receivedDateTime" in item or "senderAddress" in item:
        return "graph_json"
    if "Received" in item or "SenderAddress" in item:
        return "messagetracev2_json"
    return None


# --- values --------------------------------------------------------------------------------------------------------


def _required(value: Any, column: str) -> str:
    if value is not None and not isinstance(value, str):
        raise _RowError(f"{column} is not a string: {type(value).__name__}")
    if value is None or not value.strip():
        raise _RowError(f"{column} missing")
    return value.strip()


def _address(value: Any, column: str) -> str:
    address = _required(value, column).lower()
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise _RowError(f"{column} {address!r} is not an address")
    return address


def _timestamp(value: Any, column: str) -> int:
    """Microseconds since the epoch, UTC (a time without a zone is UTC)."""
    text = _required(value, column)
    moment = _parse_time(text)
    if moment is None:
        raise _RowError(f"{column} {text!r} is not a date and time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_time(text: str) -> datetime | None:
    net = _NET_DATE.fullmatch(text)
    if net:
        return _EPOCH + timedelta(milliseconds=int(net.group(1)))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    shown = _CSV_DATE.fullmatch(text)
    if shown is None:
        return None
    month, day, year, hour, minute, second = (int(part) for part in shown.group(1, 2, 3, 4, 5, 6))
    half = shown.group(7)
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half in "Pp" else 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)  # written in UTC, zone not shown
    except ValueError:
        return None
