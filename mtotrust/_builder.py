"""``SnapshotBuilder``: write a small directory in a few lines, as real Graph-shaped JSON.

Private so that :mod:`mtotrust._verify` (which must work without hypothesis) can use it; the public name is
:class:`mtotrust.testing.SnapshotBuilder`.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

from mtotrust._snapshot import Snapshot

__all__ = ["SnapshotBuilder"]

_NAMESPACE = uuid.UUID("6f1c2a52-3d0e-4b7c-9a55-0d5c3e1b7a10")
_SELECT = "id,displayName,userPrincipalName,mail,otherMails,proxyAddresses,userType,creationType,accountEnabled," \
          "identities"
PartnerFlag = bool | None


def tenant_id_for(name: str) -> str:
    """Return the stable tenant id the builder gives a tenant called ``name`` (a UUID derived from it)."""
    return str(uuid.uuid5(_NAMESPACE, name.lower()))


def _object_id(address: str, serial: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"user:{serial}:{address.lower()}"))


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

    def _ext_upn(self, address: str) -> str:
        alias, _, home = address.partition("@")
        return f"{alias}_{home}#EXT#@{self.initial_domain}"

    def _person(self, *, upn: str | None, mail: str | None, user_type: str | None, enabled: bool | None,
                creation_type: str | None, federated: bool, other_mails: list[str], proxies: list[str] | None,
                extra: dict[str, Any]) -> SnapshotBuilder:
        obj: dict[str, Any] = {
            "displayName": (mail or upn or "user").partition("@")[0].replace(".", " ").title(),
            "userPrincipalName": upn,
            "mail": mail,
            "otherMails": other_mails,
            "proxyAddresses": proxies if proxies is not None else ([f"SMTP:{mail}"] if mail else []),
            "creationType": creation_type,
            "identities": ([{"signInType": "federated", "issuer": "ExternalAzureAD", "issuerAssignedId": None}]
                           if federated else [])
            + ([{"signInType": "userPrincipalName", "issuer": self.initial_domain, "issuerAssignedId": upn}]
               if upn else []),
        }
        if user_type is not None:
            obj["userType"] = user_type
        if enabled is not None:
            obj["accountEnabled"] = enabled
        obj.update(extra)
        return self.user(**obj)

    def member(self, address: str, *, enabled: bool | None = True, user_type: str | None = "Member",
               other_mails: list[str] | None = None, **extra: Any) -> SnapshotBuilder:
        """Add a native local user (UPN and mail ``address``); ``None`` for a field omits it."""
        return self._person(upn=address, mail=address, user_type=user_type, enabled=enabled, creation_type=None,
                            federated=False, other_mails=other_mails or [], proxies=None, extra=extra)

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
        return self._person(upn=self._ext_upn(home or address), mail=address, user_type=user_type,
                            enabled=enabled, creation_type=None, federated=federated, other_mails=[],
                            proxies=None, extra=extra)

    def guest(self, address: str, *, enabled: bool | None = True, **extra: Any) -> SnapshotBuilder:
        """Add an invited B2B guest (``creationType`` Invitation, ``userType`` Guest, ``#EXT#`` UPN)."""
        return self._person(upn=self._ext_upn(address), mail=address, user_type="Guest", enabled=enabled,
                            creation_type="Invitation", federated=True, other_mails=[], proxies=None, extra=extra)

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
        """Write a snapshot folder (design section 2) to ``folder`` and return its path."""
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
