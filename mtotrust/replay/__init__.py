"""Replay Exchange message traces over Arrow: every row decided as the single-message API decides it.

Read traces with :func:`read_traces` (Graph ``exchangeMessageTrace`` JSON, ``Get-MessageTraceV2`` CSV or JSON,
the extended message-trace CSV) into :data:`TRACE_SCHEMA` batches; decide a batch against one engine with
:func:`evaluate_batch`, or against the snapshot in force when each message was received with
:class:`SnapshotHistory`. Both return :data:`OUTPUT_SCHEMA` batches; the columns are documented in
:mod:`mtotrust.replay._schema`. :class:`SparkReplay` decides a Spark DataFrame of those rows on the executors
(``mapInArrow``). Needs the ``replay`` extra (pyarrow), and for Spark the ``spark`` extra (pyspark).
"""

from __future__ import annotations

from mtotrust.replay._batch import evaluate_batch
from mtotrust.replay._history import SnapshotHistory
from mtotrust.replay._readers import BadRow, TraceRead, read_traces
from mtotrust.replay._schema import OUTPUT_SCHEMA, TRACE_SCHEMA
from mtotrust.replay._spark import SparkReplay

__all__ = ["OUTPUT_SCHEMA", "TRACE_SCHEMA", "BadRow", "SnapshotHistory", "SparkReplay", "TraceRead", "evaluate_batch",
           "read_traces"]
