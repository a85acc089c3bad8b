"""The SQLite store: one file holding a snapshot, written atomically, read back without re-normalising.

:func:`save_store` writes the parts of a snapshot, :func:`read_store` returns them; neither builds a
:class:`~mtotrust.Snapshot`. Besides the directory, a store keeps its ``taken_at``, the snapshot's content id
(``Snapshot.id``) with the users digest deltas update it from, and a small ``metadata`` table (key → value) where
features keep what belongs beside the directory, such as a sync's delta link.

Integrity: :func:`save_store` seals the file with the SHA-256 of every byte SQLite wrote (every page: each table,
the index tables, the schema) in a 48-byte trailer after the last page, and every read checks it before it builds
anything, so a store changed or damaged after it was saved is refused on a default load. Every cell the reader
uses is also type-checked (TEXT where text, INTEGER 0/1 where a flag, NULL only where the writer writes it):
nothing is coerced. Any failure is a :class:`~mtotrust.SnapshotError` naming the file and, for a cell, its
``table.column``.

Saving: a temporary file beside the target, renamed over it once complete and sealed, under a lock that writers
of one target share; each writer first removes what killed writers left. Every failure is a
:class:`~mtotrust.SnapshotError` naming the path, with the target unchanged and no temporary file left.

Why this module is near 750 lines: it is one concept, the store's layout, and the writer, the reader and the
reader's checks all encode that one layout (tables, packing, seal); split apart, a change to the layout would
have to be made in step in several modules.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import os
import re
import secrets
import sqlite3
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

if sys.platform != "win32":
    import fcntl

from mtotrust._directory import Directory, Index, by_id, content_id
from mtotrust._errors import SnapshotError, shown
from mtotrust._files import MAX_STORE_BYTES, open_regular
from mtotrust._ingest import Progress
from mtotrust._model import DirectoryUser, Tenant
from mtotrust._version import __version__

__all__ = ["SCHEMA_VERSION", "SEAL_MARKER", "SQLITE_MAGIC", "StoreParts", "read_store", "save_store", "seal"]

SCHEMA_VERSION = 4
"""Version of the store layout :func:`save_store` writes and :func:`read_store` reads (no other is read)."""

SQLITE_MAGIC = b"SQLite format 3\x00"
SEAL_MARKER = b"mtotrust-sha256\x00"
"""The end of a sealed store: after the last SQLite page, the SHA-256 of every byte before it, then this marker.
SQLite reads only the pages its header counts, so it never sees the trailer."""
_SEAL_LENGTH = 32 + len(SEAL_MARKER)
_HASH_BLOCK = 1 << 20
_ATTEMPTS = 3  # reads of a store that other processes keep renaming new stores over while it is loaded
_FIX = "load the snapshot folder again and save a new store (or re-sync)"
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
# Schema version 4 is version 3 (the address index is stored, so a load normalises nothing and builds the index in
# bulk) sealed: a SHA-256 of the whole file follows its last page (see seal).
# - meta: the store's own facts (schema version, taken_at, the snapshot id and its users digest ...);
#   metadata: what features keep beside the directory (a sync's delta link); neither enters Snapshot.id.
# - kinds: the few-valued fields, one row per combination (users refer to it). upn_is_mail: the UPN equals
#   mail (users.upn is then NULL); mail_is_key: mail is already a normalised address that indexes this user
#   alone (the loaded index then shares the mail string).
# - users.other_mails / proxy_addresses: NULL for none, else "\x1f".join(values), or "\x1e" + the JSON array
#   when a value holds "\x1f" or "\x1e".
# - address_index: the other unambiguous addresses, in chunks: "\n"-joined addresses (a normalised address
#   never holds a control character) and, for each, the position of its user in rowid order (little-endian
#   uint32). ambiguous: addresses of several users, with their ids "\n"-joined, or "\x1e" + the JSON array when
#   an id holds "\n" or "\x1e" (an id is any text Graph gave).
_SEP = "\x1f"
_ID_SEP = "\n"
_JSON_MARK = "\x1e"
_POSITION = next(t for t in "IL" if array.array(t).itemsize == 4)
_INDEX_CHUNK = 65_536


def _pack(values: tuple[str, ...], sep: str = _SEP) -> str | None:
    """Return a list cell: ``None`` for none, else the ``sep``-joined values.

    The JSON form when a value holds ``sep`` or the JSON mark, so that any text reads back as it was.
    """
    if not values:
        return None
    if any(sep in v or _JSON_MARK in v for v in values):
        return _JSON_MARK + json.dumps(values)
    return sep.join(values)


def _positions(values: list[int]) -> bytes:
    packed = array.array(_POSITION, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _write(conn: sqlite3.Connection, parts: StoreParts) -> None:
    directory = parts.directory
    position = {u.id: i for i, u in enumerate(directory.users.values())}
    mail_is_key: set[int] = set()  # positions of the users whose mail is an address indexing them alone
    chunks: list[tuple[int, str, bytes]] = []
    ambiguous: dict[str, str | None] = {}
    pending_keys: list[str] = []
    pending_positions: list[int] = []
    # The address index is written from the snapshot's own (every address each user answers to, already
    # normalised): nothing is normalised again.
    for key, found in parts.index.items():
        if isinstance(found, tuple):
            ambiguous[key] = _pack(tuple(x.id for x in found), _ID_SEP)
            continue
        at = position[found.id]
        if key == found.mail:
            mail_is_key.add(at)
            continue
        pending_keys.append(key)
        pending_positions.append(at)
        if len(pending_keys) >= _INDEX_CHUNK:
            chunks.append((len(chunks), "\n".join(pending_keys), _positions(pending_positions)))
            pending_keys.clear()
            pending_positions.clear()
    if pending_keys:
        chunks.append((len(chunks), "\n".join(pending_keys), _positions(pending_positions)))
    kinds: dict[tuple[Any, ...], int] = {}

    def rows() -> Iterator[tuple[Any, ...]]:
        for at, u in enumerate(directory.users.values()):
            upn_is_mail = u.mail is not None and u.user_principal_name == u.mail
            kind = kinds.setdefault((u.user_type, u.creation_type, u.account_enabled, u.federated_external,
                                     upn_is_mail, at in mail_is_key), len(kinds))
            yield (at, u.id, None if upn_is_mail else u.user_principal_name, u.mail, _pack(u.other_mails),
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
        conn.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?)", [(i, *k) for k, i in kinds.items()])
        conn.executemany("INSERT INTO address_index VALUES (?, ?, ?)", chunks)
        conn.executemany("INSERT INTO ambiguous VALUES (?, ?)", sorted(ambiguous.items()))


# -- reading ------------------------------------------------------------------------------------------------------

# What each column holds, as Snapshot.save writes it; the reader accepts nothing else (no coercion).
_TEXT = "TEXT"
_TEXT_OR_NULL = "TEXT or NULL"
_INTEGER = "INTEGER"
_BLOB = "BLOB"
_FLAG = "INTEGER 0 or 1"
_FLAG_OR_NULL = "INTEGER 0 or 1, or NULL"
_STORAGE_CLASS = {str: "TEXT", int: "INTEGER", float: "REAL", bytes: "BLOB", type(None): "NULL"}
Columns = tuple[tuple[str, str], ...]

_META: Columns = (("key", _TEXT), ("value", _TEXT))
_LOCAL_DOMAINS: Columns = (("name", _TEXT),)
_DOMAINS: Columns = (("name", _TEXT), ("tenant_id", _TEXT))
_TENANTS: Columns = (("tenant_id", _TEXT), ("display_name", _TEXT_OR_NULL), ("role", _TEXT_OR_NULL),
                     ("state", _TEXT_OR_NULL))
_PARTNERS: Columns = (("tenant_id", _TEXT), ("in_mto", _FLAG_OR_NULL))
_KINDS: Columns = (("kind", _INTEGER), ("user_type", _TEXT_OR_NULL), ("creation_type", _TEXT_OR_NULL),
                   ("account_enabled", _FLAG_OR_NULL), ("federated_external", _FLAG), ("upn_is_mail", _FLAG),
                   ("mail_is_key", _FLAG))
_USERS: Columns = (("id", _TEXT), ("upn", _TEXT_OR_NULL), ("mail", _TEXT_OR_NULL), ("other_mails", _TEXT_OR_NULL),
                   ("proxy_addresses", _TEXT_OR_NULL), ("kind", _INTEGER))
_ADDRESS_INDEX: Columns = (("addresses", _TEXT), ("positions", _BLOB))
_AMBIGUOUS: Columns = (("address", _TEXT), ("user_ids", _TEXT))
_META_KEYS = ("schema_version", "taken_at", "tenant_id", "display_name", "user_count", "snapshot_id", "users_digest")

# A list cell in JSON form is a flat array of strings exactly as json.dumps writes it: no nesting to recurse into.
_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_JSON_LIST = re.compile(rf"\[{_JSON_STRING}(?:, {_JSON_STRING})*\]").fullmatch
_HEX_DIGEST = re.compile("[0-9a-f]{64}").fullmatch


def _fits(value: object, kind: str) -> bool:
    """Whether a cell holds what Snapshot.save writes in a column of ``kind``."""
    cls = value.__class__
    if kind in (_TEXT, _TEXT_OR_NULL):
        return cls is str or (value is None and kind == _TEXT_OR_NULL)
    if kind == _INTEGER:
        return cls is int
    if kind == _BLOB:
        return cls is bytes
    return (cls is int and value in (0, 1)) or (value is None and kind == _FLAG_OR_NULL)


def _damaged(path: Path, where: str, problem: str, value: object) -> SnapshotError:
    """Return the error for a store whose content is not what Snapshot.save wrote, at ``where`` (table.column)."""
    return SnapshotError(f"{problem}; the store was changed or damaged after Snapshot.save wrote it: {_FIX}",
                         file=str(path), path=where, value=value)


def _check_row(path: Path, table: str, columns: Columns, row: tuple[Any, ...]) -> None:
    """Raise the error naming the first cell of ``row`` that ``columns`` does not allow."""
    for value, (name, kind) in zip(row, columns, strict=True):
        if not _fits(value, kind):
            stored = _STORAGE_CLASS.get(value.__class__, value.__class__.__name__)
            raise _damaged(path, f"{table}.{name}", f"holds {stored} {shown(value)} where Snapshot.save writes {kind}",
                           value)


def _typed_rows(conn: sqlite3.Connection, path: Path, table: str, columns: Columns) -> Iterator[tuple[Any, ...]]:
    """Yield the rows of ``table`` in the order they were written, each cell checked against ``columns``."""
    names = ", ".join(name for name, _ in columns)
    try:
        for row in conn.execute(f"SELECT {names} FROM {table} ORDER BY rowid"):  # noqa: S608 (constant names)
            _check_row(path, table, columns, row)
            yield row
    except sqlite3.Error as exc:  # such as text that is not UTF-8 (SQLite's message names the column)
        raise _damaged(path, table, f"cannot be read ({exc})", None) from None


def _fetch(cursor: sqlite3.Cursor, path: Path, table: str) -> list[tuple[Any, ...]]:
    """Return the next rows of ``cursor`` (a read of ``table``); a SQLite error names the table."""
    try:
        return cursor.fetchmany(_ROWS_PER_PROGRESS)
    except sqlite3.Error as exc:  # such as text that is not UTF-8 (SQLite's message names the column)
        raise _damaged(path, table, f"cannot be read ({exc})", None) from None


def _unpack_json(text: str, path: Path, where: str) -> tuple[str, ...]:
    """Decode a list cell in its JSON form (``_JSON_MARK`` and a flat JSON array of strings)."""
    if _JSON_LIST(text, 1) is None:
        raise _damaged(path, where, f"holds {shown(text)}, which is not a JSON array of strings as Snapshot.save "
                       "writes one", text)
    values = json.loads(text[1:])
    if not isinstance(values, list) or not all(v.__class__ is str for v in values):
        raise _damaged(path, where, f"holds {shown(text)}, not a JSON array of strings", text)
    return tuple(values)


class _ProgressError(Exception):
    """Carries an exception raised by the caller's progress callback past the damage handler, re-raised as is."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _guarded(progress: Progress) -> Progress:
    """Wrap ``progress`` so that what it raises propagates unchanged, never read as damage to the store."""
    def call(done: int, total: int, what: str) -> None:
        try:
            progress(done, total, what)
        except Exception as exc:
            raise _ProgressError(exc) from exc
    return call


