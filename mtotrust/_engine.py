"""``TrustEngine``: resolver, policy, cache, atomic hot swap and decision log behind every app's decision.

The engine's whole state (snapshot, policy, answers, cache) lives in one ``_State`` that :meth:`update`
replaces with a single assignment. A call reads the state once, so it sees one snapshot and one policy from
start to end; answers and cache entries belong to their state, so after ``update`` returns no answer computed
for the previous snapshot or policy can be served.

Two layers make a call cheap:

* **answers**: the resolution of every address that matches a directory object depends only on the snapshot
  (and the policy's block list), so it is computed once per state, on first use, and kept for the state's
  life, keyed by its canonical form only (the indexed address, or an ``#EXT#`` name as the directory holds it).
  The set is finite, so it needs no eviction. An identity written in that form costs one dict lookup; any other
  spelling one lookup more in the cache once it has been seen.
* **cache**: everything else that is worth keeping (misses, other spellings, identities with a tenant id, Teams
  and label decisions) goes into a bounded ``cachetools.FIFOCache``, keyed by the identity as given (only exact
  ``str`` and :class:`Identity` values of bounded size are keys). ``stats()`` counts the hits and misses of
  resolutions, and a decision served from it as a hit. One-recipient DLP decisions are kept there too, and mail
  decisions whose authentication is none or a :class:`MailAuth` (raw headers vary per message). While a
  policy's ``snapshot.max_age`` is set, decisions are served from it only until the snapshot turns stale. Its
  reads are plain dict reads that never reorder anything, so they need no lock under the GIL; writes and
  evictions take the state's lock. FIFO rather than LRU because LRU must reorder on every read, which is a write
  that needs the lock.

The module is large because the state, its two layers and the engine that reads them are one mechanism: every
call reads one ``_State`` once, and the cache keys, the staleness rule and the swap only hold together when they
change together. The per-app decisions themselves live in ``_apps``, the explanations in ``_explain``.
"""

from __future__ import annotations

import email.message
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cachetools

from mtotrust import _apps as apps
from mtotrust import mailauth
from mtotrust._address import ASCII_DOT_ATOM, MAX_ADDRESS_LENGTH, split_plain_ascii
from mtotrust._decisionlog import DecisionLog, outcome
from mtotrust._errors import FromAddressError, IdentityError, described
from mtotrust._explain import explain
from mtotrust._fromaddr import message_fields
from mtotrust._model import (
    AppDecision,
    Decision,
    DlpDecision,
    Identity,
    IdentityLike,
    LabelDecision,
    MailAuth,
    MailDecision,
    Resolution,
    TeamsDecision,
    Trust,
    make_resolution,
)
from mtotrust._policy import TEAMS_ACTIONS, Policy
from mtotrust._resolve import resolve, resolve_address
from mtotrust._snapshot import Snapshot

__all__ = ["DEFAULT_CACHE_SIZE", "EngineStats", "TrustEngine"]

DEFAULT_CACHE_SIZE = 65_536
"""Entries kept by the decision cache unless ``cache_size`` says otherwise."""

_log = logging.getLogger("mtotrust")
_UNTRUSTED, _EXTERNAL = Trust.UNTRUSTED, Trust.EXTERNAL
_EXT = "#ext#"
_MISS_DOMAINS = 65_536  # domains whose miss answer is kept per state
_DOT_ATOM = re.compile(ASCII_DOT_ATOM).fullmatch
_D = TypeVar("_D", LabelDecision, TeamsDecision, DlpDecision)


@attrs.frozen(slots=True)
class EngineStats:
    """What :meth:`TrustEngine.stats` reports.

    Counters are updated without a lock: under many threads they are close, not exact.

    .. versionadded:: 0.1.0
    """

    cache_hits: int
    """Calls answered from the bounded cache: resolutions, and Teams, label, one-recipient DLP and mail decisions."""
    cache_misses: int
    """Calls the bounded cache could not answer (not counted for precomputed answers, nor without a cache)."""
    cache_entries: int
    cache_size: int
    precomputed_answers: int
    """Per-snapshot answers kept for indexed addresses."""
    decisions: Mapping[str, int]
    """Decisions by ``app:outcome`` (``mail:untagged``, ``dlp:NotInOrganization`` ...)."""
    snapshot_generation: int
    snapshot_id: str
    snapshot_age_seconds: float
    policy_fingerprint: str


