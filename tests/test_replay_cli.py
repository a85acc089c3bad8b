"""``mtotrust replay``: the fixture traces decided into Parquet, the summary, bad rows and bad usage."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mtotrust
from mtotrust import Policy, Snapshot
from mtotrust.cli import main
from mtotrust.cli.replay import STALE, UNAUTHENTICATED
from mtotrust.replay import OUTPUT_SCHEMA, SnapshotHistory, read_traces

TRACES = Path(__file__).parent / "data" / "traces"
GOOD = [TRACES / name for name in ("graph_page.json", "graph_lines.jsonl", "v2_export.csv", "v2_export.json",
                                   "extended.csv", "empty.csv")]
SAMPLE = Path(mtotrust.__file__).parent / "sample"
# Inside the fixtures' day (2026-11-30, 08:00 to 13:05 UTC): rows before it are flagged before_first_snapshot.
EARLY = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def early_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample saved as a store taken at 09:00 on the fixtures' day (the sample folder is newer)."""
    path = tmp_path_factory.mktemp("replay") / "early.sqlite"
    Snapshot.sample().with_delta([], taken_at=EARLY).save(path)
    return path


def replay(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run ``mtotrust replay`` in-process; return its exit code, stdout and stderr."""
    code = main(["replay", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected(paths: list[Path], snapshots: list[Snapshot]) -> pa.Table:
    """What SnapshotHistory decides for the rows read from ``paths``."""
    history = SnapshotHistory(snapshots, Policy.default())
    return pa.Table.from_batches([history.evaluate(b) for b in read_traces(paths).batches], schema=OUTPUT_SCHEMA)


def test_parquet_equals_the_history_row_for_row(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                early_store: Path) -> None:
    out = tmp_path / "decided.parquet"
    code, stdout, _ = replay(capsys, "--traces", *GOOD, "--snapshot", early_store, SAMPLE, "--out", out)
    assert code == 0
    got = pq.read_table(out)
    assert got.schema.equals(OUTPUT_SCHEMA)
    want = expected(GOOD, [Snapshot.load(early_store), Snapshot.load(SAMPLE)])
    assert want.num_rows > 0
    assert got.to_pylist() == want.to_pylist()
    assert [p.name for p in tmp_path.iterdir()] == ["decided.parquet"]  # no temporary file left
    assert f"replayed {want.num_rows} rows into {out}" in stdout


def test_json_summary_counts(capsys: pytest.CaptureFixture[str], tmp_path: Path, early_store: Path) -> None:
    out = tmp_path / "decided.parquet"
    code, stdout, _ = replay(capsys, "--traces", *GOOD, "--snapshot", SAMPLE, early_store, "--out", out, "--json")
    assert code == 0
    summary = json.loads(stdout)
    table = pq.read_table(out).to_pylist()
    tagged = sum(r["tag_external"] for r in table)
    inside = sum(r["recipient_inside"] for r in table)
    absent = sum(r["auth_source"] == "absent" for r in table)
    assert list(summary) == ["out", "spark", "rows", "bad_rows", "bad_rows_first", "formats", "snapshots",
                             "policy_fingerprint", "mail", "recipients", "authentication", "before_first_snapshot",
                             "notes"]
    assert summary["rows"] == len(table)
    assert summary["bad_rows"] == len(read_traces(GOOD).bad) > 0
    assert summary["mail"] == {"tagged": tagged, "untagged": len(table) - tagged}
    assert summary["recipients"] == {"inside": inside, "outside": len(table) - inside}
    assert summary["authentication"] == {
        "from_trace": len(table) - absent, "none": absent,
        "by_source": {"authentication_results": 0, "trace_dmarc": len(table) - absent, "absent": absent}}
    assert summary["authentication"]["from_trace"] > 0  # the extended trace's S:DMARC verdicts
    before = sum(r["before_first_snapshot"] for r in table)
    assert summary["before_first_snapshot"] == before
    assert 0 < before < len(table)
    assert summary["snapshots"][0]["taken_at"] == EARLY.isoformat()  # oldest first
    assert summary["formats"][str(TRACES / "extended.csv")] == "extended_csv"
    assert summary["notes"] == []
    assert summary["spark"] is None  # decided in this process


def test_no_authentication_is_said_plainly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "decided.parquet"
    code, stdout, _ = replay(capsys, "--traces", TRACES / "graph_page.json", "--snapshot", SAMPLE, "--out", out)
    assert code == 0
    assert f"note: {UNAUTHENTICATED}" in stdout.splitlines()
    code, stdout, _ = replay(capsys, "--traces", TRACES / "graph_page.json", "--snapshot", SAMPLE, "--out", out,
                             "--json")
    assert json.loads(stdout)["notes"] == [UNAUTHENTICATED]
    assert all(r["auth_source"] == "absent" for r in pq.read_table(out).to_pylist())


def test_a_max_age_stale_now_is_said(capsys: pytest.CaptureFixture[str], tmp_path: Path, early_store: Path) -> None:
    """snapshot.max_age is judged now: the summary says the old snapshot decided its rows as stale, and they are."""
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\n[snapshot]\nmax_age = "1h"\n')
    out = tmp_path / "decided.parquet"
    code, stdout, _ = replay(capsys, "--traces", *GOOD, "--snapshot", early_store, "--policy", policy, "--out", out,
                             "--json")
    assert code == 0
    assert STALE.format(count=1) in json.loads(stdout)["notes"]
    reasons = pq.read_table(out).column("reasons").to_pylist()
    assert any("snapshot_stale" in r for r in reasons)  # those the cap lowered (external ones are below it)


def test_bad_rows_reported_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    paths = [TRACES / "graph_page.json", TRACES / "graph_lines.jsonl"]
    bad = read_traces(paths).bad
    code, stdout, stderr = replay(capsys, "--traces", *paths, "--snapshot", SAMPLE, "--out", tmp_path / "x.parquet")
    assert code == 0
    lines = stderr.splitlines()
    assert lines[0] == f"mtotrust replay: {len(bad)} bad trace rows (not decided, not in the output):"
    assert lines[1:6] == [f"  {b.path}:{b.line}: {b.reason}" for b in bad[:5]]
    assert lines[6:] == ([f"  ... and {len(bad) - 5} more"] if len(bad) > 5 else [])
    assert f"bad rows: {len(bad)} (listed on stderr; not in the output)" in stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--traces", str(TRACES / "missing.csv")], "missing.csv: no such file"),
    (["--traces", str(TRACES / "unknown.csv")], "unknown.csv"),
    (["--traces", str(TRACES / "v2_export.csv"), "--out-folder"], "is a folder"),
    (["--traces", str(TRACES / "v2_export.csv"), "--out-missing"], "cannot write --out"),
    (["--traces", str(TRACES / "v2_export.csv"), "--snapshot-missing"], "mtotrust: error:"),
])
def test_bad_usage_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str],
                                         says: str) -> None:
    out, snapshot = tmp_path / "x.parquet", SAMPLE
    if "--out-folder" in args:
        out = tmp_path
    if "--out-missing" in args:
        out = tmp_path / "no" / "x.parquet"
    if "--snapshot-missing" in args:
        snapshot = tmp_path / "none.sqlite"
    traces = [a for a in args if not a.startswith("--")]
    code, stdout, stderr = replay(capsys, "--traces", *traces, "--snapshot", snapshot, "--out", out)
    assert code == 2
    assert stdout == ""
    assert len(stderr.splitlines()) == 1
    assert says in stderr
    assert not (tmp_path / "x.parquet").exists()


def test_no_snapshot_is_bad_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", "--traces", str(TRACES / "v2_export.csv"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--snapshot" in capsys.readouterr().err


def test_as_a_program(tmp_path: Path, early_store: Path) -> None:
    out = tmp_path / "decided.parquet"
    result = subprocess.run([sys.executable, "-m", "mtotrust", "replay", "--traces", *map(str, GOOD), "--snapshot",
                             str(early_store), str(SAMPLE), "--out", str(out), "--json"],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == pq.read_table(out).num_rows
    assert "bad trace rows" in result.stderr
    assert "\r" not in result.stderr  # no progress bar: stderr is no terminal


def test_a_policy_of_another_fingerprint_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, stdout, stderr = replay(capsys, "--traces", TRACES / "v2_export.csv", "--snapshot", SAMPLE, "--out",
                                  tmp_path / "x.parquet", "--policy-fingerprint", "0000000000000000")
    assert (code, stdout, len(stderr.splitlines())) == (2, "", 1)
    assert list(tmp_path.iterdir()) == []
