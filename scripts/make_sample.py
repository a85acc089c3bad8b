#!/usr/bin/env python3
"""Generate the bundled sample MTO snapshot in ``mtotrust/sample/``.

The sample is a fictitious multi-tenant organization seen from the directory of its owner, Contoso.
Every Graph file holds a Microsoft Graph v1.0 response body in the shape Graph returns it (the snapshot
folder contract); ``domains.json`` and ``demo.json`` are mtotrust's own formats.

The output is committed as source data. The user objects come from mtotrust's own Graph shapes
(``mtotrust._builder``); everything else is standard library. The generator is deterministic: one
``random.Random(2024)`` drawn in a fixed order, JSON written with ``indent=1``, sorted keys, ASCII escapes
and a trailing newline, so two runs give byte-identical files.

Usage::

    python scripts/make_sample.py            # (re)write mtotrust/sample/
    python scripts/make_sample.py --out DIR  # write somewhere else
    python scripts/make_sample.py --check    # exit 1 if the committed sample is stale
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from pathlib import Path
from types import EllipsisType
from typing import Any

from mtotrust._builder import external_object, native_object

SEED = 2024
PAGE_SIZE = 100
GRAPH = "https://graph.microsoft.com/v1.0"
SELECT = (
    "id,displayName,userPrincipalName,mail,otherMails,proxyAddresses,userType,creationType,"
    "externalUserState,accountEnabled,identities"
)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "mtotrust" / "sample"

# --- tenants -----------------------------------------------------------------------------------------------

CONTOSO = "11111111-1111-4111-8111-111111111111"
FABRIKAM = "22222222-2222-4222-8222-222222222222"
TAILSPIN = "33333333-3333-4333-8333-333333333333"
LITWARE = "44444444-4444-4444-8444-444444444444"
NORTHWIND = "55555555-5555-4555-8555-555555555555"
ADATUM = "66666666-6666-4666-8666-666666666666"
WOODGROVE = "77777777-7777-4777-8777-777777777777"  # active in the MTO, but no domain of it in domains.json

LOCAL_HOST = "contoso.onmicrosoft.com"  # where #EXT# UPNs live, and the issuer of every local UPN identity

# (domainName, tenantId, displayName): every domain findTenantInformationByDomainName was asked about.
DOMAINS = [
    ("contoso.com", CONTOSO, "Contoso"),
    ("contoso.onmicrosoft.com", CONTOSO, "Contoso"),
    ("contoso.co.uk", CONTOSO, "Contoso"),
    ("fabrikam.com", FABRIKAM, "Fabrikam"),
    ("fabrikam.onmicrosoft.com", FABRIKAM, "Fabrikam"),
    ("litware.com", LITWARE, "Litware"),
    ("tailspintoys.com", TAILSPIN, "Tailspin"),
    ("northwindtraders.com", NORTHWIND, "Northwind"),
    ("adatum.com", ADATUM, "Adatum"),
]
WOODGROVE_DOMAIN = "woodgrovebank.com"  # Woodgrove Bank's users' domain: deliberately not in DOMAINS
LOOKALIKE_DOMAIN = "fabrikarn.com"  # "rn" for "m": a UTS-39 confusable of fabrikam.com

# --- names -------------------------------------------------------------------------------------------------

FIRST = [
    "Avery", "Blake", "Casey", "Devon", "Elliot", "Finley", "Harper", "Hayden", "Jordan", "Kai",
    "Logan", "Morgan", "Noah", "Parker", "Quinn", "Reese", "Riley", "Rowan", "Skyler", "Taylor",
    "Adele", "Bianca", "Chloe", "Diego", "Emil", "Farah", "Grace", "Hugo", "Ines", "Jonas",
    "Leila", "Mateo", "Nadia", "Omar", "Priya", "Ravi", "Sofia", "Tomas", "Uma", "Wei",
]  # fmt: skip
LAST = [
    "Chen", "Garcia", "Patel", "Kim", "Nguyen", "Smith", "Johnson", "Brown", "Martin", "Rossi",
    "Muller", "Silva", "Kowalski", "Okafor", "Haddad", "Larsen", "Novak", "Tanaka", "Dubois", "Murphy",
    "Fischer", "Costa", "Ivanova", "Moreau", "Lindqvist", "Abe", "Mensah", "Ortiz", "Weber", "Young",
]  # fmt: skip
CONSUMER_DOMAINS = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com"]
MSA_DOMAINS = {"outlook.com", "hotmail.com"}  # personal Microsoft accounts; the others redeem by email code


class Generator:
    """Builds every user object, drawing from one seeded generator in a fixed order."""

    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.claimed: set[str] = set()  # every address any object carries; generated ones never collide
        self.users: list[dict[str, Any]] = []
        self.kind_of: dict[str, str] = {}  # id -> kind, for the README's counts
        self.special: dict[str, dict[str, Any]] = {}  # memorable name -> user object

    # -- primitives -----------------------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, length: int = 40) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def claim(self, *addresses: str) -> None:
        for address in addresses:
            if address in self.claimed:
                raise AssertionError(f"address {address!r} claimed twice")
            self.claimed.add(address)

    def fresh_person(self, domain: str, *, numbered: bool = False) -> tuple[str, str, str]:
        """Pick an unused ``first.last`` (or ``firstlastNN``) alias at ``domain``: (first, last, alias)."""
        while True:
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            alias = f"{first}{last}{self.rng.randrange(10, 100)}".lower() if numbered else f"{first}.{last}".lower()
            if f"{alias}@{domain}" not in self.claimed:
                return first, last, alias

    def add(self, kind: str, user: dict[str, Any], special: str | None = None) -> dict[str, Any]:
        self.users.append(user)
        self.kind_of[user["id"]] = kind
        if special is not None:
            self.special[special] = user
        return user

    # -- object shapes --------------------------------------------------------------------------------------

    def internal(
        self,
        display: str,
        alias: str,
        *,
        enabled: bool = True,
        uk: bool = False,
        sip: bool = False,
        other_mails: list[str] | None = None,
    ) -> dict[str, Any]:
        upn = f"{alias}@contoso.com"
        proxies = [f"SMTP:{upn}", f"smtp:{alias}@{LOCAL_HOST}"]
        if uk:
            proxies.append(f"smtp:{alias}@contoso.co.uk")
        if sip:
            proxies.append(f"SIP:{upn}")
        self.claim(upn, f"{alias}@{LOCAL_HOST}", *([f"{alias}@contoso.co.uk"] if uk else []))
        self.claim(*(other_mails or []))
        return native_object(
            self.new_id(),
            upn,
            host=LOCAL_HOST,
            display_name=display,
            other_mails=other_mails or [],
            proxies=proxies,
            enabled=enabled,
            external_state=None,
        )

    def external(
        self,
        display: str,
        alias: str,
        home: str,
        *,
        user_type: str | EllipsisType = "Member",
        enabled: bool | EllipsisType = True,
        upn_home: tuple[str, str] | None = None,
        other_mails: list[str] | None = None,
        state: str = "Accepted",
        issuer: str = "ExternalAzureAD",
        with_mail: bool = True,
    ) -> dict[str, Any]:
        """A B2B object: a CTS-synced member, an invited guest or an invited external member.

        ``...`` for ``user_type`` or ``enabled`` leaves the field out. ``with_mail=False`` makes the object the
        admin-center "share users" flow syncs: ``mail`` null and no ``proxyAddresses``, only the ``#EXT#`` UPN.
        """
        mail = f"{alias}@{home}"
        upn_alias, upn_domain = upn_home or (alias, home)
        decoded = f"{upn_alias}@{upn_domain}"
        self.claim(mail, *([decoded] if decoded != mail else []))
        self.claim(*(m for m in (other_mails or []) if m != mail))
        obj = external_object(
            self.new_id(),
            mail,
            host=LOCAL_HOST,
            home=decoded,
            display_name=display,
            other_mails=other_mails or [],
            user_type=user_type,
            creation_type="Invitation",
            enabled=enabled,
            external_state=state,
            issuer=issuer if state == "Accepted" else None,  # no federated identity until the invitation is redeemed
        )
        if not with_mail:
            obj.update(mail=None, proxyAddresses=[])
        return obj

    # -- the directory --------------------------------------------------------------------------------------

    def build(self) -> None:
        # Special cases first, with fixed addresses (the demo and the tests rely on them).
        self.add("internal", self.internal("Megan Bowen", "megan", sip=True), "megan")
        self.add(
            "internal_native_foreign",
            self.internal("Sam Okafor", "sam.native", other_mails=["sam@fabrikam.com"]),
            "sam",
        )
        for alias, display in [
            ("sales", "Sales"),
            ("helpdesk", "Helpdesk"),
            ("info", "Contoso Info"),
            ("reception", "Reception"),
            ("payroll", "Payroll"),
        ]:
            self.add("shared_mailbox", self.internal(display, alias, enabled=False), alias)

        synced = "cts_synced_member"
        self.add(synced, self.external("Cameron Diaz", "cameron", "fabrikam.com"), "cameron")
        self.add(synced, self.external("Dana Whitfield", "dana", "fabrikam.com", enabled=False), "dana")
        self.add(synced, self.external("Jo Bennett", "jo", "fabrikam.com"), "jo_member")
        self.add(
            synced, self.external("Kim Larsen", "kim", "fabrikam.com", upn_home=("kim", "litware.com")), "kim"
        )
        self.add(synced, self.external("Rui Costa", "rui", "fabrikam.com", enabled=...), "rui")
        self.add(synced, self.external("Eve Moreau", "eve", "fabrikam.com", user_type=...), "eve")
        self.add(synced, self.external("Lee Tanaka", "lee", "litware.com"), "lee")
        self.add(synced, self.external("Tara Novak", "tara", "tailspintoys.com"), "tara")
        self.add(synced, self.external("Nora Haddad", "nora", "northwindtraders.com"), "nora")

        self.add(
            "b2b_guest",
            self.external(
                "Pat Murphy", "pat", "fabrikam.com", user_type="Guest", other_mails=["pat@fabrikam.com"]
            ),
            "pat",
        )
        self.claimed.discard("jo@fabrikam.com")  # carried by two objects on purpose: the ambiguous case
        self.add(
            "b2b_guest",
            self.external(
                "Jo Bennett (personal)",
                "jo.bennett",
                "outlook.com",
                user_type="Guest",
                other_mails=["jo@fabrikam.com"],
                issuer="MicrosoftAccount",
            ),
            "jo_guest",
        )

        self.add(
            "external_member",
            self.external("Ana Silva", "ana", "adatum.com", other_mails=["ana@adatum.com"]),
            "ana",
        )

        # Reserved for the delta page and the demo: nothing generated may take them.
        self.claim("new.hire@fabrikam.com", "nobody@fabrikam.com", "someone@example.org")

        # Generated population.
        for i in range(153):
            first, last, alias = self.fresh_person("contoso.com")
            user = self.internal(
                f"{first} {last}",
                alias,
                enabled=(i % 25 != 7),  # 6 disabled (leavers)
                uk=self.rng.random() < 0.2,
                sip=self.rng.random() < 0.1,
            )
            self.add("internal", user)

        for home, count, disabled in [
            ("fabrikam.com", 50, 2),
            ("litware.com", 9, 1),
            ("tailspintoys.com", 7, 0),
            ("northwindtraders.com", 9, 1),
        ]:
            for i in range(count):
                first, last, alias = self.fresh_person(home)
                self.add(synced, self.external(f"{first} {last}", alias, home, enabled=(i >= disabled)))

        for home, count in [("fabrikam.com", 5), ("adatum.com", 8)]:
            for i in range(count):
                first, last, alias = self.fresh_person(home)
                state = "PendingAcceptance" if i == count - 1 else "Accepted"
                self.add(
                    "b2b_guest",
                    self.external(
                        f"{first} {last}",
                        alias,
                        home,
                        user_type="Guest",
                        other_mails=[f"{alias}@{home}"],
                        state=state,
                    ),
                )
        for i in range(15):
            home = CONSUMER_DOMAINS[i % len(CONSUMER_DOMAINS)]
            first, last, alias = self.fresh_person(home, numbered=True)
            issuer = "MicrosoftAccount" if home in MSA_DOMAINS else "mail"
            state = "PendingAcceptance" if i == 14 else "Accepted"
            self.add(
                "b2b_guest",
                self.external(
                    f"{first} {last}",
                    alias,
                    home,
                    user_type="Guest",
                    other_mails=[f"{alias}@{home}"],
                    state=state,
                    issuer=issuer,
                ),
            )

        for _ in range(9):
            first, last, alias = self.fresh_person("adatum.com")
            self.add(
                "external_member",
                self.external(f"{first} {last}", alias, "adatum.com", other_mails=[f"{alias}@adatum.com"]),
            )

        ids = [u["id"] for u in self.users]
        if len(set(ids)) != len(ids):
            raise AssertionError("duplicate generated id")

    def report_cases(self) -> None:
        """The objects the admin reports' audit needs (issue 16), drawn after :meth:`delta`.

        Drawn last so that every earlier id and the delta page stay what they were before these were added.
        """
        synced = "cts_synced_member"
        for alias, display in [("wendy", "Wendy Park"), ("wes", "Wes Carter")]:
            self.add(synced, self.external(display, alias, WOODGROVE_DOMAIN), alias)
        self.add(
            "b2b_guest",
            self.external(
                "Fabrikam Billing",
                "billing",
                LOOKALIKE_DOMAIN,
                user_type="Guest",
                other_mails=[f"billing@{LOOKALIKE_DOMAIN}"],
                issuer="mail",
            ),
            "billing",
        )
        for alias, display in [("max", "Max Brandt"), ("liv", "Liv Stone")]:
            self.add(
                "cts_synced_no_mail", self.external(display, alias, "fabrikam.com", with_mail=False), alias
            )

    def delta(self) -> dict[str, Any]:
        """One ``GET /users/delta`` page (``Prefer: return=minimal``): updates carry only what changed."""
        fabrikam = sorted(
            (
                u
                for u in self.users
                if self.kind_of[u["id"]] == "cts_synced_member"
                and u["mail"].endswith("@fabrikam.com")
                and u["mail"].count(".") == 2
            ),
            key=lambda u: u["mail"],
        )
        twice = self.rng.choice(fabrikam)
        northwind = sorted(
            (
                u
                for u in self.users
                if u["mail"].endswith("@northwindtraders.com") and u["mail"] != "nora@northwindtraders.com"
            ),
            key=lambda u: u["mail"],
        )
        gone = self.rng.choice(northwind)
        self.claimed.discard("new.hire@fabrikam.com")
        new_hire = self.external("Nova Hire", "new.hire", "fabrikam.com")
        self.delta_notes = {
            "twice": twice["mail"],
            "twice_final": f"{twice['displayName']} (Fabrikam)",
            "removed": gone["mail"],
            "cameron": "Cameron Diaz (Fabrikam)",
        }
        value = [
            {"id": self.special["cameron"]["id"], "displayName": "Cameron Diaz (Fabrikam)"},
            {"id": twice["id"], "displayName": f"{twice['displayName']} (contractor)"},
            new_hire,
            {"id": gone["id"], "@removed": {"reason": "deleted"}},
            {"id": twice["id"], "displayName": self.delta_notes["twice_final"]},
        ]
        return {
            "@odata.context": f"{GRAPH}/$metadata#users({SELECT})",
            "@odata.deltaLink": f"{GRAPH}/users/delta?$deltatoken={self.token(60)}",
            "value": value,
        }


def _demo(gen: Generator) -> dict[str, Any]:
    entries: list[tuple[str, str | None, str, str]] = [
        ("megan@contoso.com", None, "internal", "a local verified domain; a native enabled member"),
        (
            "  Megan@CONTOSO.com ",
            None,
            "internal",
            "blanks are trimmed and the address lower-cased before lookup",
        ),
        (
            "sales@contoso.com",
            None,
            "internal",
            "a local domain; a disabled shared mailbox is still internal",
        ),
        (
            "cameron@fabrikam.com",
            None,
            "mto_member",
            "synced external member, enabled, from Fabrikam (active in the MTO)",
        ),
        ("cameron@fabrikam.com", FABRIKAM, "mto_member", "the caller's tenant id matches Fabrikam"),
        (
            "cameron@fabrikam.com",
            LITWARE,
            "untrusted",
            "the caller's tenant id (Litware) is not the domain's tenant",
        ),
        (
            "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            None,
            "mto_member",
            "an #EXT# UPN at a local domain decodes to cameron@fabrikam.com",
        ),
        ("dana@fabrikam.com", None, "external", "synced from Fabrikam but the account is disabled"),
        (
            "rui@fabrikam.com",
            None,
            "external",
            "synced from Fabrikam but accountEnabled is missing (fail closed)",
        ),
        ("eve@fabrikam.com", None, "guest", "synced from Fabrikam but userType is missing"),
        ("pat@fabrikam.com", None, "guest", "an invited guest (userType Guest) from Fabrikam"),
        ("kim@fabrikam.com", None, "guest", "the object's #EXT# UPN says Litware, its mail says Fabrikam"),
        (
            "lee@litware.com",
            None,
            "guest",
            "Litware is active in the MTO but its partner policy says isInMultiTenantOrganization false",
        ),
        ("tara@tailspintoys.com", None, "guest", "Tailspin has not joined yet: its MTO state is pending"),
        (
            "nora@northwindtraders.com",
            None,
            "guest",
            "Northwind's MTO state is removed; userType Member survives",
        ),
        ("ana@adatum.com", None, "guest", "an external member from Adatum, which is not in the MTO"),
        (
            "sam@fabrikam.com",
            None,
            "external",
            "only a native Contoso object carries it (otherMails): proves nothing about Fabrikam",
        ),
        ("nobody@fabrikam.com", None, "external", "an MTO domain, but no object in the directory"),
        ("someone@example.org", None, "external", "an unknown domain and no object"),
        ("jo@fabrikam.com", None, "untrusted", "two distinct objects carry this address (ambiguous match)"),
        ("cameron@fabrikarn.com", None, "untrusted", "a confusable lookalike of fabrikam.com ('rn' for 'm')"),
        ("megan@cont\u043eso.com", None, "untrusted", "a Cyrillic o makes a lookalike of contoso.com"),
        ("not-an-address", None, "untrusted", "not an address: no @"),
    ]
    if "jo@fabrikam.com" not in gen.special["jo_guest"]["otherMails"]:
        raise AssertionError("jo special case lost")
    return {
        "identities": [
            {"identity": identity, "tenant_id": tenant, "expect": expect, "why": why}
            for identity, tenant, expect, why in entries
        ]
    }


def build_files() -> dict[str, str]:
    """Every output file, relative path -> exact text."""
    gen = Generator()
    gen.build()
    delta = gen.delta()
    gen.report_cases()

    def dump(obj: Any) -> str:
        return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=True) + "\n"

    files: dict[str, str] = {}
    files["organization.json"] = dump(
        {
            "@odata.context": f"{GRAPH}/$metadata#organization(id,displayName,verifiedDomains)",
            "value": [
                {
                    "id": CONTOSO,
                    "displayName": "Contoso",
                    "verifiedDomains": [
                        {
                            "name": name,
                            "isDefault": name == "contoso.com",
                            "isInitial": name == LOCAL_HOST,
                            "type": "Managed",
                            "capabilities": "Email, OfficeCommunicationsOnline",
                        }
                        for name in ("contoso.com", LOCAL_HOST, "contoso.co.uk")
                    ],
                }
            ],
        }
    )

    def member(
        tenant: str,
        name: str,
        role: str,
        state: str,
        *,
        added: str,
        joined: str | None,
        transition: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "tenantId": tenant,
            "displayName": name,
            "addedDateTime": added,
            "joinedDateTime": joined,
            "addedByTenantId": CONTOSO,
            "role": role,
            "state": state,
            "transitionDetails": transition,
        }

    files["mto.json"] = dump(
        {
            "@odata.context": f"{GRAPH}/$metadata#tenantRelationships/multiTenantOrganization/tenants",
            "value": [
                member(CONTOSO, "Contoso", "owner", "active", added="2024-05-02T09:00:00Z", joined=None),
                member(
                    FABRIKAM,
                    "Fabrikam",
                    "member",
                    "active",
                    added="2024-05-02T09:05:00Z",
                    joined="2024-05-02T12:30:00Z",
                ),
                member(
                    LITWARE,
                    "Litware",
                    "member",
                    "active",
                    added="2024-05-20T14:10:00Z",
                    joined="2024-05-21T08:45:00Z",
                ),
                member(
                    TAILSPIN,
                    "Tailspin",
                    "member",
                    "pending",
                    added="2024-06-10T08:00:00Z",
                    joined=None,
                    transition={
                        "desiredState": "active",
                        "desiredRole": "member",
                        "status": "running",
                        "details": None,
                    },
                ),
                member(
                    NORTHWIND,
                    "Northwind",
                    "member",
                    "removed",
                    added="2024-05-02T09:10:00Z",
                    joined="2024-05-03T10:00:00Z",
                ),
                member(
                    WOODGROVE,
                    "Woodgrove Bank",
                    "member",
                    "active",
                    added="2024-07-01T09:00:00Z",
                    joined="2024-07-01T15:20:00Z",
                ),
            ],
        }
    )
    files["domains.json"] = dump(
        {
            "value": [{"domainName": d, "tenantId": t, "displayName": n} for d, t, n in sorted(DOMAINS)],
        }
    )

    def partner(tenant: str, in_mto: bool | None) -> dict[str, Any]:
        mto_partner = in_mto is not None
        return {
            "tenantId": tenant,
            "isInMultiTenantOrganization": in_mto,
            "isServiceProvider": False,
            "inboundTrust": {
                "isMfaAccepted": mto_partner,
                "isCompliantDeviceAccepted": False,
                "isHybridAzureADJoinedDeviceAccepted": False,
            },
            "automaticUserConsentSettings": {"inboundAllowed": mto_partner, "outboundAllowed": mto_partner}
            if mto_partner
            else {"inboundAllowed": None, "outboundAllowed": None},
            "b2bCollaborationInbound": None,
            "b2bCollaborationOutbound": None,
            "b2bDirectConnectInbound": None,
            "b2bDirectConnectOutbound": None,
            "tenantRestrictions": None,
        }

    files["partners.json"] = dump(
        {
            "@odata.context": f"{GRAPH}/$metadata#policies/crossTenantAccessPolicy/partners",
            "value": [
                partner(FABRIKAM, True),
                partner(TAILSPIN, True),
                partner(LITWARE, False),
                partner(NORTHWIND, True),
                partner(ADATUM, None),
                partner(WOODGROVE, True),
            ],
        }
    )

    users = sorted(gen.users, key=lambda u: u["id"])
    pages = [users[i : i + PAGE_SIZE] for i in range(0, len(users), PAGE_SIZE)]
    for number, page in enumerate(pages, start=1):
        body: dict[str, Any] = {"@odata.context": f"{GRAPH}/$metadata#users({SELECT})", "value": page}
        if number < len(pages):
            body["@odata.nextLink"] = (
                f"{GRAPH}/users?$select={SELECT}&$top={PAGE_SIZE}&$skiptoken={gen.token()}"
            )
        files[f"users/{number:04d}.json"] = dump(body)
    files["delta/0001.json"] = dump(delta)
    demo = _demo(gen)
    files["demo.json"] = dump(demo)
    files["README.md"] = _readme(gen, demo, len(pages))
    return files


def _readme(gen: Generator, demo: dict[str, Any], pages: int) -> str:
    counts: dict[str, int] = {}
    for kind in gen.kind_of.values():
        counts[kind] = counts.get(kind, 0) + 1
    disabled = sum(1 for u in gen.users if u.get("accountEnabled") is False)
    kinds = {
        "internal": "internal Contoso members (alias@contoso.com, some also @contoso.co.uk; a few disabled)",
        "internal_native_foreign": "native Contoso object carrying a foreign address in otherMails (Sam)",
        "shared_mailbox": "shared mailboxes (disabled users: sales, helpdesk, info, reception, payroll)",
        "cts_synced_member": "CTS-synced external members from Fabrikam, Litware, Tailspin, Northwind and "
        "Woodgrove Bank",
        "cts_synced_no_mail": "CTS-synced Fabrikam members shared from the admin center: no `mail`, no "
        "`proxyAddresses`",
        "b2b_guest": f"B2B guests from fabrikam.com, adatum.com, consumer domains and the lookalike {LOOKALIKE_DOMAIN}",
        "external_member": "external members from Adatum (outside the MTO)",
    }
    rows = "\n".join(f"| {counts.get(k, 0)} | `{k}` | {text} |" for k, text in kinds.items())
    demo_rows = "\n".join(
        f"| `{json.dumps(e['identity'])}` | {e['tenant_id'] or ''} | `{e['expect']}` | {e['why']} |"
        for e in demo["identities"]
    )
    file_table = [
        ("`organization.json`", f"`GET /organization`: Contoso (`{CONTOSO}`), verified domains contoso.com "
         "(default), contoso.onmicrosoft.com (initial), contoso.co.uk"),
        ("`mto.json`", "`GET /tenantRelationships/multiTenantOrganization/tenants`: Contoso (owner, active), "
         "Fabrikam (active), Litware (active), Tailspin (pending, transition running), Northwind (removed), "
         "Woodgrove Bank (active)"),
        ("`domains.json`", "mtotrust's domain → tenant table: the domains above plus Adatum (adatum.com), "
         f"which is not in the MTO; **no domain of Woodgrove Bank** ({WOODGROVE_DOMAIN} is not in it)"),
        ("`partners.json`", "`GET /policies/crossTenantAccessPolicy/partners`: isInMultiTenantOrganization "
         "true for Fabrikam, Tailspin, Northwind, Woodgrove Bank; **false for Litware** (disagrees with "
         "mto.json); null for Adatum"),
        (f"`users/0001.json` … `users/{pages:04d}.json`",
         f"`GET /users?$select=…` pages of ≤ {PAGE_SIZE} users, ordered by id, "
         "`@odata.nextLink` on all but the last"),
        ("`delta/0001.json`",
         "one `GET /users/delta` page (`Prefer: return=minimal`) ending in `@odata.deltaLink`"),
        ("`demo.json`", "the identities `mtotrust demo` resolves, each with the expected trust and why"),
        ("`README.md`", "this file"),
    ]  # fmt: skip
    file_rows = "\n".join(f"| {name} | {text} |" for name, text in file_table)
    notes = gen.delta_notes
    return f"""# Sample MTO snapshot

