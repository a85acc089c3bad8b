"""The snapshot of the attribute space: one directory holding one user per combination, and its cases.

:func:`enumerate_space` writes real Graph JSON through :class:`~mtotrust._builder.SnapshotBuilder`: a tenant per
(home state, partner flag), a user per object combination in each, the local tenant, look-alike domains,
invalid identities and one probe per ``overrides.block`` entry, with the :class:`~mtotrust._verify.space.Case`
the verifier evaluates for each.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from mtotrust._address import normalize_address
from mtotrust._builder import SnapshotBuilder
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust._verify.space import ENABLED, EXTERNAL_KINDS, HOME_STATES, PARTNER_FLAGS, USER_TYPES, Case, Facts, Home

__all__ = ["enumerate_space"]

_SPACE_LOCAL = "contoso"
_OTHER_HOME = "elsewhere.example"


def _tenant_name(state: str, partner: str) -> str:
    return f"{state.replace('_', '')}-{partner}"


def enumerate_space(policy: Policy | None = None, *, others: Iterable[Policy] = ()) -> tuple[Snapshot, list[Case]]:
    """Build the snapshot of the whole attribute space and the cases to evaluate against it.

    One tenant per (home state, partner flag), one user per object combination in each, plus local, invalid,
    confusable and ``#EXT#``/proxy cases, and one case per ``overrides.block`` entry of ``policy`` and of each of
    ``others`` (the policies it is compared with).

    .. versionchanged:: 0.2.0 ``others``.
    """
    b = SnapshotBuilder(_SPACE_LOCAL, domains=("contoso.com", "contoso.onmicrosoft.com"))
    b.tenant("elsewhere", state="active", domains=(_OTHER_HOME,))
    cases: list[Case] = []
    local_tid = b.local_tenant_id
    stranger_tid = b.tenant_id("elsewhere")

    def tids(home_tid: str | None) -> list[tuple[str, str | None]]:
        if home_tid is None:
            return [("none", None), ("mismatch", stranger_tid)]
        return [("none", None), ("match", home_tid), ("match_upper", home_tid.upper()), ("mismatch", stranger_tid)]

    homes: list[tuple[str, str]] = [(s, p) for s in (*HOME_STATES, "not_in_mto") for p in PARTNER_FLAGS]
    homes.append(("unknown", "absent"))
    for state, partner in homes:
        name = _tenant_name(state, partner)
        domain = f"{name}.example"
        home_tid: str | None = None
        if state != "unknown":
            flags: dict[str, bool | str | None] = {"absent": "absent", "true": True, "false": False, "null": None}
            flag = flags[partner]
            b.tenant(name, state=None if state == "stateless" else state, domains=(domain,),
                     in_mto=state != "not_in_mto", partner=flag)
            home_tid = b.tenant_id(name)
        protected = state not in ("not_in_mto", "unknown")
        home: Home = state  # type: ignore[assignment]

        def add(local_part: str, facts: Facts, identity: str | None = None, *, domain: str = domain,
                home_tid: str | None = home_tid, protected: bool = protected, state: str = state,
                flag: str = partner) -> None:
            address = f"{local_part}@{domain}"
            # the mail sender is the From address as written: an #EXT# UPN is at a local domain
            sender_local = identity is not None
            sender_domain = identity.rpartition("@")[2] if identity is not None else domain
            for tid_kind, tid in tids(home_tid):
                cases.append(Case(identity or address, tid, address, sender_domain, protected or sender_local,
                                  sender_local, attrs.evolve(facts, tenant_id=tid_kind), state, flag))

        add("nobody", Facts(home, partner, objects=0))
        b.synced_member(f"twin@{domain}").synced_member(f"twin@{domain}")
        add("twin", Facts(home, partner, objects=2))
        for n, (ext, user_type, enabled) in enumerate(
                (e, u, en) for e in EXTERNAL_KINDS for u in USER_TYPES for en in ENABLED):
            local_part = f"u{n:02d}"
            address = f"{local_part}@{domain}"
            ut = user_type
            if ext == "native":
                b.member(f"{local_part}.{name}@contoso.com", enabled=enabled, user_type=ut, mail=address,
                         proxyAddresses=[f"SMTP:{address}"])
            elif ext == "invitation":
                b.member(f"{local_part}.{name}@contoso.onmicrosoft.com", enabled=enabled, user_type=ut,
                         mail=address, proxyAddresses=[f"SMTP:{address}"], creationType="Invitation")
            elif ext == "federated":
                b.synced_member(address, enabled=enabled, user_type=ut, userPrincipalName=
                                f"{local_part}.{name}@contoso.onmicrosoft.com")
            else:
                home_addr = f"{local_part}@{_OTHER_HOME}" if ext == "ext_upn_other" else address
                b.synced_member(address, enabled=enabled, user_type=ut, home=home_addr, federated=False)
            add(local_part, Facts(home, partner, external=ext, user_type=user_type, enabled=enabled))
        # the same happy object, asked through its #EXT# UPN and found through a proxy address only
        b.synced_member(f"upn@{domain}")
        add("upn", Facts(home, partner, via="ext_upn"), identity=f"upn_{domain}#ext#@contoso.onmicrosoft.com")
        b.synced_member(f"proxy@{domain}", mail=None, proxyAddresses=[f"smtp:proxy@{domain}"])
        add("proxy", Facts(home, partner, via="proxy"))

    # the local tenant
    b.member("megan@contoso.com").shared_mailbox("shared@contoso.com")
    b.member("twin.a@contoso.com", mail="twin@contoso.com").member("twin.b@contoso.com", mail="twin@contoso.com")
    for local_part, objects in (("megan", 1), ("shared", 1), ("nobody", 0), ("twin", 2)):
        for tid_kind, tid in tids(local_tid):
            cases.append(Case(f"{local_part}@contoso.com", tid, f"{local_part}@contoso.com", "contoso.com", True,
                              True, Facts("local", objects=objects, tenant_id=tid_kind), "local"))
    # look-alike domains and identities that are not addresses
    b.synced_member("cameron@active-absent.example")
    for text in ("cameron@active-absent.examp1e", "cameron@\u0430ctive-absent.example",
                 "megan@c\u043entoso.com"):
        _, dom = normalize_address(text)
        cases.append(Case(text, None, text.split("@")[0] + "@" + dom, dom, False, False, Facts("confusable"),
                          "unknown"))
    for text in ("not-an-address", "a@b@active-absent.example", "u00@active-absent.example\r\nbcc: x",
                 "u00\u200b@active-absent.example", "u00\uff20active-absent.example", "\"u00\"@active-absent.example",
                 "u00@active-absent.example.", ""):
        cases.append(Case(text, None, None, None, False, False, Facts("invalid"), "invalid"))
    # every overrides.block entry of the policy, made a happy MTO member but for the block
    # (a probe at a domain of the space is at home where that domain is; any other is of an active tenant)
    homes_of = {c.domain: (c.home_state, c.partner) for c in cases if c.domain and c.facts and c.facts.via == "mail"
                and c.home_state != "invalid"}
    known = set(b.local_domains) | {c.domain for c in cases if c.domain}
    for i, address in enumerate(_block_probes((policy, *others))):
        domain = address.rpartition("@")[2]
        local = domain in b.local_domains
        if local:
            b.member(address)
        else:
            if domain not in known:
                b.tenant(f"blocked{i}", state="active", domains=(domain,))
                known.add(domain)
            b.synced_member(address)
        state, partner = ("local", "absent") if local else homes_of.get(domain, ("active", "absent"))
        cases.append(Case(address, None, address, domain, True, local, Facts("blocked"), state, partner))
    return b.build(), cases


def _block_probes(policies: Iterable[Policy | None]) -> list[str]:
    """Return one address per block entry the policies parsed, two for a wildcard (a subdomain and the domain)."""
    probes: list[str] = []
    for kind, value in (entry for policy in policies if policy for entry in policy.block_entries):
        if kind == "address":
            probes.append(value)
        elif kind == "wildcard":
            probes += [f"blocked.user@sub.{value}", f"blocked.user@{value}"]
        else:
            probes.append(f"blocked.user@{value}")
    return list(dict.fromkeys(probes))
