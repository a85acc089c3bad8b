"""Tests for Policy: files, defaults, built-ins, errors, permission levels, fingerprint and overrides."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from mtotrust import Policy, PolicyError, Snapshot, Trust, TrustEngine
from mtotrust._errors import shown
from mtotrust._model import Resolution

TOML = """
version = 1

[mail]
untagged_at = "internal"
require_authentication = false
trusted_authserv_ids = ["mx.contoso.com"]
accept_exchange_online_results = true
subject_tag = ""

[dlp]
inside_at = "guest"

[teams]
chat = "guest"
presence = "internal"

[labels.Confidential]
internal = "Co-Author"
mto_member = "Viewer"

[labels."Highly Confidential"]
internal = ["VIEW", "DOCEDIT", "EDIT"]

[overrides]
block = ["*.lookalike.example", "ceo@partner.example"]
"""

VIEWER = {"VIEW", "VIEWRIGHTSDATA", "REPLY", "REPLYALL", "OBJMODEL"}
REVIEWER = VIEWER | {"EDIT", "DOCEDIT", "FORWARD"}
CO_AUTHOR = REVIEWER | {"EXTRACT", "EXPORT", "PRINT"}
CO_OWNER = CO_AUTHOR | {"EDITRIGHTSDATA", "OWNER"}
TAKEN_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _resolution(trust: Trust, address: str | None = "ana@partner.example") -> Resolution:
    return Resolution(identity=address or "not an address", trust=trust, reasons=("object_found",), address=address)


class TestLoad:
    def test_toml(self, tmp_path):
        """A TOML file sets every key it names."""
        path = tmp_path / "p.toml"
        path.write_text(TOML, encoding="utf-8")
        policy = Policy.load(path)
        assert ("internal", False, ["mx.contoso.com"], True, "", "guest", "guest", "internal", "external") == (
            policy.mail.untagged_at, policy.mail.require_authentication, policy.mail.trusted_authserv_ids,
            policy.mail.accept_exchange_online_results, policy.mail.subject_tag, policy.dlp.inside_at,
            policy.teams.chat, policy.teams.presence, policy.teams.call)

    def test_json_equals_toml(self, tmp_path):
        """The same structure in JSON gives the same policy (same fingerprint)."""
        import tomllib

        toml_path, json_path = tmp_path / "p.toml", tmp_path / "p.json"
        toml_path.write_text(TOML, encoding="utf-8")
        json_path.write_text(json.dumps(tomllib.loads(TOML)), encoding="utf-8")
        assert Policy.load(toml_path).fingerprint == Policy.load(json_path).fingerprint

    def test_missing_file(self, tmp_path):
        """A missing policy file is a PolicyError naming it."""
        with pytest.raises(PolicyError, match="nope.toml"):
            Policy.load(tmp_path / "nope.toml")

    @pytest.mark.parametrize(("name", "text"), [("p.toml", "[mail\nx="), ("p.json", "{")])
    def test_bad_syntax(self, tmp_path, name, text):
        """Bad TOML or JSON is a PolicyError naming the file."""
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(PolicyError, match=name):
            Policy.load(path)

    @pytest.mark.parametrize(("with_trust", "with_value"), [
        ({"mail": {"untagged_at": Trust.GUEST}}, {"mail": {"untagged_at": "guest"}}),
        ({"dlp": {"inside_at": Trust.INTERNAL}}, {"dlp": {"inside_at": "internal"}}),
        ({"teams": {"chat": Trust.MTO_MEMBER, "file_sharing": Trust.UNTRUSTED}},
         {"teams": {"chat": "mto_member", "file_sharing": "untrusted"}}),
        ({"labels": {"C": {Trust.GUEST: "Viewer", "internal": ["VIEW"]}}},
         {"labels": {"C": {"guest": "Viewer", "internal": ["VIEW"]}}}),
    ])
    def test_trust_members_mean_their_values(self, with_trust, with_value):
        """A Trust member wherever a trust goes is read as its value: same policy, same fingerprint."""
        expected, actual = Policy.from_data(with_value), Policy.from_data(with_trust)
        assert (expected.model_dump(), expected.fingerprint) == (actual.model_dump(), actual.fingerprint)

    def test_trust_label_key_grants(self):
        """A label level keyed by a Trust member grants its rights to that trust."""
        policy = Policy.from_data({"labels": {"C": {Trust.GUEST: "Viewer"}}})
        assert frozenset(VIEWER) == policy.label_rights("C", Trust.GUEST)

    @pytest.mark.parametrize(("name", "text", "data"), [
        ("p.toml", "", {}),
        ("p.toml", "# a policy\n\n", {}),
        ("p.toml", '[mail]\nuntagged_at = "internal"\n', {"mail": {"untagged_at": "internal"}}),
        ("p.json", "{}", {}),
        ("p.json", '{"overrides": {"block": ["evil.example"]}}', {"overrides": {"block": ["evil.example"]}}),
    ], ids=["empty", "comments only", "toml without version", "empty json object", "json without version"])
    def test_a_file_without_version_is_refused(self, tmp_path: Path, name: str, text: str,
                                               data: dict[str, Any]) -> None:
        """A policy file without ``version`` (an empty one too) is a PolicyError naming the file and the key, never
        the default policy; the same document built in code may leave the version out."""
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(PolicyError, match=rf"^version: missing in policy file '{re.escape(str(path))}': a "
                                              "policy file starts with") as caught:
            Policy.load(path)
        assert ("version", True) == (caught.value.key, Policy.from_data(data).version == 1)


class TestDefaults:
    def test_documented_values(self):
        """Policy.default() has exactly the defaults docs/policy.md documents in every section."""
        dumped = Policy.default().model_dump(mode="json")
        assert {
            "version": 1,
            "mail": {"untagged_at": "mto_member", "require_authentication": True, "trusted_authserv_ids": [],
                     "accept_exchange_online_results": False, "subject_tag": "[External]"},
            "dlp": {"inside_at": "mto_member"},
            "teams": {"chat": "external", "call": "external", "meeting_lobby_bypass": "mto_member",
                      "file_sharing": "mto_member", "presence": "mto_member", "people_search": "mto_member"},
            "labels": {},
            "overrides": {"block": []},
        } == {k: dumped[k] for k in ("version", "mail", "dlp", "teams", "labels", "overrides")}

    def test_never_stale_without_max_age(self):
        """Without snapshot.max_age (the default) no snapshot is stale, however old."""
        assert (None, False) == (Policy.default().snapshot.max_age,
                                 Policy.default().is_stale(dt.datetime(1970, 1, 2, tzinfo=dt.UTC), now=4e9))

    def test_classic(self):
        """Policy.classic() gives MTO members nothing internal users get, except chat and call."""
        policy = Policy.classic()
        assert ("internal", "internal") == (policy.mail.untagged_at, policy.dlp.inside_at)
        assert dict.fromkeys(("meeting_lobby_bypass", "file_sharing", "presence", "people_search"), Trust.INTERNAL) \
            | {"chat": Trust.EXTERNAL, "call": Trust.EXTERNAL} == {
                a: policy.teams_minimum(a) for a in ("chat", "call", "meeting_lobby_bypass", "file_sharing",
                                                     "presence", "people_search")}


class TestErrors:
    @pytest.mark.parametrize(("data", "key"), [
        ({"mail": {"untaged_at": "internal"}}, "mail.untaged_at"),
        ({"mial": {}}, "mial"),
        ({"teams": {"screen_share": "internal"}}, "teams.screen_share"),
        ({"overrides": {"allow": ["a.com"]}}, "overrides.allow"),
    ])
    def test_unknown_key_names_path(self, data, key):
        """An unknown key is a PolicyError naming its full path."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data(data)
        assert key == info.value.key
        assert key in str(info.value)

    @pytest.mark.parametrize(("data", "key", "value", "allowed"), [
        ({"mail": {"untagged_at": "member"}}, "mail.untagged_at", "member", "mto_member"),
        ({"dlp": {"inside_at": "everyone"}}, "dlp.inside_at", "everyone", "internal"),
        ({"teams": {"chat": 3}}, "teams.chat", 3, "external"),
        ({"labels": {"C": {"internal": "Author"}}}, "labels.C.internal", "Author", "Co-Author"),
        ({"labels": {"C": {"internal": ["VIEW", "READ"]}}}, "labels.C.internal.1", "READ", "DOCEDIT"),
        ({"version": 2}, "version", 2, "1"),
        ({"mail": {"subject_tag": "[Ext]\r\nBcc: x"}}, "mail.subject_tag", "[Ext]\r\nBcc: x", "one line of text"),
        ({"mailflow": {"pilot_recipients": ["megan"]}}, "mailflow.pilot_recipients.0", "megan", "user@domain"),
    ])
    def test_bad_value_names_value_and_allowed(self, data, key, value, allowed):
        """A bad value is a PolicyError naming the key path, the value and the allowed values."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data(data)
        assert (key, value) == (info.value.key, info.value.value)
        assert repr(value) in str(info.value) and allowed in str(info.value)

    @pytest.mark.parametrize("value", [True, False, 1.0, "1"])
    def test_version_is_the_integer_one(self, value):
        """A version that only compares equal to 1 (True, 1.0) or looks like it is a PolicyError naming it."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data({"version": value})
        assert ("version", value, type(value)) == (info.value.key, info.value.value, type(info.value.value))
        assert shown(value) in str(info.value) and "allowed: 1" in str(info.value)

    @pytest.mark.parametrize("key", ["require_authentication", "accept_exchange_online_results"])
    @pytest.mark.parametrize("value", [0, 1])
    def test_int_is_not_a_bool(self, key, value):
        """An integer where a boolean belongs is a PolicyError naming the key, not a truthy guess."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data({"mail": {key: value}})
        assert (f"mail.{key}", value) == (info.value.key, info.value.value)

    def test_wrong_bool_type(self):
        """A string where a boolean belongs is an error, not a truthy guess."""
        with pytest.raises(PolicyError, match="mail.require_authentication"):
            Policy.from_data({"mail": {"require_authentication": "false"}})

    def test_bad_block_entry(self):
        """A block entry that is neither address, domain nor *.domain is a PolicyError naming the entry."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data({"overrides": {"block": ["ok.example", "a@@b.com"]}})
        assert ("overrides.block.1", "a@@b.com") == (info.value.key, info.value.value)

    def test_policy_error_is_value_error(self):
        """PolicyError is a ValueError."""
        with pytest.raises(ValueError):
            Policy.from_data({"x": 1})


