"""Reading a snapshot folder: the Graph JSON files and mtotrust's own ``domains.json`` and ``snapshot.json``.

The folder holds the response bodies exactly as Microsoft Graph v1.0 returns them (``organization.json``,
``mto.json``, ``partners.json``, ``users/*.json`` and ``delta/*.json`` pages) beside ``domains.json`` (one row per
domain looked up with ``findTenantInformationByDomainName``) and, optionally, ``snapshot.json``
(``{"takenAt": "2026-11-30T08:00:00Z"}``, when the export was taken). This module turns them into the parts
of a snapshot; it never builds a :class:`~mtotrust.Snapshot` itself.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from mtotrust import _graph as graph
from mtotrust._address import normalize_domain
from mtotrust._directory import Directory, Index, build_index
from mtotrust._errors import IdentityError, SnapshotError, shown
from mtotrust._files import MAX_PAGE_BYTES, read_regular
from mtotrust._model import DirectoryUser, Tenant
from mtotrust._overlay import MISSING

__all__ = [
    "FolderParts",
    "Page",
    "Progress",
    "delta_pages",
    "now",
    "page_files",
    "parse_domains",
    "parse_mto",
    "parse_organization",
    "parse_partners",
    "parse_parts",
    "read_folder",
    "read_taken_at",
]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: see :meth:`mtotrust.Snapshot.load`."""

Document = tuple[str, Any]  # (file name for error messages, decoded JSON)
FUTURE_SLACK = dt.timedelta(minutes=5)  # how far in the future a taken_at may be (clock skew)
_intern = sys.intern


def now() -> dt.datetime:
    """Return the current time, timezone-aware (UTC)."""
    return dt.datetime.now(dt.UTC)


@attrs.frozen(slots=True)
class FolderParts:
    """What a folder (or documents) holds: the directory of ``users/``, its index, and the ``delta/`` pages."""

    directory: Directory
    index: Index
    delta: list[Page]
    taken_at: dt.datetime


class Page:
    """One users/delta page: a file read and validated when asked (one page in memory at a time), or data.

    ``data`` is the decoded page, or the bytes of a response body, read exactly as a page file's bytes are.
    """

    __slots__ = ("data", "file")

    def __init__(self, file: str, data: Any = MISSING) -> None:
        self.file, self.data = file, data

    def users(self) -> list[dict[str, Any]]:
        """Return the page's user objects (validated dicts with Graph's field names)."""
        if self.data.__class__ is bytes:
            return graph.parse_users_page(self.data, self.file, raw=True)
        if self.data is not MISSING:
            return graph.parse_users_page(self.data, self.file)
        return graph.parse_users_page(_read_bytes(Path(self.file)), self.file, raw=True)

    def directory_users(self) -> list[DirectoryUser]:
        """Return the page's user objects as directory records; a large page file is read one object at a time."""
        if self.data.__class__ is bytes:
            return graph.read_users_page(self.data, self.file, graph.user_from_dict)
        if self.data is not MISSING:
            return list(map(graph.user_from_dict, self.users()))
        return graph.read_users_page(_read_bytes(Path(self.file)), self.file, graph.user_from_dict)


def page_files(folder: Path) -> list[Path]:
    """Return the ``*.json`` page files of a folder, in file-name order.

    Raises:
        SnapshotError: for a page whose name ends in another case of ``.json`` (``0009.JSON``), which would
            otherwise be skipped silently.
    """
    stray = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".json" and p.suffix != ".json")
    if stray:
        raise SnapshotError(f"holds {stray[0]!r}, whose name ends in another case of .json; rename it to end in "
                            "'.json' so it is read", file=str(folder), value=stray[0])
    return sorted(folder.glob("*.json"))


def delta_pages(folder: Path) -> list[Page]:
    """Return the page files of a delta folder (see :func:`page_files`) as pages, in file-name order."""
    return [Page(str(p)) for p in page_files(folder) if p.name != "snapshot.json"]


def _unique(seen: dict[str, Any], tenant_id: str, file: str, path: str) -> None:
    """Refuse a second row for a tenant: which of two contradicting rows counts would be a guess."""
    if tenant_id in seen:
        raise SnapshotError(f"duplicate tenant id {tenant_id!r}; keep one row per tenant", file=file, path=path,
                            value=tenant_id)


def _domain(name: str, file: str, path: str) -> str:
    try:
        return normalize_domain(name)
    except IdentityError as exc:
        raise SnapshotError(f"{exc}", file=file, path=path, value=name) from None


def _read_bytes(path: Path) -> bytes:
    return read_regular(path, MAX_PAGE_BYTES, lambda problem: SnapshotError(problem, file=str(path), value=str(path)))


def _read_json(path: Path) -> Document:
    return str(path), graph.decode_json_bytes(_read_bytes(path), str(path))


def read_taken_at(path: Path) -> dt.datetime:
    """Return ``takenAt`` of a ``snapshot.json`` file: an ISO 8601 time with a zone, at most 5 minutes ahead."""
    file, data = _read_json(path)
    value = data.get("takenAt") if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise SnapshotError(f"needs a string takenAt such as '2026-11-30T08:00:00Z' (got {shown(data)})",
                            file=file, path="$.takenAt", value=value)
    try:
        taken_at = dt.datetime.fromisoformat(value)
    except ValueError:
        taken_at = None
    if taken_at is None or taken_at.tzinfo is None:
        raise SnapshotError(f"takenAt {shown(value)} is not an ISO 8601 time with a zone, such as "
                            "'2026-11-30T08:00:00Z'", file=file, path="$.takenAt", value=value)
    check_not_future(taken_at, file)
    return taken_at.astimezone(dt.UTC)


