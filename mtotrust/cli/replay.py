"""``mtotrust replay``: message traces -> Parquet rows, each decided by the snapshot in force (``replay`` extra).

Locally the rows are decided in this process and ``--out`` is one Parquet file; with ``--spark MASTER`` the traces
are read here into a temporary Parquet file, decided by a ``mapInArrow`` job (:class:`mtotrust.replay.SparkReplay`)
and ``--out`` is the folder of Parquet part files Spark writes. Either way ``--out`` appears whole or not at all.

Exit codes: 0 replayed (bad trace rows are reported on stderr, never fatal); 2 bad usage or input (a missing or
unreadable trace file, a file of no known trace format, a snapshot or policy that cannot be loaded, an ``--out``
that cannot be written, a Spark that does not start); 3 internal error.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mtotrust.cli._common import (
    EXIT_OK,
    UsageError,
    atomic_file,
    load_policy,
    load_snapshot,
    output,
    output_json,
    progress,
    require_extra,
)

if TYPE_CHECKING:
    import argparse
    from types import ModuleType

    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot
    from mtotrust.replay import BadRow, TraceRead

__all__ = ["run"]

_BAD_SHOWN = 5  # bad rows listed on stderr (all are counted)
_BATCH_ROWS = 65_536  # rows per Arrow batch handed to the Spark workers, as read_traces makes them
_LOCAL_MASTER = re.compile(r"local(\[(\*|[1-9][0-9]*)(,[0-9]+)?\])?")  # local, local[2], local[*], local[2,3]
_SPARK_OUTPUT = re.compile(r"(_SUCCESS|part-.*|\..*\.crc|_.*)")  # the files Spark writes into an output folder

UNAUTHENTICATED = ("no row carried authentication (message traces have no Authentication-Results, and no DMARC "
                   "verdict was in the trace), and this policy requires authentication, so it tags every message "
                   "it would otherwise trust: the mail figures show the policy's treatment of unauthenticated mail, "
                   "not what Exchange saw")
"""The note printed when no decided row had authentication and the policy requires it."""

STALE = ("this policy sets snapshot.max_age, which the engine judges against the clock now, not at each message's "
         "time: {count} of the snapshots are older than that now, so the rows they decided were decided as stale "
         "(lower trust, reason snapshot_stale). Replay with a policy without max_age for the treatment the "
         "directory of the time would have given")
"""The note printed when the policy's ``snapshot.max_age`` makes snapshots of the history stale now."""


def run(args: argparse.Namespace) -> int:
    """Replay the traces, write the decided rows to ``--out`` and print the summary (``--json``: one object)."""
    # The extra's modules come through require_extra: the CLI imports no third-party package itself.
    pq = require_extra("replay", "pyarrow.parquet")
    pc = require_extra("replay", "pyarrow.compute")

    from mtotrust.replay import OUTPUT_SCHEMA, SnapshotHistory

    for path in args.traces:
        if not Path(path).is_file():
            raise UsageError(f"mtotrust replay: --traces {path}: no such file")
    out = Path(args.out)
    if out.is_dir() and not args.spark:
        raise UsageError(f"mtotrust replay: --out {out} is a folder; give a file name, such as "
                         f"{out / 'replay.parquet'}")
    spark_conf = [_setting(item) for item in args.spark_conf]
    if spark_conf and not args.spark:
        raise UsageError("mtotrust replay: --spark-conf is for --spark; add --spark MASTER or drop it")
    if args.spark and not _LOCAL_MASTER.fullmatch(args.spark):
        raise UsageError(f"mtotrust replay: --spark {args.spark}: the command runs local masters only (local, "
                         "local[N], local[*]): its trace and output files are on this machine. On a cluster, run "
                         "mtotrust.replay.SparkReplay in a Spark job (docs/replay.md)")
    policy = load_policy(args.policy, args.policy_fingerprint)
    snapshots = [load_snapshot(path) for path in args.snapshot]
    counts = _Counts(pc)
    if args.spark:
        with _atomic_folder(out) as temp:
            read = _read(args.traces)
            _on_spark(args.spark, spark_conf, read, snapshots, policy, temp)
            written = require_extra("replay", "pyarrow.dataset").dataset(str(temp), format="parquet")
            for decided in written.to_batches(columns=_Counts.COLUMNS):
                counts.add(decided)
    else:
        history = SnapshotHistory(snapshots, policy)
        with atomic_file(args.out, "--out") as temp:  # created first: an --out that cannot be written is said now
            read = _read(args.traces)
            with progress("deciding") as bar, pq.ParquetWriter(temp, OUTPUT_SCHEMA) as writer:
                for batch in read.batches:
                    decided = history.evaluate(batch)
                    writer.write_batch(decided)
                    counts.add(decided)
                    if bar is not None:
                        bar(counts.rows, read.rows, "trace rows")
    summary = _summary(args, read, sorted(snapshots, key=lambda s: s.taken_at), policy, counts)
    if args.json:
        output_json(summary)
    else:
        _print(summary)
    return EXIT_OK