class TestLabels:
    @pytest.mark.parametrize(("level", "rights"), [("Viewer", VIEWER), ("Reviewer", REVIEWER),
                                                   ("Co-Author", CO_AUTHOR), ("Co-Owner", CO_OWNER)])
    def test_permission_levels_expand(self, level, rights):
        """Each permission level expands to the usage rights docs/policy.md lists."""
        policy = Policy.from_data({"labels": {"L": {"guest": level}}})
        assert frozenset(rights) == policy.label_rights("L", Trust.GUEST)

    def test_explicit_rights(self):
        """An explicit rights list is granted exactly."""
        policy = Policy.from_data({"labels": {"L": {"internal": ["VIEW", "PRINT"]}}})
        assert frozenset({"VIEW", "PRINT"}) == policy.label_rights("L", Trust.INTERNAL)

    def test_unlisted_level_gets_nothing(self):
        """A trust level the label does not list gets no rights, even a higher one."""
        policy = Policy.from_data({"labels": {"L": {"mto_member": "Viewer"}}})
        assert (frozenset(), frozenset()) == (policy.label_rights("L", Trust.GUEST),
                                              policy.label_rights("L", Trust.INTERNAL))

    def test_unknown_label(self):
        """An unknown label name is a PolicyError naming it, never a silent grant."""
        with pytest.raises(PolicyError, match="Secret"):
            Policy.from_data({"labels": {"L": {"internal": "Viewer"}}}).label_rights("Secret", Trust.INTERNAL)


    @pytest.mark.parametrize("label", [["C"], None, ("C",), 3])
    def test_label_not_a_str(self, label):
        """A label that is not a str is a PolicyError naming it (key labels), not a TypeError."""
        with pytest.raises(PolicyError) as info:
            Policy.from_data({"labels": {"C": {"internal": "Viewer"}}}).label_rights(label, Trust.INTERNAL)
        assert ("labels", label) == (info.value.key, info.value.value)
        assert shown(label) in str(info.value) and "'C'" in str(info.value)

    def test_label_not_a_str_through_engine(self):
        """The engine passes the policy's PolicyError on for a label that is not a str."""
        with pytest.raises(PolicyError) as info:
            TrustEngine(Snapshot.sample()).label_rights("megan@contoso.com", ["C"])  # type: ignore[arg-type]
        assert ("labels", ["C"]) == (info.value.key, info.value.value)


