"""Tests for TrustEngine: cache, hot swap, stats, explain, to_dict and the decision log."""



from __future__ import annotations

import datetime as dt
import io
import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import build, native, synced

from mtotrust import Decision, DecisionLog, Identity, IdentityLike, MailAuth, Policy, Trust, TrustEngine

SNAP = build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com")])
LABELS = Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}})


class TestCache:
    def test_hit_equals_miss(self):
        """A cached answer (an address no object carries) equals the first one and counts as a hit."""
        engine = TrustEngine(SNAP)
        first, second = engine.resolve("nobody@fabrikam.com"), engine.resolve("nobody@fabrikam.com")
        assert first == second
        assert (1, 1) == (engine.stats().cache_hits, engine.stats().cache_misses)

    def test_precomputed_answers(self):
        """An address an object carries is resolved once per snapshot, whatever its case or blanks."""
        engine = TrustEngine(SNAP, cache_size=0)
        first = engine.resolve("cameron@fabrikam.com")
        assert first is engine.resolve(" Cameron@FABRIKAM.com\t")
        assert (1, 0) == (engine.stats().precomputed_answers, engine.stats().cache_entries)

    def test_precomputed_answers_never_hold_misses(self):
        """Addresses no object carries are never kept as per-snapshot answers, so they cannot grow unbounded."""
        engine = TrustEngine(SNAP, cache_size=0)
        for i in range(100):
            engine.resolve(f"user{i}@fabrikam.com")
        assert 0 == engine.stats().precomputed_answers

    def test_cache_size_zero(self):
        """cache_size=0 disables caching and gives the same answers."""
        engine = TrustEngine(SNAP, cache_size=0)
        assert TrustEngine(SNAP).resolve("cameron@fabrikam.com") == engine.resolve("cameron@fabrikam.com")
        engine.resolve("cameron@fabrikam.com")
        assert (0, 0, 0) == (engine.stats().cache_hits, engine.stats().cache_misses,
                             engine.stats().cache_entries)

    def test_bounded(self):
        """The cache never holds more entries than cache_size."""
        engine = TrustEngine(SNAP, cache_size=3)
        for i in range(10):
            engine.resolve(f"user{i}@fabrikam.com")
        assert 3 == engine.stats().cache_entries

    @pytest.mark.parametrize("size", [-1, 1.5, "10"])
    def test_bad_cache_size(self, size):
        """A negative or non-int cache_size is rejected."""
        with pytest.raises(ValueError):
            TrustEngine(SNAP, cache_size=size)

    def test_bad_snapshot(self):
        """A snapshot that is not a Snapshot is a TypeError naming what to do."""
        with pytest.raises(TypeError, match="Snapshot.load"):
            TrustEngine("snapshot/")  # type: ignore[arg-type]


class TestUpdate:
    def test_new_snapshot_served(self):
        """After update(snapshot) the new directory answers, not the cached old one."""
        engine = TrustEngine(SNAP)
        assert Trust.MTO_MEMBER == engine.resolve("cameron@fabrikam.com").trust
        engine.update(SNAP.with_delta([{"value": [{"id": "u2", "accountEnabled": False}]}]))
        assert Trust.EXTERNAL == engine.resolve("cameron@fabrikam.com").trust

    def test_new_policy_served(self):
        """After update(policy=...) decisions follow the new policy."""
        engine = TrustEngine(SNAP)
        assert True is engine.dlp(["cameron@fabrikam.com"]).inside_organization
        engine.update(policy=Policy.classic())
        assert (False, Policy.classic().fingerprint) == (engine.dlp(["cameron@fabrikam.com"]).inside_organization,
                                                         engine.stats().policy_fingerprint)

    def test_both(self):
        """update(snapshot, policy=...) swaps both and keeps the other when one is omitted."""
        engine = TrustEngine(SNAP)
        other = build([])
        engine.update(other, policy=Policy.classic())
        engine.update(policy=Policy.default())
        assert (other, Policy.default().fingerprint) == (engine.snapshot, engine.policy.fingerprint)
        assert other.generation == engine.stats().snapshot_generation