def _read(paths: list[str]) -> TraceRead:
    """Read the trace files and say on stderr which rows were bad."""
    from mtotrust.replay import read_traces

    try:
        read = read_traces(paths)
    except (ValueError, OSError) as exc:  # a file of no known format, or unreadable
        raise UsageError(f"mtotrust replay: {exc}") from None
    _report_bad(read.bad)
    return read


def _setting(item: str) -> tuple[str, str]:
    """Return a ``--spark-conf KEY=VALUE`` as its key and value."""
    key, equals, value = item.partition("=")
    if not equals or not key.strip():
        raise UsageError(f"mtotrust replay: --spark-conf {item!r} is not KEY=VALUE (for example "
                         "spark.driver.memory=8g)")
    return key.strip(), value


def _on_spark(master: str, conf: list[tuple[str, str]], read: TraceRead, snapshots: list[Snapshot],
              policy: Policy, out: Path) -> None:
    """Decide the rows read on a Spark session of ``master`` and write them to the folder ``out``."""
    pq = require_extra("replay", "pyarrow.parquet")
    sql = require_extra("spark", "pyspark.sql")
    from mtotrust.replay import TRACE_SCHEMA, SparkReplay

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers are this interpreter
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # on this machine only
    builder = (sql.SparkSession.builder.master(master).appName("mtotrust replay")
               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(_BATCH_ROWS)))
    for key, value in conf:
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - any failure to start is the user's setup: say it in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"mtotrust replay: --spark {master}: Spark did not start ({first}); check the master URL "
                         "and that Java 17 or newer is installed (Debian: openjdk-17-jre-headless)") from None
    try:
        spark.sparkContext.setLogLevel("ERROR")
        with tempfile.TemporaryDirectory(prefix="mtotrust-replay-") as folder:
            rows = Path(folder) / "traces.parquet"
            with pq.ParquetWriter(rows, TRACE_SCHEMA) as writer:  # one row group a batch: Spark splits by them
                for batch in read.batches:
                    writer.write_batch(batch)
            replay = SparkReplay(spark, snapshots, policy)
            replay.replay(spark.read.parquet(str(rows))).write.parquet(str(out))
    finally:
        spark.stop()


