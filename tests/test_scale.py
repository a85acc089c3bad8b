"""Big inputs cost what they should (issue 10): many addresses on one user, a huge domain map, one huge page.

No timing here (the figures are in ``scripts/faults/scale.py``). These tests pin what the fast paths must not
change (index keys and their order, ``Snapshot.id``, confusable answers, the users and errors of a page) against
the plain, readable code, and assert the costs by counting: address comparisons per address, skeletons computed
by a load, user objects held while a page is read.
"""

from __future__ import annotations

import collections
import contextlib
import json
import tempfile
import threading
import tracemalloc
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hostile as h
import idna
import pytest
import strategies as s
from hypothesis import given, settings
from hypothesis import strategies as st

import mtotrust._directory as directory_module
import mtotrust._graph as graph
import mtotrust._snapshot as snapshot_module
from mtotrust import Snapshot, SnapshotError, TrustEngine
from mtotrust._address import domain_skeleton, normalize_address, proxy_smtp_address, split_ext_upn
from mtotrust._confusables import _load as load_confusables
from mtotrust._confusables import skeleton
from mtotrust._directory import Normalizer
from mtotrust._errors import IdentityError
from mtotrust._model import DirectoryUser

LOCAL = frozenset(s.LOCAL_DOMAINS)


# -- one user with many addresses --------------------------------------------------------------------------------

def _normal(value: str) -> str | None:
    try:
        local, domain = normalize_address(value)
    except IdentityError:
        return None
    return f"{local}@{domain}"


def reference_keys(user: DirectoryUser, local_domains: frozenset[str]) -> list[str]:
    """The index keys of one object written plainly: each field's values in order, first occurrence kept."""
    found: list[str] = []

    def add(key: str | None) -> None:
        if key is not None and key not in found:
            found.append(key)

    if user.mail:
        add(_normal(user.mail))
    if user.user_principal_name:
        key = _normal(user.user_principal_name)
        if key is not None:
            local, _, domain = key.rpartition("@")
            if "#ext#" in local and domain in local_domains:  # indexed decoded only
                try:
                    decoded = split_ext_upn(local, user.user_principal_name)
                except IdentityError:
                    decoded = None
                key = None if decoded is None else f"{decoded[0]}@{decoded[1]}"
        add(key)
    for value in user.other_mails:
        if value:
            add(_normal(value))
    for proxy in user.proxy_addresses:
        address = proxy_smtp_address(proxy)
        if address:
            add(_normal(address))
    return found


_ADDRESSES = st.sampled_from([
    "ann@contoso.com", "ANN@Contoso.com", " ann@contoso.com\t", "ann@CONTOSO.COM", "bob@fabrikam.com",
    "bob@fabrikam.com.", "not-an-address", "", "x@b\u00fccher.example", "x@xn--bcher-kva.example",
    "ann_fabrikam.com#EXT#@contoso.onmicrosoft.com", "ann_fabrikam.com#EXT#@fabrikam.com", "a@@b.com",
    "\u0430nn@contoso.com", "cy@litware.com", "CY@litware.com",
])
_PROXIES = st.builds(lambda prefix, address: prefix + address,
                     st.sampled_from(["SMTP:", "smtp:", "X500:", "sip:", ""]), _ADDRESSES)


@st.composite
def many_address_users(draw: st.DrawFn) -> DirectoryUser:
    """Draw a user whose fields repeat, vary the case of, and mix valid and invalid addresses."""
    return DirectoryUser(
        "u1", draw(st.none() | _ADDRESSES), draw(st.none() | _ADDRESSES),
        tuple(draw(st.lists(_ADDRESSES, max_size=12))), tuple(draw(st.lists(_PROXIES, max_size=12))))


class _Counted(str):
    """An address that counts how often it is compared for equality."""

    __slots__ = ()
    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _Counted.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


