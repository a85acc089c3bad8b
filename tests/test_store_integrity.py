"""Store integrity: a store changed or damaged after ``Snapshot.save`` wrote it never loads as another directory.

Three layers are pinned here. The seal (a SHA-256 of every page, in a trailer after the last one) refuses any
changed byte on a default load. Under it, every cell is type-checked (nothing is coerced) and the stored id must
be the id of the content; those checks are tested on *resealed* stores, which is what a writer that rebuilt the
seal after an edit would leave. And a seeded sweep of single-bit flips shows the two together: every flip is a
``SnapshotError`` or loads the very directory that was saved.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import hostile as h
import pytest
from strategies import ACTIVE, LITWARE, PENDING, build, native, synced

import mtotrust._store as store_module
from mtotrust import Snapshot, SnapshotError, TrustEngine

FIX = "load the snapshot folder again and save a new store (or re-sync)"

USERS: list[dict[str, Any]] = [
    native("n1", "ada@contoso.com"),
    native("n2", "bob@contoso.com", otherMails=["bob.alt@contoso.com", "odd\x1fname@contoso.com"]),
    native("n3", "cy@contoso.com", accountEnabled=False),
    native("n4", "dee@contoso.com", accountEnabled=None),
    native("n5", "eve@contoso.com", proxyAddresses=["SMTP:eve@contoso.com", "smtp:eve2@contoso.com"]),
    synced("s1", "cameron@fabrikam.com"),
    synced("s2", "pat@tailspintoys.com"),
    synced("s3", "dup@fabrikam.com"),
    synced("s4", "dup@fabrikam.com"),
    synced("g1", "gus@adatum.com", userType="Guest"),
    synced("l1", "lee@litware.com", accountEnabled=False),
]
MISSES = ["nobody@contoso.com", "x@evil.example", "someone@fabrikam.com", "cameron@fabrikam.co"]
METADATA = {"delta_link": "https://graph.example/delta?token=1"}


def make_snapshot() -> Snapshot:
    """Return the small directory every test saves: each kind of user, an ambiguous address, partner flags."""
    return build(USERS, partner_rows={ACTIVE: True, LITWARE: False, PENDING: None})


ORIGINAL = make_snapshot()
PROBES = sorted(ORIGINAL.addresses()) + MISSES


def state(snap: Snapshot) -> tuple[Any, ...]:
    """Return everything a loaded snapshot holds that resolution or a caller reads."""
    return (snap.id, snap.taken_at, snap.tenant_id, snap.display_name, snap.local_domains, dict(snap.tenants),
            dict(snap.domain_tenants), dict(snap.partners), list(snap.users.items()),
            {address: snap.lookup(address) for address in snap.addresses()}, dict(snap.metadata))


def answers(snap: Snapshot) -> list[tuple[Any, ...]]:
    """Return how every probe address resolves (trust, reasons, matched user)."""
    engine = TrustEngine(snap, h.POLICY, cache_size=0)
    return [(r.trust, r.reasons, r.user.id if r.user else None) for r in map(engine.resolve, PROBES)]


EXPECTED_STATE = state(ORIGINAL)
EXPECTED_ANSWERS = answers(ORIGINAL)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Return the bytes of the small directory's store, saved once."""
    path = tmp_path_factory.mktemp("saved") / "s.sqlite"
    ORIGINAL.save(path, metadata=METADATA)
    return path.read_bytes()


@pytest.fixture
def store(tmp_path: Path, saved: bytes) -> Path:
    """Return a store of the small directory as Snapshot.save wrote it, for this test alone."""
    path = tmp_path / "s.sqlite"
    path.write_bytes(saved)
    return path


def edit(path: Path, sql: str, *params: object) -> None:
    """Run one statement on the store with plain sqlite3, as another program would."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


def page_bytes(data: bytes) -> int:
    """Return the length of the pages the SQLite header of ``data`` counts."""
    page_size = int.from_bytes(data[16:18], "big")
    return int.from_bytes(data[28:32], "big") * (65536 if page_size == 1 else page_size)


def reseal(path: Path) -> None:
    """Drop the store's seal and seal it again, as a writer that rebuilt the seal after an edit would."""
    data = path.read_bytes()
    path.write_bytes(data[:page_bytes(data)])
    store_module.seal(path)


def sealed(pages: bytes) -> bytes:
    """Return ``pages`` with a seal of their own bytes."""
    return pages + hashlib.sha256(pages).digest() + store_module.SEAL_MARKER


