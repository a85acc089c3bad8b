"""Exhaustive policy verification: the invariant catalogue, the attribute space, a reference evaluator, ``lint``.

The attributes that decide trust are finite: whether an object carries the address (none, one, two), how it
is external, its ``userType`` and ``accountEnabled``, the home tenant's MTO state, the partner flag, the tenant
id the caller gives, the mail authentication result, the app and its action or label. :func:`enumerate_space`
builds **one** snapshot (real Graph JSON, through :class:`~mtotrust._builder.SnapshotBuilder`) holding one user
per combination, and :func:`verify` evaluates the real :class:`~mtotrust.TrustEngine` on every combination and
every app, then checks every :data:`INVARIANTS` entry and compares each answer with :func:`reference_trust`, a
slow evaluator written from design sections 3 and 4 that reads the combination's attributes, not the snapshot.

This module imports no optional dependency: ``mtotrust lint`` works on a plain install. The public names are
re-exported by :mod:`mtotrust.testing.invariants`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import attrs

from mtotrust._builder import SnapshotBuilder
from mtotrust.address import normalize_address, normalize_domain
from mtotrust.engine import TrustEngine
from mtotrust.errors import IdentityError, MtoTrustError
from mtotrust.explain import explain
from mtotrust.model import (
    DlpDecision,
    Identity,
    LabelDecision,
    MailAuth,
    MailDecision,
    Resolution,
    TeamsDecision,
    Trust,
)
from mtotrust.policy import PERMISSION_LEVELS, TEAMS_ACTIONS, Policy
from mtotrust.snapshot import Snapshot

__all__ = [
    "AUTH_VARIANTS",
    "INVARIANTS",
    "Case",
    "Facts",
    "Finding",
    "Invariant",
    "Observation",
    "Report",
    "enumerate_space",
    "lint_main",
    "reference_trust",
    "verify",
]

# -- the attribute space ---------------------------------------------------------------------------------------

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
_INACTIVE = frozenset({"pending", "removed", "stateless", "not_in_mto", "unknown"})
_SPACE_LOCAL = "contoso"
_OTHER_HOME = "elsewhere.example"
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
    (where failed authentication means spoofing).

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

    @property
    def query(self) -> Identity | str:
        """The argument passed to the engine."""
        return Identity(self.identity, self.tenant_id) if self.tenant_id is not None else self.identity

    def describe(self) -> str:
        """Return the identity, the tenant id and the attributes on one line."""
        tid = f" tenant_id={self.tenant_id}" if self.tenant_id else ""
        facts = f" [{self.facts.describe()}]" if self.facts else " [from the given snapshot]"
        return f"{self.identity!r}{tid}{facts}"


def _tenant_name(state: str, partner: str) -> str:
    return f"{state.replace('_', '')}-{partner}"


def enumerate_space(policy: Policy | None = None) -> tuple[Snapshot, list[Case]]:
    """Build the snapshot of the whole attribute space and the cases to evaluate against it.

    One tenant per (home state, partner flag), one user per object combination in each, plus local, invalid,
    confusable and ``#EXT#``/proxy cases, and one case per ``overrides.block`` entry of ``policy``.
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
                home_tid: str | None = home_tid, protected: bool = protected, state: str = state) -> None:
            address = f"{local_part}@{domain}"
            # the mail sender is the From address as written: an #EXT# UPN is at a local domain
            sender_local = identity is not None
            sender_domain = identity.rpartition("@")[2] if identity is not None else domain
            for tid_kind, tid in tids(home_tid):
                cases.append(Case(identity or address, tid, address, sender_domain, protected or sender_local,
                                  sender_local, attrs.evolve(facts, tenant_id=tid_kind), state))

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
    known = set(b.local_domains) | {c.domain for c in cases if c.domain}
    for i, address in enumerate(_block_probes(policy)):
        domain = address.rpartition("@")[2]
        local = domain in b.local_domains
        if local:
            b.member(address)
        else:
            if domain not in known:
                b.tenant(f"blocked{i}", state="active", domains=(domain,))
                known.add(domain)
            b.synced_member(address)
        cases.append(Case(address, None, address, domain, True, local, Facts("blocked"), "blocked"))
    return b.build(), cases


