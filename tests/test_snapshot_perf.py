"""Behaviour of the fast snapshot paths (issue 3): they must answer exactly as the plain, obvious code does.

No timing here: speed is measured by ``python -m benchmarks.run``. These tests pin what the fast paths must
not change: the address index (against a reference written plainly from the rules with ``normalize_address``),
the overlay deltas (against a snapshot built from scratch), the SQLite store (and refusing another schema
version), ``changed_addresses`` and load progress.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import sqlite3
from typing import Any

import hostile as h
import pytest

import mtotrust._directory as directory_module
import mtotrust._snapshot as snapshot_module
import mtotrust._store as store_module
from mtotrust import Snapshot, SnapshotError
from mtotrust._address import normalize_address, proxy_smtp_address, split_ext_upn
from mtotrust._errors import IdentityError
from mtotrust._model import DirectoryUser

LOCAL = frozenset({"contoso.com", "contoso.onmicrosoft.com"})


def reference_addresses(user: DirectoryUser, local_domains: frozenset[str]) -> set[str]:
    """The index keys of one object, written plainly from the rules (the pre-0.2 implementation)."""
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
        if value is user.user_principal_name and domain in local_domains and "#ext#" in local:
            # an #EXT# name at a local domain is looked up decoded only, so it is indexed decoded only
            with contextlib.suppress(IdentityError):
                decoded = split_ext_upn(local, value)
                if decoded:
                    found.add(f"{decoded[0]}@{decoded[1]}")
            if value != user.mail:
                continue
        found.add(f"{local}@{domain}")
    return found


def reference_index(snap: Snapshot) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for user in snap.users.values():
        for address in reference_addresses(user, snap.local_domains):
            index.setdefault(address, set()).add(user.id)
    return index


def index_of(snap: Snapshot) -> dict[str, set[str]]:
    return {a: {u.id for u in snap.lookup(a)} for a in snap.addresses()}


def assert_same_directory(a: Snapshot, b: Snapshot) -> None:
    assert list(a.users.items()) == list(b.users.items())
    assert len(a.users) == len(b.users)
    assert index_of(a) == index_of(b) == reference_index(a)
    for address in index_of(a):
        assert a.lookup(address) == b.lookup(address)


# -- values every index key must survive ---------------------------------------------------------------------

ODD_VALUES = [
    "Ada@Contoso.COM", " ada@contoso.com\t", "ada@contoso.com.", "ada@@contoso.com", "ada", "@contoso.com",
    "ada@", "a..b@contoso.com", ".a@contoso.com", '"ada"@contoso.com', "ada@xn--bcher-kva.example",
    "ada@XN--BCHER-KVA.example", "ada@bücher.example", "ADA@BÜCHER.EXAMPLE", "ÄDA@contoso.com",
    "ada@contoso_com", "ada@-contoso.com", "ada@contoso..com", "ada@xn--zz.example", "ada@con\u200btoso.com",
    "ada\x00@contoso.com", "ada@contoso.com\n", "ada＠contoso.com", "a" * 300 + "@contoso.com",
    "a" * 64 + "@" + "b" * 250 + ".com", "ada@1.2.3.4", "ada@localhost", "ada@CONTOSO.COM ", "",
    "x_fabrikam.com#EXT#@contoso.onmicrosoft.com", "X_Fabrikam.COM#ext#@Contoso.OnMicrosoft.com",
    "x_fabrikam.com#EXT#@fabrikam.com", "x#EXT#@contoso.com", "_fabrikam.com#EXT#@contoso.com",
    "x_#EXT#@contoso.com", "x_fab#EXT#rikam.com#EXT#@contoso.com", "x_bücher.example#EXT#@contoso.com",
    "x_xn--zz#EXT#@contoso.com", "\ud800@contoso.com", "ada@contoso.c\udcffom",
]


def odd_users(rng: random.Random, n: int) -> list[DirectoryUser]:
    values = ODD_VALUES + [s for s in h.HOSTILE_STRINGS if isinstance(s, str) and len(s) < 400]
    users = []
    for i in range(n):
        pick = lambda: rng.choice(values)  # noqa: E731
        mail = pick() if rng.random() < 0.8 else None
        upn = mail if mail is not None and rng.random() < 0.3 else (pick() if rng.random() < 0.9 else None)
        other = tuple(mail if (mail and rng.random() < 0.3) else pick() for _ in range(rng.randrange(3)))
        proxies = tuple(rng.choice(("SMTP:", "smtp:", "X500:", "sip:", "SMTP")) + pick()
                        for _ in range(rng.randrange(4)))
        users.append(DirectoryUser(f"u{i}", upn, mail, other, proxies, "Member", None, True, False))
    return users


def test_index_keys_match_the_reference_on_odd_values():
    """Every index key set equals the plain normalize_address reading, for hostile and odd values."""
    rng = random.Random(11)
    for user in odd_users(rng, 3000):
        assert set(directory_module.Normalizer(LOCAL).keys(user)) == reference_addresses(user, LOCAL), user
        assert directory_module.user_addresses(user, LOCAL) == reference_addresses(user, LOCAL)


def test_normalizer_fast_path_agrees_after_learning_domains():
    """The fast path (taken once a domain is known) gives what normalize_address gives, value by value."""
    norm = directory_module.Normalizer(LOCAL)
    values = ODD_VALUES * 2 + [v.upper() for v in ODD_VALUES] + [v.swapcase() for v in ODD_VALUES]
    for value in values:
        try:
            local, domain = normalize_address(value)
            expected: str | None = f"{local}@{domain}"
        except IdentityError:
            expected = None
        assert norm.address(value) == expected, value


def test_index_key_reuses_the_directory_string():
    """An address already in normal form is indexed under the directory's own string object."""
    snap = h.SAMPLE
    for user in snap.users.values():
        if user.mail and user.mail == user.mail.lower() and user.mail.isascii():
            key = next(a for a in snap.addresses() if a == user.mail)
            assert key is user.mail