class TestPinned:
    def test_view_keeps_its_state_across_update(self):
        """A pinned view answers from the snapshot and policy it was pinned on after the engine is updated."""
        engine = TrustEngine(SNAP)
        view = engine.pinned()
        engine.update(SNAP.with_delta([{"value": [{"id": "u2", "accountEnabled": False}]}]), policy=Policy.classic())
        pinned, current = view.dlp(["cameron@fabrikam.com"]), engine.dlp(["cameron@fabrikam.com"])
        assert (True, SNAP.id, Policy.default().fingerprint) == (pinned.inside_organization, pinned.snapshot_id,
                                                                 pinned.policy_fingerprint)
        assert (False, Policy.classic().fingerprint) == (current.inside_organization, current.policy_fingerprint)
        assert Trust.EXTERNAL == engine.resolve("cameron@fabrikam.com").trust

    def test_view_shares_statistics_and_cache(self):
        """Decisions and cache hits made through a view are the engine's: /metrics counts them."""
        engine = TrustEngine(SNAP)
        view = engine.pinned()
        view.resolve("nobody@fabrikam.com")
        engine.resolve("nobody@fabrikam.com")  # a hit: the view put it in the shared cache
        view.mail("x@example.org")
        stats = engine.stats()
        assert (1, 2, {"mail:tagged": 1}) == (stats.cache_hits, stats.cache_misses, stats.decisions)  # 2: x@

    def test_view_cannot_be_updated(self):
        """Updating a view is refused, naming what to do instead."""
        with pytest.raises(TypeError, match="update the engine it came from"):
            TrustEngine(SNAP).pinned().update(policy=Policy.classic())


class TestReport:
    def test_every_app_from_one_state(self):
        """report() gives every app's answer for one identity, each equal to the app's own call."""
        engine = TrustEngine(SNAP, LABELS)
        report = engine.report(Identity("Cameron@Fabrikam.com"), "mx.contoso.com; dmarc=pass header.from=fabrikam.com")
        mail = engine.mail("cameron@fabrikam.com", "mx.contoso.com; dmarc=pass header.from=fabrikam.com")
        assert ("Cameron@Fabrikam.com", "cameron@fabrikam.com", "mto_member", "u2") == (
            report["identity"], report["address"], report["trust"], report["user_id"])
        assert {"tag_external": mail.tag_external} == report["mail"]
        assert {"inside_organization": True} == report["dlp"]
        assert sorted(engine.label_rights("cameron@fabrikam.com", "L").rights) == report["labels"]["L"]
        assert engine.teams("cameron@fabrikam.com", "chat").allowed is report["teams"]["chat"]
        assert (SNAP.id, LABELS.fingerprint) == (report["snapshot_id"], report["policy_fingerprint"])
        assert ["snapshot_id", "policy_fingerprint"] == list(report)[-2:]


class TestStats:
    def test_decision_counters(self):
        """stats() counts decisions by app and outcome."""
        engine = TrustEngine(SNAP, LABELS)
        engine.mail("x@example.org")
        engine.mail("x@example.org")
        engine.dlp([])
        engine.teams("cameron@fabrikam.com", "chat")
        engine.label_rights("x@example.org", "L")
        assert {"mail:tagged": 2, "dlp:InOrganization": 1, "teams:allowed": 1, "labels:no_rights": 1} == \
            engine.stats().decisions


