"""mtotrust.replay.SparkReplay and ``mtotrust replay --spark``: PySpark in local mode, the same rows as locally.

One ``local[2]`` session for the module (starting the JVM takes seconds). Every test compares what Spark decided with
what :class:`~mtotrust.replay.SnapshotHistory` decides in this process for the same rows. Needs Java 17 or newer:
locally a missing Java skips, in CI it fails (``.ci/run`` installs ``openjdk-17-jre-headless``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from strategies import build, native, synced

from mtotrust import Policy, Snapshot
from mtotrust.replay import OUTPUT_SCHEMA, TRACE_SCHEMA, SnapshotHistory, SparkReplay, read_traces
from mtotrust.replay._spark import ARROW_OUTPUT, store_name, trace_batch

pytestmark = pytest.mark.spark

TRACES = Path(__file__).parent / "data" / "traces"
GOOD = [TRACES / name for name in ("graph_page.json", "graph_lines.jsonl", "v2_export.csv", "v2_export.json",
                                   "extended.csv")]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BASE = build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com"),
              synced("u3", "ana@fabrikam.com")], taken_at=T0)
S0 = BASE
S1 = BASE.with_delta([{"value": [{"id": "u2", "accountEnabled": False}]}], taken_at=T0 + dt.timedelta(days=1))
S2 = S1.with_delta([{"value": [{"id": "u3", "accountEnabled": False}]}], taken_at=T0 + dt.timedelta(days=2))
PEOPLE = ["megan@contoso.com", "cameron@fabrikam.com", "ana@fabrikam.com", "x@evil.example", "", "Megan@Contoso.com"]


def java() -> str | None:
    """Return the ``java`` Spark would start, or None."""
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java", path=str(Path(home) / "bin")) if home else shutil.which("java")


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """A local[2] session with this interpreter as its Python workers, loopback only, no UI."""
    if java() is None:
        if os.environ.get("CI"):
            pytest.fail("Java is not installed: .ci/run installs openjdk-17-jre-headless")
        pytest.skip("Java is not installed (install openjdk-17-jre-headless; .ci/run does)")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = (SparkSession.builder.master("local[2]").appName("mtotrust tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """Return the rows in one order (Spark keeps no row order across partitions), each a dict."""
    return sorted(table.cast(OUTPUT_SCHEMA).to_pylist(),
                  key=lambda r: (r["message_id"], r["recipient"] or "", r["received"], r["sender"] or ""))


def local(batches: list[pa.RecordBatch], snapshots: list[Snapshot], policy: Policy | None = None) -> pa.Table:
    """What SnapshotHistory decides for ``batches`` in this process."""
    history = SnapshotHistory(snapshots, policy or Policy.default())
    return pa.Table.from_batches([history.evaluate(b) for b in batches], schema=OUTPUT_SCHEMA)


def frame(spark: SparkSession, batches: list[pa.RecordBatch], tmp_path: Path, partitions: int = 3) -> DataFrame:
    """Return the rows as a DataFrame read from Parquet, in ``partitions`` partitions."""
    path = tmp_path / "traces.parquet"
    pq.write_table(pa.Table.from_batches(batches, schema=TRACE_SCHEMA), path)
    return spark.read.parquet(str(path)).repartition(partitions)


def collected(df: DataFrame, where: Path) -> pa.Table:
    """Collect a DataFrame of decided rows into Arrow, through Parquet in ``where`` (pyspark 3.5 and 4.x alike)."""
    path = where / "out.parquet"
    df.write.mode("overwrite").parquet(str(path))
    return ds.dataset(str(path), format="parquet").to_table()


def synthetic(rows: int, seed: int) -> list[pa.RecordBatch]:
    """Rows of random senders, recipients, times across the three snapshots, DMARC verdicts and headers."""
    rng = random.Random(seed)
    headers = [None, None, ["dmarc=pass header.from=fabrikam.com"], ["mx.contoso.com; dmarc=fail header.from=x"]]
    data = [{"message_id": f"<{i}@t>", "received": T0 + dt.timedelta(seconds=rng.randrange(-86_400, 4 * 86_400)),
             "sender": rng.choice([*PEOPLE, None]), "recipient": rng.choice([*PEOPLE, None]),
             "direction": rng.choice([None, "inbound", "outbound"]), "authentication_results": rng.choice(headers),
             "dmarc": rng.choice([None, "pass", "fail", "none"])} for i in range(rows)]
    return [pa.RecordBatch.from_pylist(data[i:i + 1000], schema=TRACE_SCHEMA) for i in range(0, rows, 1000)]


class TestSparkReplay:
    def test_real_traces_equal_the_local_history(self, spark: SparkSession, tmp_path: Path) -> None:
        """The fixture traces (every reader) decided on Spark are the rows SnapshotHistory decides here."""
        batches = read_traces(GOOD).batches
        early = Snapshot.sample().with_delta([], taken_at=dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC))
        snapshots = [early, Snapshot.sample()]
        got = collected(SparkReplay(spark, snapshots).replay(frame(spark, batches, tmp_path)), tmp_path)
        want = local(batches, snapshots)
        assert want.num_rows == got.num_rows > 0
        assert rows_of(want) == rows_of(got)

    @pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
    @pytest.mark.parametrize("way", ["arrow", "pandas"])
    def test_random_rows_across_three_snapshots(self, spark: SparkSession, tmp_path: Path,
                                                zone: str, way: str) -> None:
        """5,000 random rows: the snapshot in force, before the first, every auth source, in any session zone."""
        batches = synthetic(5_000, seed=len(zone) + len(way))
        snapshots = [S2, S0, S1]
        spark.conf.set("spark.sql.session.timeZone", zone)
        try:
            replay = SparkReplay(spark, snapshots, Policy.classic())
            df = frame(spark, batches, tmp_path)
            got = collected(replay.replay(df) if way == "arrow" else replay.replay_pandas(df), tmp_path)
        finally:
            spark.conf.set("spark.sql.session.timeZone", "UTC")
        want = rows_of(local(batches, snapshots, Policy.classic()))
        assert want == rows_of(got)
        assert {S0.id, S1.id, S2.id} == {r["snapshot_id"] for r in want}
        assert {True, False} == {r["before_first_snapshot"] for r in want}
        assert {"absent", "trace_dmarc", "authentication_results"} == {r["auth_source"] for r in want}

    @pytest.mark.parametrize("way", ["arrow", "pandas"])
    def test_the_functions_on_their_own(self, spark: SparkSession, tmp_path: Path, way: str) -> None:
        """decide_arrow / decide_pandas in the user's own mapInArrow / mapInPandas, arrays as arrays: the same rows."""
        batches = synthetic(2_000, seed=3)
        replay = SparkReplay(spark, [S0, S1, S2])
        df = frame(spark, batches, tmp_path)
        decided = (df.mapInArrow(replay.decide_arrow, replay.schema) if way == "arrow"
                   else df.mapInPandas(replay.decide_pandas, replay.schema))
        assert rows_of(local(batches, [S0, S1, S2])) == rows_of(collected(decided, tmp_path))

    def test_authentication_results_as_text_must_be_a_json_array(self) -> None:
        """The worker reads JSON text (what replay() sends) back to lists, and names a text that is not one."""
        batch = pa.RecordBatch.from_pylist([{"message_id": "<a@t>", "received": T0, "authentication_results": t}
                                            for t in ('["dmarc=pass", null]', None)],
                                           schema=pa.schema([("message_id", pa.string()),
                                                             ("received", pa.timestamp("us", tz="UTC")),
                                                             ("sender", pa.string()), ("recipient", pa.string()),
                                                             ("direction", pa.string()),
                                                             ("authentication_results", pa.string()),
                                                             ("dmarc", pa.string())]))
        got = trace_batch(batch)
        assert got.schema == TRACE_SCHEMA
        assert [["dmarc=pass", None], None] == got.column("authentication_results").to_pylist()
        for text in ('"dmarc=pass"', "[1]", "not json"):
            bad = batch.set_column(5, "authentication_results", pa.array([text, None]))
            with pytest.raises(ValueError, match="not a JSON array of strings"):
                trace_batch(bad)

    def test_the_output_is_output_schema_every_column_nullable(self, spark: SparkSession, tmp_path: Path) -> None:
        """Spark writes OUTPUT_SCHEMA's columns and types; a cast to OUTPUT_SCHEMA takes it back exactly."""
        got = collected(SparkReplay(spark, [S0]).replay(frame(spark, synthetic(10, 1), tmp_path, 1)), tmp_path)
        assert OUTPUT_SCHEMA.names == got.schema.names
        assert ARROW_OUTPUT.names == got.schema.names
        assert [f.type for f in OUTPUT_SCHEMA] == [f.type for f in got.cast(OUTPUT_SCHEMA).schema]

    def test_each_worker_loads_the_snapshots_once(self, spark: SparkSession, tmp_path: Path) -> None:
        """After two jobs of 8 tasks each, every Python worker that decided holds its history in the module."""
        replay = SparkReplay(spark, [S0, S1, S2])
        df = frame(spark, synthetic(4_000, 2), tmp_path, partitions=8)
        for _ in range(2):
            collected(replay.replay(df), tmp_path)
        key = (tuple(name for name, _ in replay.decide_arrow.stores),  # type: ignore[attr-defined]
               replay.policy.fingerprint)

        def report(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            from mtotrust.replay import _spark

            for _ in batches:
                history = _spark._HISTORIES.get(key)
                yield pa.RecordBatch.from_pylist([{"pid": os.getpid(), "history": id(history) if history else 0}])

        seen = spark.range(16, numPartitions=16).mapInArrow(report, "pid long, history long").collect()
        by_pid: dict[int, set[int]] = {}
        for r in seen:
            by_pid.setdefault(r["pid"], set()).add(r["history"])
        assert all(len(histories) == 1 for histories in by_pid.values()), by_pid  # one history a worker, kept
        assert any(r["history"] for r in seen)  # held by the module, not by a copy pickled with each task

    def test_pandas_in_a_zone_that_turns_back(self, spark: SparkSession, tmp_path: Path) -> None:
        """01:30 on 1 November 2026 happens twice in New York: replay_pandas sends instants and gets it right; a
        plain mapInPandas hands over the wall time, and decide_pandas says why it cannot read it."""
        batch = pa.RecordBatch.from_pylist([{"message_id": "<a@t>", "sender": "a@b.c", "recipient": "d@e.f",
                                             "received": dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)}],
                                           schema=TRACE_SCHEMA)
        df = frame(spark, [batch], tmp_path, 1)
        spark.conf.set("spark.sql.session.timeZone", "America/New_York")
        try:
            replay = SparkReplay(spark, [S0])
            want = rows_of(local([batch], [S0]))
            assert want == rows_of(collected(replay.replay_pandas(df), tmp_path))
            assert want == rows_of(collected(replay.replay(df), tmp_path))
            with pytest.raises(Exception, match="use a UTC session"):
                collected(df.mapInPandas(replay.decide_pandas, replay.schema), tmp_path)
        finally:
            spark.conf.set("spark.sql.session.timeZone", "UTC")

    def test_a_worker_keeps_the_last_two_histories(self, spark: SparkSession) -> None:
        """Three policies in turn: the oldest history is let go, the newest two kept (here, on the driver)."""
        from mtotrust.replay import _spark

        policies = [Policy.default(), Policy.classic(), Policy.from_data({"teams": {"presence": "internal"}})]
        decides = [SparkReplay(spark, [S0, S1], p).decide_arrow for p in policies]
        histories = [d.history() for d in decides]  # type: ignore[attr-defined]
        kept = list(_spark._HISTORIES.values())
        assert len(kept) == 2 and kept == histories[1:]
        assert decides[2].history() is histories[2]  # type: ignore[attr-defined]  # kept: not loaded again
        assert [s.id for s in histories[0].snapshots] == [S0.id, S1.id]

    def test_a_frame_with_the_required_columns_only(self, spark: SparkSession, tmp_path: Path) -> None:
        """direction, authentication_results and dmarc may be absent: they are nulls, decided as absent."""
        rows = [("<a@t>", T0 + dt.timedelta(hours=1), "megan@contoso.com", "cameron@fabrikam.com", "extra")]
        df = spark.createDataFrame(rows, "message_id string, received timestamp, sender string, recipient string, "
                                         "subject string")
        got = rows_of(collected(SparkReplay(spark, [S0]).replay(df), tmp_path))
        batch = pa.RecordBatch.from_pylist([dict(zip(TRACE_SCHEMA.names, [*rows[0][:4], None, None, None],
                                                     strict=True))], schema=TRACE_SCHEMA)
        assert rows_of(local([batch], [S0])) == got
        assert "absent" == got[0]["auth_source"]

    def test_an_array_whose_elements_cannot_be_null_is_taken(self, spark: SparkSession, tmp_path: Path) -> None:
        """array<string> with containsNull false (F.split, required Parquet lists) is the same column."""
        from pyspark.sql import functions as F  # noqa: N812

        df = spark.createDataFrame([("<a@t>", T0, "megan@contoso.com", "x@evil.example", "dmarc=pass")],
                                   "message_id string, received timestamp, sender string, recipient string, h string")
        df = df.withColumn("authentication_results", F.split("h", ";"))
        assert not df.schema["authentication_results"].dataType.containsNull  # type: ignore[attr-defined]
        got = rows_of(collected(SparkReplay(spark, [S0]).replay(df), tmp_path))
        assert [["dmarc=pass"]] == [r["authentication_results"] for r in got]
        assert "authentication_results" == got[0]["auth_source"]

    def test_a_received_without_a_zone_is_refused(self) -> None:
        """A naive received (Spark's TIMESTAMP_NTZ) given to the function directly is refused, not taken as UTC."""
        batch = pa.RecordBatch.from_pylist([{"message_id": "<a@t>", "received": dt.datetime(2026, 1, 1)}],
                                           schema=pa.schema([(f.name, pa.timestamp("us") if f.name == "received"
                                                              else f.type) for f in TRACE_SCHEMA]))
        with pytest.raises(ValueError, match="without a time zone"):
            trace_batch(batch)

    def test_the_shipped_stores_are_named_in_utc(self) -> None:
        """The same snapshot at the same instant written in two zones is one store name."""
        plus_two = dt.timezone(dt.timedelta(hours=2))
        a = S0.with_delta([], taken_at=dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))
        b = S0.with_delta([], taken_at=dt.datetime(2026, 1, 1, 14, tzinfo=plus_two))
        c = S0.with_delta([], taken_at=dt.datetime(2026, 1, 1, 12, tzinfo=plus_two))
        assert store_name(a) == store_name(b) != store_name(c)

    @pytest.mark.parametrize(("schema", "words"), [
        ("message_id string, received timestamp, sender string", ["'recipient'", "rename"]),
        ("message_id string, received string, sender string, recipient string", ["'received'", "string",
                                                                                  "to_timestamp"]),
        ("message_id string, received timestamp, sender string, recipient string, dmarc long", ["'dmarc'",
                                                                                                 "bigint"]),
    ])
    def test_a_frame_of_other_columns_is_refused_by_name(self, spark: SparkSession, schema: str,
                                                          words: list[str]) -> None:
        """A missing required column or one of another type is a ValueError naming it and the fix."""
        df = spark.createDataFrame([], schema)
        with pytest.raises(ValueError, match="column") as caught:
            SparkReplay(spark, [S0]).replay(df)
        assert all(w in str(caught.value) for w in words), str(caught.value)

    def test_bad_arguments(self, spark: SparkSession) -> None:
        """No snapshot, or a policy that is not one, is refused on the driver."""
        with pytest.raises(ValueError, match="at least one"):
            SparkReplay(spark, [])
        with pytest.raises(TypeError, match="Policy"):
            SparkReplay(spark, [S0], "default")  # type: ignore[arg-type]

    def test_a_session_without_a_spark_context_is_refused(self) -> None:
        """A Spark Connect session has no sparkContext to ship files with: said, with what to use instead."""

        class Connect:
            @property
            def sparkContext(self) -> None:
                raise NotImplementedError("[JVM_ATTRIBUTE_NOT_SUPPORTED] Attribute `sparkContext` is not supported")

        with pytest.raises(ValueError, match="classic Spark session") as caught:
            SparkReplay(Connect(), [S0])  # type: ignore[arg-type]
        assert "Dedicated access mode" in str(caught.value)


