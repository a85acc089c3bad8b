"""Exhaustive verification, the invariant catalogue, the reference evaluator and the report ``mtotrust lint`` prints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from strategies import BLOCK_HYPOTHESIS

from mtotrust import Policy, Snapshot, Trust
from mtotrust import _engine as engine_module
from mtotrust._resolve import resolve_address as real_resolve_address
from mtotrust._verify import INVARIANTS, Facts, Report, enumerate_space, reference_trust, verify

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "examples" / "bad_policy.toml"
GOOD = ROOT / "examples" / "policy.toml"


class TestBuiltInPolicies:
    """The shipped policies pass the whole catalogue, and the space is enumerated fast."""

    def test_default_is_sound_and_fast(self) -> None:
        """Policy.default() violates nothing; the whole space takes well under 30 s."""
        start = time.perf_counter()
        report = verify(Policy.default())
        assert time.perf_counter() - start < 30
        assert report.findings == ()
        assert report.ok
        assert report.cases > 5000
        assert report.decisions > 100_000
        assert report.checked == tuple(i.name for i in INVARIANTS)

    def test_classic_is_sound(self) -> None:
        """Policy.classic() violates nothing either."""
        assert verify(Policy.classic()).ok

    def test_example_policy_with_sample_snapshot(self) -> None:
        """examples/policy.toml holds on the space and on every address of the bundled sample."""
        report = verify(Policy.load(GOOD), Snapshot.sample())
        assert report.ok, report.format()
        assert report.cases > verify(Policy.load(GOOD)).cases


@pytest.fixture(name="bad_report", scope="module")
def _bad_report() -> Report:
    return verify(Policy.load(BAD))


class TestSeededBadPolicy:
    """examples/bad_policy.toml is caught with minimal counterexamples and explanations."""

    def test_findings(self, bad_report: Report) -> None:
        """Guests untagged and a non-monotonic label are reported; nothing else."""
        report = bad_report
        assert report.violated() == ("inactive_tenant_tagged", "guest_mail_tagged", "monotonic_label_rights")

    def test_counterexample_is_minimal_and_explained(self, bad_report: Report) -> None:
        """The counterexample is a plain synced member of a pending tenant, with the engine's explanation."""
        finding = bad_report.findings[0]
        assert finding.invariant == "inactive_tenant_tagged"
        assert finding.identity == "u00@pending-absent.example"
        assert finding.attributes.startswith("home=pending partner=absent objects=1 external=federated")
        assert finding.app == "mail (auth: dmarc_pass)"
        assert "tenant_pending" in finding.explanation
        assert "untagged" in finding.explanation

    def test_label_finding_contrasts_both_levels(self, bad_report: Report) -> None:
        """The monotonicity finding shows the higher and the lower trust's decisions."""
        finding = bad_report.findings[-1]
        assert "trust mto_member gets" in finding.detail
        assert finding.contrast is not None
        assert "at trust guest" in finding.contrast


class TestPolicyInvariants:
    """Each policy-level invariant is violated by the policy that breaks it."""

    @pytest.mark.parametrize(("data", "expected"), [
        ({"mail": {"require_authentication": False}}, "unauthenticated_mail_capped"),
        ({"mail": {"untagged_at": "external"}}, "unauthenticated_mail_tagged"),
        ({"dlp": {"inside_at": "guest"}}, "guest_outside"),
        ({"dlp": {"inside_at": "guest"}}, "inactive_tenant_outside"),
        ({"teams": {"chat": "untrusted"}}, "untrusted_gets_nothing"),
        ({"labels": {"L": {"untrusted": "Viewer"}}}, "untrusted_gets_nothing"),
        ({"labels": {"L": {"guest": ["EDIT"], "internal": ["VIEW"]}}}, "monotonic_label_rights"),
    ])
    def test_violated(self, data: dict[str, object], expected: str) -> None:
        """A policy that breaks the property is reported under the invariant's name."""
        assert expected in verify(Policy.from_data(data)).violated()

    def test_blocks_hold_everywhere(self) -> None:
        """Block entries (address, domain, wildcard, a local domain) are probed and hold."""
        policy = Policy.from_data({"overrides": {"block": ["ceo@partner.example", "evil.example",
                                                          "*.lookalike.example", "contoso.com"]}})
        _, cases = enumerate_space(policy)
        blocked = [c.identity for c in cases if c.facts is not None and c.facts.home == "blocked"]
        assert set(blocked) == {"ceo@partner.example", "blocked.user@evil.example",
                                "blocked.user@sub.lookalike.example", "blocked.user@lookalike.example",
                                "blocked.user@contoso.com"}
        assert verify(policy).ok


