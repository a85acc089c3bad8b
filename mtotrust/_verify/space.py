"""The attribute space: the finite facts that decide an identity's trust, and every way mail arrives.

:class:`Facts` is one point of the space (home tenant, partner flag, how many objects, how the object is
external, ``userType``, ``accountEnabled``, the caller's tenant id, how the address is asked); :class:`Case` is
an identity to evaluate, with its facts; :data:`AUTH_VARIANTS` are the mail authentication results every
sender is checked under, each with the engine input it makes and what it means for the reference evaluator.

This module imports only :mod:`mtotrust._model` and :mod:`mtotrust._policy`, so that the reference evaluator can
build on it without touching the engine or the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs

from mtotrust._model import Identity, MailAuth
from mtotrust._policy import Policy

__all__ = [
    "AUTH_VARIANTS",
    "ENABLED",
    "EXTERNAL_KINDS",
    "HOME_STATES",
    "PARTNER_FLAGS",
    "USER_TYPES",
    "AuthVariant",
    "Case",
    "Facts",
    "Home",
]

HOME_STATES = ("active", "pending", "removed", "stateless")
"""MTO states a home tenant is enumerated in (``stateless``: ``mto.json`` omits ``state``)."""
PARTNER_FLAGS = ("absent", "true", "false", "null")
"""The partner row: none, ``isInMultiTenantOrganization`` true, false or null."""
EXTERNAL_KINDS = ("federated", "invitation", "ext_upn", "ext_upn_other", "native")
"""How an object is external: a federated ExternalAzureAD identity, ``creationType`` Invitation, an ``#EXT#``
UPN naming the same home, an ``#EXT#`` UPN naming another home (disagreeing evidence), or not at all."""
USER_TYPES: tuple[str | None, ...] = ("Member", "Guest", None, "Contractor")
ENABLED: tuple[bool | None, ...] = (True, False, None)

Home = Literal["local", "active", "pending", "removed", "stateless", "not_in_mto", "unknown", "confusable",
               "invalid", "blocked"]

_MISALIGNED = "misaligned.example"
_UNLISTED_AUTHSERV = "mx.unlisted.example"


@attrs.frozen(slots=True)
class Facts:
    """One point of the attribute space: what an identity's trust depends on.

    ``home`` is the kind of domain (``local``, an MTO state, ``not_in_mto``, ``unknown``, ``confusable``,
    ``invalid`` or ``blocked``); ``objects`` how many directory objects carry the address; ``tenant_id`` what
    the caller gives (``none``, ``match``, ``match_upper``, ``mismatch``); ``via`` how the address is asked
    (``mail``, ``proxy``: only an ``smtp:`` proxy address carries it, ``ext_upn``: the identity is the object's
    ``#EXT#`` UPN).

    .. versionadded:: 0.1.0
    """

    home: Home
    partner: str = "absent"
    objects: int = 1
    external: str = "federated"
    user_type: str | None = "Member"
    enabled: bool | None = True
    tenant_id: str = "none"
    via: str = "mail"

    @property
    def complexity(self) -> int:
        """How far this point is from an enabled synced member of an active tenant (for minimal examples)."""
        return sum((self.home != "active", self.partner != "absent", self.objects != 1,
                    self.external != "federated", self.user_type != "Member", self.enabled is not True,
                    self.tenant_id != "none", self.via != "mail"))

    def describe(self) -> str:
        """Return the attributes as ``key=value`` words."""
        if self.home in ("invalid", "confusable", "blocked"):
            return f"home={self.home}"
        words = [f"home={self.home}"]
        if self.home not in ("local", "unknown"):
            words.append(f"partner={self.partner}")
        words.append(f"objects={self.objects}")
        if self.objects == 1 and self.home != "local":
            words += [f"external={self.external}", f"userType={self.user_type}",
                      f"accountEnabled={self.enabled}"]
        words += [f"tenant_id={self.tenant_id}", f"via={self.via}"]
        return " ".join(words)


