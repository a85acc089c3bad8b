"""The inventory report: every object synced from another tenant, its source tenant and its trust.

It also holds what the audit shares with it: which addresses the index holds for each object, and the one
address that names an object in a report (:func:`primary_address`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from mtotrust._engine import TrustEngine
from mtotrust._errors import IdentityError
from mtotrust._model import DirectoryUser
from mtotrust._policy import Policy
from mtotrust._resolve import _upn_home, home_tenant, parse_identity
from mtotrust._snapshot import Snapshot

__all__ = ["ROW_KEYS", "csv_rows", "inventory", "object_addresses", "object_home", "primary_address", "tenant_name"]

ROW_KEYS = ("user_id", "address", "source_tenant_id", "source_tenant_name", "tenant_state", "partner_in_mto",
            "trust", "reasons")
"""The keys of an inventory row, in contract order (also the CSV header)."""


def object_addresses(snapshot: Snapshot) -> dict[str, list[str]]:
    """Return the addresses the snapshot's index holds for each object: object id → its addresses, sorted.

    An ambiguous address is listed under every object that carries it; an object the index holds under no address
    (nothing valid in ``mail``, the user principal name, ``otherMails`` or ``proxyAddresses``) is absent.
    """
    found: dict[str, list[str]] = {}
    for address in snapshot.addresses():
        for user in snapshot.lookup(address):
            found.setdefault(user.id, []).append(address)
    for addresses in found.values():
        addresses.sort()
    return found


def primary_address(user: DirectoryUser, addresses: Sequence[str]) -> str | None:
    """Return the address that names ``user`` in a report: its ``mail`` in normal form, if the index holds it.

    Otherwise the first of ``addresses`` (the object's indexed addresses, sorted: see :func:`object_addresses`),
    such as the home address an ``#EXT#`` name decodes to for an object synced without ``mail``; ``None`` when
    the index holds no address for it.
    """
    if user.mail:
        try:
            mail = parse_identity(user.mail).address
        except IdentityError:
            mail = None
        if mail in addresses:
            return mail
    return addresses[0] if addresses else None


def object_home(snapshot: Snapshot, user: DirectoryUser, address: str | None) -> str | None:
    """Return the home tenant of ``user``, named in a report by ``address`` (:func:`primary_address`).

    The tenant ``address``'s domain maps to; when it maps to none (a subdomain, a domain the tenant took away
    when it left), the home its ``#EXT#`` user principal name decodes to (as the resolution's home evidence reads
    it; Entra writes that name, where ``otherMails`` may hold any address); else ``None``. The object's other
    addresses are not read: an address proves no home.
    """
    home = home_tenant(snapshot, address.rpartition("@")[2]) if address is not None else None
    if home is not None:
        return home
    upn = _upn_home(snapshot, user)
    return upn if isinstance(upn, str) else None


def tenant_name(snapshot: Snapshot, tenant_id: str | None) -> str | None:
    """Return a tenant's display name: the MTO's (``mto.json``), the local tenant's own, else ``None``."""
    if tenant_id is None:
        return None
    tenant = snapshot.tenants.get(tenant_id)
    if tenant is not None:
        return tenant.display_name
    return snapshot.display_name if tenant_id == snapshot.tenant_id else None


def inventory(snapshot: Snapshot, policy: Policy) -> dict[str, Any]:
    """Return the inventory report: one row per object synced from another tenant (:meth:`Snapshot.is_external`).

    A row's ``address`` is the object's primary mail, or the first address the index holds for it when its
    ``mail`` is missing or not indexed (:func:`primary_address`); ``trust`` and ``reasons`` are what
    :meth:`TrustEngine.resolve` answers for that address under ``policy`` (an ambiguous address is ``untrusted``
    for each object that carries it), and ``source_tenant_id`` the object's home tenant (:func:`object_home`:
    the tenant its domain maps to, else the one its ``#EXT#`` name or another of its addresses names).
    ``source_tenant_name`` is that tenant's display name in ``mto.json`` (``None`` for a tenant outside the MTO:
    ``domains.json`` names none), ``tenant_state`` its MTO state (``None`` outside the MTO), ``partner_in_mto``
    its partner policy's ``isInMultiTenantOrganization`` (``None``: no row, or unset). An object the index holds
    under no address has ``address``, ``trust`` and the tenant fields ``None`` and no reasons.

    Rows are sorted by source tenant name, address and user id (a missing name or address sorts last).
    """
    engine = TrustEngine(snapshot, policy, cache_size=0)
    addresses = object_addresses(snapshot)
    rows = []
    for user in snapshot.users.values():
        if not snapshot.is_external(user):
            continue
        held = addresses.get(user.id, [])
        address = primary_address(user, held)
        resolution = engine.resolve(address) if address is not None else None
        home = object_home(snapshot, user, address)
        tenant = snapshot.tenants.get(home) if home is not None else None
        rows.append({
            "user_id": user.id,
            "address": address,
            "source_tenant_id": home,
            "source_tenant_name": tenant_name(snapshot, home),
            "tenant_state": tenant.state if tenant is not None else None,
            "partner_in_mto": snapshot.partners.get(home) if home is not None else None,
            "trust": resolution.trust.value if resolution is not None else None,
            "reasons": list(resolution.reasons) if resolution is not None else [],
        })
    rows.sort(key=_row_order)
    return {"snapshot_id": snapshot.id, "policy_fingerprint": policy.fingerprint, "rows": rows}


def _row_order(row: Mapping[str, Any]) -> tuple[bool, str, bool, str, str]:
    name, address = row["source_tenant_name"], row["address"]
    return name is None, name or "", address is None, address or "", row["user_id"]


def csv_rows(report: Mapping[str, Any]) -> str:
    r"""Return an inventory report's rows as CSV text: a header of :data:`ROW_KEYS`, then one line per row.

    Written by the :mod:`csv` module (lines end in ``\n``); ``reasons`` are joined by spaces, ``partner_in_mto``
    is ``true``, ``false`` or empty, and a missing value is empty. Values are written as the directory holds them
    (a spreadsheet may read one that starts with ``=`` as a formula: import the file as text), but a lone
    surrogate, which is no UTF-8, is written as its escape ``\\ud800``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ROW_KEYS)
    for row in report["rows"]:
        writer.writerow([_csv_value(row[key]) for key in ROW_KEYS])
    return buffer.getvalue()


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(value) if isinstance(value, list) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
