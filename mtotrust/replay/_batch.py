"""Decide a batch of message-trace rows against one engine state, each distinct address and question once."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mtotrust._engine import TrustEngine
from mtotrust._model import MailAuth, Resolution
from mtotrust.replay._schema import OUTPUT_SCHEMA, TRACE_SCHEMA

__all__ = ["check_trace_batch", "evaluate_batch"]

_FIX = ("build the batch with schema=mtotrust.replay.TRACE_SCHEMA (batch.cast(TRACE_SCHEMA) converts compatible "
        "types) or read the traces with mtotrust.replay.read_traces")


def check_trace_batch(batch: object) -> pa.RecordBatch:
    """Return ``batch`` when it is a record batch of :data:`TRACE_SCHEMA` rows (any column order).

    Raises:
        TypeError: when ``batch`` is not a ``pyarrow.RecordBatch``.
        ValueError: naming the column and the fix, when a column is missing, extra, of another type, or null in
            a column that cannot be.
    """
    if not isinstance(batch, pa.RecordBatch):
        raise TypeError(f"batch must be a pyarrow.RecordBatch, not {type(batch).__name__}; {_FIX}")
    schema = batch.schema
    for name in schema.names:
        if TRACE_SCHEMA.get_field_index(name) < 0:
            raise ValueError(f"batch column {name!r} is not a message-trace column; drop it, or {_FIX}")
    for field in TRACE_SCHEMA:
        index = schema.get_field_index(field.name)
        if index < 0:
            raise ValueError(f"batch has no {field.name!r} column (or has it twice); {_FIX}")
        found = schema.field(index).type
        if found != field.type:
            raise ValueError(f"batch column {field.name!r} is {found}, not {field.type}; {_FIX}")
        if not field.nullable and batch.column(index).null_count:
            raise ValueError(f"batch column {field.name!r} has nulls and cannot; drop or fill those rows")
    return batch


def evaluate_batch(batch: pa.RecordBatch, engine: TrustEngine) -> pa.RecordBatch:
    """Decide every message-trace row of ``batch`` with ``engine``; return :data:`OUTPUT_SCHEMA` rows in order.

    A row's mail decision is ``engine.mail(sender, auth)``, with ``auth`` the row's ``authentication_results``
    when present, else ``MailAuth(dmarc=<dmarc>, header_from=<the sender's normalised domain>)`` when ``dmarc``
    is present, else ``None``; ``recipient_trust`` is ``engine.resolve(recipient).trust`` and
    ``recipient_inside`` ``engine.dlp(recipient).inside_organization``. The whole batch is decided from one
    pinned engine state (one ``snapshot_id`` and ``policy_fingerprint``); each distinct address is resolved
    once (``resolve_many``) and each distinct (sender, authentication) decision made once, so the engine's
    statistics count distinct decisions, not rows. A null sender or recipient is decided as the empty address
    (invalid: it fails closed).

    Raises:
        TypeError: ``batch`` is not a record batch or ``engine`` not a :class:`~mtotrust.TrustEngine`.
        ValueError: the batch's schema is not :data:`TRACE_SCHEMA` (the message names the column and the fix).
    """
    if not isinstance(engine, TrustEngine):
        raise TypeError(f"engine must be a mtotrust.TrustEngine, not {type(engine).__name__}")
    return decide_rows(check_trace_batch(batch), engine.pinned(), before_first=False)


def _domain(resolution: Resolution) -> str | None:
    """Return the From domain the engine aligns DMARC with: the normalised address's domain, or None if invalid."""
    return resolution.identity.rpartition("@")[2] if resolution.address is not None else None


def decide_rows(batch: pa.RecordBatch, engine: TrustEngine, *, before_first: bool) -> pa.RecordBatch:
    """Decide a checked trace batch with an already pinned engine; ``before_first`` fills that column."""
    n = batch.num_rows
    senders = pc.dictionary_encode(pc.fill_null(batch.column("sender"), ""))
    recipients = pc.dictionary_encode(pc.fill_null(batch.column("recipient"), ""))
    sender_values: list[str] = senders.dictionary.to_pylist()
    recipient_values: list[str] = recipients.dictionary.to_pylist()
    resolved = engine.resolve_many(sender_values + recipient_values)  # each distinct address once
    domains = [_domain(r) for r in resolved[:len(sender_values)]]

    # One integer key per row for its (sender, authentication) question: sender index * (verdicts + 1) + the
    # verdict's index + 1 (0: no verdict); rows carrying Authentication-Results get negative keys, numbered here.
    dmarc = pc.dictionary_encode(batch.column("dmarc"))
    verdicts: list[str] = dmarc.dictionary.to_pylist()
    width = len(verdicts) + 1
    key = pc.add(pc.multiply(pc.cast(senders.indices, pa.int64()), width),
                 pc.fill_null(pc.add(pc.cast(dmarc.indices, pa.int64()), 1), 0))
    results = batch.column("authentication_results")
    listed: list[tuple[int, list[str]]] = []
    if results.null_count < n:
        present = pc.is_valid(results)
        numbered: dict[tuple[int, tuple[str, ...]], int] = {}
        codes = []
        for sender, values in zip(senders.indices.filter(present).to_pylist(), results.filter(present).to_pylist(),
                                  strict=True):
            code = numbered.get((sender, tuple(values)))
            if code is None:
                code = numbered[sender, tuple(values)] = -1 - len(listed)
                listed.append((sender, values))
            codes.append(code)
        key = pc.replace_with_mask(key, present, pa.array(codes, pa.int64()))
    questions = pc.dictionary_encode(key)

    trust, tags, authenticated, reasons, sources = [], [], [], [], []
    made: dict[tuple[int, str | None], MailAuth] = {}  # one MailAuth per (verdict, domain): senders share domains
    for code in questions.dictionary.to_pylist():
        auth: Any
        if code < 0:
            sender, auth = listed[-1 - code]
            source = "authentication_results"
        else:
            sender, verdict = divmod(code, width)
            if verdict:
                domain = domains[sender]
                auth = made.get((verdict, domain))
                if auth is None:
                    auth = made[verdict, domain] = MailAuth(dmarc=verdicts[verdict - 1], header_from=domain)
                source = "trace_dmarc"
            else:
                auth, source = None, "absent"
        decision = engine.mail(sender_values[sender], auth)
        trust.append(decision.trust.value)
        tags.append(decision.tag_external)
        authenticated.append(decision.authenticated)
        reasons.append(decision.reasons)
        sources.append(source)
    rows = questions.indices
    to = recipients.indices
    columns = [batch.column(name) for name in TRACE_SCHEMA.names] + [
        pa.array(trust, pa.string()).take(rows),
        pa.array(tags, pa.bool_()).take(rows),
        pa.array(authenticated, pa.bool_()).take(rows),
        pa.array([r.trust.value for r in resolved[len(sender_values):]], pa.string()).take(to),
        pa.array([engine.dlp(r).inside_organization for r in recipient_values], pa.bool_()).take(to),
        pa.array(reasons, pa.list_(pa.string())).take(rows),
        pa.array(sources, pa.string()).take(rows),
        pa.repeat(pa.scalar(before_first), n),
        pa.repeat(pa.scalar(engine.snapshot.id), n),
        pa.repeat(pa.scalar(engine.policy.fingerprint), n),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=OUTPUT_SCHEMA)
