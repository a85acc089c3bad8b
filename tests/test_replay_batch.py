"""mtotrust.replay: a trace batch decided row for row as the single-message API decides it, and over time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import build, native, synced

from mtotrust import MailAuth, Policy, Snapshot, TrustEngine
from mtotrust.replay import OUTPUT_SCHEMA, TRACE_SCHEMA, SnapshotHistory, evaluate_batch

SAMPLE = Snapshot.sample()
ADDRESSES = sorted(SAMPLE.addresses())
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WHEN = T0 + dt.timedelta(hours=1)

HEADERS = [
    "mx.contoso.com; spf=pass smtp.mailfrom=fabrikam.com; dmarc=pass action=none header.from=fabrikam.com",
    "spf=fail (sender IP is 192.0.2.1) smtp.mailfrom=contoso.com; dmarc=fail action=quarantine "
    "header.from=contoso.com; compauth=fail reason=000",
    "dmarc=pass header.from=contoso.com; compauth=pass reason=100",
    "",
]
addresses = st.one_of(st.sampled_from(ADDRESSES), st.sampled_from(["", "  MEGAN@contoso.com ", "x@evil.example"]),
                      st.emails(), st.text(max_size=12), st.none())
auths = st.one_of(
    st.tuples(st.none(), st.none()),
    st.tuples(st.lists(st.one_of(st.sampled_from(HEADERS), st.text(max_size=30)), max_size=3), st.none()),
    st.tuples(st.none(), st.sampled_from(["pass", "fail", "none", "PASS", "bestguesspass", "softfail", ""])),
    st.tuples(st.lists(st.sampled_from(HEADERS), max_size=2), st.sampled_from(["pass", "fail"])),
)

Drawn = tuple[str | None, str | None, tuple[list[str] | None, str | None]]


def row(sender: str | None, recipient: str | None, *, received: dt.datetime = WHEN,
        results: list[str] | None = None, dmarc: str | None = None, message_id: str = "<m@x>") -> dict[str, Any]:
    """Return one trace row as a TRACE_SCHEMA dict."""
    return {"message_id": message_id, "received": received, "sender": sender, "recipient": recipient,
            "direction": None, "authentication_results": results, "dmarc": dmarc}


def batch_of(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """Return the rows as a TRACE_SCHEMA record batch."""
    return pa.RecordBatch.from_pylist(rows, schema=TRACE_SCHEMA)


def expected(engine: TrustEngine, given_row: dict[str, Any]) -> dict[str, Any]:
    """Return the output row the single-message API gives for one trace row."""
    sender, recipient = given_row["sender"] or "", given_row["recipient"] or ""
    results, dmarc = given_row["authentication_results"], given_row["dmarc"]
    auth: list[str] | MailAuth | None = None
    source = "absent"
    if results is not None:
        auth, source = results, "authentication_results"
    elif dmarc is not None:
        resolution = engine.resolve(sender)
        domain = resolution.identity.rpartition("@")[2] if resolution.address is not None else None
        auth, source = MailAuth(dmarc=dmarc, header_from=domain), "trace_dmarc"
    mail = engine.mail(sender, auth)
    return {**given_row, "sender_trust": mail.trust.value, "tag_external": mail.tag_external,
            "authenticated": mail.authenticated, "recipient_trust": engine.resolve(recipient).trust.value,
            "recipient_inside": engine.dlp(recipient).inside_organization, "reasons": list(mail.reasons),
            "auth_source": source, "before_first_snapshot": False, "snapshot_id": mail.snapshot_id,
            "policy_fingerprint": mail.policy_fingerprint}


class TestEvaluateBatch:
    @given(st.lists(st.tuples(addresses, addresses, auths), max_size=30))
    def test_every_row_is_the_single_message_answer(self, drawn: list[Drawn]) -> None:
        """Each output row equals engine.mail / resolve / dlp for its row, and says where authentication came from."""
        rows = [row(s, r, results=a, dmarc=d, message_id=f"<{i}@x>") for i, (s, r, (a, d)) in enumerate(drawn)]
        engine = TrustEngine(SAMPLE)
        out = evaluate_batch(batch_of(rows), engine)
        assert OUTPUT_SCHEMA == out.schema
        assert [expected(engine, r) for r in rows] == out.to_pylist()

    def test_absent_authentication_is_reported_and_tags_what_the_policy_requires_it_for(self) -> None:
        """Without Authentication-Results an internal sender is tagged (default policy), and the row says why."""
        out = evaluate_batch(batch_of([row("megan.bowen@contoso.com", "x@evil.example")]), TrustEngine(SAMPLE))
        got = out.to_pylist()[0]
        assert ("absent", True, False) == (got["auth_source"], got["tag_external"], got["authenticated"])
        assert "auth_missing" in got["reasons"]

    def test_empty_batch(self) -> None:
        """An empty batch gives an empty OUTPUT_SCHEMA batch."""
        out = evaluate_batch(batch_of([]), TrustEngine(SAMPLE))
        assert (0, OUTPUT_SCHEMA) == (out.num_rows, out.schema)

    def test_nulls_pass_through_and_null_addresses_fail_closed(self) -> None:
        """Null direction, authentication and dmarc stay null; a null sender or recipient is the invalid address."""
        out = evaluate_batch(batch_of([row(None, None)]), TrustEngine(SAMPLE)).to_pylist()[0]
        assert (None, None, None, None, None) == (out["sender"], out["recipient"], out["direction"],
                                                 out["authentication_results"], out["dmarc"])
        assert (True, False, "absent") == (out["tag_external"], out["recipient_inside"], out["auth_source"])

    def test_one_state_per_batch(self) -> None:
        """Every row carries the engine's snapshot id and policy fingerprint."""
        engine = TrustEngine(SAMPLE, Policy.classic())
        out = evaluate_batch(batch_of([row(a, a) for a in ADDRESSES[:5]]), engine)
        assert {SAMPLE.id} == set(out.column("snapshot_id").to_pylist())
        assert {Policy.classic().fingerprint} == set(out.column("policy_fingerprint").to_pylist())

    def test_columns_in_any_order(self) -> None:
        """The trace columns may come in any order; the output is in OUTPUT_SCHEMA order."""
        batch = batch_of([row(ADDRESSES[0], ADDRESSES[1])])
        shuffled = batch.select(list(reversed(TRACE_SCHEMA.names)))
        assert evaluate_batch(batch, TrustEngine(SAMPLE)) == evaluate_batch(shuffled, TrustEngine(SAMPLE))


