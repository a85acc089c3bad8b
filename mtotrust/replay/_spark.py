"""Replay on Apache Spark: a ``mapInArrow`` job deciding trace rows on every executor, snapshots shipped once.

The driver saves each snapshot once as a store named by its ``Snapshot.id`` and time, in one folder per user that
outlives the process (a notebook's Python may restart while its Spark context stays, and Spark serves a file name
from one path only), and registers it with ``SparkContext.addFile``, so Spark copies it to each executor once; a
Python worker loads the stores it needs on
its first batch (``SparkFiles.get``) and keeps the :class:`~mtotrust.replay.SnapshotHistory` they make in this
module's :data:`_HISTORIES`, keyed by the snapshots' ids and the policy's fingerprint, for every later batch and
task (Spark reuses its Python workers). The function a worker runs is an instance of a class of this module, so
cloudpickle sends it by reference and the cache is the module's, not a copy made per task.

Needs pyspark 3.5 or 4.x (the ``spark`` extra) and a classic Spark session (one with a ``sparkContext``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust.replay._history import SnapshotHistory
from mtotrust.replay._schema import OUTPUT_SCHEMA, TRACE_SCHEMA

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["SparkReplay"]

REQUIRED = ("message_id", "received", "sender", "recipient")
"""The trace columns a DataFrame must have; the others are filled with nulls when it has none."""

ARROW_OUTPUT = pa.schema([field.with_nullable(True) for field in OUTPUT_SCHEMA])
""":data:`OUTPUT_SCHEMA` as Spark hands it over and writes it: the same columns and types, every one nullable."""

_ARROW_INPUT = pa.schema([field.with_nullable(True) for field in TRACE_SCHEMA])
""":data:`TRACE_SCHEMA`, every column nullable: the trace rows a DataFrame must have."""

_HISTORIES: dict[tuple[tuple[str, ...], str], SnapshotHistory] = {}
"""Per Python worker: the histories loaded so far, by (shipped store names, policy fingerprint)."""

_HISTORIES_KEPT = 2
"""Histories a worker keeps (the oldest goes first): a long-lived cluster replays many snapshot sets in turn."""


def store_name(snapshot: Snapshot) -> str:
    """Return the file name a snapshot is shipped under: its id and its time (UTC), which together name it."""
    taken = snapshot.taken_at.astimezone(dt.UTC)
    return f"mtotrust-{snapshot.id.replace(':', '-')}-{taken:%Y%m%dT%H%M%S%fZ}.sqlite"


def shipped_folder() -> Path:
    """Return the folder of shipped stores: ``mtotrust-spark-<uid>`` in the temporary folder, this user's only.

    The same for every process of the user, so a snapshot shipped again after the driver's Python restarted is
    the same path, which Spark registers once (it refuses a file name from a second path). The stores stay until
    the temporary folder is cleaned.

    Raises:
        RuntimeError: the folder exists but is a link, another user's, or open to others.
    """
    folder = Path(tempfile.gettempdir()) / f"mtotrust-spark-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    found = folder.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise RuntimeError(f"{folder} is not a private folder of this user (a link, another user's, or open to "
                           "others); remove it, and mtotrust makes it again")
    return folder


class _Decide:
    """The function every Python worker runs over its Arrow batches (picklable: it holds names, not snapshots)."""

    def __init__(self, snapshots: Sequence[Snapshot], policy: Policy) -> None:
        self.stores = tuple((store_name(s), s.id) for s in snapshots)
        self.policy = policy

    def history(self) -> SnapshotHistory:
        """Return this worker's history of the shipped snapshots, loading the stores on the first call."""
        key = (tuple(name for name, _ in self.stores), self.policy.fingerprint)
        found = _HISTORIES.get(key)
        if found is None:
            from pyspark import SparkFiles

            snapshots = []
            for name, snapshot_id in self.stores:
                snapshot = Snapshot.load(SparkFiles.get(name))
                if snapshot.id != snapshot_id:
                    raise RuntimeError(f"the store shipped as {name} holds snapshot {snapshot.id}, not "
                                       f"{snapshot_id}: another file of that name was added to the Spark session; "
                                       "start a new session")
                snapshots.append(snapshot)
            while len(_HISTORIES) >= _HISTORIES_KEPT:
                del _HISTORIES[next(iter(_HISTORIES))]
            found = _HISTORIES[key] = SnapshotHistory(snapshots, self.policy)
        return found

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        history = self.history()
        for batch in batches:
            yield history.evaluate(trace_batch(batch)).cast(ARROW_OUTPUT)