def _read(conn: sqlite3.Connection, fh: io.BufferedIOBase, size: int, header: bytes, path: Path, verify: bool,
          progress: Progress | None) -> StoreParts:
    meta = dict(_typed_rows(conn, path, "meta", _META))
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise SnapshotError(f"store schema version {version!r} is not supported (this mtotrust reads version "
                            f"{SCHEMA_VERSION}); load the snapshot folder again and save a new store", file=str(path),
                            path="meta.schema_version", value=version)
    _check_seal(fh, size, header, path)
    if verify:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise SnapshotError(f"SQLite integrity check failed: {'; '.join(map(str, problems[:3]))}; {_FIX}",
                                file=str(path), value=problems[0])
    for key in _META_KEYS:
        if key not in meta:
            raise _damaged(path, f"meta.{key}", "is missing", None)
    count = meta["user_count"]
    if not (count.isascii() and count.isdecimal()):
        raise _damaged(path, "meta.user_count", f"holds {shown(count)}, not a count of users", count)
    digest = meta["users_digest"]
    if _HEX_DIGEST(digest) is None:
        raise _damaged(path, "meta.users_digest", f"holds {shown(digest)}, not 64 hex digits", digest)
    taken_at = _taken_at(meta["taken_at"], path)
    local_domains = frozenset(name for name, in _typed_rows(conn, path, "local_domains", _LOCAL_DOMAINS))
    tenants = {row[0]: Tenant(*row) for row in _typed_rows(conn, path, "tenants", _TENANTS)}
    domain_tenants = {name: _intern(tid) for name, tid in _typed_rows(conn, path, "domains", _DOMAINS)}
    partners = {tid: None if flag is None else flag == 1
                for tid, flag in _typed_rows(conn, path, "partners", _PARTNERS)}
    users, index = _read_users(conn, path, int(count), progress)
    if str(len(users)) != count:
        raise SnapshotError(f"store holds {len(users)} users but recorded {count}; it is damaged: {_FIX}",
                            file=str(path), path="meta.user_count", value=count)
    directory = Directory(tenant_id=meta["tenant_id"], display_name=meta["display_name"] or None,
                          local_domains=local_domains, tenants=tenants, domain_tenants=domain_tenants,
                          partners=partners, users=users)
    users_digest = int(digest, 16)
    snapshot_id = meta["snapshot_id"]
    if content_id(directory, users_digest) != snapshot_id:
        raise _damaged(path, "meta.snapshot_id", f"{shown(snapshot_id)} is not the id of the store's content",
                       snapshot_id)
    metadata = dict(_typed_rows(conn, path, "metadata", _META))
    return StoreParts(directory, index, taken_at, snapshot_id, users_digest, metadata)


