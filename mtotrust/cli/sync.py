"""``mtotrust sync``: Microsoft Graph -> the SQLite store (the ``sync`` extra).

Exit codes: 0 synced (or, with ``--dry-run``, computed); 1 Graph unreachable or throttling past the caps (the store
is unchanged); 2 bad usage, credentials, permissions or tenant mismatch; 3 internal error.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mtotrust.cli._common import EXIT_OK, UsageError, output, output_json, require_extra

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]

_REPAIRED_SHOWN = 20  # ids of repaired objects listed by a --reconcile run (all are counted)


def run(args: argparse.Namespace) -> int:
    """Run one sync and print its summary (``--json``: the summary object)."""
    require_extra("sync", "httpx")
    require_extra("sync", "azure.identity")
    from mtotrust.sync._client import token_source
    from mtotrust.sync._errors import SyncError
    from mtotrust.sync._run import sync

    if args.max_attempts < 1 or not args.max_wait >= 0:
        raise UsageError("mtotrust sync: --max-attempts must be at least 1 and --max-wait at least 0 seconds")
    graph_url = args.graph_url.rstrip("/")
    try:
        tokens = token_source(tenant=args.tenant, graph_url=graph_url, client_id=args.client_id,
                              certificate=args.certificate, client_secret_env=args.client_secret_env,
                              managed_identity=args.managed_identity, token_env=args.token_env)
        with _Pages() as pages:
            report = sync(args.store, tenant=args.tenant, tokens=tokens, graph_url=graph_url, full=args.full,
                          reconcile=args.reconcile, dry_run=args.dry_run, max_attempts=args.max_attempts,
                          max_wait=args.max_wait, progress=pages)
    except SyncError as exc:
        print(f"mtotrust sync: {exc}", file=sys.stderr)
        return exc.exit_code
    for warning in report.warnings:
        print(f"mtotrust sync: warning: {warning}", file=sys.stderr)
    if args.json:
        output_json(report.to_dict())
        return EXIT_OK
    what = "would change" if report.dry_run else "synced"
    kind = "full" if report.full else "delta"
    output(f"{what} ({kind}): {report.users} users; {report.added} added, {report.changed} changed, "
           f"{report.removed} removed; {report.pages} pages, {report.requests} requests ({report.retries} retries, "
           f"{report.throttled_seconds:.1f} s throttled) in {report.elapsed_seconds:.1f} s")
    if args.reconcile:
        shown = ", ".join(report.repaired[:_REPAIRED_SHOWN])
        more = f" and {len(report.repaired) - _REPAIRED_SHOWN} more" if len(report.repaired) > _REPAIRED_SHOWN else ""
        output(f"reconcile repaired {len(report.repaired)} objects" + (f": {shown}{more}" if shown else ""))
    output(f"snapshot_id: {report.snapshot_id}" + (" (store untouched)" if report.dry_run else ""))
    return EXIT_OK


class _Pages:
    """A page counter on a terminal's stderr while the users pages arrive (nothing when stderr is no TTY)."""

    def __init__(self) -> None:
        self._on = sys.stderr is not None and sys.stderr.isatty()
        self._shown = False

    def __call__(self, done: int, _total: int, what: str) -> None:
        if self._on:
            sys.stderr.write(f"\rsyncing {what}: {done}")
            sys.stderr.flush()
            self._shown = True

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
