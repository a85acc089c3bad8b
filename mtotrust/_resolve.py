"""Identity → :class:`~mtotrust._model.Resolution`: the resolution rules (docs/concepts.md).

Every check is made and reported; when several fail, the lowest trust wins. Nothing here raises on a bad
identity: an invalid one resolves to ``untrusted`` with the reason ``invalid_identity``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mtotrust._address import normalize_address, split_ext_upn
from mtotrust._errors import IdentityError, described
from mtotrust._explain import CAPS
from mtotrust._model import DirectoryUser, Identity, IdentityLike, Resolution, Trust
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot

__all__ = ["check_tenant_id", "home_tenant", "parse_identity", "resolve", "resolve_address"]

_UNTRUSTED, _EXTERNAL, _GUEST, _MTO_MEMBER, _INTERNAL = Trust


def parse_identity(text: str, tenant_id: str | None = None) -> Identity:
    """Parse and normalise an address strictly into an :class:`Identity`.

    The address is trimmed, its local part NFC-normalised and lower-cased and its domain mapped to its
    A-label. ``#EXT#`` names are decoded only by the resolver, which knows the local domains.

    Raises:
        IdentityError: naming the value and the rule it breaks.

    .. versionadded:: 0.1.0
    """
    local, domain = normalize_address(text)
    if tenant_id is not None and not isinstance(tenant_id, str):
        raise IdentityError(f"tenant_id must be a str, not {type(tenant_id).__name__}", value=tenant_id)
    return Identity(f"{local}@{domain}", tenant_id)


def home_tenant(snapshot: Snapshot, domain: str) -> str | None:
    """Return the lower-case id of the tenant an A-label ``domain`` belongs to, or ``None``."""
    if domain in snapshot.local_domains:
        return snapshot.tenant_id
    return snapshot.domain_tenants.get(domain)


def _invalid(identity: object, tenant_id: object, snapshot_id: str, policy_fingerprint: str) -> Resolution:
    text = identity if isinstance(identity, str) else described(identity)
    # made with the fingerprint already, so Policy.apply has nothing to change (an evolve per invalid identity)
    return Resolution(identity=text, trust=_UNTRUSTED, reasons=("invalid_identity",),
                      tenant_id=tenant_id if isinstance(tenant_id, str) else None, snapshot_id=snapshot_id,
                      policy_fingerprint=policy_fingerprint)


_default_policy: list[Policy] = []  # Policy.default(), built on first use (policies are immutable)


def resolve(snapshot: Snapshot, identity: IdentityLike, policy: Policy | None = None, *,
            answer: Callable[[str, str], Resolution] | None = None) -> Resolution:
    """Resolve ``identity`` against ``snapshot`` under ``policy`` (default: :meth:`Policy.default`).

    The readable path of every rule: normalise, match the domain, find the objects, classify, check the caller's
    tenant id, then the policy's own effects (:meth:`Policy.apply`: the block list, the staleness cap). Never
    raises on a bad identity: it resolves to ``untrusted`` with the reason ``invalid_identity``.

    ``answer(local, domain)`` replaces :func:`resolve_address` for the snapshot-only part (the engine passes
    its per-snapshot precomputed answers); it may raise :class:`IdentityError` for a malformed ``#EXT#`` name.

    .. versionadded:: 0.1.0
    """
    if policy is None:
        if not _default_policy:
            _default_policy.append(Policy.default())
        policy = _default_policy[0]
    if isinstance(identity, Identity):
        text, tenant_id = identity.address, identity.tenant_id
    else:
        text, tenant_id = identity, None
    if not isinstance(text, str) or (tenant_id is not None and not isinstance(tenant_id, str)):
        resolution = _invalid(text, tenant_id, snapshot.id, policy.fingerprint)
    else:
        try:
            local, domain = normalize_address(text)
            resolution = resolve_address(snapshot, local, domain) if answer is None else answer(local, domain)
        except IdentityError:
            resolution = _invalid(text, tenant_id, snapshot.id, policy.fingerprint)
        else:
            if tenant_id is not None:
                resolution = check_tenant_id(resolution, tenant_id)
    return policy.apply(resolution, stale=policy.is_stale(snapshot.taken_at))


def check_tenant_id(resolution: Resolution, tenant_id: str) -> Resolution:
    """Add the caller's ``tenant_id`` check, the step after classification, to a resolution made without one.

    The id is compared case-insensitively with the home tenant of the address's domain; a different one makes
    the identity ``untrusted``; when the domain maps to no tenant the id cannot be checked.
    """
    home = resolution.home_tenant_id
    trust = resolution.trust
    if resolution.address is None:
        return resolution
    if home is None:
        reason = "tenant_id_unverifiable"
    elif tenant_id.strip().lower() == home:
        reason = "tenant_id_verified"
    else:
        reason, trust = "tenant_id_mismatch", _UNTRUSTED
    return attrs.evolve(resolution, trust=trust, reasons=(*resolution.reasons, reason), tenant_id=tenant_id)


_STATE_REASONS = {"active": "tenant_active", "pending": "tenant_pending", "removed": "tenant_removed"}


def resolve_address(snapshot: Snapshot, local: str, domain: str) -> Resolution:
    """Resolve a normalised address (no tenant id): everything here depends only on the snapshot.

    The engine computes this once per snapshot and address. ``identity`` of the result is the normalised
    address asked about; ``address`` is the one looked up (they differ for a decoded ``#EXT#`` name).

    Raises:
        IdentityError: for a malformed ``#EXT#`` name at a local domain.
    """
    key = f"{local}@{domain}"
    address = key
    sid = snapshot.id
    reasons: list[str] = []
    local_home = domain in snapshot.local_domains
    if local_home:
        decoded = split_ext_upn(local, key)
        if decoded is not None:
            address = f"{decoded[0]}@{decoded[1]}"
            domain = decoded[1]
            local_home = domain in snapshot.local_domains
            reasons.append("ext_upn_decoded")
    home = snapshot.tenant_id if local_home else snapshot.domain_tenants.get(domain)
    if home is None:
        if snapshot.lookalike_of(domain) is not None:
            reasons.append("confusable_domain")
            return Resolution(key, _UNTRUSTED, tuple(reasons), address, snapshot_id=sid)
        reasons.append("domain_unknown")
    else:
        # Only a verified domain of the local tenant is local (step 2); a domains.json row that maps another
        # domain to the local tenant makes it neither internal nor an MTO member's home.
        reasons.append("local_domain" if local_home else "domain_known")

    users = snapshot.lookup(address)
    if len(users) > 1:
        reasons.append("ambiguous_match")
        return Resolution(key, _UNTRUSTED, tuple(reasons), address, None, home, snapshot_id=sid)
    user = users[0] if users else None
    if local_home:
        reasons.append("object_found" if user else "no_object")
        return Resolution(key, _INTERNAL, tuple(reasons), address, user, home, snapshot_id=sid)
    if user is None:
        reasons.append("no_object")
        return Resolution(key, _EXTERNAL, tuple(reasons), address, None, home, snapshot_id=sid)
    reasons.append("object_found")
    # Each check reports its reason; a failing check's reason caps trust at explain.CAPS[reason] (the same
    # table explain() reads), and the lowest cap wins.
    reasons.append("object_external" if snapshot.is_external(user) else "object_not_external")
    if user.account_enabled:
        reasons.append("account_enabled")
    else:
        reasons.append("account_enabled_missing" if user.account_enabled is None else "account_disabled")
    if user.user_type == "Member":
        reasons.append("user_type_member")
    else:
        reasons.append({None: "user_type_missing", "Guest": "user_type_guest"}.get(user.user_type,
                                                                                   "user_type_not_member"))
    tenant = snapshot.tenants.get(home) if home is not None else None
    if home is None:
        reasons.append("home_tenant_unknown")
    elif home == snapshot.tenant_id:
        reasons.append("home_tenant_is_local")
    elif tenant is None:
        reasons.append("tenant_not_in_mto")
    else:
        reasons.append(_STATE_REASONS.get(tenant.state or "", "tenant_state_unknown"))
    in_mto = snapshot.partners.get(home) if home is not None else None
    if in_mto is not None:
        reasons.append("partner_in_mto" if in_mto else "partner_not_in_mto")
    evidence = _upn_home(snapshot, user)
    if evidence is not False and (evidence is not None or home is not None):  # two unknown homes prove nothing
        reasons.append("home_evidence_agrees" if evidence == home else "home_evidence_disagrees")
    trust = min((CAPS[r] for r in reasons if r in CAPS), default=_MTO_MEMBER)
    return Resolution(key, trust, tuple(reasons), address, user, home, snapshot_id=sid)


def _upn_home(snapshot: Snapshot, user: DirectoryUser) -> str | bool | None:
    """Return the home tenant an object's ``#EXT#`` UPN names, ``None`` if it names none or is malformed.

    ``False`` when the UPN is not an ``#EXT#`` name at a local domain: then it proves nothing either way.
    """
    upn = user.user_principal_name
    if not upn or "#ext#" not in upn.lower():
        return False
    try:
        local, domain = normalize_address(upn)
        if domain not in snapshot.local_domains:
            return False
        decoded = split_ext_upn(local, upn)
    except IdentityError:
        return None  # a malformed #EXT# name is no evidence of any home: fail closed
    return None if decoded is None else home_tenant(snapshot, decoded[1])
