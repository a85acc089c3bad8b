"""Human-readable explanations of resolutions and decisions, from their stable reason codes.

:data:`REASONS` is the one catalogue of reason codes; ``docs/reasons.md`` documents the same codes and a test
keeps the two in step. The module is large because it is one concept whose parts change together when a reason
code is added: the catalogue (``REASONS``, ``CAPS``, ``FIXES``), the evidence each check used, the deciding policy
key, the first failure that would change the answer, and the text and JSON built from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from mtotrust._address import normalize_address, proxy_smtp_address, split_ext_upn
from mtotrust._errors import IdentityError
from mtotrust._model import (
    AppDecision,
    Decision,
    DirectoryUser,
    DlpDecision,
    LabelDecision,
    MailDecision,
    Resolution,
    TeamsDecision,
    Trust,
)
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot

__all__ = ["CAPS", "FIXES", "REASONS", "Failure", "Step", "deciding_key", "explain", "explain_data", "failed_checks",
           "first_failed", "matched_attributes", "printable"]

REASONS: dict[str, str] = {
    # identity and domain
    "invalid_identity": "the identity is not a valid address, so it cannot be trusted",
    "ext_upn_decoded": "the #EXT# user principal name at a local domain was decoded to the home address",
    "local_domain": "the domain is a verified domain of the local tenant",
    "domain_known": "the domain belongs to a known tenant (domains.json)",
    "domain_unknown": "the domain belongs to no tenant the snapshot knows",
    "confusable_domain": "the domain is not known but looks like a known one (UTS-39 confusable): spoofing",
    "blocked": "the policy's overrides.block names this address or domain",
    # directory object
    "ambiguous_match": "two or more directory objects carry this address, so none can be trusted",
    "object_found": "a directory object carries this address",
    "no_object": "no directory object carries this address",
    "object_external": "the object belongs to someone at home in another tenant",
    "object_not_external": "the object is a native local object: a foreign address on it proves nothing",
    "account_enabled": "the account is enabled",
    "account_disabled": "the account is disabled",
    "account_enabled_missing": "the snapshot does not say whether the account is enabled (fail closed)",
    "user_type_member": "the object's userType is Member",
    "user_type_guest": "the object's userType is Guest",
    "user_type_missing": "the snapshot does not carry the object's userType (fail closed)",
    "user_type_not_member": "the object's userType is neither Member nor Guest",
    "home_evidence_agrees": "the object's #EXT# name points to the same home tenant as the address",
    "home_evidence_disagrees": "the object's #EXT# name points to another home tenant than the address",
    # tenant
    "home_tenant_unknown": "the address's domain maps to no tenant, so MTO membership cannot be shown",
    "home_tenant_is_local": "the domain maps to the local tenant but is not one of its verified domains",
    "tenant_active": "the home tenant is active in the multi-tenant organization",
    "tenant_pending": "the home tenant is only pending in the multi-tenant organization",
    "tenant_removed": "the home tenant is being removed from the multi-tenant organization",
    "tenant_state_unknown": "the home tenant's MTO state is missing or unknown (fail closed)",
    "tenant_not_in_mto": "the home tenant is not part of the multi-tenant organization",
    "partner_in_mto": "the cross-tenant access partner policy marks the tenant as an MTO member",
    "partner_not_in_mto": "the cross-tenant access partner policy says the tenant is not in the MTO",
    "tenant_id_verified": "the tenant id the app gave matches the domain's home tenant",
    "tenant_id_mismatch": "the tenant id the app gave differs from the domain's home tenant",
    "tenant_id_unverifiable": "the domain maps to no tenant, so the given tenant id could not be checked",
    # mail
    "from_missing": "the message's From field names no mailbox that can be read, so the sender is unknown",
    "from_ambiguous": "the message has several From fields or mailboxes, or a group, so the sender is unclear",
    "auth_missing": "no authentication results were given",
    "auth_given": "the app supplied authentication results, trusted as given",
    "auth_given_invalid": "the app's MailAuth has a field of the wrong type, so it cannot be read: a failure",
    "auth_invalid": "the authentication argument is of an unsupported type and was ignored",
    "auth_header_trusted": "the topmost trusted Authentication-Results header was used",
    "auth_header_untrusted": "no Authentication-Results header was stamped by a trusted authserv-id",
    "auth_header_limit": "none of the first 64 Authentication-Results values counts, and the rest were not read",
    "auth_header_unparsable": "the topmost trusted Authentication-Results header cannot be parsed: a failure",
    "unauthenticated": "the message is not authenticated",
    "auth_pass": "DMARC or composite authentication passed for the sender's domain",
    "smtp_auth_pass": "the message was submitted with SMTP AUTH from a local-domain sender",
    "auth_not_pass": "neither DMARC nor composite authentication passed",
    "auth_misaligned": "authentication passed for another domain than the sender's",
    "auth_fail": "DMARC or composite authentication failed explicitly",
    "spoof_suspected": "authentication failed for a local or MTO domain: the sender is likely spoofed",
    "unauthenticated_capped": "unauthenticated mail is capped at external trust",
    "tagged_below_untagged_at": "trust is below mail.untagged_at, so the message is tagged external",
    "untagged": "trust is at or above mail.untagged_at, so the message is not tagged",
    # DLP, labels, Teams
    "no_recipients": "there are no recipients, so nothing leaves the organization",
    "all_recipients_inside": "every recipient is at or above dlp.inside_at",
    "recipient_below_inside_at": "at least one recipient is below dlp.inside_at",
    "label_rights_granted": "the label grants usage rights at this trust level",
    "label_no_rights": "the label lists no rights for this trust level",
    "teams_allowed": "trust meets the policy's minimum for this Teams action",
    "teams_below_minimum": "trust is below the policy's minimum for this Teams action",
    # engine
    "internal_error": "an internal error occurred; the decision failed closed",
    "snapshot_stale": "the snapshot is older than the policy's snapshot.max_age, so trust is capped at external",
}

CAPS: dict[str, Trust] = {
    "invalid_identity": Trust.UNTRUSTED,
    "confusable_domain": Trust.UNTRUSTED,
    "blocked": Trust.UNTRUSTED,
    "ambiguous_match": Trust.UNTRUSTED,
    "tenant_id_mismatch": Trust.UNTRUSTED,
    "spoof_suspected": Trust.UNTRUSTED,
    "internal_error": Trust.UNTRUSTED,
    "from_missing": Trust.UNTRUSTED,
    "from_ambiguous": Trust.UNTRUSTED,
    "no_object": Trust.EXTERNAL,
    "object_not_external": Trust.EXTERNAL,
    "account_disabled": Trust.EXTERNAL,
    "account_enabled_missing": Trust.EXTERNAL,
    "unauthenticated_capped": Trust.EXTERNAL,
    "snapshot_stale": Trust.EXTERNAL,
    "user_type_guest": Trust.GUEST,
    "user_type_missing": Trust.GUEST,
    "user_type_not_member": Trust.GUEST,
    "home_tenant_unknown": Trust.GUEST,
    "home_tenant_is_local": Trust.GUEST,
    "tenant_pending": Trust.GUEST,
    "tenant_removed": Trust.GUEST,
    "tenant_state_unknown": Trust.GUEST,
    "tenant_not_in_mto": Trust.GUEST,
    "partner_not_in_mto": Trust.GUEST,
    "home_evidence_disagrees": Trust.GUEST,
}
"""Reason codes that lower trust, with the highest trust a resolution or decision carrying them can have.

