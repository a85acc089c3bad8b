"""``mtotrust sync`` against the Graph-protocol test server: what a real tenant's admin relies on.

The client under test is the real one (httpx over loopback); the server (:class:`mtotrust.testing.graph.FakeGraph`)
answers as Graph does. The reference for every synced store is the same directory loaded as a snapshot folder:
same ``Snapshot.id``, same resolutions. Faults and crashes are in ``test_sync_faults.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtotrust import Snapshot, SnapshotError, TrustEngine
from mtotrust.sync import GraphAccessError, GraphUnavailableError, SyncReport, sync, watch
from mtotrust.sync._run import SELECT
from mtotrust.testing import SnapshotBuilder
from mtotrust.testing.graph import FakeGraph, RecordedRequest

USERS_DELTA = "/v1.0/users/delta"
LOOKUP = "/v1.0/tenantRelationships/findTenantInformationByDomainName"


class Tokens:
    """A token source that hands out the server's current token and counts refreshes."""

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        self.refreshes = 0

    def token(self, *, refresh: bool = False) -> str:
        self.refreshes += refresh
        return self.graph.token


def contoso() -> SnapshotBuilder:
    """A directory where every tenant domain is named by an external object, plus one unknown guest domain."""
    return (SnapshotBuilder()
            .member("megan@contoso.com").shared_mailbox("info@contoso.com")
            .tenant("fabrikam", state="active", partner=True).synced_member("cameron@fabrikam.com")
            .synced_member("dana@fabrikam.com").guest("gary@fabrikam.com")
            .tenant("litware", state="pending").synced_member("lee@litware.com")
            .tenant("adatum", in_mto=False).guest("ada@adatum.com")
            .guest("sam@unknown-domain.example"))


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[FakeGraph]:
    """The test server holding ``contoso()``, in pages of two objects."""
    with FakeGraph.from_folder(contoso().write(tmp_path / "source"), page_size=2) as server:
        yield server


def run(graph: FakeGraph, store: Path, **options: Any) -> SyncReport:
    """One sync of ``store`` from ``graph`` (never really sleeping)."""
    tenant = Snapshot.load(store).tenant_id if store.exists() else contoso().local_tenant_id
    return sync(store, tenant=tenant, tokens=Tokens(graph), graph_url=graph.url, sleep=lambda _: None, **options)


def named_domains(users: list[dict[str, Any]]) -> set[str]:
    """The domains external objects name, by a rule written independently of the sync: an invited object, an
    ``ExternalAzureAD`` identity or an ``#EXT#`` name is external; its mail, otherMails, smtp proxies and the
    ``alias_domain#EXT#`` part of its name name domains."""
    found = set()
    for user in users:
        upn = user.get("userPrincipalName") or ""
        if not (user.get("creationType") == "Invitation" or "#EXT#" in upn
                or any(i.get("issuer") == "ExternalAzureAD" for i in user.get("identities") or [])):
            continue
        addresses = [user.get("mail") or "", *(user.get("otherMails") or []),
                     *(p.partition(":")[2] for p in user.get("proxyAddresses") or [] if p.lower().startswith("smtp:"))]
        found |= {a.rpartition("@")[2].lower() for a in addresses if "@" in a}
        if "#EXT#" in upn:
            found.add(upn.partition("#EXT#")[0].rpartition("_")[2].lower())
    return found


def folder_of(graph: FakeGraph, tmp_path: Path) -> Snapshot:
    """The reference: the server's current directory written as a snapshot folder, whose ``domains.json`` holds
    the local domains and those the directory's external objects name (what a sync maps), loaded."""
    target = tmp_path / f"folder{len(list(tmp_path.iterdir()))}"
    graph.write_folder(target)
    users = [u for page in sorted((target / "users").glob("*.json")) for u in json.loads(page.read_text())["value"]]
    local = {d["name"] for d in json.loads((target / "organization.json").read_text())["value"][0]["verifiedDomains"]}
    domains = json.loads((target / "domains.json").read_text())
    domains["value"] = [r for r in domains["value"] if r["domainName"] in named_domains(users) | local]
    (target / "domains.json").write_text(json.dumps(domains))
    return Snapshot.load(target)


