"""``Snapshot``: an immutable, indexed, generation-stamped copy of the local directory (design section 2).

A snapshot is read from a folder of Graph JSON or from a single SQLite file written by :meth:`Snapshot.save`.
Applying a delta gives a *new* snapshot with a new generation; a snapshot never changes after it is built, so
readers on other threads never see a half-applied delta.

Representation (issue 3: ≤ 600 bytes/user at 1M users, deltas priced by their size):

- the address index maps a normalised address to the one :class:`DirectoryUser` that answers to it, or to a
  tuple of them (sorted by id) for the rare ambiguous address; :meth:`Snapshot.lookup` still returns a tuple.
  An index key *is* the directory's own string object whenever the raw value is already in normal form, and
  ``otherMails``/``mail``/``userPrincipalName`` values that are equal share one string object;
- a snapshot made by :meth:`Snapshot.with_delta` shares its parent's dictionaries and keeps only the changed
  users and index entries in small overlay dictionaries checked first; when the overlays grow past
  ``_COMPACT_FRACTION`` of the shared base they are merged into fresh dictionaries, so the amortised cost of a
  delta stays proportional to the delta. The parent is never modified.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import gc
import importlib.resources
import itertools
import json
import os
import re
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from mtotrust import graph
from mtotrust.address import (
    ASCII_DOT_ATOM,
    MAX_ADDRESS_LENGTH,
    domain_skeleton,
    normalize_address,
    normalize_domain,
    proxy_smtp_address,
    split_ext_upn,
)
from mtotrust.errors import IdentityError, SnapshotError
from mtotrust.model import DirectoryUser, Tenant

__all__ = ["SCHEMA_VERSION", "Progress", "Snapshot"]

SCHEMA_VERSION = 2
"""Version of the SQLite store layout written by :meth:`Snapshot.save`.

Version 2 (mtotrust 0.2) stores each user's normalised index keys, so a load does no address normalisation;
version 1 stores are still read (their index is rebuilt, as version 1 readers did).
"""

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: see :meth:`Snapshot.load`."""

_generations = itertools.count(1)  # process-wide, never reused; next() is atomic under the GIL
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MISSING: Any = object()
_COMPACT_FRACTION = 0.125  # merge a delta overlay into fresh dicts once it exceeds this share of its base
_HISTORY = 16  # how many with_delta steps back changed_addresses() can answer for
_ROWS_PER_PROGRESS = 10_000
Document = tuple[str, Any]  # (file name for error messages, decoded JSON)
Index = dict[str, "DirectoryUser | tuple[DirectoryUser, ...]"]

# An ASCII RFC 5322 dot-atom local part (the rule of mtotrust.address), "@", an ASCII letter-digit-dot-hyphen
# domain: nothing to trim, no control character, exactly one "@" (group 1: the domain).
_ASCII_LOCAL = re.compile(ASCII_DOT_ATOM).fullmatch
_FAST_ADDRESS = re.compile(rf"{ASCII_DOT_ATOM}@([A-Za-z0-9.-]+)").fullmatch
_intern = sys.intern


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


# -- directory addresses -----------------------------------------------------------------------------------------

