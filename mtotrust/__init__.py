"""mtotrust: decide how far to trust an external identity in a Microsoft 365 multi-tenant organization.

Load a :class:`Snapshot` of the local directory, build a :class:`TrustEngine` with a :class:`Policy`, and ask:

>>> from mtotrust import Snapshot, TrustEngine
>>> engine = TrustEngine(Snapshot.sample())
>>> engine.resolve("cameron@fabrikam.com").trust
<Trust.MTO_MEMBER: 'mto_member'>

``mtotrust.testing`` (hypothesis strategies and pytest helpers) is imported only when asked for.
"""

from __future__ import annotations

from mtotrust._version import __version__
from mtotrust.decisionlog import DecisionLog
from mtotrust.engine import TrustEngine
from mtotrust.errors import IdentityError, MtoTrustError, PolicyError, SnapshotError
from mtotrust.explain import explain
from mtotrust.model import (
    DirectoryUser,
    DlpDecision,
    Identity,
    LabelDecision,
    MailAuth,
    MailDecision,
    Resolution,
    TeamsDecision,
    Tenant,
    Trust,
)
from mtotrust.policy import Policy
from mtotrust.resolve import parse_identity
from mtotrust.snapshot import Snapshot

__all__ = [
    "DecisionLog",
    "DirectoryUser",
    "DlpDecision",
    "Identity",
    "IdentityError",
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
    "explain",
    "parse_identity",
]