def _taken_at(text: str, path: Path) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _damaged(path, "meta.taken_at", f"holds {shown(text)}, not an ISO 8601 time", text) from None
    if when.tzinfo is None:
        raise _damaged(path, "meta.taken_at", f"holds {shown(text)}, a time without a zone", text)
    return when


def _read_users(conn: sqlite3.Connection, path: Path, total: int, progress: Progress | None
                ) -> tuple[dict[str, DirectoryUser], Index]:
    kinds = {
        kind: (None if user_type is None else _intern(user_type),
               None if creation_type is None else _intern(creation_type),
               None if enabled is None else enabled == 1, federated == 1, upn_is_mail == 1, mail_is_key == 1)
        for kind, user_type, creation_type, enabled, federated, upn_is_mail, mail_is_key
        in _typed_rows(conn, path, "kinds", _KINDS)
    }
    users: dict[str, DirectoryUser] = {}
    mail_keys: list[str] = []
    mail_users: list[DirectoryUser] = []
    cursor = conn.execute("SELECT id, upn, mail, other_mails, proxy_addresses, kind FROM users ORDER BY rowid")
    if progress is not None:
        progress(0, total, "users")
    sep, mark, rows_read = _SEP, _JSON_MARK, 0
    mail_key, mail_user = mail_keys.append, mail_users.append
    while rows := _fetch(cursor, path, "users"):
        rows_read += len(rows)
        for row in rows:
            uid, upn, mail, other, proxies, kind = row
            if not (uid.__class__ is str and kind.__class__ is int and (upn is None or upn.__class__ is str)
                    and (mail is None or mail.__class__ is str) and (other is None or other.__class__ is str)
                    and (proxies is None or proxies.__class__ is str)):
                _check_row(path, "users", _USERS, row)
            try:
                user_type, creation_type, enabled, federated, upn_is_mail, mail_is_key = kinds[kind]
            except KeyError:
                raise _damaged(path, "users.kind", f"holds {kind}, which is not a row of kinds", kind) from None
            if upn_is_mail:
                if upn is not None or mail is None:
                    raise _damaged(path, "users.upn", f"holds {shown(upn)} for user {shown(uid)}, whose kind says "
                                   "the user principal name is its mail (NULL here, and a mail)", upn)
                upn = mail
            if other is None:
                other_mails: tuple[str, ...] = ()
            else:
                other_mails = (tuple(other.split(sep)) if other[:1] != mark
                               else _unpack_json(other, path, "users.other_mails"))
                if mail is not None and mail in other_mails:
                    other_mails = tuple(mail if m == mail else m for m in other_mails)
            users[uid] = user = DirectoryUser(
                uid, upn, mail, other_mails,
                () if proxies is None else tuple(proxies.split(sep)) if proxies[:1] != mark
                else _unpack_json(proxies, path, "users.proxy_addresses"),
                user_type, creation_type, enabled, federated)
            if mail_is_key:
                if mail is None:
                    raise _damaged(path, "users.mail", f"is NULL for user {shown(uid)}, whose kind says its mail "
                                   "is an index key", mail)
                mail_key(mail)
                mail_user(user)
        if progress is not None:
            progress(len(users), total, "users")
    if rows_read != len(users):
        raise _damaged(path, "users.id", f"holds {rows_read - len(users)} id(s) twice", None)
    ordered = list(users.values())
    index: Index = dict(zip(mail_keys, mail_users, strict=True))
    expected = len(mail_keys)
    position = ordered.__getitem__
    for addresses, packed in _typed_rows(conn, path, "address_index", _ADDRESS_INDEX):
        keys = addresses.split("\n")
        if len(packed) % 4:
            raise _damaged(path, "address_index.positions", f"holds {len(packed)} bytes, not 4-byte positions",
                           len(packed))
        positions = array.array(_POSITION)
        positions.frombytes(packed)
        if sys.byteorder == "big":
            positions.byteswap()
        if len(keys) != len(positions):
            raise _damaged(path, "address_index.positions", f"holds {len(positions)} positions for {len(keys)} "
                           "addresses", len(positions))
        if positions and max(positions) >= len(ordered):
            raise _damaged(path, "address_index.positions", f"holds position {max(positions)}, past the last of "
                           f"{len(ordered)} users", max(positions))
        index.update(zip(keys, map(position, positions), strict=True))
        expected += len(keys)
    for address, ids in _typed_rows(conn, path, "ambiguous", _AMBIGUOUS):
        found: set[DirectoryUser] = set()
        for uid in (ids.split(_ID_SEP) if ids[:1] != _JSON_MARK else _unpack_json(ids, path, "ambiguous.user_ids")):
            named = users.get(uid)
            if named is None:
                raise _damaged(path, "ambiguous.user_ids", f"names {shown(uid)} for {shown(address)}, who is not a "
                               "user", ids)
            found.add(named)
        if len(found) < 2:
            raise _damaged(path, "ambiguous.user_ids", f"names one user for {shown(address)}", ids)
        index[address] = tuple(sorted(found, key=by_id))
        expected += 1
    if len(index) != expected:
        raise _damaged(path, "address_index.addresses", f"the index holds {expected - len(index)} address(es) twice "
                       "(across the users' mail keys, address_index and ambiguous)", None)
    return users, index