class _Normalizer:
    """Normalises directory values exactly as :func:`~mtotrust.address.normalize_address` does, faster.

    ASCII values ``dot-atom@domain`` whose domain was already seen take a fast path (one regex, ``lower``);
    anything else goes through ``normalize_address`` itself, whose answer also teaches the fast path the
    domain. The result reuses the raw string object when it is already normal.
    """

    __slots__ = ("local_domains", "lower_domains")

    def __init__(self, local_domains: frozenset[str]) -> None:
        self.local_domains = local_domains
        # raw ASCII domain texts whose A-label is their lower case, learnt from normalize_address's answers
        # (the A-label is a pure function of the domain text)
        self.lower_domains: set[str] = set()

    def address(self, value: str) -> str | None:
        """Return the normal form ``local@a-label`` of ``value``, or ``None`` when it is not a valid address."""
        match = _FAST_ADDRESS(value)
        if match is not None and len(value) <= MAX_ADDRESS_LENGTH and match.group(1) in self.lower_domains:
            # an ASCII dot-atom local part at a domain whose A-label is its lower case: the normal form is the
            # lower case of the whole value (no blanks to trim: the pattern has none)
            key = value.lower()
            return value if key == value else key
        try:
            local, a_label = normalize_address(value)
        except IdentityError:
            return None
        domain = value.strip(" \t").partition("@")[2]
        if domain.isascii() and a_label == domain.lower():
            self.lower_domains.add(domain)
        key = f"{local}@{a_label}"
        return value if key == value else key

    def ext_home(self, local: str, upn: str) -> str | None:
        """Return the ``alias@homedomain`` a normalised ``#EXT#`` local part encodes (``split_ext_upn``), or None."""
        if local.endswith("#ext#") and local.count("#ext#") == 1:
            alias, sep, home = local[:-5].rpartition("_")
            # a known ASCII home domain (its A-label is itself: local is lower case) and an ASCII dot-atom alias
            if sep and home in self.lower_domains and _ASCII_LOCAL(alias) is not None:
                return f"{alias}@{home}"
        try:
            decoded = split_ext_upn(local, upn)
        except IdentityError:
            return None
        return None if decoded is None else f"{decoded[0]}@{decoded[1]}"

    def keys(self, user: DirectoryUser) -> list[str]:
        """Every normalised address ``user`` answers to, without repeats (design section 3, step 3).

        ``mail``, the user principal name (an ``#EXT#`` name at a local verified domain by its decoded
        ``alias@homedomain`` only: the resolver never looks one up undecoded), ``otherMails``, ``SMTP:``/``smtp:``
        proxy addresses. Values that are not valid addresses are skipped: they can never equal a valid identity.
        """
        found: list[str] = []
        norm = self.address
        mail = user.mail
        if mail:
            key = norm(mail)
            if key is not None:
                found.append(key)
        upn = user.user_principal_name
        if upn:
            key = (found[0] if found else None) if upn == mail else norm(upn)
            local, _, domain = key.rpartition("@") if key is not None else ("", "", "")
            if "#ext#" in local and domain in self.local_domains:
                # An #EXT# name at a local domain is only ever looked up decoded (design section 3, step 1), so
                # it is indexed by the address it decodes to, not by itself.
                key = self.ext_home(local, upn)
            if key is not None and key not in found:
                found.append(key)
        for value in user.other_mails:
            if value and value != mail:
                key = norm(value)
                if key is not None and key not in found:
                    found.append(key)
        for proxy in user.proxy_addresses:
            address = proxy_smtp_address(proxy)
            if address and address != mail:
                key = norm(address)
                if key is not None and key not in found:
                    found.append(key)
        return found


def user_addresses(user: DirectoryUser, local_domains: frozenset[str]) -> set[str]:
    """Return every normalised address a directory object answers to (design section 3, step 3)."""
    return set(_Normalizer(local_domains).keys(user))


def _add(index: Index, key: str, user: DirectoryUser) -> None:
    """Add ``user`` under ``key`` (the slow branch of an insert: the key is already taken)."""
    prev = index[key]
    if prev.__class__ is tuple:
        if all(u.id != user.id for u in prev):
            index[key] = tuple(sorted((*prev, user), key=_by_id))
    elif prev.id != user.id:  # type: ignore[union-attr]
        index[key] = tuple(sorted((prev, user), key=_by_id))  # type: ignore[arg-type]


def _by_id(user: DirectoryUser) -> str:
    return user.id


def _build_index(users: Iterable[DirectoryUser], local_domains: frozenset[str]) -> Index:
    index: Index = {}
    keys = _Normalizer(local_domains).keys
    setdefault = index.setdefault
    for user in users:
        for key in keys(user):
            if setdefault(key, user) is not user:
                _add(index, key, user)
    return index


