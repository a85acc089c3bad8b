"""docs/reasons.md and mtotrust._explain.REASONS list the same codes, and the sample emits only listed codes."""



from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from mtotrust import Identity, MailAuth, Policy, Snapshot, TrustEngine
from mtotrust._explain import CAPS, REASONS
from mtotrust._policy import TEAMS_ACTIONS

DOC = Path(__file__).parent.parent / "docs" / "reasons.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$")


def doc_rows():
    return {m[1]: m.groups()[1:] for line in DOC.read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))}


class TestReasonsDoc:
    def test_same_codes(self):
        """Every code in REASONS has a row in docs/reasons.md, and the doc lists no other code."""
        assert sorted(REASONS) == sorted(doc_rows())

    def test_no_code_documented_twice(self):
        """Each code has exactly one row."""
        codes = [m[1] for line in DOC.read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))]
        assert len(set(codes)) == len(codes)

    def test_caps_agree(self):
        """The doc's cap column starts with the trust that explain.CAPS records, and says '—' for the others."""
        for code, (_meaning, cap, _app, _change) in doc_rows().items():
            expected = CAPS[code].value if code in CAPS else "—"
            assert (code, expected) == (code, cap.split(" ")[0])

    def test_every_row_complete(self):
        """Every row says which app emits it and what would change it."""
        for code, (meaning, _cap, app, change) in doc_rows().items():
            assert meaning.strip() and change.strip(), code
            assert re.search(r"resolve|engine|mail|dlp|labels|teams", app), code


def sample_decisions():
    """Every resolution and app decision the bundled sample gives for its demo identities and indexed addresses."""
    snap = Snapshot.sample()
    demo = json.loads((resources.files("mtotrust") / "sample" / "demo.json").read_text(encoding="utf-8"))
    identities: list[Identity | str] = [Identity(i["identity"], i["tenant_id"]) for i in demo["identities"]]
    identities += sorted(snap.addresses())
    policy = Policy.from_data({"mail": {"trusted_authserv_ids": ["mx.contoso.com"]},
                               "labels": {"L": {"internal": "Viewer"}}, "overrides": {"block": ["adatum.com"]}})
    engine = TrustEngine(snap, policy, cache_size=0)
    for identity in identities:
        yield engine.resolve(identity)
        address = identity.address if isinstance(identity, Identity) else identity
        domain = address.rpartition("@")[2].strip()
        for auth in (None, MailAuth(dmarc="pass", header_from=domain), MailAuth(smtp_auth=True),
                     f"mx.contoso.com; dmarc=fail header.from={domain}", "mx.contoso.com; dmarc=pass header.from=(",
                     "mx.contoso.com; dmarc=pass header.from=other.example", "other; dmarc=pass", ["x", 1], b"x"):
            yield engine.mail(identity, auth)  # type: ignore[arg-type]
        yield engine.dlp([identity])
        yield engine.label_rights(identity, "L")
        for action in TEAMS_ACTIONS:
            yield engine.teams(identity, action)
    yield engine.dlp([])
    yield engine.dlp(None)  # type: ignore[arg-type]


class TestSampleReasons:
    def test_every_emitted_reason_is_documented(self):
        """Every reason any resolution or decision of the sample emits is in REASONS."""
        emitted = set()
        for decision in sample_decisions():
            emitted.update(decision.reasons)
            for recipient in getattr(decision, "recipients", ()):
                emitted.update(recipient.reasons)
        assert set() == emitted - set(REASONS)
        assert len(emitted) > 40  # the walk really covers the catalogue, not a corner of it

    @pytest.mark.parametrize("code", sorted(REASONS))
    def test_meaning_is_a_sentence(self, code):
        """Every REASONS entry has a non-empty meaning."""
        assert REASONS[code].strip()
