"""The benchmark chart: ``benchmarks.plot`` draws what a run measured, and only that."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from benchmarks import plot as bench_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def result(users: int, **us: float | None) -> dict[str, Any]:
    """Return one per-size result shaped like ``benchmarks.run.bench_size``'s; ``None`` marks a way not timed."""
    ways: dict[str, Any] = {
        key: {"label": key, "note": "not installed"} if value is None else {"label": key, "us": value, "agree": 10}
        for key, value in us.items()
    }
    return {"users": users, "seed": 7, "queries": 10, "ways": ways, "extra": {}}


RESULTS = [
    result(10_000, floor=0.05, baseline=0.3, uncached=1.5, cached=0.3, cedar=25.0, casbin=95.0),
    result(100_000, floor=0.3, baseline=0.9, uncached=1.6, cached=0.5, cedar=30.0, casbin=85.0),
    result(1_000_000, floor=0.5, baseline=1.1, uncached=1.4, cached=0.5, cedar=None, casbin=90.0),
]


def png_size(data: bytes) -> tuple[int, int]:
    """Return a PNG's width and height, checking its signature and the IHDR chunk's CRC."""
    assert PNG_SIGNATURE == data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (13, b"IHDR") == (length, kind)
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(data[12:29]) == crc
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class TestPoints:
    def test_a_way_not_timed_at_a_size_has_no_point_there(self) -> None:
        """Cedar skipped at 1M leaves Cedar's line with its two measured sizes."""
        assert [(10_000, 25.0), (100_000, 30.0)] == bench_plot.points(RESULTS, "cedar")

    def test_a_way_absent_from_every_result_has_no_points(self) -> None:
        """A way the run never recorded (an older results file) yields nothing rather than an error."""
        assert [] == bench_plot.points(RESULTS, "batch")

    def test_points_come_in_size_order(self) -> None:
        """Results listed largest first still give a line drawn from the smallest size up."""
        assert [(10_000, 0.3), (100_000, 0.5), (1_000_000, 0.5)] == bench_plot.points(RESULTS[::-1], "cached")


class TestPlot:
    def test_writes_a_png(self, tmp_path: Path) -> None:
        """The chart is a valid PNG of a readable size, written into a folder created for it."""
        out = tmp_path / "img" / "decisions.png"
        bench_plot.plot(RESULTS, out)
        width, height = png_size(out.read_bytes())
        assert width >= 600 and height >= 400

    def test_a_lone_size_with_missing_anchors_still_plots(self, tmp_path: Path) -> None:
        """A --quick run (one size) without cedarpy or casbin still gets a chart."""
        out = tmp_path / "quick.png"
        bench_plot.plot([result(1_000, baseline=0.4, uncached=1.5, cached=0.3, cedar=None, casbin=None)], out)
        png_size(out.read_bytes())

    def test_redrawing_a_saved_run_is_byte_stable(self, tmp_path: Path) -> None:
        """The entry point redraws a saved run's JSON; drawing twice gives the same bytes (no version stamp)."""
        saved = tmp_path / "results-x.json"
        saved.write_text(json.dumps({"python": "3.11", "git": "abc1234", "results": RESULTS}), encoding="utf-8")
        assert 0 == bench_plot.main([str(saved)])
        first = saved.with_suffix(".png").read_bytes()
        assert 0 == bench_plot.main([str(saved), str(tmp_path / "again.png")])
        assert first == (tmp_path / "again.png").read_bytes()
