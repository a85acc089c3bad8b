"""Pure evaluators for the four apps (docs/policy.md): mail tagging, DLP scope, labels and Teams.

Each takes resolutions (already made by the resolver and cached by the engine) and a policy, and returns a
decision record. They do no I/O and keep no state.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtotrust import mailauth
from mtotrust._address import normalize_domain
from mtotrust._errors import IdentityError
from mtotrust._model import DlpDecision, LabelDecision, MailAuth, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust._policy import Policy

__all__ = ["AuthInput", "authenticate", "dlp", "label_rights", "mail", "mail_auth_from", "teams"]

AuthInput = MailAuth | str | Sequence[str] | None
"""What ``engine.mail(auth=...)`` accepts: a trusted ``MailAuth``, one raw header value, or values topmost first."""


def mail_auth_from(auth: AuthInput, policy: Policy) -> tuple[MailAuth | None, tuple[str, ...]]:
    """Turn the ``auth`` argument into the :class:`MailAuth` that counts, with the reasons for the choice.

    A ``MailAuth`` is trusted as given. From raw ``Authentication-Results`` values only the topmost one that
    counts is used, so a forged header lower down cannot stand in for it; a counting header that cannot be
    parsed is a failure, never a reason to read a lower, possibly forged one.
    """
    if auth is None:
        return None, ("auth_missing",)
    if isinstance(auth, MailAuth):
        return auth, ("auth_given",)
    if not isinstance(auth, str) and not (isinstance(auth, Sequence) and all(isinstance(v, str) for v in auth)):
        return None, ("auth_invalid",)
    raw, parsed = mailauth.select_counting_header(
        auth, trusted_authserv_ids=policy.trusted_authserv_ids,
        accept_exchange_online=policy.mail.accept_exchange_online_results)
    if raw is None:
        return None, ("auth_header_untrusted",)
    if parsed is None:
        return MailAuth(dmarc="fail", header_from=""), ("auth_header_unparsable",)
    given = mailauth.to_mail_auth(parsed)
    if given.header_from is None:  # a header that names no From domain cannot align with the sender
        given = MailAuth(dmarc=given.dmarc, compauth=given.compauth, header_from="", smtp_auth=given.smtp_auth)
    return given, ("auth_header_trusted",)


def _aligned(header_from: str | None, sender_domain: str) -> bool:
    if header_from is None:
        return True
    try:
        return normalize_domain(header_from) == sender_domain
    except IdentityError:
        return False


def authenticate(auth: MailAuth | None, sender_domain: str, *, local: bool) -> tuple[bool, bool, str]:
    """Judge mail authentication for a sender domain: ``(authenticated, explicit_failure, reason)``.

    Authenticated means ``dmarc=pass`` or a qualified ``compauth=pass`` aligned with the sender's domain and no
    ``fail`` beside it, or SMTP AUTH for a local-domain sender.
    """
    if auth is None:
        return False, False, "unauthenticated"
    if auth.dmarc == "fail" or auth.compauth == "fail":
        return False, True, "auth_fail"
    if auth.smtp_auth and local:
        return True, False, "smtp_auth_pass"
    if auth.dmarc != "pass" and auth.compauth != "pass":
        return False, False, "auth_not_pass"
    if not _aligned(auth.header_from, sender_domain):
        return False, False, "auth_misaligned"
    return True, False, "auth_pass"


def mail(resolution: Resolution, auth: AuthInput, policy: Policy, *, sender_domain: str | None,
         local: bool, protected: bool) -> MailDecision:
    """Decide external tagging for a message from ``resolution``'s sender (the RFC 5322 From address).

    ``sender_domain`` is the From address's A-label domain (``None`` when it is invalid), ``local`` whether it
    is a local verified domain and ``protected`` whether it is a local or MTO domain (where an explicit
    authentication failure means spoofing).
    """
    given, reasons = mail_auth_from(auth, policy)
    trust = resolution.trust
    authenticated = False
    if sender_domain is not None:
        authenticated, failed, verdict = authenticate(given, sender_domain, local=local)
        reasons += (verdict,)
        if failed and protected:
            trust = Trust.UNTRUSTED
            reasons += ("spoof_suspected",)
    if not authenticated and policy.mail.require_authentication and trust > Trust.EXTERNAL:
        trust = Trust.EXTERNAL
        reasons += ("unauthenticated_capped",)
    tag = trust < Trust(policy.mail.untagged_at)
    reasons += ("tagged_below_untagged_at",) if tag else ("untagged",)
    return MailDecision(tag_external=tag, trust=trust, authenticated=authenticated,
                        reasons=resolution.reasons + reasons, resolution=resolution,
                        subject_tag=policy.mail.subject_tag if tag else "", snapshot_id=resolution.snapshot_id,
                        policy_fingerprint=policy.fingerprint)


def dlp(recipients: tuple[Resolution, ...], policy: Policy, *, snapshot_id: str) -> DlpDecision:
    """Decide whether sharing with ``recipients`` stays inside the organization (true for none).

    ``snapshot_id`` is the id of the snapshot the recipients were resolved against.
    """
    inside_at = Trust(policy.dlp.inside_at)
    if not recipients:
        return DlpDecision(inside_organization=True, recipients=(), reasons=("no_recipients",),
                           snapshot_id=snapshot_id, policy_fingerprint=policy.fingerprint)
    outside = any(r.trust < inside_at for r in recipients)
    return DlpDecision(inside_organization=not outside, recipients=recipients,
                       reasons=("recipient_below_inside_at",) if outside else ("all_recipients_inside",),
                       snapshot_id=snapshot_id, policy_fingerprint=policy.fingerprint)


def label_rights(resolution: Resolution, label: str, policy: Policy) -> LabelDecision:
    """Return the usage rights ``label`` grants ``resolution``'s trust level (none for an unlisted level).

    Raises:
        PolicyError: for a label the policy does not define.
    """
    rights = policy.label_rights(label, resolution.trust)
    return LabelDecision(label=label, rights=rights, trust=resolution.trust,
                         reasons=resolution.reasons + (("label_rights_granted",) if rights else ("label_no_rights",)),
                         resolution=resolution, snapshot_id=resolution.snapshot_id,
                         policy_fingerprint=policy.fingerprint)


def teams(resolution: Resolution, action: str, policy: Policy) -> TeamsDecision:
    """Decide whether a Teams ``action`` is allowed with ``resolution``'s identity.

    Raises:
        PolicyError: for an action that is not one of :data:`mtotrust._policy.TEAMS_ACTIONS`.
    """
    allowed = resolution.trust >= policy.teams_minimum(action)
    return TeamsDecision(action=action, allowed=allowed, trust=resolution.trust,
                         reasons=resolution.reasons + (("teams_allowed",) if allowed else ("teams_below_minimum",)),
                         resolution=resolution, snapshot_id=resolution.snapshot_id,
                         policy_fingerprint=policy.fingerprint)

