"""Hypothesis strategies for mtotrust: addresses, Graph users, MTO tenants, snapshots, policies, headers.

Every strategy returns what the real inputs look like: addresses as users type them, Graph user objects as
``GET /users`` returns them, ``Authentication-Results`` values as MTAs stamp them.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mtotrust._builder import SnapshotBuilder, ext_upn, guest_object, native_object, synced_member_object
from mtotrust._model import MailAuth, Trust
from mtotrust._policy import PERMISSION_LEVELS, TEAMS_ACTIONS, USAGE_RIGHTS, Policy
from mtotrust._snapshot import Snapshot

__all__ = [
    "TRUST_NAMES",
    "addresses",
    "auth_results_headers",
    "confusable_domains",
    "domains",
    "ext_upns",
    "graph_users",
    "hostile_addresses",
    "identities",
    "idn_addresses",
    "local_parts",
    "mail_auths",
    "mto_tenants",
    "policies",
    "snapshot_builders",
    "snapshots",
    "trusts",
]

TRUST_NAMES = tuple(t.value for t in Trust)
"""Trust level names, lowest first."""

_ATEXT = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~"
_LDH = "abcdefghijklmnopqrstuvwxyz0123456789"
_STATES = ("active", "pending", "removed", None)
_CONFUSABLE = {"m": "rn", "l": "1", "o": "\u043e", "a": "\u0430", "e": "\u0435", "i": "\u0456", "c": "\u0441"}


def trusts() -> st.SearchStrategy[Trust]:
    """Generate trust levels."""
    return st.sampled_from(list(Trust))


def local_parts() -> st.SearchStrategy[str]:
    """Generate valid dot-atom local parts (lower case, no leading, trailing or doubled dots)."""
    atom = st.text(alphabet=_ATEXT, min_size=1, max_size=12)
    return st.lists(atom, min_size=1, max_size=3).map(".".join)


def domains(tld: str = "example") -> st.SearchStrategy[str]:
    """Generate lower-case ASCII domains under ``tld`` (``label.example``, ``a.b.example``)."""
    label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?\Z")
    return st.lists(label, min_size=1, max_size=2).map(lambda labels: ".".join([*labels, tld]))


@st.composite
def addresses(draw: st.DrawFn, domain: st.SearchStrategy[str] | None = None) -> str:
    """Generate valid addresses, sometimes with blanks around them or upper case (both normalised away)."""
    local = draw(local_parts())
    dom = draw(domain if domain is not None else domains())
    address = f"{local}@{dom}"
    if draw(st.booleans()):
        address = address.upper() if draw(st.booleans()) else address.title()
    pad = draw(st.sampled_from(("", " ", "\t", "  ")))
    return f"{pad}{address}{pad}"


@st.composite
def hostile_addresses(draw: st.DrawFn, domain: st.SearchStrategy[str] | None = None) -> str:
    """Generate identities the resolver must reject: every one resolves to ``untrusted`` (``invalid_identity``).

    Control characters and header injection, invisible and bidi characters, a fullwidth ``＠``, several or no
    ``@``, quoted or empty local parts, a trailing dot, over-long addresses and labels.
    """
    local = draw(local_parts())
    dom = draw(domain if domain is not None else domains())
    form = draw(st.sampled_from((
        "control", "invisible", "fullwidth_at", "two_at", "no_at", "quoted", "empty_local", "empty_domain",
        "trailing_dot", "too_long", "long_label", "nbsp", "double_dot",
    )))
    if form == "control":
        char = draw(st.sampled_from(("\r\n", "\n", "\x00", "\x1b", "\x7f", "\r\nBcc: x@evil.example")))
        return f"{local}@{dom}{char}" if draw(st.booleans()) else f"{local}{char}@{dom}"
    if form == "invisible":
        char = draw(st.sampled_from(("\u200b", "\u200d", "\u2060", "\u202e", "\ufeff", "\u00ad")))
        return f"{local}{char}@{dom}"
    if form == "fullwidth_at":
        return f"{local}\uff20{dom}" if draw(st.booleans()) else f"{local}\uff20x@{dom}"
    if form == "two_at":
        return f"{local}@{local}@{dom}"
    if form == "no_at":
        return f"{local}.{dom}"
    if form == "quoted":
        return f'"{local}"@{dom}'
    if form == "empty_local":
        return f"@{dom}"
    if form == "empty_domain":
        return f"{local}@"
    if form == "trailing_dot":
        return f"{local}@{dom}."
    if form == "too_long":
        return f"{'a' * 64}.{'b' * 64}.{'c' * 64}.{'d' * 64}.{'e' * 64}@{dom}"
    if form == "long_label":
        return f"{local}@{'x' * 64}.{dom}"
    if form == "nbsp":
        return f"\u00a0{local}@{dom}"
    return f"{local}..x@{dom}"


@st.composite
def ext_upns(draw: st.DrawFn, host: str = "contoso.onmicrosoft.com",
             home: st.SearchStrategy[str] | None = None) -> str:
    """Generate ``alias_homedomain#EXT#@host`` user principal names (with the marker's case varied)."""
    alias = draw(local_parts())
    home_domain = draw(home if home is not None else domains())
    marker = draw(st.sampled_from(("#EXT#", "#ext#", "#Ext#")))
    return f"{alias}_{home_domain}{marker}@{host}"