def read_store(path: Path, *, verify: bool, progress: Progress | None = None) -> StoreParts:
    """Read a store written by :func:`save_store`.

    The seal (a SHA-256 of every page) is checked on every read, before anything is built, and every cell is
    type-checked. A store that another process renames a new store over while it is read is read again (the
    snapshot returned is always the one file that was checked).

    Raises:
        SnapshotError: for a damaged or changed store, one of another schema version, or one not written by
            mtotrust.
    """
    guarded = None if progress is None else _guarded(progress)
    for _ in range(_ATTEMPTS):
        parts = _read_file(path, verify, guarded)
        if parts is not None:
            return parts
    raise SnapshotError(f"was replaced by another file {_ATTEMPTS} times while it was being loaded; load it again "
                        "once the writer is done", file=str(path), value=str(path))


def _read_file(path: Path, verify: bool, progress: Progress | None) -> StoreParts | None:
    """Read the store once; ``None`` when ``path`` was replaced or changed while it was read (read it again)."""
    fh = open_regular(path, MAX_STORE_BYTES, lambda problem: SnapshotError(problem, file=str(path), value=str(path)))
    with fh:
        opened = os.fstat(fh.fileno())
        header = fh.read(100)
        _check_not_truncated(path, header, opened.st_size)
        try:
            # opened after fh: if path names fh's file before and after the read, SQLite read that file too
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise SnapshotError(f"cannot open the SQLite store ({exc})", file=str(path), value=str(path)) from None
        try:
            try:
                parts = _read(conn, fh, opened.st_size, header, path, verify, progress)
            except _ProgressError as exc:
                raise exc.error from None
            except SnapshotError:
                raise
            except (sqlite3.Error, OSError, LookupError, ValueError, TypeError, AttributeError, ArithmeticError,
                    RecursionError) as exc:
                raise SnapshotError(f"the SQLite store is damaged or not written by Snapshot.save ({exc}); {_FIX}",
                                    file=str(path), value=str(path)) from None
        except SnapshotError:
            if _unchanged(path, fh, opened):
                raise
            return None
        finally:
            conn.close()
        return parts if _unchanged(path, fh, opened) else None


