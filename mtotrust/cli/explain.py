"""``mtotrust explain``: why an identity gets its trust and each app's decision, step by step.

The text of each decision is exactly :meth:`TrustEngine.explain <mtotrust.TrustEngine.explain>`'s; ``--json``
gives the same as data (:func:`mtotrust._explain.explain_data`), deterministic for the same input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mtotrust._engine import TrustEngine
from mtotrust._explain import explain_data
from mtotrust._model import AppDecision, Identity, Resolution
from mtotrust._policy import TEAMS_ACTIONS
from mtotrust.cli._common import EXIT_OK, load_policy, load_snapshot, output, output_json

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]

_APPS = ("mail", "dlp", "teams", "labels")


def run(args: argparse.Namespace) -> int:
    """Explain the identity's resolution and every app's decision (``--app``: that app's only), or print JSON."""
    # The policy first: a bad one is then the only line on stderr, not one after the bundled-sample notice.
    policy = load_policy(args.policy, args.policy_fingerprint)
    engine = TrustEngine(load_snapshot(args.snapshot), policy)
    identity = Identity(args.identity, args.tenant_id)
    resolution = engine.resolve(identity)
    apps = _decisions(engine, identity, args.auth, (args.app,) if args.app else _APPS)
    if args.json:
        output_json(_data(engine, args.identity, resolution, apps))
        return EXIT_OK
    texts = [] if args.app else [engine.explain(resolution)]
    texts += [engine.explain(decision) for decisions in apps.values() for decision in decisions.values()]
    if "labels" in apps and not apps["labels"]:
        texts.append("The policy defines no labels.")
    output("\n\n".join(texts))
    return EXIT_OK


def _decisions(engine: TrustEngine, identity: Identity, auth: list[str] | None, names: tuple[str, ...]
               ) -> dict[str, dict[str, AppDecision]]:
    """Return each named app's decisions for ``identity``, keyed by app, then by Teams action or label name.

    Mail and DLP make one decision each (keyed by the app's name): a message from the identity with ``auth``, and
    sharing with the identity alone.
    """
    found: dict[str, dict[str, AppDecision]] = {}
    for name in names:
        if name == "mail":
            found[name] = {name: engine.mail(identity, auth)}
        elif name == "dlp":
            found[name] = {name: engine.dlp([identity])}
        elif name == "teams":
            found[name] = {action: engine.teams(identity, action) for action in TEAMS_ACTIONS}
        else:
            found[name] = {label: engine.label_rights(identity, label) for label in sorted(engine.policy.labels)}
    return found


def _data(engine: TrustEngine, given: str, resolution: Resolution, apps: dict[str, dict[str, AppDecision]]
          ) -> dict[str, Any]:
    """Return the ``--json`` document: the identity, what it was decided from, the resolution's steps, the apps'."""
    snapshot, policy = engine.snapshot, engine.policy
    steps = explain_data(resolution, snapshot, policy)

    def entry(decision: AppDecision) -> dict[str, Any]:
        return {"decision": decision.to_dict(), **explain_data(decision, snapshot, policy)}

    shaped: dict[str, Any] = {}
    for name, decisions in apps.items():
        one = name in ("mail", "dlp")
        shaped[name] = entry(decisions[name]) if one else {key: entry(d) for key, d in decisions.items()}
    return {"identity": given, "snapshot_id": snapshot.id, "policy_fingerprint": policy.fingerprint,
            "resolution": resolution.to_dict(), "steps": steps["steps"], "first_failed": steps["first_failed"],
            "apps": shaped}
