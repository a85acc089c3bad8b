"""Tests for Snapshot: folder loading, errors, delta pages, generations and the SQLite store."""



from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
from typing import Any

import pytest
from strategies import ACTIVE, LOCAL, MINI, build, domains, mto, organization, synced

import mtotrust._store
from mtotrust import Snapshot, SnapshotError, Trust
from mtotrust._resolve import resolve


@pytest.fixture(name="folder")
def _folder(tmp_path):
    """A writable copy of the mini fixture."""
    target = tmp_path / "snap"
    shutil.copytree(MINI, target)
    return target


def write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def every_resolution(snap):
    probes = [*sorted(snap.addresses()), "nobody@fabrikam.com", "x@example.org", "x@fabrikarn.com"]
    return {a: resolve(snap, a) for a in probes}


class TestFolderLoad:
    def test_loads_mini(self):
        """The fixture folder loads with its local tenant, domains, tenants, partners and users (delta applied)."""
        snap = Snapshot.load(MINI)
        assert LOCAL == snap.tenant_id
        assert frozenset({"contoso.com", "contoso.onmicrosoft.com"}) == snap.local_domains
        assert {"active", "pending", "removed"} == {t.state for t in snap.tenants.values()}
        assert {ACTIVE: True, "44444444-4444-4444-8444-444444444444": False,
                "66666666-6666-4666-8666-666666666666": None} == dict(snap.partners)
        assert 14 == len(snap.users)  # 14 in users/, one added and one removed by delta/

    def test_load_accepts_str_path(self):
        """Snapshot.load takes a str as well as a Path."""
        assert 14 == len(Snapshot.load(str(MINI)).users)

    def test_partners_optional(self, folder):
        """Without partners.json the snapshot loads with no partner rows."""
        (folder / "partners.json").unlink()
        assert {} == dict(Snapshot.load(folder).partners)

    def test_delta_optional(self, folder):
        """Without delta/ the users are exactly those of users/."""
        shutil.rmtree(folder / "delta")
        assert "u-nora" in Snapshot.load(folder).users

    def test_unknown_graph_fields_ignored(self, folder):
        """Fields Graph adds over time are ignored, not errors."""
        write(folder / "users" / "0003.json", {"value": [{"id": "x", "brandNewField": {"a": 1}}]})
        assert "x" in Snapshot.load(folder).users

    def test_pages_read_in_file_name_order(self, folder):
        """users/ pages load in file-name order, so every page counts once."""
        write(folder / "users" / "0000.json", {"value": [{"id": "first"}]})
        assert {"first", "u-megan"} <= set(Snapshot.load(folder).users)

    def test_taken_at_is_newest_file_time(self, folder):
        """taken_at is the newest modification time of the snapshot's files."""
        old = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
        new = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC).timestamp()
        for path in folder.rglob("*.json"):
            os.utime(path, (old, old))
        os.utime(folder / "users" / "0002.json", (new, new))
        assert dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC) == Snapshot.load(folder).taken_at


