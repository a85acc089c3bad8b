"""Frozen, slotted records that carry data on the hot path.

Nothing here validates input from outside: :mod:`mtotrust._graph` and :mod:`mtotrust._policy` do that at the
boundary and build these records once.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = [
    "AppDecision",
    "Decision",
    "DirectoryUser",
    "DlpDecision",
    "Identity",
    "IdentityLike",
    "LabelDecision",
    "MailAuth",
    "MailDecision",
    "Resolution",
    "TeamsDecision",
    "Tenant",
    "Trust",
    "make_resolution",
]


class Trust(enum.Enum):
    """How far an identity is trusted, ordered ``untrusted < external < guest < mto_member < internal``.

    .. versionadded:: 0.1.0
    """

    UNTRUSTED = "untrusted"
    EXTERNAL = "external"
    GUEST = "guest"
    MTO_MEMBER = "mto_member"
    INTERNAL = "internal"

    @property
    def rank(self) -> int:
        """Position in the order, ``0`` for ``untrusted`` up to ``4`` for ``internal``."""
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return _RANK[self] < _RANK[other]

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return _RANK[self] <= _RANK[other]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return _RANK[self] > _RANK[other]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return _RANK[self] >= _RANK[other]

    def __str__(self) -> str:
        return self.value


_RANK = {trust: rank for rank, trust in enumerate(Trust)}


@attrs.frozen(slots=True)
class Tenant:
    """A tenant of the multi-tenant organization (``mto.json``), with its MTO ``state`` and ``role``.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    display_name: str | None = None
    role: str | None = None
    state: str | None = None


@attrs.frozen(slots=True)
class DirectoryUser:
    """A user object of the local directory, reduced to the fields that decide trust.

    ``federated_external`` says the object has a ``federated`` identity issued by ``ExternalAzureAD``;
    :meth:`Snapshot.is_external <mtotrust.Snapshot.is_external>` makes the whole external-object test from it and
    the user principal name (it needs the local verified domains).

    .. versionadded:: 0.1.0
    """

    id: str
    user_principal_name: str | None = None
    mail: str | None = None
    other_mails: tuple[str, ...] = ()
    proxy_addresses: tuple[str, ...] = ()
    user_type: str | None = None
    creation_type: str | None = None
    account_enabled: bool | None = None
    federated_external: bool = False


@attrs.frozen(slots=True)
class Identity:
    """An identity an app asks about: an address and, where the app knows it, the home ``tenant_id``.

    .. versionadded:: 0.1.0
    """

    address: str
    tenant_id: str | None = None


def _mail_auth_type_error(auth: MailAuth) -> TypeError:
    """Return the ``TypeError`` for the first field of ``auth`` with the wrong type, naming it."""
    for name in ("dmarc", "compauth", "header_from"):
        value = getattr(auth, name)
        if value is not None and not isinstance(value, str):
            return TypeError(f"MailAuth.{name} must be a str or None, not {type(value).__name__}")
    return TypeError(f"MailAuth.smtp_auth must be a bool, not {type(auth.smtp_auth).__name__}")


@attrs.frozen(slots=True)
class MailAuth:
    """Mail authentication results established by the calling app, trusted as given.

    They are read as a raw ``Authentication-Results`` header is. ``dmarc`` and ``compauth`` are result words
    (``"pass"``, ``"fail"``, ``"none"`` ...), compared case-insensitively (``"FAIL"`` is a failure); a word
    that is not ASCII or is unknown counts as no result. ``header_from`` is the RFC 5322 From domain they were
    computed for (compared case-insensitively, and it must still align with the sender; ``None``: no alignment
    check), ``smtp_auth`` true for mail submitted with SMTP AUTH.

    Raises:
        TypeError: when built with a field of the wrong type (``dmarc=1``, ``smtp_auth="yes"``), naming the
            field. The mail path reads one built around this check as a failure and never raises.

    .. versionadded:: 0.1.0
    """

    dmarc: str | None = None
    compauth: str | None = None
    header_from: str | None = None
    smtp_auth: bool = False

    def __attrs_post_init__(self) -> None:
        """Refuse a field of the wrong type (one check for all four: a MailAuth may be built per message)."""
        dmarc, compauth, header_from = self.dmarc, self.compauth, self.header_from
        if not ((dmarc is None or isinstance(dmarc, str)) and (compauth is None or isinstance(compauth, str))
                and (header_from is None or isinstance(header_from, str)) and isinstance(self.smtp_auth, bool)):
            raise _mail_auth_type_error(self)


def _identity_dict(resolution: Resolution) -> dict[str, Any]:
    """Return the fields of a resolution that a decision's ``to_dict`` nests (the origin is the decision's)."""
    return {
        "identity": resolution.identity,
        "address": resolution.address,
        "trust": resolution.trust.value,
        "reasons": list(resolution.reasons),
        "user_id": resolution.user.id if resolution.user else None,
        "home_tenant_id": resolution.home_tenant_id,
    }