def _unchanged(path: Path, fh: io.BufferedIOBase, opened: os.stat_result) -> bool:
    """Whether ``path`` still names the file ``fh`` opened, unchanged since ``opened`` was taken."""
    try:
        named, held = path.stat(), os.fstat(fh.fileno())
    except OSError:
        return False
    first = (opened.st_dev, opened.st_ino, opened.st_size, opened.st_mtime_ns)
    return first == (named.st_dev, named.st_ino, named.st_size, named.st_mtime_ns) == (
        held.st_dev, held.st_ino, held.st_size, held.st_mtime_ns)


def _pages(header: bytes) -> int | None:
    """Return the byte length of the pages a SQLite header counts, or ``None`` when its page count is not valid."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] != header[92:96] or not pages:
        return None
    return pages * page_size


def _check_not_truncated(path: Path, header: bytes, size: int) -> None:
    """Refuse a store shorter than its header says (SQLite only notices when a query reads a missing page)."""
    if len(header) < 100:
        raise SnapshotError(f"the SQLite store is truncated ({size} bytes); {_FIX}", file=str(path),
                            value=str(size))
    length = _pages(header)
    if length is not None and size < length:
        raise SnapshotError(f"the SQLite store is truncated ({size} bytes, its header says {length}); {_FIX}",
                            file=str(path), value=str(size))


def _check_seal(fh: io.BufferedIOBase, size: int, header: bytes, path: Path) -> None:
    """Refuse a store whose bytes are not those :func:`seal` sealed: the trailer, its length and its SHA-256."""
    fh.seek(max(size - _SEAL_LENGTH, 0))
    trailer = fh.read(_SEAL_LENGTH)
    if len(trailer) != _SEAL_LENGTH or trailer[32:] != SEAL_MARKER:
        raise SnapshotError(f"the SQLite store has no seal (the SHA-256 trailer Snapshot.save writes after the last "
                            f"page): it was cut, or rewritten by another program; {_FIX}", file=str(path),
                            value=trailer[32:])
    length = _pages(header)
    if length != size - _SEAL_LENGTH:
        raise SnapshotError(f"the SQLite store is {size} bytes, but its header counts {length} bytes of pages "
                            f"before the {_SEAL_LENGTH}-byte seal; {_FIX}", file=str(path), value=str(size))
    if _sha256(fh, length) != trailer[:32]:
        raise SnapshotError(f"the SQLite store's bytes do not match the SHA-256 seal Snapshot.save wrote: it was "
                            f"changed or damaged after it was saved; {_FIX}", file=str(path),
                            value=trailer[:32].hex())


def _sha256(fh: io.BufferedIOBase, length: int) -> bytes:
    """Return the SHA-256 of the first ``length`` bytes of ``fh``."""
    fh.seek(0)
    sha = hashlib.sha256()
    view = memoryview(bytearray(min(length, _HASH_BLOCK)))
    left = length
    while left:
        got = fh.readinto(view[:min(left, len(view))])
        if not got:
            raise OSError(f"the file ended {left} bytes early")
        sha.update(view[:got])
        left -= got
    return sha.digest()


def seal(path: Path) -> None:
    """Append the seal to a complete SQLite file (the SHA-256 of all its bytes, then ``SEAL_MARKER``) and fsync it.

    :func:`save_store` seals the temporary file before it renames it over the store.
    """
    with path.open("rb+") as fh:
        _seal(fh)


def _seal(fh: io.BufferedRandom) -> None:
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    header = fh.read(100)
    if _pages(header) != size:
        raise OSError(f"SQLite wrote {size} bytes but its header counts {_pages(header)}")
    digest = _sha256(fh, size)
    fh.seek(size)
    fh.write(digest + SEAL_MARKER)
    fh.flush()
    os.fsync(fh.fileno())


# -- saving -------------------------------------------------------------------------------------------------------
#
# Every saver of a target holds an exclusive flock on the target's lock file (.NAME.lock, beside it) from before it
# creates its temporary file (.NAME.<8 random characters>.tmp) until after the rename. So a temporary file of the
# target that exists while a saver holds the lock belongs to no live saver: a killed one left it (or an mtotrust
# before the lock, whose names were the same, with a -journal beside), and the saver removes it. The holder
# removes the lock file at the end of its save; a saver that locked a lock file which was removed or replaced in
# the meantime sees that the name no longer leads to the file it locked, and opens it again, so two savers never
# both hold the lock.

_TEMP_NAME = r"\.{name}\.[a-z0-9_]{{8}}\.tmp(?:-journal)?"
# The temporary file needs no rollback journal (a failed write is discarded whole, never rolled back) and no syncs
# of SQLite's own (_seal fsyncs the finished file once): no -journal file, and a faster save (scripts/faults/store.py).
_TEMP_PRAGMAS = ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF")
_SAVE_HINTS = {  # errno or SQLite error name -> what to do
    "ENOSPC": "the file system is full: free space on it", "SQLITE_FULL": "the file system is full: free space on it",
    "EDQUOT": "the disk quota is used up: free space or raise the quota",
    "EFBIG": "the store would be larger than the file size limit (ulimit -f) or the file system allows: raise the "
             "limit or save on another file system",
    "EACCES": "permission denied: save where this account may create files, or fix the folder's permissions",
    "EPERM": "permission denied: save where this account may create files, or fix the folder's permissions",
    "SQLITE_CANTOPEN": "the temporary file cannot be opened: check that this account may create files in the folder",
    "EROFS": "the file system is read-only: save on a writable one",
    "SQLITE_READONLY": "the file system is read-only: save on a writable one",
    "ENOENT": "the folder does not exist: create it first", "ENOTDIR": "the folder does not exist: create it first",
    "SQLITE_IOERR": "a write failed (a full disk, the file size limit or an I/O error): check the file system",
}


def save_store(path: str | os.PathLike[str], parts: StoreParts) -> None:
    """Write a store atomically: a temporary file in the same folder, flushed, then renamed over ``path``.

    A reader sees the old file or the new one, never half of one. ``parts.index`` is the snapshot's address index
    (every address → its object, or the sorted objects of an ambiguous one), which the stored index is written
    from. A symbolic link is followed: the store
    is written where it points. The new file keeps the mode (and, where the account may, the owner) of the one
    it replaces; a new store gets ``0o666`` under the umask. Writers of one store take turns under a lock, and
    each removes the temporary files a killed writer left.

    Raises:
        SnapshotError: naming ``path``, for any failure (a full disk, a file size limit, no permission, text
            SQLite cannot store); the file at ``path`` is then unchanged and no temporary file is left.
    """
    given = Path(path)
    try:
        target = Path(os.path.realpath(given))
        if target.is_symlink():  # realpath stops at a link it cannot resolve: a loop
            raise SnapshotError("is a symbolic link that leads back to itself; point it at a file or remove it",
                                file=str(given), value=str(given))
        _check_replaceable(target, given)
        with _save_lock(target):
            _remove_leftovers(target)
            _save(target, parts)
    except (sqlite3.Error, OSError) as exc:
        code = exc.sqlite_errorname if isinstance(exc, sqlite3.Error) else errno.errorcode.get(exc.errno or 0, "")
        hint = next((h for k, h in _SAVE_HINTS.items() if code == k or code.startswith(f"{k}_")),
                    "check the folder and its file system")
        raise SnapshotError(f"cannot be saved ({type(exc).__name__}: {exc}); {hint}, then save again (the file at "
                            "this path is unchanged)", file=str(given), value=str(given)) from exc
    except UnicodeEncodeError as exc:  # a JSON-form cell escapes a surrogate: the cell is one value or "\x1f"-joined
        value = exc.object[:exc.start].rpartition(_SEP)[2] + exc.object[exc.start:].partition(_SEP)[0]
        raise SnapshotError(f"cannot be saved: the directory holds {shown(value)}, text with a lone surrogate "
                            f"(U+{ord(exc.object[exc.start]):04X}) that SQLite cannot store; correct the value in the "
                            "directory or re-export it from Graph, then save again (the file at this path is "
                            "unchanged)", file=str(given), value=value) from exc
    with contextlib.suppress(OSError):  # make the rename durable where the platform allows it
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _save_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of the savers of ``target`` (see "saving" above); remove the lock file at the end."""
    if sys.platform == "win32":  # no flock: a save there removes no leftovers either (it cannot tell whose they are)
        yield
        return
    lock = target.with_name(f".{target.name}.lock")
    while True:
        # Without blocking: a FIFO planted under the lock's name would hang open() (refused just below).
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SnapshotError(f"cannot be saved: the savers' lock file {str(lock)!r} is not a regular file (a FIFO "
                                "or device); remove it, then save again", file=str(target), value=str(lock))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                named = lock.lstat()
            except FileNotFoundError:  # removed by the saver before us: lock a new one
                named = None
        except BaseException:
            os.close(fd)
            raise
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # while it is held: a saver waiting on this file then opens a new one
        os.close(fd)