class TestExplain:
    @pytest.fixture(name="engine")
    def _engine(self):
        return TrustEngine(SNAP, LABELS)

    def test_resolution(self, engine):
        """A resolution's explanation names the address, the trust, the object and every reason."""
        text = engine.explain(engine.resolve("cameron@fabrikam.com"))
        assert "cameron@fabrikam.com is mto_member" in text and "u2" in text
        assert all(code in text for code in engine.resolve("cameron@fabrikam.com").reasons)

    def test_mail(self, engine):
        """A mail explanation says tagged and why."""
        text = engine.explain(engine.mail("cameron@fabrikam.com"))
        assert "tagged external" in text and "unauthenticated_capped" in text

    def test_dlp(self, engine):
        """A DLP explanation names the access scope and each recipient."""
        text = engine.explain(engine.dlp(["x@example.org", "megan@contoso.com"]))
        assert "NotInOrganization" in text and "x@example.org is external" in text and "megan@contoso.com" in text

    def test_label(self, engine):
        """A label explanation lists the rights granted."""
        assert "VIEW" in engine.explain(engine.label_rights("cameron@fabrikam.com", "L"))

    def test_teams(self, engine):
        """A Teams explanation names the action and the verdict."""
        assert "file_sharing: not allowed" in engine.explain(engine.teams("x@example.org", "file_sharing"))


class TestToDict:
    def test_every_decision_json_ready(self):
        """Every resolution and decision serialises to JSON with its contract fields."""
        engine = TrustEngine(SNAP, LABELS)
        decisions: list[Decision] = [
            engine.resolve(Identity("cameron@fabrikam.com", "t")), engine.mail("megan@contoso.com"),
            engine.dlp(["megan@contoso.com"]), engine.label_rights("cameron@fabrikam.com", "L"),
            engine.teams("bad", "chat")]
        loaded = [json.loads(json.dumps(d.to_dict())) for d in decisions]
        assert ("untrusted", True, "InOrganization", ["OBJMODEL", "REPLY", "REPLYALL", "VIEW", "VIEWRIGHTSDATA"],
                False) == (loaded[0]["trust"], loaded[1]["tag_external"], loaded[2]["access_scope"],
                           loaded[3]["rights"], loaded[4]["allowed"])