@st.composite
def idn_addresses(draw: st.DrawFn) -> str:
    """Generate addresses with internationalised (Unicode) domains and sometimes UTF-8 local parts."""
    label = draw(st.sampled_from(("bücher", "münchen", "例え", "пример", "παράδειγμα", "straße", "ñandú", "café")))
    tld = draw(st.sampled_from(("example", "test", "テスト", "de")))
    local = draw(st.sampled_from(("info", "jörg", "用户", "anna.maría"))) if draw(st.booleans()) else \
        draw(local_parts())
    return f"{local}@{label}.{tld}"


@st.composite
def confusable_domains(draw: st.DrawFn, domain: str) -> str:
    """Generate look-alikes of ``domain`` (``rn`` for ``m``, ``1`` for ``l``, Cyrillic letters for Latin ones).

    The result differs from ``domain`` whenever ``domain`` has a letter with a confusable; otherwise it is
    ``domain`` itself.
    """
    positions = [i for i, c in enumerate(domain) if c in _CONFUSABLE]
    if not positions:
        return domain
    chosen = draw(st.lists(st.sampled_from(positions), min_size=1, max_size=min(3, len(positions)), unique=True))
    return "".join(_CONFUSABLE[c] if i in chosen else c for i, c in enumerate(domain))


@st.composite
def graph_users(draw: st.DrawFn, domain: st.SearchStrategy[str] | None = None,
                local_domain: str = "contoso.onmicrosoft.com") -> dict[str, Any]:
    """Generate Graph user objects of every kind, as ``GET /users`` returns them.

    Native members, shared mailboxes, cross-tenant-synced members, invited guests, and objects with fields
    missing (only ``id`` is required) or unexpected values (``userType`` ``"Contractor"``).
    """
    address = f"{draw(local_parts())}@{draw(domain if domain is not None else domains())}"
    kind = draw(st.sampled_from(("native", "shared", "synced", "guest", "sparse")))
    alias = address.partition("@")[0]
    user: dict[str, Any] = {"id": str(draw(st.uuids()))}
    if kind == "sparse":
        optional = {"mail": address,
                    "userPrincipalName": draw(st.sampled_from((address, ext_upn(address, local_domain)))),
                    "userType": draw(st.sampled_from(("Member", "Guest", "Contractor", None))),
                    "accountEnabled": draw(st.sampled_from((True, False, None))),
                    "creationType": draw(st.sampled_from(("Invitation", None))),
                    "otherMails": [address], "proxyAddresses": [f"smtp:{address}", f"X500:/o={alias}"]}
        keys = draw(st.lists(st.sampled_from(sorted(optional)), unique=True))
        user.update({k: optional[k] for k in keys})
        return user
    uid, name, enabled = user["id"], alias.title(), kind != "shared" and draw(st.booleans() | st.just(True))
    if kind == "synced":
        return synced_member_object(uid, address, host=local_domain, display_name=name, enabled=enabled)
    if kind == "guest":
        return guest_object(uid, address, host=local_domain, display_name=name, enabled=enabled)
    return native_object(uid, address, host=local_domain, display_name=name, enabled=enabled)