A small, **fictitious** multi-tenant organization (MTO) seen from the directory of its owner tenant, Contoso.
Contoso, Fabrikam, Litware, Tailspin Toys, Northwind Traders, Adatum and Woodgrove Bank are Microsoft's
fictitious example companies; every person, address and GUID here is made up. It is the snapshot
`mtotrust demo` and `mtotrust check` use when no `--snapshot` is given, and a fixture for tests.

Everything here is **generated** by `scripts/make_sample.py` (mtotrust's Graph shapes, seeded
`random.Random({SEED})`). Do not edit these files by hand: change the generator and run

```
python scripts/make_sample.py           # rewrites mtotrust/sample/
python scripts/make_sample.py --check   # exit 1 if the committed files are stale
```

Two runs give byte-identical output (JSON with `indent=1`, sorted keys, ASCII escapes, trailing newline).

## Files

| file | content |
|---|---|
{file_rows}

Tenant ids: Contoso `{CONTOSO}`, Fabrikam `{FABRIKAM}`,
Tailspin `{TAILSPIN}`, Litware `{LITWARE}`,
Northwind `{NORTHWIND}`, Adatum `{ADATUM}`,
Woodgrove Bank `{WOODGROVE}`.

## Users ({len(gen.users)} objects, {disabled} with accountEnabled false)