class TestDecisionLog:
    def test_hashed_by_default(self):
        """Log lines carry an HMAC of the identity, never the address, and the same salt gives the same hash."""
        first, second = io.StringIO(), io.StringIO()
        for stream in (first, second):
            with DecisionLog(stream, salt="s3cret") as log:
                TrustEngine(SNAP, decision_log=log).mail("cameron@fabrikam.com")
        line = json.loads(first.getvalue())
        assert "cameron" not in first.getvalue()
        assert line["identities"] == json.loads(second.getvalue())["identities"]
        assert ("mail", "tagged", "external") == (line["app"], line["outcome"], line["trust"])

    def test_salt_changes_hash(self):
        """Another salt gives another hash."""
        a, b = DecisionLog(io.StringIO(), salt="a"), DecisionLog(io.StringIO(), salt="b")
        assert a.identity("x@y.com") != b.identity("x@y.com")

    def test_plain_when_asked(self):
        """hash_identities=False writes the normalised address."""
        stream = io.StringIO()
        log = DecisionLog(stream, hash_identities=False)
        TrustEngine(SNAP, decision_log=log).dlp(["Cameron@Fabrikam.com", "megan@contoso.com"])
        log.flush()
        assert ["cameron@fabrikam.com", "megan@contoso.com"] == json.loads(stream.getvalue())["identities"]

    def test_one_line_per_decision(self, tmp_path):
        """A file log gets one JSON line per app decision."""
        log = DecisionLog(tmp_path / "log.jsonl")
        engine = TrustEngine(SNAP, LABELS, decision_log=log)
        engine.mail("a@b.com")
        engine.teams("a@b.com", "chat")
        engine.label_rights("a@b.com", "L")
        log.close()
        lines = (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()
        assert ["mail", "teams", "labels"] == [json.loads(line)["app"] for line in lines]

    def test_failing_stream_never_breaks_a_decision(self):
        """A stream that raises is counted; the decision is still returned."""

        class Broken(io.StringIO):
            def write(self, text):
                raise OSError("disk gone")

        log = DecisionLog(Broken())
        engine = TrustEngine(SNAP, decision_log=log)
        assert (True, True) == (engine.dlp(["megan@contoso.com"]).inside_organization,
                                engine.mail("x@example.org").tag_external)
        log.flush()
        assert 2 == log.errors


class TestDeltaInheritance:
    def test_untouched_answers_carry_over_and_touched_ones_do_not(self):
        """After update(snapshot.with_delta(...)), untouched answers are reused (stamped with the new snapshot's id)
        and changed ones recomputed."""
        engine = TrustEngine(SNAP, cache_size=0)
        megan = engine.resolve("megan@contoso.com")
        assert Trust.MTO_MEMBER == engine.resolve("cameron@fabrikam.com").trust
        derived = SNAP.with_delta([{"value": [{"id": "u2", "accountEnabled": False}]}])
        engine.update(derived)
        assert Trust.EXTERNAL == engine.resolve("cameron@fabrikam.com").trust
        assert attrs.evolve(megan, snapshot_id=derived.id) == engine.resolve("megan@contoso.com")

    def test_a_new_address_is_seen(self):
        """An address a delta adds to an object resolves to that object after the update."""
        engine = TrustEngine(SNAP, cache_size=0)
        assert engine.resolve("c2@fabrikam.com").user is None
        engine.update(SNAP.with_delta([{"value": [{"id": "u2", "otherMails": ["c2@fabrikam.com"]}]}]))
        user = engine.resolve("c2@fabrikam.com").user
        assert user is not None
        assert "u2" == user.id

    def test_no_inheritance_across_policies(self):
        """A new policy never reuses answers made under the old one (they carry the block list)."""
        engine = TrustEngine(SNAP, cache_size=0)
        engine.resolve("cameron@fabrikam.com")
        engine.update(SNAP.with_delta([{"value": []}]),
                      policy=Policy.from_data({"overrides": {"block": ["fabrikam.com"]}}))
        assert Trust.UNTRUSTED == engine.resolve("cameron@fabrikam.com").trust


class TestDecisionCache:
    def test_cached_decisions_equal_fresh_ones(self):
        """Teams and label decisions served from the cache equal those of an engine without one."""
        cached, fresh = TrustEngine(SNAP, LABELS), TrustEngine(SNAP, LABELS, cache_size=0)
        for _ in range(2):
            for who in ("cameron@fabrikam.com", "megan@contoso.com", "nobody@x.org", "bad"):
                assert fresh.teams(who, "presence") == cached.teams(who, "presence")
                assert fresh.label_rights(who, "L") == cached.label_rights(who, "L")

    def test_new_policy_is_never_answered_from_the_old_cache(self):
        """After update(policy=...) a cached Teams or label decision of the old policy is not served."""
        engine = TrustEngine(SNAP, LABELS)
        assert engine.teams("cameron@fabrikam.com", "presence").allowed
        assert engine.label_rights("cameron@fabrikam.com", "L").rights
        engine.update(policy=Policy.from_data({"teams": {"presence": "internal"}, "labels": {"L": {}}}))
        assert not engine.teams("cameron@fabrikam.com", "presence").allowed
        assert not engine.label_rights("cameron@fabrikam.com", "L").rights

    def test_stale_snapshot_is_never_answered_from_the_cache(self):
        """With snapshot.max_age set, decisions are not cached: staleness depends on the clock."""
        old = build([synced("u2", "cameron@fabrikam.com")], taken_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        engine = TrustEngine(old, Policy.from_data({"snapshot": {"max_age": "1h"}}))
        assert not engine.teams("cameron@fabrikam.com", "presence").allowed
        assert "snapshot_stale" in engine.teams("cameron@fabrikam.com", "presence").reasons

    def test_one_recipient_dlp_is_cached_and_counted(self):
        """A one-recipient DLP decision is answered from the cache the second time: equal, and one hit."""
        cached, fresh = TrustEngine(SNAP), TrustEngine(SNAP, cache_size=0)
        for who in ("cameron@fabrikam.com", "nobody@x.org", "bad", Identity("cameron@fabrikam.com", "t")):
            first, second = cached.dlp(who), cached.dlp(who)
            assert first is second and fresh.dlp(who) == first == fresh.dlp([who])
        assert 4 <= cached.stats().cache_hits
        assert {"dlp:InOrganization": 2, "dlp:NotInOrganization": 6} == cached.stats().decisions

    @given(st.lists(st.tuples(
        st.sampled_from(["cameron@fabrikam.com", "megan@contoso.com", "Megan@Contoso.com", "x@evil.example", "bad",
                         ""]),
        st.one_of(st.none(), st.builds(MailAuth, dmarc=st.sampled_from([None, "pass", "fail", "PASS", "bestguesspass"]),
                                       compauth=st.sampled_from([None, "pass", "fail"]),
                                       header_from=st.sampled_from([None, "contoso.com", "fabrikam.com", "x.org"]),
                                       smtp_auth=st.booleans()))), max_size=12))
    def test_mail_decisions_from_the_cache_equal_fresh_ones(self, asked: list[tuple[str, MailAuth | None]]) -> None:
        """Mail without authentication or with a MailAuth is kept; what is served equals a cache-less engine's."""
        cached, fresh = TrustEngine(SNAP), TrustEngine(SNAP, cache_size=0)
        for sender, auth in asked * 2:
            assert fresh.mail(sender, auth) == cached.mail(sender, auth)
        assert cached.stats().decisions == fresh.stats().decisions
        assert len(asked) <= cached.stats().cache_hits

    def test_mail_is_kept_only_for_no_authentication_or_a_mailauth(self):
        """The same MailAuth twice is one decision object; raw headers are decided again each time."""
        engine = TrustEngine(SNAP)
        auth = MailAuth(dmarc="pass", header_from="fabrikam.com")
        assert engine.mail("cameron@fabrikam.com", auth) is engine.mail("cameron@fabrikam.com", auth)
        assert engine.mail("cameron@fabrikam.com") is engine.mail("cameron@fabrikam.com")
        header = "mx.contoso.com; dmarc=pass header.from=fabrikam.com"
        assert engine.mail("cameron@fabrikam.com", header) is not engine.mail("cameron@fabrikam.com", header)
        engine.update(policy=Policy.classic())
        assert engine.mail("cameron@fabrikam.com", auth).policy_fingerprint == Policy.classic().fingerprint

    def test_a_mailauth_built_around_its_check_is_never_a_cache_key(self):
        """A MailAuth whose smtp_auth is not a bool (built past its check) is refused, tagged, cached or not."""

        class Hostile:
            def __eq__(self, other: object) -> bool:
                return True

            def __hash__(self) -> int:
                return hash(True)

        engine = TrustEngine(SNAP)
        good = MailAuth(smtp_auth=True)
        assert not engine.mail("megan@contoso.com", good).tag_external  # kept in the cache
        values: list[object] = [Hostile(), [], 1]
        for value in values:
            forged = MailAuth()
            object.__setattr__(forged, "smtp_auth", value)
            decision = engine.mail("megan@contoso.com", forged)
            assert decision.tag_external and "auth_given_invalid" in decision.reasons
        assert not engine.mail("megan@contoso.com", good).tag_external

    def test_a_failed_mail_decision_is_not_kept(self, monkeypatch):
        """A decision made after an internal error (tagged, fail closed) is not served again once it would pass."""
        from mtotrust import _apps

        engine = TrustEngine(SNAP)
        auth = MailAuth(dmarc="pass", header_from="fabrikam.com")
        real = _apps.mail

        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(_apps, "mail", broken)
        assert "internal_error" in engine.mail("cameron@fabrikam.com", auth).reasons
        monkeypatch.setattr(_apps, "mail", real)
        assert "internal_error" not in engine.mail("cameron@fabrikam.com", auth).reasons

    def test_a_cached_decision_is_not_served_once_the_snapshot_turns_stale(self, monkeypatch):
        """Decisions kept while the snapshot was fresh stop being served the moment it turns stale."""
        import time

        taken = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        engine = TrustEngine(build([synced("u2", "cameron@fabrikam.com")], taken_at=taken),
                             Policy.from_data({"snapshot": {"max_age": "1h"}}))
        now = taken.timestamp() + 60
        monkeypatch.setattr(time, "time", lambda: now)
        assert engine.dlp("cameron@fabrikam.com") is engine.dlp("cameron@fabrikam.com")
        assert engine.dlp("cameron@fabrikam.com").inside_organization
        assert engine.teams("cameron@fabrikam.com", "chat") is engine.teams("cameron@fabrikam.com", "chat")
        assert engine.mail("cameron@fabrikam.com") is engine.mail("cameron@fabrikam.com")
        now = taken.timestamp() + 3601
        assert "snapshot_stale" in engine.mail("cameron@fabrikam.com").resolution.reasons
        stale = engine.dlp("cameron@fabrikam.com")
        assert not stale.inside_organization and "snapshot_stale" in stale.recipients[0].reasons
        assert "snapshot_stale" in engine.teams("cameron@fabrikam.com", "chat").reasons


class TestResolveMany:
    def test_same_answers_in_order(self):
        """resolve_many answers like resolve, one result per identity, in the order given."""
        engine = TrustEngine(SNAP, cache_size=0)
        asked: list[IdentityLike] = ["cameron@fabrikam.com", " MEGAN@contoso.com",
                                     Identity("cameron@fabrikam.com", "x"), "nobody@fabrikam.com",
                                     "cameron@fabrikam.com"]
        assert [engine.resolve(i) for i in asked] == engine.resolve_many(asked)

    def test_bad_input_is_untrusted_not_an_error(self):
        """Wrong types, huge strings and hostile text resolve untrusted inside a batch; nothing raises."""
        engine = TrustEngine(SNAP)
        bad = [None, 42, ["a@b.com"], "x" * 100_000 + "@contoso.com", "a\u202e@contoso.com", "\ud800@contoso.com"]
        assert [Trust.UNTRUSTED] * len(bad) == [r.trust for r in engine.resolve_many(bad)]  # type: ignore[arg-type]

    def test_each_distinct_identity_resolved_once(self):
        """A batch with repeats resolves each distinct identity once (the same record comes back)."""
        engine = TrustEngine(SNAP, cache_size=0)
        first, again = engine.resolve_many(["nobody@fabrikam.com", "nobody@fabrikam.com"])
        assert first is again


class TestOrigin:
    """Every resolution and decision says what it was decided from: the snapshot's id and the policy's fingerprint."""

    def test_every_decision_carries_snapshot_id_and_fingerprint(self):
        """Resolutions and the four apps' decisions carry both, as attributes and in to_dict()."""
        engine = TrustEngine(SNAP, LABELS)
        decisions: list[Decision] = [engine.resolve("cameron@fabrikam.com"), engine.resolve("not-an-address"),
                     engine.resolve(Identity("cameron@fabrikam.com", tenant_id="x")),
                     engine.mail("cameron@fabrikam.com"), engine.dlp(["megan@contoso.com"]), engine.dlp([]),
                     engine.teams("cameron@fabrikam.com", "chat"), engine.label_rights("cameron@fabrikam.com", "L")]
        expected = (SNAP.id, LABELS.fingerprint)
        for decision in decisions:
            assert expected == (decision.snapshot_id, decision.policy_fingerprint), decision
            assert expected == (decision.to_dict()["snapshot_id"], decision.to_dict()["policy_fingerprint"])

    def test_failed_decisions_carry_them_too(self):
        """A mail or DLP decision that failed closed still names the snapshot and policy it failed under."""
        engine = TrustEngine(SNAP)

        class Exploding(str):
            __slots__ = ()

            def strip(self, *args: object) -> str:
                raise RuntimeError("boom")

            def __hash__(self) -> int:
                raise RuntimeError("boom")

        mail, dlp = engine.mail(Exploding("x@fabrikam.com")), engine.dlp([Exploding("x@fabrikam.com")])
        assert ("internal_error",) == mail.reasons == dlp.reasons
        assert {(SNAP.id, Policy.default().fingerprint)} == {(d.snapshot_id, d.policy_fingerprint)
                                                               for d in (mail, dlp)}

    def test_update_moves_the_origin(self):
        """After update() with a changed snapshot and policy, answers carry the new id and fingerprint."""
        engine = TrustEngine(SNAP)
        engine.resolve("cameron@fabrikam.com")
        derived = SNAP.with_delta([{"value": [{"id": "u2", "accountEnabled": False}]}])
        engine.update(derived, policy=LABELS)
        found = engine.resolve("cameron@fabrikam.com")
        assert (derived.id, LABELS.fingerprint) == (found.snapshot_id, found.policy_fingerprint)
        assert SNAP.id != derived.id

    def test_decision_log_records_the_origin(self):
        """The decision log records the snapshot id and the policy fingerprint, not a process-local number."""
        stream = io.StringIO()
        log = DecisionLog(stream, salt="s")
        TrustEngine(SNAP, LABELS, decision_log=log).teams("cameron@fabrikam.com", "chat")
        log.flush()
        line = json.loads(stream.getvalue())
        assert (SNAP.id, LABELS.fingerprint) == (line["snapshot_id"], line["policy_fingerprint"])
        assert "snapshot_generation" not in line


class TestOneKey:
    """The engine keys every lookup by the identity as given, so each repeat is one cache hit."""

    @pytest.mark.parametrize("identity", ["not-an-address", "nobody@fabrikam.com", " Cameron@FABRIKAM.com",
                                          "ｍegan@contoso.com", Identity("cameron@fabrikam.com", "x")])
    def test_a_repeat_is_one_hit(self, identity):
        """The second ask of an identity that is not a precomputed answer is one hit after one miss."""
        engine = TrustEngine(SNAP)
        first, second = engine.resolve(identity), engine.resolve(identity)
        stats = engine.stats()
        assert (first, 1, 1) == (second, stats.cache_hits, stats.cache_misses)

    def test_normal_form_of_an_indexed_address_is_no_cache_traffic(self):
        """An indexed address in normal form is a precomputed answer: neither a hit nor a miss of the cache."""
        engine = TrustEngine(SNAP)
        engine.resolve("cameron@fabrikam.com")
        engine.resolve("cameron@fabrikam.com")
        stats = engine.stats()
        assert (1, 0, 1) == (stats.cache_misses, stats.cache_hits, stats.precomputed_answers)

    def test_a_tuple_is_never_a_cache_key(self):
        """A tuple shaped like a cached Teams decision's key is resolved as the invalid identity it is."""
        engine = TrustEngine(SNAP)
        engine.teams("cameron@fabrikam.com", "chat")
        found = engine.resolve(("teams", "cameron@fabrikam.com", "chat"))  # type: ignore[arg-type]
        assert (Trust.UNTRUSTED, ("invalid_identity",)) == (found.trust, found.reasons)

    def test_stats_is_a_typed_record(self):
        """stats() returns an EngineStats with the snapshot's id and the policy's fingerprint."""
        from mtotrust._engine import EngineStats

        stats = TrustEngine(SNAP).stats()
        assert isinstance(stats, EngineStats)
        assert (SNAP.id, Policy.default().fingerprint) == (stats.snapshot_id, stats.policy_fingerprint)


class TestOneHomeForPolicyEffects:
    """The block list and snapshot.max_age apply the same on every public path."""

    BLOCKING = Policy.from_data({"overrides": {"block": ["fabrikam.com"]}, "snapshot": {"max_age": "1h"}})

    def test_resolve_function_applies_block_and_staleness(self):
        """mtotrust._resolve.resolve under a policy answers exactly as the engine does, block and staleness included."""
        from mtotrust._resolve import resolve

        old = build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com")],
                    taken_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        engine = TrustEngine(old, self.BLOCKING)
        for identity in ("cameron@fabrikam.com", "megan@contoso.com", "x@fabrikam.com"):
            assert engine.resolve(identity) == resolve(old, identity, self.BLOCKING)
        assert "blocked" in resolve(old, "cameron@fabrikam.com", self.BLOCKING).reasons
        assert "snapshot_stale" in resolve(old, "megan@contoso.com", self.BLOCKING).reasons


class TestMailMessage:
    """engine.mail_message: recorded, counted and bound to the engine's state like engine.mail."""

    BOUNDARY = Policy.from_data({"mail": {"trusted_authserv_ids": ["mx.contoso.com"]}})
    PASS = "mx.contoso.com; dmarc=pass header.from=fabrikam.com"

    def raw(self, sender="Cameron <cameron@fabrikam.com>"):
        return f"From: {sender}\r\nAuthentication-Results: {self.PASS}\r\nSubject: hi\r\n\r\nbody\r\n".encode()

    def test_same_as_mail(self):
        """The decision for a message equals engine.mail with its From address and Authentication-Results."""
        engine = TrustEngine(SNAP, self.BOUNDARY)
        assert (engine.mail("cameron@fabrikam.com", [self.PASS]), False) == (
            engine.mail_message(self.raw()), engine.mail_message(self.raw()).tag_external)

    def test_counted_like_mail(self):
        """mail_message decisions, the fail-closed ones included, count as mail decisions in stats()."""
        engine = TrustEngine(SNAP, self.BOUNDARY)
        engine.mail_message(self.raw())
        engine.mail_message(self.raw("a@x.com, b@x.com"))
        engine.mail_message(b"Subject: no From\r\n\r\n")
        engine.mail_message(None)  # type: ignore[arg-type]
        assert {"mail:tagged": 3, "mail:untagged": 1} == engine.stats().decisions

    def test_logged_like_mail(self):
        """Every mail_message decision writes one decision-log line for the mail app, with its reason."""
        stream = io.StringIO()
        log = DecisionLog(stream, hash_identities=False)
        engine = TrustEngine(SNAP, self.BOUNDARY, decision_log=log)
        engine.mail_message(self.raw())
        engine.mail_message(b"From: undisclosed-recipients:;\r\n\r\n")
        log.flush()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [("mail", "untagged"), ("mail", "tagged")] == [(line["app"], line["outcome"]) for line in lines]
        assert ["from_missing"] == lines[1]["reasons"]

    def test_fail_closed_decision_carries_current_state(self):
        """After update(), a from_ambiguous decision names the new snapshot and policy."""
        engine = TrustEngine(SNAP)
        engine.update(policy=self.BOUNDARY)
        decision = engine.mail_message(self.raw("a@x.com, b@x.com"))
        assert (SNAP.id, self.BOUNDARY.fingerprint, SNAP.id, self.BOUNDARY.fingerprint) == (
            decision.snapshot_id, decision.policy_fingerprint, decision.resolution.snapshot_id,
            decision.resolution.policy_fingerprint)

    def test_internal_error_logged_without_content(self, caplog):
        """An unreadable message is logged by exception type only and fails closed as internal_error."""
        engine = TrustEngine(SNAP, self.BOUNDARY)
        with caplog.at_level("ERROR", logger="mtotrust"):
            decision = engine.mail_message("From: secret@example.org\r\n\r\n")  # type: ignore[arg-type]
        assert (("internal_error",), True) == (decision.reasons, decision.tag_external)
        assert "TypeError" in caplog.text and "secret" not in caplog.text
