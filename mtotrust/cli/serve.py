"""``mtotrust serve``: the AuthZEN 1.0 decision service (the ``serve`` extra), until SIGTERM or SIGINT.

SIGHUP reloads the policy file and the snapshot; a store given with ``--snapshot`` is also watched, and each
generation a sync commits is swapped in. Requests in flight finish on the state they started with. Exit 0 once
stopped by a signal; 2 for bad usage or input (a bad address, a non-loopback one without ``--token-file``, an
unreadable or empty token file, a port that cannot be bound).
"""

from __future__ import annotations

import logging
import os
import re
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

    from mtotrust._decisionlog import DecisionLog
    from mtotrust._engine import TrustEngine
    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot

__all__ = ["SALT_VARIABLE", "run"]

_ORIGIN = re.compile(r"https://[A-Za-z0-9.\-]+(:\d{1,5})?|https://\[[0-9A-Fa-f:.]+\](:\d{1,5})?").fullmatch

SALT_VARIABLE = "MTOTRUST_LOG_SALT"
"""The environment variable holding the decision log's salt (the deployment's secret)."""


def run(args: argparse.Namespace) -> int:
    """Serve decisions until SIGTERM or SIGINT."""
    require_extra("serve", "uvicorn")
    from mtotrust import TrustEngine
    from mtotrust.service import Service, ServiceError, require_token

    host, port = host_port(args.listen, "--listen", example="127.0.0.1:8181")
    token = _token(args.token_file) if args.token_file is not None else None
    try:
        require_token(host, token)  # before the snapshot loads: a big directory takes a while
    except ServiceError as exc:
        raise UsageError(f"mtotrust serve: {exc}") from None
    if args.watch_every <= 0:
        raise UsageError(f"mtotrust serve: --watch-every {args.watch_every} must be more than 0 seconds")
    for origin in args.allow_origin or ():
        if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
            raise UsageError(f"mtotrust serve: --allow-origin {origin!r} is not an origin, such as "
                             "https://addin.contoso.com (scheme and host, no path)")
    if args.public_url is not None and not _ORIGIN(args.public_url.rstrip("/")):
        raise UsageError(f"mtotrust serve: --public-url {args.public_url!r} must be an https origin with no path, "
                         "query or fragment, such as https://pdp.contoso.com (AuthZEN 1.0 discovery)")
    policy = load_policy(args.policy)
    snapshot = load_snapshot(args.snapshot)
    log = None if args.decision_log is None else _decision_log(args.decision_log)
    try:
        engine = TrustEngine(snapshot, policy, decision_log=log)
        try:
            service = Service(engine, host=host, port=port, token=token, public_url=args.public_url,
                              access_log=args.access_log, allow_origins=args.allow_origin or ())
        except ServiceError as exc:
            raise UsageError(f"mtotrust serve: {exc}") from None
        if args.access_log:
            logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        with signals_blocked():
            return _serve(args, service)
    finally:
        if log is not None:
            log.close()  # drains what is queued


def _serve(args: argparse.Namespace, service: object) -> int:
    """Serve until SIGTERM or SIGINT (the signals are blocked: this thread takes them in turn)."""
    from mtotrust._watch import watch
    from mtotrust.service import Service

    assert isinstance(service, Service)
    try:
        service.start()
    except OSError as exc:
        raise UsageError(f"mtotrust serve: cannot listen on {args.listen} ({exc.strerror or exc})") from None
    engine = service.engine
    print(f"mtotrust serve: listening on {service.url}; snapshot {engine.snapshot.id}, policy "
          f"{engine.policy.fingerprint}", file=sys.stderr, flush=True)
    warn_unbounded(engine.policy)
    store = Path(args.snapshot) if args.snapshot and Path(args.snapshot).is_file() else None
    watcher = None if store is None else watch(store, engine, every=args.watch_every, on_update=_swapped)

    def apply(snapshot: Snapshot | None, policy: Policy | None) -> TrustEngine:
        service.reload(snapshot, policy)
        return engine

    try:
        while hangup():
            reload_inputs(args, apply)
    finally:
        if watcher is not None:
            watcher.stop()
        service.stop()
    return EXIT_OK


def _swapped(snapshot: Snapshot) -> None:
    print(f"mtotrust serve: new generation {snapshot.id} (taken {snapshot.taken_at.isoformat()})", file=sys.stderr,
          flush=True)


def _decision_log(path: str) -> DecisionLog:
    """Open the decision log at ``path``, identities hashed with the salt in ``MTOTRUST_LOG_SALT``."""
    from mtotrust import DecisionLog

    salt = os.environ.get(SALT_VARIABLE) or None
    if salt is None:
        print(f"mtotrust serve: warning: {SALT_VARIABLE} is not set, so the decision log hashes identities with a "
              "random salt of this process: hashes compare only within one run", file=sys.stderr, flush=True)
    try:
        return DecisionLog(path, salt=salt)
    except OSError as exc:
        raise UsageError(f"mtotrust serve: cannot open --decision-log {path!r}: {exc.strerror or exc}") from None


def _token(path: str) -> str:
    """Return the token: the first line of file ``path``, surrounding white space stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"mtotrust serve: cannot read --token-file {path!r}: {reason}") from None
    token = text.split("\n", 1)[0].strip()
    if not token:
        raise UsageError(f"mtotrust serve: --token-file {path!r} has an empty first line: put the token there")
    if not token.isascii() or not token.isprintable():
        raise UsageError(f"mtotrust serve: the token in --token-file {path!r} must be printable ASCII (it travels "
                         "in an HTTP header)")
    return token