def run_cli(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``mtotrust replay`` as a program."""
    return subprocess.run([sys.executable, "-m", "mtotrust", "replay", *map(str, argv)], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


class TestCommand:
    def test_spark_writes_the_rows_the_local_run_writes(self, spark: SparkSession, tmp_path: Path) -> None:
        """--spark local[2]: a folder of the same rows, the same summary; a second run replaces the folder whole."""
        store = tmp_path / "early.sqlite"
        Snapshot.sample().with_delta([], taken_at=dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)).save(store)
        args: list[str | Path] = ["--traces", *GOOD, "--snapshot", store, "--json"]
        alone = run_cli(*args, "--out", tmp_path / "local.parquet")
        assert alone.returncode == 0, alone.stderr
        (tmp_path / "spark.parquet").mkdir()  # an earlier run's output, as Spark leaves it
        (tmp_path / "spark.parquet" / "_SUCCESS").write_bytes(b"")
        (tmp_path / "spark.parquet" / "part-00000-earlier.snappy.parquet").write_bytes(b"from an earlier run")
        on_spark = run_cli(*args, "--out", tmp_path / "spark.parquet", "--spark", "local[2]",
                           "--spark-conf", "spark.sql.shuffle.partitions=2")
        assert on_spark.returncode == 0, on_spark.stderr
        assert rows_of(pq.read_table(tmp_path / "local.parquet")) == rows_of(
            ds.dataset(str(tmp_path / "spark.parquet"), format="parquet").to_table())
        assert not (tmp_path / "spark.parquet" / "part-00000-earlier.snappy.parquet").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["early.sqlite", "local.parquet", "spark.parquet"]
        summary = {k: v for k, v in json.loads(on_spark.stdout).items() if k not in ("out", "spark")}
        assert summary == {k: v for k, v in json.loads(alone.stdout).items() if k not in ("out", "spark")}
        assert "local[2]" == json.loads(on_spark.stdout)["spark"]

    def test_without_java_it_says_so_in_one_line(self, tmp_path: Path) -> None:
        """No Java on PATH: exit 2 naming the master and what to install; no --out is left behind."""
        env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}  # Spark starts $JAVA_HOME/bin/java
        got = run_cli("--traces", GOOD[0], "--snapshot", Path(__file__).parents[1] / "mtotrust" / "sample",
                      "--out", tmp_path / "out.parquet", "--spark", "local[1]", env=env)
        assert got.returncode == 2
        last = got.stderr.strip().splitlines()[-1]
        assert last.startswith("mtotrust replay: --spark local[1]: Spark did not start") and "Java" in last, last
        assert not list(tmp_path.iterdir())

    def test_a_folder_spark_did_not_write_is_never_replaced(self, tmp_path: Path) -> None:
        """--out naming a folder of other files (the current one, the traces' own) is refused; nothing is touched."""
        (tmp_path / "keep.txt").write_text("mine")
        got = run_cli("--traces", GOOD[0], "--snapshot", Path(__file__).parents[1] / "mtotrust" / "sample",
                      "--out", tmp_path, "--spark", "local[1]")
        assert (2, 1) == (got.returncode, len(got.stderr.strip().splitlines())), got.stderr
        assert "Spark did not write" in got.stderr
        assert ["keep.txt"] == [p.name for p in tmp_path.iterdir()]

    @pytest.mark.parametrize(("argv", "says"), [
        (["--spark-conf", "spark.executor.memory=1g"], "--spark-conf is for --spark"),
        (["--spark", "local[1]", "--spark-conf", "novalue"], "'novalue' is not KEY=VALUE"),
        (["--spark", "spark://host:7077"], "runs local masters only"),
        (["--spark", "yarn"], "SparkReplay in a Spark job"),
        (["--spark", "local[0]"], "runs local masters only"),
        (["--spark", "local[\u0662]"], "runs local masters only"),  # an Arabic-Indic two is not a core count
        (["--spark", "local[2]", "--spark-conf", " =x"], "is not KEY=VALUE"),
    ])
    def test_bad_spark_options(self, tmp_path: Path, argv: list[str], says: str) -> None:
        """Spark options that cannot work are exit 2 with one line, before Spark starts."""
        got = run_cli("--traces", GOOD[0], "--snapshot", Path(__file__).parents[1] / "mtotrust" / "sample",
                      "--out", tmp_path / "out.parquet", *argv)
        assert (2, 1) == (got.returncode, len(got.stderr.strip().splitlines())), got.stderr
        assert says in got.stderr