def _share(user_principal_name: str | None, mail: str | None,
           other_mails: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """Return the UPN and ``otherMails`` with values equal to ``mail`` replaced by the ``mail`` object itself."""
    if mail is not None:
        if user_principal_name == mail:
            user_principal_name = mail
        if other_mails and mail in other_mails:
            other_mails = tuple(mail if m == mail else m for m in other_mails)
    return user_principal_name, other_mails


def _user_from_dict(obj: dict[str, Any]) -> DirectoryUser:
    """Build a :class:`DirectoryUser` from a user dict of :func:`graph.parse_users_page` (strings shared)."""
    get = obj.get
    mail = get("mail")
    other = get("otherMails")
    upn, other_mails = _share(get("userPrincipalName"), mail, tuple(other) if other else ())
    proxies = get("proxyAddresses")
    user_type = get("userType")
    creation_type = get("creationType")
    return DirectoryUser(
        obj["id"], upn, mail, other_mails, tuple(proxies) if proxies else (),
        None if user_type is None else _intern(user_type),
        None if creation_type is None else _intern(creation_type),
        get("accountEnabled"), graph.federated_external_dicts(get("identities")),
    )


_DELTA_KEYS = (("userPrincipalName", "user_principal_name"), ("mail", "mail"), ("otherMails", "other_mails"),
               ("proxyAddresses", "proxy_addresses"), ("userType", "user_type"),
               ("creationType", "creation_type"), ("accountEnabled", "account_enabled"),
               ("identities", "federated_external"))


def _apply_entry(current: DirectoryUser | None, obj: dict[str, Any]) -> DirectoryUser | None:
    """Return the object after one delta entry: ``None`` when removed; a partial entry changes what it carries."""
    if obj.get("@removed") is not None:
        return None
    full = _user_from_dict(obj)
    if current is None:
        return full
    changes = {name: getattr(full, name) for key, name in _DELTA_KEYS if key in obj}
    if not changes:
        return current
    new = attrs.evolve(current, **changes)
    upn, other_mails = _share(new.user_principal_name, new.mail, new.other_mails)
    if upn is not new.user_principal_name or other_mails is not new.other_mails:
        new = attrs.evolve(new, user_principal_name=upn, other_mails=other_mails)
    return new


# -- layered (delta) mappings ------------------------------------------------------------------------------------

class _Layered(Mapping[str, Any]):
    """A read-only mapping: a shared base dict overlaid by a small dict of changes.

    ``over`` maps a key to its new value, or to ``None`` when the key is gone. ``moved`` holds base keys that
    were removed and added again: like a dict, they now iterate after the base keys.
    """

    __slots__ = ("_base", "_len", "_moved", "_over")

    def __init__(self, base: dict[str, Any], over: dict[str, Any], moved: set[str], length: int) -> None:
        self._base, self._over, self._moved, self._len = base, over, moved, length

    def __getitem__(self, key: str) -> Any:
        value = self._over.get(key, _MISSING)
        if value is _MISSING:
            return self._base[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._over.get(key, _MISSING)
        if value is _MISSING:
            return self._base.get(key, default)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        value = self._over.get(key, _MISSING)  # type: ignore[call-overload]
        if value is _MISSING:
            return key in self._base
        return value is not None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        over, moved, base = self._over, self._moved, self._base
        for key in base:
            if key not in over or (over[key] is not None and key not in moved):
                yield key
        for key, value in over.items():
            if value is not None and (key not in base or key in moved):
                yield key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.items())!r})"


class _Overlay:
    """The mutable overlay a delta is applied to (copied from the parent's, so the parent never changes)."""

    __slots__ = ("base", "len", "moved", "over")

    def __init__(self, view: Mapping[str, Any]) -> None:
        if isinstance(view, _Layered):
            self.base, self.over, self.moved, self.len = view._base, dict(view._over), set(view._moved), view._len
        else:
            self.base, self.over, self.moved, self.len = view, {}, set(), len(view)  # type: ignore[assignment]

    def get(self, key: str) -> Any:
        value = self.over.get(key, _MISSING)
        return self.base.get(key) if value is _MISSING else value

    def set(self, key: str, value: Any) -> None:
        """Set (``value`` not None) or remove (``None``) ``key`` with dict semantics, order included."""
        present = self.get(key) is not None
        if value is None:
            if present:
                self.len -= 1
                if key in self.base:
                    self.over[key] = None
                else:
                    del self.over[key]
        elif present:
            self.over[key] = value
        else:
            self.len += 1
            self.over.pop(key, None)  # a re-added key goes to the end, as in a dict
            self.over[key] = value
            if key in self.base:
                self.moved.add(key)

    def view(self) -> Mapping[str, Any]:
        return _Layered(self.base, self.over, self.moved, self.len)

    def materialize(self) -> dict[str, Any]:
        return dict(self.view().items())


