"""Shared test configuration: hypothesis profiles that never flake on a busy 2-core CI machine."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI: no deadline (a loaded machine is slow, not wrong) and derandomized, so a red run reproduces exactly.
settings.register_profile("ci", deadline=None, derandomize=True, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
