"""``mtotrust filter``: the SMTP content filter (the ``mailflow`` extra), until SIGTERM or SIGINT.

SIGHUP reloads the policy file (and its pilot) and the snapshot; a store given with ``--snapshot`` is also watched,
and each generation a sync commits is swapped in. A reload that fails keeps what the filter had and says why on
stderr. Exit 0 once stopped by a signal; 2 for bad usage or input (a port that cannot be bound, a bad policy).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mtotrust.cli._common import (
    EXIT_OK,
    UsageError,
    hangup,
    host_port,
    load_policy,
    load_snapshot,
    reload_inputs,
    require_extra,
    signals_blocked,
    warn_unbounded,
)

if TYPE_CHECKING:
    import argparse

    from mtotrust._engine import TrustEngine
    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Run the filter until SIGTERM or SIGINT."""
    require_extra("mailflow", "aiosmtpd")
    from mtotrust import TrustEngine

    listen = host_port(args.listen, "--listen")
    next_hop = host_port(args.next_hop, "--next-hop")
    if args.max_size < 1 or args.max_connections < 1:
        raise UsageError("mtotrust filter: --max-size and --max-connections must be at least 1")
    snapshot = load_snapshot(args.snapshot)
    policy = load_policy(args.policy)
    warn_unbounded(policy)
    engine = TrustEngine(snapshot, policy)
    folder = Path(args.policy).resolve().parent if args.policy else None
    with signals_blocked():
        return _serve(args, engine, listen, next_hop, folder)


def _serve(args: argparse.Namespace, engine: TrustEngine, listen: tuple[str, int], next_hop: tuple[str, int],
           folder: Path | None) -> int:
    """Listen and relay until SIGTERM or SIGINT (the signals are blocked: this thread takes them in turn)."""
    from mtotrust._watch import watch
    from mtotrust.mailflow import MailFilter

    snapshot = engine.snapshot
    mail_filter = MailFilter(engine, next_hop, max_size=args.max_size, max_connections=args.max_connections,
                             policy_folder=folder)
    try:
        host, port = mail_filter.start(*listen)
    except OSError as exc:
        mail_filter.close()
        raise UsageError(f"mtotrust filter: cannot listen on {args.listen} ({exc.strerror or exc})") from None
    print(f"mtotrust filter: listening on {host}:{port}, relaying to {next_hop[0]}:{next_hop[1]}; snapshot "
          f"{snapshot.id}, policy {engine.policy.fingerprint}", file=sys.stderr, flush=True)
    store = Path(args.snapshot) if args.snapshot and Path(args.snapshot).is_file() else None
    watcher = None if store is None else watch(store, engine, every=args.watch_every,
                                               on_update=lambda snap: _swapped(mail_filter, snap))

    def apply(snapshot: Snapshot | None, policy: Policy | None) -> TrustEngine:
        mail_filter.reload(snapshot=snapshot, policy=policy)
        return mail_filter.engine

    try:
        while hangup():
            reload_inputs(args, apply)
    finally:
        if watcher is not None:
            watcher.stop()
        mail_filter.close()
    return EXIT_OK


def _swapped(mail_filter: object, snapshot: Snapshot) -> None:
    """Swap a generation a sync committed (the watcher put it in the engine) into the classic engine too."""
    from mtotrust.mailflow import MailFilter

    assert isinstance(mail_filter, MailFilter)
    mail_filter.reload(snapshot=snapshot)  # a snapshot alone: never fails on the policy or its pilot
    print(f"mtotrust filter: new generation {snapshot.id} (taken {snapshot.taken_at.isoformat()})",
          file=sys.stderr, flush=True)
