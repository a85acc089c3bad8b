"""The errors of the Graph sync, each with the exit code ``mtotrust sync`` ends with.

Exit codes: 1 Graph unreachable or throttling past the caps, 2 bad usage, credentials or permissions, 3 any other
sync error. A message names the offending value and the fix, and never carries the bearer token.
"""

from __future__ import annotations

from typing import ClassVar

from mtotrust import MtoTrustError

__all__ = ["GraphAccessError", "GraphUnavailableError", "ResyncRequired", "SyncError", "SyncUsageError"]


class SyncError(MtoTrustError):
    """Root of the Graph sync's errors; ``exit_code`` is the exit code of ``mtotrust sync``."""

    exit_code: ClassVar[int] = 3


class GraphUnavailableError(SyncError):
    """Graph cannot be used: unreachable, 5xx or throttling past the caps, or an unusable response.

    ``url_path`` is the path of the request that failed (``None`` when no request is to blame).
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, url_path: str | None = None) -> None:
        self.url_path = url_path
        super().__init__(message)


class GraphAccessError(SyncError):
    """Graph or the identity platform refused the credentials (401 twice, a failed token request), or a 403.

    ``permission`` is the Graph application permission a 403 means is missing (``None`` otherwise), ``url_path``
    the path of the refused request (empty when no request was made yet).
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, url_path: str = "", permission: str | None = None) -> None:
        self.url_path = url_path
        self.permission = permission
        super().__init__(message)


class SyncUsageError(SyncError, ValueError):
    """Bad options: a missing or contradictory credential form, a missing token variable, a tenant mismatch.

    ``value`` is the offending value (an option's value or an environment variable's name, never a secret).
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, value: object = None) -> None:
        self.value = value
        super().__init__(message)


class ResyncRequired(Exception):  # noqa: N818 - a signal the sync handles, not an error a user sees
    """Graph refused the delta link (410, ``syncStateNotFound``, ``resyncRequired``): start a full resync.

    ``location`` is the 410's ``Location`` header (a fresh delta request to follow), if Graph sent one.
    """

    def __init__(self, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"Graph refused the delta link; a full resync is needed (Location: {location})")
