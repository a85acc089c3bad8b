"""``Snapshot``: an immutable, indexed, generation-stamped copy of the local directory.

A snapshot is read from a folder of Graph JSON (:mod:`mtotrust._ingest`) or from a single SQLite file written by
:meth:`Snapshot.save` (:mod:`mtotrust._store`); :mod:`mtotrust._directory` holds its address index and content id.
Applying a delta gives a *new* snapshot with a new generation; a snapshot never changes after it is built, so
readers on other threads never see a half-applied delta.

A snapshot made by :meth:`Snapshot.with_delta` shares its parent's dictionaries and keeps only the changed users
and index entries in small overlays (:mod:`mtotrust._overlay`) checked first; when the overlays grow past
``_COMPACT_FRACTION`` of the shared base they are merged into fresh dictionaries, so the amortised cost of a delta
stays proportional to the delta. The parent is never modified.

Why this module is over 600 lines: it is one concept, the snapshot's life (every way of building one goes through
``Snapshot._make``: a folder, documents, records, a delta, replaced documents, a store) and its reads; the parts it
does not own are already apart (reading in ``_ingest``, the index and id in ``_directory``, the store in ``_store``).
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.resources
import itertools
import os
import threading
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from mtotrust import _graph as graph
from mtotrust._address import domain_skeleton, normalize_address
from mtotrust._directory import (
    DIGEST_MODULUS,
    Directory,
    Index,
    Normalizer,
    build_index,
    by_id,
    content_id,
    user_digest,
    users_digest,
)
from mtotrust._errors import IdentityError, SnapshotError
from mtotrust._files import MAX_STORE_BYTES, open_regular
from mtotrust._ingest import (
    Page,
    Progress,
    check_not_future,
    delta_pages,
    now,
    parse_domains,
    parse_mto,
    parse_organization,
    parse_partners,
    parse_parts,
    read_folder,
    read_taken_at,
)
from mtotrust._model import DirectoryUser, Tenant
from mtotrust._overlay import MISSING, Layered, Overlay
from mtotrust._store import SCHEMA_VERSION, SQLITE_MAGIC, StoreParts, read_store, save_store

__all__ = ["SCHEMA_VERSION", "Progress", "Snapshot"]

_generations = itertools.count(1)  # process-wide, never reused; next() is atomic under the GIL
_COMPACT_FRACTION = 0.125  # merge a delta overlay into fresh dicts once it exceeds this share of its base
_HISTORY = 16  # how many with_delta steps back changed_addresses() can answer for
_NO_METADATA: Mapping[str, str] = types.MappingProxyType({})


class _GcPause:
    """Pause the cyclic garbage collector while a load builds millions of objects.

    A load makes no reference cycles, but every few thousand allocations the collector would traverse the
    whole growing directory again: about a third of a 1M-user load. It is re-enabled (if it was enabled)
    when the last concurrent load in this process ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pauses = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._pauses == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._pauses += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._pauses -= 1
            if self._pauses == 0 and self._was_enabled:
                gc.enable()


_gc_paused = _GcPause()


class _Skeletons:
    """The known domain of each UTS-39 skeleton, built on the first lookup that needs it.

    Building the table for a 1M-row ``domains.json`` on every load would cost more than reading the rows (it did:
    13 s of a store load), and a load that is never asked about an unknown domain needs none of it. The table is
    built once, under a lock, and shared by every snapshot :meth:`Snapshot.with_delta` derives (a delta changes
    no domain).
    """

    __slots__ = ("_local", "_lock", "_mapped", "_table")

    def __init__(self, local_domains: frozenset[str], domain_tenants: Mapping[str, str]) -> None:
        self._local, self._mapped = local_domains, domain_tenants
        self._lock = threading.Lock()
        self._table: dict[str, str] | None = None

    def known(self, skeleton: str) -> str | None:
        """Return the known domain whose skeleton is ``skeleton`` (the first in sorted order), or ``None``."""
        table = self._table
        if table is None:
            with self._lock:
                table = self._table
                if table is None:
                    table = {}
                    for domain in sorted(self._local | self._mapped.keys()):
                        table.setdefault(domain_skeleton(domain), domain)
                    self._table = table
        return table.get(skeleton)