class TestFolderErrors:
    @pytest.mark.parametrize("name", ["organization.json", "mto.json", "domains.json"])
    def test_missing_required_file(self, folder, name):
        """A missing required file is a SnapshotError naming it."""
        (folder / name).unlink()
        with pytest.raises(SnapshotError, match=name) as info:
            Snapshot.load(folder)
        assert str(folder / name) == info.value.file

    @pytest.mark.parametrize(("name", "row"), [
        ("mto.json", {"tenantId": "22222222-2222-4222-8222-222222222222", "state": "active"}),
        ("partners.json", {"tenantId": "22222222-2222-4222-8222-222222222222", "isInMultiTenantOrganization": True}),
    ])
    def test_duplicate_tenant_row(self, folder, name, row):
        """A second row for one tenant (in any case) is a SnapshotError naming file, path and tenant id."""
        path = folder / name
        data = json.loads(path.read_text()) if path.exists() else {"value": []}
        data["value"] += [row, {**row, "tenantId": row["tenantId"].upper()}]
        write(path, json.dumps(data))
        with pytest.raises(SnapshotError, match="duplicate tenant id") as info:
            Snapshot.load(folder)
        assert (str(path), "22222222-2222-4222-8222-222222222222") == (info.value.file, info.value.value)
        assert info.value.path is not None
        assert info.value.path.endswith(".tenantId")

    def test_missing_users_folder(self, folder):
        """A missing users/ folder is a SnapshotError naming it."""
        shutil.rmtree(folder / "users")
        with pytest.raises(SnapshotError, match="users"):
            Snapshot.load(folder)

    def test_missing_path(self, tmp_path):
        """A path that does not exist is a SnapshotError, not a FileNotFoundError."""
        with pytest.raises(SnapshotError, match="nowhere"):
            Snapshot.load(tmp_path / "nowhere")

    def test_invalid_json(self, folder):
        """Invalid JSON is a SnapshotError naming the file and position."""
        write(folder / "mto.json", '{"value": [')
        with pytest.raises(SnapshotError, match="mto.json.*not valid JSON"):
            Snapshot.load(folder)

    def test_not_utf8(self, folder):
        """A file that is not UTF-8 is a SnapshotError."""
        (folder / "domains.json").write_bytes(b'{"value": ["\xff"]}')
        with pytest.raises(SnapshotError, match="domains.json"):
            Snapshot.load(folder)

    @pytest.mark.parametrize(("file", "data", "path", "value"), [
        ("users/0002.json", {"value": [{"id": "x", "accountEnabled": "true"}]}, "$.value[0].accountEnabled", "true"),
        ("users/0002.json", {"value": [{"id": "x", "otherMails": "a@b.com"}]}, "$.value[0].otherMails", "a@b.com"),
        ("users/0002.json", {"value": [{"id": 7}]}, "$.value[0].id", 7),
        ("users/0002.json", {"value": [{"mail": "a@b.com"}]}, "$.value[0].id", None),
        ("users/0002.json", {"value": {"id": "x"}}, "$.value", {"id": "x"}),
        ("mto.json", {"value": [{"tenantId": 5}]}, "$.value[0].tenantId", 5),
        ("mto.json", {"value": [{"tenantId": "t", "state": True}]}, "$.value[0].state", True),
        ("domains.json", {"value": [{"domainName": "a.com"}]}, "$.value[0].tenantId", None),
        ("partners.json", {"value": [{"tenantId": "t", "isInMultiTenantOrganization": "no"}]},
         "$.value[0].isInMultiTenantOrganization", "no"),
        ("organization.json", {"value": []}, "$.value", None),
        ("organization.json", [], "$", []),
    ])
    def test_wrong_type_names_file_path_value(self, folder, file, data, path, value):
        """A wrong or missing field is a SnapshotError naming the file, the JSON path and the value."""
        write(folder / file, data)
        with pytest.raises(SnapshotError) as info:
            Snapshot.load(folder)
        error = info.value
        assert (str(folder / file), path) == (error.file, error.path)
        if value is not None:
            assert value == error.value
        assert path in str(error) and file.split("/")[-1] in str(error)

    def test_invalid_domain_name(self, folder):
        """A verified domain that is not a valid domain name is a SnapshotError with its JSON path."""
        org = organization(domains=("contoso.com", "bad..name"))
        write(folder / "organization.json", org)
        with pytest.raises(SnapshotError) as info:
            Snapshot.load(folder)
        assert ("$.value[0].verifiedDomains[1].name", "bad..name") == (info.value.path, info.value.value)

    def test_duplicate_id_across_pages(self, folder):
        """The same user id on two users/ pages is a SnapshotError naming the id and where it is."""
        write(folder / "users" / "0003.json", {"value": [{"id": "ok"}, {"id": "u-megan"}]})
        with pytest.raises(SnapshotError, match="u-megan") as info:
            Snapshot.load(folder)
        assert (str(folder / "users" / "0003.json"), "$.value[1].id", "u-megan") == (
            info.value.file, info.value.path, info.value.value)

    def test_duplicate_id_within_page(self):
        """The same user id twice on one page is a SnapshotError."""
        with pytest.raises(SnapshotError, match="duplicate"):
            build([{"id": "a"}, {"id": "a"}])

    def test_domain_mapped_to_two_tenants(self):
        """domains.json naming two tenants for one domain is a SnapshotError."""
        with pytest.raises(SnapshotError, match="fabrikam.com"):
            Snapshot.from_documents(organization=organization(), mto=mto(), users=[],
                                    domains={"value": [{"domainName": "fabrikam.com", "tenantId": "a"},
                                                       {"domainName": "FABRIKAM.com", "tenantId": "b"}]})

    def test_error_is_value_error(self, folder):
        """SnapshotError is a ValueError, so callers who do not know mtotrust can catch it."""
        (folder / "mto.json").unlink()
        with pytest.raises(ValueError):
            Snapshot.load(folder)


