"""The service's Prometheus metrics: requests by endpoint and status, a latency histogram, and the engine's counts.

Observed on the event loop's thread only (one thread writes), so the counters need no lock. The text follows the
Prometheus exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

from mtotrust._engine import TrustEngine

__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics"]

BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds (seconds) of the request latency histogram's buckets; ``+Inf`` follows."""

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative (summed when rendered)
        self.count = 0
        self.sum = 0.0


class Metrics:
    """What ``GET /metrics`` renders: the requests observed here, and the engine's decisions and cache counts."""

    def __init__(self) -> None:
        self._requests: Counter[tuple[str, int]] = Counter()
        self._latency: dict[str, _Histogram] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its time from first byte in to last byte out."""
        self._requests[endpoint, status] += 1
        histogram = self._latency.get(endpoint)
        if histogram is None:
            histogram = self._latency[endpoint] = _Histogram()
        histogram.buckets[bisect_left(BUCKETS, seconds)] += 1
        histogram.count += 1
        histogram.sum += seconds

    def render(self, engine: TrustEngine) -> bytes:
        """Return the exposition text."""
        stats = engine.stats()
        lines = ["# HELP mtotrust_decisions_total Decisions made, by app and outcome.",
                 "# TYPE mtotrust_decisions_total counter"]
        for key, count in stats.decisions.items():
            app, _, outcome = key.partition(":")
            lines.append(f'mtotrust_decisions_total{{app="{_label(app)}",outcome="{_label(outcome)}"}} {count}')
        lines += ["# HELP mtotrust_cache_hits_total Resolutions answered from the decision cache.",
                  "# TYPE mtotrust_cache_hits_total counter", f"mtotrust_cache_hits_total {stats.cache_hits}",
                  "# HELP mtotrust_cache_misses_total Resolutions the decision cache could not answer.",
                  "# TYPE mtotrust_cache_misses_total counter", f"mtotrust_cache_misses_total {stats.cache_misses}",
                  "# HELP mtotrust_requests_total HTTP requests answered, by endpoint and status.",
                  "# TYPE mtotrust_requests_total counter"]
        lines += [f'mtotrust_requests_total{{endpoint="{_label(endpoint)}",status="{status}"}} {count}'
                  for (endpoint, status), count in sorted(self._requests.items())]
        lines += ["# HELP mtotrust_request_duration_seconds Time to answer a request, by endpoint.",
                  "# TYPE mtotrust_request_duration_seconds histogram"]
        for endpoint, histogram in sorted(self._latency.items()):
            name = _label(endpoint)
            total = 0
            for bound, count in zip((*(repr(b) for b in BUCKETS), "+Inf"), histogram.buckets, strict=True):
                total += count
                lines.append(f'mtotrust_request_duration_seconds_bucket{{endpoint="{name}",le="{bound}"}} {total}')
            lines += [f'mtotrust_request_duration_seconds_sum{{endpoint="{name}"}} {histogram.sum!r}',
                      f'mtotrust_request_duration_seconds_count{{endpoint="{name}"}} {histogram.count}']
        lines += ["# HELP mtotrust_snapshot_age_seconds Age of the snapshot decisions are made from.",
                  "# TYPE mtotrust_snapshot_age_seconds gauge",
                  f"mtotrust_snapshot_age_seconds {stats.snapshot_age_seconds!r}",
                  "# HELP mtotrust_snapshot_info The snapshot and policy decisions are made from.",
                  "# TYPE mtotrust_snapshot_info gauge",
                  f'mtotrust_snapshot_info{{snapshot_id="{_label(stats.snapshot_id)}",'
                  f'policy_fingerprint="{_label(stats.policy_fingerprint)}"}} 1']
        return ("\n".join(lines) + "\n").encode()


def _label(value: str) -> str:
    """Return a label value escaped as the exposition format requires (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
