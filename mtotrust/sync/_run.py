"""One sync: Microsoft Graph -> a new generation of the SQLite store (or, on any failure, the old one untouched).

Every run fetches the local organization, the MTO tenants and the partner policies anew (they are small), then the
users: the whole directory through ``/users/delta`` on the first run, with ``--full``/``--reconcile`` or after
Graph refuses the stored link, else only the changes since the stored ``@odata.deltaLink``. Each users page is
validated and committed to the resume journal (:mod:`mtotrust.sync._journal`) with its next link as it arrives;
a thread fetches the next pages while one is processed. Then every
domain an external object names that the store has not mapped yet is looked up with
``findTenantInformationByDomainName`` (a 404 is remembered as "no tenant"), and the new snapshot is saved over the
store in one atomic replacement, the delta link and the remembered domains in its metadata.

A full round never merges: its result replaces the directory (objects the store held that the round does not
return are gone; ``--reconcile`` reports them as repaired drift).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx

from mtotrust import DirectoryUser, Snapshot, SnapshotError
from mtotrust import _graph as graph
from mtotrust._ingest import now
from mtotrust.sync._client import GRAPH_URL, GraphClient, GraphResponse, TokenSource
from mtotrust.sync._errors import GraphUnavailableError, ResyncRequired, SyncUsageError
from mtotrust.sync._journal import Journal, JournalRun

__all__ = ["DELTA_LINK_WARN_AGE", "SELECT", "SyncReport", "sync"]

SELECT = "id,userPrincipalName,mail,otherMails,proxyAddresses,userType,creationType,accountEnabled,identities"
"""The ``$select`` of the users delta: every field resolution reads."""

DELTA_LINK_WARN_AGE = dt.timedelta(days=5)
"""A stored delta link older than this is warned about: Graph keeps a user delta's state for about seven days."""

_ORGANIZATION = "/organization"
_MTO_TENANTS = "/tenantRelationships/multiTenantOrganization/tenants"
_PARTNERS = "/policies/crossTenantAccessPolicy/partners"
_USERS_DELTA = f"/users/delta?$select={SELECT}"
_LOG_RUNS = 20  # sync.log keeps the summaries of this many latest runs
_RESYNCS = 2  # full restarts one run makes after Graph refuses its links, before it gives up
_META_LINK, _META_LINK_AT, _META_NO_TENANT, _META_LOG = ("sync.delta_link", "sync.delta_link_at", "sync.no_tenant",
                                                         "sync.log")

Progress = Callable[[int, int, str], None]


