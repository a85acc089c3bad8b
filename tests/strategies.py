"""Shared builders and hypothesis strategies for the trust-core tests.

Builders write the JSON documents a snapshot folder holds (Graph v1.0 response bodies for the organization, the
MTO tenants, the cross-tenant access partners and the users, plus mtotrust's domain-to-tenant table) in memory
and hand them to ``Snapshot.from_documents``, so a test states exactly the directory it reasons about. The
hand-written folder fixture lives in ``tests/data/mini``; ``MINI`` points at it.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from mtotrust import Snapshot
from mtotrust._builder import ext_upn, native_object, synced_member_object

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini"

# Tenants of the in-memory directory: the local tenant and one partner per MTO state.
LOCAL = "11111111-1111-4111-8111-111111111111"  # contoso, owner
ACTIVE = "22222222-2222-4222-8222-222222222222"  # fabrikam, active
PENDING = "33333333-3333-4333-8333-333333333333"  # tailspintoys, pending
REMOVED = "55555555-5555-4555-8555-555555555555"  # northwindtraders, removed
LITWARE = "44444444-4444-4444-8444-444444444444"  # litware, active (partner policy varies per test)
OUTSIDE = "66666666-6666-4666-8666-666666666666"  # adatum: known domain, not in mto.json
ODD = "77777777-7777-4777-8777-777777777777"  # proseware: in mto.json, state unknownFutureValue

LOCAL_DOMAINS = ("contoso.com", "contoso.onmicrosoft.com")
HOST = "contoso.onmicrosoft.com"  # where #EXT# UPNs live

DOMAINS = {
    "contoso.com": LOCAL,
    "contoso.onmicrosoft.com": LOCAL,
    "fabrikam.com": ACTIVE,
    "tailspintoys.com": PENDING,
    "northwindtraders.com": REMOVED,
    "litware.com": LITWARE,
    "adatum.com": OUTSIDE,
    "proseware.com": ODD,
}
STATES = {LOCAL: "active", ACTIVE: "active", PENDING: "pending", REMOVED: "removed", LITWARE: "active",
          ODD: "unknownFutureValue"}


def organization(tenant_id: str = LOCAL, domains: tuple[str, ...] = LOCAL_DOMAINS) -> dict[str, Any]:
    """Return an ``organization.json`` body."""
    return {"value": [{"id": tenant_id, "displayName": "Contoso", "verifiedDomains": [
        {"name": d, "isDefault": i == 0, "isInitial": d.endswith(".onmicrosoft.com"), "type": "Managed"}
        for i, d in enumerate(domains)]}]}


def mto(states: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Return an ``mto.json`` body; a ``None`` state leaves the field out (ReadBasic permission)."""
    rows = []
    for tenant_id, state in (STATES if states is None else states).items():
        row: dict[str, Any] = {"tenantId": tenant_id, "displayName": tenant_id[:4],
                               "role": "owner" if tenant_id == LOCAL else "member"}
        if state is not None:
            row["state"] = state
        rows.append(row)
    return {"value": rows}


def domains(mapping: dict[str, str] | None = None) -> dict[str, Any]:
    """Return a ``domains.json`` body."""
    return {"value": [{"domainName": d, "tenantId": t} for d, t in (DOMAINS if mapping is None else mapping).items()]}


def partners(mapping: dict[str, bool | None]) -> dict[str, Any]:
    """Return a ``partners.json`` body: ``isInMultiTenantOrganization`` per tenant id."""
    return {"value": [{"tenantId": t, "isInMultiTenantOrganization": v, "isServiceProvider": False}
                      for t, v in mapping.items()]}


def synced(uid: str, address: str, **overrides: Any) -> dict[str, Any]:
    """Return a user object as CTS creates it: external member with an ``#EXT#`` UPN and a federated identity.

    ``creationType`` is ``Invitation``. ``overrides`` replace fields; a value of ``...`` removes the field (as
    Graph does without ``$select``).
    """
    return _apply(synced_member_object(uid, address, host=HOST, creation_type="Invitation"), overrides)


def native(uid: str, address: str, **overrides: Any) -> dict[str, Any]:
    """Return a native (internal) member object of the local tenant; ``overrides`` as for :func:`synced`."""
    return _apply(native_object(uid, address, host=HOST), overrides)