def answers(snap: Snapshot) -> dict[str, Any]:
    """Every resolution of every address the snapshot indexes."""
    engine = TrustEngine(snap)
    return {a: (r.trust, r.reasons, r.user.id if r.user else None)
            for a in sorted(snap.addresses()) for r in [engine.resolve(a)]}


def users_requests(graph: FakeGraph) -> list[RecordedRequest]:
    return [r for r in graph.requests if r.path == USERS_DELTA]


class TestFullThenDelta:
    """A full sync, then delta syncs, give exactly the snapshot a folder of the same directory gives."""

    def test_full_sync_is_the_folder(self, graph: FakeGraph, tmp_path: Path) -> None:
        """The first sync creates a store with the folder's id and resolutions, and reports every object added."""
        store = tmp_path / "contoso.sqlite"
        report = run(graph, store)
        synced, expected = Snapshot.load(store), folder_of(graph, tmp_path)
        assert expected.id == synced.id == report.snapshot_id
        assert answers(expected) == answers(synced)
        assert (True, len(expected.users), len(expected.users), 0, 0) == (
            report.full, report.users, report.added, report.changed, report.removed)
        assert len(users_requests(graph)) == report.pages > 1

    def test_delta_sync_applies_the_changes(self, graph: FakeGraph, tmp_path: Path) -> None:
        """After changes on the server, a delta sync reads only them, counts them and matches the folder again."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        ids = {u["userPrincipalName"].split("@")[0]: uid for uid, u in graph.users.items()}
        graph.update_user(ids["dana_fabrikam.com#EXT#"], accountEnabled=False)
        graph.remove_user(ids["lee_litware.com#EXT#"], reason="changed")
        graph.remove_user(ids["megan"], reason="deleted")
        graph.put_user({"id": "new-1", "userPrincipalName": "nia@contoso.com", "mail": "nia@contoso.com",
                        "userType": "Member", "accountEnabled": True})
        graph.update_user(ids["info"], displayName="only a display name")  # changes no stored record
        before = len(graph.requests)
        report = run(graph, store)
        assert (False, 1, 1, 2) == (report.full, report.added, report.changed, report.removed)
        synced, expected = Snapshot.load(store), folder_of(graph, tmp_path)
        assert expected.id == synced.id == report.snapshot_id
        assert answers(expected) == answers(synced)
        first = next(r for r in graph.requests[before:] if r.path == USERS_DELTA)
        assert "$deltatoken" in first.query and "$skiptoken" not in first.query

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
    @given(data=st.data())
    def test_any_changes_any_paging(self, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
        """Whatever changes happen between syncs and however Graph pages them, the store is the folder."""
        root = tmp_path_factory.mktemp("prop")
        page_size = data.draw(st.integers(1, 5), label="page_size")
        with FakeGraph.from_folder(contoso().write(root / "source"), page_size=page_size) as graph:
            store = root / "s.sqlite"
            for _round in range(data.draw(st.integers(1, 3), label="rounds")):
                for _ in range(data.draw(st.integers(0, 4), label="changes")):
                    ids = sorted(graph.users)
                    op = data.draw(st.sampled_from(("update", "remove", "put")))
                    if op == "put" or not ids:
                        n = len(graph.requests)
                        graph.put_user({"id": f"p{n}-{_round}", "mail": f"p{n}@contoso.com", "userType": "Member",
                                        "userPrincipalName": f"p{n}@contoso.com", "accountEnabled": True})
                    elif op == "update":
                        uid = data.draw(st.sampled_from(ids))
                        graph.update_user(uid, accountEnabled=data.draw(st.sampled_from((True, False, None))))
                    else:
                        graph.remove_user(data.draw(st.sampled_from(ids)),
                                          reason=data.draw(st.sampled_from(("changed", "deleted"))))
                run(graph, store)
            assert folder_of(graph, root).id == Snapshot.load(store).id

    def test_nothing_changed_keeps_the_id(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A sync that finds no change keeps the store's id; only taken_at moves on."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        first = Snapshot.load(store)
        report = run(graph, store)
        again = Snapshot.load(store)
        assert (first.id, 0, 0, 0) == (again.id, report.added, report.changed, report.removed)
        assert again.taken_at > first.taken_at


class TestRequests:
    """The requests are the documented five, with the documented headers and ``$select``."""

    def test_each_run_asks_the_five_requests(self, graph: FakeGraph, tmp_path: Path) -> None:
        """Every run fetches organization, MTO tenants and partners anew; the users delta starts with $select."""
        store = tmp_path / "contoso.sqlite"
        for _ in range(2):
            start = len(graph.requests)
            run(graph, store)
            paths = [r.path for r in graph.requests[start:]]
            first_three = list(dict.fromkeys(paths))[:3]
            assert first_three == ["/v1.0/organization", "/v1.0/tenantRelationships/multiTenantOrganization/tenants",
                                   "/v1.0/policies/crossTenantAccessPolicy/partners"]
            assert set(paths) - {USERS_DELTA} == {*first_three, *(p for p in paths if p.startswith(LOOKUP))}
        assert SELECT == users_requests(graph)[0].query["$select"]
        assert SELECT.split(",") == ["id", "userPrincipalName", "mail", "otherMails", "proxyAddresses", "userType",
                                     "creationType", "accountEnabled", "identities"]

    def test_headers_on_every_request(self, graph: FakeGraph, tmp_path: Path) -> None:
        """Every request carries the bearer token, low throttle priority and a client-request-id."""
        run(graph, tmp_path / "contoso.sqlite")
        assert graph.requests
        for request in graph.requests:
            assert request.headers["authorization"] == f"Bearer {graph.token}"
            assert request.headers["x-ms-throttle-priority"] == "low"
            assert request.headers["client-request-id"]

    def test_domain_lookups(self, graph: FakeGraph, tmp_path: Path) -> None:
        """Each external domain is looked up once; a 404 is remembered; a new domain is looked up by a delta;
        only --reconcile looks them all up again."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)

        def looked_up(start: int) -> list[str]:
            return sorted(r.path.split("'")[1] for r in graph.requests[start:] if r.path.startswith(LOOKUP))

        assert ["adatum.com", "fabrikam.com", "litware.com", "unknown-domain.example"] == looked_up(0)
        snap = Snapshot.load(store)
        assert "unknown-domain.example" not in snap.domain_tenants
        assert ["unknown-domain.example"] == json.loads(snap.metadata["sync.no_tenant"])
        start = len(graph.requests)
        graph.put_user({"id": "g2", "userPrincipalName": "sue_unknown-domain.example#EXT#@contoso.onmicrosoft.com",
                        "mail": "sue@unknown-domain.example", "userType": "Guest", "creationType": "Invitation"})
        graph.put_user({"id": "g3", "userPrincipalName": "tom_tailspin.example#EXT#@contoso.onmicrosoft.com",
                        "mail": "tom@tailspin.example", "userType": "Guest", "creationType": "Invitation"})
        run(graph, store)
        assert ["tailspin.example"] == looked_up(start)
        start = len(graph.requests)
        run(graph, store, full=True)
        assert [] == looked_up(start)  # a full round keeps the map and the remembered 404s
        start = len(graph.requests)
        run(graph, store, reconcile=True)
        assert len(looked_up(start)) == 5  # --reconcile maps every domain anew