@attrs.frozen(slots=True)
class Resolution:
    """Where an identity stands in the local directory: its trust and every check that decided it.

    ``identity`` is the identity asked about in normal form (for an invalid one, the text as given),
    ``address`` the address looked up (``None`` when invalid; the home address of a decoded ``#EXT#`` name),
    ``user`` the matched directory object, ``home_tenant_id`` the tenant its domain maps to, ``tenant_id`` the
    home tenant id the caller gave. ``snapshot_id`` (the snapshot's ``Snapshot.id``) and ``policy_fingerprint``
    say what it was decided from, so it can be reproduced later.

    .. versionadded:: 0.1.0
    """

    identity: str
    trust: Trust
    reasons: tuple[str, ...]
    address: str | None = None
    user: DirectoryUser | None = None
    home_tenant_id: str | None = None
    tenant_id: str | None = None
    snapshot_id: str = ""
    policy_fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**_identity_dict(self), "snapshot_id": self.snapshot_id,
                "policy_fingerprint": self.policy_fingerprint}


_new = object.__new__
# The slots of Resolution in field order: set directly, they skip the frozen __setattr__ attrs' __init__ goes
# through (one bound object.__setattr__ call per field).
(_set_identity, _set_trust, _set_reasons, _set_address, _set_user, _set_home_tenant_id, _set_tenant_id,
 _set_snapshot_id, _set_policy_fingerprint) = (Resolution.__dict__[f.name].__set__ for f in attrs.fields(Resolution))


def make_resolution(identity: str, trust: Trust, reasons: tuple[str, ...], address: str | None,
                    user: DirectoryUser | None, home_tenant_id: str | None, tenant_id: str | None, snapshot_id: str,
                    policy_fingerprint: str) -> Resolution:
    """Return ``Resolution(identity, trust, ...)`` (every field, in field order), built about a third faster.

    For the engine's per-call answers (an address no object carries); ``tests/test_fastpaths_core.py`` pins it
    to the attrs ``__init__``.
    """
    resolution = _new(Resolution)
    _set_identity(resolution, identity)
    _set_trust(resolution, trust)
    _set_reasons(resolution, reasons)
    _set_address(resolution, address)
    _set_user(resolution, user)
    _set_home_tenant_id(resolution, home_tenant_id)
    _set_tenant_id(resolution, tenant_id)
    _set_snapshot_id(resolution, snapshot_id)
    _set_policy_fingerprint(resolution, policy_fingerprint)
    return resolution


@attrs.frozen(slots=True)
class MailDecision:
    """Whether a mail-flow filter tags a message ``[External]``.

    .. versionadded:: 0.1.0
    """

    tag_external: bool
    trust: Trust
    authenticated: bool
    reasons: tuple[str, ...]
    resolution: Resolution
    subject_tag: str = ""
    snapshot_id: str = ""
    policy_fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "app": "mail",
            "tag_external": self.tag_external,
            "trust": self.trust.value,
            "authenticated": self.authenticated,
            "subject_tag": self.subject_tag,
            "reasons": list(self.reasons),
            "sender": _identity_dict(self.resolution),
            "snapshot_id": self.snapshot_id,
            "policy_fingerprint": self.policy_fingerprint,
        }


@attrs.frozen(slots=True)
class DlpDecision:
    """Whether content shared with ``recipients`` stays inside the organization (Purview ``AccessScope``).

    .. versionadded:: 0.1.0
    """

    inside_organization: bool
    recipients: tuple[Resolution, ...]
    reasons: tuple[str, ...]
    snapshot_id: str = ""
    policy_fingerprint: str = ""

    @property
    def access_scope(self) -> str:
        """``"InOrganization"`` or ``"NotInOrganization"``, as Purview DLP rules name it."""
        return "InOrganization" if self.inside_organization else "NotInOrganization"

    @property
    def trust(self) -> Trust:
        """The lowest trust among the recipients (``internal`` for none)."""
        return min((r.trust for r in self.recipients), default=Trust.INTERNAL)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "app": "dlp",
            "inside_organization": self.inside_organization,
            "access_scope": self.access_scope,
            "reasons": list(self.reasons),
            "recipients": [_identity_dict(r) for r in self.recipients],
            "snapshot_id": self.snapshot_id,
            "policy_fingerprint": self.policy_fingerprint,
        }


@attrs.frozen(slots=True)
class LabelDecision:
    """The usage rights a sensitivity label grants an identity.

    .. versionadded:: 0.1.0
    """

    label: str
    rights: frozenset[str]
    trust: Trust
    reasons: tuple[str, ...]
    resolution: Resolution
    snapshot_id: str = ""
    policy_fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (rights sorted)."""
        return {
            "app": "labels",
            "label": self.label,
            "rights": sorted(self.rights),
            "trust": self.trust.value,
            "reasons": list(self.reasons),
            "identity": _identity_dict(self.resolution),
            "snapshot_id": self.snapshot_id,
            "policy_fingerprint": self.policy_fingerprint,
        }


@attrs.frozen(slots=True)
class TeamsDecision:
    """Whether a Teams collaboration ``action`` is allowed with an identity.

    .. versionadded:: 0.1.0
    """

    action: str
    allowed: bool
    trust: Trust
    reasons: tuple[str, ...]
    resolution: Resolution
    snapshot_id: str = ""
    policy_fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "app": "teams",
            "action": self.action,
            "allowed": self.allowed,
            "trust": self.trust.value,
            "reasons": list(self.reasons),
            "identity": _identity_dict(self.resolution),
            "snapshot_id": self.snapshot_id,
            "policy_fingerprint": self.policy_fingerprint,
        }


IdentityLike = Identity | str
"""What every engine method accepts as an identity: an address, or an :class:`Identity` with a tenant id."""

AppDecision = MailDecision | DlpDecision | LabelDecision | TeamsDecision
"""The decision of one app."""

Decision = Resolution | AppDecision
"""Anything :func:`~mtotrust._explain` explains."""