(``no_object`` caps at ``external`` only for a non-local domain.)
"""



def printable(text: str) -> str:
    r"""Return ``text`` with every unprintable character as its Python escape: ``\x1b``, ``\n``, ``\u202e``.

    Controls, line breaks, bidi and other format characters, and lone surrogates are escaped, so a value from the
    directory can neither move a terminal's cursor, recolour it, reverse the text around it, nor make the output
    invalid UTF-8. The terminal reports and :func:`explain` show directory values through it.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def failed_checks(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """Return the reasons that lowered trust (those in :data:`CAPS`), in order: what would change the answer."""
    return tuple(code for code in reasons if code in CAPS)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def deciding_key(decision: Decision, policy: Policy) -> str | None:
    """Return the policy key that decided ``decision``, with its value as a policy file writes it.

    A negative answer for a blocked identity was decided by ``overrides.block``, one that a stale snapshot's cap
    put below the trust the answer needs by ``snapshot.max_age``; else (a positive answer too) the app's own key:
    ``mail.untagged_at`` (and ``mail.require_authentication`` when it capped the trust), ``dlp.inside_at``,
    ``teams.<action>``, the label's entry for the trust level (or its absence). ``None`` for a resolution the
    directory alone decided.

    .. versionadded:: 0.2.0
    """
    reasons = decision.reasons if not isinstance(decision, DlpDecision) \
        else tuple(r for recipient in decision.recipients for r in recipient.reasons)
    if not isinstance(decision, (Resolution, DlpDecision)):
        reasons = (*decision.resolution.reasons, *reasons)
    need = _threshold(decision, policy) if _negative(decision) else None
    if need is not None and "blocked" in reasons:  # a cap decides only a negative answer it put below the need
        return "overrides.block"
    if need is not None and "snapshot_stale" in reasons and CAPS["snapshot_stale"] < need:
        return f"snapshot.max_age = {json.dumps(policy.snapshot.max_age)}"
    if isinstance(decision, Resolution):
        return None
    if isinstance(decision, MailDecision):
        key = f"mail.untagged_at = {json.dumps(policy.mail.untagged_at)}"
        return f"mail.require_authentication = true, {key}" if "unauthenticated_capped" in reasons else key
    if isinstance(decision, DlpDecision):
        return f"dlp.inside_at = {json.dumps(policy.dlp.inside_at)}"
    if isinstance(decision, TeamsDecision):
        return f"teams.{decision.action} = {json.dumps(getattr(policy.teams, decision.action))}"
    levels = policy.labels.get(decision.label, {})
    label = f"labels.{_toml_key(decision.label)}"
    grant = levels.get(decision.trust.value)
    if grant is None:
        return f"{label} (no entry for {decision.trust.value})"
    return f"{label}.{decision.trust.value} = {json.dumps(grant)}"


FIXES: dict[str, str] = {
    # identity and domain
    "invalid_identity": "a well-formed address: one ASCII '@', a dot-atom local part, no control or invisible "
                        "characters, no trailing dot, at most 320 characters",
    "confusable_domain": "nothing should: a lookalike of a known domain is a spoofing signal (if the domain is real, "
                         "add it to domains.json: an exact match is never confusable)",
    "blocked": "remove the entry from overrides.block",
    # directory object
    "ambiguous_match": "remove the address from all but one directory object",
    "no_object": "the user is synced or invited into the local directory",
    "object_not_external": "ask with the address of the person's own synced (external) object: a foreign address "
                           "on a native local object proves nothing",
    "account_disabled": "the account is enabled at the source (cross-tenant sync carries it over)",
    "account_enabled_missing": "export users with $select=...,accountEnabled",
    "user_type_guest": "cross-tenant sync maps userType to Member (\"Apply this mapping: Always\" for existing B2B "
                       "users)",
    "user_type_missing": "export users with $select=...,userType",
    "user_type_not_member": "userType Member",
    "home_evidence_disagrees": "ask with the address of the object's own home tenant",
    # tenant
    "home_tenant_unknown": "add the domain to domains.json (findTenantInformationByDomainName)",
    "home_tenant_is_local": "verify the domain in the local tenant, or correct domains.json",
    "tenant_pending": "the tenant joins the MTO; a tenant must be active in the MTO for its synced users to count as "
                      "MTO members",
    "tenant_removed": "the tenant rejoins the MTO; a tenant must be active in the MTO for its synced users to count "
                      "as MTO members",
    "tenant_state_unknown": "read mto.json with full permission (ReadBasic leaves the state out); the state must be "
                            "active",
    "tenant_not_in_mto": "the tenant is added to and joins the MTO",
    "partner_not_in_mto": "the cross-tenant access partner policy marks the tenant as in the MTO "
                          "(isInMultiTenantOrganization: true)",
    "tenant_id_mismatch": "nothing should: the identity claims another tenant than its domain's",
    # mail
    "from_missing": "one From field naming one well-formed mailbox, such as Name <local@domain>",
    "from_ambiguous": "one From field with a single mailbox",
    "auth_missing": "pass the boundary's Authentication-Results header (mtotrust: --auth) or a MailAuth",
    "auth_invalid": "pass a MailAuth, a str or a sequence of str",
    "auth_given_invalid": "build the MailAuth with str (or None) words and domain and a bool smtp_auth",
    "auth_header_untrusted": "add the boundary's authserv-id to mail.trusted_authserv_ids, or set "
                             "accept_exchange_online_results for Exchange Online",
    "auth_header_limit": "the boundary's header among the topmost 64 Authentication-Results values",
    "auth_header_unparsable": "a well-formed Authentication-Results header from the boundary",
    "unauthenticated": "authentication results that count, with a pass for the sender's domain",
    "auth_not_pass": "the sender's domain publishes DMARC and the message passes it",
    "auth_misaligned": "a pass for the From address's own domain",
    "auth_fail": "the message passes authentication",
    "spoof_suspected": "nothing should: the message failed authentication for a domain we know",
    "unauthenticated_capped": "authenticated mail, or mail.require_authentication = false",
    "tagged_below_untagged_at": "higher trust, or a lower mail.untagged_at",
    # DLP, labels, Teams
    "recipient_below_inside_at": "remove the recipient, raise its trust, or lower dlp.inside_at",
    "label_no_rights": "add the trust level to the label in the policy, or higher trust",
    "teams_below_minimum": "higher trust, or a lower minimum in [teams]",
    # engine
    "internal_error": "report the bug; the log names the exception type",
    "snapshot_stale": "sync a fresh snapshot, or raise snapshot.max_age",
}
"""What would change the answer, for every reason code that reports a failed check (docs/reasons.md, last column).

Every code of :data:`CAPS` is here, and the codes of the apps' checks that fail without capping trust
(``auth_missing``, ``tagged_below_untagged_at``, ``teams_below_minimum`` ...).
"""


@attrs.frozen(slots=True)
class Step:
    """One check of an explanation: its reason code, the catalogue sentence and the evidence it used.

    ``detail`` is the evidence in words (empty when the sentence says it all); ``evidence`` the same as
    JSON-ready data (attribute names as Graph spells them, tenant ids and names, policy keys with their values).
    """

    code: str
    sentence: str
    detail: str
    evidence: Mapping[str, Any]

    @property
    def text(self) -> str:
        """The sentence and, after a colon, the evidence in words."""
        return f"{self.sentence}: {self.detail}" if self.detail else self.sentence

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"code", "text", "evidence"}``."""
        return {"code": self.code, "text": self.text, "evidence": dict(self.evidence)}


@attrs.frozen(slots=True)
class Failure:
    """The first check that failed in a negative answer, where it is in the chain, and what would change it."""

    code: str
    where: str
    """``step 6``, or for a DLP decision ``nora@northwindtraders.com, step 6`` or ``the DLP check``."""
    text: str
    """The failed check with its evidence: ``tenant Northwind (55555555-...) is in state removed in mto.json``."""
    fix: str

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"code", "text", "fix"}``."""
        return {"code": self.code, "text": self.text, "fix": self.fix}


