"""The ``mtotrust`` command: ``demo``, ``check``, ``lint``, the reports, ``replay``, ``sync``, ``filter``, ``serve``.

``main`` parses the command line and runs one sub-command. Each sub-command lives in its own module
(:mod:`~mtotrust.cli.demo`, :mod:`~mtotrust.cli.check`, :mod:`~mtotrust.cli.lint`, :mod:`~mtotrust.cli.sync`,
:mod:`~mtotrust.cli.filter`, :mod:`~mtotrust.cli.serve`, :mod:`~mtotrust.cli.explain`, :mod:`~mtotrust.cli.reports`),
imported only when that command runs, so ``mtotrust --help`` and ``mtotrust COMMAND --help`` cost little more than
``import mtotrust``.

Exit codes: 0 success; 1 the command ran and found problems; 2 bad usage or input, or the output cannot be written
(one line on stderr naming the problem, never a traceback); 3 internal error. A reader that stops reading (``|
head``) is not an error. Where ``--snapshot`` is omitted the bundled sample MTO is used, and stderr says so.

Identities, ``--auth`` and ``--tenant-id`` are read as the terminal typed them (:func:`~mtotrust.cli._common.os_text`):
under ``LC_ALL=C`` a non-ASCII identity is the same identity as under a UTF-8 locale.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

from mtotrust._version import __version__
from mtotrust.cli._common import UsageError, name_command, os_text, output, run_guarded

__all__ = ["main"]


class _Writer(Protocol):
    def write(self, text: str, /) -> object: ...


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")

    def _print_message(self, message: str, file: _Writer | None = None) -> None:
        # argparse drops an error writing --help or --version (it catches OSError): a full disk must be said.
        if message and file is sys.stdout:
            output(message, end="")
        elif message:
            (file or sys.stderr).write(message)


def _command(module: str) -> Callable[[argparse.Namespace], int]:
    """Return what runs a sub-command: ``mtotrust.cli.<module>`` is imported when it runs (never for ``--help``)."""

    def run(args: argparse.Namespace) -> int:
        code: int = importlib.import_module(f"mtotrust.cli.{module}").run(args)
        return code

    return run


def _parser() -> _Parser:
    parser = _Parser(prog="mtotrust", description="Decide how far to trust an external identity in a Microsoft "
                     "365 multi-tenant organization.")
    parser.add_argument("--version", action="version", version=f"mtotrust {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="resolve the sample identities of the bundled MTO and show every app's "
                          "decision")
    demo.add_argument("--policy", help="policy file (TOML or JSON); default: the sample's policy")
    _fingerprint_option(demo)
    demo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    demo.set_defaults(run=_command("demo"))

    check = sub.add_parser("check", help="resolve identities and show every app's decision",
                           description="Resolve each identity against the snapshot and show every app's decision. "
                           "Identities come from the arguments, then from --from (one per line).")
    check.add_argument("identities", nargs="*", metavar="IDENTITY", type=os_text, help="an address (mail sender, "
                       "recipient, Teams user)")
    check.add_argument("--from", dest="from_file", metavar="FILE", help="also read identities from FILE, one per "
                       "line ('-': standard input); blank lines and blanks around an identity are skipped")
    check.add_argument("--snapshot", help="snapshot folder or .sqlite store; default: the bundled sample")
    check.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
    _fingerprint_option(check)
    check.add_argument("--auth", action="append", metavar="HEADER", type=os_text, help="raw Authentication-Results "
                       "value; repeat in message order, topmost first")
    check.add_argument("--tenant-id", type=os_text, help="the home tenant id the app knows (as Teams does)")
    check.add_argument("--json", action="store_true", help="print a JSON array, one object per identity")
    check.add_argument("--explain", action="store_true", help="print the full explanation of each identity")
    check.set_defaults(run=_command("check"))

    lint = sub.add_parser("lint", help="validate a policy and verify it exhaustively against the invariant "
                          "catalogue (exit 1 on violations)")
    lint.add_argument("policy", metavar="POLICY", help="policy file (TOML or JSON)")
    _fingerprint_option(lint)
    lint.add_argument("--snapshot", help="also verify against this snapshot (folder or .sqlite); default: the "
                      "synthetic attribute space only")
    lint.add_argument("--invariants", action="append", metavar="MODULE.py", help="also check the @invariant "
                      "functions this Python file defines (repeat for more files)")
    lint.add_argument("--compare", metavar="OTHER", help="instead of checking invariants, list the decision "
                      "classes where POLICY differs from OTHER ('classic', 'default' or a policy file), one "
                      "counterexample each (exit 0)")
    lint.add_argument("--json", action="store_true", help="print findings as JSON")
    lint.set_defaults(run=_command("lint"))
    _report_parsers(sub)
    _replay_parser(sub)
    _sync_parser(sub)
    _filter_parser(sub)
    _serve_parser(sub)
    return parser


def _report_parsers(sub: argparse._SubParsersAction[_Parser]) -> None:
    explain = sub.add_parser("explain", help="explain step by step why an identity gets its trust and each app's "
                             "decision", description="The reason chain in plain language: every check in order "
                             "with the evidence it used and, for a negative answer, the first check that failed and "
                             "what would change it.")
    explain.add_argument("identity", metavar="IDENTITY", type=os_text, help="an address (mail sender, recipient, "
                         "Teams user)")
    explain.add_argument("--app", choices=("mail", "dlp", "teams", "labels"), help="explain this app's decision "
                         "only (default: the resolution and every app)")
    explain.add_argument("--snapshot", help="snapshot folder or .sqlite store; default: the bundled sample")
    explain.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
    _fingerprint_option(explain)
    explain.add_argument("--auth", action="append", metavar="HEADER", type=os_text, help="raw "
                         "Authentication-Results value for the mail decision; repeat in message order, topmost first")
    explain.add_argument("--tenant-id", type=os_text, help="the home tenant id the app knows (as Teams does)")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain.set_defaults(run=_command("explain"))

    audit = sub.add_parser("audit", help="report the directory's MTO health: stale synced users, guests, "
                           "ambiguous addresses, lookalike domains ...", description="A health report from the "
                           "snapshot alone: each finding with its severity, count, examples and fix. Exit 1 with "
                           "--fail-on when a finding is at or above that severity.")
    _report_options(audit)
    audit.add_argument("--fail-on", choices=("info", "low", "medium", "high"), metavar="SEVERITY",
                       help="exit 1 when a finding is at or above SEVERITY (info, low, medium, high); the MTO's "
                       "size within the limit is a figure, not a finding to fail on")
    audit.set_defaults(run=_command("reports"), report="audit")

    inventory = sub.add_parser("inventory", help="list every account synced from another tenant, with its source "
                               "tenant, MTO state and trust", description="Every account synced from another "
                               "tenant: its source tenant, the tenant's MTO state, the partner policy, its trust "
                               "and reason codes.")
    _report_options(inventory)
    inventory.add_argument("--csv", action="store_true", help="print the rows as CSV")
    inventory.set_defaults(run=_command("reports"), report="inventory")

    diff = sub.add_parser("diff", help="show how every app's decisions change between two policies",
                          description="For every app, how many identities of the directory change decision "
                          "between POLICY_A and POLICY_B, in which direction, with examples.")
    diff.add_argument("policy_a", metavar="POLICY_A", help="'classic', 'default' or a policy file")
    diff.add_argument("policy_b", metavar="POLICY_B", help="'classic', 'default' or a policy file")
    _report_options(diff, policy=False)
    diff.set_defaults(run=_command("reports"), report="diff")


def _replay_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    command = sub.add_parser("replay", help="decide past message traces again, each against the directory in force "
                             "when it was sent", description="Read message traces (Graph exchangeMessageTrace JSON, "
                             "Get-MessageTraceV2 CSV or JSON, the extended message-trace CSV), decide every message "
                             "and recipient against the newest snapshot taken at or before it was received, and write "
                             "the rows to Parquet. Needs the 'replay' extra.")
    command.add_argument("--traces", required=True, nargs="+", metavar="PATH", help="trace files to read")
    command.add_argument("--snapshot", required=True, nargs="+", metavar="PATH", help="snapshot folders or .sqlite "
                         "stores, the directory's history (each decides the rows received from its taken_at on)")
    command.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
    _fingerprint_option(command)
    command.add_argument("--out", required=True, metavar="PATH.parquet", help="where to write the decided rows (a "
                         "file; with --spark, a folder of Parquet part files)")
    command.add_argument("--spark", metavar="MASTER", help="decide on a local Spark (local, local[N], local[*]) "
                         "instead of in this process; needs the 'spark' extra and Java 17+")
    command.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting for "
                         "--spark (repeatable), such as spark.driver.memory=8g")
    command.add_argument("--json", action="store_true", help="print the summary as JSON")
    command.set_defaults(run=_command("replay"))


def _report_options(command: argparse.ArgumentParser, *, policy: bool = True) -> None:
    command.add_argument("--snapshot", help="snapshot folder or .sqlite store; default: the bundled sample")
    if policy:
        command.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
        _fingerprint_option(command)
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.add_argument("--html", metavar="FILE", help="also write the report as one self-contained HTML page")


def _serve_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    command = sub.add_parser("serve", help="run the AuthZEN decision service for add-ins and gateways",
                             description="An OpenID AuthZEN 1.0 decision point over HTTP: "
                             "/.well-known/authzen-configuration, /access/v1/evaluation(s), /v1/check, /healthz and "
                             "/metrics. Needs the 'serve' extra. SIGHUP reloads the policy and the snapshot; runs "
                             "until SIGTERM or SIGINT.")
    command.add_argument("--snapshot", help="snapshot folder or .sqlite store (a store is watched for new "
                         "generations); default: the bundled sample")
    command.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
    command.add_argument("--listen", default="127.0.0.1:8181", metavar="HOST:PORT",
                         help="where to listen (default: %(default)s; an address that is not loopback needs "
                         "--token-file)")
    command.add_argument("--token-file", metavar="FILE", help="require 'Authorization: Bearer TOKEN' on every "
                         "endpoint but /healthz; TOKEN is the file's first line")
    command.add_argument("--public-url", metavar="URL", help="the base URL clients reach the service at (behind a "
                         "reverse proxy), for the discovery document; default: from the request's Host")
    command.add_argument("--watch-every", type=float, default=30.0, metavar="SECONDS",
                         help="how often a --snapshot store is checked for a new generation (default: %(default)s)")
    command.add_argument("--allow-origin", action="append", metavar="ORIGIN", help="let a browser page from ORIGIN "
                         "call the service (CORS; an Outlook add-in's origin, such as https://addin.contoso.com); "
                         "repeat for more")
    command.add_argument("--decision-log", metavar="FILE", help="append one JSON line per decision to FILE "
                         "(created 0600), identities hashed with the salt in $MTOTRUST_LOG_SALT")
    command.add_argument("--access-log", action="store_true", help="log one line per request on stderr (method, "
                         "path, status, time, request id; never a body, so never an identity)")
    command.set_defaults(run=_command("serve"))


def _filter_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    command = sub.add_parser("filter", help="run the SMTP content filter that tags mail by MTO trust",
                             description="An SMTP server an MTA hands every message to (Postfix content_filter, or "
                             "a relay in front of Exchange Online): it decides, adds X-MTOTrust, tags the Subject "
                             "when the message is external, and relays it to --next-hop with the same envelope. "
                             "Needs the 'mailflow' extra. SIGHUP reloads the policy and the snapshot; runs until "
                             "SIGTERM or SIGINT.")
    command.add_argument("--listen", required=True, metavar="HOST:PORT", help="where the MTA connects")
    command.add_argument("--next-hop", required=True, metavar="HOST:PORT", help="where marked messages go (the "
                         "MTA's reinjection port)")
    command.add_argument("--snapshot", help="snapshot folder or .sqlite store (a store is watched for new "
                         "generations); default: the bundled sample")
    command.add_argument("--policy", help="policy file (TOML or JSON); default: Policy.default()")
    command.add_argument("--max-size", type=int, default=50 << 20, metavar="BYTES",
                         help="largest message accepted (552 above; advertised in SIZE; default: 50 MiB)")
    command.add_argument("--max-connections", type=int, default=100, metavar="N",
                         help="concurrent client connections (421 above; default: %(default)s)")
    command.add_argument("--watch-every", type=float, default=30.0, metavar="SECONDS",
                         help="how often a --snapshot store is checked for a new generation (default: %(default)s)")
    command.set_defaults(run=_command("filter"))


def _sync_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    sync = sub.add_parser("sync", help="pull the tenant's directory from Microsoft Graph into a store, then keep it "
                          "current with delta queries", description="Pull the tenant's directory from Microsoft Graph "
                          "into the SQLite store (created on the first run); later runs apply only the changes since "
                          "the last. Needs the 'sync' extra. Exit 0 synced; 1 Graph unreachable or throttling past "
                          "the caps (store unchanged); 2 bad usage, credentials, permissions or tenant mismatch.")
    sync.add_argument("--tenant", required=True, metavar="TENANT_ID", help="the tenant (directory) id to sync")
    sync.add_argument("--store", required=True, metavar="PATH.sqlite", help="the store to create or bring up to date")
    sync.add_argument("--graph-url", default="https://graph.microsoft.com", metavar="URL",
                      help="the Graph endpoint (default: %(default)s; a national cloud's, or a test server)")
    sync.add_argument("--client-id", metavar="ID", help="the app registration's application (client) id")
    secret = sync.add_mutually_exclusive_group()
    secret.add_argument("--certificate", metavar="PEM", help="with --client-id: the app's certificate and private "
                        "key (PEM file)")
    secret.add_argument("--client-secret-env", metavar="VAR", help="with --client-id: the environment variable "
                        "holding the app's client secret")
    secret.add_argument("--managed-identity", action="store_true", help="the Azure managed identity (with "
                        "--client-id: a user-assigned one)")
    secret.add_argument("--token-env", metavar="VAR", help="a Graph bearer token in this environment variable, used "
                        "as it is (e.g. from: az account get-access-token --resource https://graph.microsoft.com)")
    sync.add_argument("--full", action="store_true", help="read the whole directory again instead of the changes "
                      "(and forget an unfinished sync's pages)")
    sync.add_argument("--reconcile", action="store_true", help="a full pass that repairs drift (objects the delta "
                      "rounds missed) and lists what it repaired")
    sync.add_argument("--dry-run", action="store_true", help="say what would change; leave the store untouched")
    sync.add_argument("--max-attempts", type=int, default=8, metavar="N",
                      help="tries of one request before giving up (default: %(default)s)")
    sync.add_argument("--max-wait", type=float, default=600.0, metavar="SECONDS",
                      help="most time spent waiting on throttling and retries in one run (default: %(default)s)")
    sync.add_argument("--json", action="store_true", help="print the summary as JSON")
    sync.set_defaults(run=_command("sync"))


def _fingerprint_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--policy-fingerprint", metavar="FP", help="refuse (exit 2) a policy whose fingerprint is "
                         "not FP: the one mtotrust lint printed when the policy was reviewed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mtotrust`` command on ``argv`` (default: ``sys.argv[1:]``); return its exit code.

    ``--help`` and ``--version`` print and raise :exc:`SystemExit` (code 0), as :mod:`argparse` does.
    """
    # An argument that is not valid UTF-8 arrives with surrogate escapes; echo it back escaped, never crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")

    def body() -> int:
        args = _parser().parse_args(argv)
        name_command(args.command)
        code: int = args.run(args)
        return code

    return run_guarded(body, program=argv is None)
