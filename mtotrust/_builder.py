"""Graph user shapes and ``SnapshotBuilder``: write a small directory in a few lines, as real Graph-shaped JSON.

The ``*_object`` functions are the one place that knows how Microsoft Graph v1.0 shapes a user object
(``GET /users``): a native member of the local tenant, and the B2B objects Entra ID creates for people from
other tenants (a cross-tenant-synced member or an invited guest). :class:`SnapshotBuilder`, the benchmark
generator, the sample generator and the test builders all build their users with them.

Private so that :mod:`mtotrust._verify` (which must work without hypothesis) can use it; the public name is
:class:`mtotrust.testing.SnapshotBuilder`.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any, TypeVar

from mtotrust._snapshot import Snapshot

__all__ = [
    "FEDERATED_ISSUER",
    "SnapshotBuilder",
    "display_name_for",
    "ext_upn",
    "external_object",
    "guest_object",
    "native_object",
    "synced_member_object",
]

_NAMESPACE = uuid.UUID("6f1c2a52-3d0e-4b7c-9a55-0d5c3e1b7a10")
_SELECT = "id,displayName,userPrincipalName,mail,otherMails,proxyAddresses,userType,creationType,accountEnabled," \
          "identities"
PartnerFlag = bool | None
_T = TypeVar("_T")
FEDERATED_ISSUER = "ExternalAzureAD"
"""The issuer of the ``federated`` identity of an account whose home is another Entra ID tenant."""


def tenant_id_for(name: str) -> str:
    """Return the stable tenant id the builder gives a tenant called ``name`` (a UUID derived from it)."""
    return str(uuid.uuid5(_NAMESPACE, name.lower()))


def _object_id(address: str, serial: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"user:{serial}:{address.lower()}"))


# -- Graph user shapes ---------------------------------------------------------------------------------------
#
# ``...`` (Ellipsis) for a field leaves it out of the object, as Graph does for a property that was not
# selected; ``None`` writes ``null``. Keys come in a fixed order per shape, so output written without
# ``sort_keys`` is byte-stable.


def ext_upn(address: str, host: str) -> str:
    """Return the ``#EXT#`` UPN Entra ID gives an external account: ``alias_homedomain#EXT#@host``.

    ``address`` is the account's home address (``alias@homedomain``); ``host`` is the local tenant's initial
    (``onmicrosoft.com``) domain, where every ``#EXT#`` UPN lives.
    """
    alias, _, home = address.partition("@")
    return f"{alias}_{home}#EXT#@{host}"


def display_name_for(address: str) -> str:
    """Return a display name made from an address's local part: ``"ada.lovelace@x"`` gives ``"Ada Lovelace"``."""
    return (address or "user").partition("@")[0].replace(".", " ").title()


def _head(uid: str, display_name: str | EllipsisType, upn: str, mail: str | None, other_mails: Sequence[str],
          proxies: Sequence[str] | None) -> dict[str, Any]:
    """Return the fields every user object starts with: id, displayName, UPN, mail and the other addresses."""
    obj: dict[str, Any] = {"id": uid}
    if display_name is not ...:
        obj["displayName"] = display_name
    obj.update(userPrincipalName=upn, mail=mail, otherMails=list(other_mails),
               proxyAddresses=list(proxies) if proxies is not None else ([f"SMTP:{mail}"] if mail else []))
    return obj


def _put(obj: dict[str, Any], key: str, value: object) -> None:
    if value is not ...:
        obj[key] = value


def _upn_identities(upn: str, host: str) -> list[dict[str, Any]]:
    """Return the ``userPrincipalName`` identity the local tenant (issuer ``host``) gives every account."""
    return [{"signInType": "userPrincipalName", "issuer": host, "issuerAssignedId": upn}] if upn else []


def native_object(uid: str, address: str, *, host: str, display_name: str | EllipsisType = ...,
                  other_mails: Sequence[str] = (), proxies: Sequence[str] | None = None,
                  user_type: str | EllipsisType | None = "Member", enabled: bool | EllipsisType | None = True,
                  external_state: str | EllipsisType | None = ...) -> dict[str, Any]:
    """Return a native user object of the local tenant, as ``GET /users`` returns it.

    UPN and ``mail`` are ``address``, ``creationType`` is ``null`` and the only identity is the
    ``userPrincipalName`` one issued by ``host`` (the local initial domain).

    Args:
        uid: the object id.
        address: the user's address (UPN and mail).
        host: the local tenant's initial domain, issuer of the UPN identity.
        display_name: ``displayName``; ``...`` leaves it out.
        other_mails: ``otherMails``.
        proxies: ``proxyAddresses`` (default ``["SMTP:<address>"]``).
        user_type: ``userType``; ``...`` leaves it out.
        enabled: ``accountEnabled``; ``...`` leaves it out.
        external_state: ``externalUserState`` (``null`` for a native account); ``...`` leaves it out.
    """
    obj = _head(uid, display_name, address, address, other_mails, proxies)
    _put(obj, "userType", user_type)
    obj["creationType"] = None
    _put(obj, "accountEnabled", enabled)
    _put(obj, "externalUserState", external_state)
    obj["identities"] = _upn_identities(address, host)
    return obj