# -- snapshot ----------------------------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class _Directory:
    """What a snapshot is built from, before indexing."""

    tenant_id: str
    display_name: str | None
    local_domains: frozenset[str]
    tenants: dict[str, Tenant]
    domain_tenants: dict[str, str]
    partners: dict[str, bool | None]
    users: Mapping[str, DirectoryUser]


class Snapshot:
    """An immutable, indexed copy of the local tenant's directory.

    Build one with :meth:`load` (a folder of Graph JSON, design section 2, or a SQLite file from :meth:`save`)
    or :meth:`sample` (the bundled Contoso MTO). Every snapshot has a process-unique :attr:`generation`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_dir", "_history", "_index", "_index_over", "_mto_domains", "_skeletons", "generation",
                 "taken_at")

    def __init__(self, directory: _Directory, taken_at: dt.datetime, *, _index: Index | None = None) -> None:
        self._dir = directory
        self.generation: int = next(_generations)
        """Process-unique, monotonically increasing number of this snapshot."""
        self.taken_at: dt.datetime = taken_at
        """When the directory was read (newest file time, or the time stored by :meth:`save`)."""
        self._index: Index = (_build_index(directory.users.values(), directory.local_domains)
                              if _index is None else _index)
        self._index_over: dict[str, Any] | None = None  # a delta overlay of the index (value None: no match)
        self._history: tuple[tuple[int, frozenset[str]], ...] = ()  # (parent generation, changed addresses)
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
        """Directory objects by Graph object id (read-only)."""
        return self._dir.users

    def lookup(self, address: str) -> tuple[DirectoryUser, ...]:
        """Return the distinct objects that answer to a normalised ``address`` (empty when none).

        Several objects (an ambiguous address) come sorted by id.
        """
        over = self._index_over
        if over is None:
            found = self._index.get(address)
        else:
            found = over.get(address, _MISSING)
            if found is _MISSING:
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
        return iter(_Layered(self._index, self._index_over, set(), 0))

    def lookalike_of(self, domain: str) -> str | None:
        """Return the known domain whose UTS-39 skeleton equals ``domain``'s, if ``domain`` is not known itself."""
        if domain in self._dir.local_domains or domain in self._dir.domain_tenants:
            return None
        return self._skeletons.get(domain_skeleton(domain))

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

    def __repr__(self) -> str:
        return (f"<Snapshot {self.display_name or self.tenant_id} generation={self.generation} "
                f"users={len(self.users)} tenants={len(self.tenants)}>")

    # -- building ------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = False, progress: Progress | None = None
             ) -> Snapshot:
        """Load a snapshot folder (design section 2) or a SQLite file written by :meth:`save`.

        A store's schema version and recorded user count are always checked; ``verify=True`` also runs
        SQLite's full ``integrity_check`` first (it reads every page: slower, for on-demand checks).

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
        if p.is_file():
            with p.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
            if head == _SQLITE_MAGIC:
                with _gc_paused:
                    return cls._from_sqlite(p, verify=verify, progress=progress)
            raise SnapshotError("is neither a snapshot folder nor a SQLite file written by Snapshot.save",
                                file=str(p), value=str(p))
        raise SnapshotError("no such snapshot folder or file; give a folder of Graph JSON or a .sqlite store",
                            file=str(p), value=str(p))

    @classmethod
    def sample(cls) -> Snapshot:
        """Return the bundled sample MTO (Contoso and four partner tenants, every kind of user)."""
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
        """Build a snapshot from decoded Graph JSON documents (each the body of one file of design section 2).

        ``users`` and ``delta`` are sequences of pages. Errors name ``<memory>`` documents by role.
        """
        return cls._from_parts(
            ("organization.json", organization), ("mto.json", mto), ("domains.json", domains),
            None if partners is None else ("partners.json", partners),
            [_Page(f"users[{i}]", page) for i, page in enumerate(users)],
            [_Page(f"delta[{i}]", page) for i, page in enumerate(delta)],
            taken_at or _now(), None,
        )

    def with_delta(self, pages: Iterable[Any] | str | os.PathLike[str]) -> Snapshot:
        """Return a new snapshot with ``GET /users/delta`` pages applied (a folder of page files, or pages).

        Partial objects update only the fields they carry, ``@removed`` removes, and the same id may appear
        more than once. This snapshot is not changed. The cost grows with the delta, not the directory: the
        new snapshot shares this one's indexes and keeps the changes in an overlay (merged into fresh
        dictionaries, amortised, once it grows past an eighth of the shared part).
        """
        docs = (_folder_pages(Path(pages)) if isinstance(pages, (str, os.PathLike))
                else [_Page(f"delta[{i}]", page) for i, page in enumerate(pages)])
        with _gc_paused:  # a collection would traverse the whole (shared) directory: a cost of its size
            return self._derive(docs)

    def _derive(self, docs: list[_Page]) -> Snapshot:
        users = _Overlay(self._dir.users)
        before: dict[str, DirectoryUser | None] = {}
        for doc in docs:
            for obj in doc.users():
                uid = obj["id"]
                current = users.get(uid)
                if uid not in before:
                    before[uid] = current
                users.set(uid, _apply_entry(current, obj))

        index = _Overlay(self._index if self._index_over is None else
                         _Layered(self._index, self._index_over, set(), 0))
        keys = _Normalizer(self._dir.local_domains).keys
        changed: set[str] = set()
        for uid, old in before.items():
            new = users.get(uid)
            if new is old:
                continue
            old_keys = keys(old) if old is not None else []
            new_keys = keys(new) if new is not None else []
            for key in {*old_keys, *new_keys}:
                found = index.get(key)
                others = [] if found is None else [u for u in (found if found.__class__ is tuple else (found,))
                                                   if u.id != uid]
                if new is not None and key in new_keys:
                    others.append(new)
                index.set(key, None if not others else others[0] if len(others) == 1
                          else tuple(sorted(others, key=_by_id)))
                changed.add(key)

        base_size = len(users.base) + len(index.base)
        if len(users.over) + len(index.over) > _COMPACT_FRACTION * base_size:
            user_map: Mapping[str, DirectoryUser] = users.materialize()
            merged = dict(index.base)
            for key, value in index.over.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            index_base, index_over = merged, None
        else:
            user_map = users.view()
            index_base, index_over = index.base, index.over
        new_snap = Snapshot.__new__(Snapshot)
        new_snap._dir = attrs.evolve(self._dir, users=user_map)
        new_snap.generation = next(_generations)
        new_snap.taken_at = _now()
        new_snap._index = index_base
        new_snap._index_over = index_over
        new_snap._history = (*self._history, (self.generation, frozenset(changed)))[-_HISTORY:]
        new_snap._skeletons = self._skeletons
        new_snap._mto_domains = self._mto_domains
        return new_snap

    @classmethod
    def _from_folder(cls, folder: Path, progress: Progress | None) -> Snapshot:
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
        user_files = sorted(users_dir.glob("*.json"))
        delta_files = sorted((folder / "delta").glob("*.json"))
        files += user_files + delta_files
        newest = max((f.stat().st_mtime for f in files if f.is_file()), default=None)
        taken_at = dt.datetime.fromtimestamp(newest, dt.UTC) if newest is not None else _now()
        return cls._from_parts(
            required("organization.json"), required("mto.json"), required("domains.json"),
            _read_json(partners_path) if partners_path.is_file() else None,
            [_Page(str(p)) for p in user_files], [_Page(str(p)) for p in delta_files], taken_at, progress,
        )

    @classmethod
    def _from_parts(cls, organization: Document, mto: Document, domains: Document, partners: Document | None,
                    user_pages: list[_Page], delta_pages: list[_Page], taken_at: dt.datetime,
                    progress: Progress | None) -> Snapshot:
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
            tenant = _intern(row.tenant_id.lower())
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
        index: Index = {}
        keys = _Normalizer(local_domains).keys
        setdefault = index.setdefault
        total = len(user_pages)
        if progress is not None:
            progress(0, total, "users pages")
        for done, page in enumerate(user_pages, 1):
            file = page.file
            for i, obj in enumerate(page.users()):
                user = _user_from_dict(obj)
                uid = user.id
                if uid in users:
                    raise SnapshotError(f"duplicate user id {uid!r}; every object may appear once in users/ "
                                        "(use delta/ for changes)", file=file, path=f"$.value[{i}].id", value=uid)
                users[uid] = user
                for key in keys(user):
                    if setdefault(key, user) is not user:
                        _add(index, key, user)
            if progress is not None:
                progress(done, total, "users pages")
        directory = _Directory(tenant_id=org.id.lower(), display_name=org.display_name,
                               local_domains=local_domains, tenants=tenants, domain_tenants=domain_tenants,
                               partners=partner_rows, users=users)
        if delta_pages:
            # delta/ of a folder: applied in place (nobody holds these dicts yet), then re-indexed incrementally
            snap = cls(directory, taken_at, _index=index)
            if progress is not None:
                progress(0, len(delta_pages), "delta pages")
            for done, page in enumerate(delta_pages, 1):
                snap = snap._derive([page])
                if progress is not None:
                    progress(done, len(delta_pages), "delta pages")
            if snap._index_over is not None or not isinstance(snap._dir.users, dict):
                users = dict(snap._dir.users.items())
                index = dict(snap._index)
                for key, value in (snap._index_over or {}).items():
                    if value is None:
                        index.pop(key, None)
                    else:
                        index[key] = value
            else:
                users, index = snap._dir.users, snap._index
            directory = attrs.evolve(directory, users=users)
        return cls(directory, taken_at, _index=index)

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
    def _from_sqlite(cls, path: Path, *, verify: bool, progress: Progress | None = None) -> Snapshot:
        _check_not_truncated(path)
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
            return _read_store(conn, path, progress)
        except (sqlite3.DatabaseError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"the SQLite store is damaged or not written by Snapshot.save ({exc}); load the "
                                "folder again and save a new store", file=str(path), value=str(path)) from None
        finally:
            conn.close()


def _check_not_truncated(path: Path) -> None:
    """Refuse a store shorter than its header says (SQLite only notices when a query reads a missing page)."""
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise SnapshotError(f"cannot be read ({exc.strerror})", file=str(path), value=str(path)) from None
    if len(header) < 100:
        raise SnapshotError(f"the SQLite store is truncated ({size} bytes); load the folder again and save a "
                            "new store", file=str(path), value=str(size))
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and pages and size < pages * page_size:  # the header's page count is valid
        raise SnapshotError(f"the SQLite store is truncated ({size} bytes, its header says {pages * page_size}); "
                            "load the folder again and save a new store", file=str(path), value=str(size))


class _Page:
    """One users/delta page: a file read and validated when asked (one page in memory at a time), or data."""

    __slots__ = ("data", "file")

    def __init__(self, file: str, data: Any = _MISSING) -> None:
        self.file, self.data = file, data

    def users(self) -> list[dict[str, Any]]:
        if self.data is not _MISSING:
            return graph.parse_users_page(self.data, self.file)
        return graph.parse_users_page(_read_bytes(Path(self.file)), self.file, raw=True)


def _folder_pages(folder: Path) -> list[_Page]:
    return [_Page(str(p)) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot be read ({exc.strerror})", file=str(path), value=str(path)) from None


def _read_json(path: Path) -> Document:
    return str(path), graph.decode_json_bytes(_read_bytes(path), str(path))


# -- SQLite store ------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE local_domains (name TEXT PRIMARY KEY);
CREATE TABLE domains (name TEXT PRIMARY KEY, tenant_id TEXT NOT NULL);
CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, display_name TEXT, role TEXT, state TEXT);
CREATE TABLE partners (tenant_id TEXT PRIMARY KEY, in_mto INTEGER);
CREATE TABLE kinds (kind INTEGER PRIMARY KEY, user_type TEXT, creation_type TEXT, account_enabled INTEGER,
                    federated_external INTEGER NOT NULL, upn_is_mail INTEGER NOT NULL, mail_is_key INTEGER NOT NULL);
CREATE TABLE users (id TEXT PRIMARY KEY, upn TEXT, mail TEXT, other_mails TEXT, proxy_addresses TEXT,
                    kind INTEGER NOT NULL);
CREATE TABLE address_index (chunk INTEGER PRIMARY KEY, addresses TEXT NOT NULL, positions BLOB NOT NULL);
CREATE TABLE ambiguous (address TEXT PRIMARY KEY, user_ids TEXT NOT NULL);
"""
# Schema version 2: the address index is stored, so a load normalises nothing and builds the index in bulk.
# - kinds: the few-valued fields, one row per combination (users refer to it). upn_is_mail: the UPN equals
#   mail (users.upn is then NULL); mail_is_key: mail is already a normalised address that indexes this user
#   alone (the loaded index then shares the mail string).
# - users.other_mails / proxy_addresses: NULL for none, else "\x1f".join(values), or "\x1e" + the JSON array
#   when a value holds "\x1f" or "\x1e".
# - address_index: the other unambiguous addresses, in chunks: "\n"-joined addresses (a normalised address
#   never holds a control character) and, for each, the position of its user in rowid order (little-endian
#   uint32). ambiguous: addresses of several users, with their ids "\n"-joined.
_SEP = "\x1f"
_JSON_MARK = "\x1e"
_POSITION = next(t for t in "IL" if array.array(t).itemsize == 4)
_INDEX_CHUNK = 65_536


