"""``FakeGraph``: a Microsoft Graph v1.0 test server on 127.0.0.1, for testing sync pipelines without a tenant.

A sync client (``mtotrust sync``, or your own pipeline) is pointed at :attr:`FakeGraph.url` instead of
``https://graph.microsoft.com``. The server answers the requests a directory sync makes, in Graph's shapes:

- ``GET /v1.0/organization``, ``/tenantRelationships/multiTenantOrganization/tenants`` and
  ``/policies/crossTenantAccessPolicy/partners``: collections of ``value`` pages, with ``@odata.nextLink`` when
  longer than :attr:`~FakeGraph.page_size`;
- ``GET /v1.0/users/delta``: delta rounds (a full round, then the changes since a ``@odata.deltaLink``), honouring
  ``$select``, with ``@removed`` tombstones;
- ``GET /v1.0/tenantRelationships/findTenantInformationByDomainName(domainName='…')``: ``tenantInformation``, or
  404 for a domain no tenant owns.

Tests change the directory between rounds (:meth:`~FakeGraph.put_user`, :meth:`~FakeGraph.update_user`,
:meth:`~FakeGraph.remove_user`), expire delta links (:meth:`~FakeGraph.expire_tokens`), inject faults
(:meth:`~FakeGraph.fault`: throttling, dropped connections, stalls, empty pages, duplicates, high usage, links to
another host) and inspect every request received (:attr:`~FakeGraph.requests`). Only the standard library is used
(:mod:`http.server` in a daemon thread), so the server needs no extra and no network beyond loopback.

Shapes follow Microsoft's documentation, cited where they decide behaviour:
https://learn.microsoft.com/en-us/graph/delta-query-users (pages and links),
https://learn.microsoft.com/en-us/graph/delta-query-overview (tokens, ``@removed``, synchronization reset),
https://learn.microsoft.com/en-us/graph/errors (the error body).

Why this module is over 700 lines: it is one concept, a Graph tenant as a sync sees it, and its parts (the
directory with its change sequence, the frozen delta rounds and their tokens, the faults, the HTTP handler) all
encode the same protocol; split apart, a change to how a round is served would have to be made in step in several.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import secrets
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs

__all__ = ["FAULT_KINDS", "SELECT", "FakeGraph", "RecordedRequest"]

SELECT = ("id", "userPrincipalName", "mail", "otherMails", "proxyAddresses", "userType", "creationType",
          "accountEnabled", "identities")
"""The ``$select`` list ``mtotrust sync`` sends on ``/users/delta``."""

FAULT_KINDS = ("status", "drop", "stall", "empty_page", "duplicate", "usage", "elsewhere")
"""The fault kinds :meth:`FakeGraph.fault` injects."""

_DELTA_PATHS = ("/v1.0/users/delta", "/v1.0/users/delta()", "/v1.0/users/microsoft.graph.delta",
                "/v1.0/users/microsoft.graph.delta()")  # /delta is the short name of microsoft.graph.delta
_ORGANIZATION = "/v1.0/organization"
_MTO_TENANTS = "/v1.0/tenantRelationships/multiTenantOrganization/tenants"
_PARTNERS = "/v1.0/policies/crossTenantAccessPolicy/partners"
_FIND_TENANT = re.compile(r"/v1\.0/tenantRelationships/findTenantInformationByDomainName\(domainName='(.*)'\)",
                          re.DOTALL)
_ELSEWHERE = "https://graph.example.invalid"  # .invalid never resolves (RFC 2606): a link nobody may follow
_EXPIRY_WAYS = ("gone", "syncStateNotFound", "resyncRequired")
# Graph's error codes per status, used when a "status" fault names none. 403 and 404 are the directory's codes
# (Authorization_RequestDenied, Request_ResourceNotFound: microsoftgraph/msgraph-sdk-dotnet#1795).
_DEFAULT_CODES = {400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
                  404: "Request_ResourceNotFound", 405: "Request_BadRequest", 409: "Conflict",
                  410: "resyncRequired", 429: "TooManyRequests", 500: "InternalServerError",
                  502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
_FOLDER_PAGE = 1000  # users per page file written by write_folder
_JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _token() -> str:
    """Return a fresh opaque state token, shaped like Graph's (URL-safe base64)."""
    return secrets.token_urlsafe(48)