def _block_probes(policy: Policy | None) -> list[str]:
    probes: list[str] = []
    for entry in policy.overrides.block if policy else ():
        if "@" in entry:
            local, domain = normalize_address(entry)
            probes.append(f"{local}@{domain}")
        elif entry.startswith("*."):
            domain = normalize_domain(entry[2:])
            probes += [f"blocked.user@sub.{domain}", f"blocked.user@{domain}"]
        else:
            probes.append(f"blocked.user@{normalize_domain(entry)}")
    return list(dict.fromkeys(probes))


# -- authentication variants -----------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class AuthVariant:
    """One way a message can arrive: how the ``auth`` argument is made, and what it means (for the reference)."""

    name: str
    make: Callable[[str, Policy], Any]
    meaning: Callable[[Policy, bool], tuple[bool, bool]]
    """``(policy, local_sender) -> (authenticated, explicit_failure)``, read from design section 4."""


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


# -- the reference evaluator -----------------------------------------------------------------------------------

def _block_entries(policy: Policy) -> list[tuple[str, str]]:
    entries = []
    for entry in policy.overrides.block:
        if "@" in entry:
            local, domain = normalize_address(entry)
            entries.append(("address", f"{local}@{domain}"))
        elif entry.startswith("*."):
            entries.append(("wildcard", normalize_domain(entry[2:])))
        else:
            entries.append(("domain", normalize_domain(entry)))
    return entries


def reference_blocked(policy: Policy, address: str | None) -> bool:
    """Return whether ``overrides.block`` names a normalised ``address``, written from design section 4."""
    if address is None:
        return False
    domain = address.rpartition("@")[2]
    for kind, value in _block_entries(policy):
        if (kind == "address" and value == address) or (kind == "domain" and value == domain):
            return True
        if kind == "wildcard" and (domain == value or domain.endswith("." + value)):
            return True
    return False


def reference_trust(facts: Facts, *, blocked: bool = False) -> Trust:
    """Return the trust design section 3 gives an identity with these attributes: the slow, obvious reading.

    Each rule is one line of the design, applied in the order "the lowest trust wins" makes irrelevant.
    """
    if facts.home in ("invalid", "confusable") or blocked or facts.objects >= 2:
        return Trust.UNTRUSTED
    if facts.tenant_id == "mismatch" and facts.home != "unknown":
        return Trust.UNTRUSTED
    if facts.home == "local":
        return Trust.INTERNAL
    caps = [Trust.MTO_MEMBER]
    if facts.objects == 0 or facts.external == "native" or facts.enabled is not True:
        caps.append(Trust.EXTERNAL)
    if facts.user_type != "Member" or facts.home not in ("active", "blocked"):
        caps.append(Trust.GUEST)
    if facts.partner == "false" or facts.external == "ext_upn_other":
        caps.append(Trust.GUEST)
    return min(caps)


@attrs.frozen(slots=True)
class _Expected:
    trust: Trust
    mail: dict[str, tuple[bool, Trust]]
    dlp: bool
    teams: dict[str, bool]
    labels: dict[str, frozenset[str]]


def _reference(case: Case, policy: Policy) -> _Expected | None:
    if case.facts is None:
        return None
    trust = reference_trust(case.facts, blocked=reference_blocked(policy, case.address))
    mail: dict[str, tuple[bool, Trust]] = {}
    for variant in AUTH_VARIANTS:
        authenticated, failed = variant.meaning(policy, case.local) if case.domain else (False, False)
        t = trust
        if failed and case.protected:
            t = Trust.UNTRUSTED
        if not authenticated and policy.mail.require_authentication and t > Trust.EXTERNAL:
            t = Trust.EXTERNAL
        mail[variant.name] = (t < Trust(policy.mail.untagged_at), t)
    labels = {}
    for label, grants in policy.labels.items():
        grant = grants.get(trust.value)
        labels[label] = (frozenset() if grant is None else
                         PERMISSION_LEVELS[grant] if isinstance(grant, str) else frozenset(grant))
    return _Expected(trust, mail, trust >= Trust(policy.dlp.inside_at),
                     {a: trust >= Trust(getattr(policy.teams, a)) for a in TEAMS_ACTIONS}, labels)


