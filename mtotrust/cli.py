"""The ``mtotrust`` command (design section 6).

Exit codes: 0 success; 1 the command ran and found problems; 2 bad usage or input (one line on stderr, never a
traceback); 3 internal error.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from mtotrust import __version__
from mtotrust.engine import TrustEngine
from mtotrust.errors import MtoTrustError
from mtotrust.explain import failed_checks
from mtotrust.model import Identity, MailAuth, Resolution, Trust
from mtotrust.policy import TEAMS_ACTIONS, Policy
from mtotrust.snapshot import Snapshot

__all__ = ["main"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see --help)")


class _ProgressBar:
    """A one-line progress bar on a terminal's stderr; the CLI uses it only when stderr is a TTY."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._shown = ""

    def __call__(self, done: int, total: int, what: str) -> None:
        filled = self._width * done // total if total else self._width
        line = f"\rloading {what}: [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total}"
        if line != self._shown:
            self._stream.write(line)
            self._stream.flush()
            self._shown = line

    def close(self) -> None:
        """Erase the bar."""
        if self._shown:
            self._stream.write("\r" + " " * len(self._shown) + "\r")
            self._stream.flush()


def _load_snapshot(path: str | None) -> Snapshot:
    if path is None:
        print("mtotrust: no --snapshot given; using the bundled sample MTO (Contoso)", file=sys.stderr)
        return Snapshot.sample()
    if not sys.stderr.isatty():
        return Snapshot.load(path)
    bar = _ProgressBar(sys.stderr)
    try:
        return Snapshot.load(path, progress=bar)
    finally:
        bar.close()


def _load_policy(path: str | None) -> Policy:
    return Policy.default() if path is None else Policy.load(path)


def _sample_policy() -> Policy:
    with importlib.resources.as_file(importlib.resources.files("mtotrust") / "sample" / "policy.toml") as p:
        return Policy.load(p)


def _report(engine: TrustEngine, identity: Identity, auth: list[str] | MailAuth | None) -> dict[str, Any]:
    """Every app's decision for one identity, in the JSON shape of design section 6."""
    policy = engine.policy
    return {
        **engine.resolve(identity).to_dict(),
        "identity": identity.address,  # as given; the resolution's normal form is "address"
        "tenant_id": identity.tenant_id,
        "mail": {"tag_external": engine.mail(identity, auth).tag_external},
        "dlp": {"inside_organization": engine.dlp([identity]).inside_organization},
        "teams": {action: engine.teams(identity, action).allowed for action in TEAMS_ACTIONS},
        "labels": {label: sorted(engine.label_rights(identity, label).rights) for label in sorted(policy.labels)},
    }


def _demo_auth(resolution: Resolution) -> MailAuth | None:
    """Return DMARC-pass results for the sender's own From domain, as the demo assumes (none for invalid senders)."""
    if resolution.address is None:
        return None
    return MailAuth(dmarc="pass", header_from=resolution.identity.strip(" \t").rpartition("@")[2])


def _decided_by(resolution: Resolution) -> str:
    failed = failed_checks(resolution.reasons)
    if resolution.trust is Trust.INTERNAL:
        return "local_domain"
    return ", ".join(failed) or "every MTO check passes"