class TestModes:
    """``--dry-run`` and ``--reconcile``."""

    def test_dry_run_leaves_the_store(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A dry run reports what a real run then does, and leaves the store's bytes (or its absence) alone."""
        store = tmp_path / "contoso.sqlite"
        dry = run(graph, store, dry_run=True)
        assert not store.exists() and [] == [p.name for p in tmp_path.iterdir() if p.name != "source"
                                             and not p.name.startswith("folder")]
        real = run(graph, store)
        assert dry.to_dict() | {"elapsed_seconds": 0, "requests": 0} == \
            real.to_dict() | {"elapsed_seconds": 0, "requests": 0}
        graph.remove_user(sorted(graph.users)[0])
        before = store.read_bytes()
        dry = run(graph, store, dry_run=True)
        assert (1, True) == (dry.removed, dry.dry_run)
        assert before == store.read_bytes()

    def test_reconcile_repairs_drift(self, graph: FakeGraph, tmp_path: Path) -> None:
        """An object the store holds but Graph no longer has (a missed removal) is removed and reported."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        snap = Snapshot.load(store)
        phantom = {"id": "phantom", "mail": "ghost@fabrikam.com", "userType": "Member", "accountEnabled": True,
                   "userPrincipalName": "ghost_fabrikam.com#EXT#@contoso.onmicrosoft.com", "creationType": "Invitation"}
        snap.with_delta([{"value": [phantom]}]).save(store, metadata=snap.metadata)
        assert run(graph, store).removed == 0  # the delta rounds cannot see it
        report = run(graph, store, reconcile=True)
        assert (True, 1, ("phantom",)) == (report.full, report.removed, report.repaired)
        assert folder_of(graph, tmp_path).id == Snapshot.load(store).id


class TestLinks:
    """Links are followed only to the host of ``--graph-url``."""

    def test_delta_link_elsewhere_is_never_kept(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A last page whose deltaLink points at another host fails the run: no store keeps a link the next run
        would have to refuse, and nothing is sent there."""
        graph.page_size = 100  # one page: its deltaLink is the one that would be stored
        graph.fault("elsewhere", host="http://192.0.2.1:9")
        store = tmp_path / "contoso.sqlite"
        with pytest.raises(GraphUnavailableError, match="another host"):
            run(graph, store)
        assert not store.exists()
        run(graph, store)
        assert Snapshot.load(store).metadata["sync.delta_link"].startswith(graph.url)


    def test_a_failure_before_any_page_leaves_no_file(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A run refused before it read a users page leaves no journal beside the store (nothing to resume)."""
        graph.fault("status", path="/v1.0/organization", status=403, code="Authorization_RequestDenied")
        store = tmp_path / "out" / "contoso.sqlite"
        store.parent.mkdir()
        with pytest.raises(GraphAccessError, match=r"Organization\.Read\.All"):
            run(graph, store)
        assert [] == list(store.parent.iterdir())


class TestJournal:
    """What a failed run leaves for the next one."""

    def test_a_bad_page_is_never_resumed(self, graph: FakeGraph, tmp_path: Path) -> None:
        """An object Graph sends malformed fails the run without being kept: once Graph sends it right, the next
        run succeeds."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        bad = sorted(graph.users)[0]
        graph.update_user(bad, userPrincipalName=123)
        with pytest.raises(GraphUnavailableError, match="not valid.*userPrincipalName"):  # exit 1: Graph's fault
            run(graph, store)
        graph.update_user(bad, userPrincipalName="fixed@contoso.com")
        run(graph, store)
        assert folder_of(graph, tmp_path).id == Snapshot.load(store).id

    def test_a_failed_resync_is_resumed(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A full resync (after Graph refused the stored link) that fails half way goes on, in the next run, from
        the page it reached, instead of starting again."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        graph.expire_tokens("gone")
        graph.fault("drop", times=3, skip=3)  # the resync's third page: 1 refused link, then pages 1 and 2
        with pytest.raises(GraphUnavailableError):
            run(graph, store, max_attempts=3)
        start = len(graph.requests)
        report = run(graph, store)
        asked = [r for r in graph.requests[start:] if r.path == USERS_DELTA]
        assert report.full and "$skiptoken" in asked[0].query  # on from the failed page, not the stored link
        assert not any("$deltatoken" in r.query for r in asked)
        assert folder_of(graph, tmp_path).id == Snapshot.load(store).id

    def test_the_fetching_thread_ends_with_the_run(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A run stopped by its caller (progress raising) leaves no fetching thread, and its pages for the next."""
        import threading

        def stop(done: int, _total: int, _what: str) -> None:
            if done == 2:
                raise KeyboardInterrupt

        store = tmp_path / "contoso.sqlite"
        with pytest.raises(KeyboardInterrupt):
            run(graph, store, progress=stop)
        deadline = time.monotonic() + 10
        while any(t.name == "mtotrust-sync-fetch" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(t.name == "mtotrust-sync-fetch" for t in threading.enumerate())
        start = len(graph.requests)
        run(graph, store)
        assert "$skiptoken" in next(r for r in graph.requests[start:] if r.path == USERS_DELTA).query

    def test_taken_at_is_when_the_last_page_was_read(self, graph: FakeGraph, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        """A run that had every page but failed to save: the next one commits them with the time they were read."""
        store = tmp_path / "contoso.sqlite"

        def full_disk(*_args: Any, **_kwargs: Any) -> None:
            raise SnapshotError("the disk is full")

        with monkeypatch.context() as patched:
            patched.setattr(Snapshot, "save", full_disk)
            with pytest.raises(SnapshotError, match="disk is full"):
                run(graph, store)
        failed_at = time.time()
        time.sleep(0.05)
        start = len(graph.requests)
        run(graph, store)
        assert USERS_DELTA not in [r.path for r in graph.requests[start:]]  # nothing fetched again
        assert Snapshot.load(store).taken_at.timestamp() <= failed_at


class TestStoreMetadata:
    """What the store keeps beside the directory."""

    def test_delta_link_and_log(self, graph: FakeGraph, tmp_path: Path) -> None:
        """The store keeps the delta link (used by the next run), when it was read, and a log of the runs."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        run(graph, store)
        meta = Snapshot.load(store).metadata
        assert meta["sync.delta_link"].startswith(f"{graph.url}{USERS_DELTA}?")
        assert "$deltatoken=" in meta["sync.delta_link"]
        log = json.loads(meta["sync.log"])
        assert [True, False] == [entry["full"] for entry in log]
        assert {"at", *SyncReport("", False, 0, 0, 0, 0, 0, 0, 0, 0, 0).to_dict()} == set(log[0])


class TestCommand:
    """``mtotrust sync`` as an admin runs it."""

    @pytest.mark.parametrize(("options", "named"), [
        (["--tenant", "contoso.onmicrosoft.com"], "--tenant 'contoso.onmicrosoft.com'"),
        (["--tenant", "0c0c0c0c-0000-4000-8000-00000000000١"], "is not a tenant id"),  # an Arabic-Indic 1
        (["--graph-url", "ftp://graph.example"], "ftp://graph.example"),
        (["--max-attempts", "0"], "--max-attempts"),
        (["--max-wait", "-1"], "--max-wait"),
        (["--max-wait", "nan"], "--max-wait"),
    ])
    def test_bad_options(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         options: list[str], named: str) -> None:
        """Each bad option is exit 2 with one stderr line naming it; no store or journal is created."""
        from mtotrust.cli import main

        monkeypatch.setenv("T", "token")
        argv = {"--tenant": contoso().local_tenant_id, "--store": str(tmp_path / "s.sqlite"),
                "--graph-url": "http://127.0.0.1:9", "--token-env": "T"}
        for option, value in zip(options[::2], options[1::2], strict=True):
            argv[option] = value
        assert 2 == main(["sync", *[x for kv in argv.items() for x in kv]])
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err and err.count("\n") == 1
        assert [] == list(tmp_path.iterdir())

    def test_json_summary(self, graph: FakeGraph, tmp_path: Path) -> None:
        """``--json`` prints exactly the documented keys, and ``check --snapshot STORE`` then uses the store."""
        store = tmp_path / "contoso.sqlite"
        env = {**os.environ, "GRAPH_TOKEN": graph.token}
        argv = [sys.executable, "-m", "mtotrust", "sync", "--tenant", contoso().local_tenant_id.upper(), "--store",
                str(store), "--graph-url", graph.url + "/", "--token-env", "GRAPH_TOKEN", "--json"]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)
        assert 0 == done.returncode, done.stderr
        summary = json.loads(done.stdout)
        assert ["snapshot_id", "full", "users", "added", "changed", "removed", "pages", "requests", "retries",
                "throttled_seconds", "elapsed_seconds"] == list(summary)
        assert (summary["snapshot_id"], True) == (Snapshot.load(store).id, summary["full"])
        check = subprocess.run([sys.executable, "-m", "mtotrust", "check", "--snapshot", str(store), "--json",
                                "cameron@fabrikam.com"], capture_output=True, text=True, check=False, timeout=120)
        assert 0 == check.returncode, check.stderr
        assert "mto_member" == json.loads(check.stdout)[0]["trust"]

    @pytest.mark.parametrize(("extra", "message"), [
        ([], "--client-id"),
        (["--client-id", "x", "--token-env", "T"], "--token-env"),
        (["--certificate", "a.pem", "--client-secret-env", "S"], "not allowed with"),
    ])
    def test_credentials_must_be_one_form(self, tmp_path: Path, extra: list[str], message: str) -> None:
        """No credential, or two forms, is exit 2 with one line naming the options; nothing is created."""
        argv = [sys.executable, "-m", "mtotrust", "sync", "--tenant", contoso().local_tenant_id, "--store",
                str(tmp_path / "s.sqlite"), "--graph-url", "http://127.0.0.1:9", *extra]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60,
                              env={**os.environ, "T": "x"})
        assert 2 == done.returncode
        assert message in done.stderr and "Traceback" not in done.stderr
        assert [] == list(tmp_path.iterdir())


class TestWatch:
    """``mtotrust.sync.watch``: a long-running engine picks up each generation a sync commits."""

    def test_new_generation_is_swapped_in(self, graph: FakeGraph, tmp_path: Path) -> None:
        """After a sync changes the store, the watcher's poll swaps it into the engine; a damaged file is not."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        engine = TrustEngine(Snapshot.load(store))
        assert engine.resolve("cameron@fabrikam.com").trust.value == "mto_member"
        with watch(store, engine, every=3600) as watcher:
            assert not watcher.check()  # nothing new yet
            cameron = next(uid for uid, u in graph.users.items() if u.get("mail") == "cameron@fabrikam.com")
            graph.update_user(cameron, accountEnabled=False)
            run(graph, store)
            assert watcher.check()
            assert (Snapshot.load(store).id, 1) == (engine.snapshot.id, watcher.updates)
            assert engine.resolve("cameron@fabrikam.com").trust.value != "mto_member"
            kept = engine.snapshot
            damaged = tmp_path / "damaged"
            damaged.write_bytes(store.read_bytes()[:-100])
            damaged.replace(store)
            assert not watcher.check()
            assert engine.snapshot is kept and watcher.last_error is not None

    def test_background_polling(self, graph: FakeGraph, tmp_path: Path) -> None:
        """Without any call, the watcher's thread picks up a new generation within a few polls."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        engine = TrustEngine(Snapshot.load(store))
        seen: list[str] = []
        with watch(store, engine, every=0.02, on_update=lambda snap: seen.append(snap.id)):
            graph.remove_user(sorted(graph.users)[0])
            run(graph, store)
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                time.sleep(0.02)
        assert [Snapshot.load(store).id] == seen == [engine.snapshot.id]

    def test_a_store_replaced_before_watching_is_picked_up(self, graph: FakeGraph, tmp_path: Path) -> None:
        """A sync that commits between building the engine and starting the watcher is not missed."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        engine = TrustEngine(Snapshot.load(store))
        graph.remove_user(sorted(graph.users)[0])
        run(graph, store)
        with watch(store, engine, every=3600) as watcher:
            assert watcher.check()
        assert Snapshot.load(store).id == engine.snapshot.id

    def test_a_failing_callback_does_not_stop_watching(self, graph: FakeGraph, tmp_path: Path) -> None:
        """What on_update raises is kept in last_error; the next generation is still swapped in."""
        store = tmp_path / "contoso.sqlite"
        run(graph, store)
        engine = TrustEngine(Snapshot.load(store))

        def refuse(_snap: Snapshot) -> None:
            raise RuntimeError("callback failed")

        with watch(store, engine, every=0.02, on_update=refuse) as watcher:
            for n in (1, 2):
                graph.remove_user(sorted(graph.users)[0])
                run(graph, store)
                deadline = time.monotonic() + 10
                while watcher.updates < n and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert (n, Snapshot.load(store).id) == (watcher.updates, engine.snapshot.id)
                assert isinstance(watcher.last_error, RuntimeError)

    def test_every_must_be_positive(self, tmp_path: Path) -> None:
        """A watcher that would never poll is refused."""
        with pytest.raises(ValueError, match="every"):
            watch(tmp_path / "s.sqlite", TrustEngine(Snapshot.sample()), every=0)