class TestTeamsMinimum:
    def test_unknown_action(self):
        """An unknown Teams action is a PolicyError naming it and the allowed actions."""
        with pytest.raises(PolicyError, match="screen_share.*people_search"):
            Policy.default().teams_minimum("screen_share")

    @pytest.mark.parametrize("action", [["chat"], None, 3, ("chat",)])
    def test_action_not_a_str(self, action):
        """A Teams action that is not a str is a PolicyError naming it and the allowed actions."""
        with pytest.raises(PolicyError) as info:
            Policy.default().teams_minimum(action)
        assert ("teams", action) == (info.value.key, info.value.value)
        assert shown(action) in str(info.value) and "people_search" in str(info.value)

    def test_action_not_a_str_through_engine(self):
        """The engine passes the policy's PolicyError on for a Teams action that is not a str."""
        with pytest.raises(PolicyError) as info:
            TrustEngine(Snapshot.sample()).teams("megan@contoso.com", ["chat"])  # type: ignore[arg-type]
        assert ("teams", ["chat"]) == (info.value.key, info.value.value)

    def test_trust_member_minimum(self):
        """A Teams minimum given as a Trust member is returned as that Trust."""
        assert Trust.GUEST == Policy.from_data({"teams": {"presence": Trust.GUEST}}).teams_minimum("presence")