@attrs.frozen(slots=True)
class SyncReport:
    """What one sync did (``to_dict()`` is the ``--json`` summary).

    ``repaired`` (a ``--reconcile`` run) are the ids of objects whose stored record the full pass created,
    changed or deleted: drift the delta rounds had missed. ``warnings`` are said on stderr by the command.
    """

    snapshot_id: str
    full: bool
    users: int
    added: int
    changed: int
    removed: int
    pages: int
    requests: int
    retries: int
    throttled_seconds: float
    elapsed_seconds: float
    dry_run: bool = False
    repaired: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the ``--json`` summary: exactly its documented keys."""
        return {"snapshot_id": self.snapshot_id, "full": self.full, "users": self.users, "added": self.added,
                "changed": self.changed, "removed": self.removed, "pages": self.pages, "requests": self.requests,
                "retries": self.retries, "throttled_seconds": round(self.throttled_seconds, 3),
                "elapsed_seconds": round(self.elapsed_seconds, 3)}


def sync(store: str | Path, *, tenant: str, tokens: TokenSource, graph_url: str = GRAPH_URL, full: bool = False,
         reconcile: bool = False, dry_run: bool = False, max_attempts: int = 8, max_wait: float = 600.0,
         progress: Progress | None = None, transport: httpx.BaseTransport | None = None,
         sleep: Callable[[float], None] = time.sleep) -> SyncReport:
    """Pull the tenant's directory from Graph into the store at ``store`` (created on the first run).

    ``tokens`` gives the bearer token (:class:`~mtotrust.sync.EnvToken`, :class:`~mtotrust.sync.AzureToken`, or
    :func:`~mtotrust.sync.token_source` from the command's options). ``progress(pages, 0, "users pages")`` is called
    after each users page. ``transport`` (an httpx transport, such as ``httpx.MockTransport``) and ``sleep`` (how
    to wait out throttling) are for tests and embedders; the defaults are the network and ``time.sleep``.

    Raises:
        GraphUnavailableError: Graph unreachable, or throttling past the caps (the store is unchanged).
        GraphAccessError: credentials refused, or a Graph permission missing (named).
        SyncUsageError: bad arguments, or Graph answers for another tenant than ``tenant``.
        SnapshotError: the store cannot be read or written, or Graph returned a document that is not valid.
    """
    started = time.monotonic()
    path = Path(store)
    tenant_id = _tenant_id(tenant)
    warnings: list[str] = []
    with contextlib.closing(Journal(None if dry_run else path)) as journal, \
            GraphClient(graph_url, tokens, max_attempts=max_attempts, max_wait=max_wait, transport=transport,
                        sleep=sleep) as client:
        # Loaded under the journal's lock: a sync that waited for another one starts from the generation it saved.
        base = Snapshot.load(path) if path.exists() else None
        if base is not None and base.tenant_id != tenant_id:
            raise SyncUsageError(f"the store {str(path)!r} holds tenant {base.tenant_id}, not --tenant "
                                 f"{tenant_id}; sync each tenant into its own store")
        meta = dict(base.metadata) if base is not None else {}
        link = meta.get(_META_LINK, "")
        organization = _collect(client, _ORGANIZATION)
        found = [str(org.get("id", "")).lower() for org in organization["value"] if isinstance(org, dict)]
        if found != [tenant_id]:
            raise SyncUsageError(f"Graph at {graph_url} answers for tenant {', '.join(found) or '(none)'}, not "
                                 f"--tenant {tenant_id}; check --tenant and the credential's tenant (the store is "
                                 "unchanged)")
        mto, partners = _collect(client, _MTO_TENANTS), _collect(client, _PARTNERS)
        is_full = base is None or full or reconcile or not link
        run = JournalRun(tenant_id, graph_url, base.id if base is not None else "", link, full=is_full)
        users, url = _resume(journal, run, fresh=full, progress=progress)
        if users is None:
            if not is_full:
                warnings += _link_age_warning(meta.get(_META_LINK_AT))
            journal.start(run)
            users, url = _Round(is_full, progress), _USERS_DELTA if is_full else link
        resyncs = 0
        while url is not None:
            fetcher = _Fetcher(client, url)
            try:
                for body, page, url, read_at in fetcher:
                    try:  # validated before it is kept: a bad page is never resumed
                        users.add(page, read_at)
                    except SnapshotError as exc:
                        raise GraphUnavailableError(f"Graph sent a users page that is not valid ({exc}); the store "
                                                    "is unchanged: sync again later") from exc
                    journal.commit(body, url, read_at)
            except ResyncRequired as refused:
                resyncs += 1
                if resyncs > _RESYNCS:
                    raise GraphUnavailableError(f"Graph refused the users delta {resyncs} times in one run, even a "
                                                "fresh one; try again later (the store is unchanged)") from None
                warnings.append(("Graph no longer accepts the stored delta link (its state expires after about 7 "
                                 "days)" if not users.full else "Graph refused a link of the users round") +
                                ": ran a full resync, which replaces the directory")
                run = attrs.evolve(run, full=True)
                journal.start(run)
                users, url = _Round(True, progress), _restart_url(refused.location, client)
            finally:
                fetcher.close()
        is_full, taken_at = users.full, users.read_at()
        if is_full:
            snap = Snapshot.from_users(organization=organization, mto=mto, domains={"value": []}, partners=partners,
                                       users=users.users.values(), taken_at=taken_at)
        else:
            assert base is not None
            snap = base.with_documents(organization=organization, mto=mto, partners=partners).with_delta(
                users.pages, taken_at=taken_at)
        # --reconcile maps every domain anew (a domain may have moved, a 404 become a tenant); others keep the map.
        keep = base is not None and not reconcile
        no_tenant = set(json.loads(meta.get(_META_NO_TENANT, "[]"))) if keep else set()
        snap = _map_domains(client, snap, base.domain_tenants if keep and base is not None else {}, no_tenant)
        added, changed, removed = _changes(base, snap, None if is_full else _touched(users.pages))
        counters = client.counters
        report = SyncReport(
            snapshot_id=snap.id, full=is_full, users=len(snap.users), added=len(added), changed=len(changed),
            removed=len(removed), pages=users.count, requests=counters.requests, retries=counters.retries,
            throttled_seconds=counters.throttled_seconds, elapsed_seconds=time.monotonic() - started,
            dry_run=dry_run, repaired=tuple(sorted((*added, *changed, *removed))) if reconcile else (),
            warnings=tuple(warnings))
        if dry_run:
            return report
        metadata = {**meta, _META_LINK: users.delta_link, _META_LINK_AT: taken_at.isoformat(),
                    _META_NO_TENANT: json.dumps(sorted(no_tenant)), _META_LOG: _log(meta.get(_META_LOG), report,
                                                                                   taken_at)}
        snap.save(path, metadata=metadata)
        journal.remove()
        return report


def _resume(journal: Journal, run: JournalRun, *, fresh: bool, progress: Progress | None
            ) -> tuple[_Round | None, str | None]:
    """Return the round a killed or failed run left in the journal, and the link to go on from.

    Resumed only by a run that starts where it started (see :class:`JournalRun`), never under ``--full``, and a
    delta round never by a run that must read everything (a full round, such as a resync, by any). A journal whose
    pages cannot be read again is discarded: the run starts afresh.
    """
    resumed = None if fresh else journal.resume(run)
    if resumed is None or (run.full and not resumed.full):
        return None, None
    users = _Round(resumed.full, progress)
    try:
        for body in resumed.bodies:
            users.add(json.loads(body), resumed.read_at)
    except (ValueError, SnapshotError):
        return None, None
    return users, resumed.next_link


def _tenant_id(text: str) -> str:
    """Return the ``--tenant`` value as a lower-case tenant id (a GUID)."""
    import uuid

    try:  # uuid reads any Unicode digit: only the ASCII form is a tenant id
        tenant = str(uuid.UUID(text.strip())) if text.isascii() else None
    except ValueError:
        tenant = None
    if tenant is None:
        raise SyncUsageError(f"--tenant {text!r} is not a tenant id; give the directory (tenant) id GUID, such as "
                             "00000000-0000-0000-0000-000000000000 (Entra admin center > Overview)")
    return tenant


def _collect(client: GraphClient, path: str) -> dict[str, Any]:
    """GET a collection, following ``@odata.nextLink``: ``{"value": [every item]}``."""
    items: list[Any] = []
    url: str | None = path
    while url is not None:
        response = client.get(url)
        assert response is not None
        page = response.json()
        if not isinstance(page, dict) or not isinstance(page.get("value"), list):
            raise GraphUnavailableError(f"Graph's answer to GET {path} has no 'value' list; it is not a Graph "
                                        "collection (check --graph-url)")
        items += page["value"]
        url = page.get("@odata.nextLink")
    return {"value": items}


def _links(page: Any, response: GraphResponse | None) -> tuple[str | None, str | None]:
    """Return a users delta page's ``(nextLink, deltaLink)``; exactly one is set."""
    if not isinstance(page, dict) or not isinstance(page.get("value"), list):
        where = f" ({urllib.parse.urlsplit(response.url).path})" if response is not None else ""
        raise GraphUnavailableError(f"a users delta page{where} has no 'value' list; it is not a Graph delta page "
                                    "(check --graph-url)")
    next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
    if (next_link is None) == (delta_link is None) or not isinstance(next_link or delta_link, str):
        raise GraphUnavailableError("a users delta page carries neither a string @odata.nextLink nor an "
                                    "@odata.deltaLink (or both); Graph's answer cannot be followed")
    return next_link, delta_link


def _restart_url(location: str | None, client: GraphClient) -> str:
    """Where a full resync starts after a 410: its ``Location`` (made absolute), else a fresh users delta."""
    if location:
        return urllib.parse.urljoin(client.url("/users/delta"), location)
    return _USERS_DELTA


class _Round:
    """The users pages of one round as they arrive: kept for a delta round, applied to a directory for a full one.

    Every page is validated as it arrives. A full round's objects are applied as they come (an object given twice
    updates itself, ``@removed`` removes it), so the directory is ready when the last page is.
    """

    def __init__(self, full: bool, progress: Progress | None) -> None:
        self.full, self.progress = full, progress
        self.users: dict[str, DirectoryUser] = {}
        self.pages: list[dict[str, Any]] = []
        self.count = 0
        self.delta_link = ""
        self._read_at = ""

    def add(self, page: dict[str, Any], read_at: str) -> None:
        """Take one page (decoded; its links already checked), read at ``read_at`` (ISO 8601)."""
        self.count += 1
        objects = graph.parse_users_page(page, f"users delta page {self.count}")
        if self.full:
            users = self.users
            for obj in objects:
                uid = obj["id"]
                new = graph.apply_entry(users.get(uid), obj)
                if new is None:
                    users.pop(uid, None)
                else:
                    users[uid] = new
        else:
            self.pages.append(page)
        self.delta_link, self._read_at = page.get("@odata.deltaLink") or "", read_at
        if self.progress is not None:
            self.progress(self.count, 0, "users pages")

    def read_at(self) -> dt.datetime:
        """Return when the last page was read (the synced generation's ``taken_at``); now, for no page."""
        return dt.datetime.fromisoformat(self._read_at) if self._read_at else now()


_Fetched = tuple[bytes, dict[str, Any], str | None, str]  # body, decoded page, next link, when it was read


class _Fetcher:
    """GET the users pages from ``url`` on, on a thread that stays a few pages ahead of the reader.

    While a GET waits on Graph, the previous page is validated, applied and journaled. Iterating yields
    ``(body, page, next_link, read_at)`` in order and raises what the fetching raised; every link is checked to lead
    to the Graph host before it is yielded (so no run keeps a link to elsewhere).
    """

    _AHEAD = 4  # pages fetched and not yet read, at most

    def __init__(self, client: GraphClient, url: str) -> None:
        self._queue: queue.Queue[_Fetched | BaseException] = queue.Queue(self._AHEAD)
        self._finished = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client, url), name="mtotrust-sync-fetch",
                                        daemon=True)
        self._thread.start()

    def _run(self, client: GraphClient, url: str | None) -> None:
        try:
            while url is not None and not self._stop.is_set():
                response = client.get(url)
                assert response is not None
                page = response.json()
                url, delta_link = _links(page, response)
                client.target(url or delta_link or "")
                self._put((response.body, page, url, now().isoformat()))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(exc)

    def _put(self, item: _Fetched | BaseException) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.05)
                return

    def __iter__(self) -> Iterator[_Fetched]:
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            yield item
            if item[2] is None:
                self._finished = True
                return

    def close(self) -> None:
        """Stop fetching.

        The thread has ended unless the reader stopped early (an error, an interrupt); then it sends nothing more,
        and ends when the GET under way does (at the latest at the client's timeout).
        """
        self._stop.set()
        self._thread.join(timeout=None if self._finished else 0.1)