def untyped(path: Path, table: str) -> None:
    """Rebuild ``table`` without declared column types (keeping rowids), so an UPDATE stores a value as given."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        names = ", ".join(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        conn.execute(f"CREATE TABLE untyped ({names})")
        conn.execute(f"INSERT INTO untyped (rowid, {names}) SELECT rowid, {names} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE untyped RENAME TO {table}")


def refused(path: Path, **options: Any) -> SnapshotError:
    """Load ``path``, expecting a SnapshotError that names the store and says how to fix it; return it."""
    with pytest.raises(SnapshotError) as caught:
        Snapshot.load(path, **options)
    assert str(path) in str(caught.value)
    assert FIX in str(caught.value)
    return caught.value


def test_the_store_round_trips(store: Path) -> None:
    """The small directory saved and loaded is the same directory, resolving every probe alike."""
    loaded = Snapshot.load(store)
    assert (EXPECTED_STATE[:-1], dict(METADATA)) == (state(loaded)[:-1], dict(loaded.metadata))
    assert EXPECTED_ANSWERS == answers(loaded)


class TestCellTypes:
    """Every cell the reader uses holds what Snapshot.save writes there; anything else is refused, never coerced."""

    @pytest.mark.parametrize(("table", "assignment", "where", "column"), [
        ("meta", "value = 5", "key = 'taken_at'", "meta.value"),  # an int where text
        ("meta", "value = X'34'", "key = 'user_count'", "meta.value"),  # bytes
        ("meta", "key = 1", "key = 'written_by'", "meta.key"),
        ("metadata", "value = 1", "rowid = 1", "metadata.value"),
        ("local_domains", "name = X'00'", "rowid = 1", "local_domains.name"),
        ("domains", "name = 7", "rowid = 1", "domains.name"),
        ("domains", "tenant_id = NULL", "rowid = 1", "domains.tenant_id"),
        ("tenants", "tenant_id = NULL", "rowid = 1", "tenants.tenant_id"),
        ("tenants", "display_name = 1", "rowid = 1", "tenants.display_name"),
        ("tenants", "state = 1", "rowid = 2", "tenants.state"),
        ("partners", "in_mto = 'no'", "in_mto = 0", "partners.in_mto"),  # 'no' is no flag (and bool('no') is True)
        ("partners", "in_mto = 2", "rowid = 1", "partners.in_mto"),
        ("kinds", "kind = 'zero'", "kind = 0", "kinds.kind"),  # text where an int
        ("kinds", "user_type = 1", "rowid = 1", "kinds.user_type"),
        ("kinds", "creation_type = X'496e'", "rowid = 1", "kinds.creation_type"),
        ("kinds", "account_enabled = 'no'", "account_enabled = 0", "kinds.account_enabled"),
        ("kinds", "account_enabled = 0.5", "rowid = 1", "kinds.account_enabled"),
        ("kinds", "account_enabled = 2", "rowid = 1", "kinds.account_enabled"),
        ("kinds", "federated_external = NULL", "rowid = 1", "kinds.federated_external"),
        ("kinds", "upn_is_mail = 'yes'", "rowid = 1", "kinds.upn_is_mail"),
        ("kinds", "mail_is_key = 2", "rowid = 1", "kinds.mail_is_key"),
        ("users", "id = 1", "id = 'n1'", "users.id"),
        ("users", "id = NULL", "id = 'n1'", "users.id"),
        ("users", "upn = X'6d616c6c6f727940636f6e746f736f2e636f6d'", "id = 's1'", "users.upn"),  # bytes UPN
        ("users", "mail = 5", "id = 'n1'", "users.mail"),
        ("users", "other_mails = X'00'", "id = 'n2'", "users.other_mails"),
        ("users", "proxy_addresses = 1.5", "id = 'n5'", "users.proxy_addresses"),
        ("users", "kind = 'one'", "id = 'n1'", "users.kind"),
        ("users", "kind = 1.0", "id = 'n1'", "users.kind"),
        ("address_index", "addresses = 5", "rowid = 0", "address_index.addresses"),
        ("address_index", "positions = 'text'", "rowid = 0", "address_index.positions"),
        ("ambiguous", "address = X'00'", "rowid = 1", "ambiguous.address"),
        ("ambiguous", "user_ids = 3", "rowid = 1", "ambiguous.user_ids"),
    ])
    def test_a_cell_of_another_type_names_its_column(self, store: Path, table: str, assignment: str, where: str,
                                                      column: str) -> None:
        """A cell of another storage class than Snapshot.save writes is a SnapshotError naming table.column."""
        untyped(store, table)
        edit(store, f"UPDATE {table} SET {assignment} WHERE {where}")
        reseal(store)
        assert column == refused(store).path

    @pytest.mark.parametrize("column", ["other_mails", "proxy_addresses"])
    @pytest.mark.parametrize("value", [
        "\x1e" + "[" * 100_000 + "]" * 100_000,  # nested past any recursion limit
        '\x1e[["a@contoso.com"]]', '\x1e["a@contoso.com", ["b"]]', "\x1e[1]", '\x1e{"a": "b"}', '\x1e"a"',
        '\x1e["a@contoso.com"', "\x1e", '\x1e["a"] ',
    ])
    def test_a_list_cell_must_be_a_flat_json_array_of_strings(self, store: Path, column: str, value: str) -> None:
        """A list cell in JSON form that is not a flat array of strings is a SnapshotError, not a RecursionError."""
        edit(store, f"UPDATE users SET {column} = ? WHERE id = 'n2'", value)
        reseal(store)
        assert f"users.{column}" == refused(store).path

    def test_loaded_fields_have_exactly_their_types(self, store: Path) -> None:
        """Flags load as bool (or None), never as the int or text of the cell."""
        loaded = Snapshot.load(store)
        assert {None, True, False} == {u.account_enabled for u in loaded.users.values()}
        assert all(u.account_enabled.__class__ in (bool, type(None)) and u.federated_external.__class__ is bool
                   for u in loaded.users.values())
        assert all(v.__class__ in (bool, type(None)) for v in loaded.partners.values())


class TestConsistency:
    """Cells of the right type that contradict each other or the stored id are refused too (resealed stores)."""

    @pytest.mark.parametrize(("sql", "column"), [
        ("UPDATE users SET kind = 99 WHERE id = 'n1'", "users.kind"),  # no such kind
        ("UPDATE users SET upn = 'n1@contoso.com' WHERE id = 'n1'", "users.upn"),  # its kind says upn is mail
        ("UPDATE users SET mail = NULL WHERE id = 'n1'", "users.upn"),
        ("UPDATE users SET id = 'n2' WHERE id = 'n1'", "users.id"),  # after the PRIMARY KEY is dropped (untyped)
        ("UPDATE ambiguous SET user_ids = 's3\nnobody'", "ambiguous.user_ids"),
        ("UPDATE ambiguous SET user_ids = 's3\ns3'", "ambiguous.user_ids"),
        ("UPDATE address_index SET positions = CAST(X'ff000000' || substr(positions, 5) AS BLOB)",
         "address_index.positions"),  # a position past the last user
        ("UPDATE address_index SET positions = substr(positions, 5)", "address_index.positions"),
        ("UPDATE address_index SET positions = CAST(positions || X'00' AS BLOB)", "address_index.positions"),
        ("UPDATE users SET mail = CAST(X'ff' AS TEXT) WHERE id = 'n1'", "users"),  # text that is not UTF-8
        ("UPDATE address_index SET addresses = 'ada@contoso.com' || substr(addresses, instr(addresses, char(10)))",
         "address_index.addresses"),  # an address another user's mail key already holds
        ("UPDATE meta SET value = 'sha256:' || substr(value, 9) || '0' WHERE key = 'snapshot_id'",
         "meta.snapshot_id"),  # the store claims another id
        ("UPDATE meta SET value = substr(value, 2) || '0' WHERE key = 'users_digest'", "meta.snapshot_id"),
        ("UPDATE meta SET value = 'xyz' WHERE key = 'users_digest'", "meta.users_digest"),
        ("UPDATE meta SET value = '2026-01-01T00:00:00' WHERE key = 'taken_at'", "meta.taken_at"),  # no zone
        ("UPDATE meta SET value = 'soon' WHERE key = 'taken_at'", "meta.taken_at"),
        ("UPDATE meta SET value = '1e3' WHERE key = 'user_count'", "meta.user_count"),
        ("DELETE FROM meta WHERE key = 'tenant_id'", "meta.tenant_id"),
        ("UPDATE tenants SET state = 'active' WHERE state = 'pending'", "meta.snapshot_id"),  # not the id's content
        ("UPDATE partners SET in_mto = 1 WHERE in_mto = 0", "meta.snapshot_id"),
        ("UPDATE domains SET tenant_id = (SELECT tenant_id FROM tenants WHERE state = 'active' LIMIT 1) "
         "WHERE name = 'tailspintoys.com'", "meta.snapshot_id"),
    ])
    def test_a_contradiction_names_its_column(self, store: Path, sql: str, column: str) -> None:
        """Each contradiction, resealed so that only the reader's own checks are left, names its column."""
        if "SET id" in sql:
            untyped(store, "users")
        edit(store, sql)
        reseal(store)
        assert column == refused(store).path

    def test_the_id_is_the_id_of_the_content(self, store: Path) -> None:
        """A store loads with the id of what it holds (the directory saved), which the stored id must equal."""
        assert ORIGINAL.id == Snapshot.load(store).id