_RESULTS = TRACE_SCHEMA.get_field_index("authentication_results")
_RESULTS_TYPE = TRACE_SCHEMA.field(_RESULTS).type


def trace_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Return a batch of the trace columns as a Spark worker receives them as a :data:`TRACE_SCHEMA` batch.

    Spark hands every column over nullable and the timestamps labelled with the session's time zone (the same
    instants: the cast is a relabelling). ``authentication_results`` may come as JSON text (``replay()`` sends it
    so: pyspark 4 hands null arrays over to Python 4 to 30 times slower than text) and is read back here.

    Raises:
        ValueError: an ``authentication_results`` text that is not a JSON array of strings, or a ``received``
            without a time zone.
    """
    columns = [batch.column(name) for name in TRACE_SCHEMA.names]
    received = columns[TRACE_SCHEMA.get_field_index("received")].type
    if pa.types.is_timestamp(received) and received.tz is None:
        raise ValueError("received is a timestamp without a time zone (Spark's TIMESTAMP_NTZ): make it an instant "
                         "first, e.g. F.to_utc_timestamp(F.col('received'), zone).cast('timestamp')")
    results = columns[_RESULTS]
    if not (pa.types.is_list(results.type) or pa.types.is_large_list(results.type)):
        if results.null_count == len(results):
            columns[_RESULTS] = pa.nulls(len(results), _RESULTS_TYPE)
        else:
            columns[_RESULTS] = pa.array([None if text is None else _json_list(text) for text in results.to_pylist()],
                                         _RESULTS_TYPE)
    return pa.RecordBatch.from_arrays(columns, names=TRACE_SCHEMA.names).cast(TRACE_SCHEMA)


def _json_list(text: str) -> list[str]:
    """Return the list of strings a JSON text holds."""
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) or v is None for v in values):
        raise ValueError(f"authentication_results {text[:80]!r} is not a JSON array of strings; pass the column as "
                         "array<string>, or through SparkReplay.replay()")
    return values


class _DecidePandas:
    """:class:`_Decide` over pandas DataFrames, for ``mapInPandas``: each one converted to Arrow and back."""

    def __init__(self, decide: _Decide, timezone: str) -> None:
        self.decide = decide
        self.timezone = timezone

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        def batches() -> Iterator[pa.RecordBatch]:
            for given in frames:
                column = given["received"]
                if pd.api.types.is_integer_dtype(column):  # microseconds since the epoch: replay_pandas sends them
                    received = pd.to_datetime(column, unit="us", utc=True)
                else:  # mapInPandas hands timestamps over as naive wall times of the session's time zone
                    try:
                        received = column.dt.tz_localize(self.timezone)
                    except Exception as exc:  # noqa: BLE001 - pandas and pytz raise several kinds
                        raise ValueError(
                            f"received times cannot be read back in the session time zone {self.timezone}: {exc} "
                            "(mapInPandas hands them over as wall-clock times, which are ambiguous in the hour a "
                            "daylight-saving zone turns back: use a UTC session, or replay_pandas(), which sends "
                            "instants)") from None
                yield pa.RecordBatch.from_pandas(given.assign(received=received), preserve_index=False)

        for decided in self.decide(batches()):
            yield decided.to_pandas()



class SparkReplay:
    """A replay's snapshots and policy, shipped to a Spark session's executors, and the functions that decide.

    ``SparkReplay(spark, snapshots, policy).replay(traces)`` returns a DataFrame of :data:`OUTPUT_SCHEMA` rows
    (every column nullable, as Spark writes them), each trace row decided against the snapshot in force at its
    ``received`` time exactly as :meth:`SnapshotHistory.evaluate` decides it. The DataFrame is lazy: the stores
    stay registered with the session until the driver's process exits.

    Args:
        spark: a classic ``SparkSession`` (Spark Connect has no ``sparkContext`` to ship files with).
        snapshots: at least one snapshot, in any order.
        policy: the policy every row is decided with (default :meth:`Policy.default`).

    Raises:
        ValueError: no snapshots, or a session without a ``sparkContext`` (Spark Connect).
        TypeError: a snapshot or the policy of the wrong type.
    """

    def __init__(self, spark: SparkSession, snapshots: Sequence[Snapshot], policy: Policy | None = None) -> None:
        policy = Policy.default() if policy is None else policy
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a mtotrust.Policy, not {type(policy).__name__}")
        history = SnapshotHistory(snapshots, policy)  # checks the snapshots as the local replay does
        try:
            context = spark.sparkContext
        except Exception:  # noqa: BLE001 - Spark Connect raises its own "not implemented" error here
            context = None
        if context is None:
            raise ValueError("SparkReplay needs a classic Spark session, one with a sparkContext to ship the "
                             "snapshots with; this one has none (Spark Connect: on Databricks, Standard access "
                             "mode and serverless). Use a classic session (Databricks: Dedicated access mode)")
        self._spark = spark
        self.snapshots = history.snapshots
        self.policy = policy
        folder = shipped_folder()
        for snapshot in self.snapshots:
            path = folder / store_name(snapshot)
            if not path.exists():
                snapshot.save(path)
            context.addFile(str(path))
        self._decide = _Decide(self.snapshots, policy)

    @property
    def schema(self) -> StructType:
        """The Spark schema of the decided rows (:data:`OUTPUT_SCHEMA`, every column nullable)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(ARROW_OUTPUT)

    @property
    def decide_arrow(self) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
        """The function for ``DataFrame.mapInArrow(fn, self.schema)`` over a DataFrame of the trace columns."""
        return self._decide

    @property
    def decide_pandas(self) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
        """The same for ``DataFrame.mapInPandas(fn, self.schema)``, for pipelines built on pandas UDFs.

        It reads the naive times ``mapInPandas`` hands over in the session time zone in force when it is made.
        """
        return _DecidePandas(self._decide, self._spark.conf.get("spark.sql.session.timeZone") or "UTC")

    def traces(self, frame: DataFrame) -> DataFrame:
        """Return ``frame``'s trace columns in :data:`TRACE_SCHEMA` order; absent optional ones as nulls.

        Raises:
            ValueError: naming the column and the fix, when a required column is missing or of another type.
        """
        from pyspark.sql import functions as F  # noqa: N812 - the name every Spark program uses
        from pyspark.sql.pandas.types import from_arrow_schema

        wanted = from_arrow_schema(_ARROW_INPUT)
        have = {field.name: field.dataType for field in frame.schema.fields}
        columns: list[Any] = []
        for field in wanted.fields:
            found = have.get(field.name)
            if found is None:
                if field.name in REQUIRED:
                    raise ValueError(f"the traces have no {field.name!r} column; rename yours to it (the columns "
                                     f"are {', '.join(TRACE_SCHEMA.names)}), or read the traces with "
                                     "mtotrust.replay.read_traces")
                columns.append(F.lit(None).cast(field.dataType).alias(field.name))
            elif found != field.dataType and not _same_array(found, field.dataType):
                raise ValueError(f"the traces' {field.name!r} column is {found.simpleString()}, not "
                                 f"{field.dataType.simpleString()}; cast it first (for a time written as text, "
                                 f"F.to_timestamp(column) in a session whose time zone is the text's)")
            else:  # an array whose elements cannot be null is the same column: the cast only says they may be
                columns.append(F.col(field.name).cast(field.dataType))
        return frame.select(*columns)

    def replay(self, frame: DataFrame) -> DataFrame:
        """Return ``frame``'s trace rows decided: a lazy ``mapInArrow`` DataFrame of :attr:`schema`."""
        return _results_as_json(self.traces(frame)).mapInArrow(self._decide, self.schema)

    def replay_pandas(self, frame: DataFrame) -> DataFrame:
        """Return the same rows as :meth:`replay`, decided through ``mapInPandas``.

        ``received`` goes to the workers as microseconds since the epoch, so no session time zone is involved.
        """
        from pyspark.sql import functions as F  # noqa: N812

        sent = _results_as_json(self.traces(frame)).withColumn("received", F.unix_micros("received"))
        return sent.mapInPandas(self.decide_pandas, self.schema)


def _same_array(found: Any, wanted: Any) -> bool:
    """Whether two Spark types are arrays of the same element type (whether elements may be null aside)."""
    from pyspark.sql.types import ArrayType

    return isinstance(found, ArrayType) and isinstance(wanted, ArrayType) and found.elementType == wanted.elementType


def _results_as_json(frame: DataFrame) -> DataFrame:
    """Return ``frame`` with ``authentication_results`` as JSON text, which Spark hands to Python fast."""
    from pyspark.sql import functions as F  # noqa: N812

    return frame.withColumn("authentication_results", F.to_json(F.col("authentication_results")))