def _touched(pages: Iterable[dict[str, Any]]) -> set[str]:
    """Return the ids a delta round names."""
    return {obj["id"] for page in pages for obj in page["value"] if isinstance(obj, dict) and "id" in obj}


def _external_domains(snap: Snapshot) -> set[str]:
    """Return the domains external objects name (addresses, decoded ``#EXT#`` names), local ones left out.

    Read from the snapshot's address index, which already holds every address each object answers to: a domain
    is named once an address at it belongs to an external object.
    """
    skip = set(snap.local_domains)  # and, as they are found, the domains already named
    named: set[str] = set()
    lookup, is_external = snap.lookup, snap.is_external
    for address in snap.addresses():
        domain = address[address.rindex("@") + 1:]
        if domain not in skip and any(is_external(user) for user in lookup(address)):
            named.add(domain)
            skip.add(domain)
    return named


def _map_domains(client: GraphClient, snap: Snapshot, known: Mapping[str, str], no_tenant: set[str]) -> Snapshot:
    """Return ``snap`` with its domain map: the local domains and every domain an external object names.

    A domain ``known`` maps (the stored map of a delta round; nothing for a full round, which maps every domain
    anew) or ``no_tenant`` holds (404s remembered) is not looked up again; any other is, with
    ``findTenantInformationByDomainName``. The map follows the directory: a domain no object names any more is
    dropped, so a store's map (and id) depends on the directory alone, not on the history of syncs.
    """
    named = _external_domains(snap)
    rows = {d: {"domainName": d, "tenantId": t} for d, t in known.items() if d in named}
    # The local verified domains are the local tenant's: mapped without a lookup, as an export maps them.
    rows.update({d: {"domainName": d, "tenantId": snap.tenant_id} for d in snap.local_domains})
    no_tenant &= named
    for domain in sorted(named - rows.keys() - no_tenant):
        quoted = urllib.parse.quote(domain.replace("'", "''"), safe="")
        response = client.get(f"/tenantRelationships/findTenantInformationByDomainName(domainName='{quoted}')",
                              missing_ok=True)
        info = response.json() if response is not None else None
        tenant = info.get("tenantId") if isinstance(info, dict) else None
        if not isinstance(info, dict) or not isinstance(tenant, str) or not tenant:
            no_tenant.add(domain)
            continue
        name = info.get("displayName")
        rows[domain] = {"domainName": domain, "tenantId": tenant.lower(),
                        **({"displayName": name} if isinstance(name, str) else {})}
    if {d: row["tenantId"] for d, row in rows.items()} == dict(snap.domain_tenants):
        return snap
    try:
        return snap.with_documents(domains={"value": [rows[d] for d in sorted(rows)]})
    except SnapshotError as exc:
        raise GraphUnavailableError(f"findTenantInformationByDomainName returned a tenant that cannot be stored "
                                    f"({exc})") from exc


