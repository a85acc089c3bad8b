"""Seeded, synthetic Graph-shaped MTO directories for the benchmarks, as snapshot folders ``Snapshot.load`` reads.

Everything is derived from ``random.Random(seed)``: the same ``(users, seed)`` gives byte-identical files, the
same query mix and the same delta pages.

Population (fractions of ``users``):

* ~60 % internal members at the local verified domains (2 % of them disabled shared mailboxes);
* ~25 % cross-tenant-synced members of **active** MTO tenants (``#EXT#`` UPN, ``userType`` Member,
  ``creationType`` Invitation, a ``federated`` identity issued by ``ExternalAzureAD``);
* ~5 % synced members of **pending** or **removed** MTO tenants (same shape);
* ~7 % B2B guests (``userType`` Guest), from MTO tenants and from non-MTO domains;
* ~3 % odd objects: disabled synced members, synced members without ``accountEnabled`` or ``userType``, and
  native objects carrying a foreign ``otherMails`` address; plus, for one active tenant, a partner-policy row
  saying ``isInMultiTenantOrganization: false``.

Tenants: 20 MTO tenants besides the local owner (12 active, 4 pending, 4 removed), each with a primary and an
``onmicrosoft.com`` domain, and 10 non-MTO tenants in ``domains.json``.

Command line::

    python -m benchmarks.generate OUT_DIR --users 100000 [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mtotrust._builder import display_name_for, external_object, native_object

__all__ = ["Directory", "build", "delta_pages", "parse_size", "query_mix", "write_folder"]

LOCAL_TENANT = "0c0c0c0c-0000-4000-8000-000000000001"
LOCAL_DOMAINS = ("contoso.com", "contoso.onmicrosoft.com", "contoso.co.uk")
_INITIAL = "contoso.onmicrosoft.com"
PAGE_SIZE = 1000

_FIRST = ("ada", "bea", "cai", "dev", "eli", "fay", "gus", "hal", "ivy", "jon", "kai", "lea", "max", "nia", "oli",
          "pia", "quin", "ray", "sam", "tia", "uma", "vic", "wes", "xia", "yan", "zoe", "noor", "omar", "ines", "jae")
_LAST = ("abe", "berg", "cruz", "diaz", "eng", "fox", "gray", "hart", "ito", "juarez", "kim", "lund", "moss",
         "nagy", "ortiz", "park", "quist", "rossi", "sato", "tan", "ueda", "vega", "wolf", "xu", "young", "zhou")


def parse_size(text: str) -> int:
    """``"10k"`` → 10000, ``"1m"`` → 1000000, ``"2500"`` → 2500."""
    t = text.strip().lower()
    mult = 1
    if t.endswith("k"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    return int(float(t) * mult)


def size_label(n: int) -> str:
    """Inverse of :func:`parse_size` for round numbers."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


class Directory:
    """The generated documents (decoded JSON) plus the facts the query mix is drawn from."""

    def __init__(self, users: int, seed: int) -> None:
        self.n = users
        self.seed = seed
        self.organization: dict[str, Any] = {}
        self.mto: dict[str, Any] = {}
        self.domains: dict[str, Any] = {}
        self.partners: dict[str, Any] = {}
        self.users: list[dict[str, Any]] = []
        self.known_domains: list[str] = []   # local + domains.json
        self.unknown_domains: list[str] = []

    def pages(self) -> list[dict[str, Any]]:
        """``GET /users`` pages of at most :data:`PAGE_SIZE` objects."""
        return [{"value": self.users[i:i + PAGE_SIZE]} for i in range(0, len(self.users), PAGE_SIZE)]

    def documents(self) -> dict[str, Any]:
        """Keyword arguments for ``Snapshot.from_documents``."""
        return {"organization": self.organization, "mto": self.mto, "domains": self.domains,
                "partners": self.partners, "users": self.pages()}


