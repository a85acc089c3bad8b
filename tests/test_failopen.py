"""Fail-open classes an adversarial review found, each pinned by the rule that closes it (not by one example).

The mail-authentication, invisible-character and store-integrity classes have their own test files
(test_mail_failopen.py, test_ignorables.py, test_store_integrity.py); snapshot freshness is in test_snapshot.py
(TestTakenAt).
"""

from __future__ import annotations

import json

import hostile as h
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import build, native, synced

from mtotrust import (
    Identity,
    LabelDecision,
    MailDecision,
    Policy,
    Snapshot,
    SnapshotError,
    TeamsDecision,
    Trust,
    TrustEngine,
)
from mtotrust._verify import verify
from mtotrust.testing import SnapshotBuilder

SAMPLE = Snapshot.sample()
EXT_NAME = "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com"  # the form admin portals show
HOST = "contoso.onmicrosoft.com"


class TestBlockByExtName:
    """An overrides.block entry matches the identity as written and the address an #EXT# name decodes to; an
    #EXT# entry blocks the home address it encodes too."""

    @pytest.mark.parametrize("entry", [EXT_NAME, EXT_NAME.upper(), "cameron@fabrikam.com", "fabrikam.com",
                                       "*.onmicrosoft.com", "contoso.onmicrosoft.com"])
    def test_each_form_of_entry_blocks_the_ext_name(self, entry):
        """The #EXT# name (any case), its home address, its home domain or its host blocks the #EXT# name."""
        engine = TrustEngine(SAMPLE, Policy.from_data({"overrides": {"block": [entry]}}))
        found = engine.resolve(EXT_NAME)
        assert (Trust.UNTRUSTED, "blocked") == (found.trust, found.reasons[-1])
        assert engine.mail(EXT_NAME).tag_external
        assert not engine.dlp([EXT_NAME]).inside_organization

    def test_ext_name_entry_does_not_block_others(self):
        """Blocking one #EXT# name leaves other members alone."""
        snap = (SnapshotBuilder().tenant("fabrikam").synced_member("cameron@fabrikam.com")
                .synced_member("ana@fabrikam.com").build())
        engine = TrustEngine(snap, Policy.from_data({"overrides": {"block": [EXT_NAME]}}))
        assert (Trust.UNTRUSTED, Trust.MTO_MEMBER, Trust.MTO_MEMBER) == (
            engine.resolve(EXT_NAME).trust, engine.resolve("ana@fabrikam.com").trust,
            engine.resolve("ana_fabrikam.com#EXT#@contoso.onmicrosoft.com").trust)

    def test_lint_holds_for_such_a_policy(self):
        """mtotrust lint of a policy blocking an #EXT# name and a host wildcard finds no violated invariant."""
        policy = Policy.from_data({"mail": {"trusted_authserv_ids": ["mx.contoso.com"]},
                                   "overrides": {"block": [EXT_NAME, "*.onmicrosoft.com"]}})
        assert () == verify(policy).violated()

    @settings(max_examples=40, deadline=None)
    @given(alias=st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), upper=st.booleans(),
           by_name=st.booleans())
    def test_property_blocking_either_name_blocks_both(self, alias, upper, by_name):
        """For any synced member, blocking its #EXT# name or its address makes both spellings untrusted."""
        address = f"{alias}@litware.com"
        snap = SnapshotBuilder().tenant("litware").synced_member(address).build()
        name = f"{alias}_litware.com#EXT#@{HOST}"
        entry = name.upper() if upper else name
        engine = TrustEngine(snap, Policy.from_data({"overrides": {"block": [entry if by_name else address]}}))
        assert (Trust.UNTRUSTED, Trust.UNTRUSTED) == (engine.resolve(name).trust, engine.resolve(address).trust)


class TestForeignExtUpn:
    """Only an #EXT# user principal name at a local verified domain is evidence that an object is external."""

    @pytest.mark.parametrize("upn", ["cam_fabrikam.com#EXT#@fabrikam.com", "cam_fabrikam.com#EXT#@contoso.com.evil",
                                     "cam_fabrikam.com#EXT#@fabrikam.onmicrosoft.com"])
    def test_foreign_ext_upn_proves_nothing(self, upn):
        """A native object whose UPN is an #EXT# name at a foreign host is not external: at most external trust."""
        snap = build([native("u1", "cam@fabrikam.com", userPrincipalName=upn, creationType=None, identities=[])])
        found = TrustEngine(snap).resolve("cam@fabrikam.com")
        assert (Trust.EXTERNAL, True) == (found.trust, "object_not_external" in found.reasons)
        assert not snap.is_external(snap.users["u1"])

    def test_local_ext_upn_is_evidence(self):
        """The same object with its #EXT# name at the local initial domain is external."""
        snap = build([native("u1", "cam@fabrikam.com", userPrincipalName="cam_fabrikam.com#EXT#@" + HOST,
                             creationType=None, identities=[])])
        assert snap.is_external(snap.users["u1"])