def _changes(base: Snapshot | None, snap: Snapshot, ids: set[str] | None) -> tuple[list[str], list[str], list[str]]:
    """Return the ids whose stored record this sync creates, alters and deletes (among ``ids``, or all)."""
    old: Mapping[str, Any] = base.users if base is not None else {}
    new = snap.users
    chosen = ids if ids is not None else set(old) | set(new)
    added = [i for i in chosen if i in new and i not in old]
    removed = [i for i in chosen if i in old and i not in new]
    changed = [i for i in chosen if i in old and i in new and old[i] != new[i]]
    return added, changed, removed


def _link_age_warning(stamp: str | None) -> list[str]:
    """Return a warning when the stored delta link is older than five days (Graph keeps its state ~7)."""
    if not stamp:
        return []
    with contextlib.suppress(ValueError):
        age = now() - dt.datetime.fromisoformat(stamp)
        if age > DELTA_LINK_WARN_AGE:
            return [f"the stored delta link is {age.days} days old; Graph keeps user delta state for about 7 days, "
                    "so this sync may have to run a full resync: sync at least daily"]
    return []


def _log(previous: str | None, report: SyncReport, at: dt.datetime) -> str:
    """``sync.log``: the summaries of the latest runs, newest last."""
    runs: list[Any] = []
    with contextlib.suppress(ValueError):
        runs = json.loads(previous or "[]")
    if not isinstance(runs, list):
        runs = []
    return json.dumps([*runs, {"at": at.isoformat(), **report.to_dict()}][-_LOG_RUNS:], separators=(",", ":"))
