"""The exceptions mtotrust raises.

Every leaf also subclasses the builtin it is (a bad snapshot is a ``ValueError``), so callers who do not know
mtotrust can still catch it, and every one carries the offending value as an attribute.
"""

from __future__ import annotations

__all__ = [
    "AuthResultsError", "FromAddressError", "IdentityError", "MtoTrustError", "PolicyError", "SnapshotError",
    "described", "shown",
]

_ECHO = 80  # longest echo of an offending value in a message


def described(value: object) -> str:
    """Return a short text for any value, as an invalid identity's record names it; never raise.

    That is :func:`shown`, or ``<type>`` when even ``repr`` fails (a hostile ``__repr__`` must not break a
    fail-closed answer).
    """
    if isinstance(value, str):
        return value
    try:
        return shown(value)
    except Exception:  # noqa: BLE001 - see above
        return f"<{type(value).__name__}>"


def shown(value: object) -> str:
    """Return ``repr(value)`` cut to 80 characters (``...`` marks the cut): how every message echoes a value."""
    text = repr(value)
    return text if len(text) <= _ECHO else text[:_ECHO - 3] + "..."


class MtoTrustError(Exception):
    """Root of every exception mtotrust raises on purpose."""


class SnapshotError(MtoTrustError, ValueError):
    """A directory snapshot cannot be read: names the file, the JSON path and the offending value."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 value: object = None) -> None:
        self.file = file
        self.path = path
        self.value = value
        where = ": ".join(part for part in (file, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class PolicyError(MtoTrustError, ValueError):
    """A policy is invalid: names the key path, the offending value and what is allowed."""

    def __init__(self, message: str, *, key: str | None = None, value: object = None) -> None:
        self.key = key
        self.value = value
        super().__init__(f"{key}: {message}" if key else message)


class IdentityError(MtoTrustError, ValueError):
    """An identity (address) is malformed: names the value and the rule it breaks."""

    def __init__(self, message: str, *, value: object = None) -> None:
        self.value = value
        super().__init__(message)


class AuthResultsError(MtoTrustError, ValueError):
    """An ``Authentication-Results`` header value cannot be parsed (RFC 8601)."""

    def __init__(self, message: str, *, value: object = None) -> None:
        self.value = value
        super().__init__(message)


class FromAddressError(MtoTrustError, ValueError):
    """A ``From`` field does not name exactly one mailbox.

    ``reason`` is the reason code a mail decision would carry: ``"from_missing"`` (no From field, or none of
    its mailboxes can be read) or ``"from_ambiguous"`` (several From fields, several mailboxes, or a group).
    ``value`` is the offending field value (or the values, for a field count that is not one).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, reason: str, value: object = None) -> None:
        self.reason = reason
        self.value = value
        super().__init__(message)