@st.composite
def mto_tenants(draw: st.DrawFn, min_size: int = 0, max_size: int = 5) -> list[dict[str, Any]]:
    """Generate ``mto.json`` tenant rows in every state (``active``, ``pending``, ``removed``, missing)."""
    ids = draw(st.lists(st.uuids(), min_size=min_size, max_size=max_size, unique=True))
    rows = []
    for i, tid in enumerate(ids):
        row: dict[str, Any] = {"tenantId": str(tid), "displayName": f"Tenant {i}",
                               "role": draw(st.sampled_from(("member", "owner")))}
        state = draw(st.sampled_from(_STATES))
        if state is not None:
            row["state"] = state
        rows.append(row)
    return rows


@st.composite
def snapshot_builders(draw: st.DrawFn, max_tenants: int = 4, max_users: int = 4) -> SnapshotBuilder:
    """Generate snapshot builders: tenants in every state and partner flag, users of every kind in each.

    The local tenant is ``contoso`` (``contoso.com``), with a member and a shared mailbox.
    """
    builder = SnapshotBuilder()
    builder.member("admin@contoso.com").shared_mailbox("shared@contoso.com")
    n = draw(st.integers(0, max_tenants))
    for i in range(n):
        name = f"tenant{i}"
        builder.tenant(name, state=draw(st.sampled_from(_STATES)), in_mto=draw(st.booleans() | st.just(True)),
                       partner=draw(st.sampled_from(("absent", True, False, None))))
        for j in range(draw(st.integers(0, max_users))):
            address = f"user{j}@{name}.com"
            kind = draw(st.sampled_from(("synced", "guest", "disabled", "no_type", "native_foreign")))
            if kind == "synced":
                builder.synced_member(address)
            elif kind == "guest":
                builder.guest(address)
            elif kind == "disabled":
                builder.synced_member(address, enabled=draw(st.sampled_from((False, None))))
            elif kind == "no_type":
                builder.synced_member(address, user_type=None)
            else:
                builder.member(f"user{j}.{name}@contoso.com", mail=address)
    return builder


def snapshots(max_tenants: int = 4, max_users: int = 4) -> st.SearchStrategy[Snapshot]:
    """Generate whole :class:`~mtotrust.Snapshot` s (built from real Graph JSON by :func:`snapshot_builders`)."""
    return snapshot_builders(max_tenants, max_users).map(SnapshotBuilder.build)


@st.composite
def identities(draw: st.DrawFn, snapshot: Snapshot) -> str:
    """Generate identities worth asking ``snapshot`` about: its own addresses, strangers and hostile forms."""
    known = sorted(snapshot.addresses())
    domains_known = sorted(snapshot.local_domains | set(snapshot.domain_tenants))
    options: list[st.SearchStrategy[str]] = [addresses(), hostile_addresses()]
    if known:
        options.append(st.sampled_from(known))
    if domains_known:
        options.append(addresses(st.sampled_from(domains_known)))
    return draw(st.one_of(options))


def _grants() -> st.SearchStrategy[Any]:
    return st.sampled_from(sorted(PERMISSION_LEVELS)) | st.lists(st.sampled_from(sorted(USAGE_RIGHTS)),
                                                                   unique=True, max_size=4)