def _pack(values: tuple[str, ...]) -> str | None:
    if not values:
        return None
    if any(_SEP in v or _JSON_MARK in v for v in values):
        return _JSON_MARK + json.dumps(values)
    return _SEP.join(values)


def _unpack(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    if text[:1] != _JSON_MARK:
        return tuple(text.split(_SEP))
    values = json.loads(text[1:])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"a list column holds {text[:40]!r}")
    return tuple(values)


def _positions(values: list[int]) -> bytes:
    packed = array.array(_POSITION, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _write_store(conn: sqlite3.Connection, snap: Snapshot) -> None:
    from mtotrust import __version__  # the package imports this module: import late

    keys = _Normalizer(snap.local_domains).keys
    kinds: dict[tuple[Any, ...], int] = {}
    chunks: list[tuple[int, str, bytes]] = []
    ambiguous: dict[str, str] = {}
    pending_keys: list[str] = []
    pending_positions: list[int] = []

    def flush() -> None:
        if pending_keys:
            chunks.append((len(chunks), "\n".join(pending_keys), _positions(pending_positions)))
            pending_keys.clear()
            pending_positions.clear()

    def rows() -> Iterator[tuple[Any, ...]]:
        for position, u in enumerate(snap.users.values()):
            mail_is_key = False
            for key in keys(u):
                if len(snap.lookup(key)) > 1:
                    ambiguous.setdefault(key, "\n".join(x.id for x in snap.lookup(key)))
                elif key == u.mail and not mail_is_key:
                    mail_is_key = True
                else:
                    pending_keys.append(key)
                    pending_positions.append(position)
            if len(pending_keys) >= _INDEX_CHUNK:
                flush()
            upn_is_mail = u.mail is not None and u.user_principal_name == u.mail
            kind = kinds.setdefault((u.user_type, u.creation_type, u.account_enabled, u.federated_external,
                                     upn_is_mail, mail_is_key), len(kinds))
            yield (position, u.id, None if upn_is_mail else u.user_principal_name, u.mail, _pack(u.other_mails),
                   _pack(u.proxy_addresses), kind)

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
        conn.executemany("INSERT INTO users (rowid, id, upn, mail, other_mails, proxy_addresses, kind) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", rows())
        flush()
        conn.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?)", [(i, *k) for k, i in kinds.items()])
        conn.executemany("INSERT INTO address_index VALUES (?, ?, ?)", chunks)
        conn.executemany("INSERT INTO ambiguous VALUES (?, ?)", sorted(ambiguous.items()))