@attrs.frozen(slots=True)
class _Context:
    """The snapshot and policy a decision was made from, where the caller has them (``None``: not at hand)."""

    snapshot: Snapshot | None
    policy: Policy | None


def _context(decision: Decision, snapshot: Snapshot | None, policy: Policy | None) -> _Context:
    """Keep ``snapshot`` and ``policy`` only if ``decision`` was made from them: other ones would be false evidence."""
    return _Context(snapshot if snapshot is not None and snapshot.id == decision.snapshot_id else None,
                    policy if policy is not None and policy.fingerprint == decision.policy_fingerprint else None)


_Evidence = tuple[dict[str, Any], str]


def _tenant(ctx: _Context, tenant_id: str | None) -> _Evidence:
    """Return a tenant's id and name (from ``mto.json`` or the local organization) and ``tenant NAME (ID)``."""
    name = None
    snap = ctx.snapshot
    if snap is not None and tenant_id is not None:
        tenant = snap.tenants.get(tenant_id)
        name = tenant.display_name if tenant is not None else None
        if name is None and tenant_id == snap.tenant_id:
            name = snap.display_name
    return {"tenant_id": tenant_id, "tenant_name": name}, f"tenant {name} ({tenant_id})" if name else \
        f"tenant {tenant_id}"


def _who(r: Resolution) -> str:
    """Return the address a resolution looked up, or the identity as given (cut to 80 characters) in quotes."""
    return r.address or repr(r.identity[:80])


