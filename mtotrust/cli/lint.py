"""``mtotrust lint``: validate a policy file and verify it exhaustively against the invariant catalogue.

The verifier (:mod:`mtotrust._verify`) imports no optional dependency, so ``lint`` works on a plain install; it
is imported only when this command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtotrust._errors import IdentityError, MtoTrustError
from mtotrust.cli._common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    UsageError,
    load_policy,
    load_snapshot,
    output,
    output_json,
    progress,
)

if TYPE_CHECKING:
    import argparse

__all__ = ["lint", "run"]


def run(args: argparse.Namespace) -> int:
    """Run ``mtotrust lint`` from its parsed arguments."""
    return lint(args.policy, args.snapshot, as_json=args.json, fingerprint=args.policy_fingerprint)


def lint(policy_path: str, snapshot_path: str | None, *, as_json: bool, fingerprint: str | None = None) -> int:
    """Validate the policy file, verify it (and the snapshot, if given), print the findings.

    The policy's fingerprint is printed first (``policy_fingerprint`` in JSON): once the policy is reviewed,
    deployments pin it with ``--policy-fingerprint`` or ``Policy.load(path, expect_fingerprint=...)``. On a
    terminal, stderr shows the progress of loading the snapshot and of the verification.

    Args:
        policy_path: the policy file.
        snapshot_path: a snapshot to verify against too, or ``None`` (the synthetic attribute space only).
        as_json: print one JSON object instead of text.
        fingerprint: ``--policy-fingerprint``: the fingerprint the policy must have, or ``None``.

    Returns:
        ``EXIT_OK`` when every invariant holds, ``EXIT_PROBLEMS`` on violations.

    Raises:
        UsageError: the policy or the snapshot cannot be read or is invalid, or the policy's fingerprint is not
            ``fingerprint`` (the message is one line naming it).
    """
    from mtotrust._verify import verify

    try:
        policy = load_policy(policy_path, fingerprint)
        snapshot = load_snapshot(snapshot_path) if snapshot_path is not None else None
    except (MtoTrustError, OSError) as exc:
        raise UsageError(f"mtotrust lint: {' '.join(str(exc).split())}") from None
    if not as_json:
        where = f"snapshot {snapshot_path} and " if snapshot_path else ""
        output(f"mtotrust lint {policy_path}: policy fingerprint {policy.fingerprint}; checking {where}the "
               "synthetic attribute space")
    try:
        with progress("checking") as bar:
            report = verify(policy, snapshot, progress=bar)
    except IdentityError as exc:  # pragma: no cover - block entries are validated by Policy already
        raise UsageError(f"mtotrust lint: {' '.join(str(exc).split())}") from None
    if as_json:
        data = report.to_dict()
        data["policy"] = policy_path
        data["snapshot"] = snapshot_path
        output_json(data)
    else:
        output(report.format())
    return EXIT_OK if report.ok else EXIT_PROBLEMS
