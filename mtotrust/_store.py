"""The SQLite store: one file holding a snapshot, written atomically, read back without re-normalising.

:func:`save_store` writes the parts of a snapshot, :func:`read_store` returns them; neither builds a
:class:`~mtotrust.Snapshot`. Besides the directory, a store keeps its ``taken_at``, the snapshot's content id
(``Snapshot.id``) with the users digest deltas update it from, and a small ``metadata`` table (key → value) where
features keep what belongs beside the directory, such as a sync's delta link.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from mtotrust._directory import Directory, Index, Normalizer, by_id
from mtotrust._errors import SnapshotError
from mtotrust._ingest import Progress
from mtotrust._model import DirectoryUser, Tenant
from mtotrust._version import __version__

__all__ = ["SCHEMA_VERSION", "SQLITE_MAGIC", "StoreParts", "read_store", "save_store"]

SCHEMA_VERSION = 3
"""Version of the store layout :func:`save_store` writes and :func:`read_store` reads (no other is read)."""

SQLITE_MAGIC = b"SQLite format 3\x00"
_ROWS_PER_PROGRESS = 10_000
_intern = sys.intern


@attrs.frozen(slots=True)
class StoreParts:
    """What a store holds."""

    directory: Directory
    index: Index
    taken_at: dt.datetime
    snapshot_id: str
    users_digest: int
    metadata: Mapping[str, str]


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
# Schema version 3: the address index is stored, so a load normalises nothing and builds the index in bulk.
# - meta: the store's own facts (schema version, taken_at, the snapshot id and its users digest ...);
#   metadata: what features keep beside the directory (a sync's delta link); neither enters Snapshot.id.
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


def _write(conn: sqlite3.Connection, parts: StoreParts, lookup: Callable[[str], tuple[DirectoryUser, ...]]) -> None:
    directory = parts.directory
    keys = Normalizer(directory.local_domains).keys
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
        for position, u in enumerate(directory.users.values()):
            mail_is_key = False
            for key in keys(u):
                if len(lookup(key)) > 1:
                    ambiguous.setdefault(key, "\n".join(x.id for x in lookup(key)))
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
            ("schema_version", str(SCHEMA_VERSION)), ("taken_at", parts.taken_at.isoformat()),
            ("tenant_id", directory.tenant_id), ("display_name", directory.display_name or ""),
            ("written_by", f"mtotrust {__version__}"), ("user_count", str(len(directory.users))),
            ("snapshot_id", parts.snapshot_id), ("users_digest", f"{parts.users_digest:064x}"),
        ])
        conn.executemany("INSERT INTO metadata VALUES (?, ?)", sorted(parts.metadata.items()))
        conn.executemany("INSERT INTO local_domains VALUES (?)", [(d,) for d in sorted(directory.local_domains)])
        conn.executemany("INSERT INTO domains VALUES (?, ?)", sorted(directory.domain_tenants.items()))
        conn.executemany("INSERT INTO tenants VALUES (?, ?, ?, ?)",
                         [(t.tenant_id, t.display_name, t.role, t.state) for t in directory.tenants.values()])
        conn.executemany("INSERT INTO partners VALUES (?, ?)", list(directory.partners.items()))
        conn.executemany("INSERT INTO users (rowid, id, upn, mail, other_mails, proxy_addresses, kind) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", rows())
        flush()
        conn.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?)", [(i, *k) for k, i in kinds.items()])
        conn.executemany("INSERT INTO address_index VALUES (?, ?, ?)", chunks)
        conn.executemany("INSERT INTO ambiguous VALUES (?, ?)", sorted(ambiguous.items()))


def _read(conn: sqlite3.Connection, path: Path, progress: Progress | None) -> StoreParts:
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise SnapshotError(f"store schema version {version!r} is not supported (this mtotrust reads version "
                            f"{SCHEMA_VERSION}); load the snapshot folder again and save a new store", file=str(path),
                            path="meta.schema_version", value=version)
    try:
        total = int(meta["user_count"])
    except (KeyError, ValueError):
        total = 0  # unknown: the count check below refuses the store
    local_domains = frozenset(r[0] for r in conn.execute("SELECT name FROM local_domains"))
    users, index = _read_users(conn, total, progress)
    if str(len(users)) != meta.get("user_count"):
        raise SnapshotError(f"store holds {len(users)} users but recorded {meta.get('user_count')}; it is "
                            "damaged: save it again", file=str(path), path="meta.user_count",
                            value=meta.get("user_count"))
    directory = Directory(
        tenant_id=meta["tenant_id"], display_name=meta["display_name"] or None,
        local_domains=local_domains,
        tenants={r[0]: Tenant(*r) for r in conn.execute("SELECT * FROM tenants")},
        domain_tenants={name: _intern(tid) for name, tid in conn.execute("SELECT name, tenant_id FROM domains")},
        partners={r[0]: None if r[1] is None else bool(r[1]) for r in conn.execute("SELECT * FROM partners")},
        users=users,
    )
    return StoreParts(directory, index, dt.datetime.fromisoformat(meta["taken_at"]), meta["snapshot_id"],
                      int(meta["users_digest"], 16), dict(conn.execute("SELECT key, value FROM metadata")))


def _read_users(conn: sqlite3.Connection, total: int, progress: Progress | None
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
        found = tuple(sorted({users[i] for i in ids.split("\n")}, key=by_id))
        if len(found) < 2:
            raise ValueError(f"ambiguous address {address!r} names one user")
        index[address] = found
        expected += 1
    if len(index) != expected or not all(key.__class__ is str for key in mail_keys):
        raise ValueError("the address index holds an address twice")
    return users, index


def read_store(path: Path, *, verify: bool, progress: Progress | None = None) -> StoreParts:
    """Read a store written by :func:`save_store`.

    Raises:
        SnapshotError: for a damaged store, one of another schema version, or one not written by mtotrust.
    """
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
        return _read(conn, path, progress)
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


def save_store(path: str | os.PathLike[str], parts: StoreParts,
               lookup: Callable[[str], tuple[DirectoryUser, ...]]) -> None:
    """Write a store atomically: a temporary file in the same folder, flushed, then renamed over ``path``.

    A reader sees the old file or the new one, never half of one. ``lookup`` is the snapshot's address lookup
    (the objects of an address), which the stored index is written from.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        conn = sqlite3.connect(tmp)
        try:
            _write(conn, parts, lookup)
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