def _domain(address: str | None) -> str:
    return (address or "").rpartition("@")[2]


def _normal(value: str) -> tuple[str, str] | None:
    try:
        return normalize_address(value)
    except IdentityError:
        return None


def _ext_home(upn: str | None, ctx: _Context) -> tuple[str, str] | None:
    """Return the address an ``#EXT#`` user principal name at a local domain encodes (``("", "")``: malformed)."""
    parts = _normal(upn) if upn and "#ext#" in upn.lower() else None
    if parts is None or (ctx.snapshot is not None and parts[1] not in ctx.snapshot.local_domains):
        return None
    try:
        return split_ext_upn(parts[0], upn or "")
    except IdentityError:
        return "", ""


def matched_attributes(user: DirectoryUser, address: str, snapshot: Snapshot | None = None) -> tuple[str, ...]:
    """Return the attributes of ``user`` that carry the normalised ``address``, in the order the index reads them.

    ``mail``, ``userPrincipalName`` (``userPrincipalName #EXT#`` when it is an ``#EXT#`` name at a local domain
    that decodes to the address), ``otherMails``, ``proxyAddresses`` (``SMTP:``/``smtp:`` ones): the evidence
    of the object-match step. With ``snapshot``, an ``#EXT#`` name counts only at one of its local domains.
    """
    parts = tuple(address.rsplit("@", 1))
    found: list[str] = []
    if user.mail and _normal(user.mail) == parts:
        found.append("mail")
    upn = user.user_principal_name
    decoded = _ext_home(upn, _Context(snapshot, None))
    if decoded is not None and decoded == parts:
        found.append("userPrincipalName #EXT#")
    elif decoded is None and upn and _normal(upn) == parts:
        found.append("userPrincipalName")
    if any(_normal(value) == parts for value in user.other_mails if value):
        found.append("otherMails")
    proxies = (proxy_smtp_address(proxy) for proxy in user.proxy_addresses)
    if any(value and _normal(value) == parts for value in proxies):
        found.append("proxyAddresses")
    return tuple(found)


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _home_of(ctx: _Context, domain: str) -> str | None:
    snap = ctx.snapshot
    if snap is None:
        return None
    return snap.tenant_id if domain in snap.local_domains else snap.domain_tenants.get(domain)


# -- the evidence of each resolution step -------------------------------------------------------------------------

def _ev_domain(code: str, r: Resolution, ctx: _Context) -> _Evidence:
    domain = _domain(r.address)
    data, tenant = _tenant(ctx, r.home_tenant_id)
    if code == "local_domain":
        return {"domain": domain, **data}, f"{domain} is a verified domain of the local {tenant}"
    if code == "domain_known":
        return {"domain": domain, **data}, f"domains.json maps {domain} to {tenant}"
    if code == "home_tenant_is_local":
        return {"domain": domain, **data}, f"domains.json maps {domain} to the local {tenant}, but it is not one " \
                                           "of its verified domains"
    if code == "home_tenant_unknown":
        return {"domain": domain}, f"domains.json maps {domain} to no tenant"
    if code == "confusable_domain":
        looks = ctx.snapshot.lookalike_of(domain) if ctx.snapshot is not None else None
        if looks is None:
            return {"domain": domain, "looks_like": None}, ""
        data, tenant = _tenant(ctx, _home_of(ctx, looks))
        return {"domain": domain, "looks_like": looks, **data}, f"{domain} is no known domain, but its skeleton " \
                                                                f"is that of {looks}, a domain of {tenant}"
    return {"domain": domain}, f"{domain} is neither a verified domain of the local tenant nor in domains.json"


