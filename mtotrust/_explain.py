"""Human-readable explanations of resolutions and decisions, from their stable reason codes.

:data:`REASONS` is the one catalogue of reason codes; ``docs/reasons.md`` documents the same codes and a test
keeps the two in step.
"""

from __future__ import annotations

import json
import re

from mtotrust._model import Decision, DlpDecision, LabelDecision, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust._policy import Policy

__all__ = ["CAPS", "REASONS", "deciding_key", "explain", "failed_checks"]

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



def failed_checks(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """Return the reasons that lowered trust (those in :data:`CAPS`), in order: what would change the answer."""
    return tuple(code for code in reasons if code in CAPS)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def deciding_key(decision: Decision, policy: Policy) -> str | None:
    """Return the policy key that decided ``decision``, with its value as a policy file writes it.

    A blocked identity was decided by ``overrides.block``; a stale snapshot's cap by ``snapshot.max_age``; else
    the app's own key: ``mail.untagged_at`` (and ``mail.require_authentication`` when it capped the trust),
    ``dlp.inside_at``, ``teams.<action>``, the label's entry for the trust level (or its absence). ``None`` for a
    resolution the directory alone decided.

    .. versionadded:: 0.2.0
    """
    reasons = decision.reasons if not isinstance(decision, DlpDecision) \
        else tuple(r for recipient in decision.recipients for r in recipient.reasons)
    if not isinstance(decision, (Resolution, DlpDecision)):
        reasons = (*decision.resolution.reasons, *reasons)
    if "blocked" in reasons:
        return "overrides.block"
    if "snapshot_stale" in reasons:
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


def _lines(reasons: tuple[str, ...]) -> list[str]:
    return [f"  - {code}: {REASONS.get(code, 'undocumented reason')}" for code in reasons]


def _resolution_text(resolution: Resolution) -> list[str]:
    who = resolution.address or repr(resolution.identity[:80])
    head = f"{who} is {resolution.trust.value}"
    if resolution.user is not None:
        head += f" (directory object {resolution.user.id})"
    if resolution.home_tenant_id:
        head += f", home tenant {resolution.home_tenant_id}"
    return [head + ":", *_lines(resolution.reasons)]


def explain(decision: Decision) -> str:
    """Return a human explanation of a resolution or decision: the outcome, then every reason in order.

    .. versionadded:: 0.1.0
    """
    if isinstance(decision, Resolution):
        return "\n".join(_resolution_text(decision))
    if isinstance(decision, MailDecision):
        outcome = "tagged external" if decision.tag_external else "not tagged"
        auth = "authenticated" if decision.authenticated else "not authenticated"
        head = f"Mail from {decision.resolution.address or decision.resolution.identity[:80]!r}: {outcome} " \
               f"({auth}, trust {decision.trust.value})."
        return "\n".join([head, *_lines(decision.reasons)])
    if isinstance(decision, DlpDecision):
        head = f"DLP: {decision.access_scope} ({len(decision.recipients)} recipients)."
        body = [line for r in decision.recipients for line in _resolution_text(r)]
        return "\n".join([head, *_lines(decision.reasons), *body])
    if isinstance(decision, LabelDecision):
        rights = ", ".join(sorted(decision.rights)) or "no rights"
        head = f"Label {decision.label!r} grants {rights} at trust {decision.trust.value}."
        return "\n".join([head, *_lines(decision.reasons)])
    verdict = "allowed" if decision.allowed else "not allowed"
    head = f"Teams {decision.action}: {verdict} at trust {decision.trust.value}."
    return "\n".join([head, *_lines(decision.reasons)])
