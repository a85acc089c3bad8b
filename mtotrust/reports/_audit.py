"""The audit report: the directory's MTO health, from the snapshot alone.

Each finding kind of :data:`FINDINGS` is one check of the snapshot; the policy only names the report (its
fingerprint): no finding depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtotrust._model import DirectoryUser, Tenant
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust.reports._inventory import object_addresses, object_home, primary_address, tenant_name

__all__ = ["FINDINGS", "MTO_LIMIT", "MTO_LIMIT_SOURCE", "SEVERITIES", "audit"]

SEVERITIES = ("info", "low", "medium", "high")
"""Finding severities, ascending."""

MTO_LIMIT = 100
"""The documented limit of active tenants in one MTO, the owner included."""
MTO_LIMIT_SOURCE = "https://learn.microsoft.com/entra/identity/multi-tenant-organizations/multi-tenant-organization-overview"
"""Where Microsoft states :data:`MTO_LIMIT` (the overview's limits section)."""

_EXAMPLES = 5

FINDINGS: dict[str, tuple[str, str]] = {
    "synced_from_removed_tenant": (
        "high", "Remove these objects or confirm each should stay (take the tenant's groups out of its MTO_Sync "
        "configuration and restart provisioning): the tenant has left the MTO, but its synced users stay until "
        "an admin acts."),
    "synced_from_pending_tenant": (
        "medium", "Finish the tenant's join, or remove it from the MTO and its synced users with it: until it is "
        "active its users are no MTO members."),
    "mto_user_typed_guest": (
        "medium", "Set userType to Member in the cross-tenant sync attribute mapping (apply it always, not only on "
        "creation): a Guest-typed MTO user loses the Teams MTO features and is trusted as a guest only."),
    "address_claimed_twice": (
        "high", "Remove the address from all objects but the one it belongs to (mail, otherMails, "
        "proxyAddresses): an address two objects claim is untrusted for every app."),
    "native_object_with_partner_domain": (
        "medium", "Remove the partner-domain address from the local object (or replace the object by the "
        "partner's synced account): a native object's address at another tenant's domain proves nothing about "
        "that tenant."),
    "mto_tenant_without_domain": (
        "medium", "Map the tenant's verified domains to it in domains.json (findTenantInformationByDomainName): "
        "without a domain none of its users can be recognised as an MTO member."),
    "domain_outside_mto": (
        "info", "Nothing to do if intended: users at these domains are trusted as guests at most; add the tenant "
        "to the MTO to trust its synced members as MTO members."),
    "confusable_domain": (
        "high", "Check and remove these objects: their domain imitates a known domain, so every address at it is "
        "untrusted, and an object carrying one may be a spoofing attempt."),
    "partner_policy_disagrees": (
        "medium", "Set isInMultiTenantOrganization on the tenant's cross-tenant access partner policy to match "
        "its MTO state (true while it is active, false once it has left): leaving the MTO does not change it."),
    "external_without_mail": (
        "low", "Sync mail for these users (cross-tenant sync maps it; the admin-center share-users flow syncs no "
        "mail or proxyAddresses): without it they are found only by their #EXT# name or otherMails."),
    "mto_size": (
        "info", f"Nothing to do below the documented limit of {MTO_LIMIT} active tenants, the owner included "
        f"({MTO_LIMIT_SOURCE}); the join that would exceed it fails unless Microsoft support raises the limit."),
}
"""Every finding kind, in catalogue order: kind → (severity, fix). ``mto_size`` is ``high`` above the limit."""

_MTO_SIZE_OVER = (f"Remove tenants or ask Microsoft support to raise the limit: more than the documented {MTO_LIMIT} "
                  f"active tenants, the owner included ({MTO_LIMIT_SOURCE}), is not supported self-service.")


def audit(snapshot: Snapshot, policy: Policy) -> dict[str, Any]:
    """Return the audit report of ``snapshot``: every finding of :data:`FINDINGS` whose count is not 0.

    What each kind counts (an object's home tenant is the one its report address maps to, else the one its
    ``#EXT#`` name or another of its addresses names; see :func:`~mtotrust.reports._inventory.object_home`):

    - ``synced_from_removed_tenant``, ``synced_from_pending_tenant``: external objects whose home tenant is in
      ``mto.json`` in state ``removed`` (``pending``);
    - ``mto_user_typed_guest``: external objects of an ``active`` MTO tenant with ``userType`` Guest;
    - ``address_claimed_twice``: addresses the index maps to several objects (counted per address; its example
      lists the first five objects' ids as ``user_ids`` and how many objects carry it as ``user_count``);
    - ``native_object_with_partner_domain``: Member-typed objects that are not external and carry an address at
      a domain of another tenant (``domains.json``);
    - ``mto_tenant_without_domain``: MTO tenants other than the local one that no domain maps to;
    - ``domain_outside_mto``: domains mapped to a tenant that is neither the local one nor in the MTO;
    - ``confusable_domain``: domains of indexed addresses that are unknown but confusable with a known one
      (:meth:`Snapshot.lookalike_of`), one example address each;
    - ``partner_policy_disagrees``: tenants whose partner policy says ``isInMultiTenantOrganization`` false while
      they are active, or true while they are removed or not in the MTO (a pending tenant is not judged);
    - ``external_without_mail``: external objects without ``mail``;
    - ``mto_size``: the active tenants of ``mto.json`` (always reported; ``high`` above :data:`MTO_LIMIT`);
      when ``mto.json`` was read without states, a tenant of unknown state counts as active, and the example
      (``tenants_listed``, ``states_unknown``) and the fix say so.

    Each finding is ``{"kind", "severity", "count", "examples", "fix"}``, with at most five examples in sorted
    order (objects by address and id, tenants by name and id, domains by name). Findings come by severity,
    highest first, then in catalogue order. The report is ``{"snapshot_id", "policy_fingerprint", "findings"}``.
    """
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FINDINGS}
    addresses = object_addresses(snapshot)
    local = snapshot.tenant_id
    for user in snapshot.users.values():
        held = addresses.get(user.id, [])
        if snapshot.is_external(user):
            address = primary_address(user, held)
            _external(snapshot, user, address, object_home(snapshot, user, address), found)
        elif user.user_type == "Member":
            foreign = next((a for a in held if _other_tenant(snapshot, a) is not None), None)
            if foreign is not None:
                domain = foreign.rpartition("@")[2]
                found["native_object_with_partner_domain"].append(
                    {"user_id": user.id, "address": foreign, "domain": domain,
                     "tenant_id": snapshot.domain_tenants[domain]})
    found["address_claimed_twice"] = _claimed_twice(snapshot)
    found["confusable_domain"] = _confusable(snapshot)
    mapped = set(snapshot.domain_tenants.values())
    found["mto_tenant_without_domain"] = [_tenant(snapshot, t) for t in snapshot.tenants.values()
                                          if t.tenant_id != local and t.tenant_id not in mapped]
    found["domain_outside_mto"] = [{"domain": domain, "tenant_id": tenant_id}
                                   for domain, tenant_id in snapshot.domain_tenants.items()
                                   if tenant_id != local and tenant_id not in snapshot.tenants]
    found["partner_policy_disagrees"] = _partner_disagreements(snapshot)
    findings = [_finding(kind, items) for kind, items in found.items() if items and kind != "mto_size"]
    findings.append(_mto_size(snapshot))
    order = list(FINDINGS)
    findings.sort(key=lambda f: (-SEVERITIES.index(f["severity"]), order.index(f["kind"])))
    return {"snapshot_id": snapshot.id, "policy_fingerprint": policy.fingerprint, "findings": findings}