@contextlib.contextmanager
def _atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a path beside ``out`` for Spark to write a folder to; on success it becomes ``out``.

    An ``out`` already there may only be a file (a local replay's) or a folder Spark wrote (``_SUCCESS`` and part
    files); anything else is refused before any work. It is moved aside, the new folder renamed in, and only then
    the old removed; if the second rename fails the old one is put back. On any error ``out`` is unchanged.
    """
    target = Path(os.path.realpath(out))
    where = f"mtotrust replay: cannot write --out {str(out)!r}"
    if not target.parent.is_dir():
        raise UsageError(f"{where}: no folder {str(target.parent)!r}")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"{where}: its folder is not writable")
    if target.is_dir() and not _spark_output(target):
        raise UsageError(f"{where}: it is a folder that Spark did not write (no _SUCCESS, or other files in it); "
                         f"name a new folder, such as {str(target / 'replay.parquet')!r}")
    token = secrets.token_hex(4)
    temp, old = (target.with_name(f".{target.name}.{token}.{end}") for end in ("tmp", "old"))
    try:
        yield temp
        moved = target.exists() or target.is_symlink()
        if moved:
            target.rename(old)
        try:
            temp.rename(target)
        except OSError:
            if moved:
                old.rename(target)
            raise
    finally:
        for leftover in (temp, old):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists() or leftover.is_symlink():
                leftover.unlink()


def _spark_output(folder: Path) -> bool:
    """Whether ``folder`` holds only what a Spark Parquet write leaves: ``_SUCCESS``, part files, checksums."""
    names = [entry.name for entry in folder.iterdir()]
    return "_SUCCESS" in names and all(_SPARK_OUTPUT.fullmatch(name) for name in names)


def _report_bad(bad: list[BadRow]) -> None:
    """Say on stderr how many trace rows were bad, and the first few as ``path:line: reason``."""
    if not bad:
        return
    print(f"mtotrust replay: {len(bad)} bad trace rows (not decided, not in the output):", file=sys.stderr)
    for row in bad[:_BAD_SHOWN]:
        print(f"  {row.path}:{row.line}: {row.reason}", file=sys.stderr)
    if len(bad) > _BAD_SHOWN:
        print(f"  ... and {len(bad) - _BAD_SHOWN} more", file=sys.stderr)


class _Counts:
    """The summary's counts, added up batch by batch from the decided rows."""

    COLUMNS: ClassVar[list[str]] = ["tag_external", "recipient_inside", "before_first_snapshot", "auth_source"]
    """The decided columns the counts read."""

    def __init__(self, compute: ModuleType) -> None:
        self._pc = compute
        self.rows = 0
        self.tagged = 0
        self.inside = 0
        self.before_first = 0
        self.auth = {"authentication_results": 0, "trace_dmarc": 0, "absent": 0}

    def add(self, decided: Any) -> None:
        """Count one decided ``OUTPUT_SCHEMA`` record batch."""
        pc = self._pc

        def true(column: str) -> int:
            found: int | None = pc.sum(decided.column(column)).as_py()
            return found or 0

        self.rows += decided.num_rows
        self.tagged += true("tag_external")
        self.inside += true("recipient_inside")
        self.before_first += true("before_first_snapshot")
        for item in pc.value_counts(decided.column("auth_source")).to_pylist():
            self.auth[item["values"]] += item["counts"]


def _summary(args: argparse.Namespace, read: TraceRead, snapshots: list[Snapshot], policy: Policy,
             counts: _Counts) -> dict[str, Any]:
    """Return the summary as one JSON-ready object, with the same keys every run."""
    from_trace = counts.auth["authentication_results"] + counts.auth["trace_dmarc"]
    notes = []
    if counts.rows and not from_trace and policy.mail.require_authentication:
        notes.append(UNAUTHENTICATED)
    stale = sum(policy.is_stale(s.taken_at) for s in snapshots)
    if stale:
        notes.append(STALE.format(count=stale))
    return {
        "out": str(args.out),
        "spark": args.spark,
        "rows": counts.rows,
        "bad_rows": len(read.bad),
        "bad_rows_first": [{"path": b.path, "line": b.line, "reason": b.reason} for b in read.bad[:_BAD_SHOWN]],
        "formats": read.formats,
        "snapshots": [{"snapshot_id": s.id, "taken_at": s.taken_at.isoformat()} for s in snapshots],
        "policy_fingerprint": policy.fingerprint,
        "mail": {"tagged": counts.tagged, "untagged": counts.rows - counts.tagged},
        "recipients": {"inside": counts.inside, "outside": counts.rows - counts.inside},
        "authentication": {"from_trace": from_trace, "none": counts.auth["absent"], "by_source": counts.auth},
        "before_first_snapshot": counts.before_first,
        "notes": notes,
    }


def _print(s: dict[str, Any]) -> None:
    """Print the summary as text."""
    files = ", ".join(f"{path} ({fmt})" for path, fmt in s["formats"].items())
    where = f" on Spark ({s['spark']})" if s["spark"] else ""
    output(f"replayed {s['rows']} rows into {s['out']}{where} from {files}")
    output(f"bad rows: {s['bad_rows']}" + (" (listed on stderr; not in the output)" if s["bad_rows"] else ""))
    snapshots = ", ".join(f"{x['snapshot_id']} (taken {x['taken_at']})" for x in s["snapshots"])
    output(f"snapshots: {snapshots}; policy {s['policy_fingerprint']}")
    output(f"mail: {s['mail']['tagged']} tagged external, {s['mail']['untagged']} untagged")
    output(f"recipients: {s['recipients']['inside']} inside the organization, {s['recipients']['outside']} outside")
    auth = s["authentication"]
    output(f"authentication: {auth['from_trace']} rows from the trace ({auth['by_source']['trace_dmarc']} its DMARC "
           f"verdict, {auth['by_source']['authentication_results']} Authentication-Results), {auth['none']} none")
    output(f"before the first snapshot: {s['before_first_snapshot']} rows (decided against the oldest, flagged)")
    for note in s["notes"]:
        output(f"note: {note}")
