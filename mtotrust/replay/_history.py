"""Decide message-trace rows against the directory snapshot in force when each message was received."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mtotrust._engine import TrustEngine
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust.replay._batch import check_trace_batch, decide_rows
from mtotrust.replay._schema import OUTPUT_SCHEMA, TRACE_SCHEMA

__all__ = ["SnapshotHistory"]


class SnapshotHistory:
    """Snapshots taken over time, each deciding the trace rows received while it was the newest.

    A row is decided against the newest snapshot whose ``taken_at`` is at or before its ``received`` time; a row
    received before every snapshot is decided against the oldest and flagged ``before_first_snapshot``. One
    engine per snapshot is kept for the history's life, so its cache serves every batch.

    Args:
        snapshots: at least one snapshot, in any order (they are sorted by ``taken_at``).
        policy: the policy every row is decided with.

    Raises:
        ValueError: no snapshots.
        TypeError: a snapshot or the policy of the wrong type.
    """

    def __init__(self, snapshots: Sequence[Snapshot], policy: Policy) -> None:
        if not snapshots:
            raise ValueError("SnapshotHistory needs at least one snapshot")
        self._engines = [TrustEngine(s, policy) for s in sorted(snapshots, key=lambda s: s.taken_at)]
        received = TRACE_SCHEMA.field("received").type
        self._taken = [pa.scalar(e.snapshot.taken_at, received) for e in self._engines]

    @property
    def snapshots(self) -> list[Snapshot]:
        """The snapshots, oldest first."""
        return [e.snapshot for e in self._engines]

    def evaluate(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Decide every row of ``batch`` against the snapshot in force at its ``received`` time, in input order.

        Returns :data:`OUTPUT_SCHEMA` rows; raises as :func:`~mtotrust.replay.evaluate_batch` does.
        """
        check_trace_batch(batch)
        received = batch.column("received")
        # Segment of each row: how many snapshots were taken at or before it (0: before the oldest).
        segment = pa.repeat(pa.scalar(0, pa.int64()), batch.num_rows)
        for taken in self._taken:
            segment = pc.add(segment, pc.cast(pc.greater_equal(received, taken), pa.int64()))
        parts, positions = [], []
        for number in range(len(self._engines) + 1):
            rows = pc.indices_nonzero(pc.equal(segment, number))
            if len(rows):
                engine = self._engines[max(number - 1, 0)].pinned()
                parts.append(decide_rows(batch.take(rows), engine, before_first=number == 0))
                positions.append(rows)
        if len(parts) == 1 and len(positions[0]) == batch.num_rows:
            return parts[0]
        if not parts:
            return decide_rows(batch, self._engines[0].pinned(), before_first=False)
        # pa.concat_batches is pyarrow 19 and newer; a table of the parts, combined into one chunk, is any pyarrow's
        combined = pa.Table.from_batches(parts).take(pc.sort_indices(pa.concat_arrays(positions))).combine_chunks()
        return combined.to_batches()[0].cast(OUTPUT_SCHEMA)