class TestDeltaPathsAreNeverSilentlyIgnored:
    """A delta is applied, or refused naming the path: never skipped."""

    def test_removal_page_given_as_a_file_is_applied(self, tmp_path):
        """with_delta of one page file applies it: a removal removes the user."""
        page = tmp_path / "0001.json"
        page.write_text(json.dumps({"value": [{"id": "u1", "@removed": {"reason": "deleted"}}]}))
        snap = build([synced("u1", "a@fabrikam.com")])
        assert Trust.EXTERNAL == TrustEngine(snap.with_delta(page)).resolve("a@fabrikam.com").trust

    @pytest.mark.parametrize("folder", ["users", "delta"])
    def test_page_in_another_case_is_refused_by_load(self, tmp_path, folder):
        """Snapshot.load refuses users/0009.JSON or delta/0009.JSON naming it, instead of skipping it."""
        SnapshotBuilder().tenant("litware").synced_member("li@litware.com").write(tmp_path)
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "0009.JSON").write_text(json.dumps({"value": []}))
        with pytest.raises(SnapshotError, match=r"0009\.JSON"):
            Snapshot.load(tmp_path)

    @pytest.mark.parametrize("name", ["*.json", "no/such/folder", "page.txt"])
    def test_glob_missing_or_other_file_is_refused(self, tmp_path, name):
        """A glob, a missing folder or a file that is not a .json page is a SnapshotError naming it."""
        (tmp_path / "page.txt").write_text("{}")
        with pytest.raises(SnapshotError, match="neither a folder of delta pages"):
            build([]).with_delta(tmp_path / name)


class TestOneStatePerDecision:
    """Every decision reads the engine's state once: no answer mixes two snapshots."""

    def test_dlp_never_mixes_two_states_under_concurrent_updates(self):
        """Under a thread swapping snapshots, every DLP answer is outside (each state has one recipient outside)
        and names the snapshot its recipients were resolved against (30,000 calls; the script runs 5M)."""
        report = h.dlp_mix(30_000)
        assert (0, 30_000) == (report.mixed, report.calls)
        assert report.swaps > 0

    def test_each_app_decision_names_one_snapshot(self):
        """Mail, Teams and label decisions carry the id of the snapshot their resolution came from."""
        a, b = h.dlp_states()
        engine = TrustEngine(a, Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}}))
        for snap in (a, b, a):
            engine.update(snap)
            decisions: list[MailDecision | TeamsDecision | LabelDecision] = [
                engine.mail("cameron@fabrikam.com"), engine.teams("cameron@fabrikam.com", "chat"),
                engine.label_rights("cameron@fabrikam.com", "L")]
            assert {snap.id} == {d.snapshot_id for d in decisions} | {d.resolution.snapshot_id for d in decisions}


class TestAnswersStayBounded:
    """Per-snapshot answers hold only canonical forms; every other spelling goes through the bounded cache."""

    def test_forged_ext_spellings_add_no_permanent_answer(self):
        """5,000 spellings of one #EXT# name keep at most the canonical answers, even with the cache off."""
        engine = TrustEngine(SAMPLE, cache_size=0)
        canonical = engine.resolve(EXT_NAME.lower())
        names = list(h.forged_ext_names(5000))
        answers = {engine.resolve(name).address for name in names}
        assert {"cameron@fabrikam.com"} == answers
        assert engine.stats().precomputed_answers <= 2
        assert canonical == engine.resolve(EXT_NAME.lower())

    def test_with_a_cache_they_are_bounded_by_its_size(self):
        """With a cache of 100 entries, 2,000 spellings leave at most 100 entries and a couple of answers."""
        engine = TrustEngine(SAMPLE, cache_size=100)
        for name in h.forged_ext_names(2000):
            engine.resolve(name)
        stats = engine.stats()
        assert (stats.cache_entries <= 100, stats.precomputed_answers <= 2) == (True, True)

    def test_the_answer_is_the_same_for_every_spelling(self):
        """Keeping a spelling out of the answers changes no decision: it resolves like the canonical name."""
        engine = TrustEngine(SAMPLE, cache_size=0)
        expected = engine.resolve(EXT_NAME)
        for name in h.forged_ext_names(50):
            found = engine.resolve(name)
            assert (expected.trust, expected.address, expected.user) == (found.trust, found.address, found.user)


