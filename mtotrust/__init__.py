"""mtotrust: decide how far to trust an external identity in a Microsoft 365 multi-tenant organization.

Load a :class:`Snapshot` of the local directory, build a :class:`TrustEngine` with a :class:`Policy`, and ask:

>>> from mtotrust import Snapshot, TrustEngine
>>> engine = TrustEngine(Snapshot.sample())
>>> engine.resolve("cameron@fabrikam.com").trust
<Trust.MTO_MEMBER: 'mto_member'>

Everything public is exported here (and by :mod:`mtotrust.mailauth` and :mod:`mtotrust.testing`); modules whose
name starts with ``_`` are the implementation and may change without notice. ``mtotrust.testing`` (hypothesis
strategies and pytest helpers) is imported only when asked for.
"""

from __future__ import annotations

from mtotrust._apps import AuthInput
from mtotrust._decisionlog import DecisionLog
from mtotrust._engine import DEFAULT_CACHE_SIZE, EngineStats, TrustEngine
from mtotrust._errors import (
    AuthResultsError,
    FromAddressError,
    IdentityError,
    MtoTrustError,
    PolicyError,
    SnapshotError,
)
from mtotrust._explain import CAPS, REASONS, explain, failed_checks
from mtotrust._model import (
    AppDecision,
    Decision,
    DirectoryUser,
    DlpDecision,
    Identity,
    IdentityLike,
    LabelDecision,
    MailAuth,
    MailDecision,
    Resolution,
    TeamsDecision,
    Tenant,
    Trust,
)
from mtotrust._policy import PERMISSION_LEVELS, TEAMS_ACTIONS, USAGE_RIGHTS, Policy, expand_grant
from mtotrust._resolve import parse_identity, resolve
from mtotrust._snapshot import Snapshot
from mtotrust._version import __version__

__all__ = [
    "CAPS",
    "DEFAULT_CACHE_SIZE",
    "PERMISSION_LEVELS",
    "REASONS",
    "TEAMS_ACTIONS",
    "USAGE_RIGHTS",
    "AppDecision",
    "AuthInput",
    "AuthResultsError",
    "Decision",
    "DecisionLog",
    "DirectoryUser",
    "DlpDecision",
    "EngineStats",
    "FromAddressError",
    "Identity",
    "IdentityError",
    "IdentityLike",
    "LabelDecision",
    "MailAuth",
    "MailDecision",
    "MtoTrustError",
    "Policy",
    "PolicyError",
    "Resolution",
    "Snapshot",
    "SnapshotError",
    "TeamsDecision",
    "Tenant",
    "Trust",
    "TrustEngine",
    "__version__",
    "expand_grant",
    "explain",
    "failed_checks",
    "parse_identity",
    "resolve",
]