def _mto_size(snapshot: Snapshot) -> dict[str, Any]:
    """Return the ``mto_size`` finding: active tenants, or each tenant listed when mto.json has no states."""
    tenants = list(snapshot.tenants.values())
    unknown = sum(1 for t in tenants if t.state is None)
    count = sum(1 for t in tenants if t.state in ("active", None))
    over = count > MTO_LIMIT
    fix = _MTO_SIZE_OVER if over else FINDINGS["mto_size"][1]
    examples: list[dict[str, Any]] = []
    if unknown:
        fix = (f"{fix} The states of {unknown} tenants are unknown (mto.json was read without them): they are "
               "counted as active; read mto.json with full permission to count only the active ones.")
        examples = [{"tenants_listed": len(tenants), "states_unknown": unknown}]
    return {"kind": "mto_size", "severity": "high" if over else "info", "count": count, "examples": examples,
            "fix": fix}


def _external(snapshot: Snapshot, user: DirectoryUser, address: str | None, home: str | None,
              found: dict[str, list[dict[str, Any]]]) -> None:
    """File an external object, named by ``address``, at home in tenant ``home``, under each kind it falls in."""
    tenant = snapshot.tenants.get(home) if home is not None and home != snapshot.tenant_id else None
    example = {"user_id": user.id, "address": address}
    if tenant is not None:
        with_tenant = {**example, "tenant_id": tenant.tenant_id, "tenant_name": tenant.display_name,
                       "state": tenant.state}
        if tenant.state == "removed":
            found["synced_from_removed_tenant"].append(with_tenant)
        elif tenant.state == "pending":
            found["synced_from_pending_tenant"].append(with_tenant)
        elif tenant.state == "active" and user.user_type == "Guest":
            found["mto_user_typed_guest"].append(with_tenant)
    if not user.mail:
        found["external_without_mail"].append(example)