@attrs.define
class RecordedRequest:
    """One request the server received, recorded when it arrived.

    Attributes:
        method: the HTTP method.
        path: the path before ``?``, percent-decoded (``/v1.0/users/delta``).
        query: the query parameters (``{"$select": "id,mail"}``), decoded.
        headers: the request headers, names in lower case.
        status: the status sent; ``0`` while the request is held by a ``stall`` fault, or when nothing was sent.

    .. versionadded:: 0.1.0
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@attrs.define
class _Fault:
    kind: str
    path: str
    params: dict[str, Any]
    skip: int = 0  # matching requests to let through untouched first


@attrs.frozen
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _Round:
    """One delta round, frozen when it starts: its entries, its ``$select`` and the deltaLink it ends with."""

    __slots__ = ("delta_token", "entries", "select", "select_param", "skip")

    def __init__(self, entries: list[dict[str, Any]], select_param: str | None, delta_token: str) -> None:
        self.entries = entries
        self.select_param = select_param
        self.select = _parse_select(select_param)
        self.delta_token = delta_token
        self.skip: dict[int, str] = {}  # offset -> the $skiptoken issued for it (a retried page gets the same)


def _parse_select(param: str | None) -> tuple[str, ...] | None:
    if param is None:
        return None
    fields = [f.strip() for f in param.split(",") if f.strip() and f.strip() != "id"]
    return ("id", *dict.fromkeys(fields))


def _project(obj: dict[str, Any], select: tuple[str, ...] | None) -> dict[str, Any]:
    """Return the selected fields of an object (``id`` always); a tombstone as it is."""
    if select is None or "@removed" in obj:
        return obj
    return {k: obj[k] for k in select if k in obj}


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


class FakeGraph:
    """A Microsoft Graph v1.0 server on 127.0.0.1 serving one tenant's directory, with injectable faults.

    Use it as a context manager (or :meth:`start` / :meth:`stop`); point the client at :attr:`url`::

        with FakeGraph.from_folder("snapshot/") as graph:
            run_my_sync(graph_url=graph.url, token=graph.token)
            graph.update_user(user_id, accountEnabled=False)
            run_my_sync(graph_url=graph.url, token=graph.token)   # the delta round holds that one change

    Every request must carry ``Authorization: Bearer <token>`` (else 401 ``InvalidAuthenticationToken``). Only
    GET is served (others are 405). Errors carry Graph's body ``{"error": {"code", "message", "innerError":
    {"date", "request-id", "client-request-id"}}}`` (https://learn.microsoft.com/en-us/graph/errors).

    **Delta.** Every directory change bumps a sequence number. A round starts with a request without a
    ``$skiptoken`` and is frozen then (later changes do not leak into it); it is served in pages of
    :attr:`page_size` linked by ``@odata.nextLink`` (``…/users/delta?$skiptoken=…``), the last one carrying
    ``@odata.deltaLink`` (``…/users/delta?$deltatoken=…``) that remembers the sequence number at the round's
    start. A round from a deltaLink holds each object changed since then once, whole and in its newest state (the
    selected fields), and ``{"id", "@removed": {"reason"}}`` for each object removed since then and not re-added.
    Tokens are opaque and keep the first request's ``$select``, as Graph's do. ``$deltatoken=latest`` returns
    only a deltaLink ("sync from now"); an empty ``$deltatoken`` starts a full round. A token never issued, or
    issued before :meth:`expire_tokens`, is refused the way the last :meth:`expire_tokens` said (by default
    410 Gone).

    Args:
        organization: the local tenant's ``organization`` object (``id``, ``displayName``, ``verifiedDomains``).
        mto_tenants: the ``multiTenantOrganizationMember`` objects.
        partners: the ``crossTenantAccessPolicyConfigurationPartner`` objects.
        tenants_by_domain: domain → ``tenantInformation`` (``tenantId``, ``displayName``, ``defaultDomainName``,
            ``federationBrandName``) that ``findTenantInformationByDomainName`` answers; case-insensitive.
        users: the user objects (Graph field names; ``id`` required). The server keeps the dicts and never
            changes them in place (a change replaces the object), so do not mutate them after passing them.
        page_size: the objects per page of every collection.
        token: the bearer token accepted.

    Attributes:
        url: ``"http://127.0.0.1:PORT"`` once started (``""`` before).
        token: the bearer token accepted now; assign to make the client's token stale.
        page_size: the objects per page; assignable (applies to pages served afterwards).
        requests: every request received, in order (:class:`RecordedRequest`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, organization: Mapping[str, Any], mto_tenants: Iterable[Mapping[str, Any]] = (),
                 partners: Iterable[Mapping[str, Any]] = (),
                 tenants_by_domain: Mapping[str, Mapping[str, Any]] | None = None,
                 users: Iterable[Mapping[str, Any]] = (), page_size: int = 200,
                 token: str = "test-token") -> None:  # noqa: S107 - a test server's well-known token
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1 (got {page_size!r})")
        self.organization = dict(organization)
        self.mto_tenants = [dict(t) for t in mto_tenants]
        self.partners = [dict(p) for p in partners]
        self.tenants_by_domain = {d.lower(): dict(info) for d, info in (tenants_by_domain or {}).items()}
        self.page_size = page_size
        self.token = token
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self._users: dict[str, dict[str, Any]] = {}
        for obj in users:
            uid = obj.get("id")
            if not isinstance(uid, str) or not uid:
                raise ValueError(f"every user object needs a string id; got {obj!r}")
            if uid in self._users:
                raise ValueError(f"duplicate user id {uid!r}; pass each object once (use update_user for changes)")
            self._users[uid] = obj if isinstance(obj, dict) else dict(obj)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._seq = 0
        self._log: list[tuple[int, str]] = []  # (sequence, user id) of every change, in order
        self._removed: dict[str, str] = {}  # id -> reason, for removed objects not re-added
        self._rounds: dict[str, tuple[_Round, int]] = {}  # $skiptoken -> (round, offset)
        self._delta: dict[str, tuple[int, str | None]] = {}  # $deltatoken -> (sequence, $select)
        self._lists: dict[str, tuple[str, list[dict[str, Any]], int]] = {}  # list $skiptoken -> (path, items, at)
        self._expired: dict[str, str | None] = {}  # refused token -> its round's $select, for the Location
        self._refusal = "gone"
        self._faults: list[_Fault] = []
        self._released = 0  # release() generation
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- building ------------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], **kwargs: Any) -> FakeGraph:
        """Return a server for the directory of a snapshot folder (see ``docs/snapshot.md``).

        ``organization.json``, ``mto.json``, ``partners.json`` (optional) and ``users/*.json`` are read as Graph
        returned them, ``delta/*.json`` pages are applied in file-name order (a partial object updates the fields
        it carries, ``@removed`` removes) and each ``domains.json`` row becomes ``tenants_by_domain[domainName]``
        (``tenantId``, ``displayName``, ``defaultDomainName``: the tenant's first listed domain that is not an
        ``onmicrosoft.com`` one, ``federationBrandName``: ``null``). ``kwargs`` go to the constructor.

        Raises:
            FileNotFoundError: for a missing required file, naming it.
        """
        root = Path(path)

        def read(name: str) -> Any:
            file = root / name
            if not file.is_file():
                raise FileNotFoundError(f"{str(file)!r} is missing; a snapshot folder holds organization.json, "
                                        "mto.json, domains.json and users/*.json")
            return json.loads(file.read_bytes())

        organization = read("organization.json")["value"][0]
        partners = read("partners.json")["value"] if (root / "partners.json").is_file() else []
        if not (root / "users").is_dir():
            raise FileNotFoundError(f"{str(root / 'users')!r} is missing; put the GET /users pages there")
        users: dict[str, dict[str, Any]] = {}
        for file in sorted((root / "users").glob("*.json")):
            for obj in json.loads(file.read_bytes())["value"]:
                users[obj["id"]] = obj
        delta_dir = root / "delta"
        for file in sorted(delta_dir.glob("*.json")) if delta_dir.is_dir() else ():
            if file.name == "snapshot.json":
                continue
            for entry in json.loads(file.read_bytes())["value"]:
                uid = entry["id"]
                if entry.get("@removed") is not None:
                    users.pop(uid, None)
                else:
                    users[uid] = {**users.get(uid, {}), **entry}
        return cls(organization=organization, mto_tenants=read("mto.json")["value"], partners=partners,
                   tenants_by_domain=_tenants_by_domain(read("domains.json")["value"], organization),
                   users=users.values(), **kwargs)

    def write_folder(self, path: str | os.PathLike[str]) -> None:
        """Write the current directory as a snapshot folder that :meth:`mtotrust.Snapshot.load` reads.

        ``organization.json``, ``mto.json``, ``partners.json``, ``domains.json`` (from ``tenants_by_domain``)
        and ``users/0001.json`` … (1000 objects a page); no ``snapshot.json``, so the folder's time is its
        files' time. A folder written from :meth:`from_folder`'s input, unchanged, has the same ``Snapshot.id``.

        Raises:
            FileExistsError: when ``path`` exists and is not an empty folder (stale pages would be read too).
        """
        root = Path(path)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f"{str(root)!r} exists and is not an empty folder; give a new folder")
        (root / "users").mkdir(parents=True, exist_ok=True)
        with self._lock:
            users = list(self._users.values())
            rows = [{"domainName": d, "tenantId": info["tenantId"],
                     **({"displayName": info["displayName"]} if info.get("displayName") is not None else {})}
                    for d, info in sorted(self.tenants_by_domain.items())]
            docs = {"organization": [self.organization], "mto": self.mto_tenants, "partners": self.partners,
                    "domains": rows}
        for name, value in docs.items():
            (root / f"{name}.json").write_bytes(_dumps({"value": value}) + b"\n")
        for number, start in enumerate(range(0, max(len(users), 1), _FOLDER_PAGE), 1):
            (root / "users" / f"{number:04d}.json").write_bytes(
                _dumps({"value": users[start:start + _FOLDER_PAGE]}) + b"\n")

    # -- directory changes -----------------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """A copy of the current directory: id → user object (do not mutate the objects)."""
        with self._lock:
            return dict(self._users)

    def _changed(self, uid: str) -> None:
        self._seq += 1
        self._log.append((self._seq, uid))

    def put_user(self, obj: Mapping[str, Any]) -> None:
        """Add a user object, or replace the one with its ``id`` whole; the next delta round holds it."""
        uid = obj.get("id")
        if not isinstance(uid, str) or not uid:
            raise ValueError(f"a user object needs a string id; got {dict(obj)!r}")
        with self._lock:
            self._users[uid] = dict(obj)
            self._removed.pop(uid, None)
            self._changed(uid)

    def update_user(self, user_id: str, **fields: Any) -> None:
        """Change some fields of a user (Graph names: ``accountEnabled=False``); the next delta round holds it.

        Raises:
            KeyError: for an id not in the directory.
        """
        with self._lock:
            if user_id not in self._users:
                raise KeyError(f"no user {user_id!r} in the directory; add it with put_user first")
            self._users[user_id] = {**self._users[user_id], **fields}
            self._changed(user_id)

    def remove_user(self, user_id: str, reason: str = "deleted") -> None:
        """Remove a user: ``"deleted"`` (permanently) or ``"changed"`` (soft-deleted, restorable).

        The next delta round holds ``{"id": user_id, "@removed": {"reason": reason}}``
        (https://learn.microsoft.com/en-us/graph/delta-query-users).

        Raises:
            KeyError: for an id not in the directory.
            ValueError: for another reason.
        """
        if reason not in ("deleted", "changed"):
            raise ValueError(f"reason must be 'deleted' or 'changed' (got {reason!r})")
        with self._lock:
            if self._users.pop(user_id, None) is None:
                raise KeyError(f"no user {user_id!r} in the directory; nothing to remove")
            self._removed[user_id] = reason
            self._changed(user_id)

    def expire_tokens(self, how: str = "gone") -> None:
        """Refuse every delta link (``$skiptoken`` and ``$deltatoken``) issued so far, and unknown ones, so.

        ``"gone"``: 410 with a ``Location`` header holding the initial query with an empty ``$deltatoken``
        (https://learn.microsoft.com/en-us/graph/delta-query-overview#synchronization-reset);
        ``"syncStateNotFound"``: 400 with that error code, what Graph answers for a directory delta token older
        than seven days (https://devblogs.microsoft.com/microsoft365dev/duration-of-change-tracking-tokens-for-identity-and-education-resources/);
        ``"resyncRequired"``: 400 with that error code.

        Raises:
            ValueError: for another ``how``.
        """
        if how not in _EXPIRY_WAYS:
            raise ValueError(f"how must be one of {', '.join(map(repr, _EXPIRY_WAYS))} (got {how!r})")
        with self._lock:
            self._refusal = how
            self._expired.update({t: r.select_param for t, (r, _) in self._rounds.items()})
            self._expired.update({t: select for t, (_, select) in self._delta.items()})
            self._rounds.clear()
            self._delta.clear()

    # -- faults ----------------------------------------------------------------------------------------------

    def fault(self, kind: str, *, path: str = "/v1.0/users/delta", times: int = 1, skip: int = 0,
              **params: Any) -> None:
        """Queue a fault for the next ``times`` requests whose path (before ``?``) starts with ``path``.

        Faults are consumed in the order queued, one per matching request; ``skip`` lets that many matching
        requests through untouched first (``skip=2`` hits the third users page, whenever the client asks it).
        Kinds and their ``params``:

        - ``"status"``: answer ``status`` (``status=429``) with a Graph error body (``code``, ``message``, else
          Graph's code for that status) and ``Retry-After: retry_after`` when given (a str: seconds or an HTTP
          date);
        - ``"drop"``: send the headers with the full ``Content-Length``, half the body, then close the connection;
        - ``"stall"``: hold the request until :meth:`release` or :meth:`stop`, then serve it (after release);
        - ``"empty_page"``: answer an empty page whose ``@odata.nextLink`` leads to the page asked for;
        - ``"duplicate"``: the page repeats its first object at its end;
        - ``"usage"``: add ``x-ms-throttle-limit-percentage: value`` (high usage, ``value`` 0.8 to 1.8:
          https://learn.microsoft.com/en-us/graph/throttling-limits#regular-responses-requests);
        - ``"elsewhere"``: the page's ``@odata.nextLink`` (or deltaLink) points at ``host`` (default
          ``https://graph.example.invalid``) instead of :attr:`url`.

        Raises:
            ValueError: for an unknown kind, ``times`` below 1, or a ``status`` fault without ``status``.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if times < 1 or skip < 0:
            raise ValueError(f"times must be at least 1 and skip at least 0 (got {times!r}, {skip!r})")
        if kind == "status" and not isinstance(params.get("status"), int):
            raise ValueError(f"a 'status' fault needs status=<int>, such as status=429 (got {params!r})")
        with self._lock:
            self._faults += [_Fault(kind, path, dict(params), skip), *[_Fault(kind, path, dict(params))] * (times - 1)]

    def release(self) -> None:
        """Let every request held by a ``stall`` fault go on (later stalls hold again)."""
        with self._lock:
            self._released += 1
            self._wake.notify_all()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> FakeGraph:
        """Start serving on a free port of 127.0.0.1 (see :attr:`url`) and return the server."""
        if self._server is not None:
            raise RuntimeError(f"FakeGraph is already serving at {self.url}; stop() it first")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.graph = self
        self._stopping = False
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeGraph {self.url}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: stalled requests end without an answer and open connections are closed."""
        server, thread = self._server, self._thread
        if server is None:
            return
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            connections = list(self._connections)
        server.shutdown()
        server.server_close()
        for conn in connections:
            _shut(conn)
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FakeGraph {self.url or 'stopped'} users={len(self._users)} sequence={self._seq}>"

    # -- serving ---------------------------------------------------------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        for i, found in enumerate(self._faults):
            if path.startswith(found.path):
                if found.skip:
                    found.skip -= 1
                    return None
                return self._faults.pop(i)
        return None

    def _error(self, status: int, code: str, message: str, client_request_id: str,
               headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
        # https://learn.microsoft.com/en-us/graph/errors: {"error": {"code", "message", "innerError": {...}}}
        body = {"error": {"code": code, "message": message, "innerError": {
            "date": _now_text(), "request-id": str(uuid.uuid4()), "client-request-id": client_request_id}}}
        return _Reply(status, _dumps(body), headers)

    def _answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
                ) -> tuple[_Reply | None, _Fault | None]:
        """Return the reply to one request (``None`` when a stall ended by stop) and the fault it consumed."""
        crid = headers.get("client-request-id") or str(uuid.uuid4())
        if method != "GET":
            return self._error(405, "Request_BadRequest", f"The HTTP method {method!r} is not allowed on "
                               f"{path!r}; FakeGraph serves GET only.", crid, (("Allow", "GET"),)), None
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.token}":
            what = "Access token is empty." if not auth else "Access token validation failure. Invalid audience."
            return self._error(401, "InvalidAuthenticationToken", what, crid,
                               (("WWW-Authenticate", 'Bearer realm="", error="invalid_token"'),)), None
        with self._lock:
            fault = self._take_fault(path)
            if fault is not None and fault.kind == "stall":
                generation = self._released
                while self._released == generation and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return None, fault
        if fault is not None and fault.kind == "status":
            status = int(fault.params["status"])
            extra = (("Retry-After", str(fault.params["retry_after"])),) \
                if fault.params.get("retry_after") is not None else ()
            code = fault.params.get("code") or _DEFAULT_CODES.get(status, "UnknownError")
            message = fault.params.get("message") or f"Injected fault: status {status}."
            return self._error(status, code, message, crid, extra), fault
        kind = fault.kind if fault is not None else None
        params = fault.params if fault is not None else {}
        reply = self._route(path, query, crid, kind, params)
        if kind == "usage":
            reply = attrs.evolve(reply, headers=(*reply.headers,
                                                 ("x-ms-throttle-limit-percentage", str(params.get("value", 1.2)))))
        return reply, fault

    def _route(self, path: str, query: dict[str, str], crid: str, kind: str | None,
               params: dict[str, Any]) -> _Reply:
        lower = {k.lower(): v for k, v in query.items()}  # OData system query options ignore case
        if path in _DELTA_PATHS:
            return self._users_delta(lower, crid, kind, params)
        lists = {_ORGANIZATION: ("organization", [self.organization]), _MTO_TENANTS: (
            "tenantRelationships/multiTenantOrganization/tenants", self.mto_tenants),
                 _PARTNERS: ("policies/crossTenantAccessPolicy/partners", self.partners)}
        if path in lists:
            return self._list(path, *lists[path], lower, crid, kind, params)
        found = _FIND_TENANT.fullmatch(path)
        if found is not None:
            domain = found.group(1).replace("''", "'")  # OData doubles a quote inside a string literal
            info = self.tenants_by_domain.get(domain.lower())
            if info is None:
                # 404 for a domain no tenant owns: what Microsoft's Entra PowerShell module (Resolve-EntraIdTenant)
                # checks for; the error code is the directory's not-found code (UNCONFIRMED for this function).
                return self._error(404, "Request_ResourceNotFound", f"Resource '{domain}' does not exist or one "
                                   "of its queried reference-property objects are not present.", crid)
            # https://learn.microsoft.com/en-us/graph/api/tenantrelationship-findtenantinformationbydomainname
            doc = {"@odata.context": f"{self.url}/v1.0/$metadata#microsoft.graph.tenantInformation",
                   "tenantId": info["tenantId"], "federationBrandName": info.get("federationBrandName"),
                   "displayName": info.get("displayName"), "defaultDomainName": info.get("defaultDomainName")}
            return _Reply(200, _dumps(doc))
        # Graph itself answers an unknown segment with 400 "Resource not found for the segment"; a fake answers
        # 404 so that a client calling a wrong path fails loudly as "not found".
        return self._error(404, "Request_ResourceNotFound", f"Resource not found for the segment {path!r}; "
                           "FakeGraph serves /organization, /tenantRelationships/multiTenantOrganization/tenants, "
                           "/policies/crossTenantAccessPolicy/partners, /users/delta and "
                           "/tenantRelationships/findTenantInformationByDomainName(domainName='…').", crid)

    def _link(self, path: str, token_name: str, token: str, kind: str | None, params: dict[str, Any]) -> str:
        base = str(params.get("host", _ELSEWHERE)) if kind == "elsewhere" else self.url
        return f"{base}{path}?{token_name}={token}"

    def _list(self, path: str, entity: str, items: list[dict[str, Any]], query: dict[str, str], crid: str,
              kind: str | None, params: dict[str, Any]) -> _Reply:
        skip = query.get("$skiptoken")
        with self._lock:
            if skip is None:
                items, offset = list(items), 0
            elif skip in self._lists and self._lists[skip][0] == path:
                _, items, offset = self._lists[skip]
            else:
                return self._error(400, "BadRequest", f"The $skiptoken {skip!r} was not issued for {path!r}; "
                                   "follow @odata.nextLink exactly as returned.", crid)
            if kind == "empty_page":
                token = _token()
                self._lists[token] = (path, items, offset)
                return self._page(f"{self.url}/v1.0/$metadata#{entity}", [], "@odata.nextLink",
                                  self._link(path, "$skiptoken", token, None, params))
            page = items[offset:offset + self.page_size]
            link = None
            if offset + self.page_size < len(items):
                token = _token()
                self._lists[token] = (path, items, offset + self.page_size)
                link = self._link(path, "$skiptoken", token, kind, params)
        if kind == "duplicate" and page:
            page = [*page, page[0]]
        return self._page(f"{self.url}/v1.0/$metadata#{entity}", page, "@odata.nextLink", link)

    @staticmethod
    def _page(context: str, value: list[dict[str, Any]], link_name: str, link: str | None) -> _Reply:
        doc: dict[str, Any] = {"@odata.context": context}
        if link is not None:
            doc[link_name] = link
        doc["value"] = value
        return _Reply(200, _dumps(doc))

    def _refuse(self, token: str, crid: str) -> _Reply:
        """Refuse an expired or unknown delta token the way :meth:`expire_tokens` last said."""
        select = self._expired.get(token)
        if self._refusal == "gone":
            # https://learn.microsoft.com/en-us/graph/delta-query-overview#synchronization-reset: 410 Gone and a
            # Location holding the initial query with an empty $deltatoken.
            location = f"{self.url}/v1.0/users/delta?" + (
                f"$select={select}&" if select is not None else "") + "$deltatoken="
            return self._error(410, "resyncRequired", "The delta token is no longer valid; start a full "
                               "synchronization from the Location URL.", crid, (("Location", location),))
        if self._refusal == "syncStateNotFound":
            return self._error(400, "syncStateNotFound", "The sync state generation is not found. The delta token "
                               "is expired and data must be synchronized again.", crid)
        return self._error(400, "resyncRequired", "Resync required: the delta token is no longer valid; replace "
                           "the local copy with a full synchronization.", crid)

    def _users_delta(self, query: dict[str, str], crid: str, kind: str | None, params: dict[str, Any]) -> _Reply:
        skip, delta = query.get("$skiptoken"), query.get("$deltatoken")
        with self._lock:
            if skip is not None:
                if skip not in self._rounds:
                    return self._refuse(skip, crid)
                round_, offset = self._rounds[skip]
                first = False
            elif delta == "latest":  # "sync from now": only a deltaLink (delta-query-overview)
                token = _token()
                self._delta[token] = (self._seq, query.get("$select"))
                return self._page(f"{self.url}/v1.0/$metadata#users", [], "@odata.deltaLink",
                                  self._link("/v1.0/users/delta", "$deltatoken", token, kind, params))
            else:
                if delta:
                    if delta not in self._delta:
                        return self._refuse(delta, crid)
                    since, select_param = self._delta[delta]
                    entries = self._changes_since(since)
                else:  # a first request, or the empty $deltatoken of a 410's Location: a full round
                    select_param = query.get("$select")
                    entries = list(self._users.values())
                round_, offset, first = _Round(entries, select_param, _token()), 0, True
                self._delta[round_.delta_token] = (self._seq, select_param)
            if kind == "empty_page":
                token = _token()
                self._rounds[token] = (round_, offset)
                link_name, link = "@odata.nextLink", self._link("/v1.0/users/delta", "$skiptoken", token, None, {})
                page: list[dict[str, Any]] = []
            else:
                size = self.page_size
                page = round_.entries[offset:offset + size]
                if offset + size < len(round_.entries):
                    token = round_.skip.get(offset + size) or _token()
                    round_.skip[offset + size] = token
                    self._rounds[token] = (round_, offset + size)
                    link_name = "@odata.nextLink"
                    link = self._link("/v1.0/users/delta", "$skiptoken", token, kind, params)
                else:
                    link_name = "@odata.deltaLink"
                    link = self._link("/v1.0/users/delta", "$deltatoken", round_.delta_token, kind, params)
        select = round_.select
        value = page if select is None else [_project(obj, select) for obj in page]
        if kind == "duplicate" and value:
            value.append(value[0])
        # The first page names the selected properties in its context, later pages do not (delta-query-users).
        context = f"{self.url}/v1.0/$metadata#users" + (
            f"({','.join(select)})" if first and select is not None else "")
        return self._page(context, value, link_name, link)

    def _changes_since(self, since: int) -> list[dict[str, Any]]:
        """Each object changed after sequence ``since`` once, newest state; tombstones for the removed ones."""
        start = bisect.bisect_right(self._log, since, key=lambda change: change[0])
        latest = dict.fromkeys(uid for _, uid in itertools.islice(self._log, start, None))
        entries = []
        for uid in latest:
            obj = self._users.get(uid)
            entries.append(obj if obj is not None else {"id": uid, "@removed": {"reason": self._removed[uid]}})
        return entries


