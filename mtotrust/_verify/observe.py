"""What the real engine answers: one :class:`Observation` per case, in every app.

:func:`observe` evaluates a cached and an uncached :class:`~mtotrust.TrustEngine` on each case (resolution,
mail under every authentication variant, DLP alone and in a group, every Teams action, every label);
:func:`snapshot_cases` turns every address of a real snapshot into a case without facts.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from mtotrust._engine import TrustEngine
from mtotrust._model import DlpDecision, LabelDecision, MailDecision, Resolution, TeamsDecision
from mtotrust._policy import TEAMS_ACTIONS, Policy
from mtotrust._snapshot import Snapshot
from mtotrust._verify.space import AUTH_VARIANTS, HOME_STATES, Case

__all__ = ["Observation", "observe", "snapshot_cases"]


@attrs.frozen(slots=True)
class Observation:
    """What the real engine answered for one :class:`~mtotrust._verify.space.Case`, in every app."""

    case: Case
    resolution: Resolution
    uncached: Resolution
    mail: dict[str, MailDecision]
    dlp: DlpDecision
    dlp_group: DlpDecision
    teams: dict[str, TeamsDecision]
    labels: dict[str, LabelDecision]


def observe(engine: TrustEngine, plain: TrustEngine, cases: Sequence[Case], anchor: str) -> list[Observation]:
    """Evaluate ``engine`` (and ``plain``, its uncached twin, for the resolution) on every case and app.

    The group DLP decision puts each case with the next case and ``anchor`` (an internal address).
    """
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


def snapshot_cases(snapshot: Snapshot, policy: Policy) -> list[Case]:
    """Return a case per indexed address of ``snapshot``, its home state read from the engine's resolution."""
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