def _remove_leftovers(target: Path) -> None:
    """Remove the temporary files of ``target`` that killed savers left (call with the lock held)."""
    if sys.platform == "win32":  # see _save_lock
        return
    ours = re.compile(_TEMP_NAME.format(name=re.escape(target.name))).fullmatch
    with os.scandir(target.parent) as entries:
        for entry in entries:
            if ours(entry.name) is not None:
                with contextlib.suppress(OSError):  # gone already, or not ours to remove (a sticky folder)
                    Path(entry.path).unlink()


def _check_replaceable(target: Path, given: Path) -> None:
    """Refuse to replace what is not a regular file (a folder, a FIFO, ``/dev/null``), before anything is created."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(target.stat().st_mode):
            raise SnapshotError("is not a regular file (a folder, FIFO or device), so it cannot be replaced by a "
                                "store; give the path of a store file", file=str(given), value=str(given))


def _save(target: Path, parts: StoreParts) -> None:
    """Write, seal and rename the temporary file over ``target`` (call with the lock held); remove it on failure."""
    try:
        before: os.stat_result | None = target.stat()  # again, under the lock: the mode to keep
    except FileNotFoundError:
        before = None
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)  # the umask applies
    try:
        created = os.fstat(fd)
        os.fchmod(fd, 0o600)  # readable by this account only while it is written
        conn = sqlite3.connect(tmp)
        try:
            for pragma in _TEMP_PRAGMAS:
                conn.execute(pragma)
            _write(conn, parts)
        finally:
            conn.close()
        if before is not None and (before.st_uid, before.st_gid) != (created.st_uid, created.st_gid):
            with contextlib.suppress(OSError):  # root may; another account keeps its own ownership
                os.fchown(fd, before.st_uid, before.st_gid)
        os.fchmod(fd, stat.S_IMODE((created if before is None else before).st_mode))
        with os.fdopen(fd, "rb+", closefd=False) as fh:
            _seal(fh)  # and fsync, the mode too
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)