class _State:
    """One consistent view: a snapshot, a policy, and what was computed from exactly those two."""

    __slots__ = ("answers", "blocks", "cache", "changed", "fingerprint", "generation", "inherited", "lock", "misses",
                 "policy", "reason_sets", "snapshot", "snapshot_id", "stale_after")

    def __init__(self, snapshot: Snapshot, policy: Policy, cache_size: int) -> None:
        self.snapshot = snapshot
        self.policy = policy
        self.generation = snapshot.generation
        self.snapshot_id = snapshot.id
        self.fingerprint = policy.fingerprint
        self.blocks = bool(policy.block_entries)
        # Resolutions of indexed addresses, keyed by their normal form (which is also how a caller writes them).
        self.answers: dict[object, Resolution] = {}
        # How an address that no object carries resolves at a domain: (trust, reasons, home, plain). It depends
        # only on the domain, so it is learned from the resolver once per domain (bounded: unknown domains are
        # many). ``plain``: the domain is one split_plain_ascii accepts (see plain_miss).
        self.misses: dict[str, tuple[Trust, tuple[str, ...], str | None, bool]] = {}
        self.reason_sets: dict[tuple[str, ...], tuple[str, ...]] = {}  # the one copy of each kept reasons tuple
        # After a delta: the previous state's answers, valid for every address the delta did not touch.
        self.inherited: dict[object, Resolution] = {}
        self.changed: frozenset[str] = frozenset()
        self.cache: _Cache | None = _Cache(cache_size) if cache_size > 0 else None
        self.lock = threading.Lock()  # cachetools caches are not thread-safe for writes
        max_age = policy.snapshot.max_age_seconds
        # when the snapshot turns stale (Policy.is_stale, precomputed: it is checked on every call)
        self.stale_after: float | None = None if max_age is None else snapshot.taken_at.timestamp() + max_age

    def inherit(self, previous: _State) -> None:
        """Reuse ``previous``'s answers where this state's snapshot is ``previous``'s plus a delta.

        Same policy only (answers carry the block list). Costs nothing now: an untouched address moves over on
        first use, so the work stays proportional to the delta, not the directory.
        """
        if previous.fingerprint != self.fingerprint:
            return
        changed = self.snapshot.changed_addresses(previous.snapshot)
        if changed is None:
            return
        self.inherited, self.changed = previous.answers, changed
        self.misses = dict(previous.misses)  # domain-level: a user delta changes no domain

    def answer(self, local: str, domain: str) -> Resolution:
        """Return the snapshot-only resolution of a normalised address, computing it once per state."""
        key = f"{local}@{domain}"
        found = self.answers.get(key)
        return found if found is not None else self.compute(local, domain, key)

    def compute(self, local: str, domain: str, key: str) -> Resolution:
        """Resolve ``key`` (= ``local@domain``, not among the answers yet) and keep it if it is an answer."""
        found = self.inherited.get(key)
        if found is not None and key not in self.changed and found.address not in self.changed:
            found = attrs.evolve(found, snapshot_id=self.snapshot_id)
            self.answers[found.identity] = found  # the kept string (see keep), not the caller's copy of it
            return found
        miss = self.misses.get(domain)
        if miss is not None and not self.snapshot.lookup(key) and _EXT not in local:
            return self.missed(key, miss)
        found = resolve_address(self.snapshot, local, domain)  # may raise IdentityError (#EXT#)
        if found.user is not None or "ambiguous_match" in found.reasons:
            # Kept for the state's life only in canonical form: the indexed address itself, or an #EXT# name as
            # the directory holds it. Other spellings of a decoded #EXT# name are unbounded (every UTS-46
            # variant of the home domain decodes alike): they go through the bounded cache.
            upn = found.user.user_principal_name if found.user is not None else None
            if key == found.address or (upn is not None and upn.lower() == key):
                found = self.keep(found)
                self.answers[found.identity] = found
                return found
            return self.policy.apply(found)
        if found.address == key:  # not a decoded #EXT# name: the answer depends only on the domain
            if len(self.misses) >= _MISS_DOMAINS:
                self.misses.clear()
            self.misses[domain] = (found.trust, found.reasons, found.home_tenant_id,
                                   split_plain_ascii(f"a@{domain}") is not None)
        return self.policy.apply(found)

    def keep(self, found: Resolution) -> Resolution:
        """Return ``found`` (just resolved) as it is kept for the state's life: policy applied, its parts shared.

        Kept answers are most of an engine's memory (one per indexed address), so they hold no string or tuple
        of their own where an equal one exists: the identity and the address are the object's own ``mail`` string
        when they equal it (the index holds that very object), and equal reasons tuples are one object (a small
        vocabulary in a fixed order: a few hundred combinations at most).
        """
        mail = found.user.mail if found.user is not None else None
        identity = mail if mail is not None and mail == found.identity else found.identity
        address = found.address
        if address == identity:
            address = identity
        elif mail is not None and address == mail:
            address = mail
        reasons = self.reason_sets.setdefault(found.reasons, found.reasons)
        return self.policy.apply(make_resolution(identity, found.trust, reasons, address, found.user,
                                                 found.home_tenant_id, found.tenant_id, found.snapshot_id,
                                                 self.fingerprint))

    def plain_miss(self, key: str) -> Resolution | None:
        """Return the answer for a lower-case ASCII ``key`` that no object carries, if it is cheap to prove; else None.

        What ``split_plain_ascii(key)`` and :meth:`compute` would give, without the whole-address regex: at a domain
        whose miss answer is known and which split_plain_ascii accepts, ``key`` is a plain address exactly when its
        local part (everything before the last ``@``: a dot-atom holds none) is a dot-atom and it is at most 320
        characters long. ``None`` means "take the full path", not "invalid".
        """
        local, _, domain = key.rpartition("@")
        miss = self.misses.get(domain)
        if (miss is None or not miss[3] or len(key) > MAX_ADDRESS_LENGTH or _EXT in local or _DOT_ATOM(local) is None
                or self.snapshot.lookup(key)):
            return None
        return self.missed(key, miss)

    def missed(self, key: str, miss: tuple[Trust, tuple[str, ...], str | None, bool]) -> Resolution:
        """Return the resolution of ``key``, an address no object carries, from its domain's miss answer."""
        found = make_resolution(key, miss[0], miss[1], key, None, miss[2], None, self.snapshot_id, self.fingerprint)
        return self.policy.apply(found) if self.blocks else found

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` in the bounded cache (if any)."""
        if self.cache is not None:
            with self.lock:
                self.cache[key] = value


class _Cache(cachetools.FIFOCache[Hashable, Any]):
    """A bounded FIFO cache with a plain dict ``view`` of its entries for lock-free reads.

    Writes (and the evictions they cause) happen under the state's lock and keep ``view`` in step.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.view: dict[Hashable, Any] = {}

    def __setitem__(self, key: Hashable, value: Any) -> None:
        super().__setitem__(key, value)
        self.view[key] = value

    def popitem(self) -> tuple[Hashable, Any]:
        key, value = super().popitem()
        self.view.pop(key, None)
        return key, value


_MAIL = "mail"  # names mail decisions in the cache keys (the others are named by their decide function)


def _cacheable_auth(auth: object) -> bool:
    """Whether a mail decision's authentication may be in a cache key: none, or a MailAuth of exact short strs.

    Every field is checked for its exact type, ``smtp_auth`` too: a MailAuth can be built around its own check, and
    a field of another type must reach the mail path (which refuses it, failing closed) rather than hash or compare
    equal to a valid key.
    """
    if auth is None:
        return True
    if auth.__class__ is not MailAuth:
        return False
    dmarc, compauth, header_from = auth.dmarc, auth.compauth, auth.header_from
    return (auth.smtp_auth.__class__ is bool
            and (dmarc is None or (dmarc.__class__ is str and len(dmarc) <= MAX_ADDRESS_LENGTH))
            and (compauth is None or (compauth.__class__ is str and len(compauth) <= MAX_ADDRESS_LENGTH))
            and (header_from is None or (header_from.__class__ is str and len(header_from) <= MAX_ADDRESS_LENGTH)))


def _cacheable(identity: object) -> bool:
    """Whether an identity may be a cache key: a str or an Identity of bounded size (else it is not kept)."""
    if isinstance(identity, str):
        return identity.__class__ is str and len(identity) <= MAX_ADDRESS_LENGTH + 16
    # exact str fields only: a str subclass may hash or compare in hostile ways, and a key must never raise
    return (identity.__class__ is Identity and isinstance(identity, Identity) and identity.address.__class__ is str
            and len(identity.address) <= MAX_ADDRESS_LENGTH + 16
            and (identity.tenant_id is None or (identity.tenant_id.__class__ is str and len(identity.tenant_id) < 64)))


class TrustEngine:
    """Answer trust questions for every app from one snapshot and one policy, fast and bounded.

    Args:
        snapshot: the local directory.
        policy: defaults to :meth:`Policy.default`.
        cache_size: entries in the bounded decision cache; ``0`` disables it (every call that is not a
            precomputed per-snapshot answer resolves anew).
        decision_log: an opt-in :class:`~mtotrust._decisionlog.DecisionLog`.

    Engine methods never raise on a bad identity; :meth:`mail`, :meth:`mail_message` and :meth:`dlp` never
    raise at all: on any error they fail closed (tagged, ``NotInOrganization``) with the reason
    ``internal_error``. The engine is
    thread-safe; :meth:`update` swaps snapshot and policy atomically.

    .. versionadded:: 0.1.0
    """

    def __init__(self, snapshot: Snapshot, policy: Policy | None = None, *, cache_size: int = DEFAULT_CACHE_SIZE,
                 decision_log: DecisionLog | None = None) -> None:
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"snapshot must be a mtotrust.Snapshot, not {type(snapshot).__name__}; "
                            "load one with Snapshot.load(path)")
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise ValueError(f"cache_size must be an int >= 0, not {cache_size!r}")
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy must be a mtotrust.Policy, not {type(policy).__name__}; "
                            "load one with Policy.load(path)")
        self._cache_size = cache_size
        self._state = _State(snapshot, policy if policy is not None else Policy.default(), cache_size)
        self._update_lock = threading.Lock()
        self._log = decision_log
        self._counts = [0, 0]  # resolutions answered from the cache, and not: shared with pinned() views
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
        if snapshot is not None and not isinstance(snapshot, Snapshot):
            raise TypeError(f"snapshot must be a mtotrust.Snapshot, not {type(snapshot).__name__}")
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy must be a mtotrust.Policy, not {type(policy).__name__}")
        with self._update_lock:
            old = self._state
            new = _State(snapshot if snapshot is not None else old.snapshot,
                         policy if policy is not None else old.policy, self._cache_size)
            new.inherit(old)
            self._state = new

    def pinned(self) -> TrustEngine:
        """Return a view of this engine held on its current snapshot and policy.

        Every call on the view decides from that one state, even if :meth:`update` runs meanwhile, so a batch of
        decisions made through it shares one ``snapshot_id`` and one ``policy_fingerprint``. The view shares this
        engine's cache, statistics and decision log; it cannot be updated (``TypeError``): update this engine
        and pin again.

        .. versionadded:: 0.2.0
        """
        view: TrustEngine = object.__new__(_Pinned)
        view.__dict__.update(self.__dict__)  # the state as of now: update() replaces the engine's, not the view's
        return view

    def stats(self) -> EngineStats:
        """Return cache hits and misses, decisions by app and outcome, and the snapshot's id, generation and age."""
        state = self._state
        return EngineStats(
            cache_hits=self._counts[0], cache_misses=self._counts[1],
            cache_entries=len(state.cache) if state.cache is not None else 0, cache_size=self._cache_size,
            precomputed_answers=len(state.answers),
            decisions={f"{app}:{word}": n for (app, word), n in sorted(self._outcomes.items())},
            snapshot_generation=state.generation, snapshot_id=state.snapshot_id,
            snapshot_age_seconds=round(time.time() - state.snapshot.taken_at.timestamp(), 3),
            policy_fingerprint=state.fingerprint,
        )

    # -- resolution ----------------------------------------------------------------------------------------

    def _resolve_in(self, state: _State, identity: IdentityLike) -> Resolution:
        """Resolve against one state, keyed by the identity as given (the one key shape of every lookup).

        First a precomputed answer (an indexed address written in normal form: one dict lookup), then the bounded
        cache, then :meth:`_compute`. Only a str or an :class:`Identity` is ever a key.
        """
        cls = identity.__class__
        if cls is str or cls is Identity:
            try:
                found = state.answers.get(identity)
                if found is None and state.cache is not None:
                    found = state.cache.view.get(identity)
                    self._counts[found is None] += 1
            except Exception:  # noqa: BLE001 - unhashable, or a hostile __hash__/__eq__: invalid, never a key
                found = None
            if found is not None:
                return found if state.stale_after is None else _stale(state, found)
        found = self._compute(state, identity)
        if state.cache is not None and _cacheable(identity) and identity not in state.answers:
            state.put(identity, found)
        return found if state.stale_after is None else _stale(state, found)

    @staticmethod
    def _compute(state: _State, identity: IdentityLike) -> Resolution:
        """Resolve an identity that is not a key yet: the plain-ASCII fast path, else the full resolver.

        For a plain ASCII address every normalisation rule reduces to trimming and lower-casing
        (:func:`~mtotrust._address.split_plain_ascii`), so its answer is looked up directly; anything else (non-ASCII,
        a tenant id, invalid input) goes through :func:`~mtotrust._resolve.resolve`, the readable path this one is
        pinned to by the tests.
        """
        if identity.__class__ is str:
            text = identity.strip(" \t")
            if text.isascii():
                # For ASCII, a valid address's normal form is its lower case, and the answers hold only valid
                # normal forms: a hit proves validity too.
                lowered = text.lower()
                found = state.answers.get(lowered)
                if found is None:
                    found = state.plain_miss(lowered)
                if found is not None:
                    return found
                parts = split_plain_ascii(lowered)
                if parts is not None:
                    try:
                        return state.compute(parts[0], parts[1], lowered)
                    except IdentityError:  # a malformed #EXT# name: the resolver says invalid_identity
                        pass
        return resolve(state.snapshot, identity, state.policy, answer=state.answer)

    def resolve(self, identity: IdentityLike) -> Resolution:
        """Resolve an address (or :class:`Identity` with a home ``tenant_id``) against the snapshot."""
        return self._resolve_in(self._state, identity)

    def resolve_many(self, identities: Iterable[IdentityLike]) -> list[Resolution]:
        """Resolve many identities against one snapshot and policy, each distinct identity once.

        All answers come from the same state, even if :meth:`update` runs meanwhile.
        """
        return self._resolve_many_in(self._state, identities)

    def _resolve_many_in(self, state: _State, identities: Iterable[IdentityLike]) -> list[Resolution]:
        seen: dict[object, Resolution] = {}
        results = []
        for identity in identities:
            try:
                found = seen.get(identity)
            except Exception:  # noqa: BLE001 - unhashable or hostile: resolve it (it is invalid), never remember it
                found = None
            if found is None:
                found = self._resolve_in(state, identity)
                if _cacheable(identity):
                    seen[identity] = found
            results.append(found)
        return results

    # -- the apps ------------------------------------------------------------------------------------------

    def _record(self, decision: AppDecision) -> None:
        self._outcomes[outcome(decision)] += 1
        if self._log is not None:
            self._log.record(decision)

    def _decided(self, state: _State, decide: Callable[[Resolution, str, Policy], _D], identity: IdentityLike,
                 name: str) -> _D:
        """Return a cached Teams, label or one-recipient DLP decision, or make, cache and return it; record it.

        ``decide`` is :func:`apps.teams`, :func:`apps.label_rights` or :func:`_dlp_one`; it names the decision in
        the cache key. Once the snapshot is older than ``snapshot.max_age`` the cache is passed by: a decision
        kept from before would not say ``snapshot_stale``.
        """
        key = ((decide, identity, name) if state.cache is not None and _cacheable(identity) and name.__class__ is str
               and _fresh(state) else None)
        decision: _D | None = state.cache.view.get(key) if key is not None else None  # type: ignore[union-attr]
        if decision is None:
            decision = decide(self._resolve_in(state, identity), name, state.policy)
            if key is not None:
                state.put(key, decision)
        else:
            self._counts[0] += 1  # answered from the cache (the resolution it would have looked up is not counted)
        self._record(decision)
        return decision

    def mail(self, sender: IdentityLike, auth: apps.AuthInput = None) -> MailDecision:
        """Decide external tagging for a message whose RFC 5322 From address is ``sender``.

        ``auth`` is a :class:`MailAuth` established by the app, or the raw ``Authentication-Results`` value, or
        the values in message order (topmost first). Never raises: an error tags the message. A decision for no
        authentication or a ``MailAuth`` is kept in the cache like a Teams decision (one made after an internal
        error is not).
        """
        state = self._state
        key = (_MAIL, sender, auth) if (state.cache is not None and _cacheable(sender) and _cacheable_auth(auth)
                                        and _fresh(state)) else None
        if key is not None:
            kept: MailDecision | None = state.cache.view.get(key)  # type: ignore[union-attr]
            if kept is not None:
                self._counts[0] += 1
                self._record(kept)
                return kept
        decision = self._mail_in(state, sender, auth)
        if key is not None and "internal_error" not in decision.reasons:
            state.put(key, decision)
        return decision

    def mail_message(self, message: email.message.Message | bytes) -> MailDecision:
        """Decide external tagging for a whole message: its From address and its ``Authentication-Results``.

        The sender is the address of the one mailbox of the ``From`` field, read by
        :func:`mtotrust.mailauth.from_address` (display names and comments are ignored); ``auth`` is every
        ``Authentication-Results`` value in message order, topmost first, so the decision is exactly
        ``mail(address, values)``. A message without ``Authentication-Results`` is decided as ``mail(address)``
        (reason ``auth_missing``, where an empty list would say ``auth_header_untrusted``).

        A message whose From names no mailbox (no field, an empty one, ``undisclosed-recipients:;``, a value
        that cannot be parsed) is ``untrusted`` and tagged with the reason ``from_missing``; one with several
        From fields, several mailboxes or a group, with ``from_ambiguous``. Never raises: any other error tags
        the message with ``internal_error``. Every decision is recorded like :meth:`mail`'s.

        .. versionadded:: 0.1.0

        Args:
            message: An ``email.message.Message`` of any policy (``compat32`` or an ``EmailMessage``), or the
                ``bytes`` of an RFC 5322 message, of which only the header section is parsed.

        Returns:
            The decision; the same as :meth:`mail` gives for the From address and the headers.

        """
        state = self._state
        try:
            froms, auths = message_fields(message)
            sender = mailauth.from_address(froms)
        except FromAddressError as exc:
            decision = _untrusted_mail(state, _from_text(exc.value), exc.reason)
        except Exception as exc:  # noqa: BLE001 - mail flow must never stop, and an error never raises trust
            decision = _failed_mail("", state, exc)
        else:
            return self._mail_in(state, sender, auths or None)
        self._record(decision)
        return decision

    def _mail_in(self, state: _State, sender: IdentityLike, auth: apps.AuthInput) -> MailDecision:
        """Decide and record a mail decision against one state. Never raises."""
        try:
            resolution = self._resolve_in(state, sender)
            # The From domain as written (before any #EXT# decoding): what DMARC aligns with.
            domain = resolution.identity.rpartition("@")[2] if resolution.address is not None else None
            local = domain is not None and domain in state.snapshot.local_domains
            protected = local or (domain is not None and domain in state.snapshot.mto_domains)
            decision = apps.mail(resolution, auth, state.policy, sender_domain=domain, local=local,
                                 protected=protected)
        except Exception as exc:  # noqa: BLE001 - mail flow must never stop, and an error never raises trust
            decision = _failed_mail(sender, state, exc)
        self._record(decision)
        return decision

    def dlp(self, recipients: Iterable[IdentityLike] | IdentityLike) -> DlpDecision:
        """Decide whether sharing with ``recipients`` stays inside the organization. Never raises.

        Each distinct recipient is resolved once, all against the same snapshot and policy.
        """
        state = self._state
        try:
            if isinstance(recipients, (str, Identity)):
                return self._decided(state, _dlp_one, recipients, "")  # one recipient: cached like Teams
            decision = apps.dlp(tuple(self._resolve_many_in(state, _recipients(recipients))), state.policy,
                                snapshot_id=state.snapshot_id)
        except Exception as exc:  # noqa: BLE001 - DLP must never let content out because of an error
            _log.error("mtotrust: %s while deciding DLP scope; failing closed", type(exc).__name__)
            decision = DlpDecision(inside_organization=False, recipients=(), reasons=("internal_error",),
                                   snapshot_id=state.snapshot_id, policy_fingerprint=state.fingerprint)
        self._record(decision)
        return decision

    def label_rights(self, identity: IdentityLike, label: str) -> LabelDecision:
        """Return the usage rights ``label`` grants ``identity``.

        Raises:
            PolicyError: for a label the policy does not define.
        """
        return self._decided(self._state, apps.label_rights, identity, label)

    def teams(self, identity: IdentityLike, action: str) -> TeamsDecision:
        """Decide whether a Teams collaboration ``action`` is allowed with ``identity``.

        Raises:
            PolicyError: for an unknown action.
        """
        return self._decided(self._state, apps.teams, identity, action)

    def report(self, identity: IdentityLike, auth: apps.AuthInput = None) -> dict[str, Any]:
        """Return every app's decision for one identity, all from one snapshot and policy, as a JSON-ready dict.

        This is the object ``mtotrust check --json`` prints for each identity and ``POST /v1/check`` answers. The
        keys are the resolution's own (``trust``, ``reasons``, ``address``, ``user_id``, ``home_tenant_id`` ...),
        then ``identity`` (the text as given), ``tenant_id`` (as given), and one entry per app: ``mail``
        (``tag_external``, for a message from the identity with ``auth``), ``dlp`` (``inside_organization``),
        ``teams`` (action -> allowed) and ``labels`` (label -> sorted usage rights), then ``snapshot_id`` and
        ``policy_fingerprint``. Scripts parse this shape: keys are added, never renamed or dropped.

        .. versionadded:: 0.2.0
        """
        view = self.pinned()
        resolution = view.resolve(identity).to_dict()
        origin = {key: resolution.pop(key) for key in ("snapshot_id", "policy_fingerprint")}
        given = identity if isinstance(identity, Identity) else Identity(identity)
        return {
            **resolution,
            "identity": given.address,  # as given; the resolution's normal form is "address"
            "tenant_id": given.tenant_id,
            "mail": {"tag_external": view.mail(identity, auth).tag_external},
            "dlp": {"inside_organization": view.dlp([identity]).inside_organization},
            "teams": {action: view.teams(identity, action).allowed for action in TEAMS_ACTIONS},
            "labels": {label: sorted(view.label_rights(identity, label).rights)
                       for label in sorted(view.policy.labels)},
            **origin,  # what it was decided from: last, so the older keys keep their places
        }

    def explain(self, decision: Decision) -> str:
        """Return a human explanation of any resolution or decision (:func:`mtotrust.explain`).

        The evidence comes from the engine's current snapshot and policy, where the decision was made from them
        (the same ``snapshot_id`` and ``policy_fingerprint``); this is the text ``mtotrust explain`` prints.

        .. versionchanged:: 0.2.0
           Names tenants, the deciding policy key and, for a negative answer, the first failed check and its fix.
        """
        state = self._state
        return explain(decision, state.snapshot, state.policy)


class _Pinned(TrustEngine):
    """What :meth:`TrustEngine.pinned` returns: the engine's attributes as of pinning, its state never replaced."""

    def update(self, snapshot: Snapshot | None = None, *, policy: Policy | None = None) -> None:  # noqa: ARG002
        """Refuse: a pinned view decides from one state for its whole life."""
        raise TypeError("a pinned TrustEngine view cannot be updated: update the engine it came from, then pin again")


def _dlp_one(resolution: Resolution, _name: str, policy: Policy) -> DlpDecision:
    """Return the DLP decision for one recipient (the shape :meth:`TrustEngine._decided` calls)."""
    return apps.dlp((resolution,), policy, snapshot_id=resolution.snapshot_id)


def _recipients(recipients: object) -> tuple[IdentityLike, ...]:
    """Return the recipients of a DLP call as a tuple; refuse what would read as "no recipients" by mistake.

    Bytes and mappings are not lists of identities, and an iterator that yields nothing may be one used up
    already: neither may answer "nothing is shared, inside" (the caller fails closed instead).
    """
    if isinstance(recipients, (bytes, bytearray, memoryview, Mapping)) or not isinstance(recipients, Iterable):
        raise TypeError(f"recipients must be a str, an Identity or a list of them, not {type(recipients).__name__}")
    items = tuple(recipients)
    if not items and not isinstance(recipients, Collection):
        raise TypeError(f"the recipients iterator ({type(recipients).__name__}) yielded nothing; pass a list")
    return items


def _fresh(state: _State) -> bool:
    """Whether the state's snapshot is not stale now (checked per call: the snapshot ages while the state lives)."""
    return state.stale_after is None or time.time() <= state.stale_after


def _stale(state: _State, resolution: Resolution) -> Resolution:
    """Apply the policy's staleness cap."""
    if _fresh(state):
        return resolution
    return state.policy.apply(resolution, stale=True)


def _failed_mail(sender: object, state: _State, exc: Exception) -> MailDecision:
    _log.error("mtotrust: %s while deciding mail tagging; failing closed", type(exc).__name__)
    text = sender.address if isinstance(sender, Identity) else sender
    return _untrusted_mail(state, text if isinstance(text, str) else described(text), "internal_error")


def _untrusted_mail(state: _State, identity: str, reason: str) -> MailDecision:
    """Return the fail-closed mail decision: tagged, untrusted, unauthenticated, for ``reason`` alone."""
    resolution = Resolution(identity=identity, trust=Trust.UNTRUSTED, reasons=(reason,),
                            snapshot_id=state.snapshot_id, policy_fingerprint=state.fingerprint)
    return MailDecision(tag_external=True, trust=Trust.UNTRUSTED, authenticated=False, reasons=(reason,),
                        resolution=resolution, subject_tag=state.policy.mail.subject_tag,
                        snapshot_id=state.snapshot_id, policy_fingerprint=state.fingerprint)


def _from_text(value: object) -> str:
    """Return the From value(s) a from_missing or from_ambiguous decision names, cut to an address's length."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)):
        text = ", ".join(v for v in value if isinstance(v, str))
    else:
        text = ""
    return text[:MAX_ADDRESS_LENGTH]
