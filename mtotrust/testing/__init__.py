"""Helpers for testing code and policies that use mtotrust: strategies, a snapshot builder, assertions.

Modelled on :mod:`structlog.testing`. :mod:`mtotrust.testing.strategies` is built on hypothesis and needs the
``testing`` extra (``pip install 'mtotrust[testing]'``); it is imported when first used, so the rest of this
package (the builder, the assertions, :func:`invariant` for ``mtotrust lint --invariants``) works on a plain
install. ``import mtotrust`` never imports this package.

- :class:`SnapshotBuilder` writes a directory in a few lines, as real Graph JSON.
- :func:`assert_trust`, :func:`assert_tagged`, :func:`assert_rights`, :func:`assert_allowed`,
  :func:`assert_inside` fail with the engine's explanation.
- :mod:`mtotrust.testing.strategies` generates addresses, Graph users, MTO tenants, snapshots, policies and
  ``Authentication-Results`` headers.
- :mod:`mtotrust.testing.invariants` is the invariant catalogue and the exhaustive verifier behind
  ``mtotrust lint``; :func:`assert_policy_sound` runs it in a test; :func:`invariant` makes a function of a
  :class:`Point` and a decision one of your own.

The pytest fixtures ``mto_snapshot``, ``mto_policy`` and ``trust_engine`` come from the plugin
:mod:`mtotrust.pytest_plugin`, loaded automatically. See ``docs/testing.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mtotrust._builder import SnapshotBuilder
from mtotrust._verify.user import Point, UserInvariant, invariant
from mtotrust.testing import invariants
from mtotrust.testing.assertions import (
    assert_allowed,
    assert_inside,
    assert_rights,
    assert_tagged,
    assert_trust,
)
from mtotrust.testing.invariants import assert_policy_sound

if TYPE_CHECKING:
    from mtotrust.testing import strategies

__all__ = [
    "Point",
    "SnapshotBuilder",
    "UserInvariant",
    "assert_allowed",
    "assert_inside",
    "assert_policy_sound",
    "assert_rights",
    "assert_tagged",
    "assert_trust",
    "invariant",
    "invariants",
    "strategies",
]


def __getattr__(name: str) -> Any:
    """Import :mod:`mtotrust.testing.strategies` (hypothesis) when it is first used."""
    if name == "strategies":
        import importlib

        return importlib.import_module("mtotrust.testing.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