def _initials(label: str) -> str:
    return "".join(word[0] for word in label.split()).upper()


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    snapshot = Snapshot.sample()
    engine = TrustEngine(snapshot, _load_policy(args.policy) if args.policy else _sample_policy())
    with importlib.resources.files("mtotrust").joinpath("sample", "demo.json").open(encoding="utf-8") as fh:
        demo = json.load(fh)["identities"]
    reports = []
    for item in demo:
        identity = Identity(item["identity"], item.get("tenant_id"))
        report = _report(engine, identity, _demo_auth(engine.resolve(identity)))
        report["why"] = item["why"]
        reports.append(report)
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
        return EXIT_OK
    names = {t.tenant_id: t.display_name or t.tenant_id for t in snapshot.tenants.values()}
    rows = [["IDENTITY", "AS TENANT", "TRUST", "MAIL", "DLP", "TEAMS", "RIGHTS", "DECIDED BY"]]
    for item, report in zip(demo, reports, strict=True):
        resolution = engine.resolve(Identity(item["identity"], item.get("tenant_id")))
        teams = report["teams"]
        labels = report["labels"]
        rows.append([
            repr(item["identity"]) if item["identity"] != item["identity"].strip() else item["identity"],
            names.get(item["tenant_id"] or "", item["tenant_id"] or "-"),
            report["trust"],
            "[External]" if report["mail"]["tag_external"] else "untagged",
            "inside" if report["dlp"]["inside_organization"] else "outside",
            f"{sum(teams.values())}/{len(teams)} actions",
            " ".join(f"{_initials(name)}:{len(rights)}" for name, rights in labels.items()) or "-",
            _decided_by(resolution),
        ])
    print(f"mtotrust {__version__} demo: the bundled sample MTO, seen from {snapshot.display_name}'s directory "
          f"({len(snapshot.users)} users, {len(snapshot.tenants)} MTO tenants).")
    legend = ", ".join(f"{_initials(n)} = {n}" for n in sorted(engine.policy.labels))
    print("Mail is assumed DMARC-authenticated for its From domain. TEAMS: actions allowed of 6. "
          f"RIGHTS: usage rights per label ({legend or 'no labels'}).\n")
    print(_table(rows))
    counts = {t.value: sum(r["trust"] == t.value for r in reports) for t in Trust}
    print("\n" + ", ".join(f"{n} {t}" for t, n in counts.items()) + ". Explain one: mtotrust check --explain ADDRESS")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    engine = TrustEngine(_load_snapshot(args.snapshot), _load_policy(args.policy))
    reports = [_report(engine, Identity(text, args.tenant_id), args.auth) for text in args.identities]
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
        return EXIT_OK
    for text, report in zip(args.identities, reports, strict=True):
        identity = Identity(text, args.tenant_id)
        print(engine.explain(engine.resolve(identity)) if args.explain else
              f"{text}: {report['trust']} ({', '.join(report['reasons'])})")
        if args.explain:
            print(engine.explain(engine.mail(identity, args.auth)))
            print()
    return EXIT_OK


def _cmd_lint(args: argparse.Namespace) -> int:
    from mtotrust._verify import lint_main  # hypothesis-free, but only this command needs it

    return lint_main(args.policy, args.snapshot, as_json=args.json)


def _parser() -> _Parser:
    parser = _Parser(prog="mtotrust", description="Decide how far to trust an external identity in a Microsoft "
                     "365 multi-tenant organization.")
    parser.add_argument("--version", action="version", version=f"mtotrust {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="resolve the sample identities of the bundled MTO and show every app's "
                          "decision")
    demo.add_argument("--policy", help="policy file (TOML or JSON); default: the sample's policy")
    demo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    demo.set_defaults(run=_cmd_demo)

    check = sub.add_parser("check", help="resolve identities and show every app's decision")
    check.add_argument("identities", nargs="+", metavar="IDENTITY", help="an address (mail sender, recipient, "
                       "Teams user)")
    check.add_argument("--snapshot", help="snapshot folder or .sqlite store; default: the bundled sample")
    check.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
    check.add_argument("--auth", action="append", metavar="HEADER", help="raw Authentication-Results value; "
                       "repeat in message order, topmost first")
    check.add_argument("--tenant-id", help="the home tenant id the app knows (as Teams does)")
    check.add_argument("--json", action="store_true", help="print a JSON array, one object per identity")
    check.add_argument("--explain", action="store_true", help="print the full explanation of each identity")
    check.set_defaults(run=_cmd_check)

    lint = sub.add_parser("lint", help="validate a policy and verify it exhaustively against the invariant "
                          "catalogue (exit 1 on violations)")
    lint.add_argument("policy", metavar="POLICY", help="policy file (TOML or JSON)")
    lint.add_argument("--snapshot", help="also verify against this snapshot (folder or .sqlite); default: the "
                      "synthetic attribute space only")
    lint.add_argument("--json", action="store_true", help="print findings as JSON")
    lint.set_defaults(run=_cmd_lint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mtotrust`` command; return its exit code."""
    # An argument that is not valid UTF-8 arrives with surrogate escapes; echo it back escaped, never crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        args = _parser().parse_args(argv)
        code: int = args.run(args)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except MtoTrustError as exc:
        print(f"mtotrust: error: {exc}".replace("\n", " "), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into exit code 3, not a traceback
        print(f"mtotrust: internal error: {type(exc).__name__}: {exc}; please report it".replace("\n", " "),
              file=sys.stderr)
        return EXIT_INTERNAL
    return code