def check_not_future(taken_at: dt.datetime, file: str) -> None:
    """Refuse a ``taken_at`` more than five minutes ahead: it would switch ``snapshot.max_age`` off."""
    if taken_at > now() + FUTURE_SLACK:
        raise SnapshotError(f"the snapshot claims to be taken at {taken_at.isoformat()}, in the future; fix the "
                            "clock or the file time", file=file, value=taken_at.isoformat())


def read_folder(folder: Path, progress: Progress | None) -> FolderParts:
    """Read a snapshot folder.

    ``taken_at`` is ``snapshot.json``'s ``takenAt`` when present, else the newest time of the folder's files.
    """
    def required(name: str) -> Document:
        path = folder / name
        if not path.exists():
            raise SnapshotError(f"required file is missing from snapshot folder {str(folder)!r}; a snapshot "
                                "folder holds organization.json, mto.json, domains.json and users/ (see "
                                "docs/snapshot.md)", file=str(path), value=name)
        return _read_json(path)

    users_dir = folder / "users"
    if not users_dir.is_dir():
        raise SnapshotError(f"required folder users/ is missing from snapshot folder {str(folder)!r}; put "
                            "the GET /users pages there", file=str(users_dir), value="users/")
    partners_path = folder / "partners.json"
    user_files = page_files(users_dir)
    delta_files = page_files(folder / "delta") if (folder / "delta").is_dir() else []
    stamp = folder / "snapshot.json"
    if stamp.exists():
        taken_at = read_taken_at(stamp)
    else:
        files = [folder / n for n in ("organization.json", "mto.json", "domains.json", "partners.json")]
        newest = max((f.stat().st_mtime for f in (*files, *user_files, *delta_files) if f.is_file()), default=None)
        taken_at = dt.datetime.fromtimestamp(newest, dt.UTC) if newest is not None else now()
        check_not_future(taken_at, str(folder))
    return parse_parts(
        required("organization.json"), required("mto.json"), required("domains.json"),
        _read_json(partners_path) if partners_path.exists() else None,
        [Page(str(p)) for p in user_files], [Page(str(p)) for p in delta_files], taken_at, progress,
    )


def parse_organization(doc: Document) -> tuple[str, str | None, frozenset[str]]:
    """Validate ``organization.json``: return the local tenant's id, display name and verified domains."""
    org = graph.parse_document(graph.OrganizationResponse, doc[1], doc[0]).value[0]
    local_domains = frozenset(_domain(d.name, doc[0], f"$.value[0].verifiedDomains[{i}].name")
                              for i, d in enumerate(org.verified_domains))
    return org.id.lower(), org.display_name, local_domains


def parse_mto(doc: Document) -> dict[str, Tenant]:
    """Validate ``mto.json``: return the MTO tenants by tenant id."""
    tenants: dict[str, Tenant] = {}
    for i, member in enumerate(graph.parse_document(graph.MtoTenantsResponse, doc[1], doc[0]).value):
        tenant_row = graph.to_tenant(member)
        _unique(tenants, tenant_row.tenant_id, doc[0], f"$.value[{i}].tenantId")
        tenants[tenant_row.tenant_id] = tenant_row
    return tenants


def parse_domains(doc: Document) -> dict[str, str]:
    """Validate ``domains.json``: return the domain map (domain -> tenant id)."""
    domain_tenants: dict[str, str] = {}
    for i, row in enumerate(graph.parse_document(graph.DomainsFile, doc[1], doc[0]).value):
        path = f"$.value[{i}]"
        name = _domain(row.domain_name, doc[0], f"{path}.domainName")
        tenant = _intern(row.tenant_id.lower())
        if domain_tenants.get(name, tenant) != tenant:
            raise SnapshotError(f"domain {name!r} is mapped to two tenants ({domain_tenants[name]} and "
                                f"{tenant}); keep one row per domain", file=doc[0], path=path, value=name)
        domain_tenants[name] = tenant
    return domain_tenants


def parse_partners(doc: Document) -> dict[str, bool | None]:
    """Validate ``partners.json``: return each partner's ``isInMultiTenantOrganization`` by tenant id."""
    partner_rows: dict[str, bool | None] = {}
    for i, p in enumerate(graph.parse_document(graph.PartnersResponse, doc[1], doc[0]).value):
        _unique(partner_rows, p.tenant_id.lower(), doc[0], f"$.value[{i}].tenantId")
        partner_rows[p.tenant_id.lower()] = p.is_in_multi_tenant_organization
    return partner_rows


def parse_parts(organization: Document, mto: Document, domains: Document, partners: Document | None,
                user_pages: list[Page], delta: list[Page], taken_at: dt.datetime,
                progress: Progress | None) -> FolderParts:
    """Validate the documents of a snapshot and index its ``users/`` pages (``delta`` is returned unread)."""
    tenant_id, display_name, local_domains = parse_organization(organization)
    tenants, domain_tenants = parse_mto(mto), parse_domains(domains)
    partner_rows = parse_partners(partners) if partners is not None else {}
    users: dict[str, DirectoryUser] = {}
    total = len(user_pages)
    if progress is not None:
        progress(0, total, "users pages")
    for done, page in enumerate(user_pages, 1):
        file = page.file
        for i, user in enumerate(page.directory_users()):
            uid = user.id
            if uid in users:
                raise SnapshotError(f"duplicate user id {uid!r}; every object may appear once in users/ "
                                    "(use delta/ for changes)", file=file, path=f"$.value[{i}].id", value=uid)
            users[uid] = user
        if progress is not None:
            progress(done, total, "users pages")
    directory = Directory(tenant_id=tenant_id, display_name=display_name, local_domains=local_domains,
                          tenants=tenants, domain_tenants=domain_tenants, partners=partner_rows, users=users)
    return FolderParts(directory, build_index(users.values(), local_domains), delta, taken_at)
