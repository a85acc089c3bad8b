"""``mtotrust demo``: resolve the sample identities of the bundled MTO and show every app's decision."""

from __future__ import annotations

import importlib.resources
import json
from typing import TYPE_CHECKING

from mtotrust import __version__
from mtotrust._engine import TrustEngine
from mtotrust._explain import failed_checks
from mtotrust._model import Identity, MailAuth, Resolution, Trust
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust.cli._common import EXIT_OK, load_policy, output, output_json

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Print the demo table (or ``--json``: one report per sample identity, with its ``why``)."""
    snapshot = Snapshot.sample()
    fingerprint = args.policy_fingerprint
    policy = load_policy(args.policy, fingerprint) if args.policy else _sample_policy(fingerprint)
    engine = TrustEngine(snapshot, policy)
    with importlib.resources.files("mtotrust").joinpath("sample", "demo.json").open(encoding="utf-8") as fh:
        demo = json.load(fh)["identities"]
    reports = []
    for item in demo:
        identity = Identity(item["identity"], item.get("tenant_id"))
        report = engine.report(identity, _demo_auth(engine.resolve(identity)))
        report["why"] = item["why"]
        reports.append(report)
    if args.json:
        output_json(reports)
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
    output(f"mtotrust {__version__} demo: the bundled sample MTO, seen from {snapshot.display_name}'s directory "
          f"({len(snapshot.users)} users, {len(snapshot.tenants)} MTO tenants).")
    legend = ", ".join(f"{_initials(n)} = {n}" for n in sorted(engine.policy.labels))
    output("Mail is assumed DMARC-authenticated for its From domain. TEAMS: actions allowed of 6. "
          f"RIGHTS: usage rights per label ({legend or 'no labels'}).\n")
    output(_table(rows))
    counts = {t.value: sum(r["trust"] == t.value for r in reports) for t in Trust}
    output("\n" + ", ".join(f"{n} {t}" for t, n in counts.items()) + ". Explain one: mtotrust check --explain ADDRESS")
    return EXIT_OK


def _sample_policy(fingerprint: str | None) -> Policy:
    with importlib.resources.as_file(importlib.resources.files("mtotrust") / "sample" / "policy.toml") as p:
        return Policy.load(p, expect_fingerprint=fingerprint)


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
