"""The invariant catalogue and the exhaustive verifier (the engine of ``mtotrust lint``).

Each :class:`Invariant` in :data:`INVARIANTS` is a named, documented property of a sane policy. :func:`verify`
enumerates the finite attribute space that decides trust, evaluates the real engine on every combination and
app, checks every invariant and compares each answer with an independent reference evaluator; every violated
invariant is reported with a minimal counterexample and its explanation.

The implementation lives in the private, hypothesis-free package ``mtotrust._verify`` so that ``mtotrust lint``
works on a plain install; this module is its public face.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterable

from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust._verify import (
    AUTH_VARIANTS,
    INVARIANTS,
    Case,
    Facts,
    Finding,
    Invariant,
    Observation,
    Report,
    enumerate_space,
    reference_trust,
    verify,
)
from mtotrust._verify.compare import Difference, Differences, compare
from mtotrust._verify.user import Point, UserInvariant, declared, invariant, load_module

__all__ = [
    "AUTH_VARIANTS",
    "INVARIANTS",
    "Case",
    "Difference",
    "Differences",
    "Facts",
    "Finding",
    "Invariant",
    "Observation",
    "Point",
    "Report",
    "UserInvariant",
    "assert_policy_sound",
    "by_name",
    "compare",
    "declared",
    "enumerate_space",
    "invariant",
    "load_module",
    "reference_trust",
    "verify",
]


def by_name(name: str) -> Invariant:
    """Return the catalogue entry called ``name``.

    Raises:
        KeyError: naming the unknown invariant and listing the known ones.

    .. versionadded:: 0.1.0
    """
    for entry in INVARIANTS:
        if entry.name == name:
            return entry
    known = ", ".join(i.name for i in INVARIANTS)
    raise KeyError(f"no invariant named {name!r}; known: {known}")


def assert_policy_sound(policy: Policy | None = None, snapshot: Snapshot | None = None, *,
                        ignore: tuple[str, ...] | list[str] = (), extra: Iterable[UserInvariant] = ()) -> Report:
    """Verify ``policy`` exhaustively and fail with every violated invariant and its counterexample.

    Checks what ``mtotrust lint`` checks: the built-in invariants and the policy's own ``[[invariants]]``, and
    ``extra`` (``@invariant`` functions).

    Args:
        policy: the policy (default :meth:`Policy.default`).
        snapshot: a real snapshot whose addresses are checked too.
        ignore: invariant names to leave out (a deliberate choice, say ``"guest_outside"``).
        extra: user invariants to check too.

    Returns:
        the :class:`Report`, when every checked invariant holds.

    Raises:
        AssertionError: with the report's text.
        KeyError: ``ignore`` names no built-in or policy invariant.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 the policy's ``[[invariants]]`` are checked too; ``extra``.
    """
    own = declared(policy) if policy is not None else ()
    for name in ignore:
        if name not in {i.name for i in own}:
            by_name(name)
    everything: list[Invariant | UserInvariant] = [*INVARIANTS, *own]
    report = verify(policy, snapshot, invariants=[i for i in everything if i.name not in ignore], extra=extra)
    if not report.ok:
        raise AssertionError("the policy violates invariants:\n" + report.format())
    return report