def _other_tenant(snapshot: Snapshot, address: str) -> str | None:
    """Return the tenant an address's domain maps to when that is another tenant than the local one."""
    domain = address.rpartition("@")[2]
    if domain in snapshot.local_domains:
        return None
    tenant_id = snapshot.domain_tenants.get(domain)
    return tenant_id if tenant_id != snapshot.tenant_id else None


def _claimed_twice(snapshot: Snapshot) -> list[dict[str, Any]]:
    found = []
    for address in snapshot.addresses():
        users = snapshot.lookup(address)
        if len(users) > 1:
            found.append({"user_id": users[0].id, "address": address,
                          "user_ids": [u.id for u in users[:_EXAMPLES]], "user_count": len(users)})
    return found


def _confusable(snapshot: Snapshot) -> list[dict[str, Any]]:
    """One example per unknown domain of an indexed address that is confusable with a known domain."""
    first: dict[str, str] = {}
    for address in snapshot.addresses():
        domain = address.rpartition("@")[2]
        if domain not in first or address < first[domain]:
            first[domain] = address
    found = []
    for domain, address in first.items():
        known = snapshot.lookalike_of(domain)
        if known is not None:
            found.append({"user_id": snapshot.lookup(address)[0].id, "address": address, "domain": domain,
                          "confusable_with": known})
    return found


def _tenant(snapshot: Snapshot, tenant: Tenant) -> dict[str, Any]:
    return {"tenant_id": tenant.tenant_id, "tenant_name": tenant_name(snapshot, tenant.tenant_id),
            "state": tenant.state}


def _partner_disagreements(snapshot: Snapshot) -> list[dict[str, Any]]:
    found = []
    for tenant_id, in_mto in snapshot.partners.items():
        if tenant_id == snapshot.tenant_id or in_mto is None:
            continue
        tenant = snapshot.tenants.get(tenant_id)
        state = tenant.state if tenant is not None else None
        if (state == "active" and not in_mto) or (in_mto and (tenant is None or state == "removed")):
            found.append({"tenant_id": tenant_id, "tenant_name": tenant_name(snapshot, tenant_id), "state": state,
                          "partner_in_mto": in_mto})
    return found


def _finding(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    severity, fix = FINDINGS[kind]
    return {"kind": kind, "severity": severity, "count": len(items),
            "examples": sorted(items, key=_example_order)[:_EXAMPLES], "fix": fix}


def _example_order(example: Mapping[str, Any]) -> tuple[bool, str, str]:
    """Sort objects by address and id, tenants by name and id, domains by name (a missing value last)."""
    if "user_id" in example:
        first, second = example["address"], example["user_id"]
    elif "tenant_name" in example:
        first, second = example["tenant_name"], example["tenant_id"]
    else:
        first, second = example["domain"], ""
    return first is None, first or "", second