def external_object(uid: str, address: str, *, host: str, user_type: str | EllipsisType | None,
                    creation_type: str | None, home: str | None = None, display_name: str | EllipsisType = ...,
                    other_mails: Sequence[str] = (), enabled: bool | EllipsisType | None = True,
                    external_state: str | EllipsisType | None = ...,
                    issuer: str | None = FEDERATED_ISSUER) -> dict[str, Any]:
    """Return a B2B user object (an account whose home is elsewhere), as ``GET /users`` returns it.

    Its UPN is ``alias_homedomain#EXT#@host`` (see :func:`ext_upn`), ``mail`` is ``address`` and
    ``proxyAddresses`` is ``["SMTP:<address>"]``. :func:`synced_member_object` and :func:`guest_object` are
    this with the ``userType`` and ``creationType`` of each kind.

    Args:
        uid: the object id.
        address: the account's home mail address.
        host: the local tenant's initial domain, where the ``#EXT#`` UPN lives.
        user_type: ``userType``; ``...`` leaves it out.
        creation_type: ``creationType`` (``"Invitation"`` for an invited account).
        home: the home address the ``#EXT#`` UPN encodes, when it is not ``address``.
        display_name: ``displayName``; ``...`` leaves it out.
        other_mails: ``otherMails``.
        enabled: ``accountEnabled``; ``...`` leaves it out.
        external_state: ``externalUserState`` (``"Accepted"``, ``"PendingAcceptance"``); ``...`` leaves it out.
        issuer: the issuer of the ``federated`` identity: ``"ExternalAzureAD"`` for an Entra ID home tenant,
            ``"MicrosoftAccount"`` for a personal Microsoft account, ``"mail"`` for a one-time-passcode guest
            (whose identity names the address); ``None`` for no federated identity (an invitation not yet
            redeemed).
    """
    upn = ext_upn(home or address, host)
    obj = _head(uid, display_name, upn, address, other_mails, None)
    obj["creationType"] = creation_type
    _put(obj, "externalUserState", external_state)
    federated = [] if issuer is None else [
        {"signInType": "federated", "issuer": issuer, "issuerAssignedId": address if issuer == "mail" else None}]
    obj["identities"] = federated + _upn_identities(upn, host)
    _put(obj, "userType", user_type)
    _put(obj, "accountEnabled", enabled)
    return obj


def synced_member_object(uid: str, address: str, *, host: str, home: str | None = None,
                         display_name: str | EllipsisType = ..., user_type: str | EllipsisType | None = "Member",
                         creation_type: str | None = None, enabled: bool | EllipsisType | None = True,
                         issuer: str | None = FEDERATED_ISSUER) -> dict[str, Any]:
    """Return an external member as MTO cross-tenant synchronization creates it (see :func:`external_object`).

    ``userType`` Member, ``creationType`` ``null``, an ``#EXT#`` UPN at ``host``, ``mail`` ``address`` and a
    ``federated`` identity issued by ``ExternalAzureAD``; ``home`` overrides the home address the UPN encodes.
    """
    return external_object(uid, address, host=host, home=home, display_name=display_name, user_type=user_type,
                           creation_type=creation_type, enabled=enabled, issuer=issuer)


def guest_object(uid: str, address: str, *, host: str, display_name: str | EllipsisType = ...,
                 enabled: bool | EllipsisType | None = True) -> dict[str, Any]:
    """Return an invited B2B guest: ``userType`` Guest, ``creationType`` Invitation (see :func:`external_object`)."""
    return external_object(uid, address, host=host, display_name=display_name, user_type="Guest",
                           creation_type="Invitation", enabled=enabled)


def _present(value: _T | None) -> _T | EllipsisType:
    """Map the builder's ``None`` (leave the field out) to the shapes' ``...``."""
    return ... if value is None else value