def _apply(user: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is ...:
            user.pop(key, None)
        else:
            user[key] = value
    return user


def build(users: list[dict[str, Any]] = (), *, states: dict[str, str | None] | None = None,  # type: ignore[assignment]
          partner_rows: dict[str, bool | None] | None = None, domain_map: dict[str, str] | None = None,
          delta: list[list[dict[str, Any]]] = (),  # type: ignore[assignment]
          local_domains: tuple[str, ...] = LOCAL_DOMAINS, taken_at: dt.datetime | None = None) -> Snapshot:
    """Build a snapshot of the standard tenants with ``users`` (one page) and optional partner rows."""
    return Snapshot.from_documents(
        taken_at=taken_at,
        organization=organization(domains=local_domains), mto=mto(states), domains=domains(domain_map),
        users=[{"value": copy.deepcopy(list(users))}],
        partners=None if partner_rows is None else partners(partner_rows),
        delta=[{"value": copy.deepcopy(page)} for page in delta],
    )


BLOCK_HYPOTHESIS = (
    "import sys\n"
    "class B:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'hypothesis': raise ImportError(name)\n"
    "sys.meta_path.insert(0, B())\n"
)
"""The opening of a ``python -c`` program in which hypothesis cannot be imported (a plain install's view)."""


# -- hypothesis strategies ------------------------------------------------------------------------------------

_ALIASES = st.sampled_from(["ann", "bob", "cy", "dee", "ed.wu", "fay-x"])
_FOREIGN = ("fabrikam.com", "tailspintoys.com", "northwindtraders.com", "litware.com", "adatum.com",
            "proseware.com", "example.org")
TRUST_NAMES = ("untrusted", "external", "guest", "mto_member", "internal")
TENANT_STATES = ("active", "pending", "removed", "unknownFutureValue", None)


@st.composite
def user_objects(draw: st.DrawFn, uid: str) -> dict[str, Any]:
    """Draw one user object: synced, native or guest-like, with any mix of the fields that decide trust."""
    alias = draw(_ALIASES)
    kind = draw(st.sampled_from(["synced", "native", "native_foreign"]))
    if kind == "native":
        user = native(uid, f"{alias}@{draw(st.sampled_from(LOCAL_DOMAINS))}")
    elif kind == "native_foreign":
        user = native(uid, f"{alias}@contoso.com", otherMails=[f"{alias}@{draw(st.sampled_from(_FOREIGN))}"])
    else:
        domain = draw(st.sampled_from(_FOREIGN))
        user = synced(uid, f"{alias}@{domain}")
        if draw(st.booleans()):  # the UPN names another home than the mail
            other = draw(st.sampled_from(_FOREIGN))
            user["userPrincipalName"] = ext_upn(f"{alias}@{other}", HOST)
    for field, values in (("userType", ["Member", "Guest", None, ...]),
                          ("accountEnabled", [True, False, None, ...]),
                          ("creationType", ["Invitation", None, ...]),
                          ("identities", [[], ...])):
        if draw(st.integers(0, 3)) == 0:
            _apply(user, {field: draw(st.sampled_from(values))})
    return user


@st.composite
def snapshot_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Draw the keyword arguments of ``Snapshot.from_documents``: random tenant states, partners and users."""
    states: dict[str, str | None] = {LOCAL: "active"}
    for tenant in (ACTIVE, PENDING, REMOVED, LITWARE, ODD):
        state = draw(st.sampled_from(TENANT_STATES))
        if state is not None or draw(st.booleans()):
            states[tenant] = state
        # else: the tenant is left out of mto.json altogether
    partner_rows = {t: draw(st.sampled_from([True, False, None])) for t in (ACTIVE, LITWARE, OUTSIDE, PENDING)
                    if draw(st.booleans())}
    count = draw(st.integers(0, 6))
    users = [draw(user_objects(f"u{i}")) for i in range(count)]
    return {"organization": organization(), "mto": mto(states), "domains": domains(),
            "users": [{"value": users}], "partners": partners(partner_rows) if partner_rows else None}


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """Draw a small random snapshot of the standard tenants."""
    return Snapshot.from_documents(**draw(snapshot_documents()))


def probe_addresses(snapshot: Snapshot) -> list[str]:
    """Return addresses worth asking about in ``snapshot``: every indexed one plus a few unknown ones."""
    return [*sorted(snapshot.addresses()), "nobody@fabrikam.com", "x@example.org", "not-an-address", "x@fabrikarn.com"]


trust_names = st.sampled_from(TRUST_NAMES)
