"""``mtotrust lint``: validate a policy file and verify it exhaustively against the invariant catalogue.

The verifier (:mod:`mtotrust._verify`) imports no optional dependency, so ``lint`` works on a plain install; it
is imported only when this command runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mtotrust._errors import IdentityError, MtoTrustError
from mtotrust.cli._common import EXIT_OK, EXIT_PROBLEMS, UsageError

if TYPE_CHECKING:
    import argparse

__all__ = ["lint", "run"]


def run(args: argparse.Namespace) -> int:
    """Run ``mtotrust lint`` from its parsed arguments."""
    return lint(args.policy, args.snapshot, as_json=args.json)


def lint(policy_path: str, snapshot_path: str | None, *, as_json: bool) -> int:
    """Validate the policy file, verify it (and the snapshot, if given), print the findings.

    Returns:
        ``EXIT_OK`` when every invariant holds, ``EXIT_PROBLEMS`` on violations.

    Raises:
        UsageError: the policy or the snapshot cannot be read or is invalid (the message is one line naming it).
    """
    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot
    from mtotrust._verify import verify

    try:
        policy = Policy.load(policy_path)
        snapshot = Snapshot.load(snapshot_path) if snapshot_path is not None else None
    except (MtoTrustError, OSError) as exc:
        raise UsageError(f"mtotrust lint: {' '.join(str(exc).split())}") from None
    try:
        report = verify(policy, snapshot)
    except IdentityError as exc:  # pragma: no cover - block entries are validated by Policy already
        raise UsageError(f"mtotrust lint: {' '.join(str(exc).split())}") from None
    if as_json:
        data = report.to_dict()
        data["policy"] = policy_path
        data["snapshot"] = snapshot_path
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        where = f"snapshot {snapshot_path} and " if snapshot_path else ""
        print(f"mtotrust lint {policy_path}: checking {where}the synthetic attribute space")
        print(report.format())
    return EXIT_OK if report.ok else EXIT_PROBLEMS
