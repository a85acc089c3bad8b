"""Exhaustive policy verification: the attribute space, a reference evaluator, the invariant catalogue, ``verify``.

The attributes that decide trust are finite: whether an object carries the address (none, one, two), how it
is external, its ``userType`` and ``accountEnabled``, the home tenant's MTO state, the partner flag, the tenant
id the caller gives, the mail authentication result, the app and its action or label. :func:`enumerate_space`
builds **one** snapshot (real Graph JSON, through :class:`~mtotrust._builder.SnapshotBuilder`) holding one user
per combination, and :func:`verify` evaluates the real :class:`~mtotrust.TrustEngine` on every combination and
every app, then checks every :data:`INVARIANTS` entry and compares each answer with :func:`reference_trust`, a
slow evaluator that reads the combination's attributes, not the snapshot. Given a real snapshot, it checks each
of its indexed addresses too, one at a time: observations stream through the checks and each invariant keeps
only its count and minimal counterexample, so memory does not grow with the directory.

One concern per module:

- :mod:`~mtotrust._verify.space`: :class:`Facts`, :class:`Case`, :class:`AuthVariant`, :data:`AUTH_VARIANTS`;
- :mod:`~mtotrust._verify.enumeration`: :func:`enumerate_space`, the snapshot of the space;
- :mod:`~mtotrust._verify.reference`: :func:`reference_trust`, :func:`reference_blocked`, the app answers;
- :mod:`~mtotrust._verify.observe`: :class:`Observation`, what the real engine answers;
- :mod:`~mtotrust._verify.invariants`: :class:`Invariant`, :data:`INVARIANTS`, their checks and :func:`scan`;
- :mod:`~mtotrust._verify.verifier`: :func:`verify` (with its ``progress`` callback), :class:`Report`,
  :class:`Finding`.

This package imports no optional dependency: ``mtotrust lint`` works on a plain install. The public names are
re-exported by :mod:`mtotrust.testing.invariants`.
"""

from __future__ import annotations

from mtotrust._verify.enumeration import enumerate_space
from mtotrust._verify.invariants import INVARIANTS, CaseCheck, GlobalCheck, Invariant, Violation
from mtotrust._verify.observe import Observation
from mtotrust._verify.reference import reference_blocked, reference_trust
from mtotrust._verify.space import (
    AUTH_VARIANTS,
    ENABLED,
    EXTERNAL_KINDS,
    HOME_STATES,
    PARTNER_FLAGS,
    USER_TYPES,
    AuthVariant,
    Case,
    Facts,
    Home,
)
from mtotrust._verify.verifier import Finding, Report, verify

__all__ = [
    "AUTH_VARIANTS",
    "ENABLED",
    "EXTERNAL_KINDS",
    "HOME_STATES",
    "INVARIANTS",
    "PARTNER_FLAGS",
    "USER_TYPES",
    "AuthVariant",
    "Case",
    "CaseCheck",
    "Facts",
    "Finding",
    "GlobalCheck",
    "Home",
    "Invariant",
    "Observation",
    "Report",
    "Violation",
    "enumerate_space",
    "reference_blocked",
    "reference_trust",
    "verify",
]