class TestFingerprint:
    def test_stable(self):
        """Equal policies have equal fingerprints."""
        assert Policy.from_data({"dlp": {"inside_at": "internal"}}).fingerprint == \
            Policy.from_data({"dlp": {"inside_at": "internal"}}).fingerprint

    def test_differs(self):
        """Different policies have different fingerprints."""
        prints = {Policy.default().fingerprint, Policy.classic().fingerprint,
                  Policy.from_data({"mail": {"subject_tag": "[EXT]"}}).fingerprint,
                  Policy.from_data({"overrides": {"block": ["a.com"]}}).fingerprint}
        assert 4 == len(prints)

    def test_order_of_lists_does_not_matter(self):
        """Block entries, authserv-ids and explicit rights in another order mean the same: same fingerprint."""
        one = Policy.from_data({"mail": {"trusted_authserv_ids": ["a.example", "B.example"]},
                                "overrides": {"block": ["a.com", "*.b.com"]},
                                "labels": {"L": {"internal": ["VIEW", "EDIT"]}}})
        two = Policy.from_data({"mail": {"trusted_authserv_ids": ["b.example", "a.example"]},
                                "overrides": {"block": ["*.b.com", "a.com"]},
                                "labels": {"L": {"internal": ["EDIT", "VIEW"]}}})
        assert one.fingerprint == two.fingerprint

    def test_explicit_defaults_equal_default(self):
        """Spelling out a default value does not change the fingerprint."""
        assert Policy.default().fingerprint == Policy.from_data({"dlp": {"inside_at": "mto_member"}}).fingerprint


