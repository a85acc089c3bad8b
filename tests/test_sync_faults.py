"""``mtotrust sync`` under faults: every one survived with the store consistent, or refused with it unchanged.

The real client (:func:`mtotrust.sync.sync` in-process, ``python -m mtotrust sync`` in a subprocess where exit
codes and SIGKILL matter) against the real loopback server :class:`~mtotrust.testing.graph.FakeGraph`, serving a
nine-user directory in pages of two (five users pages). In-process syncs get a ``sleep`` that records and does not
sleep; subprocess syncs only meet ``Retry-After: 0`` or waits past ``--max-wait`` (refused before sleeping). Every
test checks the store afterwards: the new generation has the ``Snapshot.id`` of the server's directory written as a
folder and nothing else is left beside it, or (a sync that must fail) its bytes are unchanged and it still loads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mtotrust import Snapshot
from mtotrust.sync import EnvToken, GraphUnavailableError, SyncReport, TokenSource, sync
from mtotrust.sync._journal import Journal, JournalRun, journal_path
from mtotrust.testing import SnapshotBuilder
from mtotrust.testing.graph import FakeGraph, RecordedRequest

VAR = "MTOTRUST_FAULT_TEST_TOKEN"
TOKEN = "fault-test-bearer-7e3c1d"  # distinctive, so a message that carries it is caught
TENANT = SnapshotBuilder().local_tenant_id
USERS = "/v1.0/users/delta"
ORGANIZATION = "/v1.0/organization"
POLL_SECONDS = 30.0  # bound on waiting for the server to reach a state (a stall held, a thread done)


def directory() -> SnapshotBuilder:
    """Nine users: local members, litware's synced members and a guest, and a guest from a tenant-less domain."""
    return (SnapshotBuilder().tenant("litware")
            .member("ann@contoso.com").member("bob@contoso.com").synced_member("li@litware.com")
            .guest("gus@adatum.com").member("cy@contoso.com").synced_member("lo@litware.com")
            .member("dee@contoso.com").guest("gil@litware.com").member("eve@contoso.com"))


@pytest.fixture(name="graph")
def _graph(tmp_path: Path) -> Iterator[FakeGraph]:
    folder = directory().write(tmp_path / "folder")
    with FakeGraph.from_folder(folder, page_size=2, token=TOKEN) as graph:
        yield graph


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> Path:
    """The store's path, alone in its own folder (so leftovers beside it are seen)."""
    (tmp_path / "stores").mkdir()
    return tmp_path / "stores" / "contoso.sqlite"


def run(graph: FakeGraph, store: Path, *, sleeps: list[float] | None = None, tokens: TokenSource | None = None,
        full: bool = False, max_attempts: int = 4, max_wait: float = 60.0,
        progress: Callable[[int, int, str], None] | None = None) -> SyncReport:
    """Sync ``store`` from ``graph`` in-process; waits are recorded in ``sleeps``, never slept."""
    recorded: list[float] = [] if sleeps is None else sleeps
    return sync(store, tenant=TENANT, tokens=tokens or EnvToken(VAR, environ={VAR: graph.token}),
                graph_url=graph.url, full=full, max_attempts=max_attempts, max_wait=max_wait, progress=progress,
                sleep=recorded.append)


def argv(graph: FakeGraph, store: Path, *args: str, tenant: str = TENANT) -> list[str]:
    """The ``mtotrust sync`` command line against ``graph``, low caps first (later options override them)."""
    return [sys.executable, "-m", "mtotrust", "sync", "--tenant", tenant, "--store", str(store), "--graph-url",
            graph.url, "--token-env", VAR, "--max-attempts", "3", "--max-wait", "30", *args]


