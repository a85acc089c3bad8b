"""``Snapshot``: an immutable, indexed, generation-stamped copy of the local directory (design section 2).

A snapshot is read from a folder of Graph JSON or from a single SQLite file written by :meth:`Snapshot.save`.
Applying a delta gives a *new* snapshot with a new generation; a snapshot never changes after it is built, so
readers on other threads never see a half-applied delta.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import itertools
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from mtotrust import graph
from mtotrust.address import domain_skeleton, normalize_address, normalize_domain, proxy_smtp_address, split_ext_upn
from mtotrust.errors import IdentityError, SnapshotError
from mtotrust.model import DirectoryUser, Tenant

__all__ = ["SCHEMA_VERSION", "Snapshot"]

SCHEMA_VERSION = 1
"""Version of the SQLite store layout written by :meth:`Snapshot.save`."""

_generations = itertools.count(1)  # process-wide, never reused; next() is atomic under the GIL
_SQLITE_MAGIC = b"SQLite format 3\x00"
Document = tuple[str, Any]  # (file name for error messages, decoded JSON)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def user_addresses(user: DirectoryUser, local_domains: frozenset[str]) -> set[str]:
    """Return every normalised address a directory object answers to (design section 3, step 3).

    ``mail``, ``otherMails``, ``SMTP:``/``smtp:`` proxy addresses, the user principal name and, when it is an
    ``#EXT#`` name at a local verified domain, its decoded ``alias@homedomain``. Values that are not valid
    addresses are skipped: they can never equal a valid identity.
    """
    raw = [user.mail, user.user_principal_name, *user.other_mails]
    raw.extend(proxy_smtp_address(p) for p in user.proxy_addresses)
    found: set[str] = set()
    for value in raw:
        if not value:
            continue
        try:
            local, domain = normalize_address(value)
        except IdentityError:
            continue
        found.add(f"{local}@{domain}")
        if value is user.user_principal_name and domain in local_domains:
            with contextlib.suppress(IdentityError):
                decoded = split_ext_upn(local, value)
                if decoded:
                    found.add(f"{decoded[0]}@{decoded[1]}")
    return found


@attrs.frozen(slots=True)
class _Directory:
    """What a snapshot is built from, before indexing."""

    tenant_id: str
    display_name: str | None
    local_domains: frozenset[str]
    tenants: dict[str, Tenant]
    domain_tenants: dict[str, str]
    partners: dict[str, bool | None]
    users: dict[str, DirectoryUser]


class Snapshot:
    """An immutable, indexed copy of the local tenant's directory.

    Build one with :meth:`load` (a folder of Graph JSON, design section 2, or a SQLite file from :meth:`save`)
    or :meth:`sample` (the bundled Contoso MTO). Every snapshot has a process-unique :attr:`generation`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_address_index", "_dir", "_mto_domains", "_skeletons", "generation", "taken_at")

    def __init__(self, directory: _Directory, taken_at: dt.datetime) -> None:
        self._dir = directory
        self.generation: int = next(_generations)
        """Process-unique, monotonically increasing number of this snapshot."""
        self.taken_at: dt.datetime = taken_at
        """When the directory was read (newest file time, or the time stored by :meth:`save`)."""
        index: dict[str, list[DirectoryUser]] = {}
        for user in directory.users.values():
            for address in user_addresses(user, directory.local_domains):
                index.setdefault(address, []).append(user)
        self._address_index = {address: tuple(users) for address, users in index.items()}
        known = directory.local_domains | directory.domain_tenants.keys()
        self._skeletons: dict[str, str] = {}
        for domain in sorted(known):
            self._skeletons.setdefault(domain_skeleton(domain), domain)
        self._mto_domains = frozenset(d for d, t in directory.domain_tenants.items() if t in directory.tenants)

    # -- reading -------------------------------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        """The local tenant's id (lower case)."""
        return self._dir.tenant_id

    @property
    def display_name(self) -> str | None:
        """The local tenant's display name."""
        return self._dir.display_name

    @property
    def local_domains(self) -> frozenset[str]:
        """The local tenant's verified domains, as A-labels."""
        return self._dir.local_domains

    @property
    def tenants(self) -> Mapping[str, Tenant]:
        """MTO tenants by lower-case tenant id (``mto.json``)."""
        return self._dir.tenants

    @property
    def domain_tenants(self) -> Mapping[str, str]:
        """Home tenant id of every domain of ``domains.json`` (A-label → lower-case tenant id)."""
        return self._dir.domain_tenants

    @property
    def mto_domains(self) -> frozenset[str]:
        """Domains of tenants listed in ``mto.json``, in any state."""
        return self._mto_domains

    @property
    def partners(self) -> Mapping[str, bool | None]:
        """``isInMultiTenantOrganization`` of each partner policy row, by lower-case tenant id."""
        return self._dir.partners

    @property
    def users(self) -> Mapping[str, DirectoryUser]:
        """Directory objects by Graph object id."""
        return self._dir.users

    def lookup(self, address: str) -> tuple[DirectoryUser, ...]:
        """Return the distinct objects that answer to a normalised ``address`` (empty when none)."""
        return self._address_index.get(address, ())

    def addresses(self) -> Iterator[str]:
        """Iterate over every indexed (normalised) address."""
        return iter(self._address_index)

    def lookalike_of(self, domain: str) -> str | None:
        """Return the known domain whose UTS-39 skeleton equals ``domain``'s, if ``domain`` is not known itself."""
        if domain in self._dir.local_domains or domain in self._dir.domain_tenants:
            return None
        return self._skeletons.get(domain_skeleton(domain))

    def __repr__(self) -> str:
        return (f"<Snapshot {self.display_name or self.tenant_id} generation={self.generation} "
                f"users={len(self.users)} tenants={len(self.tenants)}>")

    # -- building ------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = False) -> Snapshot:
        """Load a snapshot folder (design section 2) or a SQLite file written by :meth:`save`.

        A store's schema version and recorded user count are always checked; ``verify=True`` also runs
        SQLite's full ``integrity_check`` first (it reads every page: slower, for on-demand checks).

        Raises:
            SnapshotError: naming the file, the JSON path and the offending value.
        """
        p = Path(path)
        if p.is_dir():
            return cls._from_folder(p)
        if p.is_file():
            with p.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
            if head == _SQLITE_MAGIC:
                return cls._from_sqlite(p, verify=verify)
            raise SnapshotError("is neither a snapshot folder nor a SQLite file written by Snapshot.save",
                                file=str(p), value=str(p))
        raise SnapshotError("no such snapshot folder or file; give a folder of Graph JSON or a .sqlite store",
                            file=str(p), value=str(p))

    @classmethod
    def sample(cls) -> Snapshot:
        """Return the bundled sample MTO (Contoso and four partner tenants, every kind of user)."""
        with importlib.resources.as_file(importlib.resources.files("mtotrust") / "sample") as folder:
            return cls._from_folder(folder)

    @classmethod
    def from_documents(
        cls,
        *,
        organization: Any,
        mto: Any,
        domains: Any,
        users: Iterable[Any],
        partners: Any = None,
        delta: Iterable[Any] = (),
        taken_at: dt.datetime | None = None,
    ) -> Snapshot:
        """Build a snapshot from decoded Graph JSON documents (each the body of one file of design section 2).

        ``users`` and ``delta`` are sequences of pages. Errors name ``<memory>`` documents by role.
        """
        return cls._from_parts(
            ("organization.json", organization), ("mto.json", mto), ("domains.json", domains),
            None if partners is None else ("partners.json", partners),
            [(f"users[{i}]", page) for i, page in enumerate(users)],
            [(f"delta[{i}]", page) for i, page in enumerate(delta)],
            taken_at or _now(),
        )

    def with_delta(self, pages: Iterable[Any] | str | os.PathLike[str]) -> Snapshot:
        """Return a new snapshot with ``GET /users/delta`` pages applied (a folder of page files, or pages).

        Partial objects update only the fields they carry, ``@removed`` removes, and the same id may appear
        more than once. This snapshot is not changed.
        """
        docs = (_read_folder_pages(Path(pages)) if isinstance(pages, (str, os.PathLike))
                else [(f"delta[{i}]", page) for i, page in enumerate(pages)])
        users = dict(self._dir.users)
        _apply_delta(users, docs)
        return Snapshot(attrs.evolve(self._dir, users=users), _now())

    @classmethod
    def _from_folder(cls, folder: Path) -> Snapshot:
        def required(name: str) -> Document:
            path = folder / name
            if not path.is_file():
                raise SnapshotError(f"required file is missing from snapshot folder {str(folder)!r}; export "
                                    "it from Graph as design section 2 describes", file=str(path), value=name)
            return _read_json(path)

        users_dir = folder / "users"
        if not users_dir.is_dir():
            raise SnapshotError(f"required folder users/ is missing from snapshot folder {str(folder)!r}; put "
                                "the GET /users pages there", file=str(users_dir), value="users/")
        partners_path = folder / "partners.json"
        files = [folder / n for n in ("organization.json", "mto.json", "domains.json", "partners.json")]
        files += sorted(users_dir.glob("*.json")) + sorted((folder / "delta").glob("*.json"))
        newest = max((f.stat().st_mtime for f in files if f.is_file()), default=None)
        taken_at = dt.datetime.fromtimestamp(newest, dt.UTC) if newest is not None else _now()
        return cls._from_parts(
            required("organization.json"), required("mto.json"), required("domains.json"),
            _read_json(partners_path) if partners_path.is_file() else None,
            _read_folder_pages(users_dir), _read_folder_pages(folder / "delta"), taken_at,
        )

    @classmethod
    def _from_parts(cls, organization: Document, mto: Document, domains: Document, partners: Document | None,
                    user_pages: list[Document], delta_pages: list[Document], taken_at: dt.datetime) -> Snapshot:
        org = graph.parse_document(graph.OrganizationResponse, organization[1], organization[0]).value[0]
        local_domains = frozenset(
            _domain(d.name, organization[0], f"$.value[0].verifiedDomains[{i}].name")
            for i, d in enumerate(org.verified_domains)
        )
        tenants: dict[str, Tenant] = {}
        for i, member in enumerate(graph.parse_document(graph.MtoTenantsResponse, mto[1], mto[0]).value):
            tenant_row = graph.to_tenant(member)
            _unique(tenants, tenant_row.tenant_id, mto[0], f"$.value[{i}].tenantId")
            tenants[tenant_row.tenant_id] = tenant_row
        domain_tenants: dict[str, str] = {}
        for i, row in enumerate(graph.parse_document(graph.DomainsFile, domains[1], domains[0]).value):
            path = f"$.value[{i}]"
            name = _domain(row.domain_name, domains[0], f"{path}.domainName")
            tenant = row.tenant_id.lower()
            if domain_tenants.get(name, tenant) != tenant:
                raise SnapshotError(f"domain {name!r} is mapped to two tenants ({domain_tenants[name]} and "
                                    f"{tenant}); keep one row per domain", file=domains[0], path=path, value=name)
            domain_tenants[name] = tenant
        partner_rows: dict[str, bool | None] = {}
        if partners is not None:
            for i, p in enumerate(graph.parse_document(graph.PartnersResponse, partners[1], partners[0]).value):
                _unique(partner_rows, p.tenant_id.lower(), partners[0], f"$.value[{i}].tenantId")
                partner_rows[p.tenant_id.lower()] = p.is_in_multi_tenant_organization
        users: dict[str, DirectoryUser] = {}
        for file, data in user_pages:
            for i, user in enumerate(graph.parse_document(graph.UsersPage, data, file).value):
                if user.id in users:
                    raise SnapshotError(f"duplicate user id {user.id!r}; every object may appear once in users/ "
                                        "(use delta/ for changes)", file=file, path=f"$.value[{i}].id",
                                        value=user.id)
                users[user.id] = graph.to_directory_user(user)
        _apply_delta(users, delta_pages)
        directory = _Directory(tenant_id=org.id.lower(), display_name=org.display_name,
                               local_domains=local_domains, tenants=tenants, domain_tenants=domain_tenants,
                               partners=partner_rows, users=users)
        return cls(directory, taken_at)

    # -- SQLite store --------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this snapshot to a single SQLite file, atomically.

        The store is written to a temporary file in the same folder and renamed over ``path`` only when it is
        complete and flushed: a reader sees the old file or the new one, never half of one.
        """
        target = Path(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            conn = sqlite3.connect(tmp)
            try:
                _write_store(conn, self)
            finally:
                conn.close()
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):  # make the rename durable where the platform allows it
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @classmethod
    def _from_sqlite(cls, path: Path, *, verify: bool) -> Snapshot:
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise SnapshotError(f"cannot open the SQLite store ({exc})", file=str(path), value=str(path)) from None
        try:
            if verify:
                problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
                if problems != ["ok"]:
                    raise SnapshotError(f"SQLite integrity check failed: {'; '.join(problems[:3])}; load the folder "
                                        "again and save a new store", file=str(path), value=problems[0])
            return _read_store(conn, path)
        except (sqlite3.DatabaseError, KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"the SQLite store is damaged or not written by Snapshot.save ({exc}); load the "
                                "folder again and save a new store", file=str(path), value=str(path)) from None
        finally:
            conn.close()


def _unique(seen: Mapping[str, object], tenant_id: str, file: str, path: str) -> None:
    """Refuse a second row for a tenant: which of two contradicting rows counts would be a guess."""
    if tenant_id in seen:
        raise SnapshotError(f"duplicate tenant id {tenant_id!r}; keep one row per tenant", file=file, path=path,
                            value=tenant_id)


def _domain(name: str, file: str, path: str) -> str:
    try:
        return normalize_domain(name)
    except IdentityError as exc:
        raise SnapshotError(f"{exc}", file=file, path=path, value=name) from None


def _read_json(path: Path) -> Document:
    try:
        with path.open("rb") as fh:
            return str(path), json.load(fh)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            file=str(path), value=exc.doc[max(0, exc.pos - 20):exc.pos + 20]) from None
    except RecursionError:
        raise SnapshotError("is nested too deeply to be a Graph response", file=str(path),
                            value=str(path)) from None
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"is not UTF-8 JSON ({exc.reason} at byte {exc.start})", file=str(path),
                            value=exc.object[exc.start:exc.start + 8]) from None
    except OSError as exc:
        raise SnapshotError(f"cannot be read ({exc.strerror})", file=str(path), value=str(path)) from None


def _read_folder_pages(folder: Path) -> list[Document]:
    return [_read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _apply_delta(users: dict[str, DirectoryUser], pages: list[Document]) -> None:
    for file, data in pages:
        for entry in graph.parse_document(graph.UsersPage, data, file).value:
            if entry.removed is not None:
                users.pop(entry.id, None)
            elif entry.id in users:
                users[entry.id] = attrs.evolve(users[entry.id], **graph.delta_changes(entry))
            else:
                users[entry.id] = graph.to_directory_user(entry)


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE local_domains (name TEXT PRIMARY KEY);
CREATE TABLE domains (name TEXT PRIMARY KEY, tenant_id TEXT NOT NULL);
CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, display_name TEXT, role TEXT, state TEXT);
CREATE TABLE partners (tenant_id TEXT PRIMARY KEY, in_mto INTEGER);
CREATE TABLE users (id TEXT PRIMARY KEY, upn TEXT, mail TEXT, other_mails TEXT NOT NULL,
                    proxy_addresses TEXT NOT NULL, user_type TEXT, creation_type TEXT, account_enabled INTEGER,
                    federated_external INTEGER NOT NULL);
"""