def _ev_object(code: str, r: Resolution, ctx: _Context) -> _Evidence:
    address, user = r.address or "", r.user
    if code == "no_object":
        return {"address": address}, f"no object has {address} in mail, userPrincipalName, otherMails or " \
                                     "proxyAddresses"
    if code == "ambiguous_match":
        ids = [u.id for u in ctx.snapshot.lookup(address)] if ctx.snapshot is not None else []
        return {"address": address, "object_ids": ids}, f"objects {_words(ids)} all carry {address}" if ids else ""
    if user is None:
        return {}, ""
    if code == "object_found":
        found = matched_attributes(user, address, ctx.snapshot)
        names = [name.replace(" #EXT#", " (an #EXT# name that decodes to it)") for name in found]
        return {"object_id": user.id, "attributes": list(found)}, \
            f"object {user.id} carries {address} in its {_words(names)}" if names else f"object {user.id}"
    upn = user.user_principal_name
    data = {"object_id": user.id, "federated_external": user.federated_external,
            "creationType": user.creation_type, "userPrincipalName": upn}
    why = []
    if user.federated_external:
        why.append("its identity is issued by ExternalAzureAD")
    if user.creation_type == "Invitation":
        why.append("its creationType is Invitation")
    if _ext_home(upn, ctx) is not None:
        why.append(f"its userPrincipalName {upn} is an #EXT# name at a local domain")
    if code == "object_external":
        return data, _words(why) if why else ""
    created = f"creationType {user.creation_type}" if user.creation_type else "no creationType"
    return data, f"no ExternalAzureAD identity, {created}, userPrincipalName {upn} (no #EXT# name at a local domain)"


def _ev_account(code: str, r: Resolution, ctx: _Context) -> _Evidence:  # noqa: ARG001 - one shape for all
    user = r.user
    if user is None:
        return {}, ""
    if code.startswith("account_"):
        return {"accountEnabled": user.account_enabled}, ""
    detail = f"userType is {json.dumps(user.user_type)}" if code == "user_type_not_member" else ""
    return {"userType": user.user_type}, detail


def _ev_home_evidence(code: str, r: Resolution, ctx: _Context) -> _Evidence:
    upn = r.user.user_principal_name if r.user is not None else None
    decoded = _ext_home(upn, ctx)
    home = _tenant(ctx, r.home_tenant_id)[1]
    if decoded is None or not decoded[1]:
        return {"userPrincipalName": upn, "upn_domain": None, "home_tenant_id": r.home_tenant_id}, \
            f"its userPrincipalName {upn} is a malformed #EXT# name, which names no tenant"
    upn_data, named = _tenant(ctx, _home_of(ctx, decoded[1]))
    data = {"userPrincipalName": upn, "upn_domain": decoded[1], "upn_tenant_id": upn_data["tenant_id"],
            "upn_tenant_name": upn_data["tenant_name"], "home_tenant_id": r.home_tenant_id}
    if code == "home_evidence_agrees":
        return data, f"its userPrincipalName {upn} names {decoded[1]}, a domain of the same {home}"
    named = f"a domain of {named}" if ctx.snapshot is None or upn_data["tenant_id"] is not None else \
        "a domain of no known tenant"
    return data, f"its userPrincipalName {upn} names {decoded[1]}, {named}, but {_domain(r.address)} belongs " \
                 f"to {home}"


_STATES = {"tenant_active": "active", "tenant_pending": "pending", "tenant_removed": "removed"}


def _ev_tenant(code: str, r: Resolution, ctx: _Context) -> _Evidence:
    data, tenant = _tenant(ctx, r.home_tenant_id)
    snap = ctx.snapshot
    if code == "tenant_not_in_mto":
        return data, f"{tenant} is not in mto.json"
    if code.startswith("partner_"):
        data["isInMultiTenantOrganization"] = code == "partner_in_mto"
        return data, f"the partner policy row of {tenant} has isInMultiTenantOrganization: " \
                     f"{json.dumps(code == 'partner_in_mto')}"
    row = snap.tenants.get(r.home_tenant_id or "") if snap is not None else None
    state = _STATES.get(code) or (row.state if row is not None else None)
    data["state"] = state
    if state is None:
        return data, f"{tenant} has no state in mto.json" if snap is not None else ""
    return data, f"{tenant} is in state {state} in mto.json"


def _ev_tenant_id(code: str, r: Resolution, ctx: _Context) -> _Evidence:
    data, tenant = _tenant(ctx, r.home_tenant_id)
    domain = _domain(r.address)
    given = {"tenant_id_given": r.tenant_id, "home_tenant_id": data["tenant_id"],
             "home_tenant_name": data["tenant_name"]}
    if code == "tenant_id_verified":
        return given, f"the app gave {r.tenant_id}, and {domain} belongs to {tenant}"
    if code == "tenant_id_mismatch":
        return given, f"the app gave {r.tenant_id}, but {domain} belongs to {tenant}"
    return given, f"the app gave {r.tenant_id}; {domain} maps to no tenant"


def _ev_policy(code: str, r: Resolution, ctx: _Context) -> _Evidence:
    if code == "ext_upn_decoded":
        return {"identity": r.identity, "address": r.address}, f"{r.identity} decodes to {r.address}"
    if code == "blocked":
        return {"key": "overrides.block"}, f"overrides.block names {r.identity}, its domain or a parent domain"
    if code == "snapshot_stale" and ctx.policy is not None and ctx.snapshot is not None:
        max_age, taken = ctx.policy.snapshot.max_age, ctx.snapshot.taken_at.isoformat()
        return {"snapshot.max_age": max_age, "taken_at": taken}, \
            f"the snapshot was taken at {taken}; snapshot.max_age = {json.dumps(max_age)}"
    return {}, ""


