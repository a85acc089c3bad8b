"""Pure evaluators for the four apps (docs/policy.md): mail tagging, DLP scope, labels and Teams.

Each takes resolutions (already made by the resolver and cached by the engine) and a policy, and returns a
decision record. They do no I/O and keep no state.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from mtotrust import mailauth
from mtotrust._address import normalize_domain
from mtotrust._errors import IdentityError
from mtotrust._model import DlpDecision, LabelDecision, MailAuth, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust._policy import Policy
from mtotrust.mailauth import _FAILED, _Claims, _claims

__all__ = ["AuthInput", "authenticate", "dlp", "label_rights", "mail", "mail_auth_from", "teams"]

AuthInput = MailAuth | str | Sequence[str] | None
"""What ``engine.mail(auth=...)`` accepts: a trusted ``MailAuth``, one raw header value, or values topmost first."""


def _word(value: str) -> str | None:
    """Read a result word as a raw header's: ASCII, case-insensitive; anything else is no result (``None``)."""
    return str.lower(value) if str.isascii(value) else None


def _given_claims(auth: MailAuth) -> _Claims | None:
    """Read a :class:`MailAuth` as a raw header is read, or return ``None`` when a field has the wrong type.

    Its validation makes a wrong type a ``TypeError`` when it is built; one built around it
    (``object.__setattr__``) is caught here, so the mail path never raises on it.
    """
    dmarc, compauth, header_from, smtp_auth = auth.dmarc, auth.compauth, auth.header_from, auth.smtp_auth
    if not ((dmarc is None or isinstance(dmarc, str)) and (compauth is None or isinstance(compauth, str))
            and (header_from is None or isinstance(header_from, str)) and isinstance(smtp_auth, bool)):
        return None
    words = (None if dmarc is None else _word(dmarc), None if compauth is None else _word(compauth))
    return _Claims("fail" in words, (header_from,) * words.count("pass"), smtp_auth)


def mail_auth_from(auth: AuthInput, policy: Policy) -> tuple[_Claims | None, tuple[str, ...]]:
    """Turn the ``auth`` argument into what its results claim for the sender, with the reasons for the choice.

    A ``MailAuth`` is trusted as given, its words read as a raw header's (case-insensitive; an unknown word is
    no result); one whose fields have the wrong type is a failure. From raw ``Authentication-Results`` values
    only the topmost one that counts is used, so a forged header lower down cannot stand in for it; a counting
    header that cannot be parsed is a failure, never a reason to read a lower, possibly forged one. Only the
    first :data:`~mtotrust.mailauth.MAX_VALUES` values are read.
    """
    if auth is None:
        return None, ("auth_missing",)
    if isinstance(auth, MailAuth):
        given = _given_claims(auth)
        return (_FAILED, ("auth_given_invalid",)) if given is None else (given, ("auth_given",))
    if isinstance(auth, str):
        values: str | list[str] = auth
    elif isinstance(auth, Sequence):
        values = list(itertools.islice(auth, mailauth.MAX_VALUES))
        if not all(isinstance(v, str) for v in values):
            return None, ("auth_invalid",)
    else:
        return None, ("auth_invalid",)
    raw, parsed = mailauth.select_counting_header(
        values, trusted_authserv_ids=policy.trusted_authserv_ids,
        accept_exchange_online=policy.mail.accept_exchange_online_results)
    if raw is None:
        over = not isinstance(auth, str) and len(auth) > mailauth.MAX_VALUES
        return None, ("auth_header_limit",) if over else ("auth_header_untrusted",)
    if parsed is None:
        return _FAILED, ("auth_header_unparsable",)
    return _claims(parsed), ("auth_header_trusted",)


def _aligned(header_from: str | None, sender_domain: str) -> bool:
    if header_from is None:
        return True
    try:
        return normalize_domain(header_from) == sender_domain
    except IdentityError:
        return False


def authenticate(claims: _Claims | None, sender_domain: str, *, local: bool) -> tuple[bool, bool, str]:
    """Judge mail authentication for a sender domain: ``(authenticated, explicit_failure, reason)``.

    Authenticated means a ``dmarc=pass`` or a qualified ``compauth=pass`` that aligns on its own with the
    sender's domain and no ``fail`` beside it, or SMTP AUTH for a local-domain sender. A pass computed for
    another domain never counts for the sender.
    """
    if claims is None:
        return False, False, "unauthenticated"
    if claims.failed:
        return False, True, "auth_fail"
    if claims.smtp_auth and local:
        return True, False, "smtp_auth_pass"
    if not claims.passes:
        return False, False, "auth_not_pass"
    for domain in claims.passes:
        if _aligned(domain, sender_domain):
            return True, False, "auth_pass"
    return False, False, "auth_misaligned"


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