# -- observations ----------------------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Observation:
    """What the real engine answered for one :class:`Case`, in every app."""

    case: Case
    resolution: Resolution
    uncached: Resolution
    mail: dict[str, MailDecision]
    dlp: DlpDecision
    dlp_group: DlpDecision
    teams: dict[str, TeamsDecision]
    labels: dict[str, LabelDecision]


def _observe(engine: TrustEngine, plain: TrustEngine, cases: Sequence[Case], anchor: str) -> list[Observation]:
    policy = engine.policy
    out = []
    for i, case in enumerate(cases):
        q = case.query
        domain = case.domain or "invalid.example"
        neighbour = cases[(i + 1) % len(cases)].query
        out.append(Observation(
            case=case,
            resolution=engine.resolve(q),
            uncached=plain.resolve(q),
            mail={v.name: engine.mail(q, v.make(domain, policy)) for v in AUTH_VARIANTS},
            dlp=engine.dlp([q]),
            dlp_group=engine.dlp([q, neighbour, anchor]),
            teams={a: engine.teams(q, a) for a in TEAMS_ACTIONS},
            labels={name: engine.label_rights(q, name) for name in policy.labels},
        ))
    return out


def _snapshot_cases(snapshot: Snapshot, policy: Policy) -> list[Case]:
    engine = TrustEngine(snapshot, policy, cache_size=0)
    cases = []
    for address in sorted(snapshot.addresses()):
        resolution = engine.resolve(address)
        home = resolution.home_tenant_id
        domain = address.rpartition("@")[2]
        if home is None:
            state = "unknown"
        elif home == snapshot.tenant_id:
            state = "local"
        elif home in snapshot.tenants:
            state = snapshot.tenants[home].state or "stateless"
            state = state if state in HOME_STATES else "stateless"
        else:
            state = "not_in_mto"
        local = domain in snapshot.local_domains
        cases.append(Case(address, None, address, domain, local or domain in snapshot.mto_domains, local, None,
                          state))
    return cases


# -- invariants ------------------------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Violation:
    """One place an invariant fails: the observation, the app, what went wrong and the decision to explain."""

    observation: Observation
    app: str
    detail: str
    decision: Resolution | MailDecision | DlpDecision | TeamsDecision | LabelDecision
    also: Resolution | MailDecision | DlpDecision | TeamsDecision | LabelDecision | None = None


CaseCheck = Callable[[Observation, Policy], Iterator[Violation]]
GlobalCheck = Callable[[Sequence[Observation], Policy], Iterator[Violation]]


@attrs.frozen(slots=True)
class Invariant:
    """A named, documented property of a sane policy, checked on every evaluated combination.

    ``per_case`` invariants look at one identity's answers; the others (monotonicity) compare answers across
    identities.

    .. versionadded:: 0.1.0
    """

    name: str
    summary: str
    check_case: CaseCheck | None = None
    check_all: GlobalCheck | None = None

    def violations(self, observations: Sequence[Observation], policy: Policy) -> list[Violation]:
        """Return every violation of this invariant among ``observations``."""
        found: list[Violation] = []
        if self.check_case is not None:
            for obs in observations:
                found.extend(self.check_case(obs, policy))
        if self.check_all is not None:
            found.extend(self.check_all(observations, policy))
        return found