class SnapshotBuilder:
    """Build a :class:`~mtotrust.Snapshot` (or a snapshot folder) from a few declarative calls.

    Every call returns the builder, so a directory reads as one expression::

        snap = (SnapshotBuilder()                       # local tenant "contoso": contoso.com
                .tenant("litware", state="active")      # an MTO tenant with domain litware.com
                .synced_member("li@litware.com")        # a cross-tenant-synced external member
                .guest("gus@litware.com")               # an invited B2B guest
                .build())

    The documents are what Microsoft Graph v1.0 returns (``GET /organization``, ``/users`` ...), so
    :meth:`write` produces a folder that :meth:`Snapshot.load` reads like a real export.

    Args:
        local: the local tenant's name; its domains default to ``<local>.com`` and the initial
            ``<local>.onmicrosoft.com``.
        domains: the local verified domains (the first is the default domain).
        tenant_id: the local tenant id (default: derived from ``local``).

    .. versionadded:: 0.1.0
    """

    def __init__(self, local: str = "contoso", *, domains: tuple[str, ...] | list[str] | None = None,
                 tenant_id: str | None = None) -> None:
        self.local_name = local
        self.local_tenant_id = tenant_id or tenant_id_for(local)
        self.local_domains = tuple(domains) if domains else (f"{local}.com", f"{local}.onmicrosoft.com")
        self.initial_domain = next((d for d in self.local_domains if d.endswith(".onmicrosoft.com")),
                                   self.local_domains[0])
        self._tenants: list[dict[str, Any]] = [{
            "tenantId": self.local_tenant_id, "displayName": local.title(), "role": "owner", "state": "active",
        }]
        self._domains: dict[str, tuple[str, str]] = {d: (self.local_tenant_id, local.title())
                                                     for d in self.local_domains}
        self._partners: list[dict[str, Any]] = []
        self._users: list[dict[str, Any]] = []
        self._delta: list[dict[str, Any]] = []
        self._tenant_names: dict[str, str] = {local.lower(): self.local_tenant_id}

    # -- tenants -------------------------------------------------------------------------------------------

    def tenant(self, name: str, *, state: str | None = "active", domains: tuple[str, ...] | list[str] | None = None,
               tenant_id: str | None = None, in_mto: bool = True, partner: PartnerFlag | str = "absent",
               role: str = "member") -> SnapshotBuilder:
        """Add a tenant: listed in ``mto.json`` (unless ``in_mto=False``) with its domains in ``domains.json``.

        Args:
            name: a short name; the tenant id and the default domain ``<name>.com`` derive from it.
            state: the MTO state (``"active"``, ``"pending"``, ``"removed"``), or ``None`` to omit the field
                (what Graph returns with ``ReadBasic`` permission).
            domains: the tenant's domains (default ``(<name>.com,)``).
            tenant_id: the tenant id (default: derived from ``name``).
            in_mto: ``False`` for a tenant that is known (``domains.json``) but not part of the MTO.
            partner: the cross-tenant access partner row's ``isInMultiTenantOrganization``: ``True``,
                ``False``, ``None`` (a row with ``null``), or ``"absent"`` (no row).
            role: the MTO role.
        """
        tid = tenant_id or tenant_id_for(name)
        self._tenant_names[name.lower()] = tid
        display = name.title()
        if in_mto:
            row: dict[str, Any] = {"tenantId": tid, "displayName": display, "role": role}
            if state is not None:
                row["state"] = state
            self._tenants.append(row)
        for domain in domains or (f"{name}.com",):
            self._domains[domain] = (tid, display)
        if partner != "absent":
            self._partners.append({"tenantId": tid, "isInMultiTenantOrganization": partner,
                                   "isServiceProvider": False})
        return self

    def domain(self, domain: str, tenant: str) -> SnapshotBuilder:
        """Map one more ``domain`` to an already added ``tenant`` (by name) in ``domains.json``."""
        tid = self._tenant_names.get(tenant.lower(), tenant)
        self._domains[domain] = (tid, tenant.title())
        return self

    def tenant_id(self, name: str) -> str:
        """Return the id of a tenant added by name (or of the local tenant)."""
        return self._tenant_names[name.lower()]

    # -- users ---------------------------------------------------------------------------------------------

    def user(self, **fields: Any) -> SnapshotBuilder:
        """Add a raw Graph user object; ``id`` defaults to a stable UUID. Field names are Graph's."""
        obj = dict(fields)
        obj.setdefault("id", _object_id(str(obj.get("mail") or obj.get("userPrincipalName") or ""),
                                        len(self._users)))
        self._users.append(obj)
        return self

    def _person(self, obj: dict[str, Any], extra: dict[str, Any]) -> SnapshotBuilder:
        """Add ``obj`` with ``extra`` replacing its fields; without an ``id`` in ``extra`` it gets a stable one.

        The stable id derives from the final ``mail`` (or UPN), so ``obj`` comes with a placeholder id.
        """
        obj.update(extra)
        if "id" not in extra:
            obj["id"] = _object_id(str(obj.get("mail") or obj.get("userPrincipalName") or ""), len(self._users))
        self._users.append(obj)
        return self

    def member(self, address: str, *, enabled: bool | None = True, user_type: str | None = "Member",
               other_mails: list[str] | None = None, **extra: Any) -> SnapshotBuilder:
        """Add a native local user (UPN and mail ``address``); ``None`` for a field omits it."""
        return self._person(native_object("", address, host=self.initial_domain, display_name=display_name_for(address),
                                          other_mails=other_mails or [], user_type=_present(user_type),
                                          enabled=_present(enabled)), extra)

    def shared_mailbox(self, address: str, **extra: Any) -> SnapshotBuilder:
        """Add a shared mailbox: a native, disabled local user."""
        return self.member(address, enabled=False, **extra)

    def synced_member(self, address: str, *, enabled: bool | None = True, user_type: str | None = "Member",
                      home: str | None = None, federated: bool = True, **extra: Any) -> SnapshotBuilder:
        """Add an external member synced by MTO cross-tenant synchronization.

        Its UPN is ``alias_homedomain#EXT#@<initial domain>``, it has a federated ``ExternalAzureAD`` identity,
        ``userType`` Member and ``mail`` ``address``. ``home`` overrides the home address its ``#EXT#`` UPN
        encodes (to model disagreeing evidence); ``None`` for ``enabled``/``user_type`` omits the field.
        """
        return self._person(synced_member_object("", address, host=self.initial_domain, home=home,
                                                 display_name=display_name_for(address), user_type=_present(user_type),
                                                 enabled=_present(enabled),
                                                 issuer=FEDERATED_ISSUER if federated else None), extra)

    def guest(self, address: str, *, enabled: bool | None = True, **extra: Any) -> SnapshotBuilder:
        """Add an invited B2B guest (``creationType`` Invitation, ``userType`` Guest, ``#EXT#`` UPN)."""
        return self._person(guest_object("", address, host=self.initial_domain,
                                         display_name=display_name_for(address), enabled=_present(enabled)), extra)

    def delta(self, **fields: Any) -> SnapshotBuilder:
        """Add a ``/users/delta`` entry (a partial object, or ``**{"@removed": {"reason": "deleted"}}``)."""
        self._delta.append(dict(fields))
        return self

    # -- output --------------------------------------------------------------------------------------------

    def documents(self) -> dict[str, Any]:
        """Return the Graph documents: ``organization``, ``mto``, ``domains``, ``partners``, ``users``, ``delta``.

        ``users`` and ``delta`` are lists of pages. Each call returns fresh copies.
        """
        verified = [{"name": d, "isDefault": i == 0, "isInitial": d == self.initial_domain, "type": "Managed"}
                    for i, d in enumerate(self.local_domains)]
        docs: dict[str, Any] = {
            "organization": {"value": [{"id": self.local_tenant_id, "displayName": self.local_name.title(),
                                        "verifiedDomains": verified}]},
            "mto": {"value": self._tenants},
            "domains": {"value": [{"domainName": d, "tenantId": t, "displayName": n}
                                  for d, (t, n) in sorted(self._domains.items())]},
            "partners": {"value": self._partners},
            "users": [{"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#users({_SELECT})",
                       "value": self._users}],
            "delta": [{"value": self._delta}] if self._delta else [],
        }
        return copy.deepcopy(docs)

    def build(self) -> Snapshot:
        """Return the :class:`~mtotrust.Snapshot` these documents describe."""
        docs = self.documents()
        return Snapshot.from_documents(organization=docs["organization"], mto=docs["mto"], domains=docs["domains"],
                                       users=docs["users"], partners=docs["partners"], delta=docs["delta"])

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write the snapshot folder :meth:`Snapshot.load` reads to ``folder`` and return its path.

        ``organization.json``, ``mto.json``, ``domains.json`` and ``partners.json`` hold one document each,
        ``users/0001.json`` … one ``/users`` page each and, when there are delta entries, ``delta/0001.json`` …
        one ``/users/delta`` page each; JSON with ``indent=1`` and sorted keys.
        """
        root = Path(folder)
        (root / "users").mkdir(parents=True, exist_ok=True)
        docs = self.documents()

        def dump(path: Path, data: Any) -> None:
            path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                            encoding="utf-8")

        for name in ("organization", "mto", "domains", "partners"):
            dump(root / f"{name}.json", docs[name])
        for i, page in enumerate(docs["users"], 1):
            dump(root / "users" / f"{i:04d}.json", page)
        if docs["delta"]:
            (root / "delta").mkdir(exist_ok=True)
            for i, page in enumerate(docs["delta"], 1):
                dump(root / "delta" / f"{i:04d}.json", page)
        return root