class TestEditedRows:
    """A row edited by another program after the save is refused on a default load, whatever the table."""

    @pytest.mark.parametrize("sql", [
        "UPDATE users SET mail = 'cameron@contoso.com' WHERE id = 's1'",  # another mail address
        "UPDATE kinds SET account_enabled = 1 - account_enabled WHERE account_enabled IS NOT NULL",
        "UPDATE ambiguous SET user_ids = 's3\nn1'",
        "DELETE FROM ambiguous",
        "UPDATE tenants SET state = 'active' WHERE state = 'pending'",
        "UPDATE meta SET value = 'sha256:00000000000000000000000000000000' WHERE key = 'snapshot_id'",
        "UPDATE meta SET value = '2020-01-01T00:00:00+00:00' WHERE key = 'taken_at'",
        "UPDATE partners SET in_mto = 1 WHERE in_mto = 0",
        "UPDATE domains SET tenant_id = 'x' WHERE name = 'adatum.com'",
        "UPDATE local_domains SET name = 'fabrikam.com' WHERE rowid = 1",
        "UPDATE metadata SET value = 'https://graph.example/delta?token=2'",
        "DELETE FROM users WHERE id = 'g1'",
        "INSERT INTO users VALUES ('zz', NULL, 'zz@contoso.com', NULL, NULL, 0)",
        "UPDATE users SET other_mails = 'ceo@contoso.com' WHERE id = 'g1'",
    ])
    @pytest.mark.parametrize("verify", [False, True])
    def test_an_edited_row_is_refused(self, store: Path, sql: str, verify: bool) -> None:
        """The edit changes bytes the seal covers: the load is a SnapshotError that says the store was changed."""
        edit(store, sql)
        assert "seal" in str(refused(store, verify=verify))

    def test_a_position_pointed_at_another_user_is_refused(self, store: Path) -> None:
        """A position in address_index moved to another user is refused; resealed, it would move a lookup."""
        with contextlib.closing(sqlite3.connect(store)) as conn:
            addresses, packed = conn.execute("SELECT addresses, positions FROM address_index").fetchone()
        positions = array.array("I" if array.array("I").itemsize == 4 else "L")
        positions.frombytes(packed)
        if sys.byteorder == "big":
            positions.byteswap()
        address = addresses.split("\n")[0]
        moved = (positions[0] + 1) % len(ORIGINAL.users)
        positions[0] = moved
        if sys.byteorder == "big":
            positions.byteswap()
        edit(store, "UPDATE address_index SET positions = ?", positions.tobytes())
        assert "seal" in str(refused(store))
        reseal(store)  # what only the seal stood in the way of
        assert ORIGINAL.lookup(address) != Snapshot.load(store).lookup(address)
        assert list(ORIGINAL.users)[moved] == Snapshot.load(store).lookup(address)[0].id