class TestExpectFingerprint:
    """``Policy.load(path, expect_fingerprint=...)`` refuses a policy other than the one reviewed."""

    def test_the_reviewed_policy_loads(self, tmp_path: Path) -> None:
        """The fingerprint of the reviewed policy lets the file load, as the same policy."""
        path = tmp_path / "p.toml"
        path.write_text(TOML, encoding="utf-8")
        reviewed = Policy.load(path)
        assert reviewed == Policy.load(path, expect_fingerprint=reviewed.fingerprint)

    def test_a_changed_policy_is_refused_naming_both_fingerprints(self, tmp_path: Path) -> None:
        """An edited file is a PolicyError naming the file, the fingerprint it has and the one expected."""
        path = tmp_path / "p.toml"
        path.write_text(TOML, encoding="utf-8")
        reviewed = Policy.load(path).fingerprint
        path.write_text(TOML.replace('"ceo@partner.example"', ""), encoding="utf-8")
        changed = Policy.load(path).fingerprint
        with pytest.raises(PolicyError) as caught:
            Policy.load(path, expect_fingerprint=reviewed)
        assert (f"policy file {str(path)!r} has fingerprint {changed}, not the expected {reviewed}: the policy "
                "changed since it was reviewed") == str(caught.value).partition(" (or")[0]

    def test_every_cut_of_the_file_is_refused(self, tmp_path: Path) -> None:
        """A file cut short anywhere (a line boundary included) is refused with the reviewed fingerprint, unless
        what was cut off changes nothing the policy means."""
        raw = TOML.encode()
        path = tmp_path / "p.toml"
        path.write_bytes(raw)
        reviewed = Policy.load(path)
        loaded = []
        for cut in range(len(raw)):
            path.write_bytes(raw[:cut])
            with contextlib.suppress(PolicyError):
                loaded.append(Policy.load(path, expect_fingerprint=reviewed.fingerprint))
        # Only dropping the final line end keeps the policy as it was reviewed; every other cut is refused.
        assert [reviewed] == loaded

    @pytest.mark.parametrize("expected", ["ABCDEF0123456789", "abc", "", " " + "0" * 16, 123],
                             ids=["upper case", "short", "empty", "blank", "int"])
    def test_a_malformed_fingerprint_is_named(self, tmp_path: Path, expected: object) -> None:
        """What is not 16 lower-case hex digits is a PolicyError naming it, never a silent mismatch or match."""
        path = tmp_path / "p.toml"
        path.write_text(TOML, encoding="utf-8")
        with pytest.raises(PolicyError, match=rf"expected fingerprint {re.escape(shown(expected))} is not a policy "
                                              "fingerprint: 16 lower-case hex digits") as caught:
            Policy.load(path, expect_fingerprint=expected)  # type: ignore[arg-type]
        assert expected == caught.value.value