class TestDelta:
    def test_partial_update_keeps_other_fields(self):
        """A delta entry carrying one field changes that field only."""
        snap = build([synced("u1", "a@fabrikam.com")], delta=[[{"id": "u1", "displayName": "New name"}],
                                                             [{"id": "u1", "accountEnabled": False}]])
        user = snap.users["u1"]
        assert (False, "Member", "a@fabrikam.com", True) == (
            user.account_enabled, user.user_type, user.mail, snap.is_external(user))

    def test_explicit_null_clears_field(self):
        """A field set to null in a delta (Prefer: return=minimal) is cleared."""
        snap = build([synced("u1", "a@fabrikam.com")], delta=[[{"id": "u1", "userType": None}]])
        assert (None, Trust.GUEST) == (snap.users["u1"].user_type, resolve(snap, "a@fabrikam.com").trust)

    def test_removed(self):
        """@removed deletes the object; its address then has no object."""
        snap = build([synced("u1", "a@fabrikam.com")], delta=[[{"id": "u1", "@removed": {"reason": "changed"}}]])
        assert ("u1" in snap.users, Trust.EXTERNAL) == (False, resolve(snap, "a@fabrikam.com").trust)

    def test_removed_unknown_id_is_fine(self):
        """Removing an id the snapshot never had is not an error."""
        assert {} == dict(build([], delta=[[{"id": "ghost", "@removed": {"reason": "deleted"}}]]).users)

    def test_same_id_twice_last_wins(self):
        """The same id twice in one round: entries apply in order, the last wins."""
        snap = build([synced("u1", "a@fabrikam.com")], delta=[[{"id": "u1", "accountEnabled": False},
                                                             {"id": "u1", "accountEnabled": True}]])
        assert True is snap.users["u1"].account_enabled

    def test_removed_then_recreated(self):
        """A removal followed by a full object restores the object."""
        full = synced("u1", "a@fabrikam.com")
        snap = build([full], delta=[[{"id": "u1", "@removed": {"reason": "changed"}}, full]])
        assert Trust.MTO_MEMBER == resolve(snap, "a@fabrikam.com").trust

    def test_new_object(self):
        """A delta entry for an unknown id adds the object."""
        snap = build([], delta=[[synced("u9", "new@fabrikam.com")]])
        user = resolve(snap, "new@fabrikam.com").user
        assert user is not None
        assert "u9" == user.id

    def test_delta_changes_address_index(self):
        """A changed mail moves the object in the address index."""
        snap = build([synced("u1", "a@fabrikam.com")],
                     delta=[[{"id": "u1", "mail": "b@fabrikam.com", "proxyAddresses": [],
                                 "userPrincipalName": "b_fabrikam.com#EXT#@contoso.onmicrosoft.com"}]])
        moved = resolve(snap, "b@fabrikam.com").user
        assert moved is not None
        assert ("u1", None) == (moved.id, resolve(snap, "a@fabrikam.com").user)

    def test_with_delta_returns_new_snapshot(self):
        """with_delta leaves the original untouched and gives a new generation."""
        base = build([synced("u1", "a@fabrikam.com")])
        after = base.with_delta([{"value": [{"id": "u1", "accountEnabled": False}]}])
        assert (True, False) == (base.users["u1"].account_enabled, after.users["u1"].account_enabled)
        assert after.generation > base.generation

    def test_with_delta_folder(self, tmp_path):
        """with_delta also reads a folder of page files in name order."""
        base = build([synced("u1", "a@fabrikam.com")])
        write(tmp_path / "2.json", {"value": [{"id": "u1", "accountEnabled": True}]})
        write(tmp_path / "1.json", {"value": [{"id": "u1", "accountEnabled": False}]})
        assert True is base.with_delta(tmp_path).users["u1"].account_enabled

    def test_delta_wrong_type(self, folder):
        """A wrong type in a delta page is a SnapshotError naming the delta file."""
        write(folder / "delta" / "0002.json", {"value": [{"id": "u-megan", "userType": 1}]})
        with pytest.raises(SnapshotError) as info:
            Snapshot.load(folder)
        assert (str(folder / "delta" / "0002.json"), "$.value[0].userType") == (info.value.file, info.value.path)