class TestDifferential:
    """The reference evaluator and the differential check catch a broken engine."""

    def test_reference_reads_the_rules(self) -> None:
        """A few points of the space, straight from the resolution rules (docs/concepts.md)."""
        assert reference_trust(Facts("active")) == Trust.MTO_MEMBER
        assert reference_trust(Facts("removed")) == Trust.GUEST
        assert reference_trust(Facts("active", enabled=None)) == Trust.EXTERNAL
        assert reference_trust(Facts("active", partner="false")) == Trust.GUEST
        assert reference_trust(Facts("active", partner="null")) == Trust.MTO_MEMBER
        assert reference_trust(Facts("active", tenant_id="mismatch")) == Trust.UNTRUSTED
        assert reference_trust(Facts("unknown", tenant_id="mismatch")) == Trust.GUEST
        assert reference_trust(Facts("local", objects=0)) == Trust.INTERNAL
        assert reference_trust(Facts("active"), blocked=True) == Trust.UNTRUSTED

    def test_broken_resolver_is_caught(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An engine that forgets the tenant state is caught by the catalogue and the reference."""
        def sloppy(snapshot: Snapshot, local: str, domain: str) -> object:
            resolution = real_resolve_address(snapshot, local, domain)
            if "tenant_pending" in resolution.reasons and resolution.trust == Trust.GUEST \
                    and "user_type_member" in resolution.reasons and "object_external" in resolution.reasons \
                    and "account_enabled" in resolution.reasons:
                return attrs.evolve(resolution, trust=Trust.MTO_MEMBER)
            return resolution

        monkeypatch.setattr(engine_module, "resolve_address", sloppy)
        violated = verify(Policy.default()).violated()
        assert {"inactive_tenant_capped", "mto_member_needs_evidence", "reference_agrees"} <= set(violated)


class TestReportOutput:
    """The report's text and JSON (what ``mtotrust lint`` prints), and a verifier that needs no extra."""

    def test_good_text(self) -> None:
        """A sound policy's report says all invariants hold."""
        report = verify(Policy.load(GOOD))
        assert report.format().endswith("all invariants hold.")
        assert all(line.startswith(("verified policy ", "ok   ", "all ")) for line in report.format().splitlines())

    def test_bad_text(self, bad_report: Report) -> None:
        """The seeded bad policy's report shows each failure with its counterexample."""
        out = bad_report.format()
        assert "FAIL guest_mail_tagged" in out
        assert "u00@pending-absent.example" in out
        assert out.endswith("3 invariant(s) violated.")

    def test_json(self) -> None:
        """to_dict is one JSON-ready document with the findings and their explanations."""
        report = verify(Policy.load(BAD), Snapshot.sample())
        data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
        assert data["ok"] is False
        assert [f["invariant"] for f in data["findings"]] == ["inactive_tenant_tagged", "guest_mail_tagged",
                                                               "monotonic_label_rights"]
        assert data["findings"][0]["explanation"]
        assert data["checked"] == [i.name for i in INVARIANTS]

    def test_works_without_hypothesis(self) -> None:
        """The verifier needs no extra: it runs with hypothesis unimportable."""
        code = (
            BLOCK_HYPOTHESIS +
            "from mtotrust import Policy\n"
            "from mtotrust._verify import verify\n"
            f"sys.exit(0 if verify(Policy.load({str(BAD)!r})).violated() else 5)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
