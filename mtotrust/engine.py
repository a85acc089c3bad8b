"""``TrustEngine``: resolver + policy + cache + hot swap + decision log (design section 5).

The engine's whole state (snapshot, policy, cache) lives in one immutable ``_State`` that :meth:`update`
replaces with a single assignment. A call reads the state once, so it sees one snapshot and one policy from
start to end; the cache belongs to its state, so after ``update`` returns no answer computed for the previous
snapshot or policy can be served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

import attrs
import cachetools

from mtotrust import apps
from mtotrust.address import MAX_ADDRESS_LENGTH, normalize_address
from mtotrust.decisionlog import AppDecision, DecisionLog, outcome
from mtotrust.errors import IdentityError
from mtotrust.explain import Decision, explain
from mtotrust.model import DlpDecision, Identity, LabelDecision, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust.policy import Policy
from mtotrust.resolve import resolve
from mtotrust.snapshot import Snapshot

__all__ = ["DEFAULT_CACHE_SIZE", "TrustEngine"]

DEFAULT_CACHE_SIZE = 65_536
"""Entries kept by the decision cache unless ``cache_size`` says otherwise."""

_log = logging.getLogger("mtotrust")
_MISS = object()
_T = TypeVar("_T")
IdentityLike = Identity | str


class _State:
    """One consistent view: a snapshot, a policy and the cache of answers computed from exactly those."""

    __slots__ = ("cache", "fingerprint", "generation", "lock", "policy", "snapshot", "stale_after")

    def __init__(self, snapshot: Snapshot, policy: Policy, cache_size: int) -> None:
        self.snapshot = snapshot
        self.policy = policy
        self.generation = snapshot.generation
        self.fingerprint = policy.fingerprint
        self.cache: cachetools.LRUCache[Hashable, Any] | None = (
            cachetools.LRUCache(maxsize=cache_size) if cache_size > 0 else None)
        self.lock = threading.Lock()  # cachetools caches are not thread-safe
        max_age = policy.snapshot.max_age_seconds
        self.stale_after: float | None = (
            None if max_age is None else snapshot.taken_at.timestamp() + max_age)


def _cacheable(identity: object) -> bool:
    if isinstance(identity, str):
        return len(identity) <= MAX_ADDRESS_LENGTH + 16
    return (isinstance(identity, Identity) and isinstance(identity.address, str)
            and len(identity.address) <= MAX_ADDRESS_LENGTH + 16
            and (identity.tenant_id is None or (isinstance(identity.tenant_id, str) and len(identity.tenant_id) < 64)))


class TrustEngine:
    """Answer trust questions for every app from one snapshot and one policy, with a bounded cache.

    Args:
        snapshot: the local directory.
        policy: defaults to :meth:`Policy.default`.
        cache_size: entries in the LRU decision cache; ``0`` disables caching (every call resolves anew).
        decision_log: an opt-in :class:`~mtotrust.decisionlog.DecisionLog`.

    Engine methods never raise on a bad identity; :meth:`mail` and :meth:`dlp` never raise at all: on any
    error they fail closed (tagged, ``NotInOrganization``) with the reason ``internal_error``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, snapshot: Snapshot, policy: Policy | None = None, *, cache_size: int = DEFAULT_CACHE_SIZE,
                 decision_log: DecisionLog | None = None) -> None:
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"snapshot must be a mtotrust.Snapshot, not {type(snapshot).__name__}; "
                            "load one with Snapshot.load(path)")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an int >= 0, not {cache_size!r}")
        self._cache_size = cache_size
        self._state = _State(snapshot, policy if policy is not None else Policy.default(), cache_size)
        self._update_lock = threading.Lock()
        self._log = decision_log
        self._hits = 0
        self._misses = 0
        self._outcomes: Counter[tuple[str, str]] = Counter()

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot decisions are made from."""
        return self._state.snapshot

    @property
    def policy(self) -> Policy:
        """The policy decisions are made with."""
        return self._state.policy

    def update(self, snapshot: Snapshot | None = None, *, policy: Policy | None = None) -> None:
        """Swap in a new snapshot, a new policy, or both, atomically.

        Once this returns, no answer computed from the previous snapshot or policy is served.
        """
        with self._update_lock:
            old = self._state
            self._state = _State(snapshot if snapshot is not None else old.snapshot,
                                 policy if policy is not None else old.policy, self._cache_size)

    def stats(self) -> dict[str, Any]:
        """Return cache hits and misses, decisions by app and outcome, and the snapshot's generation and age."""
        state = self._state
        return {
            "cache_hits": self._hits,
            "cache_misses": self._misses,
            "cache_entries": len(state.cache) if state.cache is not None else 0,
            "cache_size": self._cache_size,
            "decisions": {f"{app}:{outcome}": n for (app, outcome), n in sorted(self._outcomes.items())},
            "snapshot_generation": state.generation,
            "snapshot_age_seconds": round(time.time() - state.snapshot.taken_at.timestamp(), 3),
            "policy_fingerprint": state.fingerprint,
        }

    # -- the cache -----------------------------------------------------------------------------------------

    def _cached(self, state: _State, key: tuple[Hashable, ...], compute: Callable[[], _T]) -> _T:
        cache = state.cache
        if cache is None:
            return compute()
        full_key = (state.generation, state.fingerprint, *key)
        with state.lock:
            value = cache.get(full_key, _MISS)
        if value is not _MISS:
            self._hits += 1
            return value  # type: ignore[no-any-return]
        self._misses += 1
        value = compute()
        with state.lock:
            cache[full_key] = value
        return value

    def _resolve(self, state: _State, identity: IdentityLike) -> Resolution:
        def compute() -> Resolution:
            resolution = resolve(state.snapshot, identity)
            if resolution.address is not None:
                domain = resolution.address.rpartition("@")[2]
                if state.policy.blocked(resolution.address, domain):
                    return attrs.evolve(resolution, trust=Trust.UNTRUSTED, reasons=(*resolution.reasons, "blocked"))
            return resolution

        resolution = self._cached(state, ("resolve", identity), compute) if _cacheable(identity) else compute()
        # Staleness depends on the clock, not on the snapshot: checked on every call, never cached.
        if state.stale_after is not None and time.time() > state.stale_after and resolution.trust > Trust.EXTERNAL:
            return attrs.evolve(resolution, trust=Trust.EXTERNAL, reasons=(*resolution.reasons, "snapshot_stale"))
        return resolution

    def _record(self, state: _State, decision: AppDecision) -> None:
        self._outcomes[outcome(decision)] += 1
        if self._log is not None:
            self._log.record(decision, generation=state.generation, policy_fingerprint=state.fingerprint)

    # -- the questions -------------------------------------------------------------------------------------

    def resolve(self, identity: IdentityLike) -> Resolution:
        """Resolve an address (or :class:`Identity` with a home ``tenant_id``) against the snapshot."""
        return self._resolve(self._state, identity)

    def mail(self, sender: IdentityLike, auth: apps.AuthInput = None) -> MailDecision:
        """Decide external tagging for a message whose RFC 5322 From address is ``sender``.

        ``auth`` is a :class:`MailAuth` established by the app, or the raw ``Authentication-Results`` value, or
        the values in message order (topmost first). Never raises: an error tags the message.
        """
        state = self._state
        try:
            resolution = self._resolve(state, sender)
            address = sender.address if isinstance(sender, Identity) else sender
            try:
                domain: str | None = normalize_address(address)[1]
            except IdentityError:
                domain = None
            local = domain is not None and domain in state.snapshot.local_domains
            protected = local or (domain is not None and domain in state.snapshot.mto_domains)
            decision = apps.mail(resolution, auth, state.policy, sender_domain=domain, local=local,
                                 protected=protected)
        except Exception as exc:  # noqa: BLE001 - mail flow must never stop, and an error never raises trust
            decision = _failed_mail(sender, state.policy, exc)
        self._record(state, decision)
        return decision

    def dlp(self, recipients: Iterable[IdentityLike] | IdentityLike) -> DlpDecision:
        """Decide whether sharing with ``recipients`` stays inside the organization. Never raises."""
        state = self._state
        try:
            items: Iterable[IdentityLike] = (
                (recipients,) if isinstance(recipients, (str, Identity)) else recipients)
            resolutions = tuple(self._resolve(state, r) for r in items)
            decision = apps.dlp(resolutions, state.policy)
        except Exception as exc:  # noqa: BLE001 - DLP must never let content out because of an error
            _log.error("mtotrust: %s while deciding DLP scope; failing closed", type(exc).__name__)
            decision = DlpDecision(inside_organization=False, recipients=(), reasons=("internal_error",))
        self._record(state, decision)
        return decision

    def label_rights(self, identity: IdentityLike, label: str) -> LabelDecision:
        """Return the usage rights ``label`` grants ``identity``.

        Raises:
            PolicyError: for a label the policy does not define.
        """
        state = self._state
        decision = apps.label_rights(self._resolve(state, identity), label, state.policy)
        self._record(state, decision)
        return decision

    def teams(self, identity: IdentityLike, action: str) -> TeamsDecision:
        """Decide whether a Teams collaboration ``action`` is allowed with ``identity``.

        Raises:
            PolicyError: for an unknown action.
        """
        state = self._state
        decision = apps.teams(self._resolve(state, identity), action, state.policy)
        self._record(state, decision)
        return decision

    @staticmethod
    def explain(decision: Decision) -> str:
        """Return a human explanation of any resolution or decision."""
        return explain(decision)


def _failed_mail(sender: object, policy: Policy, exc: Exception) -> MailDecision:
    _log.error("mtotrust: %s while deciding mail tagging; failing closed", type(exc).__name__)
    text = sender.address if isinstance(sender, Identity) else sender
    resolution = Resolution(identity=text if isinstance(text, str) else repr(text), trust=Trust.UNTRUSTED,
                            reasons=("internal_error",))
    return MailDecision(tag_external=True, trust=Trust.UNTRUSTED, authenticated=False, reasons=("internal_error",),
                        resolution=resolution, subject_tag=policy.mail.subject_tag)