_RESOLUTION_EVIDENCE: dict[str, Callable[[str, Resolution, _Context], _Evidence]] = {
    **dict.fromkeys(("local_domain", "domain_known", "domain_unknown", "confusable_domain", "home_tenant_unknown",
                     "home_tenant_is_local"), _ev_domain),
    **dict.fromkeys(("ambiguous_match", "object_found", "no_object", "object_external", "object_not_external"),
                    _ev_object),
    **dict.fromkeys(("account_enabled", "account_disabled", "account_enabled_missing", "user_type_member",
                     "user_type_guest", "user_type_missing", "user_type_not_member"), _ev_account),
    **dict.fromkeys(("home_evidence_agrees", "home_evidence_disagrees"), _ev_home_evidence),
    **dict.fromkeys(("tenant_active", "tenant_pending", "tenant_removed", "tenant_state_unknown", "tenant_not_in_mto",
                     "partner_in_mto", "partner_not_in_mto"), _ev_tenant),
    **dict.fromkeys(("tenant_id_verified", "tenant_id_mismatch", "tenant_id_unverifiable"), _ev_tenant_id),
    **dict.fromkeys(("ext_upn_decoded", "blocked", "snapshot_stale"), _ev_policy),
}


def _step(code: str, evidence: _Evidence) -> Step:
    return Step(code, REASONS.get(code, "undocumented reason"), evidence[1], evidence[0])


def _resolution_steps(r: Resolution, ctx: _Context) -> list[Step]:
    return [_step(code, _RESOLUTION_EVIDENCE[code](code, r, ctx) if code in _RESOLUTION_EVIDENCE else ({}, ""))
            for code in r.reasons]


# -- the evidence of each app's own steps -------------------------------------------------------------------------

def _own_reasons(decision: MailDecision | TeamsDecision | LabelDecision) -> tuple[str, ...]:
    """Return the reasons an app added after its resolution's (a fail-closed mail decision has only its own)."""
    before = decision.resolution.reasons
    return decision.reasons[len(before):] if decision.reasons[:len(before)] == before else decision.reasons


def _mail_evidence(code: str, d: MailDecision, ctx: _Context) -> _Evidence:
    policy = ctx.policy
    if code == "spoof_suspected":
        domain = _domain(d.resolution.address)
        return {"domain": domain}, f"{domain} is a local or MTO domain"
    if code == "unauthenticated_capped":
        return {"mail.require_authentication": True, "trust_before": d.resolution.trust.value, "trust": "external"}, \
            f"mail.require_authentication = true: trust {d.resolution.trust.value} becomes external"
    if code in ("tagged_below_untagged_at", "untagged"):
        if policy is None:
            return {"trust": d.trust.value}, f"trust {d.trust.value}"
        where = "below" if code == "tagged_below_untagged_at" else "at or above"
        return {"trust": d.trust.value, "mail.untagged_at": policy.mail.untagged_at}, \
            f"trust {d.trust.value} is {where} mail.untagged_at = {json.dumps(policy.mail.untagged_at)}"
    return {}, ""


def _app_steps(decision: AppDecision, ctx: _Context) -> list[Step]:
    """Return the steps an app's own checks add after the identity's (for DLP: after every recipient's)."""
    policy = ctx.policy
    if isinstance(decision, MailDecision):
        return [_step(code, _mail_evidence(code, decision, ctx)) for code in _own_reasons(decision)]
    if isinstance(decision, DlpDecision):
        inside_at = Trust(policy.dlp.inside_at) if policy is not None else None
        below = [r for r in decision.recipients if inside_at is not None and r.trust < inside_at]
        shown = [f"{_who(r)} ({r.trust.value})" for r in below or decision.recipients]
        data: dict[str, Any] = {"dlp.inside_at": None if policy is None else policy.dlp.inside_at,
                                "below": [r.address or r.identity for r in below]}
        if inside_at is None:
            detail = f"recipients: {', '.join(shown)}" if shown else ""
        elif below:
            detail = f"dlp.inside_at = {json.dumps(inside_at.value)}; below it: {', '.join(shown)}"
        else:
            detail = f"dlp.inside_at = {json.dumps(inside_at.value)}; at or above it: {', '.join(shown)}" \
                if shown else ""
        return [_step(code, (data, detail) if code != "internal_error" else ({}, "")) for code in decision.reasons]
    own = _own_reasons(decision)
    trust = decision.trust.value
    if isinstance(decision, TeamsDecision):
        minimum = getattr(policy.teams, decision.action) if policy is not None else None
        data = {"action": decision.action, "trust": trust, f"teams.{decision.action}": minimum}
        verdict = "meets" if decision.allowed else "is below"
        detail = f"trust {trust} {verdict} teams.{decision.action} = {json.dumps(minimum)}" if minimum else \
            f"trust {trust}"
        return [_step(code, (data, detail)) for code in own]
    key = deciding_key(decision, policy) if policy is not None else None
    rights = sorted(decision.rights)
    data = {"label": decision.label, "trust": trust, "rights": rights, "key": key}
    detail = ", ".join(filter(None, (key, f"rights {', '.join(rights)}" if rights else "")))
    return [_step(code, (data, detail)) for code in own]


# -- the first check that failed ----------------------------------------------------------------------------------

def _negative(decision: Decision) -> bool:
    if isinstance(decision, Resolution):
        return decision.trust < Trust.MTO_MEMBER
    if isinstance(decision, MailDecision):
        return decision.tag_external
    if isinstance(decision, DlpDecision):
        return not decision.inside_organization
    if isinstance(decision, TeamsDecision):
        return not decision.allowed
    return not decision.rights