@attrs.frozen(slots=True)
class Case:
    """An identity to evaluate: the text asked, the caller's tenant id, and (for the space) its :class:`Facts`.

    ``address`` is the expected normal form (``None`` for an invalid identity, decoded for an ``#EXT#`` UPN);
    ``domain`` is the A-label domain of the identity as written (the RFC 5322 From domain when it is a mail
    sender), ``local`` whether that is a local domain and ``protected`` whether it is local or of an MTO tenant
    (where failed authentication means spoofing). ``home_state`` is where the identity is at home (``local``, an
    MTO state, ``not_in_mto``, ``unknown``, or ``invalid`` for an identity that is no address).

    .. versionadded:: 0.1.0
    """

    identity: str
    tenant_id: str | None
    address: str | None
    domain: str | None
    protected: bool
    local: bool
    facts: Facts | None = None
    home_state: str = "unknown"
    partner: str = "absent"
    """The home tenant's partner flag: ``absent`` (no partner row), ``true``, ``false`` or ``null``."""

    @property
    def query(self) -> Identity | str:
        """The argument passed to the engine."""
        return Identity(self.identity, self.tenant_id) if self.tenant_id is not None else self.identity

    def describe(self) -> str:
        """Return the identity, the tenant id and the attributes on one line."""
        tid = f" tenant_id={self.tenant_id}" if self.tenant_id else ""
        facts = f" [{self.facts.describe()}]" if self.facts else " [from the given snapshot]"
        return f"{self.identity!r}{tid}{facts}"


# -- authentication variants -----------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class AuthVariant:
    """One way a message can arrive: how the ``auth`` argument is made, and what it means (for the reference)."""

    name: str
    make: Callable[[str, Policy], Any]
    meaning: Callable[[Policy, bool], tuple[bool, bool]]
    """``(policy, local_sender) -> (authenticated, explicit_failure)``: mail is authenticated by a DMARC or
    composite-authentication pass aligned with the From domain, by a header from a trusted authserv-id (or
    Exchange Online's own, when accepted), or by SMTP AUTH for a local sender; a counted ``fail`` verdict is an
    explicit failure, and a pass beside it or in a header below it does not undo it."""


def _trusted_id(policy: Policy) -> str:
    return policy.mail.trusted_authserv_ids[0] if policy.mail.trusted_authserv_ids else _UNLISTED_AUTHSERV


def _counts(policy: Policy) -> bool:
    return _trusted_id(policy).lower() in {i.lower() for i in policy.mail.trusted_authserv_ids}


AUTH_VARIANTS: tuple[AuthVariant, ...] = (
    AuthVariant("none", lambda _d, _p: None, lambda _p, _local: (False, False)),
    AuthVariant("dmarc_pass", lambda d, _p: MailAuth(dmarc="pass", header_from=d), lambda _p, _local: (True, False)),
    AuthVariant("compauth_pass", lambda d, _p: MailAuth(compauth="pass", header_from=d),
                lambda _p, _local: (True, False)),
    AuthVariant("dmarc_pass_misaligned", lambda _d, _p: MailAuth(dmarc="pass", header_from=_MISALIGNED),
                lambda _p, _local: (False, False)),
    AuthVariant("dmarc_none", lambda d, _p: MailAuth(dmarc="none", header_from=d), lambda _p, _local: (False, False)),
    AuthVariant("dmarc_fail", lambda d, _p: MailAuth(dmarc="fail", header_from=d), lambda _p, _local: (False, True)),
    AuthVariant("compauth_fail_beside_pass", lambda d, _p: MailAuth(dmarc="pass", compauth="fail", header_from=d),
                lambda _p, _local: (False, True)),
    AuthVariant("smtp_auth", lambda _d, _p: MailAuth(smtp_auth=True), lambda _p, local: (local, False)),
    AuthVariant("header_pass", lambda d, p: f"{_trusted_id(p)}; dmarc=pass header.from={d}",
                lambda p, _local: (_counts(p), False)),
    AuthVariant("header_exchange_online_pass",
                lambda d, _p: (f"spf=pass (sender IP is 192.0.2.1) smtp.mailfrom={d}; dkim=pass header.d={d}; "
                              f"dmarc=pass action=none header.from={d};compauth=pass reason=100"),
                lambda p, _local: (p.mail.accept_exchange_online_results, False)),
    AuthVariant("header_fail_above_forged_pass",
                lambda d, p: [f"{_trusted_id(p)}; dmarc=fail header.from={d}",
                              f"{_trusted_id(p)}; dmarc=pass header.from={d}"],
                lambda p, _local: (False, _counts(p))),
)
"""Every way of authenticating (or not) a message that the mail invariants are checked under."""