class TestWrongInput:
    def good(self) -> pa.RecordBatch:
        """Return a valid one-row batch."""
        return batch_of([row("a@contoso.com", "b@contoso.com")])

    @pytest.mark.parametrize(("change", "words"), [
        (lambda b: b.drop_columns(["dmarc"]), ["'dmarc'", "TRACE_SCHEMA"]),
        (lambda b: b.append_column("subject", pa.array(["hi"])), ["'subject'", "drop it"]),
        (lambda b: b.set_column(1, "received", b.column("received").cast(pa.timestamp("ns", tz="UTC"))),
         ["'received'", "timestamp[ns, tz=UTC]", "batch.cast(TRACE_SCHEMA)"]),
        (lambda b: b.set_column(2, "sender", pa.array([1])), ["'sender'", "int64", "read_traces"]),
        (lambda b: b.set_column(0, "message_id", pa.array([None], pa.string())), ["'message_id'", "nulls"]),
    ])
    def test_a_wrong_schema_names_the_column_and_the_fix(self, change: Any, words: list[str]) -> None:
        """A batch that is not TRACE_SCHEMA is a ValueError naming the column and how to fix it."""
        with pytest.raises(ValueError, match="column") as caught:
            evaluate_batch(change(self.good()), TrustEngine(SAMPLE))
        assert all(w in str(caught.value) for w in words), str(caught.value)

    def test_not_a_batch_or_not_an_engine(self) -> None:
        """A table or a non-engine is a TypeError."""
        with pytest.raises(TypeError, match="RecordBatch"):
            evaluate_batch(pa.Table.from_batches([self.good()]), TrustEngine(SAMPLE))
        with pytest.raises(TypeError, match="TrustEngine"):
            evaluate_batch(self.good(), SAMPLE)  # type: ignore[arg-type]