class TestGeneration:
    def test_unique_and_increasing(self):
        """Every snapshot gets a new, larger generation, also from the same documents."""
        generations = [build([]).generation for _ in range(5)]
        generations.append(Snapshot.load(MINI).generation)
        assert sorted(set(generations)) == generations

    def test_from_documents_taken_at(self):
        """from_documents records the given taken_at."""
        when = dt.datetime(2024, 5, 2, 9, tzinfo=dt.UTC)
        snap = Snapshot.from_documents(organization=organization(), mto=mto(), domains=domains(), users=[],
                                       taken_at=when)
        assert when == snap.taken_at


class TestSqliteStore:
    def test_round_trip_preserves_every_resolution(self, tmp_path):
        """A saved and loaded store resolves every indexed address exactly like the original."""
        snap = Snapshot.load(MINI)
        snap.save(tmp_path / "s.sqlite")
        loaded = Snapshot.load(tmp_path / "s.sqlite")
        assert every_resolution(snap) == every_resolution(loaded)
        assert (snap.taken_at, snap.tenant_id, dict(snap.partners)) == (
            loaded.taken_at, loaded.tenant_id, dict(loaded.partners))
        assert loaded.generation != snap.generation

    def test_round_trip_sample(self, tmp_path):
        """The bundled sample survives the round trip with every user intact."""
        snap = Snapshot.sample()
        snap.save(tmp_path / "s.sqlite")
        assert dict(snap.users) == dict(Snapshot.load(tmp_path / "s.sqlite").users)

    def test_overwrite(self, tmp_path):
        """Saving over an existing store replaces it."""
        target = tmp_path / "s.sqlite"
        build([]).save(target)
        build([synced("u1", "a@fabrikam.com")]).save(target)
        assert ["u1"] == list(Snapshot.load(target).users)

    def test_atomic_on_failure(self, tmp_path, monkeypatch):
        """A save that fails mid-write leaves the old store loadable and no temporary file behind."""
        target = tmp_path / "s.sqlite"
        build([synced("u1", "a@fabrikam.com")]).save(target)
        def half_write(conn, parts):
            conn.execute("CREATE TABLE meta (key TEXT)")
            conn.commit()
            raise OSError("disk full")

        with monkeypatch.context() as patched:
            patched.setattr(mtotrust._store, "_write", half_write)
            with pytest.raises(SnapshotError, match="disk full"):
                build([]).save(target)
        assert (["u1"], ["s.sqlite"]) == (list(Snapshot.load(target).users), [p.name for p in tmp_path.iterdir()])

    def test_truncated_store(self, tmp_path):
        """A truncated store is a SnapshotError, not a sqlite3 error."""
        target = tmp_path / "s.sqlite"
        Snapshot.sample().save(target)
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        with pytest.raises(SnapshotError, match="s.sqlite"):
            Snapshot.load(target)

    def test_damaged_store(self, tmp_path):
        """A store with overwritten pages is a SnapshotError."""
        target = tmp_path / "s.sqlite"
        Snapshot.sample().save(target)
        data = bytearray(target.read_bytes())
        data[100:] = b"\x5a" * (len(data) - 100)
        target.write_bytes(bytes(data))
        with pytest.raises(SnapshotError):
            Snapshot.load(target)

    def test_foreign_sqlite_database(self, tmp_path):
        """A SQLite file mtotrust did not write is a SnapshotError."""
        target = tmp_path / "other.sqlite"
        with sqlite3.connect(target) as conn:
            conn.execute("CREATE TABLE t (x)")
        with pytest.raises(SnapshotError):
            Snapshot.load(target)
        target.unlink()

    def test_wrong_schema_version(self, tmp_path):
        """A store of another schema version is a SnapshotError naming the version."""
        target = tmp_path / "s.sqlite"
        build([]).save(target)
        with sqlite3.connect(target) as conn:
            conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(SnapshotError, match="99"):
            Snapshot.load(target)

    def test_not_sqlite_file(self, tmp_path):
        """A regular file that is not SQLite (a JSON file, say) is a SnapshotError."""
        target = tmp_path / "snap.sqlite"
        write(target, {"value": []})
        with pytest.raises(SnapshotError, match="neither"):
            Snapshot.load(target)

    def test_empty_file(self, tmp_path):
        """An empty file is a SnapshotError."""
        target = tmp_path / "empty.sqlite"
        target.write_bytes(b"")
        with pytest.raises(SnapshotError):
            Snapshot.load(target)


