"""The reference evaluator: the trust and every app decision an identity should get, read from its attributes.

It is deliberately slow and obvious, and independent of the engine: it reads a
:class:`~mtotrust._verify.space.Facts` instead of a snapshot, and imports nothing but :mod:`mtotrust._model`,
:mod:`mtotrust._policy`, :mod:`mtotrust._address` and :mod:`mtotrust._errors` (directly or through
:mod:`mtotrust._verify.space`), never the resolver, the apps, the engine, the snapshot or the explanations.
``tests/test_reference_independence.py`` holds it to that.
"""

from __future__ import annotations

import attrs

from mtotrust._address import normalize_address
from mtotrust._errors import IdentityError
from mtotrust._model import Trust
from mtotrust._policy import TEAMS_ACTIONS, Policy, expand_grant
from mtotrust._verify.space import AUTH_VARIANTS, Case, Facts

__all__ = ["Expected", "reference_blocked", "reference_decisions", "reference_trust"]


def reference_blocked(policy: Policy, address: str | None, identity: str | None = None) -> bool:
    """Return whether ``overrides.block`` names a normalised ``address`` or the ``identity`` as written.

    An address entry names exactly that address, a domain entry exactly that domain (not its subdomains), and a
    ``*.domain`` entry the domain and every subdomain of it. For a decoded ``#EXT#`` name, the name as written
    (in normal form) counts as well as the home address it decodes to.
    """
    if address is None:
        return False
    names = {address}
    if identity is not None:
        try:
            local, domain = normalize_address(identity)
            names.add(f"{local}@{domain}")
        except IdentityError:
            pass
    for name in names:
        domain = name.rpartition("@")[2]
        for kind, value in policy.block_entries:
            if (kind == "address" and value == name) or (kind == "domain" and value == domain):
                return True
            if kind == "wildcard" and (domain == value or domain.endswith("." + value)):
                return True
    return False


def reference_trust(facts: Facts, *, blocked: bool = False) -> Trust:
    """Return the trust an identity with these attributes gets: the slow, obvious reading of the rules.

    Untrusted: an invalid identity, a look-alike domain, a blocked address, two objects carrying the address, or
    a caller's tenant id that contradicts the tenant of a known domain. Internal: a local domain. Otherwise the
    lowest cap wins: external when no object carries the address, the object is native (it merely carries the
    address) or it is not explicitly enabled; guest when its ``userType`` is not Member, the home tenant is not
    active in the MTO, the partner row says ``false``, or its ``#EXT#`` UPN names another home; else mto_member.
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
class Expected:
    """What the reference says one case should get: its trust, and each app's answer.

    ``mail`` maps each :data:`~mtotrust._verify.space.AUTH_VARIANTS` name to ``(tagged, trust)``; ``dlp`` is
    whether the case alone counts inside; ``teams`` maps each action to allowed; ``labels`` each label to its
    usage rights.
    """

    trust: Trust
    mail: dict[str, tuple[bool, Trust]]
    dlp: bool
    teams: dict[str, bool]
    labels: dict[str, frozenset[str]]


def reference_decisions(case: Case, policy: Policy) -> Expected | None:
    """Return what ``case`` should get under ``policy`` in every app, or ``None`` when it has no facts.

    Mail: failed authentication for a local or MTO domain is untrusted; unauthenticated mail is capped at
    external when the policy requires authentication; mail is tagged below ``mail.untagged_at``. DLP, Teams and
    labels compare the trust with their thresholds and grants.
    """
    if case.facts is None:
        return None
    trust = reference_trust(case.facts, blocked=reference_blocked(policy, case.address, case.identity))
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
        labels[label] = frozenset() if grant is None else expand_grant(grant)
    return Expected(trust, mail, trust >= Trust(policy.dlp.inside_at),
                    {a: trust >= Trust(getattr(policy.teams, a)) for a in TEAMS_ACTIONS}, labels)
