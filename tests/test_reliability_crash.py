"""Faults (issue 5): a writer killed with SIGKILL, damaged stores, a directory that stopped syncing, and a
decision log that cannot be written."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import hostile as h
import pytest

from mtotrust import DecisionLog, Identity, MailAuth, Policy, Snapshot, SnapshotError, Trust, TrustEngine
from mtotrust._policy import TEAMS_ACTIONS

# -- SIGKILL ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork (Linux)")
def test_sigkill_of_a_writer_a_hundred_times_never_loses_the_saved_store() -> None:
    report = h.kill_writer(kills=100)
    assert report.failures == []
    assert report.kills == 100
    assert report.survived == 100
    assert report.saves_completed > 0  # the kills landed both before and after complete saves
    assert report.leftover_temp_files == 0  # a save after the kills removed what the killed writers left


# -- damaged stores --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("store") / "s.sqlite"
    h.SAMPLE.save(path)
    return path.read_bytes()


def _load(tmp_path: Path, data: bytes, name: str, *, verify: bool) -> Snapshot:
    path = tmp_path / name
    path.write_bytes(data)
    return Snapshot.load(path, verify=verify)


@pytest.mark.parametrize("verify", [False, True])
def test_every_truncation_is_a_snapshot_error(tmp_path: Path, store: bytes, verify: bool) -> None:
    page = 4096
    cuts = sorted({0, 1, 15, 16, 17, 99, 100, 101, 511, *range(page, len(store), page),
                   *(p - 1 for p in range(page, len(store), page)), *(p + 7 for p in range(page, len(store), page)),
                   len(store) - 1})
    accepted = []
    for cut in cuts:
        try:
            _load(tmp_path, store[:cut], f"t{cut}.sqlite", verify=verify)
        except SnapshotError:
            continue
        accepted.append(cut)
    assert accepted == [], f"truncated stores loaded without error at lengths {accepted} of {len(store)}"


def test_zeroed_pages_are_detected_by_verify(tmp_path: Path, store: bytes) -> None:
    page = 4096
    accepted = []
    for start in range(page, len(store), page):
        data = store[:start] + b"\x00" * page + store[start + page:]
        try:
            _load(tmp_path, data, f"z{start}.sqlite", verify=True)
        except SnapshotError:
            continue
        accepted.append(start // page + 1)
    assert accepted == [], f"stores with zeroed page(s) {accepted} loaded with verify=True"


def test_random_damage_raises_snapshot_error_or_loads_a_whole_snapshot(tmp_path: Path, store: bytes) -> None:
    """Byte flips inside cell payloads are invisible to SQLite's checks; the contract is no other exception
    and never a half-loaded store (the user count is checked)."""
    rng = random.Random(3)
    for i in range(150):
        data = bytearray(store)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(100, len(data))
            data[pos:pos + 16] = rng.randbytes(16)
        try:
            snap = h.bounded(_load, tmp_path, bytes(data), f"r{i}.sqlite", verify=bool(i % 2))
        except SnapshotError:
            continue
        assert len(snap.users) == len(h.SAMPLE.users)
        assert TrustEngine(snap).mail("x@evil.example").tag_external


def test_tampered_store_is_refused(tmp_path: Path, store: bytes) -> None:
    for sql in ("DELETE FROM users WHERE rowid = 1", "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                "DELETE FROM meta WHERE key = 'schema_version'", "DROP TABLE users", "DELETE FROM meta"):
        path = tmp_path / "tampered.sqlite"
        path.write_bytes(store)
        conn = sqlite3.connect(path)
        conn.execute(sql)
        conn.commit()
        conn.close()
        with pytest.raises(SnapshotError):
            Snapshot.load(path)


def test_not_a_store(tmp_path: Path) -> None:
    for name, data in [("empty.sqlite", b""), ("text.sqlite", b"hello"), ("magic.sqlite", b"SQLite format 3\x00"),
                       ("junk.sqlite", b"SQLite format 3\x00" + os.urandom(8000))]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SnapshotError):
            Snapshot.load(tmp_path / name, verify=True)
    with pytest.raises(SnapshotError):
        Snapshot.load(tmp_path / "missing.sqlite")


# -- freshness -------------------------------------------------------------------------------------------------

SAMPLE_IDENTITIES: list[Identity | str] = ["megan@contoso.com", "cameron@fabrikam.com", "pat@fabrikam.com",
                     Identity("cameron@fabrikam.com", "22222222-2222-4222-8222-222222222222")]


def _aged(hours: float) -> Snapshot:
    docs = h.sample_documents()
    return Snapshot.from_documents(**docs, taken_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours))


def _policy(max_age: str | None) -> Policy:
    return Policy.from_data({"mail": {"trusted_authserv_ids": [h.TRUSTED_ID]}, "labels": h.LABELS,
                             "snapshot": {"max_age": max_age}})


def _every_decision(engine: TrustEngine, identity: Identity | str) -> list[tuple[str, Trust, tuple[str, ...]]]:
    address = identity.address if isinstance(identity, Identity) else identity
    auth = MailAuth(dmarc="pass", header_from=address.partition("@")[2])
    out = [("resolve", engine.resolve(identity).trust, engine.resolve(identity).reasons)]
    mail = engine.mail(identity, auth)
    out.append(("mail", mail.trust, mail.reasons))
    assert mail.tag_external == (mail.trust < Trust.MTO_MEMBER)
    dlp = engine.dlp([identity])
    out.append(("dlp", dlp.recipients[0].trust, dlp.recipients[0].reasons))
    assert dlp.inside_organization == (dlp.recipients[0].trust >= Trust.MTO_MEMBER)
    for action in TEAMS_ACTIONS:
        d = engine.teams(identity, action)
        out.append((f"teams.{action}", d.trust, d.reasons))
    for label in h.LABELS:
        ld = engine.label_rights(identity, label)
        out.append((f"labels.{label}", ld.trust, ld.reasons))
        if ld.trust <= Trust.EXTERNAL:
            assert ld.rights == frozenset()
    return out


@pytest.mark.parametrize("engine_cache", [0, 1000])
def test_stale_snapshot_caps_every_app_at_external(engine_cache: int) -> None:
    engine = TrustEngine(_aged(25), _policy("24h"), cache_size=engine_cache)
    for identity in SAMPLE_IDENTITIES:
        for app, trust, reasons in _every_decision(engine, identity):
            assert trust <= Trust.EXTERNAL, (identity, app, trust)
            if app in ("resolve", "dlp"):
                assert "snapshot_stale" in reasons, (identity, app, reasons)


def test_fresh_snapshot_is_not_capped() -> None:
    engine = TrustEngine(_aged(23), _policy("24h"))
    assert engine.resolve("megan@contoso.com").trust is Trust.INTERNAL
    assert engine.resolve("cameron@fabrikam.com").trust is Trust.MTO_MEMBER
    assert not engine.mail("cameron@fabrikam.com", MailAuth(dmarc="pass", header_from="fabrikam.com")).tag_external
    assert "snapshot_stale" not in engine.resolve("cameron@fabrikam.com").reasons
    assert TrustEngine(_aged(24 * 365), _policy(None)).resolve("megan@contoso.com").trust is Trust.INTERNAL


def test_staleness_is_checked_per_call_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    import time  # the engine reads the clock as time.time()

    snap = _aged(0)
    engine = TrustEngine(snap, _policy("1h"))
    assert engine.resolve("cameron@fabrikam.com").trust is Trust.MTO_MEMBER  # now cached
    later = snap.taken_at.timestamp() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    assert engine.resolve("cameron@fabrikam.com").trust is Trust.EXTERNAL
    assert engine.mail("cameron@fabrikam.com", MailAuth(dmarc="pass", header_from="fabrikam.com")).tag_external
    assert not engine.dlp(["cameron@fabrikam.com"]).inside_organization


def test_staleness_survives_the_store(tmp_path: Path) -> None:
    _aged(48).save(tmp_path / "old.sqlite")
    engine = TrustEngine(Snapshot.load(tmp_path / "old.sqlite", verify=True), _policy("24h"))
    assert engine.resolve("megan@contoso.com").trust is Trust.EXTERNAL


# -- decision log ----------------------------------------------------------------------------------------------

FIELDS = {"time", "decision_id", "app", "trust", "outcome", "reasons", "snapshot_id", "policy_fingerprint"}


def _logged(**kwargs: object) -> tuple[list[dict[str, Any]], TrustEngine]:
    stream = io.StringIO()
    log = DecisionLog(stream, **kwargs)  # type: ignore[arg-type]
    engine = TrustEngine(h.SAMPLE, h.POLICY, decision_log=log)
    engine.mail("cameron@fabrikam.com", "mx.contoso.com; dmarc=pass header.from=fabrikam.com")
    engine.dlp(["megan@contoso.com", "someone@example.org"])
    engine.teams("cameron@fabrikam.com", "chat")
    engine.label_rights("megan@contoso.com", "Confidential")
    engine.mail("megan@contoso.com\r\nBcc: x@evil.example")
    log.flush()
    return [json.loads(line) for line in stream.getvalue().splitlines()], engine


def test_one_json_line_per_decision_with_every_field() -> None:
    lines, engine = _logged(salt=b"deployment")
    assert [x["app"] for x in lines] == ["mail", "dlp", "teams", "labels", "mail"]
    for line in lines:
        assert FIELDS <= line.keys()
        assert line["snapshot_id"] == engine.snapshot.id
        assert line["policy_fingerprint"] == engine.policy.fingerprint
        assert isinstance(line["reasons"], list)
        assert line["reasons"]
    assert lines[0]["outcome"] == "untagged"
    assert lines[0]["trust"] == "mto_member"
    assert lines[1]["outcome"] == "NotInOrganization"
    assert len({x["decision_id"] for x in lines}) == len(lines)


def test_identities_are_hashed_by_default_and_the_salt_changes_the_hash() -> None:
    a, _ = _logged(salt=b"one")
    b, _ = _logged(salt=b"two")
    a2, _ = _logged(salt=b"one")
    text = json.dumps(a)
    assert "cameron" not in text
    assert "fabrikam" not in text
    assert "megan" not in text
    assert [x["identities"] for x in a] == [x["identities"] for x in a2]
    pairs = [(x, y) for la, lb in zip(a, b, strict=True)
             for x, y in zip(la["identities"], lb["identities"], strict=True)]
    assert all(x != y for x, y in pairs)
    unsalted, _ = _logged()
    assert "cameron" not in json.dumps(unsalted)


def test_plain_identities_only_when_asked_and_still_one_line() -> None:
    lines, _ = _logged(hash_identities=False)
    assert lines[0]["identities"] == ["cameron@fabrikam.com"]
    assert lines[-1]["identities"] == ["megan@contoso.com\r\nBcc: x@evil.example"]  # escaped, not split


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("stream", [_Broken(), io.StringIO()], ids=["raising", "closed"])
def test_a_failing_log_never_breaks_a_decision(stream: io.StringIO) -> None:
    if not isinstance(stream, _Broken):
        stream.close()
    log = DecisionLog(stream)
    engine = TrustEngine(h.SAMPLE, h.POLICY, decision_log=log)
    good = TrustEngine(h.SAMPLE, h.POLICY)
    auth = "mx.contoso.com; dmarc=pass header.from=fabrikam.com"
    assert engine.mail("cameron@fabrikam.com", auth) == good.mail("cameron@fabrikam.com", auth)
    assert engine.dlp(["cameron@fabrikam.com"]).inside_organization
    assert engine.teams("cameron@fabrikam.com", "presence").allowed
    assert engine.label_rights("megan@contoso.com", "Confidential").rights
    log.flush()
    assert log.errors == 4