def _read_store(conn: sqlite3.Connection, path: Path, progress: Progress | None) -> Snapshot:
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    version = meta.get("schema_version")
    if version not in (str(SCHEMA_VERSION), "1"):
        raise SnapshotError(f"store schema version {version!r} is not supported (this mtotrust reads versions 1 "
                            f"and {SCHEMA_VERSION}); save the store again with this version", file=str(path),
                            path="meta.schema_version", value=version)
    try:
        total = int(meta["user_count"])
    except (KeyError, ValueError):
        total = 0  # unknown: the count check below refuses the store
    local_domains = frozenset(r[0] for r in conn.execute("SELECT name FROM local_domains"))
    if version == "1":
        users = _read_users_v1(conn, total, progress)
        index = _build_index(users.values(), local_domains)
    else:
        users, index = _read_users_v2(conn, total, progress)
    if str(len(users)) != meta.get("user_count"):
        raise SnapshotError(f"store holds {len(users)} users but recorded {meta.get('user_count')}; it is "
                            "damaged: save it again", file=str(path), path="meta.user_count",
                            value=meta.get("user_count"))
    directory = _Directory(
        tenant_id=meta["tenant_id"], display_name=meta["display_name"] or None,
        local_domains=local_domains,
        tenants={r[0]: Tenant(*r) for r in conn.execute("SELECT * FROM tenants")},
        domain_tenants={name: _intern(tid) for name, tid in conn.execute("SELECT name, tenant_id FROM domains")},
        partners={r[0]: None if r[1] is None else bool(r[1]) for r in conn.execute("SELECT * FROM partners")},
        users=users,
    )
    return Snapshot(directory, dt.datetime.fromisoformat(meta["taken_at"]), _index=index)