class TestSeal:
    """The trailer Snapshot.save writes after the last page, and what the reader does without it or around it."""

    def test_save_seals_every_page(self, store: Path) -> None:
        """The file is its pages, the SHA-256 of those pages, and the marker."""
        data = store.read_bytes()
        pages = page_bytes(data)
        assert sealed(data[:pages]) == data

    def test_a_store_without_its_seal_is_refused(self, store: Path) -> None:
        """Without the trailer (cut, or rewritten by another program), the store is refused."""
        data = store.read_bytes()
        store.write_bytes(data[:page_bytes(data)])
        assert "no seal" in str(refused(store))

    @pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 4096])
    def test_bytes_after_or_before_the_seal_are_refused(self, store: Path, extra: bytes) -> None:
        """Bytes appended after the seal or inserted before it are refused."""
        data = store.read_bytes()
        for variant in (data + extra, data[:-48] + extra + data[-48:]):
            store.write_bytes(variant)
            refused(store)

    def test_a_store_of_schema_version_3_is_refused_with_the_fix(self, store: Path) -> None:
        """An unsealed store of schema version 3 says which versions are read and how to get a new store."""
        edit(store, "UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        data = store.read_bytes()
        store.write_bytes(data[:page_bytes(data)])
        with pytest.raises(SnapshotError, match=r"schema version '3' is not supported .*save a new store"):
            Snapshot.load(store)

    def test_a_flip_in_any_page_is_refused_by_verify_too(self, store: Path) -> None:
        """verify=True checks the seal as a default load does."""
        data = bytearray(store.read_bytes())
        data[len(data) // 2] ^= 0x10
        store.write_bytes(bytes(data))
        assert "seal" in str(refused(store, verify=True))

    def test_a_store_replaced_while_it_loads_is_read_again(self, store: Path, tmp_path: Path) -> None:
        """A store renamed over the path during a load is read again: the snapshot is the new store, whole."""
        other = build([native("o1", "only@contoso.com")])
        replacement = tmp_path / "new.sqlite"
        other.save(replacement)
        calls: list[tuple[int, int, str]] = []

        def progress(done: int, total: int, what: str) -> None:
            calls.append((done, total, what))
            if replacement.exists():
                replacement.replace(store)

        loaded = Snapshot.load(store, progress=progress)
        assert (other.id, ["o1"]) == (loaded.id, list(loaded.users))
        assert calls[0] == (0, len(ORIGINAL.users), "users")  # the first read, of the original, was dropped

    def test_an_exception_of_the_progress_callback_propagates_unchanged(self, store: Path) -> None:
        """A ValueError raised by the progress callback is that ValueError, not a SnapshotError about the store."""
        def progress(done: int, total: int, what: str) -> None:
            raise KeyError(what)

        with pytest.raises(KeyError, match="users") as caught:
            Snapshot.load(store, progress=progress)
        assert not isinstance(caught.value, SnapshotError)


class TestBitFlips:
    """Seeded sweeps of single-bit flips: damage is refused, or changes nothing the loaded snapshot holds."""

    def test_a_flipped_bit_never_loads_another_directory(self, store: Path) -> None:
        """2,000 single-bit flips anywhere in the file: each is a SnapshotError or loads the directory saved."""
        data = store.read_bytes()
        rng = random.Random(20261201)
        outcomes = {"refused": 0, "same": 0}
        for _ in range(2_000):
            damaged = bytearray(data)
            damaged[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            store.write_bytes(bytes(damaged))
            try:
                loaded = h.bounded(Snapshot.load, store)
            except SnapshotError:
                outcomes["refused"] += 1
                continue
            assert state(loaded)[:-1] == EXPECTED_STATE[:-1]
            assert dict(loaded.metadata) == METADATA
            assert answers(loaded) == EXPECTED_ANSWERS
            outcomes["same"] += 1
        assert outcomes["refused"] >= 1_000, outcomes  # the flips reached what is read

    def test_a_resealed_flip_is_refused_or_loads_well_typed(self, store: Path) -> None:
        """1,000 flips resealed (only the reader's own checks left): a SnapshotError or a whole, well-typed snapshot."""
        data = store.read_bytes()
        pages = data[:page_bytes(data)]
        rng = random.Random(7)
        loaded_count = 0
        for _ in range(1_000):
            damaged = bytearray(pages)
            damaged[rng.randrange(len(pages))] ^= 1 << rng.randrange(8)
            store.write_bytes(sealed(bytes(damaged)))
            try:
                loaded = h.bounded(Snapshot.load, store)
            except SnapshotError:
                continue
            loaded_count += 1
            assert len(loaded.users) == len(ORIGINAL.users)
            for user in loaded.users.values():
                assert user.id.__class__ is str
                assert all(v is None or v.__class__ is str for v in (user.user_principal_name, user.mail,
                                                                     user.user_type, user.creation_type))
                assert all(v.__class__ is str for v in (*user.other_mails, *user.proxy_addresses))
                assert user.account_enabled is None or user.account_enabled.__class__ is bool
                assert user.federated_external.__class__ is bool
            assert all(v is None or v.__class__ is bool for v in loaded.partners.values())
            assert all(t.state is None or t.state.__class__ is str for t in loaded.tenants.values())
            answers(loaded)  # resolves every probe without raising
        assert loaded_count > 0  # the sweep reached the reader's checks, not only SQLite's