| count | kind | what |
|---:|---|---|
{rows}

Shapes follow Microsoft Graph v1.0: internal users have a `userPrincipalName` identity issued by
contoso.onmicrosoft.com and `SMTP:`/`smtp:` proxies (a few also carry a `SIP:` proxy, which is not a mail
address); B2B objects have an `alias_homedomain#EXT#@contoso.onmicrosoft.com` UPN, `creationType`
`Invitation`, a `federated` identity (`ExternalAzureAD` for Entra tenants, `MicrosoftAccount` for
outlook.com/hotmail.com, `mail` for email-code guests; none while `PendingAcceptance`) and
`proxyAddresses` `["SMTP:<home mail>"]`.

Fixed special cases: megan@contoso.com, sales@contoso.com (disabled shared mailbox), cameron@,
dana@ (disabled), pat@ (Guest), kim@ (UPN says Litware), rui@ (no `accountEnabled`), eve@ (no
`userType`), jo@ (on a synced member's `mail` and on a consumer guest's `otherMails`) — all
@fabrikam.com — lee@litware.com, tara@tailspintoys.com, nora@northwindtraders.com, ana@adatum.com
(external member), and Sam, a native Contoso object `sam.native@contoso.com` whose `otherMails` is
`["sam@fabrikam.com"]`.