BASE = build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com"),
              synced("u3", "ana@fabrikam.com")], taken_at=T0)
S0 = BASE
S1 = BASE.with_delta([{"value": [{"id": "u2", "accountEnabled": False}]}], taken_at=T0 + dt.timedelta(days=1))
S2 = S1.with_delta([{"value": [{"id": "u3", "accountEnabled": False}]}], taken_at=T0 + dt.timedelta(days=2))
PEOPLE = ["megan@contoso.com", "cameron@fabrikam.com", "ana@fabrikam.com", "x@evil.example"]


class TestSnapshotHistory:
    def history(self) -> SnapshotHistory:
        """Return the three-snapshot history, given out of order."""
        return SnapshotHistory([S2, S0, S1], Policy.default())

    def test_the_snapshots_differ(self) -> None:
        """The three snapshots are distinct and the history holds them oldest first."""
        assert 3 == len({S0.id, S1.id, S2.id})
        assert [S0, S1, S2] == self.history().snapshots

    def test_each_row_is_decided_against_the_snapshot_in_force(self) -> None:
        """At a taken_at, between two, after the newest, and before the oldest (flagged, against the oldest)."""
        second = dt.timedelta(microseconds=1)
        times = [S1.taken_at, S2.taken_at + dt.timedelta(days=30), S0.taken_at - dt.timedelta(days=1),
                 S0.taken_at, S1.taken_at - second, S2.taken_at, S2.taken_at - second, S0.taken_at - second]
        in_force = [S1, S2, S0, S0, S0, S2, S1, S0]
        before = [False, False, True, False, False, False, False, True]
        rows = [row(PEOPLE[i % 4], PEOPLE[(i + 1) % 4], received=t, message_id=f"<{i}@x>")
                for i, t in enumerate(times)]
        out = self.history().evaluate(batch_of(rows))
        assert OUTPUT_SCHEMA == out.schema
        want = [{**expected(TrustEngine(s), r), "before_first_snapshot": b}
                for r, s, b in zip(rows, in_force, before, strict=True)]
        assert want == out.to_pylist()

    @given(st.lists(st.tuples(st.sampled_from(PEOPLE), st.sampled_from(PEOPLE),
                              st.integers(-2 * 86400, 4 * 86400)), max_size=25))
    def test_any_times_in_input_order(self, drawn: list[tuple[str, str, int]]) -> None:
        """For any received times the output keeps the input order and each row its snapshot in force."""
        rows = [row(s, r, received=T0 + dt.timedelta(seconds=t), message_id=f"<{i}@x>")
                for i, (s, r, t) in enumerate(drawn)]
        out = self.history().evaluate(batch_of(rows))
        snapshots = [S0, S1, S2]
        want = []
        for r in rows:
            taken = [s for s in snapshots if s.taken_at <= r["received"]]
            want.append({**expected(TrustEngine(taken[-1] if taken else S0), r), "before_first_snapshot": not taken})
        assert want == out.to_pylist()

    def test_empty_batch(self) -> None:
        """An empty batch gives an empty OUTPUT_SCHEMA batch."""
        out = self.history().evaluate(batch_of([]))
        assert (0, OUTPUT_SCHEMA) == (out.num_rows, out.schema)

    def test_no_snapshots(self) -> None:
        """A history needs a snapshot."""
        with pytest.raises(ValueError, match="at least one"):
            SnapshotHistory([], Policy.default())

    def test_a_wrong_schema_is_refused(self) -> None:
        """The history checks the batch as evaluate_batch does."""
        with pytest.raises(ValueError, match="'dmarc'"):
            self.history().evaluate(batch_of([row("a@b.c", "d@e.f")]).drop_columns(["dmarc"]))
