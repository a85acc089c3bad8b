"""``mtotrust check``: resolve identities against a snapshot and show every app's decision."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mtotrust._engine import TrustEngine
from mtotrust._model import Identity
from mtotrust.cli._common import EXIT_OK, UsageError, load_policy, load_snapshot, output, output_json

if TYPE_CHECKING:
    import argparse

__all__ = ["read_identities", "run"]

_BLANKS = " \t\r"  # around an identity on a line of a --from file (\r: the file has Windows line ends)


def run(args: argparse.Namespace) -> int:
    """Check the identities given as arguments, then those read from ``--from``; print one report each."""
    identities = list(args.identities)
    if args.from_file is not None:
        identities += read_identities(args.from_file)
    if not identities:
        where = f" ({_name(args.from_file)} holds none)" if args.from_file is not None else ""
        raise UsageError(f"mtotrust check: no identities given{where}: pass IDENTITY arguments or --from FILE "
                         "(see --help)")
    # The policy first: a bad one is then the only line on stderr, not one after the bundled-sample notice.
    policy = load_policy(args.policy, args.policy_fingerprint)
    engine = TrustEngine(load_snapshot(args.snapshot), policy)
    reports = [engine.report(Identity(text, args.tenant_id), args.auth) for text in identities]
    if args.json:
        output_json(reports)
        return EXIT_OK
    for text, report in zip(identities, reports, strict=True):
        if not args.explain:
            output(f"{text}: {report['trust']} ({', '.join(report['reasons'])})")
            continue
        identity = Identity(text, args.tenant_id)
        output(engine.explain(engine.resolve(identity)))
        output(engine.explain(engine.mail(identity, args.auth)))
        output()
    return EXIT_OK


def read_identities(source: str) -> list[str]:
    """Return the identities in file ``source`` (``-``: standard input), one per line.

    Lines are split at line feeds only; blanks (space, tab, carriage return) around an identity and blank lines are
    skipped; a leading UTF-8 byte order mark is dropped. Bytes that are not UTF-8 are kept as surrogate escapes,
    as in command-line arguments, so such an identity is answered (``untrusted``), never a crash.

    Raises:
        UsageError: the file (or standard input) cannot be read; the message names it.
    """
    try:
        raw = _read_stdin() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"mtotrust check: cannot read --from {_name(source)}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8-sig", "surrogateescape") if isinstance(raw, bytes) else raw
    return [identity for line in text.split("\n") if (identity := line.strip(_BLANKS))]


def _read_stdin() -> bytes | str:
    stdin = sys.stdin
    if stdin is None:
        raise OSError("standard input is closed")
    buffer = getattr(stdin, "buffer", None)  # absent when a caller swapped sys.stdin for a StringIO
    return buffer.read() if buffer is not None else stdin.read()


def _name(source: str) -> str:
    return "standard input" if source == "-" else f"file {source!r}"