class TestSnapshotId:
    """``Snapshot.id``: one content id per directory, whatever its form, that moves with anything resolution reads."""

    def test_format(self):
        """The id is "sha256:" and 32 lower-case hex digits."""
        ident = Snapshot.sample().id
        assert ident.startswith("sha256:")
        assert 32 == len(ident.removeprefix("sha256:"))
        assert int(ident.removeprefix("sha256:"), 16) >= 0 and ident == ident.lower()

    def test_folder_and_its_store_have_the_same_id(self, tmp_path):
        """The bundled sample's folder and the store saved from it report the same id, and the store keeps it."""
        sample = Snapshot.sample()
        sample.save(tmp_path / "s.sqlite")
        assert sample.id == Snapshot.load(tmp_path / "s.sqlite").id
        with sqlite3.connect(tmp_path / "s.sqlite") as conn:
            stored = conn.execute("SELECT value FROM meta WHERE key = 'snapshot_id'").fetchone()[0]
        assert sample.id == stored

    def test_same_id_in_another_process(self):
        """A second interpreter (another hash seed) computes the same id for the same folder."""
        import subprocess
        import sys

        code = "from mtotrust import Snapshot; print(Snapshot.sample().id)"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONHASHSEED": "12345"})
        assert Snapshot.sample().id == other.stdout.strip()

    def test_page_layout_and_order_do_not_count(self):
        """The same users split over other pages, in another order, give the same id."""
        users = [synced(f"u{i}", f"p{i}@fabrikam.com") for i in range(6)]
        one = build(users)
        docs: dict[str, Any] = {"organization": organization(), "mto": mto(), "domains": domains()}
        split = Snapshot.from_documents(**docs, users=[{"value": users[4:]}, {"value": users[:4][::-1]}])
        assert one.id == split.id

    def test_display_names_do_not_count(self):
        """A renamed tenant (nothing resolution reads) keeps the id."""
        users = [synced("u1", "a@fabrikam.com")]
        renamed = mto()
        renamed["value"][0]["displayName"] = "Another name"
        other = Snapshot.from_documents(organization=organization(), mto=renamed, domains=domains(),
                                        users=[{"value": users}])
        assert build(users).id == other.id

    @pytest.mark.parametrize("change", [
        {"userType": "Guest"}, {"accountEnabled": False}, {"mail": "b@fabrikam.com"}, {"identities": []},
        {"otherMails": ["c@fabrikam.com"]}, {"proxyAddresses": ["smtp:d@fabrikam.com"]}, {"creationType": None},
    ])
    def test_a_user_change_gives_a_new_id(self, change):
        """Changing any field of a user that resolution reads changes the id."""
        assert build([synced("u1", "a@fabrikam.com")]).id != build([synced("u1", "a@fabrikam.com", **change)]).id

    def test_tenant_state_partner_and_domain_changes_give_a_new_id(self):
        """A tenant state, a partner flag or a domain mapping that changes gives a new id."""
        users = [synced("u1", "a@fabrikam.com")]
        ids = {build(users).id, build(users, states={ACTIVE: "removed"}).id,
               build(users, partner_rows={ACTIVE: False}).id,
               build(users, domain_map={"fabrikam.net": ACTIVE}).id,
               build(users, local_domains=("contoso.com",)).id}
        assert 5 == len(ids)

    def test_delta_that_changes_a_resolution_gives_a_new_id(self):
        """After a delta that disables an MTO member the id differs; one that restates a value keeps it."""
        snap = build([synced("u1", "a@fabrikam.com")])
        disabled = snap.with_delta([{"value": [{"id": "u1", "accountEnabled": False}]}])
        restated = snap.with_delta([{"value": [{"id": "u1", "accountEnabled": True}]}])
        assert resolve(snap, "a@fabrikam.com").trust != resolve(disabled, "a@fabrikam.com").trust
        assert (snap.id != disabled.id, snap.id) == (True, restated.id)

    def test_delta_id_equals_the_id_of_a_fresh_build(self):
        """The id a delta derives incrementally equals the id of the same directory built from scratch."""
        base = build([synced("u1", "a@fabrikam.com"), synced("u2", "b@fabrikam.com")])
        assert base.id
        page = [{"id": "u2", "@removed": {"reason": "deleted"}}, synced("u3", "c@fabrikam.com")]
        fresh = build([synced("u1", "a@fabrikam.com"), synced("u3", "c@fabrikam.com")])
        assert fresh.id == base.with_delta([{"value": page}]).id


