"""What the real engine answers: one :class:`Observation` per case, in every app.

:func:`observe` evaluates a cached and an uncached :class:`~mtotrust.TrustEngine` on each case (resolution,
mail under every authentication variant, DLP alone and in a group, every Teams action, every label);
:func:`snapshot_cases` turns addresses of a real snapshot into cases without facts. Both are generators that
hold a bounded amount whatever the number of cases (:data:`ENGINE_SPAN`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import attrs

from mtotrust._engine import TrustEngine
from mtotrust._model import DlpDecision, LabelDecision, MailDecision, Resolution, TeamsDecision
from mtotrust._policy import TEAMS_ACTIONS, Policy
from mtotrust._snapshot import Snapshot
from mtotrust._verify.space import AUTH_VARIANTS, HOME_STATES, AuthVariant, Case

__all__ = ["ENGINE_SPAN", "Observation", "observe", "snapshot_cases"]


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


ENGINE_SPAN = 4096
"""Cases one engine (and its uncached twin) answers before a fresh pair takes over.

An engine keeps the answer of every indexed address it resolved for its snapshot's life (section 5 of the
design: per-snapshot answers); a fresh pair every span keeps what verification holds bounded, whatever the size
of the directory."""


def observe(snapshot: Snapshot, policy: Policy, cases: Iterable[Case], anchor: str,
            variants: Sequence[AuthVariant] = AUTH_VARIANTS) -> Iterator[Observation]:
    """Evaluate a cached engine (and its uncached twin, for the resolution) on every case and app, one at a time.

    Mail is decided under each of ``variants`` (keyed by its name in :attr:`Observation.mail`).

    The group DLP decision puts each case with the next case (the last with the first) and ``anchor`` (an
    internal address). Cases are read one ahead and each observation is yielded as soon as it is made, so
    nothing grows with the number of cases.
    """
    items = iter(cases)
    first = next(items, None)
    if first is None:
        return
    case: Case | None = first
    n = 0
    while case is not None:
        if n % ENGINE_SPAN == 0:
            engine, plain = TrustEngine(snapshot, policy), TrustEngine(snapshot, policy, cache_size=0)
        following = next(items, None)
        q = case.query
        domain = case.domain or "invalid.example"
        neighbour = (following if following is not None else first).query
        yield Observation(
            case=case,
            resolution=engine.resolve(q),
            uncached=plain.resolve(q),
            mail={v.name: engine.mail(q, v.make(domain, policy)) for v in variants},
            dlp=engine.dlp([q]),
            dlp_group=engine.dlp([q, neighbour, anchor]),
            teams={a: engine.teams(q, a) for a in TEAMS_ACTIONS},
            labels={name: engine.label_rights(q, name) for name in policy.labels},
        )
        case, n = following, n + 1


def snapshot_cases(snapshot: Snapshot, policy: Policy, addresses: Iterable[str]) -> Iterator[Case]:
    """Yield a case per address of ``addresses`` (indexed in ``snapshot``), its home state read from the engine."""
    for n, address in enumerate(addresses):
        if n % ENGINE_SPAN == 0:
            engine = TrustEngine(snapshot, policy, cache_size=0)
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
        flag = snapshot.partners.get(home, "absent") if home is not None and state != "local" else "absent"
        partner = flag if isinstance(flag, str) else str(flag).lower() if flag is not None else "null"
        yield Case(address, None, address, domain, local or domain in snapshot.mto_domains, local, None, state,
                   partner)
