"""``mtotrust filter``: the SMTP content filter (the ``mailflow`` extra), until SIGTERM or SIGINT.

SIGHUP reloads the policy file (and its pilot) and the snapshot; a store given with ``--snapshot`` is also watched,
and each generation a sync commits is swapped in. A reload that fails keeps what the filter had and says why on
stderr. Exit 0 once stopped by a signal; 2 for bad usage or input (a port that cannot be bound, a bad policy).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mtotrust.cli._common import EXIT_OK, UsageError, load_policy, load_snapshot, require_extra

if TYPE_CHECKING:
    import argparse

    from mtotrust._engine import TrustEngine
    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot

__all__ = ["run"]

_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


def host_port(text: str, option: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:25`` for IPv6)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise UsageError(f"mtotrust filter: {option} {text!r} is not HOST:PORT, such as 127.0.0.1:10025")
    return host, int(port)


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
    _warn_unbounded(policy)
    engine = TrustEngine(snapshot, policy)
    folder = Path(args.policy).resolve().parent if args.policy else None
    # Block the signals before any thread starts (threads inherit the mask): the main thread takes them in turn.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        return _serve(args, engine, listen, next_hop, folder)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # as it was, for a caller of main() in-process


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
    try:
        while signal.sigwait(_SIGNALS) == signal.SIGHUP:
            _reload(mail_filter, args)
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


def _reload(mail_filter: object, args: argparse.Namespace) -> None:
    """SIGHUP: read the policy file and the snapshot again; on any error keep what the filter has."""
    from mtotrust import MtoTrustError
    from mtotrust.mailflow import MailFilter

    assert isinstance(mail_filter, MailFilter)
    try:
        policy = load_policy(args.policy) if args.policy else None
        snapshot = load_snapshot(args.snapshot) if args.snapshot else None
        mail_filter.reload(snapshot=snapshot, policy=policy)
    except (MtoTrustError, OSError) as exc:
        print(f"mtotrust filter: reload failed, keeping the current snapshot and policy: {exc}", file=sys.stderr,
              flush=True)
        return
    engine = mail_filter.engine
    print(f"mtotrust filter: reloaded; snapshot {engine.snapshot.id}, policy {engine.policy.fingerprint}",
          file=sys.stderr, flush=True)
    _warn_unbounded(engine.policy)


def _warn_unbounded(policy: Policy) -> None:
    if policy.snapshot.max_age is None:
        print("mtotrust filter: warning: [snapshot] max_age is not set, so a directory that stopped syncing keeps "
              "granting trust; set it (for example max_age = \"24h\")", file=sys.stderr, flush=True)