class TestManyAddresses:
    @given(many_address_users())
    def test_keys_are_the_readable_paths_keys_in_the_same_order(self, user: DirectoryUser) -> None:
        """The index keys of an object, and their order (the store's rows depend on it), are the plain rule's."""
        assert reference_keys(user, LOCAL) == Normalizer(LOCAL).keys(user)

    @settings(max_examples=25, deadline=None)
    @given(many_address_users(), st.sampled_from(["otherMails", "proxyAddresses", "userType"]))
    def test_store_and_delta_agree_with_a_fresh_build(self, user: DirectoryUser, field: str) -> None:
        """A many-address user saves, loads and takes a delta to the id and lookups of a snapshot built afresh."""
        obj = {"id": user.id, "userPrincipalName": user.user_principal_name, "mail": user.mail,
               "otherMails": list(user.other_mails), "proxyAddresses": list(user.proxy_addresses)}
        change = {"userType": "Guest"} if field == "userType" else {field: [f"new{i}@contoso.com" for i in range(5)]}
        base = s.build([obj])
        derived = base.with_delta([{"value": [{"id": user.id, **change}]}])
        fresh = s.build([{**obj, **change}])
        assert (fresh.id, _lookups(fresh)) == (derived.id, _lookups(derived))
        with tempfile.TemporaryDirectory() as tmp:
            base.save(Path(tmp) / "s.sqlite")
            loaded = Snapshot.load(Path(tmp) / "s.sqlite")
        assert (base.id, _lookups(base)) == (loaded.id, _lookups(loaded))

    def test_address_comparisons_grow_linearly(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Load, save and a one-field delta of a user with n addresses compare addresses O(n) times, not O(n²)."""
        monkeypatch.setattr(directory_module, "proxy_smtp_address",
                            lambda proxy: None if (a := proxy_smtp_address(proxy)) is None else _Counted(a))
        n = 3000
        user = s.native("u1", "ann@contoso.com", proxyAddresses=[f"smtp:a{i}@contoso.com" for i in range(n)])
        counts = []
        _Counted.comparisons = 0
        snapshot = s.build([user])
        counts.append(_Counted.comparisons)
        _Counted.comparisons = 0
        snapshot.save(tmp_path / "s.sqlite")
        counts.append(_Counted.comparisons)
        _Counted.comparisons = 0
        derived = snapshot.with_delta([{"value": [{"id": "u1", "userType": "Guest"}]}])
        counts.append(_Counted.comparisons)
        assert len(derived.lookup(f"a{n - 1}@contoso.com")) == 1
        assert max(counts) <= 10 * n


def _lookups(snapshot: Snapshot) -> dict[str, list[str]]:
    return {a: [u.id for u in snapshot.lookup(a)] for a in snapshot.addresses()}


# -- confusable skeletons ----------------------------------------------------------------------------------------

@pytest.fixture(name="skeleton_calls")
def fixture_skeleton_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every domain the snapshot module computes a skeleton of."""
    calls: list[str] = []

    def counting(domain: str) -> str:
        calls.append(domain)
        return domain_skeleton(domain)

    monkeypatch.setattr(snapshot_module, "domain_skeleton", counting)
    return calls


def _known(snapshot: Snapshot) -> list[str]:
    return sorted(snapshot.local_domains | snapshot.domain_tenants.keys())


class TestSkeletons:
    def test_a_store_load_computes_no_skeleton(self, skeleton_calls: list[str], tmp_path: Path) -> None:
        """Loading a store costs reading its rows: no confusable skeleton is computed until a lookup needs one."""
        h.SAMPLE.save(tmp_path / "s.sqlite")
        skeleton_calls.clear()
        loaded = Snapshot.load(tmp_path / "s.sqlite")
        assert skeleton_calls == []
        assert loaded.lookalike_of("fabrikarn.com") == h.SAMPLE.lookalike_of("fabrikarn.com") == "fabrikam.com"

    def test_skeletons_are_computed_once_and_shared_by_deltas(self, skeleton_calls: list[str]) -> None:
        """The first lookup computes each known domain's skeleton once; later ones and derived snapshots reuse it."""
        snapshot = s.build([s.native("u1", "ann@contoso.com")])
        assert skeleton_calls == []
        snapshot.lookalike_of("fabrikarn.com")
        assert sorted(skeleton_calls) == sorted([*_known(snapshot), "fabrikarn.com"])
        skeleton_calls.clear()
        derived = snapshot.with_delta([{"value": [{"id": "u1", "userType": "Guest"}]}])
        assert derived.lookalike_of("c0ntoso.com") == snapshot.lookalike_of("c0ntoso.com")
        assert skeleton_calls == ["c0ntoso.com", "c0ntoso.com"]

    def test_racing_first_lookups_build_the_table_once(self, skeleton_calls: list[str]) -> None:
        """Threads racing on a snapshot's first confusable lookup compute each skeleton exactly once."""
        snapshot = s.build([])
        barrier = threading.Barrier(8)
        answers: list[str | None] = []

        def lookup() -> None:
            barrier.wait()
            answers.append(snapshot.lookalike_of("fabrikarn.com"))

        threads = [threading.Thread(target=lookup) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == ["fabrikam.com"] * 8
        counts = collections.Counter(skeleton_calls)
        assert {d: counts[d] for d in _known(snapshot)} == dict.fromkeys(_known(snapshot), 1)

    def test_a_store_answers_confusable_identities_as_its_folder(self, tmp_path: Path) -> None:
        """Every confusable identity resolves from a store exactly as from the folder it was saved from."""
        h.SAMPLE.save(tmp_path / "s.sqlite")
        from_store, from_folder = TrustEngine(Snapshot.load(tmp_path / "s.sqlite")), TrustEngine(h.SAMPLE)
        for address, *_ in h.CONFUSABLE_IDENTITIES:
            folder_answer, store_answer = from_folder.resolve(address), from_store.resolve(address)
            assert (folder_answer.trust, folder_answer.reasons) == (store_answer.trust, store_answer.reasons)

    @given(st.text(st.characters(max_codepoint=127)))
    def test_ascii_skeleton_is_the_readable_skeleton(self, text: str) -> None:
        """The ASCII fast path of the skeleton is NFD(map(NFD(text))) exactly."""
        table = load_confusables()[0]
        mapped = "".join(table.get(ch, ch) for ch in unicodedata.normalize("NFD", text))
        assert unicodedata.normalize("NFD", mapped) == skeleton(text)

    @given(st.text(st.sampled_from("abmrnl0I1xn-.Z\u00fc"), max_size=24) | st.sampled_from(
        ["xn--bcher-kva.example", "XN--BCHER-KVA.example", "contoso.com", "c0nt0so.corn", "a..b", "-a.com"]))
    def test_domain_skeleton_is_the_skeleton_of_the_decoded_domain(self, domain: str) -> None:
        """A domain's skeleton is the skeleton of its IDNA-decoded form (of itself when it does not decode)."""
        try:
            unicode_form = idna.decode(domain)
        except idna.IDNAError:
            unicode_form = domain
        assert skeleton(unicode_form) == domain_skeleton.__wrapped__(domain)


# -- one big users page ------------------------------------------------------------------------------------------

@pytest.fixture(name="stream_all")
def fixture_stream_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream every users page file, through windows small enough to cut values everywhere."""
    monkeypatch.setattr(graph, "STREAM_BYTES", 0, raising=False)
    monkeypatch.setattr(graph, "_STREAM_WINDOW", 7, raising=False)
    monkeypatch.setattr(graph, "_STREAM_MARGIN", 3, raising=False)


def _outcome(data: bytes) -> object:
    """The users of a page file's bytes, or the error's text."""
    try:
        return graph.read_users_page(data, "users/0001.json", graph.user_from_dict)
    except SnapshotError as exc:
        return f"SnapshotError: {exc}"


def _write(folder: Path, docs: dict[str, Any], pages: list[bytes]) -> Path:
    (folder / "users").mkdir(parents=True)
    for name in ("organization", "mto", "domains"):
        (folder / f"{name}.json").write_text(json.dumps(docs[name]))
    for n, page in enumerate(pages):
        (folder / "users" / f"{n:04d}.json").write_bytes(page)
    return folder


_NESTED = b"[" * 100_000 + b"]" * 100_000
MALFORMED = [
    b"", b"{", b"[]", b"{}", b'{"value": null}', b'{"value": [1]}', b'{"value": [{"id": ""}]}',
    b'{"value": [{"id": "a"}, {"id": "b", "mail": 3}]}', b'{"value": [{"id": "a"},]}', b'{"value": [{"id": "a"}]',
    b'{"value": [{"id": "a"}]} x', b'{"value": [{"id": "a", "accountEnabled": "true"}]}',
    b'{"value": [{"id": "a"}], "value": [{"id": "b"}]}', b'\xef\xbb\xbf{"value": [{"id": "a"}]}',
    '{"value": [{"id": "a"}]}'.encode("utf-16"), b'{"value": [{"id": "a\xff"}]}',
    b'{"value": [{"id": "a", "x": ' + _NESTED + b"}]}", b'{"value": [' + _NESTED + b"]}", _NESTED,
    b'{"value": [{"id": "\\ud800"}]}', b'{"value": [{"id": "a\\u00"}]}', b'{"value": [{"id": "a", "n": NaN}]}',
    b'{"value": [{"id": "a", "n": ' + b"9" * 5000 + b"}]}", b'{1: 2, "value": []}', b'{"value": []}',
    b'{"@odata.nextLink": "x", "value": [{"id": "a", "mail": "x@y.z", "otherMails": ["q@y.z"]}], "z": {}}',
]


class TestBigPages:
    @pytest.mark.parametrize("page", MALFORMED, ids=range(len(MALFORMED)))
    def test_a_streamed_page_fails_or_reads_as_the_whole_page(self, page: bytes,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        """A page too large for the whole-page reader gives its exact error (file, JSON path, value) or users."""
        monkeypatch.setattr(graph, "STREAM_BYTES", 1 << 62, raising=False)
        whole = _outcome(page)
        monkeypatch.setattr(graph, "STREAM_BYTES", 0, raising=False)
        monkeypatch.setattr(graph, "_STREAM_WINDOW", 5, raising=False)
        monkeypatch.setattr(graph, "_STREAM_MARGIN", 2, raising=False)
        assert whole == _outcome(page)

    @pytest.mark.usefixtures("stream_all")
    def test_a_deeply_nested_page_is_a_snapshot_error(self, tmp_path: Path) -> None:
        """A streamed page nested too deeply fails as a SnapshotError naming the file, never a RecursionError."""
        folder = _write(tmp_path / "deep", h.sample_documents(), [b'{"value": [' + _NESTED + b"]}"])
        with pytest.raises(SnapshotError, match="nested too deeply") as caught:
            Snapshot.load(folder)
        assert caught.value.file == str(folder / "users" / "0000.json")

    @settings(max_examples=30, deadline=None)
    @given(s.snapshot_documents(), st.sampled_from([None, 1]))
    def test_one_streamed_page_is_the_same_snapshot_as_small_pages(self, docs: dict[str, Any],
                                                                   indent: int | None) -> None:
        """The users of one streamed page give the Snapshot.id and users of the same users in one-user pages."""
        users = docs["users"][0]["value"]
        with tempfile.TemporaryDirectory() as tmp:
            paged = Snapshot.load(_write(Path(tmp) / "paged", docs,
                                         [json.dumps({"value": [u]}).encode() for u in users]))
            with _streaming():
                one = Snapshot.load(_write(Path(tmp) / "one", docs, [
                    json.dumps({"@odata.context": "x", "value": users}, indent=indent).encode()]))
        assert (paged.id, dict(paged.users)) == (one.id, dict(one.users))

    @pytest.mark.usefixtures("stream_all")
    def test_a_streamed_page_shares_equal_addresses(self) -> None:
        """Two objects with one address hold one string, the index's key, as with the whole-page reader."""
        data = json.dumps({"value": [s.native("u1", "ann@contoso.com"), s.native("u2", "ann@contoso.com")]})
        first, second = graph.read_users_page(data.encode(), "f", graph.user_from_dict)
        assert first.mail is second.mail

    def test_a_streamed_page_holds_one_user_object_at_a_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A streamed page keeps the users it converts and a window of text, not every decoded object at once."""
        monkeypatch.setattr(graph, "STREAM_BYTES", 0, raising=False)
        monkeypatch.setattr(graph, "_STREAM_WINDOW", 1 << 16, raising=False)
        data = json.dumps({"value": [s.synced(f"u{i}", f"user{i}@fabrikam.com") for i in range(3000)]}).encode()
        tracemalloc.start()
        try:
            users = graph.read_users_page(data, "f", graph.user_from_dict)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(users) == 3000
        assert peak - kept < len(data) // 4  # the whole-page reader holds 1.6 page sizes of dicts at once


@contextlib.contextmanager
def _streaming() -> Iterator[None]:
    """Stream every page file inside the block (for hypothesis tests, where a function fixture cannot serve)."""
    saved = graph.STREAM_BYTES, graph._STREAM_WINDOW, graph._STREAM_MARGIN
    graph.STREAM_BYTES, graph._STREAM_WINDOW, graph._STREAM_MARGIN = 0, 7, 3
    try:
        yield
    finally:
        graph.STREAM_BYTES, graph._STREAM_WINDOW, graph._STREAM_MARGIN = saved


def test_a_value_longer_than_many_windows_is_decoded_a_logarithmic_number_of_times(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A string that never ends (or a huge value) early in a big page is not decoded again from its start for every
    window: each try reads twice as much text as the last, so 1,024 windows cost about a dozen decodes."""
    monkeypatch.setattr(graph, "STREAM_BYTES", 0, raising=False)
    monkeypatch.setattr(graph, "_STREAM_WINDOW", 1024, raising=False)
    decode = graph._Text._decode
    calls: list[int] = []

    def counted(text: str, pos: int) -> tuple[Any, int]:
        calls.append(len(text))
        return decode(text, pos)

    monkeypatch.setattr(graph._Text, "_decode", staticmethod(counted))
    page = b'{"value": [{"id": "a", "x": "' + b"y" * (1 << 20)
    assert isinstance(_outcome(page), str)  # the whole-page reader's error, as without streaming
    assert len(calls) <= 14
