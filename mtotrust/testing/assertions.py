"""Assertions about an engine's answers whose failure message carries the engine's explanation.

Each returns the decision it checked, so a test can go on asserting about it. Each hides its own frame from
pytest's traceback (``__tracebackhide__``), so a failure shows the test's line, not the helper's.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterable

from mtotrust._apps import AuthInput
from mtotrust._engine import TrustEngine
from mtotrust._explain import explain
from mtotrust._model import (
    Decision,
    DlpDecision,
    Identity,
    IdentityLike,
    LabelDecision,
    MailDecision,
    Resolution,
    TeamsDecision,
    Trust,
)
from mtotrust._policy import expand_grant

__all__ = ["assert_allowed", "assert_inside", "assert_rights", "assert_tagged", "assert_trust"]


def _query(identity: IdentityLike, tenant_id: str | None) -> IdentityLike:
    if tenant_id is None:
        return identity
    address = identity.address if isinstance(identity, Identity) else identity
    return Identity(address, tenant_id)


def _fail(message: str, decision: Decision) -> AssertionError:
    body = "\n".join(f"    {line}" for line in explain(decision).splitlines())
    return AssertionError(f"{message}\n  explanation:\n{body}")


def assert_trust(engine: TrustEngine, identity: IdentityLike, expected: Trust | str, *,
                 tenant_id: str | None = None) -> Resolution:
    """Assert that ``identity`` resolves to ``expected`` trust (a :class:`Trust` or its value).

    Raises:
        AssertionError: naming both trusts, with the explanation of the resolution.

    .. versionadded:: 0.1.0
    """
    __tracebackhide__ = True
    want = Trust(expected)
    resolution = engine.resolve(_query(identity, tenant_id))
    if resolution.trust != want:
        raise _fail(f"expected {identity!r} to resolve to {want.value}, but it is {resolution.trust.value}",
                    resolution)
    return resolution


def assert_tagged(engine: TrustEngine, sender: IdentityLike, auth: AuthInput = None, *,
                  tagged: bool = True) -> MailDecision:
    """Assert that mail from ``sender`` (with ``auth``) is tagged ``[External]`` (or, ``tagged=False``, not).

    Raises:
        AssertionError: with the explanation of the mail decision.

    .. versionadded:: 0.1.0
    """
    __tracebackhide__ = True
    decision = engine.mail(sender, auth)
    if decision.tag_external != tagged:
        outcome = "tagged [External]" if tagged else "not tagged"
        raise _fail(f"expected mail from {sender!r} to be {outcome}, but it is "
                    f"{'tagged' if decision.tag_external else 'not tagged'} (trust {decision.trust.value})",
                    decision)
    return decision


def assert_rights(engine: TrustEngine, identity: IdentityLike, label: str, expected: Iterable[str] | str) -> \
        LabelDecision:
    """Assert that ``label`` grants ``identity`` exactly ``expected`` rights.

    ``expected`` is a permission level name (``"Viewer"``, ``"Co-Author"`` ...), or usage-right codes (an empty
    iterable for no rights).

    Raises:
        AssertionError: listing missing and extra rights, with the explanation.
        PolicyError: for a label the policy does not define.

    .. versionadded:: 0.1.0
    """
    __tracebackhide__ = True
    want = expand_grant(expected)
    decision = engine.label_rights(identity, label)
    if decision.rights != want:
        missing = ", ".join(sorted(want - decision.rights)) or "none"
        extra = ", ".join(sorted(decision.rights - want)) or "none"
        raise _fail(f"label {label!r} for {identity!r}: missing rights {missing}; unexpected rights {extra}",
                    decision)
    return decision


def assert_allowed(engine: TrustEngine, identity: IdentityLike, action: str, *, allowed: bool = True) -> \
        TeamsDecision:
    """Assert that the Teams ``action`` is allowed with ``identity`` (or, ``allowed=False``, denied).

    .. versionadded:: 0.1.0
    """
    __tracebackhide__ = True
    decision = engine.teams(identity, action)
    if decision.allowed != allowed:
        raise _fail(f"expected Teams {action} with {identity!r} to be {'allowed' if allowed else 'denied'}, "
                    f"but it is {'allowed' if decision.allowed else 'denied'}", decision)
    return decision


def assert_inside(engine: TrustEngine, recipients: Iterable[IdentityLike] | IdentityLike, *,
                  inside: bool = True) -> DlpDecision:
    """Assert that sharing with ``recipients`` stays inside the organization (or, ``inside=False``, not).

    .. versionadded:: 0.1.0
    """
    __tracebackhide__ = True
    decision = engine.dlp(recipients)
    if decision.inside_organization != inside:
        raise _fail(f"expected DLP scope {'InOrganization' if inside else 'NotInOrganization'}, but it is "
                    f"{decision.access_scope}", decision)
    return decision