class TestStoreMetadata:
    """The store's metadata table: kept beside the directory, out of the id."""

    def test_metadata_round_trip(self, tmp_path):
        """save(metadata=...) is read back as Snapshot.metadata; a later save keeps it unless given other."""
        snap = build([synced("u1", "a@fabrikam.com")])
        snap.save(tmp_path / "a.sqlite", metadata={"delta_link": "https://graph.example/delta?token=1"})
        loaded = Snapshot.load(tmp_path / "a.sqlite")
        assert {"delta_link": "https://graph.example/delta?token=1"} == dict(loaded.metadata)
        loaded.save(tmp_path / "b.sqlite")
        assert dict(loaded.metadata) == dict(Snapshot.load(tmp_path / "b.sqlite").metadata)

    def test_metadata_takes_no_part_in_the_id(self, tmp_path):
        """Two stores of one directory with different metadata have the snapshot's id."""
        snap = build([synced("u1", "a@fabrikam.com")])
        snap.save(tmp_path / "a.sqlite", metadata={"k": "1"})
        snap.save(tmp_path / "b.sqlite", metadata={"k": "2"})
        assert snap.id == Snapshot.load(tmp_path / "a.sqlite").id == Snapshot.load(tmp_path / "b.sqlite").id

    def test_folder_has_no_metadata(self):
        """A snapshot read from a folder has empty metadata."""
        assert {} == dict(Snapshot.sample().metadata)

    def test_non_str_metadata_is_refused(self, tmp_path):
        """Metadata values must be str: anything else is a TypeError before anything is written."""
        with pytest.raises(TypeError, match="str"):
            build([]).save(tmp_path / "a.sqlite", metadata={"k": 1})  # type: ignore[dict-item]
        assert [] == list(tmp_path.iterdir())