def _write_store(conn: sqlite3.Connection, snap: Snapshot) -> None:
    from mtotrust import __version__  # the package imports this module: import late

    with conn:
        conn.executescript(_SCHEMA)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", str(SCHEMA_VERSION)), ("taken_at", snap.taken_at.isoformat()),
            ("tenant_id", snap.tenant_id), ("display_name", snap.display_name or ""),
            ("written_by", f"mtotrust {__version__}"), ("user_count", str(len(snap.users))),
        ])
        conn.executemany("INSERT INTO local_domains VALUES (?)", [(d,) for d in sorted(snap.local_domains)])
        conn.executemany("INSERT INTO domains VALUES (?, ?)", sorted(snap.domain_tenants.items()))
        conn.executemany("INSERT INTO tenants VALUES (?, ?, ?, ?)",
                         [(t.tenant_id, t.display_name, t.role, t.state) for t in snap.tenants.values()])
        conn.executemany("INSERT INTO partners VALUES (?, ?)", list(snap.partners.items()))
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (u.id, u.user_principal_name, u.mail, json.dumps(u.other_mails), json.dumps(u.proxy_addresses),
             u.user_type, u.creation_type, u.account_enabled, u.federated_external)
            for u in snap.users.values()
        ])


def _read_store(conn: sqlite3.Connection, path: Path) -> Snapshot:
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise SnapshotError(f"store schema version {version!r} is not supported (this mtotrust reads version "
                            f"{SCHEMA_VERSION}); save the store again with this version", file=str(path),
                            path="meta.schema_version", value=version)
    users = {
        row[0]: DirectoryUser(id=row[0], user_principal_name=row[1], mail=row[2],
                              other_mails=tuple(json.loads(row[3])), proxy_addresses=tuple(json.loads(row[4])),
                              user_type=row[5], creation_type=row[6],
                              account_enabled=None if row[7] is None else bool(row[7]),
                              federated_external=bool(row[8]))
        for row in conn.execute("SELECT * FROM users")
    }
    if str(len(users)) != meta.get("user_count"):
        raise SnapshotError(f"store holds {len(users)} users but recorded {meta.get('user_count')}; it is "
                            "damaged: save it again", file=str(path), path="meta.user_count",
                            value=meta.get("user_count"))
    directory = _Directory(
        tenant_id=meta["tenant_id"], display_name=meta["display_name"] or None,
        local_domains=frozenset(r[0] for r in conn.execute("SELECT name FROM local_domains")),
        tenants={r[0]: Tenant(*r) for r in conn.execute("SELECT * FROM tenants")},
        domain_tenants=dict(conn.execute("SELECT name, tenant_id FROM domains")),
        partners={r[0]: None if r[1] is None else bool(r[1]) for r in conn.execute("SELECT * FROM partners")},
        users=users,
    )
    return Snapshot(directory, dt.datetime.fromisoformat(meta["taken_at"]))
