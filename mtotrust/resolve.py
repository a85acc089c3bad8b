"""Identity → :class:`~mtotrust.model.Resolution`: the resolution rules of design section 3.

Every check is made and reported; when several fail, the lowest trust wins. Nothing here raises on a bad
identity: an invalid one resolves to ``untrusted`` with the reason ``invalid_identity``.
"""

from __future__ import annotations

from mtotrust.address import normalize_address, split_ext_upn
from mtotrust.errors import IdentityError
from mtotrust.model import DirectoryUser, Identity, Resolution, Trust
from mtotrust.snapshot import Snapshot

__all__ = ["home_tenant", "parse_identity", "resolve"]

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


def _invalid(identity: object, tenant_id: str | None) -> Resolution:
    text = identity if isinstance(identity, str) else repr(identity)
    return Resolution(identity=text, trust=_UNTRUSTED, reasons=("invalid_identity",),
                      tenant_id=tenant_id if isinstance(tenant_id, str) else None)


def resolve(snapshot: Snapshot, identity: Identity | str) -> Resolution:
    """Resolve ``identity`` against ``snapshot`` (design section 3). Never raises on a bad identity.

    .. versionadded:: 0.1.0
    """
    if isinstance(identity, Identity):
        text, tenant_id = identity.address, identity.tenant_id
    else:
        text, tenant_id = identity, None
    if not isinstance(text, str) or (tenant_id is not None and not isinstance(tenant_id, str)):
        return _invalid(text, tenant_id)
    reasons: list[str] = []
    try:
        local, domain = normalize_address(text)
        if domain in snapshot.local_domains:
            decoded = split_ext_upn(local, text)
            if decoded is not None:
                local, domain = decoded
                reasons.append("ext_upn_decoded")
    except IdentityError:
        return _invalid(text, tenant_id)
    address = f"{local}@{domain}"
    home = home_tenant(snapshot, domain)
    # Only a verified domain of the local tenant is local (design section 3, step 2); a domains.json row that
    # maps another domain to the local tenant makes it neither internal nor an MTO member's home.
    local_home = domain in snapshot.local_domains

    def answer(trust: Trust, user: DirectoryUser | None = None) -> Resolution:
        return Resolution(identity=text, trust=trust, reasons=tuple(reasons), address=address, user=user,
                          home_tenant_id=home, tenant_id=tenant_id)

    if home is None:
        if snapshot.lookalike_of(domain) is not None:
            reasons.append("confusable_domain")
            return answer(_UNTRUSTED)
        reasons.append("domain_unknown")
    else:
        reasons.append("local_domain" if local_home else "domain_known")

    users = snapshot.lookup(address)
    if len(users) > 1:
        reasons.append("ambiguous_match")
        return answer(_UNTRUSTED)
    user = users[0] if users else None
    trust = _INTERNAL if local_home else _MTO_MEMBER

    def check(ok: bool, passed: str, failed: str, cap: Trust) -> None:
        nonlocal trust
        if ok:
            reasons.append(passed)
        else:
            reasons.append(failed)
            trust = min(trust, cap)

    if tenant_id is not None:
        if home is None:
            reasons.append("tenant_id_unverifiable")
        else:
            check(tenant_id.strip().lower() == home, "tenant_id_verified", "tenant_id_mismatch", _UNTRUSTED)

    if local_home:
        reasons.append("object_found" if user else "no_object")
        return answer(trust, user)
    check(user is not None, "object_found", "no_object", _EXTERNAL)
    if user is None:
        return answer(trust)

    check(user.external, "object_external", "object_not_external", _EXTERNAL)
    if user.account_enabled is None:
        check(False, "", "account_enabled_missing", _EXTERNAL)
    else:
        check(user.account_enabled, "account_enabled", "account_disabled", _EXTERNAL)
    if user.user_type is None:
        check(False, "", "user_type_missing", _GUEST)
    else:
        check(user.user_type == "Member", "user_type_member",
              "user_type_guest" if user.user_type == "Guest" else "user_type_not_member", _GUEST)

    tenant = snapshot.tenants.get(home) if home is not None else None
    if home is None:
        check(False, "", "home_tenant_unknown", _GUEST)
    elif home == snapshot.tenant_id:
        check(False, "", "home_tenant_is_local", _GUEST)
    elif tenant is None:
        check(False, "", "tenant_not_in_mto", _GUEST)
    else:
        state_reason = {"pending": "tenant_pending", "removed": "tenant_removed"}.get(
            tenant.state or "", "tenant_state_unknown")
        check(tenant.state == "active", "tenant_active", state_reason, _GUEST)
    if home is not None and home in snapshot.partners:
        in_mto = snapshot.partners[home]
        if in_mto is not None:
            check(in_mto, "partner_in_mto", "partner_not_in_mto", _GUEST)

    evidence = _upn_home(snapshot, user)
    if evidence is not False:
        check(evidence == home, "home_evidence_agrees", "home_evidence_disagrees", _GUEST)
    return answer(trust, user)


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