@st.composite
def policies(draw: st.DrawFn, sane: bool = False) -> Policy:
    """Generate valid policies; with ``sane=True`` only ones that keep guests and inactive tenants outside.

    A sane policy has ``untagged_at`` and ``inside_at`` at ``mto_member`` or ``internal``, requires
    authentication, sets every Teams minimum above ``untrusted`` and grants label rights monotonically.
    """
    levels = TRUST_NAMES[3:] if sane else TRUST_NAMES
    teams_levels = TRUST_NAMES[1:] if sane else TRUST_NAMES
    data: dict[str, Any] = {
        "mail": {"untagged_at": draw(st.sampled_from(levels)),
                 "require_authentication": True if sane else draw(st.booleans()),
                 "trusted_authserv_ids": draw(st.lists(st.sampled_from(("mx.contoso.com", "mx2.contoso.com")),
                                                       unique=True, max_size=2)),
                 "accept_exchange_online_results": draw(st.booleans())},
        "dlp": {"inside_at": draw(st.sampled_from(levels))},
        "teams": {a: draw(st.sampled_from(teams_levels)) for a in TEAMS_ACTIONS},
    }
    labels: dict[str, dict[str, Any]] = {}
    for name in draw(st.lists(st.sampled_from(("Confidential", "Highly Confidential", "General")), unique=True,
                              max_size=2)):
        if sane:
            order = ("Viewer", "Reviewer", "Co-Author", "Co-Owner")
            lo = draw(st.integers(0, 3))
            labels[name] = {"mto_member": order[lo], "internal": order[draw(st.integers(lo, 3))]}
        else:
            labels[name] = draw(st.dictionaries(st.sampled_from(TRUST_NAMES), _grants(), max_size=3))
    data["labels"] = labels
    if draw(st.booleans()):
        data["overrides"] = {"block": draw(st.lists(st.sampled_from(
            ("*.lookalike.example", "blocked.example", "ceo@partner.example")), unique=True, max_size=2))}
    return Policy.from_data(data)


@st.composite
def auth_results_headers(draw: st.DrawFn, domain: str = "fabrikam.com",
                         authserv_ids: tuple[str, ...] = ("mx.contoso.com", "mx.evil.example")) -> str:
    """Generate ``Authentication-Results`` values: RFC 8601 ones with an authserv-id and Exchange Online's form.

    Results vary (``pass``, ``fail``, ``none``, ``softpass``, ``bestguesspass``), as do ``header.from`` (aligned
    or not), ``compauth`` reasons and comments.
    """
    header_from = draw(st.sampled_from((domain, domain.upper(), "other.example")))
    dmarc = draw(st.sampled_from(("pass", "fail", "none", "bestguesspass", "temperror")))
    compauth = draw(st.sampled_from(("pass", "fail", "softpass", "none")))
    reason = draw(st.sampled_from(("100", "130", "701", "000", "001", "601")))
    parts = [f"spf={draw(st.sampled_from(('pass', 'fail', 'softfail')))} (sender IP is 192.0.2.7) "
             f"smtp.mailfrom={domain}",
             f"dkim={draw(st.sampled_from(('pass', 'none', 'fail')))} (signature was verified) header.d={domain}",
             f"dmarc={dmarc} action=none header.from={header_from}"]
    if draw(st.booleans()):
        parts.append(f"compauth={compauth} reason={reason}")
    body = ";".join(parts) if draw(st.booleans()) else "; ".join(parts)
    if draw(st.booleans()):  # Exchange Online's form: no authserv-id
        return body
    return f"{draw(st.sampled_from(authserv_ids))}; {body}"


def mail_auths(domain: str = "fabrikam.com") -> st.SearchStrategy[MailAuth]:
    """Generate :class:`~mtotrust.MailAuth` results as an app would establish them."""
    words = st.sampled_from(("pass", "fail", "none", "softpass", None))
    return st.builds(MailAuth, dmarc=words, compauth=words,
                     header_from=st.sampled_from((domain, "other.example", None)), smtp_auth=st.booleans())