def cli(graph: FakeGraph, store: Path, *args: str, tenant: str = TENANT,
        token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``mtotrust sync`` in a subprocess with the token (default: the server's) in ``VAR``."""
    env = {**os.environ, VAR: graph.token if token is None else token}
    return subprocess.run(argv(graph, store, *args, tenant=tenant), env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def popen(graph: FakeGraph, store: Path) -> subprocess.Popen[str]:
    """Start ``mtotrust sync`` in a subprocess (to be killed or waited for)."""
    return subprocess.Popen(argv(graph, store), env={**os.environ, VAR: graph.token}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def expected_id(graph: FakeGraph, tmp_path: Path) -> str:
    """The ``Snapshot.id`` of the server's current directory written as a snapshot folder."""
    folder = tempfile.mkdtemp(dir=tmp_path, prefix="expected-")
    graph.write_folder(folder)
    return Snapshot.load(folder).id


def assert_synced(store: Path, graph: FakeGraph, tmp_path: Path) -> Snapshot:
    """The store holds the server's directory, and no other file (journal, temporary, lock) is beside it."""
    snap = Snapshot.load(store)
    assert snap.id == expected_id(graph, tmp_path)
    assert sorted(p.name for p in store.parent.iterdir()) == [store.name]
    return snap


def assert_unchanged(store: Path, before: bytes) -> None:
    """The store is byte for byte what it was, and still loads."""
    assert store.read_bytes() == before
    Snapshot.load(store)


def users_requests(graph: FakeGraph, since: int = 0) -> list[RecordedRequest]:
    """The ``/users/delta`` requests the server received from index ``since`` of its log on."""
    return [r for r in graph.requests[since:] if r.path == USERS]


def change(graph: FakeGraph) -> None:
    """Change the directory so the next delta round has five entries (three pages): 2 changed, 1 added, 2 removed.

    The added guest is from tailspin.com, a domain the store has not mapped, so the round looks it up.
    """
    ids = sorted(graph.users)
    graph.update_user(ids[0], accountEnabled=False)
    graph.update_user(ids[1], mail="renamed@contoso.com")
    graph.put_user(SnapshotBuilder().guest("tia@tailspin.com").documents()["users"][0]["value"][0])
    graph.remove_user(ids[2])
    graph.remove_user(ids[3])


@pytest.fixture(name="synced")
def _synced(graph: FakeGraph, store: Path) -> bytes:
    """A store made by a first clean sync; returns its bytes."""
    run(graph, store)
    return store.read_bytes()


def wait_until(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll ``condition()`` until it holds (bounded); fail early if ``proc`` ended meanwhile."""
    deadline = time.monotonic() + POLL_SECONDS
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sync ended (exit {proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def held(graph: FakeGraph, path: str, count: int, since: int = 0) -> Callable[[], bool]:
    """A condition: the ``count``-th request to ``path`` (from ``since``) has arrived and is not answered."""
    def condition() -> bool:
        found = [r for r in graph.requests[since:] if r.path == path]
        return len(found) == count and found[-1].status == 0
    return condition


def hold_users_page(graph: FakeGraph, number: int, since: int, proc: subprocess.Popen[str] | None = None) -> None:
    """Let the users pages before ``number`` through one at a time and hold page ``number`` (a ``stall``).

    The first stall must be queued (``graph.fault("stall")``) before the sync starts.
    """
    for page in range(1, number + 1):
        wait_until(held(graph, USERS, page, since), f"users page {page} to be held", proc)
        if page < number:
            graph.fault("stall")  # for the next page: queued before this one is let through
            graph.release()


def fail_at_page(graph: FakeGraph, page: int, kind: str, times: int, **params: Any
                 ) -> Callable[[int, int, str], None]:
    """Queue ``times`` faults of ``kind`` for the run's users page ``page`` (the run asks pages ahead of reading
    them, so the fault is aimed by request count); return the run's progress callback (it does nothing)."""
    graph.fault(kind, times=times, skip=page - 1, **params)
    return lambda _done, _total, _what: None


class Tokens:
    """A token source handing out ``tokens`` in turn (the last one again when they run out); records each call."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = tokens
        self.refresh_flags: list[bool] = []

    def token(self, *, refresh: bool = False) -> str:
        """Return the next token."""
        self.refresh_flags.append(refresh)
        return self.tokens[min(len(self.refresh_flags), len(self.tokens)) - 1]


class TestThrottling:
    """429/503/504 wait ``Retry-After`` or back off, counted in the report; past a cap the store is unchanged."""

    @pytest.mark.parametrize("status", [429, 503, 504])
    def test_retry_after_seconds_is_waited_then_the_same_page_asked_again(
            self, graph: FakeGraph, store: Path, tmp_path: Path, status: int) -> None:
        """A throttled users page is waited for the Retry-After seconds, asked again, and the sync completes."""
        graph.fault("status", status=status, retry_after="1")
        sleeps: list[float] = []
        report = run(graph, store, sleeps=sleeps)
        assert sleeps == [1.0]
        assert (report.retries, report.requests, report.throttled_seconds) == (1, len(graph.requests), 1.0)
        first, again = users_requests(graph)[:2]
        assert (first.status, again.status, again.query) == (status, 200, first.query)
        assert_synced(store, graph, tmp_path)

    def test_retry_after_http_date_waits_until_that_time(self, graph: FakeGraph, store: Path,
                                                         tmp_path: Path) -> None:
        """A Retry-After HTTP-date 30 s ahead is a wait of (about) 30 s, counted as throttled."""
        when = email.utils.formatdate(time.time() + 30, usegmt=True)  # whole seconds: up to 1 s less
        graph.fault("status", status=429, retry_after=when)
        sleeps: list[float] = []
        report = run(graph, store, sleeps=sleeps)
        assert len(sleeps) == 1
        assert 28.0 < sleeps[0] <= 30.0
        assert report.throttled_seconds == pytest.approx(sleeps[0])
        assert report.retries == 1
        assert_synced(store, graph, tmp_path)

    def test_without_retry_after_backs_off_exponentially_with_jitter(self, graph: FakeGraph, store: Path,
                                                                    tmp_path: Path) -> None:
        """Throttled twice without Retry-After: a jittered backoff within 1 s, then within 2 s, then success."""
        graph.fault("status", status=429, times=2)
        sleeps: list[float] = []
        report = run(graph, store, sleeps=sleeps)
        assert len(sleeps) == 2
        assert 0.0 <= sleeps[0] <= 1.0
        assert 0.0 <= sleeps[1] <= 2.0
        assert (report.retries, report.requests) == (2, len(graph.requests))
        assert report.throttled_seconds == pytest.approx(sum(sleeps))
        assert_synced(store, graph, tmp_path)

    def test_throttling_past_max_attempts_fails_with_the_store_unchanged(self, graph: FakeGraph, store: Path,
                                                                         synced: bytes) -> None:
        """Throttled on every try of a page up to max_attempts: GraphUnavailableError naming the cap, no commit."""
        change(graph)
        graph.fault("status", status=503, retry_after="0", times=3)
        with pytest.raises(GraphUnavailableError, match="--max-attempts") as raised:
            run(graph, store, max_attempts=3)
        assert raised.value.exit_code == 1
        assert [r.status for r in users_requests(graph)[-3:]] == [503, 503, 503]
        assert_unchanged(store, synced)

    def test_throttling_past_max_wait_fails_before_sleeping_past_it(self, graph: FakeGraph, store: Path,
                                                                   synced: bytes) -> None:
        """A Retry-After that would take the run's waiting past max_wait fails at once, the store unchanged."""
        change(graph)
        graph.fault("status", status=429, retry_after="2", times=2)
        sleeps: list[float] = []
        with pytest.raises(GraphUnavailableError, match="--max-wait"):
            run(graph, store, sleeps=sleeps, max_wait=3.0)
        assert sleeps == [2.0]
        assert_unchanged(store, synced)

    @pytest.mark.parametrize(("option", "retry_after", "times"), [("--max-attempts", "0", 2),
                                                                  ("--max-wait", "30", 1)])
    def test_command_exits_1_when_throttled_past_a_cap(self, graph: FakeGraph, store: Path, synced: bytes,
                                                       option: str, retry_after: str, times: int) -> None:
        """``mtotrust sync`` throttled past --max-attempts or --max-wait exits 1 naming the cap; store unchanged."""
        change(graph)
        graph.fault("status", status=429, retry_after=retry_after, times=times)
        done = cli(graph, store, option, "2" if option == "--max-attempts" else "1")
        assert done.returncode == 1, done.stderr
        assert option in done.stderr
        assert_unchanged(store, synced)


class TestPages:
    """Empty pages, the same object twice and both kinds of ``@removed`` give exactly the directory."""

    @pytest.mark.parametrize("kind", ["empty_page", "duplicate"])
    def test_full_round(self, graph: FakeGraph, store: Path, tmp_path: Path, kind: str) -> None:
        """A full round with empty pages or repeated objects stores each object once, as the folder has it."""
        graph.fault(kind, times=2)
        report = run(graph, store)
        assert (report.users, report.added, report.pages) == (9, 9, len(users_requests(graph)))
        assert_synced(store, graph, tmp_path)

    @pytest.mark.usefixtures("synced")
    @pytest.mark.parametrize("kind", ["empty_page", "duplicate"])
    def test_delta_round(self, graph: FakeGraph, store: Path, tmp_path: Path, kind: str) -> None:
        """A delta round with empty pages or repeated objects applies each change once, counted once."""
        change(graph)
        graph.fault(kind, times=2)
        report = run(graph, store)
        assert (report.full, report.added, report.changed, report.removed) == (False, 1, 2, 2)
        assert_synced(store, graph, tmp_path)

    @pytest.mark.usefixtures("synced")
    def test_removed_changed_and_deleted_both_remove(self, graph: FakeGraph, store: Path, tmp_path: Path) -> None:
        """``@removed`` with reason ``changed`` (soft delete) and ``deleted`` both take the object out."""
        soft, hard = sorted(graph.users)[:2]
        graph.remove_user(soft, reason="changed")
        graph.remove_user(hard, reason="deleted")
        report = run(graph, store)
        assert (report.full, report.removed, report.users) == (False, 2, 7)
        snap = assert_synced(store, graph, tmp_path)
        assert soft not in snap.users
        assert hard not in snap.users


class TestCredentials:
    """401 refreshes the credential once; a second 401 and any 403 are exit 2 with the store unchanged."""

    def test_401_once_asks_the_token_source_again_with_refresh(self, graph: FakeGraph, store: Path,
                                                              tmp_path: Path) -> None:
        """A refused token is replaced by asking the token source with refresh=True; the sync completes."""
        tokens = Tokens("expired-token", TOKEN)
        run(graph, store, tokens=tokens)
        assert tokens.refresh_flags == [False, True]
        assert [r.status for r in graph.requests[:2]] == [401, 200]
        assert_synced(store, graph, tmp_path)

    def test_401_once_rereads_the_token_variable(self, graph: FakeGraph, store: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """With --token-env, a 401 reads the variable again: a token rotated mid-sync is picked up."""
        monkeypatch.setenv(VAR, TOKEN)
        graph.fault("stall", path=ORGANIZATION)
        sleeps: list[float] = []
        with ThreadPoolExecutor(1) as pool:
            future: Future[SyncReport] = pool.submit(
                sync, store, tenant=TENANT, tokens=EnvToken(VAR), graph_url=graph.url, sleep=sleeps.append)
            try:
                wait_until(held(graph, ORGANIZATION, 1), "/organization to be held")
                graph.token = "rotated-token"
                monkeypatch.setenv(VAR, "rotated-token")
            finally:
                graph.release()
            future.result(timeout=POLL_SECONDS)
        refused = next(i for i, r in enumerate(graph.requests) if r.status == 401)
        assert graph.requests[refused + 1].headers["authorization"] == "Bearer rotated-token"
        assert graph.requests[refused + 1].status == 200
        assert_synced(store, graph, tmp_path)

    def test_401_twice_exits_2(self, graph: FakeGraph, store: Path, synced: bytes) -> None:
        """A token refused again after the refresh: exit 2, the token not echoed, the store unchanged."""
        since = len(graph.requests)
        done = cli(graph, store, token="wrong-bearer-4f9a")
        assert done.returncode == 2, done.stderr
        assert "401" in done.stderr
        assert "wrong-bearer-4f9a" not in done.stderr + done.stdout
        assert [r.status for r in graph.requests[since:]] == [401, 401]
        assert_unchanged(store, synced)

    @pytest.mark.parametrize(("path", "permission"), [
        ("/v1.0/organization", "Organization.Read.All"),
        ("/v1.0/tenantRelationships/multiTenantOrganization", "MultiTenantOrganization.Read.All"),
        ("/v1.0/policies/crossTenantAccessPolicy", "Policy.Read.All"),
        ("/v1.0/users/delta", "User.Read.All"),
        ("/v1.0/tenantRelationships/findTenantInformationByDomainName", "CrossTenantInformation.ReadBasic.All"),
    ])
    def test_403_exits_2_naming_the_permission(self, graph: FakeGraph, store: Path, synced: bytes, path: str,
                                               permission: str) -> None:
        """A 403 on any of the five requests: exit 2 naming the missing application permission; store unchanged."""
        change(graph)  # the delta round names tailspin.com, so a domain lookup is made
        graph.fault("status", status=403, path=path)
        done = cli(graph, store)
        assert done.returncode == 2, done.stderr
        assert permission in done.stderr
        assert [r.status for r in graph.requests if r.path.startswith(path)][-1] == 403
        assert_unchanged(store, synced)


class TestResync:
    """A refused delta link runs a full resync whose result replaces the directory."""

    @pytest.mark.usefixtures("synced")
    @pytest.mark.parametrize("how", ["gone", "syncStateNotFound", "resyncRequired"])
    def test_refused_delta_link_resyncs_in_full(self, graph: FakeGraph, store: Path, tmp_path: Path,
                                                how: str) -> None:
        """410 / syncStateNotFound / resyncRequired: a full round replaces the store, a removed object is gone."""
        gone = sorted(graph.users)[0]
        graph.remove_user(gone)
        graph.expire_tokens(how)
        since = len(graph.requests)
        report = run(graph, store)
        assert report.full
        assert report.to_dict()["full"] is True
        assert any("full resync" in w for w in report.warnings)
        refused, restart = users_requests(graph, since)[:2]
        assert "$deltatoken" in refused.query
        assert refused.status == (410 if how == "gone" else 400)
        assert restart.query.get("$deltatoken", "") == ""  # the 410's Location, or a fresh users delta
        assert "$skiptoken" not in restart.query
        snap = assert_synced(store, graph, tmp_path)
        assert gone not in snap.users
        assert len(snap.users) == 8


class TestDroppedConnection:
    """A connection dropped mid-body is retried on the same GET."""

    @pytest.mark.parametrize("path", [USERS, ORGANIZATION])
    def test_drop_mid_body_is_retried(self, graph: FakeGraph, store: Path, tmp_path: Path, path: str) -> None:
        """Half a body then a closed connection: the same request again, after one backoff; same result."""
        graph.fault("drop", path=path)
        sleeps: list[float] = []
        report = run(graph, store, sleeps=sleeps)
        cut, again = [r for r in graph.requests if r.path == path][:2]
        assert again.query == cut.query
        assert (report.retries, len(sleeps), report.requests) == (1, 1, len(graph.requests))
        assert_synced(store, graph, tmp_path)


class TestOtherHost:
    """A link pointing at another host is refused: the token never leaves for it."""

    def test_next_link_to_another_host_is_refused(self, graph: FakeGraph, store: Path, synced: bytes) -> None:
        """An elsewhere nextLink: exit 1 naming it, no request to that host or after, no token in the message."""
        change(graph)
        with FakeGraph(organization={"id": TENANT}, token=TOKEN) as other:
            graph.fault("elsewhere", host=other.url)
            since = len(graph.requests)
            done = cli(graph, store)
            assert done.returncode == 1, done.stderr
            assert other.url.removeprefix("http://") in done.stderr
            assert TOKEN not in done.stderr + done.stdout
            assert other.requests == []
        last = graph.requests[-1]
        assert (last.path, "$deltatoken" in last.query) == (USERS, True)  # the page that gave the link
        assert len(users_requests(graph, since)) == 1
        assert_unchanged(store, synced)

    def test_delta_link_to_another_host_does_not_wedge_the_store(self, graph: FakeGraph, store: Path,
                                                                tmp_path: Path) -> None:
        """An elsewhere deltaLink on the last page is never followed, and the next sync still works."""
        with FakeGraph(organization={"id": TENANT}, token=TOKEN) as other:
            with contextlib.suppress(GraphUnavailableError):  # refusing it at once is one right answer
                run(graph, store, progress=fail_at_page(graph, 5, "elsewhere", times=1, host=other.url))
            report = run(graph, store)
            assert other.requests == []
        assert report.users == 9
        assert_synced(store, graph, tmp_path)


class TestTenant:
    """A sync for the wrong tenant, or a --tenant that is no tenant id, is exit 2 and writes nothing."""

    def test_store_of_another_tenant(self, graph: FakeGraph, store: Path, synced: bytes) -> None:
        """--tenant another GUID than the store's: exit 2 naming it, store unchanged."""
        other = str(uuid.uuid4())
        done = cli(graph, store, tenant=other)
        assert done.returncode == 2, done.stderr
        assert other in done.stderr
        assert_unchanged(store, synced)

    def test_graph_answering_for_another_tenant(self, graph: FakeGraph, store: Path) -> None:
        """No store yet and Graph's /organization is not --tenant: exit 2 naming both, no store created."""
        other = str(uuid.uuid4())
        done = cli(graph, store, tenant=other)
        assert done.returncode == 2, done.stderr
        assert other in done.stderr
        assert TENANT in done.stderr
        assert not store.exists()

    def test_bad_tenant_text(self, graph: FakeGraph, store: Path) -> None:
        """A --tenant that is not a GUID: exit 2 naming it, nothing asked of Graph, no store."""
        done = cli(graph, store, tenant="contoso.com")
        assert done.returncode == 2, done.stderr
        assert "contoso.com" in done.stderr
        assert graph.requests == []
        assert not store.exists()


class TestResume:
    """A sync that failed part-way keeps its pages in the journal; the next one goes on from there."""

    @pytest.mark.parametrize("first", [True, False], ids=["first-sync", "delta-round"])
    def test_next_sync_resumes_at_the_failed_page(self, graph: FakeGraph, store: Path, tmp_path: Path,
                                                  first: bool) -> None:
        """Dropped on page 3 past max_attempts: the journal holds pages 1-2; the next sync asks page 3 first."""
        base_id, base_link = "", ""
        if not first:
            run(graph, store)
            base = Snapshot.load(store)
            base_id, base_link = base.id, base.metadata["sync.delta_link"]
            change(graph)
        before = store.read_bytes() if not first else None
        with pytest.raises(GraphUnavailableError):
            run(graph, store, max_attempts=2, progress=fail_at_page(graph, 3, "drop", times=2))
        assert (store.read_bytes() if store.exists() else None) == before
        failed = users_requests(graph)[-1]
        journal = Journal(store)
        try:
            resumed = journal.resume(JournalRun(TENANT, graph.url, base_id, base_link))
        finally:
            journal.close()
        assert resumed is not None
        bodies, next_link = resumed.bodies, resumed.next_link
        assert len(bodies) == 2
        assert next_link is not None
        assert f"$skiptoken={failed.query['$skiptoken']}" in next_link
        since = len(graph.requests)
        report = run(graph, store)
        asked = users_requests(graph, since)
        assert asked[0].query == failed.query
        assert all("$select" not in r.query and "$deltatoken" not in r.query for r in asked)
        assert report.pages == (5 if first else 3)
        assert_synced(store, graph, tmp_path)

    def test_full_discards_the_journal(self, graph: FakeGraph, store: Path, tmp_path: Path) -> None:
        """After a failed sync, --full starts again at page 1 and ignores the journal's pages."""
        with pytest.raises(GraphUnavailableError):
            run(graph, store, max_attempts=2,
                progress=fail_at_page(graph, 3, "status", times=2, status=503, retry_after="0"))
        assert journal_path(store).exists()
        since = len(graph.requests)
        report = run(graph, store, full=True)
        assert "$select" in users_requests(graph, since)[0].query
        assert (report.full, report.pages, report.users) == (True, 5, 9)
        assert_synced(store, graph, tmp_path)

    def test_resume_from_a_link_graph_no_longer_accepts(self, graph: FakeGraph, store: Path,
                                                        tmp_path: Path) -> None:
        """The journal's next link refused (410): the sync starts the round afresh and still equals the folder."""
        with pytest.raises(GraphUnavailableError):
            run(graph, store, max_attempts=2, progress=fail_at_page(graph, 3, "drop", times=2))
        graph.expire_tokens("gone")
        since = len(graph.requests)
        report = run(graph, store)
        assert [r.status for r in users_requests(graph, since)][:2] == [410, 200]
        assert (report.full, report.users) == (True, 9)
        assert_synced(store, graph, tmp_path)


class TestKill:
    """SIGKILL at any point leaves the previous generation (or no store); the next sync resumes and commits."""

    @pytest.mark.parametrize("first", [True, False], ids=["first-sync", "delta-round"])
    def test_sigkill_while_page_3_is_read(self, graph: FakeGraph, store: Path, tmp_path: Path, first: bool) -> None:
        """Killed waiting for page 3: the store is as it was; after release the next sync resumes at page 3."""
        if not first:
            run(graph, store)
            change(graph)
        before = store.read_bytes() if not first else None
        since = len(graph.requests)
        graph.fault("stall")
        proc = popen(graph, store)
        try:
            hold_users_page(graph, 3, since, proc)
        finally:
            proc.kill()
            proc.communicate(timeout=POLL_SECONDS)
        assert proc.returncode == -signal.SIGKILL
        if first:
            assert not store.exists()
        else:
            assert before is not None
            assert_unchanged(store, before)
        stalled = users_requests(graph, since)[-1]
        graph.release()
        since = len(graph.requests)
        report = run(graph, store)
        assert users_requests(graph, since)[0].query == stalled.query
        assert report.pages == (5 if first else 3)
        assert_synced(store, graph, tmp_path)

    def test_second_sync_of_a_store_exits_2_naming_the_running_one(self, graph: FakeGraph, store: Path,
                                                                  tmp_path: Path, synced: bytes) -> None:
        """While one sync is under way, another of the same store exits 2 naming it; the first then commits."""
        change(graph)
        graph.fault("stall", path=ORGANIZATION)
        since = len(graph.requests)
        with ThreadPoolExecutor(1) as pool:
            future: Future[SyncReport] = pool.submit(run, graph, store)
            try:
                wait_until(held(graph, ORGANIZATION, 1, since), "the first sync to be held")
                done = cli(graph, store)
            finally:
                graph.release()
            future.result(timeout=POLL_SECONDS)
        assert done.returncode == 2, done.stderr
        assert "another sync" in done.stderr
        assert journal_path(store).name in done.stderr
        assert len([r for r in graph.requests[since:] if r.path == ORGANIZATION]) == 1  # the second asked nothing
        assert store.read_bytes() != synced
        assert_synced(store, graph, tmp_path)


@pytest.mark.usefixtures("synced")
def test_old_delta_link_is_warned_about_and_still_used(graph: FakeGraph, store: Path, tmp_path: Path) -> None:
    """A stored delta link 6 days old: the command warns on stderr, then syncs the changes from it."""
    snap = Snapshot.load(store)
    old = dt.datetime.fromisoformat(snap.metadata["sync.delta_link_at"]) - dt.timedelta(days=6)
    snap.save(store, metadata={**snap.metadata, "sync.delta_link_at": old.isoformat()})
    change(graph)
    since = len(graph.requests)
    done = cli(graph, store, "--json")
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr
    assert "6 days" in done.stderr
    assert '"full": false' in done.stdout
    assert users_requests(graph, since)[0].query.keys() == {"$deltatoken"}
    assert_synced(store, graph, tmp_path)

