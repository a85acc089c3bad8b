"""mtotrust.testing.graph.FakeGraph: the Graph-protocol test server, driven with a plain httpx client."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtotrust import Snapshot
from mtotrust.testing import SnapshotBuilder
from mtotrust.testing.graph import SELECT, FakeGraph

SAMPLE = Path(__file__).resolve().parent.parent / "mtotrust" / "sample"
SELECT_QUERY = "$select=" + ",".join(SELECT)


def directory(folder: Path, n_users: int) -> FakeGraph:
    """A server for ``n_users`` objects (every third a synced member of fabrikam, the others native members), four
    MTO tenants."""
    builder = SnapshotBuilder().tenant("fabrikam").tenant("litware", partner=True).tenant("tailspin")
    for i in range(n_users):
        if i % 3:
            builder.member(f"user{i}@contoso.com")
        else:
            builder.synced_member(f"user{i}@fabrikam.com")
    return FakeGraph.from_folder(builder.write(folder), page_size=10)


@pytest.fixture(name="graph")
def _graph(tmp_path: Path) -> Iterator[FakeGraph]:
    with directory(tmp_path / "source", 25) as graph:
        yield graph


@pytest.fixture(name="client")
def _client(graph: FakeGraph) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {graph.token}"}, timeout=10) as client:
        yield client


def delta_url(graph: FakeGraph, query: str = SELECT_QUERY) -> str:
    return f"{graph.url}/v1.0/users/delta?{query}"


def drain(client: httpx.Client, url: str) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
    """Follow nextLinks from ``url``; return the objects, the deltaLink and the pages."""
    pages: list[dict[str, Any]] = []
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if "@odata.deltaLink" in page:
            return [obj for p in pages for obj in p["value"]], page["@odata.deltaLink"], pages
        url = page["@odata.nextLink"]


def query_of(link: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query, keep_blank_values=True))


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition()`` until it holds (a server thread is expected to get there promptly)."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("the server never reached the expected state")


class TestDeltaRounds:
    """Delta rounds page, end in a deltaLink, and a round from a deltaLink holds exactly the changes since it."""

    def test_full_round_pages_and_ends_in_a_delta_link(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A full round serves every object once in pages of page_size linked by absolute $skiptoken links."""
        objects, delta_link, pages = drain(client, delta_url(graph))
        assert sorted(o["id"] for o in objects) == sorted(graph.users)
        assert [len(p["value"]) for p in pages] == [10, 10, 5]
        for page in pages[:-1]:
            assert page["@odata.nextLink"].startswith(f"{graph.url}/v1.0/users/delta?")
            assert set(query_of(page["@odata.nextLink"])) == {"$skiptoken"}
            assert "@odata.deltaLink" not in page
        assert delta_link.startswith(f"{graph.url}/v1.0/users/delta?")
        assert set(query_of(delta_link)) == {"$deltatoken"}
        assert len(query_of(delta_link)["$deltatoken"]) >= 20
        assert pages[0]["@odata.context"] == f"{graph.url}/v1.0/$metadata#users({','.join(SELECT)})"
        assert pages[1]["@odata.context"] == f"{graph.url}/v1.0/$metadata#users"

    def test_delta_round_holds_exactly_the_changes(self, graph: FakeGraph, client: httpx.Client) -> None:
        """After put, update and remove, the next round holds the new object, the new state and a tombstone."""
        _, delta_link, _ = drain(client, delta_url(graph))
        first, second, *_ = graph.users
        new = {"id": "new-user", "userPrincipalName": "nova@contoso.com", "mail": "nova@contoso.com"}
        graph.put_user(new)
        graph.update_user(first, accountEnabled=False)
        graph.remove_user(second, reason="changed")
        objects, next_link, _ = drain(client, delta_link)
        by_id = {o["id"]: o for o in objects}
        assert set(by_id) == {"new-user", first, second}
        assert by_id["new-user"] == new
        assert by_id[first]["accountEnabled"] is False
        assert by_id[first]["mail"] == graph.users[first]["mail"]  # whole objects, not just the changed field
        assert by_id[second] == {"id": second, "@removed": {"reason": "changed"}}
        assert drain(client, next_link)[0] == []

    def test_many_changes_appear_once_in_newest_state(self, graph: FakeGraph, client: httpx.Client) -> None:
        """An object changed twice appears once, newest; one removed then re-added appears as the object."""
        _, delta_link, _ = drain(client, delta_url(graph))
        first, second, *_ = graph.users
        back = graph.users[second]
        graph.update_user(first, mail="one@contoso.com")
        graph.update_user(first, mail="two@contoso.com")
        graph.remove_user(second)
        graph.put_user(back)
        objects = drain(client, delta_link)[0]
        assert sorted(o["id"] for o in objects) == sorted([first, second])
        by_id = {o["id"]: o for o in objects}
        assert by_id[first]["mail"] == "two@contoso.com"
        assert "@removed" not in by_id[second]

    def test_a_round_is_frozen_when_it_starts(self, graph: FakeGraph, client: httpx.Client) -> None:
        """Changes made during a round do not leak into it; the round's deltaLink then returns them."""
        first_page = client.get(delta_url(graph)).json()
        seen = {o["id"] for o in first_page["value"]}
        later = [uid for uid in graph.users if uid not in seen]
        graph.update_user(later[0], accountEnabled=False)
        graph.remove_user(later[1])
        rest, delta_link, _ = drain(client, first_page["@odata.nextLink"])
        by_id = {o["id"]: o for o in rest}
        assert by_id[later[0]]["accountEnabled"] is not False
        assert "@removed" not in by_id[later[1]]
        changes = {o["id"]: o for o in drain(client, delta_link)[0]}
        assert changes[later[0]]["accountEnabled"] is False
        assert changes[later[1]] == {"id": later[1], "@removed": {"reason": "deleted"}}

    def test_select_is_honoured_and_kept_by_the_links(self, graph: FakeGraph, client: httpx.Client) -> None:
        """Only the selected fields (and id) come back, on later pages and delta rounds too."""
        objects, delta_link, _ = drain(client, delta_url(graph, "$select=mail,userType"))
        assert {frozenset(o) for o in objects} <= {frozenset({"id", "mail", "userType"})}
        assert len(objects) == 25
        uid = next(iter(graph.users))
        graph.update_user(uid, accountEnabled=False)
        assert drain(client, delta_link)[0] == [{"id": uid, "mail": graph.users[uid]["mail"],
                                                 "userType": graph.users[uid]["userType"]}]

    def test_without_select_whole_objects_come_back(self, graph: FakeGraph, client: httpx.Client) -> None:
        """Without $select every stored field is returned."""
        objects = drain(client, delta_url(graph, ""))[0]
        assert {o["id"]: o for o in objects} == graph.users

    def test_latest_token_syncs_from_now(self, graph: FakeGraph, client: httpx.Client) -> None:
        """$deltatoken=latest returns only a deltaLink, which then holds the changes made after it."""
        page = client.get(delta_url(graph, "$deltatoken=latest")).json()
        assert page["value"] == []
        uid = next(iter(graph.users))
        graph.update_user(uid, accountEnabled=False)
        assert [o["id"] for o in drain(client, page["@odata.deltaLink"])[0]] == [uid]

    def test_page_size_is_assignable(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A new page_size applies to the pages served afterwards."""
        graph.page_size = 20
        assert [len(p["value"]) for p in drain(client, delta_url(graph))[2]] == [20, 5]

    def test_unknown_user_changes_are_refused(self, graph: FakeGraph) -> None:
        """update_user and remove_user of an id not in the directory raise KeyError naming it."""
        with pytest.raises(KeyError, match="nobody"):
            graph.update_user("nobody", mail="x@contoso.com")
        with pytest.raises(KeyError, match="nobody"):
            graph.remove_user("nobody")


class TestExpiry:
    """expire_tokens refuses every link issued so far, in the three ways Graph does."""

    def test_gone_is_410_with_a_location_that_restarts(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'gone': 410 and a Location with an empty $deltatoken and the round's $select, which restarts in full."""
        _, delta_link, _ = drain(client, delta_url(graph, "$select=mail"))
        graph.expire_tokens("gone")
        response = client.get(delta_link)
        assert response.status_code == 410
        location = response.headers["location"]
        assert location.startswith(f"{graph.url}/v1.0/users/delta?")
        assert query_of(location) == {"$select": "mail", "$deltatoken": ""}
        objects = drain(client, location)[0]
        assert len(objects) == 25
        assert {frozenset(o) for o in objects} == {frozenset({"id", "mail"})}

    @pytest.mark.parametrize("how", ["syncStateNotFound", "resyncRequired"])
    def test_error_codes_are_400_with_the_code(self, graph: FakeGraph, client: httpx.Client, how: str) -> None:
        """'syncStateNotFound' and 'resyncRequired': 400 with a Graph error body carrying that code."""
        first_page = client.get(delta_url(graph)).json()
        graph.expire_tokens(how)
        response = client.get(first_page["@odata.nextLink"])  # a $skiptoken link is refused too
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == how
        assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])

    def test_unknown_tokens_are_refused_like_expired_ones(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A token never issued is refused: 410 by default."""
        assert client.get(delta_url(graph, "$deltatoken=madeup")).status_code == 410
        assert client.get(delta_url(graph, "$skiptoken=madeup")).status_code == 410

    def test_links_issued_after_expiry_work(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A round started after expire_tokens gets links that are served."""
        graph.expire_tokens()
        assert len(drain(client, delta_url(graph))[0]) == 25


class TestFaults:
    """Each injected fault is what a client sees over HTTP, consumed once per matching request, in order."""

    def test_status_with_retry_after(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A 'status' fault answers that status, Retry-After and a Graph error body, then the request succeeds."""
        graph.fault("status", status=429, retry_after="1")
        graph.fault("status", status=503)
        first = client.get(delta_url(graph))
        assert (first.status_code, first.headers["retry-after"]) == (429, "1")
        assert first.json()["error"]["code"] == "TooManyRequests"
        second = client.get(delta_url(graph))
        assert second.status_code == 503
        assert "retry-after" not in second.headers
        assert client.get(delta_url(graph)).status_code == 200

    def test_skip_aims_at_a_later_request(self, graph: FakeGraph, client: httpx.Client) -> None:
        """``skip=2`` lets two matching requests through, then hits the next ``times`` of them."""
        graph.fault("status", status=503, times=2, skip=2)
        statuses = [client.get(delta_url(graph)).status_code for _ in range(5)]
        assert [200, 200, 503, 503, 200] == statuses

    def test_times_queues_several(self, graph: FakeGraph, client: httpx.Client) -> None:
        """times=N fails the next N matching requests; a custom code is carried."""
        graph.fault("status", status=403, code="Authorization_RequestDenied", times=2)
        assert [client.get(delta_url(graph)).status_code for _ in range(3)] == [403, 403, 200]

    def test_faults_match_by_path_prefix(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A fault on /v1.0/organization leaves /users/delta requests alone."""
        graph.fault("status", status=500, path="/v1.0/organization")
        assert client.get(delta_url(graph)).status_code == 200
        assert client.get(f"{graph.url}/v1.0/organization").status_code == 500

    def test_drop_cuts_the_body(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'drop' sends half the body and closes: httpx raises; the same GET then gets the same page."""
        first_page = client.get(delta_url(graph)).json()
        graph.fault("drop")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get(first_page["@odata.nextLink"])
        retried = client.get(first_page["@odata.nextLink"]).json()
        again = client.get(first_page["@odata.nextLink"]).json()
        assert retried == again
        assert len(retried["value"]) == 10

    def test_stall_holds_until_release(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'stall' holds the request (recorded with status 0) until release(), then serves it."""
        graph.fault("stall")
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.get, delta_url(graph))
            wait_for(lambda: len(graph.requests) == 1)
            assert not pending.done()
            assert graph.requests[0].status == 0
            graph.release()
            assert pending.result(timeout=10).status_code == 200
        assert graph.requests[0].status == 200

    def test_stop_ends_a_stall_without_hanging(self, tmp_path: Path) -> None:
        """stop() ends a stalled request (the client sees the connection close) and returns."""
        graph = directory(tmp_path, 3).start()
        graph.fault("stall")
        with httpx.Client(headers={"Authorization": f"Bearer {graph.token}"}, timeout=10) as client, \
                ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.get, delta_url(graph))
            wait_for(lambda: len(graph.requests) == 1)
            graph.stop()
            with pytest.raises(httpx.TransportError):
                pending.result(timeout=10)

    def test_empty_page_leads_to_the_real_one(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'empty_page' answers an empty page whose nextLink leads on; the round still holds every object."""
        graph.fault("empty_page")
        objects, _, pages = drain(client, delta_url(graph))
        assert [len(p["value"]) for p in pages] == [0, 10, 10, 5]
        assert sorted(o["id"] for o in objects) == sorted(graph.users)

    def test_duplicate_repeats_an_object(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'duplicate' makes a page carry one object twice."""
        graph.fault("duplicate")
        value = client.get(delta_url(graph)).json()["value"]
        assert len(value) == 11
        assert value[-1] == value[0]

    def test_usage_header(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'usage' adds x-ms-throttle-limit-percentage with the given value to a normal answer."""
        graph.fault("usage", value=1.5)
        response = client.get(delta_url(graph))
        assert (response.status_code, response.headers["x-ms-throttle-limit-percentage"]) == (200, "1.5")
        assert "x-ms-throttle-limit-percentage" not in client.get(delta_url(graph)).headers

    def test_elsewhere_points_the_link_at_another_host(self, graph: FakeGraph, client: httpx.Client) -> None:
        """'elsewhere' makes the page's nextLink point away from the server."""
        graph.fault("elsewhere")
        link = client.get(delta_url(graph)).json()["@odata.nextLink"]
        assert urllib.parse.urlsplit(link).netloc != urllib.parse.urlsplit(graph.url).netloc

    def test_unknown_fault_kind_is_refused(self, graph: FakeGraph) -> None:
        """A misspelt fault kind is a ValueError naming it."""
        with pytest.raises(ValueError, match="stal"):
            graph.fault("stal")


class TestEndpoints:
    """Auth, the other endpoints, unknown paths and methods, and the request record."""

    def test_missing_or_wrong_token_is_401(self, graph: FakeGraph) -> None:
        """Without the accepted bearer token a request is 401 InvalidAuthenticationToken."""
        assert httpx.get(delta_url(graph)).json()["error"]["code"] == "InvalidAuthenticationToken"
        wrong = httpx.get(delta_url(graph), headers={"Authorization": "Bearer stale"})
        assert wrong.status_code == 401

    def test_token_is_assignable(self, graph: FakeGraph, client: httpx.Client) -> None:
        """Assigning token makes the old one stale and accepts the new one."""
        graph.token = "fresh"
        assert client.get(delta_url(graph)).status_code == 401
        assert client.get(delta_url(graph), headers={"Authorization": "Bearer fresh"}).status_code == 200

    def test_find_tenant_information(self, graph: FakeGraph, client: httpx.Client) -> None:
        """A known domain gives tenantInformation; an unknown one 404 with a Graph error body."""
        url = f"{graph.url}/v1.0/tenantRelationships/findTenantInformationByDomainName(domainName='{{}}')"
        info = client.get(url.format("Fabrikam.com")).json()
        assert {k: v for k, v in info.items() if k != "@odata.context"} == graph.tenants_by_domain["fabrikam.com"]
        assert set(info) >= {"tenantId", "displayName", "defaultDomainName", "federationBrandName"}
        missing = client.get(url.format("nowhere.example"))
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "Request_ResourceNotFound"

    def test_list_endpoints_page(self, graph: FakeGraph, client: httpx.Client) -> None:
        """MTO tenants longer than page_size come in pages linked by nextLink."""
        graph.page_size = 3
        first = client.get(f"{graph.url}/v1.0/tenantRelationships/multiTenantOrganization/tenants").json()
        second = client.get(first["@odata.nextLink"]).json()
        assert "@odata.nextLink" not in second
        assert first["value"] + second["value"] == graph.mto_tenants
        assert client.get(f"{graph.url}/v1.0/organization").json()["value"] == [graph.organization]
        assert client.get(f"{graph.url}/v1.0/policies/crossTenantAccessPolicy/partners").json()["value"] == \
            graph.partners

    def test_unknown_path_and_method(self, graph: FakeGraph, client: httpx.Client) -> None:
        """An unknown path is 404 with a Graph error body; a method other than GET is 405."""
        missing = client.get(f"{graph.url}/v1.0/groups")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "Request_ResourceNotFound"
        assert client.post(delta_url(graph)).status_code == 405

    def test_requests_are_recorded(self, graph: FakeGraph, client: httpx.Client) -> None:
        """Each request is recorded with method, decoded path and query, lower-case headers and status sent."""
        graph.fault("status", status=429)
        client.get(delta_url(graph, "$select=mail"), headers={"X-Custom": "yes"})
        record = graph.requests[0]
        assert (record.method, record.path, record.query, record.status) == (
            "GET", "/v1.0/users/delta", {"$select": "mail"}, 429)
        assert record.headers["x-custom"] == "yes"
        assert record.headers["authorization"] == f"Bearer {graph.token}"


class TestFolders:
    """from_folder reads snapshot folders and write_folder writes one with the same Snapshot.id."""

    def test_sample_round_trip_keeps_the_id(self, tmp_path: Path) -> None:
        """The bundled sample (with its delta page applied), served and written back, has the same id."""
        graph = FakeGraph.from_folder(SAMPLE)
        assert len(graph.users) == len(Snapshot.load(SAMPLE).users)
        graph.write_folder(tmp_path / "out")
        assert Snapshot.load(tmp_path / "out").id == Snapshot.load(SAMPLE).id

    def test_built_folder_round_trip_keeps_the_id(self, tmp_path: Path) -> None:
        """A SnapshotBuilder folder with partners, domains and delta entries round-trips to the same id."""
        builder = (SnapshotBuilder().tenant("fabrikam", partner=True).tenant("adatum", in_mto=False)
                   .member("ann@contoso.com").synced_member("li@fabrikam.com").guest("gus@adatum.com"))
        removed = builder.documents()["users"][0]["value"][0]["id"]
        builder.delta(**{"id": removed, "@removed": {"reason": "deleted"}})
        folder = builder.write(tmp_path / "in")
        graph = FakeGraph.from_folder(folder)
        assert removed not in graph.users
        assert graph.tenants_by_domain["fabrikam.com"]["defaultDomainName"] == "fabrikam.com"
        graph.write_folder(tmp_path / "out")
        assert Snapshot.load(tmp_path / "out").id == Snapshot.load(folder).id

    def test_changes_show_in_the_written_folder(self, tmp_path: Path) -> None:
        """A change made on the server gives the written folder a different id."""
        graph = FakeGraph.from_folder(SAMPLE)
        graph.update_user(next(iter(graph.users)), accountEnabled=False)
        graph.write_folder(tmp_path / "out")
        assert Snapshot.load(tmp_path / "out").id != Snapshot.load(SAMPLE).id

    def test_write_folder_refuses_a_used_folder(self, tmp_path: Path) -> None:
        """Writing into a folder that holds files is a FileExistsError naming it."""
        (tmp_path / "stale.json").write_text("{}")
        with pytest.raises(FileExistsError, match="not an empty folder"):
            FakeGraph.from_folder(SAMPLE).write_folder(tmp_path)