def _inactive_capped(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.case.home_state in _INACTIVE and obs.resolution.trust > Trust.GUEST:
        yield Violation(obs, "resolve", f"resolved to {obs.resolution.trust} from a {obs.case.home_state} home",
                        obs.resolution)


def _inactive_tagged(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.case.home_state in _INACTIVE:
        for name, d in obs.mail.items():
            if not d.tag_external:
                yield Violation(obs, f"mail (auth: {name})", "mail is not tagged [External]", d)


def _inactive_outside(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.case.home_state in _INACTIVE and obs.dlp.inside_organization:
        yield Violation(obs, "dlp", "counted inside the organization", obs.dlp)


def _unauth_capped(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    for name, d in obs.mail.items():
        if not d.authenticated and d.trust > Trust.EXTERNAL:
            yield Violation(obs, f"mail (auth: {name})", f"unauthenticated mail keeps trust {d.trust}", d)


def _unauth_tagged(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    for name, d in obs.mail.items():
        if not d.authenticated and not d.tag_external:
            yield Violation(obs, f"mail (auth: {name})", "unauthenticated mail is not tagged [External]", d)


def _spoof(obs: Observation, policy: Policy) -> Iterator[Violation]:
    if not obs.case.protected or obs.case.domain is None:
        return
    for variant in AUTH_VARIANTS:
        if variant.meaning(policy, obs.case.local)[1]:
            d = obs.mail[variant.name]
            if d.trust != Trust.UNTRUSTED or not d.tag_external:
                yield Violation(obs, f"mail (auth: {variant.name})",
                                f"failed authentication for a protected domain gave trust {d.trust}, "
                                f"tagged={d.tag_external}", d)


def _guest_tagged(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    for name, d in obs.mail.items():
        if d.trust <= Trust.GUEST and not d.tag_external:
            yield Violation(obs, f"mail (auth: {name})", f"mail at trust {d.trust} is not tagged [External]", d)


def _guest_outside(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.resolution.trust <= Trust.GUEST and obs.dlp.inside_organization:
        yield Violation(obs, "dlp", f"a recipient at trust {obs.resolution.trust} counts as inside", obs.dlp)


def _untrusted_nothing(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    if obs.resolution.trust != Trust.UNTRUSTED:
        return
    for action, t in obs.teams.items():
        if t.allowed:
            yield Violation(obs, f"teams {action}", "allowed for an untrusted identity", t)
    for label, lab in obs.labels.items():
        if lab.rights:
            yield Violation(obs, f"label {label!r}", f"grants {', '.join(sorted(lab.rights))} to an untrusted "
                            "identity", lab)
    if obs.dlp.inside_organization:
        yield Violation(obs, "dlp", "an untrusted recipient counts as inside", obs.dlp)
    for name, d in obs.mail.items():
        if not d.tag_external:
            yield Violation(obs, f"mail (auth: {name})", "mail from an untrusted sender is not tagged", d)


def _blocked(obs: Observation, policy: Policy) -> Iterator[Violation]:
    if reference_blocked(policy, obs.case.address) and obs.resolution.trust != Trust.UNTRUSTED:
        yield Violation(obs, "resolve", f"a blocked identity resolved to {obs.resolution.trust}", obs.resolution)


def _mismatch(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    f = obs.case.facts
    if f is not None and f.tenant_id == "mismatch" and f.home != "unknown" \
            and obs.resolution.trust != Trust.UNTRUSTED:
        yield Violation(obs, "resolve", f"a wrong tenant id resolved to {obs.resolution.trust}", obs.resolution)


def _unresolvable(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    f = obs.case.facts
    if f is not None and (f.home in ("invalid", "confusable") or f.objects >= 2) \
            and obs.resolution.trust != Trust.UNTRUSTED:
        yield Violation(obs, "resolve", f"resolved to {obs.resolution.trust}", obs.resolution)


def _member_evidence(obs: Observation, _policy: Policy) -> Iterator[Violation]:
    f = obs.case.facts
    if f is None or obs.resolution.trust != Trust.MTO_MEMBER:
        return
    proven = (f.home == "active" and f.objects == 1 and f.external in ("federated", "invitation", "ext_upn")
              and f.user_type == "Member" and f.enabled is True and f.partner != "false"
              and f.tenant_id != "mismatch")
    if not proven:
        yield Violation(obs, "resolve", "mto_member without the full evidence design section 3 requires",
                        obs.resolution)


def _dlp_threshold(obs: Observation, policy: Policy) -> Iterator[Violation]:
    inside_at = Trust(policy.dlp.inside_at)
    for d in (obs.dlp, obs.dlp_group):
        low = [r for r in d.recipients if r.trust < inside_at]
        if d.inside_organization and low:
            yield Violation(obs, "dlp", f"inside although {low[0].identity!r} is {low[0].trust}", d)


def _reference_agrees(obs: Observation, policy: Policy) -> Iterator[Violation]:
    if (obs.resolution.trust, obs.resolution.reasons) != (obs.uncached.trust, obs.uncached.reasons):
        yield Violation(obs, "resolve", f"cached answer {obs.resolution.trust} differs from uncached "
                        f"{obs.uncached.trust}", obs.resolution)
    want = _reference(obs.case, policy)
    if want is None:
        return
    if obs.resolution.trust != want.trust:
        yield Violation(obs, "resolve", f"engine says {obs.resolution.trust}, reference says {want.trust}",
                        obs.resolution)
        return
    for name, d in obs.mail.items():
        if (d.tag_external, d.trust) != want.mail[name]:
            yield Violation(obs, f"mail (auth: {name})", f"engine says tagged={d.tag_external} at {d.trust}, "
                            f"reference says tagged={want.mail[name][0]} at {want.mail[name][1]}", d)
    if obs.dlp.inside_organization != want.dlp:
        yield Violation(obs, "dlp", f"engine says inside={obs.dlp.inside_organization}, reference {want.dlp}",
                        obs.dlp)
    for action, t in obs.teams.items():
        if t.allowed != want.teams[action]:
            yield Violation(obs, f"teams {action}", f"engine says allowed={t.allowed}, reference "
                            f"{want.teams[action]}", t)
    for label, lab in obs.labels.items():
        if lab.rights != want.labels[label]:
            yield Violation(obs, f"label {label!r}", f"engine grants {sorted(lab.rights)}, reference "
                            f"{sorted(want.labels[label])}", lab)


def _monotonic(outcome: Callable[[Observation], Iterable[tuple[str, Trust, Any, Any]]],
               better: Callable[[Any, Any], bool], what: str) -> GlobalCheck:
    """Build a check that a higher trust never gets a worse ``outcome`` than a lower trust, per key."""
    def check(observations: Sequence[Observation], _policy: Policy) -> Iterator[Violation]:
        seen: dict[tuple[str, Trust], tuple[Any, Observation, Any]] = {}
        for obs in observations:
            for key, trust, value, decision in outcome(obs):
                seen.setdefault((key, trust), (value, obs, decision))
        for (key, low), (low_value, _, low_decision) in sorted(seen.items(), key=lambda kv: (kv[0][0], kv[0][1].rank)):
            for high in Trust:
                if high <= low or (key, high) not in seen:
                    continue
                high_value, high_obs, decision = seen[(key, high)]
                if better(low_value, high_value):
                    yield Violation(high_obs, key, f"{what}: trust {high} gets {_show(high_value)} but the lower "
                                    f"trust {low} gets {_show(low_value)}", decision, also=low_decision)
    return check


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}" if value else "no rights"
    return str(value)


def _mail_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    for d in obs.mail.values():
        yield "mail", d.trust, "untagged" if not d.tag_external else "tagged", d


def _dlp_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    yield "dlp", obs.resolution.trust, "inside" if obs.dlp.inside_organization else "outside", obs.dlp


def _teams_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    for action, t in obs.teams.items():
        yield f"teams {action}", t.trust, "allowed" if t.allowed else "denied", t


def _label_outcomes(obs: Observation) -> Iterator[tuple[str, Trust, Any, Any]]:
    for label, lab in obs.labels.items():
        yield f"label {label!r}", lab.trust, lab.rights, lab


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("inactive_tenant_capped",
              "An identity whose home tenant is pending, removed, of unknown MTO state, outside the MTO or "
              "unknown resolves to at most guest: userType Member alone never elevates.", _inactive_capped),
    Invariant("inactive_tenant_tagged",
              "Mail from an identity of a pending, removed or non-MTO tenant is always tagged [External], "
              "however it is authenticated.", _inactive_tagged),
    Invariant("inactive_tenant_outside",
              "DLP never counts a recipient of a pending, removed or non-MTO tenant inside the organization.",
              _inactive_outside),
    Invariant("unauthenticated_mail_capped",
              "Unauthenticated mail never keeps a trust above external (mail.require_authentication).",
              _unauth_capped),
    Invariant("unauthenticated_mail_tagged",
              "Unauthenticated mail is always tagged [External] (mail.untagged_at above external).",
              _unauth_tagged),
    Invariant("spoofed_mail_untrusted",
              "Mail whose DMARC or composite authentication fails for a local or MTO domain is untrusted and "
              "tagged, even when a lower (possibly forged) header passes.", _spoof),
    Invariant("guest_mail_tagged",
              "Mail at guest trust or below is always tagged [External] (mail.untagged_at above guest).",
              _guest_tagged),
    Invariant("guest_outside",
              "DLP never counts a recipient at guest trust or below inside the organization (dlp.inside_at "
              "above guest).", _guest_outside),
    Invariant("untrusted_gets_nothing",
              "An untrusted identity (invalid, look-alike, ambiguous, blocked, wrong tenant id) gets no Teams "
              "action, no label rights, no DLP inside, and its mail is tagged.", _untrusted_nothing),
    Invariant("blocked_untrusted",
              "Every overrides.block entry resolves to untrusted, however strong the directory evidence.",
              _blocked),
    Invariant("tenant_id_mismatch_untrusted",
              "A caller's tenant id that differs from the domain's home tenant makes the identity untrusted.",
              _mismatch),
    Invariant("unresolvable_untrusted",
              "Invalid identities, confusable look-alike domains and addresses carried by two objects resolve to "
              "untrusted.", _unresolvable),
    Invariant("mto_member_needs_evidence",
              "mto_member only with all the evidence: one external, enabled Member object of an active tenant, "
              "no partner flag false, agreeing #EXT# home and a matching tenant id.", _member_evidence),
    Invariant("dlp_inside_threshold",
              "A DLP decision is inside only when every recipient is at or above dlp.inside_at.", _dlp_threshold),
    Invariant("monotonic_mail", "Higher trust is never tagged where lower trust is untagged.",
              check_all=_monotonic(_mail_outcomes, lambda lo, hi: lo == "untagged" and hi == "tagged", "mail")),
    Invariant("monotonic_dlp", "Higher trust is never outside where lower trust is inside.",
              check_all=_monotonic(_dlp_outcomes, lambda lo, hi: lo == "inside" and hi == "outside", "DLP")),
    Invariant("monotonic_teams", "Higher trust is never denied a Teams action lower trust is allowed.",
              check_all=_monotonic(_teams_outcomes, lambda lo, hi: lo == "allowed" and hi == "denied", "Teams")),
    Invariant("monotonic_label_rights",
              "Label rights only grow with trust: guest ⊆ mto_member ⊆ internal for every label.",
              check_all=_monotonic(_label_outcomes, lambda lo, hi: not lo <= hi, "label rights")),
    Invariant("reference_agrees",
              "The cached engine equals the uncached engine and the reference evaluator (design sections 3 "
              "and 4, read from the attributes) on every combination and app.", _reference_agrees),
)
"""The invariant catalogue, in report order."""


# -- findings and reports --------------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Finding:
    """A violated invariant: how often, and its minimal counterexample with the engine's explanation.

    .. versionadded:: 0.1.0
    """

    invariant: str
    summary: str
    count: int
    identity: str
    tenant_id: str | None
    attributes: str
    app: str
    detail: str
    explanation: str
    contrast: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return attrs.asdict(self)

    def format(self) -> str:
        """Return the finding as indented text."""
        lines = [f"FAIL {self.invariant}: {self.summary}",
                 f"  {self.count} violation(s); minimal counterexample:",
                 f"    identity: {self.identity!r}" + (f"  tenant_id: {self.tenant_id}" if self.tenant_id else ""),
                 f"    attributes: {self.attributes}",
                 f"    {self.app}: {self.detail}",
                 "    explanation:"]
        lines += [f"      {line}" for line in self.explanation.splitlines()]
        if self.contrast:
            lines.append("    compared with:")
            lines += [f"      {line}" for line in self.contrast.splitlines()]
        return "\n".join(lines)


def _key(item: tuple[int, Violation]) -> tuple[int, int, str, int]:
    order, v = item
    facts = v.observation.case.facts
    return (facts.complexity if facts else 99, len(v.observation.case.identity), v.observation.case.identity, order)


def _finding(inv: Invariant, found: list[Violation]) -> Finding:
    _, v = min(enumerate(found), key=_key)
    case = v.observation.case
    return Finding(invariant=inv.name, summary=inv.summary, count=len(found), identity=case.identity,
                   tenant_id=case.tenant_id, attributes=case.facts.describe() if case.facts else "from the given "
                   "snapshot", app=v.app, detail=v.detail, explanation=explain(v.decision),
                   contrast=explain(v.also) if v.also else None)


@attrs.frozen(slots=True)
class Report:
    """The result of :func:`verify`: every invariant checked, the findings, and how much was enumerated.

    .. versionadded:: 0.1.0
    """

    policy_fingerprint: str
    cases: int
    decisions: int
    seconds: float
    checked: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """Whether no invariant is violated."""
        return not self.findings

    def violated(self) -> tuple[str, ...]:
        """Return the names of the violated invariants."""
        return tuple(f.invariant for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"ok": self.ok, "policy_fingerprint": self.policy_fingerprint, "cases": self.cases,
                "decisions": self.decisions, "seconds": round(self.seconds, 3), "checked": list(self.checked),
                "findings": [f.to_dict() for f in self.findings]}

    def format(self) -> str:
        """Return the report as text: one line per invariant, details for each failure."""
        bad = {f.invariant: f for f in self.findings}
        lines = [f"verified policy {self.policy_fingerprint}: {self.cases} identities, {self.decisions} decisions "
                 f"in {self.seconds:.1f} s"]
        for name in self.checked:
            lines.append(bad[name].format() if name in bad else f"ok   {name}")
        lines.append(f"{len(self.findings)} invariant(s) violated." if self.findings else "all invariants hold.")
        return "\n".join(lines)


def verify(policy: Policy | None = None, snapshot: Snapshot | None = None, *,
           invariants: Iterable[Invariant | str] | None = None) -> Report:
    """Enumerate the attribute space, evaluate the real engine everywhere and check the invariants.

    Args:
        policy: the policy to verify (default :meth:`Policy.default`).
        snapshot: a real snapshot whose every indexed address is checked too (the space is always checked).
        invariants: the invariants (or their names) to check; default all of :data:`INVARIANTS`.

    Returns:
        a :class:`Report`; ``report.ok`` is true when nothing is violated.

    Raises:
        KeyError: for an unknown invariant name.

    .. versionadded:: 0.1.0
    """
    policy = policy if policy is not None else Policy.default()
    by_name = {i.name: i for i in INVARIANTS}
    chosen = [by_name[i] if isinstance(i, str) else i for i in (invariants if invariants is not None else INVARIANTS)]
    start = time.perf_counter()
    space, cases = enumerate_space(policy)
    observations = _observe(TrustEngine(space, policy), TrustEngine(space, policy, cache_size=0), cases,
                            "megan@contoso.com")
    if snapshot is not None:
        extra = _snapshot_cases(snapshot, policy)
        if extra:
            anchor = extra[0].identity
            observations += _observe(TrustEngine(snapshot, policy), TrustEngine(snapshot, policy, cache_size=0),
                                     extra, anchor)
    findings = []
    for inv in chosen:
        found = inv.violations(observations, policy)
        if found:
            findings.append(_finding(inv, found))
    decisions = sum(2 + len(o.mail) + 2 + len(o.teams) + len(o.labels) for o in observations)
    return Report(policy.fingerprint, len(observations), decisions, time.perf_counter() - start,
                  tuple(i.name for i in chosen), tuple(findings))


def lint_main(policy_path: str, snapshot_path: str | None, *, as_json: bool) -> int:
    """Run ``mtotrust lint``: validate the policy file, verify it, print the findings.

    Returns:
        ``0`` when every invariant holds, ``1`` on violations, ``2`` for a bad policy or snapshot (one line on
        stderr naming the problem).

    .. versionadded:: 0.1.0
    """
    try:
        policy = Policy.load(policy_path)
        snapshot = Snapshot.load(snapshot_path) if snapshot_path is not None else None
    except (MtoTrustError, OSError) as exc:
        print(f"mtotrust lint: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    try:
        report = verify(policy, snapshot)
    except IdentityError as exc:  # pragma: no cover - block entries are validated by Policy already
        print(f"mtotrust lint: {exc}", file=sys.stderr)
        return 2
    if as_json:
        data = report.to_dict()
        data["policy"] = policy_path
        data["snapshot"] = snapshot_path
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        where = f"snapshot {snapshot_path} and " if snapshot_path else ""
        print(f"mtotrust lint {policy_path}: checking {where}the synthetic attribute space")
        print(report.format())
    return 0 if report.ok else 1