class TestTakenAt:
    """``snapshot.json`` and the delta's time: a snapshot never looks newer than its data."""

    def test_snapshot_json_sets_taken_at(self, folder):
        """takenAt of snapshot.json wins over the file times."""
        write(folder / "snapshot.json", {"takenAt": "2026-11-30T08:00:00Z"})
        assert dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC) == Snapshot.load(folder).taken_at

    @pytest.mark.parametrize("data", [{}, {"takenAt": 5}, {"takenAt": "yesterday"}, {"takenAt": "2026-11-30T08:00"},
                                      []])
    def test_bad_snapshot_json_is_an_error(self, folder, data):
        """A snapshot.json without a zoned ISO 8601 takenAt is a SnapshotError naming the file and the key."""
        write(folder / "snapshot.json", data)
        with pytest.raises(SnapshotError, match=r"snapshot\.json: \$\.takenAt"):
            Snapshot.load(folder)

    def test_future_taken_at_is_an_error(self, folder):
        """A takenAt more than five minutes ahead is refused: it would switch snapshot.max_age off."""
        ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        write(folder / "snapshot.json", {"takenAt": ahead})
        with pytest.raises(SnapshotError, match="in the future"):
            Snapshot.load(folder)

    def test_future_file_time_is_an_error(self, folder):
        """A page touched into the future is refused too (the file time is the taken_at then)."""
        ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).timestamp()
        os.utime(folder / "users" / "0001.json", (ahead, ahead))
        with pytest.raises(SnapshotError, match="in the future"):
            Snapshot.load(folder)

    def test_delta_keeps_the_base_time(self):
        """with_delta of decoded pages keeps the base's taken_at; a given taken_at wins."""
        old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        snap = build([synced("u1", "a@fabrikam.com")], taken_at=old)
        page = [{"value": [{"id": "u1", "accountEnabled": False}]}]
        later = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
        assert (old, later) == (snap.with_delta(page).taken_at, snap.with_delta(page, taken_at=later).taken_at)

    def test_delta_folder_time(self, tmp_path):
        """A delta folder's own time counts: its snapshot.json, else its newest page file."""
        snap = build([synced("u1", "a@fabrikam.com")], taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        write(tmp_path / "0001.json", {"value": [{"id": "u1", "accountEnabled": False}]})
        stamp = dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()
        os.utime(tmp_path / "0001.json", (stamp, stamp))
        assert dt.datetime(2026, 2, 1, tzinfo=dt.UTC) == snap.with_delta(tmp_path).taken_at
        write(tmp_path / "snapshot.json", {"takenAt": "2026-03-01T00:00:00Z"})
        derived = snap.with_delta(tmp_path)
        assert (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), False) == (derived.taken_at,
                                                                    derived.users["u1"].account_enabled)

    @pytest.mark.parametrize("name", ["missing", "page.txt"])
    def test_delta_path_that_is_no_delta_is_an_error(self, tmp_path, name):
        """A with_delta path that does not exist or is not a .json page is a SnapshotError naming it."""
        (tmp_path / "page.txt").write_text("{}")
        with pytest.raises(SnapshotError, match=name):
            build([]).with_delta(tmp_path / name)

    def test_delta_page_in_other_case_is_an_error(self, tmp_path):
        """A page named 0001.JSON would be skipped silently: it is an error naming it."""
        write(tmp_path / "0001.JSON", {"value": []})
        with pytest.raises(SnapshotError, match=r"0001\.JSON"):
            build([]).with_delta(tmp_path)