class TestGeneratedVariants:
    """The generated variants scripts/reliability.py runs in full: none fails open."""

    def test_variants_of_each_class_stay_at_their_cap(self):
        """Default-ignorable insertions, forged #EXT# names under a block, foreign #EXT# hosts: all capped."""
        report = h.class_variants(limit=300)
        report.assert_clean()
        assert report.tried > 1000


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr")


class _HostileStr(str):
    __slots__ = ()

    def __hash__(self) -> int:
        raise ValueError("hash")

    def __eq__(self, other: object) -> bool:
        raise ValueError("eq")


class TestReviewFindings:
    """What a review of this change found, each pinned: no path raises trust or breaks "never raises"."""

    def test_model_copy_with_an_update_recomputes_the_block_list(self):
        """Policy.model_copy(update=...) is validated anew: its block list and fingerprint follow the update."""
        from mtotrust._policy import OverridesPolicy

        base = Policy.default()
        blocked = base.model_copy(update={"overrides": OverridesPolicy(block=["fabrikam.com"])})
        assert (("domain", "fabrikam.com"),) == blocked.block_entries
        assert base.fingerprint != blocked.fingerprint
        assert Trust.UNTRUSTED == TrustEngine(SAMPLE, blocked).resolve("cameron@fabrikam.com").trust

    @pytest.mark.parametrize("identity", [_BadRepr(), Identity(_BadRepr())])  # type: ignore[arg-type]
    def test_objects_whose_repr_raises_never_raise_and_gain_nothing(self, identity):
        """An identity whose repr raises is answered, untrusted, by every method."""
        engine = TrustEngine(SAMPLE, Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}}))
        assert Trust.UNTRUSTED == engine.resolve(identity).trust
        assert engine.mail(identity).tag_external
        assert not engine.dlp([identity]).inside_organization
        assert not engine.teams(identity, "chat").allowed
        assert frozenset() == engine.label_rights(identity, "L").rights
        assert [Trust.UNTRUSTED] == [r.trust for r in engine.resolve_many([identity])]

    @pytest.mark.parametrize("wrap", [_HostileStr, lambda text: Identity(_HostileStr(text))])
    def test_str_subclass_whose_hash_raises_is_answered_like_its_text(self, wrap):
        """A str subclass whose hash and equality raise is never a cache key and is answered like the plain text."""
        engine = TrustEngine(SAMPLE, Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}}))
        identity = wrap("cameron@fabrikam.com")
        expected = engine.resolve("cameron@fabrikam.com").trust
        assert [expected] * 3 == [engine.resolve(identity).trust, engine.resolve(identity).trust,
                                  engine.resolve_many([identity])[0].trust]
        plain = "cameron@fabrikam.com"
        assert (engine.mail(plain).tag_external, engine.dlp([plain]).inside_organization,
                engine.teams(plain, "chat").allowed) == (
            engine.mail(identity).tag_external, engine.dlp([identity]).inside_organization,
            engine.teams(identity, "chat").allowed)

    def test_hostile_action_or_label_is_a_policy_error(self):
        """A str subclass whose equality raises, as a Teams action or label, is a PolicyError, not its exception."""
        from mtotrust import PolicyError

        engine = TrustEngine(SAMPLE, Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}}))
        with pytest.raises(PolicyError):
            engine.teams("cameron@fabrikam.com", _HostileStr("chat"))
        with pytest.raises(PolicyError):
            engine.label_rights("cameron@fabrikam.com", _HostileStr("L"))

    @pytest.mark.parametrize("recipients", [b"", bytearray(), {}, {"megan@contoso.com": 1}, 42])
    def test_dlp_of_something_that_is_no_list_fails_closed(self, recipients):
        """Bytes, a mapping or a number are not recipients: NotInOrganization with internal_error, no raise."""
        decision = TrustEngine(SAMPLE).dlp(recipients)
        assert (False, ("internal_error",)) == (decision.inside_organization, decision.reasons)

    def test_dlp_of_a_used_up_iterator_fails_closed(self):
        """An iterator that yields nothing (maybe consumed already) is not 'no recipients, inside'."""
        engine = TrustEngine(SAMPLE)
        recipients = iter(["megan@contoso.com"])
        assert engine.dlp(recipients).inside_organization
        assert (False, ("internal_error",)) == (engine.dlp(recipients).inside_organization,
                                                engine.dlp(recipients).reasons)
        assert engine.dlp([]).inside_organization  # an empty list still means nothing is shared
