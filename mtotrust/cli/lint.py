"""``mtotrust lint``: validate a policy file and verify it exhaustively, or compare it with another policy.

The verifier (:mod:`mtotrust._verify`) imports no optional dependency, so ``lint`` works on a plain install; it
is imported only when this command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtotrust._errors import MtoTrustError
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
    return lint(args.policy, args.snapshot, as_json=args.json, fingerprint=args.policy_fingerprint,
                modules=args.invariants or (), compare_with=args.compare)


def _usage(exc: BaseException) -> UsageError:
    return UsageError(f"mtotrust lint: {' '.join(str(exc).split())}")


def lint(policy_path: str, snapshot_path: str | None, *, as_json: bool, fingerprint: str | None = None,
         modules: tuple[str, ...] | list[str] = (), compare_with: str | None = None) -> int:
    """Validate the policy file, verify it (and the snapshot, if given), print the findings.

    Checks the built-in invariants, the policy's own ``[[invariants]]`` and the ``@invariant`` functions of
    ``modules``. With ``compare_with``, lists instead the decision classes where the policy differs from that
    one (``classic``, ``default`` or a policy file), and exits 0: differences are information, not failure.
    The policy's fingerprint is printed first (``policy_fingerprint`` in JSON): once the policy is reviewed,
    deployments pin it with ``--policy-fingerprint`` or ``Policy.load(path, expect_fingerprint=...)``. On a
    terminal, stderr shows the progress of loading the snapshot and of the verification.

    Args:
        policy_path: the policy file.
        snapshot_path: a snapshot to verify against too, or ``None`` (the synthetic attribute space only).
        as_json: print one JSON object instead of text.
        fingerprint: ``--policy-fingerprint``: the fingerprint the policy must have, or ``None``.
        modules: ``--invariants``: Python files whose ``@invariant`` functions are checked too.
        compare_with: ``--compare``: the policy to compare with, or ``None``.

    Returns:
        ``EXIT_OK`` when every invariant holds (always, with ``compare_with``), ``EXIT_PROBLEMS`` on violations.

    Raises:
        UsageError: the policy, the snapshot, an invariants module or the policy compared with cannot be read or
            is invalid, an invariant is broken (it raises, or returns no bool), or the policy's fingerprint is
            not ``fingerprint`` (the message is one line naming it).
    """
    from mtotrust._policy import policy_named
    from mtotrust._verify import verify
    from mtotrust._verify.compare import compare
    from mtotrust._verify.user import load_module

    if compare_with is not None and modules:
        raise UsageError("mtotrust lint: --invariants and --compare do not go together: --compare checks no "
                         "invariant; run lint once with each")
    try:
        policy = load_policy(policy_path, fingerprint)
        extra = [inv for module in modules for inv in load_module(module)]
        baseline = policy_named(compare_with) if compare_with is not None else None
        snapshot = load_snapshot(snapshot_path) if snapshot_path is not None else None
    except (MtoTrustError, OSError) as exc:
        raise _usage(exc) from None
    if not as_json:
        where = f"snapshot {snapshot_path} and " if snapshot_path else ""
        doing = f"comparing with {compare_with} over" if baseline is not None else "checking"
        output(f"mtotrust lint {policy_path}: policy fingerprint {policy.fingerprint}; {doing} {where}the "
               "synthetic attribute space")
    try:
        with progress("comparing" if baseline is not None else "checking") as bar:
            if baseline is not None:
                differences = compare(policy, baseline, snapshot, names=(policy_path, compare_with or ""),
                                      progress=bar)
            else:
                report = verify(policy, snapshot, extra=extra, progress=bar)
    except MtoTrustError as exc:  # a user invariant that raises or answers no bool
        raise _usage(exc) from None
    if baseline is not None:
        if as_json:
            output_json({"policy": policy_path, "policy_fingerprint": policy.fingerprint, "snapshot": snapshot_path,
                         **differences.to_dict()})
        else:
            output(differences.format())
        return EXIT_OK
    if as_json:
        data = report.to_dict()
        data["policy"] = policy_path
        data["snapshot"] = snapshot_path
        output_json(data)
    else:
        output(report.format())
    return EXIT_OK if report.ok else EXIT_PROBLEMS
