"""Helpers for testing code and policies that use mtotrust: strategies, a snapshot builder, assertions.

Modelled on :mod:`structlog.testing`. Needs the ``testing`` extra (``pip install 'mtotrust[testing]'``), because
:mod:`mtotrust.testing.strategies` is built on hypothesis; ``import mtotrust`` never imports this package.

- :class:`SnapshotBuilder` writes a directory in a few lines, as real Graph JSON.
- :func:`assert_trust`, :func:`assert_tagged`, :func:`assert_rights`, :func:`assert_allowed`,
  :func:`assert_inside` fail with the engine's explanation.
- :mod:`mtotrust.testing.strategies` generates addresses, Graph users, MTO tenants, snapshots, policies and
  ``Authentication-Results`` headers.
- :mod:`mtotrust.testing.invariants` is the invariant catalogue and the exhaustive verifier behind
  ``mtotrust lint``; :func:`assert_policy_sound` runs it in a test.

The pytest fixtures ``mto_snapshot``, ``mto_policy`` and ``trust_engine`` come from the plugin
:mod:`mtotrust.pytest_plugin`, loaded automatically. See ``docs/testing.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from mtotrust._builder import SnapshotBuilder
from mtotrust.testing import invariants, strategies
from mtotrust.testing.assertions import (
    assert_allowed,
    assert_inside,
    assert_rights,
    assert_tagged,
    assert_trust,
)
from mtotrust.testing.invariants import assert_policy_sound

__all__ = [
    "SnapshotBuilder",
    "assert_allowed",
    "assert_inside",
    "assert_policy_sound",
    "assert_rights",
    "assert_tagged",
    "assert_trust",
    "invariants",
    "strategies",
]