def test_sample_index_matches_reference():
    assert index_of(h.SAMPLE) == reference_index(h.SAMPLE)


# -- ambiguous addresses ------------------------------------------------------------------------------------------

def _docs(users: list[dict[str, Any]], delta: list[list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    docs = h.sample_documents()
    docs["users"] = [{"value": users}]
    docs["delta"] = [{"value": page} for page in delta or []]
    return docs


def _member(uid: str, mail: str, **extra: Any) -> dict[str, Any]:
    return {"id": uid, "mail": mail, "userPrincipalName": f"{uid}@contoso.com", "userType": "Member",
            "accountEnabled": True, **extra}


def test_ambiguous_address_returns_every_object_sorted_by_id():
    snap = Snapshot.from_documents(**_docs([_member("u2", "dup@contoso.com"), _member("u1", "DUP@contoso.com"),
                                            _member("u3", "solo@contoso.com")]))
    assert ["u1", "u2"] == [u.id for u in snap.lookup("dup@contoso.com")]
    assert ["u3"] == [u.id for u in snap.lookup("solo@contoso.com")]
    assert () == snap.lookup("nobody@contoso.com")
    after = snap.with_delta([{"value": [{"id": "u1", "mail": "other@contoso.com"}]}])
    assert ["u2"] == [u.id for u in after.lookup("dup@contoso.com")]
    assert ["u1", "u2"] == [u.id for u in snap.lookup("dup@contoso.com")]  # the base is unchanged


# -- deltas ---------------------------------------------------------------------------------------------------

def _random_delta(rng: random.Random, ids: list[str], page: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for j in range(rng.randrange(1, 40)):
        roll = rng.random()
        uid = rng.choice(ids) if rng.random() < 0.8 else f"new{page}-{j}"
        if roll < 0.2:
            entries.append({"id": uid, "@removed": {"reason": "changed"}})
        elif roll < 0.5:
            entries.append({"id": uid, "mail": rng.choice(["shared@contoso.com", f"{uid}@fabrikam.com",
                                                            f"M{page}{j}@Contoso.com", None, "bad@@x"])})
        elif roll < 0.7:
            entries.append({"id": uid, "accountEnabled": rng.random() < 0.5, "userType": "Guest"})
        elif roll < 0.85:
            entries.append({"id": uid, "proxyAddresses": [f"SMTP:{uid}.{page}@contoso.com", "smtp:shared@contoso.com"],
                            "otherMails": [f"{uid}@fabrikam.com"]})
        else:
            entries.append(_member(uid, f"{uid}.{page}@contoso.com", identities=[]))
        if rng.random() < 0.1:
            entries.append(entries[-1])  # the same id twice in a page
        if uid not in ids:
            ids.append(uid)
    return entries


@pytest.mark.parametrize("seed", range(6))
def test_chained_deltas_equal_a_fresh_build(seed, monkeypatch):
    """Any chain of with_delta calls answers like from_documents of the same users and delta pages (and has its
    id), and every intermediate snapshot keeps answering as it did (readers of an old snapshot never see a
    change)."""
    if seed % 2:
        monkeypatch.setattr(snapshot_module, "_COMPACT_FRACTION", 10.0)  # never compact: a deep overlay chain
    rng = random.Random(seed)
    base_users = [_member(f"u{i}", rng.choice([f"u{i}@contoso.com", "shared@contoso.com"]))
                  for i in range(60)]
    ids = [u["id"] for u in base_users]
    snap = Snapshot.from_documents(**_docs(base_users))
    assert snap.id.startswith("sha256:")  # computed now, so every delta below updates it incrementally
    pages: list[list[dict[str, Any]]] = []
    history: list[tuple[Snapshot, list[Any], dict[str, set[str]]]] = [(snap, list(snap.users.items()),
                                                                       index_of(snap))]
    for p in range(12):
        page = _random_delta(rng, ids, p)
        pages.append(page)
        previous = snap
        snap = snap.with_delta([{"value": page}])
        assert snap.generation > previous.generation
        fresh = Snapshot.from_documents(**_docs(base_users, pages))
        assert_same_directory(snap, fresh)
        assert fresh.id == snap.id  # the incremental id is the id of the whole directory
        changed = snap.changed_addresses(previous)
        assert changed is not None
        before, after = index_of(previous), index_of(snap)
        for address in set(before) | set(after):
            if before.get(address) != after.get(address):
                assert address in changed
        history.append((snap, list(snap.users.items()), after))
    for old, users, index in history:
        assert (users, index) == (list(old.users.items()), index_of(old))
    first = history[0][0]

    def changed_since(new: Snapshot, old: Snapshot) -> frozenset[str]:
        addresses = new.changed_addresses(old)
        assert addresses is not None
        return addresses

    assert snap.changed_addresses(first) == frozenset().union(
        *(changed_since(s, p) for (p, _, _), (s, _, _) in itertools.pairwise(history)))
    assert snap.changed_addresses(snap) == frozenset()


def test_changed_addresses_unknown_lineage():
    a = Snapshot.sample()
    b = Snapshot.sample()
    c = a.with_delta([{"value": [{"id": "nobody-new", "mail": "n@contoso.com"}]}])
    assert c.changed_addresses(b) is None
    assert a.changed_addresses(c) is None
    assert c.changed_addresses(a) == frozenset({"n@contoso.com"})


def test_delta_snapshot_users_mapping_behaves_like_a_dict():
    base = Snapshot.sample()
    first = next(iter(base.users))
    after = base.with_delta([{"value": [{"id": first, "@removed": {}}, {"id": "zz-new", "mail": "z@contoso.com"},
                                        {"id": first, "mail": "back@contoso.com"}]}])
    expected = dict(base.users)
    expected.pop(first)
    expected["zz-new"] = after.users["zz-new"]
    expected[first] = after.users[first]
    assert list(expected) == list(after.users)  # a removed-then-restored id moves to the end, as in a dict
    assert expected == dict(after.users)
    assert len(expected) == len(after.users)
    assert "missing" not in after.users
    assert after.users.get("missing") is None
    with pytest.raises(KeyError):
        after.users["missing"]
    assert after.users == expected


def test_delta_snapshot_save_round_trip(tmp_path):
    base = Snapshot.sample()
    after = base.with_delta([{"value": [{"id": "zz-new", "mail": "z@contoso.com", "userType": "Member"}]}])
    after.save(tmp_path / "s.sqlite")
    loaded = Snapshot.load(tmp_path / "s.sqlite")
    assert_same_directory(after, loaded)


# -- SQLite store ---------------------------------------------------------------------------------------------

def test_store_round_trip_keeps_odd_values(tmp_path):
    """Lists with separators, empty strings, NULs and odd addresses survive a store round trip."""
    users: list[dict[str, Any]] = [
        {"id": "a", "mail": "a@contoso.com", "otherMails": ["x\x1fy@contoso.com", ""], "proxyAddresses": []},
        {"id": "b", "mail": None, "otherMails": [""], "proxyAddresses": ["", "SMTP:b@Contoso.com"]},
        {"id": "c", "mail": "C@Contoso.com", "otherMails": ["C@Contoso.com", "c2@contoso.com"],
         "userPrincipalName": "C@Contoso.com", "proxyAddresses": ["smtp:c@contoso.com", "X500:/o=x\x00"]},
        {"id": "d", "userPrincipalName": "d_fabrikam.com#EXT#@contoso.onmicrosoft.com", "otherMails": ["[1]"]},
        {"id": "e\n=m", "mail": "=m", "otherMails": ["=o0", "\n"]},
    ]
    snap = Snapshot.from_documents(**_docs(users))
    snap.save(tmp_path / "s.sqlite")
    loaded = Snapshot.load(tmp_path / "s.sqlite")
    assert_same_directory(snap, loaded)
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        assert str(store_module.SCHEMA_VERSION) == version


def test_store_of_another_schema_version_is_refused(tmp_path):
    """A store of an older schema version (1) is refused with the fix: save a new store."""
    snap = Snapshot.sample()
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE local_domains (name TEXT PRIMARY KEY);
            CREATE TABLE domains (name TEXT PRIMARY KEY, tenant_id TEXT NOT NULL);
            CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, display_name TEXT, role TEXT, state TEXT);
            CREATE TABLE partners (tenant_id TEXT PRIMARY KEY, in_mto INTEGER);
            CREATE TABLE users (id TEXT PRIMARY KEY, upn TEXT, mail TEXT, other_mails TEXT NOT NULL,
                                proxy_addresses TEXT NOT NULL, user_type TEXT, creation_type TEXT,
                                account_enabled INTEGER, federated_external INTEGER NOT NULL);""")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", "1"), ("taken_at", snap.taken_at.isoformat()), ("tenant_id", snap.tenant_id),
            ("display_name", snap.display_name or ""), ("written_by", "mtotrust 0.1.0"),
            ("user_count", str(len(snap.users)))])
        conn.executemany("INSERT INTO local_domains VALUES (?)", [(d,) for d in snap.local_domains])
        conn.executemany("INSERT INTO domains VALUES (?, ?)", list(snap.domain_tenants.items()))
        conn.executemany("INSERT INTO tenants VALUES (?, ?, ?, ?)",
                         [(t.tenant_id, t.display_name, t.role, t.state) for t in snap.tenants.values()])
        conn.executemany("INSERT INTO partners VALUES (?, ?)", list(snap.partners.items()))
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (u.id, u.user_principal_name, u.mail, json.dumps(u.other_mails), json.dumps(u.proxy_addresses),
             u.user_type, u.creation_type, u.account_enabled, u.federated_external) for u in snap.users.values()])
    conn.close()
    with pytest.raises(SnapshotError, match="store schema version '1' is not supported .*save a new store"):
        Snapshot.load(path)


@pytest.mark.parametrize("sql", [
    "UPDATE kinds SET mail_is_key = 1",  # a user without mail claims its mail as an index key
    "UPDATE users SET kind = 99",
    "UPDATE address_index SET positions = X'ffffff00'",  # a position past the last user
    "UPDATE address_index SET positions = X'0000'",  # fewer positions than addresses
    "UPDATE address_index SET addresses = 'a@contoso.com'",  # the address of another user's mail, twice
    "INSERT INTO ambiguous VALUES ('x@contoso.com', 'a')",  # one user is not ambiguous
    "INSERT INTO ambiguous VALUES ('x@contoso.com', 'a\nnobody')",
    "UPDATE address_index SET positions = 'text'",
])
def test_tampered_index_is_a_snapshot_error(tmp_path, sql):
    """A tampered index is refused by the seal, and by the reader's own index checks once resealed."""
    path = tmp_path / "s.sqlite"
    Snapshot.from_documents(**_docs([
        {"id": "a", "mail": "a@contoso.com", "userPrincipalName": "A@contoso.com"},
        {"id": "b", "userPrincipalName": "b_fabrikam.com#EXT#@contoso.onmicrosoft.com"},
    ])).save(path)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql)
    with pytest.raises(SnapshotError, match=r"s\.sqlite.*seal"):
        Snapshot.load(path)
    data = path.read_bytes()  # seal it again: what is left are the index checks
    path.write_bytes(data[:int.from_bytes(data[16:18], "big") * int.from_bytes(data[28:32], "big")])
    store_module.seal(path)
    with pytest.raises(SnapshotError, match=r"s\.sqlite"):
        Snapshot.load(path)


# -- page parsing ---------------------------------------------------------------------------------------------

def test_pages_the_fast_parser_refuses_are_read_as_before(tmp_path):
    """A BOM, a lone surrogate escape or NaN in an ignored field: the fast path steps aside, json.load decides."""
    folder = h.make_sample_copy(tmp_path / "snap")
    page = sorted((folder / "users").glob("*.json"))[0]
    text = page.read_text(encoding="utf-8")
    expected = Snapshot.load(folder)
    for variant in ("\ufeff" + text, text.replace('"id"', '"extra": NaN, "id"', 1),
                    text.replace('"id"', '"junk": "\\udc00", "id"', 1)):
        page.write_bytes(variant.encode("utf-8"))
        try:
            json.loads(variant.encode("utf-8"))
        except ValueError:
            with pytest.raises(SnapshotError):
                Snapshot.load(folder)
        else:
            assert_same_directory(expected, Snapshot.load(folder))


# -- progress -------------------------------------------------------------------------------------------------

def test_progress_from_folder_and_store(tmp_path):
    folder = h.make_sample_copy(tmp_path / "snap")
    (folder / "delta").mkdir(exist_ok=True)
    (folder / "delta" / "0001.json").write_text(json.dumps({"value": [{"id": "zz", "mail": "zz@contoso.com"}]}))
    calls: list[tuple[int, int, str]] = []
    snap = Snapshot.load(folder, progress=lambda *a: calls.append(a))
    pages = len(list((folder / "users").glob("*.json")))
    assert [(i, pages, "users pages") for i in range(pages + 1)] + [(0, 1, "delta pages"), (1, 1, "delta pages")] \
        == calls
    calls.clear()
    snap.save(tmp_path / "s.sqlite")
    Snapshot.load(tmp_path / "s.sqlite", progress=lambda *a: calls.append(a))
    assert [(0, len(snap.users), "users"), (len(snap.users), len(snap.users), "users")] == calls


def test_progress_exception_stops_the_load(tmp_path):
    def stop(done: int, total: int, what: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Snapshot.load(h.SAMPLE_DIR, progress=stop)


def test_progress_counts_store_rows_in_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_ROWS_PER_PROGRESS", 3)
    path = tmp_path / "s.sqlite"
    Snapshot.sample().save(path)
    calls: list[tuple[int, int, str]] = []
    snap = Snapshot.load(path, progress=lambda *a: calls.append(a))
    n = len(snap.users)
    assert [c[0] for c in calls] == [0, *range(3, n, 3), n] if n % 3 else [0, *range(3, n + 1, 3)]
    assert {c[1] for c in calls} == {n}