class TestBlocked:
    @pytest.fixture(name="policy")
    def _policy(self):
        return Policy.from_data({"overrides": {"block": ["CEO@Partner.example", "exact.example",
                                                         "*.wild.example", "*.München.de"]}})

    @pytest.mark.parametrize(("address", "expected"), [
        ("ceo@partner.example", True), ("cfo@partner.example", False),
        ("a@exact.example", True), ("a@sub.exact.example", False),
        ("a@wild.example", True), ("a@x.wild.example", True), ("a@x.y.wild.example", True),
        ("a@example", False), ("a@notwild.example", False),
        ("a@xn--mnchen-3ya.de", True), ("a@de", False),
    ])
    def test_block_entries(self, policy, address, expected):
        """Address entries match the address, domain entries exactly that domain, *.domain it and subdomains."""
        domain = address.rpartition("@")[2]
        assert expected == policy.blocked(address, domain)


    def test_block_entries_parsed_in_order(self, policy):
        """block_entries lists every entry in order, classified and normalised."""
        assert (("address", "ceo@partner.example"), ("domain", "exact.example"), ("wildcard", "wild.example"),
                ("wildcard", "xn--mnchen-3ya.de")) == policy.block_entries

    @pytest.mark.parametrize("trust", list(Trust))
    def test_apply_blocks_address(self, policy, trust):
        """apply makes a blocked address untrusted, whatever its trust, and adds the reason blocked."""
        blocked = policy.apply(_resolution(trust, "ceo@partner.example"))
        assert (Trust.UNTRUSTED, ("object_found", "blocked")) == (blocked.trust, blocked.reasons)

    @pytest.mark.parametrize("address", ["cfo@partner.example", None])
    def test_apply_leaves_unblocked_alone(self, policy, address):
        """apply changes nothing but the stamped fingerprint for an address no entry names, or no address."""
        resolution = _resolution(Trust.MTO_MEMBER, address)
        assert attrs.evolve(resolution, policy_fingerprint=policy.fingerprint) == policy.apply(resolution)

    @pytest.mark.parametrize(("trust", "expected"), [
        (Trust.INTERNAL, (Trust.EXTERNAL, ("object_found", "snapshot_stale"))),
        (Trust.MTO_MEMBER, (Trust.EXTERNAL, ("object_found", "snapshot_stale"))),
        (Trust.GUEST, (Trust.EXTERNAL, ("object_found", "snapshot_stale"))),
        (Trust.EXTERNAL, (Trust.EXTERNAL, ("object_found",))),
        (Trust.UNTRUSTED, (Trust.UNTRUSTED, ("object_found",))),
    ])
    def test_apply_stale_caps_at_external(self, trust, expected):
        """A stale snapshot caps trust above external at external (snapshot_stale) and leaves the rest alone."""
        capped = Policy.default().apply(_resolution(trust), stale=True)
        assert expected == (capped.trust, capped.reasons)

    def test_apply_blocked_and_stale(self, policy):
        """A blocked address stays untrusted when the snapshot is stale too: no staleness reason is added."""
        capped = policy.apply(_resolution(Trust.INTERNAL, "ceo@partner.example"), stale=True)
        assert (Trust.UNTRUSTED, ("object_found", "blocked")) == (capped.trust, capped.reasons)

    @pytest.mark.parametrize("address", ["ceo@partner.example", "cfo@partner.example"])
    @pytest.mark.parametrize("trust", list(Trust))
    @pytest.mark.parametrize("stale", [False, True])
    def test_apply_is_idempotent(self, policy, address, trust, stale):
        """Applying the policy to its own result changes nothing (no second reason, no further cap)."""
        once = policy.apply(_resolution(trust, address), stale=stale)
        assert once == policy.apply(once, stale=stale)

    @pytest.mark.parametrize(("age", "expected"), [(0, False), (86400, False), (86401, True), (10**7, True)])
    def test_is_stale_after_max_age(self, age, expected):
        """A snapshot is stale only once it is older than snapshot.max_age."""
        policy = Policy.from_data({"snapshot": {"max_age": "24h"}})
        assert expected == policy.is_stale(TAKEN_AT, now=TAKEN_AT.timestamp() + age)


class TestTrustedAuthservIds:
    def test_compared_lower_case(self):
        """Authserv-ids in the policy are matched case-insensitively, as RFC 8601 ids are domain names."""
        policy = Policy.from_data({"mail": {"trusted_authserv_ids": ["MX.Contoso.com", "mx.contoso.com"]}})
        assert frozenset({"mx.contoso.com"}) == policy.trusted_authserv_ids