def _tenants(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (mto rows, domain rows, partner rows)."""
    mto = [{"tenantId": LOCAL_TENANT.upper(), "displayName": "Contoso", "role": "owner", "state": "active",
            "addedByTenantId": LOCAL_TENANT, "transitionDetails": None}]
    domains = [{"domainName": d, "tenantId": LOCAL_TENANT, "displayName": "Contoso"} for d in LOCAL_DOMAINS]
    partners = []
    states = ["active"] * 12 + ["pending"] * 4 + ["removed"] * 4
    for i, state in enumerate(states):
        tid = _uuid(rng)
        name = f"partner{i:02d}"
        # Graph returns GUIDs lower case; a few upper-case ones exercise case-insensitive ids.
        mto.append({"tenantId": tid.upper() if i % 5 == 0 else tid, "displayName": name.title(), "role": "member",
                    "state": state, "addedByTenantId": LOCAL_TENANT, "transitionDetails": None})
        domains.append({"domainName": f"{name}.com", "tenantId": tid, "displayName": name.title()})
        domains.append({"domainName": f"{name}.onmicrosoft.com", "tenantId": tid, "displayName": name.title()})
        # Partner rows for most tenants; tenant 3 (active) says it is not in the MTO (partner policy veto).
        if i % 4 != 1:
            partners.append({"tenantId": tid, "isInMultiTenantOrganization": i != 3,
                             "inboundTrust": None, "b2bCollaborationInbound": None})
    for i in range(10):
        tid = _uuid(rng)
        domains.append({"domainName": f"outside{i:02d}.net", "tenantId": tid, "displayName": f"Outside{i:02d}"})
    return mto, domains, partners


def _internal(rng: random.Random, i: int, enabled: bool = True) -> dict[str, Any]:
    alias = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{i}"
    addr = f"{alias}@{'contoso.co.uk' if i % 10 == 0 else 'contoso.com'}"
    return native_object(_uuid(rng), addr, host=_INITIAL, display_name=display_name_for(addr),
                         proxies=[f"SMTP:{addr}", f"smtp:{alias}@{_INITIAL}"], enabled=enabled, external_state=None)


def _external(rng: random.Random, i: int, home: str, *, user_type: str | None = "Member",
              enabled: bool | None = True) -> dict[str, Any]:
    addr = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{i}@{home}"
    return external_object(_uuid(rng), addr, host=_INITIAL, display_name=display_name_for(addr),
                           other_mails=[addr] if i % 3 == 0 else [], user_type=... if user_type is None else user_type,
                           creation_type="Invitation", enabled=... if enabled is None else enabled,
                           external_state="Accepted")


def build(users: int, seed: int = 7) -> Directory:
    """Generate a directory of ``users`` objects in memory."""
    rng = random.Random(seed)
    d = Directory(users, seed)
    mto, domain_rows, partner_rows = _tenants(rng)
    d.organization = {"value": [{
        "id": LOCAL_TENANT, "displayName": "Contoso",
        "verifiedDomains": [{"name": n, "isDefault": n == "contoso.com", "isInitial": n == _INITIAL,
                             "type": "Managed", "capabilities": "Email"} for n in LOCAL_DOMAINS],
    }]}
    d.mto = {"value": mto}
    d.domains = {"value": domain_rows}
    d.partners = {"value": partner_rows}
    states = {row["tenantId"].lower(): row["state"] for row in mto}
    by_state: dict[str, list[str]] = {"active": [], "pending": [], "removed": []}
    outside: list[str] = []
    for row in domain_rows:
        if row["tenantId"] == LOCAL_TENANT:
            continue
        state = states.get(row["tenantId"].lower())
        if state is None:
            outside.append(row["domainName"])
        elif row["domainName"].endswith(".com") and not row["domainName"].endswith("onmicrosoft.com"):
            by_state[state].append(row["domainName"])
    inactive = by_state["pending"] + by_state["removed"]
    mto_primary = by_state["active"] + inactive
    d.known_domains = [r["domainName"] for r in domain_rows]
    d.unknown_domains = [f"unknown{i:03d}.org" for i in range(200)] + [f"partner{i:02d}.com.evil.example"
                                                                    for i in range(5)]

    out = d.users
    choice, rand = rng.choice, rng.random
    for i in range(users):
        r = rand()
        if r < 0.60:
            out.append(_internal(rng, i, enabled=rand() >= 0.02))
        elif r < 0.85:
            out.append(_external(rng, i, choice(by_state["active"])))
        elif r < 0.90:
            out.append(_external(rng, i, choice(inactive)))
        elif r < 0.97:
            home = choice(outside) if rand() < 0.5 else choice(mto_primary)
            out.append(_external(rng, i, home, user_type="Guest"))
        else:
            kind = rand()
            home = choice(by_state["active"])
            if kind < 0.3:
                out.append(_external(rng, i, home, enabled=False))
            elif kind < 0.5:
                out.append(_external(rng, i, home, enabled=None))
            elif kind < 0.7:
                out.append(_external(rng, i, home, user_type=None))
            else:  # a native object carrying a foreign address proves nothing
                user = _internal(rng, i)
                alias = user["mail"].split("@")[0]
                user["otherMails"] = [f"{alias}.home@{home}"]
                out.append(user)
    return d


def write_folder(d: Directory, folder: str | os.PathLike[str]) -> Path:
    """Write ``d`` as a snapshot folder (one JSON document per file, ``users/NNNN.json`` pages); returns it."""
    root = Path(folder)
    (root / "users").mkdir(parents=True, exist_ok=True)
    for name, doc in (("organization.json", d.organization), ("mto.json", d.mto), ("domains.json", d.domains),
                      ("partners.json", d.partners)):
        with (root / name).open("w", encoding="utf-8") as fh:
            json.dump(doc, fh)
    for n, page in enumerate(d.pages(), start=1):
        with (root / "users" / f"{n:04d}.json").open("w", encoding="utf-8") as fh:
            json.dump(page, fh)
    (root / "delta").mkdir(exist_ok=True)  # present and empty: benchmark deltas are applied in memory
    return root


def _noise(rng: random.Random, address: str) -> str:
    r = rng.random()
    if r < 0.25:
        address = address.upper()
    elif r < 0.45:
        local, _, domain = address.partition("@")
        address = f"{local.title()}@{domain.upper()}"
    r = rng.random()
    if r < 0.15:
        address = f"  {address}"
    elif r < 0.25:
        address = f"{address}\t "
    return address


_INVALID = ("no-at-sign.example", "two@@contoso.com", "trailing.dot@contoso.com.", "@contoso.com", "x@",
            "nul\x00byte@contoso.com", "zero\u200bwidth@partner00.com", "full\uff20width@contoso.com",
            "\"quoted\"@contoso.com", "a..b@contoso.com")


def query_mix(d: Directory, count: int, seed: int | None = None) -> list[str]:
    """Return ``count`` identities to ask about: ~69 % known addresses, ~30 % misses, ~1 % invalid.

    Known addresses are a user's ``mail``, a proxy address or its (``#EXT#``) UPN, with case and blank noise.
    Misses are unknown local parts at known domains (local and partner) and addresses at unknown domains.
    """
    rng = random.Random(d.seed * 1_000_003 + count if seed is None else seed)
    users = d.users
    out: list[str] = []
    for _ in range(count):
        r = rng.random()
        if r < 0.69:
            u = users[rng.randrange(len(users))]
            k = rng.random()
            if u.get("otherMails") and k < 0.3:
                addr = u["otherMails"][0]  # for native objects: a foreign address that proves nothing
            elif k < 0.55 or not u.get("mail"):
                addr = u.get("mail") or u["userPrincipalName"]
            elif k < 0.80:
                addr = u["userPrincipalName"]  # #EXT# form for synced members and guests
            else:
                addr = rng.choice(u["proxyAddresses"])[5:]
            out.append(_noise(rng, addr))
        elif r < 0.84:
            domain = rng.choice(d.known_domains)
            out.append(_noise(rng, f"{rng.choice(_FIRST)}.nobody{rng.randrange(10**6)}@{domain}"))
        elif r < 0.99:
            domain = rng.choice(d.unknown_domains)
            out.append(_noise(rng, f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10**6)}@{domain}"))
        else:
            out.append(rng.choice(_INVALID))
    return out


def delta_pages(d: Directory, changes: int = 1000, seed: int | None = None) -> list[dict[str, Any]]:
    """Return ``GET /users/delta`` pages with ``changes`` entries (one page per :data:`PAGE_SIZE`).

    ~60 % partial updates of existing users (``accountEnabled`` or ``userType`` flips, new ``otherMails``),
    ~20 % new synced members, ~20 % removals; a few ids appear twice.
    """
    rng = random.Random(d.seed * 7919 + changes if seed is None else seed)
    users = d.users
    active = [r["domainName"] for r in d.domains["value"] if r["domainName"].startswith("partner0")
              and r["domainName"].endswith(".com") and not r["domainName"].endswith("onmicrosoft.com")]
    entries: list[dict[str, Any]] = []
    for j in range(changes):
        r = rng.random()
        if r < 0.6 or j < 2:
            u = users[rng.randrange(len(users))]
            k = rng.random()
            if k < 0.4:
                entries.append({"id": u["id"], "accountEnabled": not u.get("accountEnabled", True)})
            elif k < 0.7:
                entries.append({"id": u["id"], "userType": "Guest" if u.get("userType") == "Member" else "Member"})
            else:
                entries.append({"id": u["id"], "displayName": "renamed", "otherMails": [f"d{j}.alt@litware.example"]})
        elif r < 0.8:
            entries.append(_external(rng, len(users) + j, rng.choice(active)))
        elif r < 0.98:
            entries.append({"id": users[rng.randrange(len(users))]["id"], "@removed": {"reason": "changed"}})
        else:
            entries.append(dict(entries[rng.randrange(len(entries))]))  # the same id twice
    return [{"value": entries[i:i + PAGE_SIZE]} for i in range(0, len(entries), PAGE_SIZE)]


def iter_sizes(text: str) -> Iterator[int]:
    """Parse ``"10k,100k"``."""
    for part in text.split(","):
        if part.strip():
            yield parse_size(part)


def main(argv: list[str] | None = None) -> int:
    """Write one synthetic snapshot folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write (created)")
    parser.add_argument("--users", default="10k", help="number of users: 1k, 10k, 100k, 1m or a number")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    d = build(parse_size(args.users), args.seed)
    t1 = time.perf_counter()
    write_folder(d, args.out)
    t2 = time.perf_counter()
    print(f"{len(d.users)} users: built in {t1 - t0:.1f} s, written in {t2 - t1:.1f} s to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