def _threshold(decision: Decision, policy: Policy | None) -> Trust | None:
    """Return the trust the answer needs: ``None`` when no trust suffices; without the policy, ``mto_member``."""
    if isinstance(decision, Resolution) or policy is None:
        return Trust.MTO_MEMBER
    if isinstance(decision, MailDecision):
        return Trust(policy.mail.untagged_at)
    if isinstance(decision, DlpDecision):
        return Trust(policy.dlp.inside_at)
    if isinstance(decision, TeamsDecision):
        return policy.teams_minimum(decision.action)
    above = [t for t in Trust if t > decision.trust and policy.label_rights(decision.label, t)]
    return above[0] if above else None


def _grants(decision: Decision, policy: Policy | None, need: Trust | None) -> Callable[[Trust], bool]:
    """Return whether a trust level would make a negative answer positive (for a label: grant it rights)."""
    if isinstance(decision, LabelDecision) and policy is not None:
        return lambda trust: bool(policy.label_rights(decision.label, trust))
    return lambda trust: need is not None and trust >= need


def _without(code: str, r: Resolution, app_caps: tuple[str, ...]) -> Trust:
    """Return the trust ``r`` (and the app's own caps) would give if the check ``code`` had not failed."""
    base = Trust.INTERNAL if "local_domain" in r.reasons else Trust.MTO_MEMBER
    return min((CAPS[c] for c in (*r.reasons, *app_caps) if c in CAPS and c != code), default=base)


def _failures(decision: Decision, ctx: _Context) -> tuple[list[Failure], bool]:
    """Return every failed check that keeps a negative answer negative, and whether no one of them alone decides.

    The first failure is the first identity check whose fix alone would make the answer positive, where one
    exists; else (for a label: a cap whose removal reaches no level that grants rights is no first failure) the
    first in the order the checks ran, with ``True``: several checks must change.
    """
    if not _negative(decision):
        return [], False
    need = _threshold(decision, ctx.policy)
    grants = _grants(decision, ctx.policy, need)
    chains: list[tuple[str, Resolution]]
    app_caps: tuple[str, ...] = ()
    if isinstance(decision, Resolution):
        chains = [("", decision)]
    elif isinstance(decision, DlpDecision):
        chains = [(f"{_who(r)}, ", r) for r in decision.recipients]
    else:
        chains = [("", decision.resolution)]
        app_caps = _own_reasons(decision)
    found: list[Failure] = []
    alone: list[Failure] = []
    for prefix, r in chains:
        if need is None or r.trust >= need:
            continue  # the identity has the trust the answer needs: none of its checks is what failed
        others_fine = all(o.trust >= need for _, o in chains if o is not r)
        for number, step in enumerate(_resolution_steps(r, ctx), 1):
            if step.code in CAPS and CAPS[step.code] < need:
                failure = Failure(step.code, f"{prefix}step {number}", step.detail or step.sentence,
                                  FIXES[step.code])
                found.append(failure)
                if others_fine and grants(_without(step.code, r, app_caps)):
                    alone.append(failure)
    several = bool(found) and not alone
    if several and isinstance(decision, LabelDecision):
        found, several = [], False  # no fix of the identity reaches a level the label grants rights to
    if not isinstance(decision, Resolution):
        first = 1 if isinstance(decision, DlpDecision) else len(decision.resolution.reasons) + 1
        for number, step in enumerate(_app_steps(decision, ctx), first):
            if step.code in FIXES:
                where = "the DLP check" if isinstance(decision, DlpDecision) else f"step {number}"
                fix = _LABEL_FIX_NO_HIGHER if step.code == "label_no_rights" and need is None else FIXES[step.code]
                found.append(Failure(step.code, where, step.detail or step.sentence, fix))
    if alone:
        found.remove(alone[0])
        found.insert(0, alone[0])
    return found, several


_LABEL_FIX_NO_HIGHER = "add the trust level to the label in the policy"  # no higher level grants rights either


def first_failed(decision: Decision, snapshot: Snapshot | None = None, policy: Policy | None = None) -> Failure | None:
    """Return the first check that failed in a negative answer, with what would change it; ``None`` for a positive.

    Negative: a resolution below ``mto_member``, a tagged message, ``NotInOrganization``, a denied Teams action, a
    label that grants no rights. A check of the identity counts only when it caps trust below what the answer
    needs (``mail.untagged_at``, ``dlp.inside_at``, the Teams action's minimum, the lowest level the label grants
    rights to); without the policy, below ``mto_member``. The first is one whose fix alone would make the answer
    positive where one exists (for a label, a check of the identity whose removal reaches no level with rights is
    never first). ``snapshot`` and ``policy`` are used as in :func:`explain`.

    .. versionadded:: 0.2.0
    """
    found, _ = _failures(decision, _context(decision, snapshot, policy))
    return found[0] if found else None


# -- the text ----------------------------------------------------------------------------------------------------

def _numbered(steps: list[Step], first: int = 1, width: int | None = None) -> list[str]:
    """Return the steps as lines ``  N. code: sentence``, each with its evidence indented below it.

    Numbers are right-aligned to ``width`` digits (default: those of the last number).
    """
    width = width or len(str(first + len(steps) - 1))
    lines = []
    for number, step in enumerate(steps, first):
        lines.append(f"  {number:>{width}}. {step.code}: {step.sentence}")
        if step.detail:
            lines.append(f"  {'':>{width}}  {step.detail}")
    return lines