def _tenants_by_domain(rows: list[dict[str, Any]], organization: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Turn ``domains.json`` rows into ``tenantInformation`` objects keyed by domain."""
    default: dict[str, str] = {}
    for row in rows:
        if not row["domainName"].lower().endswith(".onmicrosoft.com"):
            default.setdefault(row["tenantId"].lower(), row["domainName"])
    local = next((d["name"] for d in organization.get("verifiedDomains", []) if d.get("isDefault")), None)
    if local is not None:
        default[str(organization["id"]).lower()] = local
    return {row["domainName"]: {"tenantId": row["tenantId"], "displayName": row.get("displayName"),
                                "defaultDomainName": default.get(row["tenantId"].lower(), row["domainName"]),
                                "federationBrandName": None} for row in rows}


def _shut(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        conn.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler blocked on a kept-alive connection never holds up stop()
    graph: FakeGraph


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a sync reuses its connection, as it would with Graph
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the client's
        # delayed ACK of the headers (~40 ms per response on loopback).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.graph._lock:
            self.server.graph._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.graph._lock:
            self.server.graph._connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the connection was shut (drop fault, stop)
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a test server's access log is noise (the requests are recorded instead)."""

    def _serve(self) -> None:
        graph = self.server.graph
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RecordedRequest(self.command, path, query, headers)
        with graph._lock:
            graph.requests.append(record)
        length = int(headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)  # drain a body so the connection stays usable
        reply, fault = graph._answer(self.command, path, query, headers)
        if reply is None:  # a stall ended by stop(): no answer at all
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", _JSON_TYPE)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("request-id", str(uuid.uuid4()))
        if "client-request-id" in headers:  # Graph echoes the client's id
            self.send_header("client-request-id", headers["client-request-id"])
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        record.status = reply.status
        if fault is not None and fault.kind == "drop":
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            _shut(self.connection)
            self.close_connection = True
            return
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    # http.server dispatches on these names; every method is answered (405 for all but GET)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815
