"""Bad input for every entry point: engine methods never raise on a bad identity; mail and DLP fail closed."""



from __future__ import annotations

from typing import Any

import pytest
from strategies import MINI, build, native, synced

from mtotrust import (
    Identity,
    IdentityError,
    MailAuth,
    Policy,
    PolicyError,
    Snapshot,
    SnapshotError,
    Trust,
    TrustEngine,
    parse_identity,
)

MALFORMED = [
    "", " ", "no-at-sign", "two@@contoso.com", "a@b@contoso.com", "megan@contoso.com\r\nBcc: x@y.com",
    "megan\n@contoso.com", "megan@contoso.com\x00", "\x00", "\ud800@contoso.com", "megan@\udfffcontoso.com",
    "a" * 100_000 + "@contoso.com", "a@" + "b" * 100_000, "a@" + "c" * 300 + ".com", "@contoso.com", "megan@",
    "megan@contoso..com", "megan@.contoso.com", "meg an@contoso.com", "megan@contoso.com.",
    "megan＠contoso.com", "meg\u202ean@contoso.com", "meg\u200ban@contoso.com", "megan@con\u00adtoso.com",
]
WRONG_TYPES = [None, 42, 3.5, b"megan@contoso.com", ["megan@contoso.com"], {"a": 1}, object(),
               Identity(None), Identity(b"a@b.com"), Identity("megan@contoso.com", 5)]  # type: ignore[arg-type]
ENGINE = TrustEngine(build([native("u1", "megan@contoso.com"), synced("u2", "cameron@fabrikam.com")]),
                     Policy.from_data({"labels": {"L": {"untrusted": [], "internal": "Viewer"}}}))


@pytest.mark.parametrize("text", MALFORMED, ids=lambda t: repr(t[:30]))
class TestMalformedAddress:
    def test_parse_identity_raises_naming_value(self, text):
        """parse_identity raises IdentityError carrying the value."""
        with pytest.raises(IdentityError) as info:
            parse_identity(text)
        assert text.strip(" \t") == info.value.value

    def test_resolve_untrusted(self, text):
        """engine.resolve never raises and answers untrusted (invalid_identity)."""
        result = ENGINE.resolve(text)
        assert (Trust.UNTRUSTED, ("invalid_identity",)) == (result.trust, result.reasons)

    def test_mail_tagged(self, text):
        """engine.mail tags it untrusted, whatever the authentication says."""
        decision = ENGINE.mail(text, MailAuth(dmarc="pass", header_from="contoso.com", smtp_auth=True))
        assert (True, Trust.UNTRUSTED, False) == (decision.tag_external, decision.trust, decision.authenticated)

    def test_dlp_outside(self, text):
        """engine.dlp puts a share with it outside the organization."""
        assert "NotInOrganization" == ENGINE.dlp([text, "megan@contoso.com"]).access_scope

    def test_labels_and_teams_deny(self, text):
        """Labels grant nothing and Teams allows nothing."""
        assert (frozenset(), False) == (ENGINE.label_rights(text, "L").rights, ENGINE.teams(text, "chat").allowed)


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
class TestWrongTypes:
    def test_resolve(self, value):
        """engine.resolve answers untrusted for a wrong type."""
        assert Trust.UNTRUSTED == ENGINE.resolve(value).trust

    def test_mail(self, value):
        """engine.mail tags a wrong-typed sender and never raises."""
        decision = ENGINE.mail(value)
        assert (True, Trust.UNTRUSTED) == (decision.tag_external, decision.trust)

    def test_dlp_inside_list(self, value):
        """A wrong-typed recipient inside a list is outside."""
        assert False is ENGINE.dlp(["megan@contoso.com", value]).inside_organization

    def test_teams_and_labels(self, value):
        """Teams and labels deny a wrong-typed identity."""
        assert (False, frozenset()) == (ENGINE.teams(value, "chat").allowed, ENGINE.label_rights(value, "L").rights)



# A list of addresses is dlp's ordinary argument, and an Identity is not text for parse_identity: those two
# tests take the wrong types that really are wrong for them.
@pytest.mark.parametrize("value", [v for v in WRONG_TYPES if v != ["megan@contoso.com"]], ids=repr)
def test_dlp_wrong_type(value):
    """engine.dlp puts a wrong-typed recipient (or recipient list) outside and never raises."""
    assert False is ENGINE.dlp(value).inside_organization


@pytest.mark.parametrize("value", [v for v in WRONG_TYPES if not isinstance(v, Identity)], ids=repr)
def test_parse_identity_wrong_type(value):
    """parse_identity raises IdentityError (not TypeError) for a wrong type."""
    with pytest.raises(IdentityError):
        parse_identity(value)