def _resolution_head(r: Resolution, ctx: _Context) -> str:
    head = f"{_who(r)} is {r.trust.value}"
    if r.user is not None:
        head += f" (directory object {r.user.id})"
    if r.home_tenant_id:
        head += ", home " + _tenant(ctx, r.home_tenant_id)[1]
    return head + ":"


def _decision_head(decision: AppDecision) -> str:
    if isinstance(decision, MailDecision):
        outcome = "tagged external" if decision.tag_external else "not tagged"
        auth = "authenticated" if decision.authenticated else "not authenticated"
        return f"Mail from {decision.resolution.address or decision.resolution.identity[:80]!r}: {outcome} " \
               f"({auth}, trust {decision.trust.value})."
    if isinstance(decision, DlpDecision):
        count = len(decision.recipients)
        return f"DLP: {decision.access_scope} ({count} recipient{'' if count == 1 else 's'})."
    if isinstance(decision, LabelDecision):
        rights = ", ".join(sorted(decision.rights)) or "no rights"
        return f"Label {decision.label!r} grants {rights} at trust {decision.trust.value}."
    verdict = "allowed" if decision.allowed else "not allowed"
    return f"Teams {decision.action}: {verdict} at trust {decision.trust.value}."


def _outcome_lines(decision: Decision, ctx: _Context) -> list[str]:
    lines = []
    key = deciding_key(decision, ctx.policy) if ctx.policy is not None else None
    if key is not None:
        lines.append(f"Decided by: {key}")
    found, several = _failures(decision, ctx)
    if found:
        first = found[0]
        lines += [f"The first check that failed ({first.where}, {first.code}): {first.text}.",
                  f"What would change it: {first.fix}."]
        if several:
            lines.append("No one of the failed checks alone changes the answer: several checks must change.")
        others = list(dict.fromkeys(f"{f.code}" if f.where.startswith("step") else f"{f.code} ({f.where})"
                                    for f in found[1:]))
        if others:
            lines.append(f"Other checks that failed: {', '.join(others)}.")
    return lines


def explain(decision: Decision, snapshot: Snapshot | None = None, policy: Policy | None = None) -> str:
    """Return a human explanation of a resolution or decision: the outcome, every check in order, the first failure.

    Each check is numbered in the order it ran, with its reason code, the catalogue sentence and, on the next
    line, the evidence it used: the attribute of the directory object that carries the address, the object id,
    the home tenant by name and id, its MTO state, the partner policy row, the app's policy key. A negative
    answer ends with the first check that failed and what would change it (:data:`FIXES`). Every line is shown
    through :func:`printable`: a directory value's control or bidi characters are escaped.

    ``snapshot`` and ``policy`` are the ones the decision was made from (:meth:`TrustEngine.explain
    <mtotrust.TrustEngine.explain>` passes the engine's): they name tenants, list the objects of an ambiguous
    address, the domain a lookalike imitates, and the policy key that decided. Either is ignored when the decision
    was not made from it (another ``snapshot_id`` or ``policy_fingerprint``); without them the explanation says
    what the decision itself carries.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       The evidence of every step, the deciding policy key, the first failed check and its fix; ``snapshot`` and
       ``policy``.
    """
    ctx = _context(decision, snapshot, policy)
    if isinstance(decision, Resolution):
        body = [_resolution_head(decision, ctx), *_numbered(_resolution_steps(decision, ctx))]
    elif isinstance(decision, DlpDecision):
        body = [_decision_head(decision)]
        for r in decision.recipients:
            body += [_resolution_head(r, ctx), *_numbered(_resolution_steps(r, ctx))]
        body += ["The DLP check:", *_numbered(_app_steps(decision, ctx))]
    else:
        resolution = decision.resolution
        own = _app_steps(decision, ctx)
        count = len(resolution.reasons)
        width = len(str(count + len(own)))
        body = [_decision_head(decision), _resolution_head(resolution, ctx),
                *_numbered(_resolution_steps(resolution, ctx), 1, width), *_numbered(own, count + 1, width)]
    return "\n".join(printable(line) for line in [*body, *_outcome_lines(decision, ctx)])


def explain_data(decision: Decision, snapshot: Snapshot | None = None, policy: Policy | None = None
                 ) -> dict[str, Any]:
    """Return what :func:`explain` says as JSON-ready data: ``{"steps", "decided_by", "first_failed"}``.

    ``steps`` are a resolution's checks, or an app's own checks (those after its identity's, which the
    resolution's data carries), each ``{"code", "text", "evidence"}``; ``decided_by`` the deciding policy key
    (``None`` without the policy, or for a resolution the directory alone decided); ``first_failed`` ``{"code",
    "text", "fix"}`` or ``None``.

    .. versionadded:: 0.2.0
    """
    ctx = _context(decision, snapshot, policy)
    steps = _resolution_steps(decision, ctx) if isinstance(decision, Resolution) else _app_steps(decision, ctx)
    failed, _ = _failures(decision, ctx)
    return {"steps": [step.to_dict() for step in steps],
            "decided_by": deciding_key(decision, ctx.policy) if ctx.policy is not None else None,
            "first_failed": failed[0].to_dict() if failed else None}