class Snapshot:
    """An immutable, indexed copy of the local tenant's directory.

    Build one with :meth:`load` (a snapshot folder of Graph JSON, or a SQLite file from :meth:`save`),
    :meth:`from_documents` or :meth:`sample` (the bundled Contoso MTO). Every snapshot has a process-unique
    :attr:`generation` and a stable content :attr:`id`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_dir", "_history", "_id", "_index", "_index_over", "_metadata", "_mto_domains", "_skeletons",
                 "_users_digest", "generation", "taken_at")

    _dir: Directory
    _index: Index
    _index_over: dict[str, Any] | None  # a delta overlay of the index (value None: no match)
    _history: tuple[tuple[int, frozenset[str]], ...]  # (parent generation, changed addresses)
    _skeletons: _Skeletons
    _mto_domains: frozenset[str]
    _id: str | None
    _users_digest: int | None
    _metadata: Mapping[str, str]
    generation: int
    taken_at: dt.datetime

    def __init__(self) -> None:
        raise TypeError("build a Snapshot with Snapshot.load(path), Snapshot.from_documents(...) or "
                        "Snapshot.sample()")

    @classmethod
    def _make(cls, directory: Directory, index: Index, taken_at: dt.datetime, *,
              index_over: dict[str, Any] | None = None, history: tuple[tuple[int, frozenset[str]], ...] = (),
              shared: Snapshot | None = None, snapshot_id: str | None = None, users_digest: int | None = None,
              metadata: Mapping[str, str] = _NO_METADATA) -> Snapshot:
        """Build a snapshot: the one constructor every way of making one goes through.

        ``shared`` is a snapshot with the same tenants and domains whose derived tables are reused (a delta
        changes only users).
        """
        snap = object.__new__(cls)
        snap._dir = directory
        snap.generation = next(_generations)
        snap.taken_at = taken_at
        snap._index = index
        snap._index_over = index_over
        snap._history = history
        snap._id = snapshot_id
        snap._users_digest = users_digest
        snap._metadata = types.MappingProxyType(dict(metadata)) if metadata else _NO_METADATA
        if shared is not None:
            snap._skeletons, snap._mto_domains = shared._skeletons, shared._mto_domains
        else:
            snap._skeletons = _Skeletons(directory.local_domains, directory.domain_tenants)
            snap._mto_domains = frozenset(d for d, t in directory.domain_tenants.items() if t in directory.tenants)
        return snap

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
        """Directory objects by Graph object id (read-only)."""
        return self._dir.users

    def is_external(self, user: DirectoryUser) -> bool:
        """Return whether a directory object belongs to someone at home in another tenant.

        True for a ``federated`` identity issued by ``ExternalAzureAD``, ``creationType == "Invitation"``, or an
        ``#EXT#`` user principal name at a local verified domain (Entra ID gives external accounts such a name in
        the inviting tenant; at any other domain it is an ordinary name that proves nothing).

        .. versionadded:: 0.1.0
        """
        if user.federated_external or user.creation_type == "Invitation":
            return True
        upn = user.user_principal_name
        if not upn or "#ext#" not in upn.lower():
            return False
        try:
            local, domain = normalize_address(upn)
        except IdentityError:
            return False
        return "#ext#" in local and domain in self._dir.local_domains

    def lookup(self, address: str) -> tuple[DirectoryUser, ...]:
        """Return the distinct objects that answer to a normalised ``address`` (empty when none).

        Several objects (an ambiguous address) come sorted by id.
        """
        over = self._index_over
        if over is None:
            found = self._index.get(address)
        else:
            found = over.get(address, MISSING)
            if found is MISSING:
                found = self._index.get(address)
        if found is None:
            return ()
        if found.__class__ is tuple:
            return found
        return (found,)  # type: ignore[return-value]

    def addresses(self) -> Iterator[str]:
        """Iterate over every indexed (normalised) address."""
        if self._index_over is None:
            return iter(self._index)
        return iter(Layered(self._index, self._index_over, set(), 0))

    def lookalike_of(self, domain: str) -> str | None:
        """Return the known domain whose UTS-39 skeleton equals ``domain``'s, if ``domain`` is not known itself."""
        if domain in self._dir.local_domains or domain in self._dir.domain_tenants:
            return None
        return self._skeletons.known(domain_skeleton(domain))

    def changed_addresses(self, since: Snapshot) -> frozenset[str] | None:
        """Return the normalised addresses whose :meth:`lookup` may differ between ``since`` and this snapshot.

        Known when this snapshot was derived from ``since`` by one or more :meth:`with_delta` calls (up to 16
        steps back); ``None`` when it is not known (another lineage, a fresh load, too many steps). Every
        other address looks up the very same objects in both. Nothing but users changes in a delta, so
        tenants, domains and partners are equal too.

        .. versionadded:: 0.1.0
        """
        if since is self:
            return frozenset()
        changed: set[str] = set()
        for parent_generation, addresses in reversed(self._history):
            changed |= addresses
            if parent_generation == since.generation:
                return frozenset(changed)
        return None

    @property
    def id(self) -> str:
        """The snapshot's stable content id: ``"sha256:"`` and 32 hex digits.

        It covers everything resolution reads (the local tenant and its domains, the MTO tenants and their
        states, the domain map, the partner flags and each user's resolution fields) and nothing else: page order,
        file layout, display names and folder versus store do not change it. The same directory has the same id
        in every process and on every machine; a change that can change a resolution gives a new one. Every
        resolution and decision reports it as ``snapshot_id``.

        .. versionadded:: 0.1.0
        """
        found = self._id
        if found is None:
            if self._users_digest is None:
                self._users_digest = users_digest(self._dir.users.values())
            found = self._id = content_id(self._dir, self._users_digest)
        return found

    @property
    def metadata(self) -> Mapping[str, str]:
        """What a store keeps beside the directory (key → value, such as a sync's delta link); empty for a folder.

        :meth:`save` writes it back unless given other metadata. It takes no part in :attr:`id`.

        .. versionadded:: 0.1.0
        """
        return self._metadata

    def __repr__(self) -> str:
        return (f"<Snapshot {self.display_name or self.tenant_id} {self.id} generation={self.generation} "
                f"users={len(self.users)} tenants={len(self.tenants)}>")

    # -- building ------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = False, progress: Progress | None = None
             ) -> Snapshot:
        """Load a snapshot folder (see ``docs/snapshot.md``) or a SQLite file written by :meth:`save`.

        Every store load checks the schema version, the store's SHA-256 seal, the type of every cell, the index
        references, the user count and that the stored id is the content's id; ``verify=True`` also runs
        SQLite's full ``integrity_check`` (it reads every page: slower, for on-demand checks).

        ``progress``, if given, is called as ``progress(done, total, what)`` while loading: from a folder once
        before the first and after each page file, with ``what`` ``"users pages"`` (``users/*.json``) or
        ``"delta pages"`` (``delta/*.json``) and ``done``/``total`` counting files; from a SQLite store
        before the first and after every 10,000 users, with ``what`` ``"users"`` counting users. ``done``
        reaches ``total`` at the end of each phase. It runs on the loading thread; an exception it raises
        stops the load and propagates.

        Raises:
            SnapshotError: naming the file, the JSON path and the offending value.

        .. versionadded:: 0.1.0
        """
        p = Path(path)
        if p.is_dir():
            with _gc_paused:
                return cls._from_folder(p, progress)
        if p.exists():
            with open_regular(p, MAX_STORE_BYTES, lambda problem: SnapshotError(problem, file=str(p), value=str(p))
                              ) as fh:
                head = fh.read(len(SQLITE_MAGIC))
            if head == SQLITE_MAGIC:
                with _gc_paused:
                    parts = read_store(p, verify=verify, progress=progress)
                return cls._make(parts.directory, parts.index, parts.taken_at, snapshot_id=parts.snapshot_id,
                                 users_digest=parts.users_digest, metadata=parts.metadata)
            raise SnapshotError("is neither a snapshot folder nor a SQLite file written by Snapshot.save",
                                file=str(p), value=str(p))
        raise SnapshotError("no such snapshot folder or file; give a folder of Graph JSON or a .sqlite store",
                            file=str(p), value=str(p))

    @classmethod
    def sample(cls) -> Snapshot:
        """Return the bundled sample MTO (Contoso and its partner tenants, every kind of user)."""
        with importlib.resources.as_file(importlib.resources.files("mtotrust") / "sample") as folder:
            return cls._from_folder(folder, None)

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
        """Build a snapshot from decoded Graph JSON documents, each the body of one file of a snapshot folder.

        ``users`` and ``delta`` are sequences of pages; a page is decoded JSON or the bytes of a response body
        (read exactly as a page file's bytes are). Errors name the documents by role (``users[2]``, ``mto.json``).

        .. versionchanged:: 0.2.0
           Pages may be bytes.
        """
        if taken_at is not None:
            check_not_future(taken_at, "taken_at")
        return cls._from_parts(parse_parts(
            ("organization.json", organization), ("mto.json", mto), ("domains.json", domains),
            None if partners is None else ("partners.json", partners),
            [Page(f"users[{i}]", page) for i, page in enumerate(users)],
            [Page(f"delta[{i}]", page) for i, page in enumerate(delta)],
            taken_at or now(), None,
        ), None)

    @classmethod
    def from_users(cls, *, organization: Any, mto: Any, domains: Any, users: Iterable[DirectoryUser],
                   partners: Any = None, taken_at: dt.datetime | None = None) -> Snapshot:
        """Build a snapshot from the tenant-level documents and directory records already made.

        The documents are validated as :meth:`from_documents` validates them; ``users`` are
        :class:`DirectoryUser` records (each id once), for a caller that reads the users itself, such as a sync
        that converts each Graph page while the next one downloads.

        Raises:
            SnapshotError: for a document that is not valid, or an id given twice.
            TypeError: for a user that is not a :class:`DirectoryUser`.

        .. versionadded:: 0.2.0
        """
        if taken_at is not None:
            check_not_future(taken_at, "taken_at")
        user_map: dict[str, DirectoryUser] = {}
        for i, user in enumerate(users):
            if not isinstance(user, DirectoryUser):
                raise TypeError(f"users[{i}] must be a DirectoryUser, not {type(user).__name__}")
            if user.id in user_map:
                raise SnapshotError(f"duplicate user id {user.id!r}; give every object once", file="users",
                                    path=f"[{i}]", value=user.id)
            user_map[user.id] = user
        parts = parse_parts(("organization.json", organization), ("mto.json", mto), ("domains.json", domains),
                            None if partners is None else ("partners.json", partners), [], [], taken_at or now(),
                            None)
        directory = attrs.evolve(parts.directory, users=user_map)
        return cls._make(directory, build_index(user_map.values(), directory.local_domains), parts.taken_at)

    def with_delta(self, pages: Iterable[Any] | str | os.PathLike[str], *,
                   taken_at: dt.datetime | None = None) -> Snapshot:
        """Return a new snapshot with ``GET /users/delta`` pages applied.

        ``pages`` is a folder of page files, one page file, or decoded pages. Partial objects update only the
        fields they carry, ``@removed`` removes, and the same id may appear more than once. This snapshot is not
        changed. The cost grows with the delta, not the directory: the new snapshot shares this one's indexes and
        keeps the changes in an overlay (merged into fresh dictionaries, amortised, once it grows past an eighth
        of the shared part).

        The result is never newer than its data: its ``taken_at`` is ``taken_at`` when given, else the delta
        folder's own time (its ``snapshot.json``, or its newest page file), else this snapshot's.

        Raises:
            SnapshotError: for a path that is neither a folder of ``*.json`` pages nor a ``.json`` page file, or
                a page that is not a valid delta page.
        """
        if isinstance(pages, (str, os.PathLike)):
            docs, own_time = _delta_source(Path(pages))
        else:
            docs, own_time = [Page(f"delta[{i}]", page) for i, page in enumerate(pages)], None
        if taken_at is not None:
            check_not_future(taken_at, "taken_at")
        when = taken_at or own_time or self.taken_at
        with _gc_paused:  # a collection would traverse the whole (shared) directory: a cost of its size
            return self._derive(docs, when)

    def with_documents(self, *, organization: Any = None, mto: Any = None, domains: Any = None,
                       partners: Any = None, taken_at: dt.datetime | None = None) -> Snapshot:
        """Return a new snapshot with some tenant-level documents replaced and this snapshot's users.

        Each given document replaces the one this snapshot was built from (the body of ``organization.json``,
        ``mto.json``, ``domains.json`` or ``partners.json``, validated as :meth:`from_documents` validates it);
        one left ``None`` is kept. A sync that fetches the tenant anew and applies a users delta on top uses it.
        The users are re-indexed only when the local verified domains change. The result's ``taken_at`` is
        ``taken_at`` when given, else this snapshot's.

        Raises:
            SnapshotError: for a document that is not valid, naming it and the JSON path.

        .. versionadded:: 0.2.0
        """
        if taken_at is not None:
            check_not_future(taken_at, "taken_at")
        old = self._dir
        tenant_id, display_name, local_domains = (parse_organization(("organization.json", organization))
                                                  if organization is not None
                                                  else (old.tenant_id, old.display_name, old.local_domains))
        users: Mapping[str, DirectoryUser] = old.users if isinstance(old.users, dict) else dict(old.users.items())
        if local_domains != old.local_domains:
            index = build_index(users.values(), local_domains)
        else:
            index = _merged(self._index, self._index_over)
        directory = Directory(
            tenant_id=tenant_id, display_name=display_name, local_domains=local_domains,
            tenants=parse_mto(("mto.json", mto)) if mto is not None else old.tenants,
            domain_tenants=parse_domains(("domains.json", domains)) if domains is not None else old.domain_tenants,
            partners=parse_partners(("partners.json", partners)) if partners is not None else old.partners,
            users=users)
        return Snapshot._make(directory, index, taken_at or self.taken_at, users_digest=self._users_digest,
                              metadata=self._metadata)

    def _derive(self, docs: list[Page], taken_at: dt.datetime) -> Snapshot:
        users = Overlay(self._dir.users)
        before: dict[str, DirectoryUser | None] = {}
        for doc in docs:
            for obj in doc.users():
                uid = obj["id"]
                current = users.get(uid)
                if uid not in before:
                    before[uid] = current
                users.set(uid, graph.apply_entry(current, obj))

        index = Overlay(self._index if self._index_over is None else
                        Layered(self._index, self._index_over, set(), 0))
        keys = Normalizer(self._dir.local_domains).keys
        digest = self._users_digest
        changed: set[str] = set()
        for uid, old in before.items():
            new = users.get(uid)
            if new is old:
                continue
            if digest is not None:  # kept in [0, 2**256): a store writes it as 64 hex digits
                digest = (digest + (0 if new is None else user_digest(new)) - (0 if old is None else user_digest(old))
                          ) % DIGEST_MODULUS
            old_keys = keys(old) if old is not None else []
            new_keys = keys(new) if new is not None else []
            new_set = set(new_keys)  # a membership test per key: O(1) for a user with 100k addresses
            for key in {*old_keys, *new_keys}:
                found = index.get(key)
                others = [] if found is None else [u for u in (found if found.__class__ is tuple else (found,))
                                                   if u.id != uid]
                if key in new_set:
                    others.append(new)
                index.set(key, None if not others else others[0] if len(others) == 1
                          else tuple(sorted(others, key=by_id)))
                changed.add(key)

        base_size = len(users.base) + len(index.base)
        if len(users.over) + len(index.over) > _COMPACT_FRACTION * base_size:
            user_map: Mapping[str, DirectoryUser] = users.materialize()
            index_base, index_over = _merged(index.base, index.over), None
        else:
            user_map = users.view()
            index_base, index_over = index.base, index.over
        return Snapshot._make(attrs.evolve(self._dir, users=user_map), index_base, taken_at, index_over=index_over,
                              history=(*self._history, (self.generation, frozenset(changed)))[-_HISTORY:],
                              shared=self, users_digest=digest, metadata=self._metadata)

    @classmethod
    def _from_folder(cls, folder: Path, progress: Progress | None) -> Snapshot:
        return cls._from_parts(read_folder(folder, progress), progress)

    @classmethod
    def _from_parts(cls, parts: Any, progress: Progress | None) -> Snapshot:
        """Build a snapshot from what a folder holds, applying its ``delta/`` pages in place."""
        directory, index, taken_at = parts.directory, parts.index, parts.taken_at
        if parts.delta:
            # delta/ of a folder: applied in place (nobody holds these dicts yet), then re-indexed incrementally
            snap = cls._make(directory, index, taken_at)
            if progress is not None:
                progress(0, len(parts.delta), "delta pages")
            for done, page in enumerate(parts.delta, 1):
                snap = snap._derive([page], taken_at)
                if progress is not None:
                    progress(done, len(parts.delta), "delta pages")
            users: Mapping[str, DirectoryUser] = snap._dir.users
            if snap._index_over is not None or not isinstance(users, dict):
                users = dict(users.items())
            index = _merged(snap._index, snap._index_over)
            directory = attrs.evolve(directory, users=users)
        return cls._make(directory, index, taken_at)

    # -- SQLite store --------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, metadata: Mapping[str, str] | None = None) -> None:
        """Write this snapshot to a single SQLite file, atomically.

        The store is written to a temporary file in the same folder and renamed over ``path`` only when it is
        complete and flushed: a reader sees the old file or the new one, never half of one. It records
        :attr:`id`, ``taken_at`` and ``metadata`` (default: this snapshot's own :attr:`metadata`). A symlink is
        followed (its target is written), the store keeps the target's mode (a new one gets 0666 under the umask),
        and temporary files a killed save left next to it are removed, under a lock shared by savers.

        Raises:
            SnapshotError: for any failure (a full disk, no permission, a missing folder, a path that is a
                folder or device), naming the path; the target is then unchanged and no temporary file is left.
        """
        if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str keys to str values")
        snapshot_id = self.id  # computes the users digest too
        assert self._users_digest is not None
        save_store(path, StoreParts(self._dir, _merged(self._index, self._index_over), self.taken_at, snapshot_id,
                                    self._users_digest,
                                    self._metadata if metadata is None else metadata))


def _merged(index: Index, over: dict[str, Any] | None) -> Index:
    """Return ``index`` with a delta overlay of it applied (a value ``None`` removes the key).

    A fresh dict when there is an overlay; ``index`` itself when there is none (it is never changed after).
    """
    if over is None:
        return index
    merged = dict(index)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _delta_source(path: Path) -> tuple[list[Page], dt.datetime | None]:
    """Return the pages of a delta path and its own time (``snapshot.json``, else the newest page file)."""
    if path.is_dir():
        pages = delta_pages(path)
        stamp = path / "snapshot.json"
        if stamp.exists():
            return pages, read_taken_at(stamp)
        files = [Path(p.file) for p in pages]
    elif path.suffix == ".json" and path.exists():
        pages, files = [Page(str(path))], [path]
    else:
        raise SnapshotError("is neither a folder of delta pages nor a .json delta page file", file=str(path),
                            value=str(path))
    newest = max((f.stat().st_mtime for f in files), default=None)
    return pages, None if newest is None else dt.datetime.fromtimestamp(newest, dt.UTC)