Objects for the admin reports' audit (issue 16; drawn after the delta page, so every other id is unchanged):

- wendy@ and wes@{WOODGROVE_DOMAIN}: CTS-synced members from Woodgrove Bank, an active MTO tenant with no
  domain in `domains.json`. Nothing ties {WOODGROVE_DOMAIN} to a tenant, so they resolve to `guest`
  (`domain_unknown` … `home_tenant_unknown`): MTO membership cannot be shown until the domain is mapped.
- billing@{LOOKALIKE_DOMAIN}: an invited email-code guest at a lookalike of fabrikam.com ("rn" for "m");
  `untrusted` (`confusable_domain`).
- max_fabrikam.com#EXT#@{LOCAL_HOST} and liv_fabrikam.com#EXT#@{LOCAL_HOST}:
  CTS-synced Fabrikam members as the admin-center "share users" flow creates them, `mail` null and
  `proxyAddresses` empty. They answer only to the address their `#EXT#` UPN decodes to, so
  max@fabrikam.com and liv@fabrikam.com resolve to `mto_member`.

## Delta page

Applied after `users/` in this order:

1. cameron@fabrikam.com: `displayName` only, to "{notes["cameron"]}"
   (everything else is kept: still an MTO member);
2. {notes["twice"]}: `displayName` only;
3. a new synced Fabrikam member, new.hire@fabrikam.com (full object: MTO member after the delta);
4. {notes["removed"]}: `@removed` with reason `deleted` (no object afterwards: external);
5. {notes["twice"]} again: `displayName` to "{notes["twice_final"]}"
   (the same id twice in one round; the last wins).

## Demo identities (`demo.json`)

Expectations hold for the snapshot with the delta applied. Identities are shown as JSON strings (the
blanks around the second Megan are part of it; `\\u043e` is the Cyrillic small o).

| identity | tenant_id | expect | why |
|---|---|---|---|
{demo_rows}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: mtotrust/sample)"
    )
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    files = build_files()
    out: Path = args.out
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (out / name).is_file() or (out / name).read_bytes() != text.encode("utf-8")
        ]
        extra = [
            str(p.relative_to(out))
            for sub in ("users", "delta")
            if (out / sub).is_dir()
            for p in sorted((out / sub).glob("*.json"))
            if str(p.relative_to(out).as_posix()) not in files
        ]
        for name in stale + extra:
            print(f"stale: {out / name}", file=sys.stderr)
        return 1 if stale or extra else 0
    for sub in ("users", "delta"):
        folder = out / sub
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):
            if f"{sub}/{old.name}" not in files:
                old.unlink()
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8", newline="\n")
    total = sum(len(t.encode("utf-8")) for t in files.values())
    print(
        f"wrote {len(files)} files, {total} bytes, {len(json.loads(files['demo.json'])['identities'])} demo "
        f"identities to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