class TestBadAuth:
    @pytest.mark.parametrize("auth", [42, b"mx; dmarc=pass", [None], ["ok", 5], {"dmarc": "pass"},
                                      "x" * 200_000, "\x00", "mx.contoso.com; dmarc=pass header.from=\ud800"])
    def test_mail_never_raises_on_auth(self, auth):
        """A bad auth argument leaves the mail unauthenticated and tagged."""
        decision = ENGINE.mail("cameron@fabrikam.com", auth)
        assert (False, True) == (decision.authenticated, decision.tag_external)


class TestPolicyMisuse:
    @pytest.mark.parametrize("label", [None, 5, "Unknown"])
    def test_unknown_label(self, label):
        """An unknown or wrong-typed label name is a PolicyError."""
        with pytest.raises(PolicyError):
            ENGINE.label_rights("megan@contoso.com", label)

    @pytest.mark.parametrize("action", [None, 5, "", "CHAT", "screen_share"])
    def test_unknown_action(self, action):
        """An unknown or wrong-typed Teams action is a PolicyError."""
        with pytest.raises(PolicyError):
            ENGINE.teams("megan@contoso.com", action)

    @pytest.mark.parametrize("data", [None, [], "x", 5])
    def test_policy_not_a_table(self, data):
        """A policy document that is not a table is a PolicyError."""
        with pytest.raises(PolicyError):
            Policy.from_data(data)


class TestBadSnapshotInput:
    @pytest.mark.parametrize(("field", "value"), [
        ("organization", None), ("organization", {"value": [{"id": "t"}]}), ("mto", {"value": None}),
        ("domains", {"value": [{"domainName": 5, "tenantId": "t"}]}), ("mto", "mto")])
    def test_wrong_json_types(self, field, value):
        """A wrong JSON type in any document is a SnapshotError naming the file."""
        docs: dict[str, Any] = {"organization": {"value": [{"id": "t", "verifiedDomains": [{"name": "contoso.com"}]}]},
                "mto": {"value": []}, "domains": {"value": []}, "users": []}
        docs[field] = value
        with pytest.raises(SnapshotError, match=f"{field}.json"):
            Snapshot.from_documents(**docs)

    @pytest.mark.parametrize("page", [None, [], {"value": [None]}, {"value": [{"id": ""}]}, {"value": ["u1"]}])
    def test_bad_user_pages(self, page):
        """A malformed users page is a SnapshotError naming the page."""
        with pytest.raises(SnapshotError, match=r"users\[0\]"):
            Snapshot.from_documents(organization={"value": [{"id": "t", "verifiedDomains": []}]},
                                    mto={"value": []}, domains={"value": []}, users=[page])

    def test_bad_addresses_in_directory_are_skipped(self):
        """Directory values that are not addresses never match and never break loading."""
        snap = build([native("u1", "megan@contoso.com", otherMails=["not an address", "\ud800@x.com", ""],
                             proxyAddresses=["SMTP:", "smtp:bad@@x.com", "X500:/o=x"])])
        assert Trust.INTERNAL == TrustEngine(snap).resolve("megan@contoso.com").trust

    def test_missing_folder(self, tmp_path):
        """A missing snapshot folder is a SnapshotError."""
        with pytest.raises(SnapshotError):
            Snapshot.load(tmp_path / "missing")

    def test_file_instead_of_folder(self):
        """A JSON file passed as a snapshot is a SnapshotError."""
        with pytest.raises(SnapshotError):
            Snapshot.load(MINI / "mto.json")


class TestHostileFiles:
    def test_deeply_nested_snapshot_json(self, tmp_path):
        """JSON nested beyond the recursion limit is a SnapshotError, not a RecursionError."""
        import shutil

        folder = tmp_path / "snap"
        shutil.copytree(MINI, folder)
        (folder / "mto.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
        with pytest.raises(SnapshotError, match="mto.json"):
            Snapshot.load(folder)

    @pytest.mark.parametrize(("name", "text"), [("p.json", "[" * 100_000 + "]" * 100_000),
                                                ("p.toml", "a = " + "[" * 100_000 + "]" * 100_000)])
    def test_deeply_nested_policy(self, tmp_path, name, text):
        """A policy file nested beyond the recursion limit is a PolicyError."""
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(PolicyError, match=name):
            Policy.load(path)

    def test_huge_block_entry_message_bounded(self):
        """A 100 KB block entry gives a PolicyError whose message stays short."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data({"overrides": {"block": ["x" * 100_000 + "@@"]}})
        assert len(str(info.value)) < 1000
