"""The diff report: how each app's decisions change between two policies, over every address the directory indexes.

Each policy gets one engine. An identity is resolved once by each; the apps then decide from the resolution alone
(its trust and reasons) and, for mail, the sender's domain, so each distinct ``(trust, reasons, domain)`` is decided
once per engine through :meth:`TrustEngine.report` and the answer reused for every address that shares it. A
policy reaches a resolution only through :meth:`Policy.apply` (its block list and its staleness cap), so two
policies with the same block list and ``[snapshot]`` section resolve alike and one resolution serves both: a
100,000-user directory then costs about one resolution per address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from mtotrust._engine import TrustEngine
from mtotrust._model import MailAuth, Resolution
from mtotrust._policy import PERMISSION_LEVELS, TEAMS_ACTIONS, Policy
from mtotrust._snapshot import Snapshot

__all__ = ["APPS", "diff"]

APPS = ("mail", "dlp", "teams", "labels")
"""The apps a diff compares, in report order."""

MAIL_ASSUMES = "dmarc=pass"
"""How the diff authenticates mail: as if the boundary had reported DMARC pass for the sender's own domain."""

_EXAMPLES = 5
_DIRECTIONS = ("raised", "lowered", "mixed")


class _Decisions(NamedTuple):
    """One identity's decision in each app, comparable across policies."""

    tagged: bool
    inside: bool
    teams: frozenset[str]
    labels: Mapping[str, frozenset[str]]


class _Decider:
    """Every app's decision for an address under one engine, each distinct resolution decided once."""

    def __init__(self, engine: TrustEngine) -> None:
        self.engine = engine
        self.decided: dict[tuple[object, ...], _Decisions] = {}

    def __call__(self, address: str, resolution: Resolution) -> _Decisions:
        """Return the decisions for ``address``, which this engine resolves to ``resolution``."""
        domain = address.rpartition("@")[2]
        key = (resolution.trust, resolution.reasons, domain)
        found = self.decided.get(key)
        if found is None:
            report = self.engine.report(address, MailAuth(dmarc="pass", header_from=domain))
            found = self.decided[key] = _Decisions(
                tagged=report["mail"]["tag_external"], inside=report["dlp"]["inside_organization"],
                teams=frozenset(action for action, allowed in report["teams"].items() if allowed),
                labels={label: frozenset(rights) for label, rights in report["labels"].items()})
        return found


def _direction(a: frozenset[str], b: frozenset[str]) -> str:
    return "raised" if b > a else "lowered" if b < a else "mixed"


def _teams_words(allowed: frozenset[str]) -> str:
    return ", ".join(action for action in TEAMS_ACTIONS if action in allowed) or "nothing allowed"


def _rights_words(rights: frozenset[str]) -> str:
    level = next((name for name, level in PERMISSION_LEVELS.items() if level == rights), None)
    return level or " ".join(sorted(rights)) or "no rights"


def _labels_words(labels: Mapping[str, frozenset[str]], names: list[str]) -> str:
    return "; ".join(f"{name}: {_rights_words(labels.get(name, frozenset()))}" for name in names) or "no labels"


def diff(snapshot: Snapshot, a: Policy, b: Policy, *, a_name: str, b_name: str) -> dict[str, Any]:
    """Return the diff report: per app, how many identities change decision from policy ``a`` to policy ``b``.

    The identities are every address the snapshot indexes (:meth:`Snapshot.addresses`), in sorted order. Per
    app: ``changed`` counts those whose decision differs, ``raised`` those ``b`` grants more (mail untagged
    where ``a`` tags it; DLP inside where ``a`` is outside; Teams a strict superset of the allowed actions;
    labels, over the labels of both policies, a superset of the rights of every label, a label a policy does
    not define granting nothing), ``lowered`` the reverse, and a change that is neither (some actions or rights
    gained, others lost) counts in ``changed`` only. ``examples`` is ``{"raised", "lowered", "mixed"}``, each the
    first five such identities (in address order), each ``{"address", "user_id", "a", "b"}`` with both decisions
    in words (``user_id`` is ``None`` for an address several objects carry). Mail is decided as if the message
    were authenticated by the boundary (``MailAuth(dmarc="pass", header_from=<the address's domain>)``), which
    the report says as ``"mail_assumes": "dmarc=pass"``.

    The report is ``{"a", "b", "snapshot_id", "identities", "mail_assumes", "apps"}``, ``a`` and ``b`` each
    ``{"name", "policy_fingerprint"}`` (the names as given: ``classic``, ``default`` or a file path), and
    ``apps`` ``{APP: {"changed", "raised", "lowered", "examples"}}`` for ``mail``, ``dlp``, ``teams`` and
    ``labels``.
    """
    left, right = _Decider(TrustEngine(snapshot, a, cache_size=0)), _Decider(TrustEngine(snapshot, b, cache_size=0))
    labels = sorted(set(a.labels) | set(b.labels))
    counts = {app: dict.fromkeys(("changed", *_DIRECTIONS), 0) for app in APPS}
    examples: dict[str, dict[str, list[dict[str, Any]]]] = {app: {d: [] for d in _DIRECTIONS} for app in APPS}
    alike = a.block_entries == b.block_entries and a.snapshot == b.snapshot  # they resolve alike
    addresses = sorted(snapshot.addresses())
    for address in addresses:
        resolution = left.engine.resolve(address)
        da = left(address, resolution)
        db = right(address, resolution if alike else right.engine.resolve(address))
        if da == db:
            continue
        user_id = resolution.user.id if resolution.user is not None else None
        changes: list[tuple[str, str, str, str]] = []
        if da.tagged != db.tagged:
            changes.append(("mail", "raised" if da.tagged else "lowered", _tag_words(da.tagged),
                            _tag_words(db.tagged)))
        if da.inside != db.inside:
            changes.append(("dlp", "raised" if db.inside else "lowered", _scope_words(da.inside),
                            _scope_words(db.inside)))
        if da.teams != db.teams:
            changes.append(("teams", _direction(da.teams, db.teams), _teams_words(da.teams), _teams_words(db.teams)))
        rights_a = {name: da.labels.get(name, frozenset()) for name in labels}
        rights_b = {name: db.labels.get(name, frozenset()) for name in labels}
        if rights_a != rights_b:
            gained = all(rights_b[name] >= rights_a[name] for name in labels)
            lost = all(rights_b[name] <= rights_a[name] for name in labels)
            direction = "raised" if gained else "lowered" if lost else "mixed"
            changes.append(("labels", direction, _labels_words(rights_a, labels), _labels_words(rights_b, labels)))
        for app, direction, before, after in changes:
            counts[app]["changed"] += 1
            counts[app][direction] += 1
            kept = examples[app][direction]
            if len(kept) < _EXAMPLES:
                kept.append({"address": address, "user_id": user_id, "a": before, "b": after})
    return {
        "a": {"name": a_name, "policy_fingerprint": a.fingerprint},
        "b": {"name": b_name, "policy_fingerprint": b.fingerprint},
        "snapshot_id": snapshot.id,
        "identities": len(addresses),
        "mail_assumes": MAIL_ASSUMES,
        "apps": {app: {"changed": counts[app]["changed"], "raised": counts[app]["raised"],
                       "lowered": counts[app]["lowered"],
                       "examples": examples[app]} for app in APPS},
    }


def _tag_words(tagged: bool) -> str:
    return "tagged [External]" if tagged else "untagged"


def _scope_words(inside: bool) -> str:
    return "inside the organization" if inside else "outside the organization"
