"""Tests of Contoso's trust policy (policy.toml, chosen in pytest.ini) against the bundled sample MTO."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtotrust import Policy, Snapshot, Trust, TrustEngine
from mtotrust.pytest_plugin import InvariantOutcome
from mtotrust.testing import (
    SnapshotBuilder,
    assert_allowed,
    assert_inside,
    assert_policy_sound,
    assert_rights,
    assert_tagged,
    assert_trust,
    strategies,
)

HERE = Path(__file__).parent
MX = "mx.contoso.com"


class TestDirectory:
    """How the sample directory resolves."""

    def test_mto_member_is_trusted(self, trust_engine: TrustEngine) -> None:
        """A synced member of Fabrikam (active in the MTO) is an MTO member."""
        assert_trust(trust_engine, "cameron@fabrikam.com", "mto_member")

    def test_removed_tenant_is_a_guest(self, trust_engine: TrustEngine) -> None:
        """Northwind left the MTO: its members fall back to guest."""
        assert_trust(trust_engine, "nora@northwindtraders.com", Trust.GUEST)

    def test_wrong_tenant_id_is_untrusted(self, trust_engine: TrustEngine) -> None:
        """Teams tells us the caller's tenant; a mismatch is a spoof."""
        assert_trust(trust_engine, "cameron@fabrikam.com", "untrusted",
                     tenant_id="44444444-4444-4444-8444-444444444444")


class TestApps:
    """What policy.toml decides for each app."""

    def test_authenticated_mto_mail_is_untagged(self, trust_engine: TrustEngine) -> None:
        """Mail from an MTO member, DMARC-passed at our boundary, carries no [External] tag."""
        assert_tagged(trust_engine, "cameron@fabrikam.com", f"{MX}; dmarc=pass header.from=fabrikam.com",
                      tagged=False)

    def test_unauthenticated_mail_is_tagged(self, trust_engine: TrustEngine) -> None:
        """Without authentication results, even an MTO member's mail is tagged."""
        assert_tagged(trust_engine, "cameron@fabrikam.com")

    def test_blocked_sender(self, trust_engine: TrustEngine) -> None:
        """overrides.block names the Fabrikam CEO: untrusted, whatever the directory says."""
        assert_trust(trust_engine, "ceo@fabrikam.com", "untrusted")

    def test_label_rights(self, trust_engine: TrustEngine) -> None:
        """Confidential: MTO members view, internal users co-author, guests get nothing."""
        assert_rights(trust_engine, "cameron@fabrikam.com", "Confidential", "Viewer")
        assert_rights(trust_engine, "megan@contoso.com", "Confidential", "Co-Author")
        assert_rights(trust_engine, "pat@fabrikam.com", "Confidential", [])

    def test_teams_and_dlp(self, trust_engine: TrustEngine) -> None:
        """MTO members may share files and count as inside for DLP; guests may not."""
        assert_allowed(trust_engine, "cameron@fabrikam.com", "file_sharing")
        assert_allowed(trust_engine, "pat@fabrikam.com", "file_sharing", allowed=False)
        assert_inside(trust_engine, ["megan@contoso.com", "cameron@fabrikam.com"])
        assert_inside(trust_engine, ["megan@contoso.com", "pat@fabrikam.com"], inside=False)


@pytest.mark.mtotrust(snapshot=SnapshotBuilder().tenant("litware", state="pending").synced_member(
    "li@litware.com"), policy="classic")
def test_marker_selects_snapshot_and_policy(trust_engine: TrustEngine, mto_policy: Policy) -> None:
    """The marker swaps in a hand-built directory and the classic policy for one test."""
    assert mto_policy == Policy.classic()
    assert_trust(trust_engine, "li@litware.com", "guest")


# mto_snapshot is immutable, so sharing it across generated inputs is safe: silence hypothesis' warning.
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=strategies.hostile_addresses())
def test_hostile_identities_are_untrusted(mto_snapshot: Snapshot, address: str) -> None:
    """No malformed identity is ever trusted (or raises)."""
    assert TrustEngine(mto_snapshot).resolve(address).trust == Trust.UNTRUSTED


@settings(max_examples=30, deadline=None)
@given(snapshot=strategies.snapshots(), data=st.data())
def test_policy_never_untags_guests(snapshot: Snapshot, data: st.DataObject) -> None:
    """On any directory, our policy tags mail from anyone below MTO member, however authenticated."""
    engine = TrustEngine(snapshot, Policy.load(HERE / "policy.toml"))
    address = data.draw(strategies.identities(snapshot))
    auth = data.draw(strategies.auth_results_headers(domain=address.rpartition("@")[2] or "x.example"))
    decision = engine.mail(address, auth)
    if decision.trust < Trust.MTO_MEMBER:
        assert decision.tag_external, engine.explain(decision)


def test_policy_is_sound(mto_policy: Policy, mto_snapshot: Snapshot) -> None:
    """Every invariant of the catalogue and of policy.toml holds for our policy, over the whole attribute space."""
    assert_policy_sound(mto_policy, mto_snapshot)


def test_bad_policy_is_rejected() -> None:
    """The seeded bad policy fails the verifier, naming what it gets wrong."""
    with pytest.raises(AssertionError, match="guest_mail_tagged"):
        assert_policy_sound(Policy.load(HERE / "bad_policy.toml"))


@pytest.mark.mtotrust(invariants=["policy.toml", "rules.py"])
def test_trust_rules(mto_invariant: InvariantOutcome) -> None:
    """Every invariant, the built-ins, policy.toml's and rules.py's, one item each: test_trust_rules[<name>].

    The plugin fails a violated one with its minimal counterexample before this body runs.
    """
    assert mto_invariant.holds