def _read_users_v2(conn: sqlite3.Connection, total: int, progress: Progress | None
                   ) -> tuple[dict[str, DirectoryUser], Index]:
    kinds = {
        kind: (None if user_type is None else _intern(user_type),
               None if creation_type is None else _intern(creation_type),
               None if enabled is None else bool(enabled), bool(federated), bool(upn_is_mail), bool(mail_is_key))
        for kind, user_type, creation_type, enabled, federated, upn_is_mail, mail_is_key
        in conn.execute("SELECT * FROM kinds")
    }
    users: dict[str, DirectoryUser] = {}
    mail_keys: list[str] = []
    mail_users: list[DirectoryUser] = []
    cursor = conn.execute("SELECT id, upn, mail, other_mails, proxy_addresses, kind FROM users ORDER BY rowid")
    if progress is not None:
        progress(0, total, "users")
    sep, mark, rows_read = _SEP, _JSON_MARK, 0
    mail_key, mail_user = mail_keys.append, mail_users.append
    while rows := cursor.fetchmany(_ROWS_PER_PROGRESS):
        rows_read += len(rows)
        for uid, upn_text, mail, other, proxies, kind in rows:
            user_type, creation_type, enabled, federated, upn_is_mail, mail_is_key = kinds[kind]
            if other is None:
                other_mails: tuple[str, ...] = ()
            else:
                other_mails = _unpack(other)
                if mail is not None and mail in other_mails:
                    other_mails = tuple(mail if m == mail else m for m in other_mails)
            users[uid] = user = DirectoryUser(
                uid, mail if upn_is_mail else upn_text, mail, other_mails,
                () if proxies is None else tuple(proxies.split(sep)) if proxies[:1] != mark else _unpack(proxies),
                user_type, creation_type, enabled, federated)
            if mail_is_key:
                mail_key(mail)
                mail_user(user)
        if progress is not None:
            progress(len(users), total, "users")
    if rows_read != len(users):
        raise ValueError("duplicate user ids")
    ordered = list(users.values())
    index: Index = dict(zip(mail_keys, mail_users, strict=True))
    expected = len(mail_keys)
    position = ordered.__getitem__
    for addresses, packed in conn.execute("SELECT addresses, positions FROM address_index ORDER BY chunk"):
        keys = addresses.split("\n")
        positions = array.array(_POSITION)
        positions.frombytes(packed)
        if sys.byteorder == "big":
            positions.byteswap()
        if len(keys) != len(positions):
            raise ValueError("an address_index chunk holds more addresses than positions or fewer")
        index.update(zip(keys, map(position, positions), strict=True))
        expected += len(keys)
    for address, ids in conn.execute("SELECT address, user_ids FROM ambiguous"):
        found = tuple(sorted({users[i] for i in ids.split("\n")}, key=_by_id))
        if len(found) < 2:
            raise ValueError(f"ambiguous address {address!r} names one user")
        index[address] = found
        expected += 1
    if len(index) != expected or not all(key.__class__ is str for key in mail_keys):
        raise ValueError("the address index holds an address twice")
    return users, index


def _read_users_v1(conn: sqlite3.Connection, total: int, progress: Progress | None) -> dict[str, DirectoryUser]:
    if progress is not None:
        progress(0, total, "users")
    users = {
        row[0]: DirectoryUser(id=row[0], user_principal_name=row[1], mail=row[2],
                              other_mails=tuple(json.loads(row[3])), proxy_addresses=tuple(json.loads(row[4])),
                              user_type=row[5], creation_type=row[6],
                              account_enabled=None if row[7] is None else bool(row[7]),
                              federated_external=bool(row[8]))
        for row in conn.execute("SELECT * FROM users")
    }
    if progress is not None:
        progress(len(users), total, "users")
    return users
