"""``mtotrust.service``: the AuthZEN 1.0 decision service over real HTTP on loopback (httpx -> uvicorn -> engine).

Every expected decision comes from the in-process engine asked the same question (``engine.mail``, ``engine.dlp``,
``engine.teams``, ``engine.label_rights``, ``engine.report``): the service must carry exactly that answer. The
expected protocol behaviour (batch defaults, short-circuit semantics, error shapes) is AuthZEN 1.0's final text.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtotrust import Identity, Policy, Snapshot, Trust, TrustEngine
from mtotrust.service import ACTIONS, MAX_BODY, MAX_ITEMS, Service, ServiceError, is_loopback

BOUNDARY = "mx.contoso.com"
SAMPLE = Snapshot.sample()
with importlib.resources.as_file(importlib.resources.files("mtotrust") / "sample" / "policy.toml") as _path:
    POLICY = Policy.load(_path)  # the demo's: two labels, and mail authenticated at the boundary is trusted
    DEMO = json.loads((_path.parent / "demo.json").read_text(encoding="utf-8"))["identities"]
IDENTITIES: list[tuple[str, str | None, str]] = [(d["identity"], d["tenant_id"], d["expect"]) for d in DEMO]
ADDRESSES = sorted({address for address, _, _ in IDENTITIES})
LABELS = sorted(POLICY.labels)
ACTIVE = "22222222-2222-4222-8222-222222222222"  # Fabrikam's tenant
LITWARE = "44444444-4444-4444-8444-444444444444"  # not the tenant of fabrikam.com
EXAMPLES = json.loads((Path(__file__).parent / "data" / "authzen_examples.json").read_text(encoding="utf-8"))
EXAMPLE_IDS = [re.sub(r"[^A-Za-z0-9.]+", "-", e["name"]).strip("-")[:60] for e in EXAMPLES]
EVALUATION, EVALUATIONS = "/access/v1/evaluation", "/access/v1/evaluations"
ORIGIN = "https://addin.contoso.com"


# -- the oracle: the engine asked directly ------------------------------------------------------------------------

def request(address: str, action: str, resource: dict[str, Any] | None = None, tenant_id: str | None = None,
            **extra: Any) -> dict[str, Any]:
    """Return an evaluation request body (``resource`` defaults to the one ``action`` takes)."""
    subject: dict[str, Any] = {"type": "user", "id": address}
    if tenant_id is not None:
        subject["properties"] = {"tenant_id": tenant_id}
    return {"subject": subject, "action": {"name": action},
            "resource": resource if resource is not None else resource_for(action), **extra}


def resource_for(action: str, *, label: str = LABELS[0], auth: str | list[str] | None = None) -> dict[str, Any]:
    """Return the resource ``action`` is decided on."""
    family = action.partition(".")[0]
    if family == "mail":
        resource: dict[str, Any] = {"type": "message", "id": "<m1@fabrikam.com>"}
        if auth is not None:
            resource["properties"] = {"authentication_results": auth}
        return resource
    return {"dlp": {"type": "document", "id": "q3.xlsx"}, "teams": {"type": "teams", "id": "t1"},
            "label": {"type": "label", "id": label}}[family]


def expected(engine: TrustEngine, address: str, tenant_id: str | None, action: str,
             resource: dict[str, Any]) -> dict[str, Any]:
    """Return the answer the service must give: the engine's own decision for the same question."""
    identity = Identity(address, tenant_id)
    family, _, rest = action.partition(".")
    decision: Any
    if family == "mail":
        auth = resource.get("properties", {}).get("authentication_results")
        decision = engine.mail(identity, None if auth == [] else auth)  # no values: as if the message had none
        allowed = not decision.tag_external
    elif family == "dlp":
        decision = engine.dlp(identity)
        allowed = decision.inside_organization
    elif family == "teams":
        decision = engine.teams(identity, rest)
        allowed = decision.allowed
    else:
        decision = engine.label_rights(identity, resource["id"])
        allowed = rest in decision.rights
    return {"decision": allowed, "context": {"trust": decision.trust.value, "reasons": list(decision.reasons),
                                             "snapshot_id": decision.snapshot_id,
                                             "policy_fingerprint": decision.policy_fingerprint}}


def auth_for(address: str, result: str = "pass", authserv: str = BOUNDARY) -> list[str]:
    """Return Authentication-Results (topmost first) of ``authserv`` saying DMARC ``result`` for the From domain."""
    return [f"{authserv}; dmarc={result} header.from={address.strip().rpartition('@')[2]}"]


def assert_error(response: httpx.Response, status: int, *named: str) -> str:
    """Check an error answer: ``status``, JSON ``{"error": str}`` naming each of ``named``; return the message."""
    assert status == response.status_code, response.text
    assert "application/json" == response.headers["content-type"]
    body = response.json()
    assert ["error"] == list(body) and isinstance(body["error"], str), body
    for text in named:
        assert text in body["error"], (text, body["error"])
    assert "Traceback" not in response.text
    return str(body["error"])


def assert_item_error(item: dict[str, Any], index: int, *named: str) -> None:
    """Check one batch item that could not be decided: ``decision: false`` and ``context.error`` 400 naming it."""
    assert item["decision"] is False and ["error"] == list(item["context"]), item
    error = item["context"]["error"]
    assert 400 == error["status"] and error["message"].startswith(f"evaluations[{index}]"), error
    for text in named:
        assert text in error["message"], (text, error)


# -- running services ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def serving(engine: TrustEngine, **options: Any) -> Iterator[tuple[Service, httpx.Client]]:
    """Run a Service over ``engine`` on a free loopback port; yield it and a client of it; stop it after."""
    service = Service(engine, port=0, **options)
    service.start()
    try:
        with httpx.Client(base_url=service.url, timeout=30, trust_env=False) as client:
            yield service, client
    finally:
        service.stop()


@pytest.fixture(scope="module")
def engine() -> TrustEngine:
    return TrustEngine(SAMPLE, POLICY)


@pytest.fixture(scope="module")
def served(engine: TrustEngine) -> Iterator[tuple[Service, httpx.Client]]:
    with serving(engine) as running:
        yield running


@pytest.fixture
def client(served: tuple[Service, httpx.Client]) -> httpx.Client:
    return served[1]


# -- decisions ----------------------------------------------------------------------------------------------------

class TestDecisions:
    """Each action family answers exactly what the engine answers, for every kind of identity of the sample."""

    def test_the_sample_has_every_trust_level(self, engine: TrustEngine) -> None:
        """The identities the tests ask about cover every trust level, and the policy trusts the boundary."""
        assert {t.value for t in Trust} == {expect for _, _, expect in IDENTITIES}
        assert {t.value for t in Trust} == {engine.resolve(Identity(a, t)).trust.value for a, t, _ in IDENTITIES}
        assert BOUNDARY in POLICY.mail.trusted_authserv_ids and len(LABELS) >= 2

    def test_every_action_family_matches_the_engine(self, engine: TrustEngine, client: httpx.Client) -> None:
        """Mail (with and without trusted DMARC results), DLP, every Teams action and every label right."""
        outcomes: dict[str, set[bool]] = {"mail": set(), "dlp": set(), "teams": set(), "label": set()}
        wrong = []
        for address, tenant_id, _ in IDENTITIES:
            questions = [(action, resource_for(action)) for action in ACTIONS if not action.startswith("label.")]
            questions += [("mail.deliver_untagged", resource_for("mail.deliver_untagged", auth=auth))
                          for auth in (auth_for(address), auth_for(address, "fail"),
                                       auth_for(address, authserv="mx.attacker.example"), auth_for(address)[0])]
            questions += [(action, resource_for(action, label=label))
                          for action in ACTIONS if action.startswith("label.") for label in LABELS]
            for action, resource in questions:
                want = expected(engine, address, tenant_id, action, resource)
                response = client.post(EVALUATION, json=request(address, action, resource, tenant_id))
                assert 200 == response.status_code, response.text
                assert "application/json" == response.headers["content-type"]
                if response.json() != want:
                    wrong.append((address, tenant_id, action, resource, response.json(), want))
                outcomes[action.partition(".")[0]].add(want["decision"])
        assert [] == wrong
        assert all(seen == {True, False} for seen in outcomes.values()), outcomes  # no family is vacuous

    def test_trusted_dmarc_pass_delivers_untagged(self, engine: TrustEngine, client: httpx.Client) -> None:
        """An MTO member's mail is untagged only with the boundary's DMARC pass; context is the capped trust."""
        resource = resource_for("mail.deliver_untagged", auth=auth_for("cameron@fabrikam.com"))
        passed = client.post(EVALUATION, json=request("cameron@fabrikam.com", "mail.deliver_untagged", resource))
        bare = client.post(EVALUATION, json=request("cameron@fabrikam.com", "mail.deliver_untagged"))
        assert (True, "mto_member") == (passed.json()["decision"], passed.json()["context"]["trust"])
        assert (False, "external") == (bare.json()["decision"], bare.json()["context"]["trust"])  # capped
        assert "auth_pass" in passed.json()["context"]["reasons"]
        assert passed.json() == expected(engine, "cameron@fabrikam.com", None, "mail.deliver_untagged", resource)

    def test_tenant_id_is_read_from_subject_properties(self, client: httpx.Client) -> None:
        """subject.properties.tenant_id is the caller's tenant: the right one keeps trust, another one loses it."""
        def ask(action: str, tenant_id: str) -> dict[str, Any]:
            body = request("cameron@fabrikam.com", action, tenant_id=tenant_id)
            return dict(client.post(EVALUATION, json=body).json())

        right, other = ask("dlp.share", ACTIVE), ask("dlp.share", LITWARE)
        assert (True, "mto_member") == (right["decision"], right["context"]["trust"])
        assert (False, "untrusted") == (other["decision"], other["context"]["trust"])
        assert "tenant_id_verified" in ask("teams.chat", ACTIVE)["context"]["reasons"]
        assert "tenant_id_mismatch" in ask("teams.chat", LITWARE)["context"]["reasons"]

    def test_context_names_what_it_was_decided_from(self, engine: TrustEngine, client: httpx.Client) -> None:
        """context is exactly trust, reasons, snapshot_id and policy_fingerprint."""
        context = client.post(EVALUATION, json=request("megan@contoso.com", "teams.chat")).json()["context"]
        assert ["trust", "reasons", "snapshot_id", "policy_fingerprint"] == list(context)
        assert (SAMPLE.id, POLICY.fingerprint) == (context["snapshot_id"], context["policy_fingerprint"])
        assert (engine.snapshot.id, engine.policy.fingerprint) == (SAMPLE.id, POLICY.fingerprint)

    def test_unknown_fields_are_ignored(self, engine: TrustEngine, client: httpx.Client) -> None:
        """Unknown fields at the top level, in the subject, the action, the resource and a batch item."""
        plain = request("cameron@fabrikam.com", "dlp.share")
        extended = request("cameron@fabrikam.com", "dlp.share", foo=1, futureField={"a": [1]},
                           context={"time": "1985-10-26T01:22-07:00"})
        extended["subject"]["ip_address"] = "172.217.22.14"
        extended["subject"]["properties"] = {"department": "Sales"}
        extended["action"]["properties"] = {"method": "GET"}
        extended["resource"]["properties"] = {"owner": "megan@contoso.com"}
        want = expected(engine, "cameron@fabrikam.com", None, "dlp.share", plain["resource"])
        assert want == client.post(EVALUATION, json=plain).json() == client.post(EVALUATION, json=extended).json()
        batch = client.post(EVALUATIONS, json={"evaluations": [{**extended, "futureField": True}],
                                               "options": {"another_option": "value"}, "foo": None})
        assert {"evaluations": [want]} == batch.json()

    @settings(max_examples=40, deadline=None)
    @given(address=st.one_of(st.sampled_from(ADDRESSES), st.emails(), st.text(max_size=40)),
           tenant_id=st.sampled_from([None, ACTIVE, LITWARE, "not-a-tenant"]), action=st.sampled_from(ACTIONS),
           label=st.sampled_from(LABELS),
           auth=st.one_of(st.none(), st.sampled_from([auth_for("cameron@fabrikam.com"), auth_for("x@contoso.com"),
                                                      auth_for("cameron@fabrikam.com", "fail")]),
                          st.text(min_size=1, max_size=60), st.lists(st.text(max_size=60), min_size=1, max_size=3)))
    def test_any_question_matches_the_engine(self, served: tuple[Service, httpx.Client], address: str,
                                             tenant_id: str | None, action: str, label: str,
                                             auth: str | list[str] | None) -> None:
        """For any identity and any action the service decides, the answer is the engine's."""
        service, client = served
        resource = resource_for(action, label=label, auth=auth)
        response = client.post(EVALUATION, json=request(address, action, resource, tenant_id))
        assert 200 == response.status_code, response.text
        assert expected(service.engine, address, tenant_id, action, resource) == response.json()


# -- the batch ----------------------------------------------------------------------------------------------------

class TestBatch:
    """POST /access/v1/evaluations: AuthZEN 1.0 section 7."""

    def test_defaults_and_order(self, engine: TrustEngine, client: httpx.Client) -> None:
        """An item inherits each top-level entity it lacks (an empty item all of them); answers keep the order."""
        body = {"subject": {"type": "user", "id": "cameron@fabrikam.com"}, "action": {"name": "dlp.share"},
                "resource": resource_for("dlp.share"), "context": {"time": "now"},
                "evaluations": [{}, {"subject": {"type": "user", "id": "pat@fabrikam.com"}},
                                {"action": {"name": "teams.chat"}, "resource": resource_for("teams.chat")},
                                {"subject": {"type": "user", "id": "megan@contoso.com"},
                                 "action": {"name": "label.EDIT"}, "resource": resource_for("label.EDIT")},
                                {"context": {"other": True}}]}
        want = [expected(engine, "cameron@fabrikam.com", None, "dlp.share", resource_for("dlp.share")),
                expected(engine, "pat@fabrikam.com", None, "dlp.share", resource_for("dlp.share")),
                expected(engine, "cameron@fabrikam.com", None, "teams.chat", resource_for("teams.chat")),
                expected(engine, "megan@contoso.com", None, "label.EDIT", resource_for("label.EDIT")),
                expected(engine, "cameron@fabrikam.com", None, "dlp.share", resource_for("dlp.share"))]
        response = client.post(EVALUATIONS, json=body)
        assert 200 == response.status_code and {"evaluations": want} == response.json()
        assert [True, False, True, True, True] == [item["decision"] for item in want]  # the order is visible

        order = [{"subject": {"type": "user", "id": address}} for address in ADDRESSES]
        answers = client.post(EVALUATIONS, json={**body, "evaluations": order}).json()["evaluations"]
        assert [expected(engine, a, None, "dlp.share", resource_for("dlp.share")) for a in ADDRESSES] == answers

    def test_an_item_replaces_a_default_whole(self, engine: TrustEngine, client: httpx.Client) -> None:
        """An item's subject without properties does not inherit the top-level subject.properties (no merging)."""
        body = {"subject": {"type": "user", "id": "cameron@fabrikam.com", "properties": {"tenant_id": LITWARE}},
                "action": {"name": "dlp.share"}, "resource": resource_for("dlp.share"),
                "evaluations": [{}, {"subject": {"type": "user", "id": "cameron@fabrikam.com"}},
                                {"resource": {"type": "document", "id": "other.docx"}}]}
        inherited, replaced, kept = client.post(EVALUATIONS, json=body).json()["evaluations"]
        assert inherited == kept == expected(engine, "cameron@fabrikam.com", LITWARE, "dlp.share",
                                             resource_for("dlp.share"))
        assert replaced == expected(engine, "cameron@fabrikam.com", None, "dlp.share", resource_for("dlp.share"))
        assert ("untrusted", "mto_member") == (inherited["context"]["trust"], replaced["context"]["trust"])

    @pytest.mark.parametrize("evaluations", [None, []], ids=["absent", "empty"])
    def test_no_items_is_one_evaluation(self, engine: TrustEngine, client: httpx.Client,
                                        evaluations: list[Any] | None) -> None:
        """Without items the request is a single evaluation and so is the answer (section 7.1, CERT c-3-4-2/3)."""
        body = request("cameron@fabrikam.com", "teams.chat")
        if evaluations is not None:
            body["evaluations"] = evaluations
        response = client.post(EVALUATIONS, json=body)
        assert 200 == response.status_code
        assert expected(engine, "cameron@fabrikam.com", None, "teams.chat", body["resource"]) == response.json()
        del body["resource"]
        assert_error(client.post(EVALUATIONS, json=body), 400, "resource is missing")

    def test_a_bad_item_is_decided_false_and_the_others_are_decided(self, engine: TrustEngine,
                                                                    client: httpx.Client) -> None:
        """Item errors: decision false, context.error with status 400 and a message naming the field and value."""
        good = request("cameron@fabrikam.com", "dlp.share")
        body = {"evaluations": [good, {**good, "action": {"name": "can_read"}}, {"subject": good["subject"]},
                                {**good, "subject": {"type": "user"}}, {**good, "action": {"name": 7}},
                                {**good, "resource": {"type": "message", "id": "m"}},
                                {**good, "action": {"name": "label.VIEW"}, "resource": {"type": "label", "id": "Nope"}},
                                "not an object", good]}
        response = client.post(EVALUATIONS, json=body)
        assert 200 == response.status_code
        items = response.json()["evaluations"]
        want = expected(engine, "cameron@fabrikam.com", None, "dlp.share", good["resource"])
        assert len(body["evaluations"]) == len(items) and items[0] == items[-1] == want
        assert_item_error(items[1], 1, "action.name", "'can_read'")
        assert_item_error(items[2], 2, "action is missing")
        assert_item_error(items[3], 3, "subject.id is missing")
        assert_item_error(items[4], 4, "action.name must be a string", "7")
        assert_item_error(items[5], 5, "resource.type", "'message'", "dlp.share")
        assert_item_error(items[6], 6, "resource.id", "'Nope'")
        assert_item_error(items[7], 7, "'not an object'")

    def test_semantics(self, client: httpx.Client) -> None:
        """execute_all answers every item; deny_on_first_deny stops after the first deny or error (the && of the
        items), permit_on_first_permit after the first permit (the ||): later items are left out (7.1.2.1.1)."""
        permit, deny = request("megan@contoso.com", "dlp.share"), request("someone@example.org", "dlp.share")
        error = {**permit, "action": {"name": "can_read"}}

        def decisions(semantic: str | None, *items: dict[str, Any]) -> list[bool | str]:
            body: dict[str, Any] = {"evaluations": list(items)}
            if semantic is not None:
                body["options"] = {"evaluations_semantic": semantic}
            answers = client.post(EVALUATIONS, json=body).json()["evaluations"]
            return ["error" if "error" in a["context"] else a["decision"] for a in answers]

        assert [True, False, True] == decisions(None, permit, deny, permit)
        assert [True, False, True] == decisions("execute_all", permit, deny, permit)
        assert [True, False] == decisions("deny_on_first_deny", permit, deny, permit)
        assert [True, "error"] == decisions("deny_on_first_deny", permit, error, permit)
        assert [True, True, True] == decisions("deny_on_first_deny", permit, permit, permit)
        assert [True] == decisions("permit_on_first_permit", permit, deny, permit)
        assert [False, "error", True] == decisions("permit_on_first_permit", deny, error, permit, deny)
        assert [False, False] == decisions("permit_on_first_permit", deny, deny)
        assert [True, "error", False] == decisions("execute_all", permit, error, deny)

    @pytest.mark.parametrize("options", [{"evaluations_semantic": "all"}, {"evaluations_semantic": 1}, "fast"])
    def test_an_unknown_semantic_is_400(self, client: httpx.Client, options: object) -> None:
        body = {"evaluations": [request("megan@contoso.com", "dlp.share")], "options": options}
        shown = repr(options["evaluations_semantic"]) if isinstance(options, dict) else repr(options)
        assert_error(client.post(EVALUATIONS, json=body), 400, "options", shown)

    def test_item_limit(self, client: httpx.Client) -> None:
        """1,000 items are decided; 1,001 are a 400 naming the count and the limit; evaluations must be a list."""
        item = request("megan@contoso.com", "dlp.share")
        full = client.post(EVALUATIONS, json={"evaluations": [item] * MAX_ITEMS})
        assert 200 == full.status_code and MAX_ITEMS == len(full.json()["evaluations"])
        assert_error(client.post(EVALUATIONS, json={"evaluations": [item] * (MAX_ITEMS + 1)}), 400,
                     "evaluations", str(MAX_ITEMS + 1), str(MAX_ITEMS))
        assert_error(client.post(EVALUATIONS, json={"evaluations": {"0": item}}), 400, "evaluations", "{'0'")

    def test_every_item_from_one_state(self) -> None:
        """While another thread swaps snapshot and policy, each 1,000-item batch is decided from one state."""
        engine = TrustEngine(SAMPLE, POLICY)
        cameron = SAMPLE.lookup("cameron@fabrikam.com")[0].id
        disabled = SAMPLE.with_delta([{"value": [{"id": cameron, "accountEnabled": False}]}])
        classic = Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY], "untagged_at": "internal"}})
        states = [(disabled, classic), (SAMPLE, POLICY)]
        swaps, stop = [0], threading.Event()

        def swap() -> None:
            while not stop.is_set():
                snapshot, policy = states[swaps[0] % 2]
                engine.update(snapshot, policy=policy)
                swaps[0] += 1
                time.sleep(0.0005)

        items = [{"subject": {"type": "user", "id": ADDRESSES[i % len(ADDRESSES)]}} for i in range(MAX_ITEMS)]
        body = {"action": {"name": "dlp.share"}, "resource": resource_for("dlp.share"), "evaluations": items}
        seen, overlapped = set(), 0
        with serving(engine) as (_, client):
            updater = threading.Thread(target=swap)
            updater.start()
            try:
                for _ in range(4):
                    before = swaps[0]
                    answers = client.post(EVALUATIONS, json=body).json()["evaluations"]
                    overlapped += swaps[0] > before
                    states_used = {(a["context"]["snapshot_id"], a["context"]["policy_fingerprint"]) for a in answers}
                    assert 1 == len(states_used), states_used
                    seen |= states_used
                    trust = {a["context"]["trust"] for a, i in zip(answers, items, strict=True)
                             if i["subject"]["id"] == "cameron@fabrikam.com"}
                    assert 1 == len(trust)
            finally:
                stop.set()
                updater.join()
        assert overlapped >= 1 and seen <= {(s.id, p.fingerprint) for s, p in states}


# -- errors -------------------------------------------------------------------------------------------------------

GOOD = request("megan@contoso.com", "dlp.share")

BAD_BODIES: list[tuple[str, object, tuple[str, ...]]] = [
    ("array", [GOOD], ("the request body", "must be a JSON object")),
    ("string", "alice", ("the request body", "'alice'")),
    ("null", None, ("the request body is missing",)),
    ("no subject", {k: v for k, v in GOOD.items() if k != "subject"}, ("subject is missing",)),
    ("no action", {k: v for k, v in GOOD.items() if k != "action"}, ("action is missing",)),
    ("no resource", {k: v for k, v in GOOD.items() if k != "resource"}, ("resource is missing",)),
    ("subject a string", {**GOOD, "subject": "alice"}, ("subject must be a JSON object", "'alice'")),
    ("no subject.id", {**GOOD, "subject": {"type": "user"}}, ("subject.id is missing",)),
    ("no subject.type", {**GOOD, "subject": {"id": "megan@contoso.com"}}, ("subject.type is missing",)),
    ("subject.id a number", {**GOOD, "subject": {"type": "user", "id": 5}}, ("subject.id must be a string", "5")),
    ("subject.type group", {**GOOD, "subject": {"type": "group", "id": "g"}}, ("subject.type", "'group'", "user")),
    ("properties a list", {**GOOD, "subject": {"type": "user", "id": "a@b.c", "properties": [1]}},
     ("subject.properties", "[1]")),
    ("tenant_id a number", request("a@b.c", "dlp.share", tenant_id=42),  # type: ignore[arg-type]
     ("subject.properties.tenant_id", "42")),
    ("no action.name", {**GOOD, "action": {}}, ("action.name is missing",)),
    ("action.name a number", {**GOOD, "action": {"name": 123}}, ("action.name must be a string", "123")),
    ("unknown action", {**GOOD, "action": {"name": "can_read"}}, ("action.name", "'can_read'", "dlp.share")),
    ("unknown family member", {**GOOD, "action": {"name": "dlp.print"}}, ("action.name", "'dlp.print'")),
    ("unknown teams action", request("a@b.c", "teams.fax", {"type": "teams", "id": "t"}),
     ("action.name", "'teams.fax'", "teams.chat")),
    ("unknown usage right", request("a@b.c", "label.NOPE", {"type": "label", "id": LABELS[0]}),
     ("action.name", "'label.NOPE'", "VIEW")),
    ("unknown label", request("a@b.c", "label.VIEW", {"type": "label", "id": "Top Secret"}),
     ("resource.id", "'Top Secret'", LABELS[0])),
    ("wrong resource type", request("a@b.c", "dlp.share", {"type": "message", "id": "m"}),
     ("resource.type", "'message'", "dlp.share", "'document'")),
    ("mail on a document", request("a@b.c", "mail.deliver_untagged", {"type": "document", "id": "d"}),
     ("resource.type", "'document'", "mail.deliver_untagged", "'message'")),
    ("no resource.id", {**GOOD, "resource": {"type": "document"}}, ("resource.id is missing",)),
    ("resource.type a list", {**GOOD, "resource": {"type": ["document"], "id": "d"}},
     ("resource.type must be a string", "['document']")),
    ("bad authentication_results", request("a@b.c", "mail.deliver_untagged", {
        "type": "message", "id": "m", "properties": {"authentication_results": [1]}}),
     ("resource.properties.authentication_results", "[1]")),
    ("context a string", {**GOOD, "context": "x"}, ("context must be a JSON object", "'x'")),
    ("resource.properties a string", {**GOOD, "resource": {"type": "document", "id": "d", "properties": "x"}},
     ("resource.properties must be a JSON object",)),
    ("action.properties a string", {**GOOD, "action": {"name": "dlp.share", "properties": "x"}},
     ("action.properties must be a JSON object",)),
]


class TestErrors:
    """Every error is its status with exactly ``{"error": message}``, the message naming the field and value."""

    @pytest.mark.parametrize(("body", "named"), [(b, n) for _, b, n in BAD_BODIES], ids=[i for i, _, _ in BAD_BODIES])
    def test_bad_evaluation_is_400(self, client: httpx.Client, body: object, named: tuple[str, ...]) -> None:
        response = client.post(EVALUATION, content=json.dumps(body), headers={"content-type": "application/json"})
        assert_error(response, 400, *named)

    @pytest.mark.parametrize(("content", "named"), [(b"{", "not JSON"), (b"", "not JSON"),
                                                    (b"\xff\xfe{}", "not JSON"), (b'{"subject": }', "not JSON")])
    def test_malformed_json_is_400(self, client: httpx.Client, content: bytes, named: str) -> None:
        for path in (EVALUATION, EVALUATIONS, "/v1/check"):
            assert_error(client.post(path, content=content, headers={"content-type": "application/json"}), 400,
                         named)

    def test_deeply_nested_json_is_400(self, client: httpx.Client) -> None:
        """JSON nested past the parser's recursion limit is bad input (AuthZEN 11.7 'nested JSON attacks'): 400,
        not a 500 with a traceback in the log for every such request."""
        for content in (b"[" * 100_000, b'{"subject": ' + b"[" * 990 + b"]" * 990 + b"}"):
            for path in (EVALUATION, EVALUATIONS, "/v1/check"):
                assert_error(client.post(path, content=content, headers={"content-type": "application/json"}), 400)

    def test_a_lone_surrogate_is_400_not_500(self, client: httpx.Client) -> None:
        """An identity with an unpaired surrogate escape (not I-JSON, RFC 7493 2.1; AuthZEN 11.5) is a 400: the
        answer of /v1/check echoes the identity and cannot be encoded as UTF-8."""
        content = b'{"identities": ["\\ud800@fabrikam.com"]}'
        assert_error(client.post("/v1/check", content=content, headers={"content-type": "application/json"}), 400)

    @pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                              "application/jsonx"])
    def test_wrong_content_type_is_400(self, client: httpx.Client, content_type: str | None) -> None:
        headers = {} if content_type is None else {"content-type": content_type}
        response = client.post(EVALUATION, content=json.dumps(GOOD), headers=headers)
        assert_error(response, 400, "Content-Type", content_type or "none", "application/json")
        charset = client.post(EVALUATION, content=json.dumps(GOOD),
                              headers={"content-type": "Application/JSON; charset=utf-8"})
        assert 200 == charset.status_code

    def test_unknown_path_is_404(self, client: httpx.Client) -> None:
        for method, path in (("GET", "/"), ("POST", "/access/v1/evaluation/"), ("POST", "/access/v2/evaluation"),
                             ("GET", "/access/v1/search/subject")):
            assert_error(client.request(method, path), 404, repr(path))

    @pytest.mark.parametrize(("method", "path", "allow"), [
        ("GET", EVALUATION, "POST"), ("PUT", EVALUATIONS, "POST"), ("GET", "/v1/check", "POST"),
        ("POST", "/healthz", "GET, HEAD"), ("DELETE", "/metrics", "GET, HEAD"),
        ("POST", "/.well-known/authzen-configuration", "GET, HEAD"), ("OPTIONS", EVALUATION, "POST")])
    def test_wrong_method_is_405_with_allow(self, client: httpx.Client, method: str, path: str, allow: str) -> None:
        response = client.request(method, path)
        assert_error(response, 405, path, method, allow)
        assert allow == response.headers["allow"]
        assert "access-control-allow-origin" not in response.headers

    def test_head_on_a_get_endpoint(self, client: httpx.Client) -> None:
        response = client.head("/healthz")
        assert 200 == response.status_code and b"" == response.content

    def test_body_over_1_mib_is_413(self, client: httpx.Client) -> None:
        """With a Content-Length (refused before reading) and chunked (refused once past the limit)."""
        big = json.dumps({**GOOD, "context": {"pad": "x" * MAX_BODY}}).encode()
        headers = {"content-type": "application/json", "x-request-id": "big-1"}
        sized = client.post(EVALUATION, content=big, headers=headers)
        assert_error(sized, 413, str(MAX_BODY))
        assert "big-1" == sized.headers["x-request-id"]

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 64 << 10):
                yield big[start:start + (64 << 10)]

        chunked = client.post(EVALUATION, content=chunks(), headers=headers)
        assert "content-length" not in chunked.request.headers and "chunked" == chunked.request.headers[
            "transfer-encoding"]
        assert_error(chunked, 413, str(MAX_BODY))
        head, tail = json.dumps(GOOD).encode()[:-1] + b', "context": {"pad": "', b'"}}'
        exact = head + b"x" * (MAX_BODY - len(head) - len(tail)) + tail
        assert MAX_BODY == len(exact) and json.loads(exact)["subject"] == GOOD["subject"]
        assert 200 == client.post(EVALUATION, content=exact, headers=headers).status_code

    def test_internal_error_is_a_json_500_and_logged(self, client: httpx.Client, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
        """An exception inside a decision answers 500 {"error": ...} without a traceback; the log has it."""
        from mtotrust.service import _protocol

        def broken(*args: object) -> dict[str, Any]:
            raise RuntimeError("boom: a secret detail")

        monkeypatch.setattr(_protocol, "_decide", broken)
        with caplog.at_level(logging.ERROR, logger="mtotrust.service"):
            response = client.post(EVALUATION, json=GOOD, headers={"x-request-id": "r-500"})  # logged, then answered
        message = assert_error(response, 500, "internal error")
        assert "boom" not in message and "RuntimeError" not in response.text
        assert "r-500" == response.headers["x-request-id"]
        logged = [r for r in caplog.records if r.name == "mtotrust.service"]
        assert logged and logged[0].exc_info is not None and "boom" in str(logged[0].exc_info[1])

    def test_request_id_is_echoed(self, client: httpx.Client) -> None:
        """X-Request-ID comes back on a success and on every error; without one nothing fails."""
        for method, path, body in (("POST", EVALUATION, GOOD), ("POST", EVALUATION, {}), ("GET", "/nowhere", None),
                                   ("GET", EVALUATION, None), ("POST", EVALUATIONS, {"evaluations": [GOOD]}),
                                   ("GET", "/healthz", None), ("GET", "/metrics", None)):
            response = client.request(method, path, json=body, headers={"X-Request-ID": "bfe9eb29-ab87"})
            assert "bfe9eb29-ab87" == response.headers["x-request-id"], (method, path, response.status_code)
        assert "x-request-id" not in client.post(EVALUATION, json=GOOD).headers


class TestHostileInput:
    def test_json_constants_are_400(self, client: httpx.Client) -> None:
        """NaN and Infinity, which Python's json reads but JSON has not, are refused."""
        for constant in ("NaN", "Infinity", "-Infinity"):
            body = json.dumps(GOOD)[:-1] + f', "context": {{"x": {constant}}}}}'
            assert_error(client.post(EVALUATION, content=body, headers={"content-type": "application/json"}), 400,
                         constant)

    def test_a_huge_bad_subject_costs_little(self, client: httpx.Client) -> None:
        """A batch whose default subject is a huge bad value answers every item at once: the error quotes a bounded
        part of the value, so it is not rebuilt whole for each of the 1,000 items."""
        big = [0] * 100_000
        body = {"subject": big, "action": {"name": "dlp.share"}, "resource": {"type": "document", "id": "d"},
                "evaluations": [{}] * 1000}
        response = client.post(EVALUATIONS, json=body, timeout=10)
        assert 200 == response.status_code
        items = response.json()["evaluations"]
        assert 1000 == len(items) and all(not item["decision"] for item in items)
        assert len(items[0]["context"]["error"]["message"]) < 200

    def test_a_long_path_is_quoted_short(self, client: httpx.Client) -> None:
        """A 404 quotes a bounded part of an unknown path, not the whole."""
        response = client.get("/" + "x" * 20_000)
        assert 404 == response.status_code and len(response.content) < 300

    def test_vary_origin_on_every_answer_with_cors(self, engine: TrustEngine) -> None:
        """With allowed origins, every answer varies by Origin (a cache in between must not mix them)."""
        with serving(engine, allow_origins=[ORIGIN]) as (_, client):
            assert "origin" == client.get("/healthz").headers["vary"].lower()
            assert "origin" == client.get("/healthz", headers={"origin": "https://other.example"}).headers["vary"]


class TestToken:
    """With a token every endpoint but /healthz needs ``Authorization: Bearer <token>``."""

    def test_token(self, engine: TrustEngine) -> None:
        with serving(engine, token="  s3cret-token \n") as (_, client):
            for path, body in ((EVALUATION, GOOD), (EVALUATIONS, {"evaluations": [GOOD]}),
                               ("/v1/check", {"identities": ["megan@contoso.com"]})):
                for authorization in (None, "Bearer wrong", "Bearer s3cret-token-and-more", "Basic s3cret-token",
                                      "s3cret-token", "Bearer"):
                    headers = {"x-request-id": "t1"} if authorization is None else {
                        "authorization": authorization, "x-request-id": "t1"}
                    denied = client.post(path, json=body, headers=headers)
                    assert_error(denied, 401, "bearer token")
                    assert denied.headers["www-authenticate"].startswith("Bearer")
                    assert "t1" == denied.headers["x-request-id"]
                for authorization in ("Bearer s3cret-token", "bearer s3cret-token", "BEARER  s3cret-token"):
                    assert 200 == client.post(path, json=body, headers={"authorization": authorization}).status_code
            for path in ("/metrics", "/.well-known/authzen-configuration"):
                assert_error(client.get(path), 401, "bearer token")
                assert 200 == client.get(path, headers={"authorization": "Bearer s3cret-token"}).status_code
            assert 200 == client.get("/healthz").status_code

    @pytest.mark.parametrize("token", ["", "   ", "\n"])
    def test_an_empty_token_is_refused(self, engine: TrustEngine, token: str) -> None:
        with pytest.raises(ServiceError, match="empty"):
            Service(engine, port=0, token=token)


class TestListening:
    """Where the service may listen, and the sockets it accepts."""

    def test_a_non_loopback_address_needs_a_token(self, engine: TrustEngine) -> None:
        with pytest.raises(ServiceError, match=r"'0\.0\.0\.0'.*--token-file"):
            Service(engine, host="0.0.0.0", port=0)
        with pytest.raises(ServiceError):
            Service(engine, host="10.0.0.1", port=0)
        service = Service(engine, host="0.0.0.0", port=0, token="t0ken")
        _, port = service.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as client:
                assert 200 == client.post(EVALUATION, json=GOOD, headers={"authorization": "Bearer t0ken"}).status_code
        finally:
            service.stop()

    @pytest.mark.parametrize(("host", "loopback"), [
        ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
        ("10.0.0.1", False), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("pdp.contoso.com", False),
        ("localhost.contoso.com", False), ("", False)])
    def test_is_loopback(self, host: str, loopback: bool) -> None:
        assert loopback is is_loopback(host)

    def test_accepted_sockets_disable_nagle(self, served: tuple[Service, httpx.Client]) -> None:
        """TCP_NODELAY is on for the server side of an accepted keep-alive connection.

        uvloop (like asyncio) already sets it on every TCP transport, so this holds whichever of the two sets it.
        """
        service, client = served
        assert 200 == client.get("/healthz").status_code  # the connection stays open (keep-alive)
        server: Any = service._server._server  # uvicorn.Server
        connections = list(server.server_state.connections)
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert 0 != sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    def test_start_returns_the_address(self, engine: TrustEngine) -> None:
        service = Service(engine, port=0)
        host, port = service.start()
        try:
            assert ("127.0.0.1", f"http://127.0.0.1:{port}") == (host, service.url) and port > 0
        finally:
            service.stop()


# -- discovery, the spec's examples -------------------------------------------------------------------------------

class TestDiscovery:
    """GET /.well-known/authzen-configuration (section 9)."""

    @staticmethod
    def document(base: str) -> dict[str, str]:
        return {"policy_decision_point": base, "access_evaluation_endpoint": base + EVALUATION,
                "access_evaluations_endpoint": base + EVALUATIONS}

    def test_base_from_the_host_header(self, served: tuple[Service, httpx.Client]) -> None:
        service, client = served
        response = client.get("/.well-known/authzen-configuration")
        assert 200 == response.status_code and "application/json" == response.headers["content-type"]
        assert self.document(service.url) == response.json()
        named = client.get("/.well-known/authzen-configuration", headers={"host": "pdp.example.com:9443"})
        assert self.document("http://pdp.example.com:9443") == named.json()
        odd = client.get("/.well-known/authzen-configuration", headers={"host": "evil.example/path?x"})
        assert self.document(service.url) == odd.json()  # not a host name: the socket's address

    @pytest.mark.parametrize("public_url", ["https://pdp.contoso.com", "https://pdp.contoso.com/",
                                            "https://pdp.contoso.com//"])
    def test_base_from_public_url(self, engine: TrustEngine, public_url: str) -> None:
        with serving(engine, public_url=public_url) as (_, client):
            response = client.get("/.well-known/authzen-configuration", headers={"host": "other.example"})
            assert self.document("https://pdp.contoso.com") == response.json()


def _effective(body: dict[str, Any], item: dict[str, Any], key: str) -> Any:
    return item.get(key, body.get(key))


class TestSpecExamples:
    """The request examples of AuthZEN 1.0 (tests/data/authzen_examples.json), as given and adapted to us."""

    @pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
    def test_as_given(self, client: httpx.Client, example: dict[str, Any]) -> None:
        """The spec's actions (can_read, read ...) are not ours: 400 for one evaluation, item errors in a batch."""
        body = example["body"]
        headers = {"x-request-id": example["request_id"]} if "request_id" in example else {}
        response = client.post(example["endpoint"], json=body, headers=headers)
        if "request_id" in example:
            assert example["request_id"] == response.headers["x-request-id"]
        if example["endpoint"] == EVALUATION:
            assert_error(response, 400, "action.name", repr(body["action"]["name"]))
            return
        assert 200 == response.status_code, response.text
        answers = response.json()["evaluations"]
        semantic = body.get("options", {}).get("evaluations_semantic", "execute_all")
        assert (1 if semantic == "deny_on_first_deny" else len(body["evaluations"])) == len(answers)
        for index, (item, answer) in enumerate(zip(body["evaluations"], answers, strict=False)):
            subject, action = _effective(body, item, "subject"), _effective(body, item, "action")
            named = ("action.name", repr(action["name"])) if subject["type"] == "user" else (
                "subject.type", repr(subject["type"]))
            assert_item_error(answer, index, *named)

    @pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
    def test_adapted(self, engine: TrustEngine, client: httpx.Client, example: dict[str, Any]) -> None:
        """With our subject, action and resource types in the same structure, every item is decided."""
        def adapt(entities: dict[str, Any], address: str) -> dict[str, Any]:
            adapted = dict(entities)
            if "subject" in entities:
                adapted["subject"] = {"type": "user", "id": address}
            if "action" in entities:
                adapted["action"] = {"name": "dlp.share"}
            if "resource" in entities:
                adapted["resource"] = {"type": "document", "id": entities["resource"]["id"]}
            return adapted

        body = adapt(example["body"], "megan@contoso.com")
        body.setdefault("action", {"name": "dlp.share"})  # the 7.1.2 options example has none anywhere
        if "evaluations" in body:
            addresses = ["megan@contoso.com", "someone@example.org", "cameron@fabrikam.com"]
            body["evaluations"] = [adapt(item, addresses[i % 3]) for i, item in enumerate(body["evaluations"])]
        response = client.post(example["endpoint"], json=body)
        assert 200 == response.status_code, response.text
        if example["endpoint"] == EVALUATION:
            assert expected(engine, "megan@contoso.com", None, "dlp.share", body["resource"]) == response.json()
            return
        want = [expected(engine, _effective(body, item, "subject")["id"], None, "dlp.share", resource_for("dlp.share"))
                for item in body["evaluations"]]
        semantic = body.get("options", {}).get("evaluations_semantic", "execute_all")
        decisions = [w["decision"] for w in want]
        if semantic != "execute_all":
            stop = semantic == "permit_on_first_permit"
            want = want[:decisions.index(stop) + 1] if stop in decisions else want
        assert {"evaluations": want} == response.json()


# -- /v1/check, /healthz, /metrics --------------------------------------------------------------------------------

class TestCheck:
    """POST /v1/check: the array ``mtotrust check --json`` prints."""

    @pytest.mark.parametrize("tenant_id", [None, ACTIVE])
    @pytest.mark.parametrize("auth", [None, f"{BOUNDARY}; dmarc=pass header.from=fabrikam.com",
                                      [f"{BOUNDARY}; dmarc=pass header.from=fabrikam.com", "x; dmarc=fail"]],
                             ids=["no-auth", "string", "list"])
    def test_equals_the_engine_report(self, engine: TrustEngine, client: httpx.Client, tenant_id: str | None,
                                      auth: str | list[str] | None) -> None:
        body: dict[str, Any] = {"identities": [address for address, _, _ in IDENTITIES]}
        if auth is not None:
            body["auth"] = auth
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        response = client.post("/v1/check", json=body)
        assert 200 == response.status_code and "application/json" == response.headers["content-type"]
        want = [engine.report(Identity(address, tenant_id), auth) for address in body["identities"]]
        assert json.loads(json.dumps(want)) == response.json()

    @pytest.mark.parametrize(("body", "named"), [
        ({}, ("identities",)), ({"identities": []}, ("identities", "[]")),
        ({"identities": "megan@contoso.com"}, ("identities", "'megan@contoso.com'")),
        ({"identities": ["a@b.c", 3]}, ("identities[1]", "3")),
        ({"identities": ["a@b.c"], "auth": 5}, ("auth", "5")),
        ({"identities": ["a@b.c"], "auth": ["x", None]}, ("auth", "None")),
        ({"identities": ["a@b.c"], "tenant_id": ["t"]}, ("tenant_id", "['t']")),
        ({"identities": ["a@b.c"] * (MAX_ITEMS + 1)}, ("identities", str(MAX_ITEMS + 1))),
        ([], ("the request body",)),
    ], ids=["empty", "no-items", "a-string", "a-number-item", "auth-number", "auth-null-item", "tenant-list",
            "too-many", "array"])
    def test_bad_bodies_are_400(self, client: httpx.Client, body: object, named: tuple[str, ...]) -> None:
        assert_error(client.post("/v1/check", json=body), 400, *named)


class TestHealth:
    def test_ok(self, client: httpx.Client) -> None:
        response = client.get("/healthz")
        assert 200 == response.status_code and "application/json" == response.headers["content-type"]
        health = response.json()
        assert ["status", "snapshot_id", "snapshot_age_seconds"] == list(health)
        assert ("ok", SAMPLE.id) == (health["status"], health["snapshot_id"])
        assert abs(health["snapshot_age_seconds"] - (time.time() - SAMPLE.taken_at.timestamp())) < 60

    def test_stale(self) -> None:
        """Under [snapshot] max_age shorter than the snapshot's age: 503 "stale" (and /healthz needs no token)."""
        assert time.time() - SAMPLE.taken_at.timestamp() > 1
        with serving(TrustEngine(SAMPLE, Policy.from_data({"snapshot": {"max_age": "1s"}})), token="t") as (_, c):
            response = c.get("/healthz")
            assert 503 == response.status_code
            assert ("stale", SAMPLE.id) == (response.json()["status"], response.json()["snapshot_id"])


METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse Prometheus text exposition 0.0.4 line by line: (name, labels) -> value; comments checked for form."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) [a-z_]+ .+", line), line
            continue
        match = METRIC.fullmatch(line)
        assert match is not None, line
        name, labels, value = match.groups()
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in samples, line
        samples[key] = float(value)
    return samples


class TestMetrics:
    def test_metrics(self) -> None:
        """Decisions by app and outcome are engine.stats()'s; requests by endpoint and status; the histogram."""
        engine = TrustEngine(SAMPLE, POLICY)
        sent = [request("megan@contoso.com", "mail.deliver_untagged"), request("cameron@fabrikam.com", "dlp.share"),
                request("someone@example.org", "dlp.share"), request("someone@example.org", "dlp.share"),
                request("pat@fabrikam.com", "teams.chat"), request("megan@contoso.com", "label.VIEW")]
        with serving(engine) as (_, client):
            for body in sent:
                assert 200 == client.post(EVALUATION, json=body).status_code
            assert 200 == client.post(EVALUATIONS, json={"evaluations": sent[:2]}).status_code
            assert 400 == client.post(EVALUATION, json={}).status_code
            assert 404 == client.get("/nowhere").status_code
            assert 200 == client.get("/healthz").status_code
            response = client.get("/metrics")
            stats = engine.stats()
            second = parse_metrics(client.get("/metrics").text)
        assert 200 == response.status_code
        assert "text/plain; version=0.0.4; charset=utf-8" == response.headers["content-type"]
        samples = parse_metrics(response.text)

        decisions = {tuple(key.split(":", 1)): float(n) for key, n in stats.decisions.items()}
        assert decisions == {(dict(labels)["app"], dict(labels)["outcome"]): value
                             for (name, labels), value in samples.items() if name == "mtotrust_decisions_total"}
        by_app = Counter[str]()
        for (app, _), n in decisions.items():
            by_app[app] += int(n)
        assert {"mail": 2, "dlp": 4, "teams": 1, "labels": 1} == by_app  # one per decided evaluation

        requests = {(dict(labels)["endpoint"], dict(labels)["status"]): value
                    for (name, labels), value in samples.items() if name == "mtotrust_requests_total"}
        assert {(EVALUATION, "200"): 6, (EVALUATIONS, "200"): 1, (EVALUATION, "400"): 1, ("other", "404"): 1,
                ("/healthz", "200"): 1} == requests
        assert 1 == second[("mtotrust_requests_total", frozenset({("endpoint", "/metrics"), ("status", "200")}))]

        for endpoint in {endpoint for endpoint, _ in requests}:
            where = ("endpoint", endpoint)
            buckets = sorted(((float(dict(labels)["le"]), value) for (name, labels), value in samples.items()
                              if name == "mtotrust_request_duration_seconds_bucket" and where in labels))
            count = samples[("mtotrust_request_duration_seconds_count", frozenset({where}))]
            assert buckets[-1] == (float("inf"), count)
            assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
            assert count == sum(v for (e, _), v in requests.items() if e == endpoint)
            assert samples[("mtotrust_request_duration_seconds_sum", frozenset({where}))] > 0

        assert stats.cache_hits > 0
        assert stats.cache_hits == samples[("mtotrust_cache_hits_total", frozenset())]
        assert stats.cache_misses == samples[("mtotrust_cache_misses_total", frozenset())]
        info = frozenset({("snapshot_id", SAMPLE.id), ("policy_fingerprint", POLICY.fingerprint)})
        assert 1 == samples[("mtotrust_snapshot_info", info)]
        assert abs(stats.snapshot_age_seconds - samples[("mtotrust_snapshot_age_seconds", frozenset())]) < 5


# -- reload -------------------------------------------------------------------------------------------------------

def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class TestReload:
    def test_reload_under_load(self) -> None:
        """service.reload(policy=...) while 8 threads ask continuously: none fails; each answer has the old or
        the new fingerprint, and every request sent after reload returned has the new one."""
        engine = TrustEngine(SAMPLE, POLICY)
        new = Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY], "untagged_at": "internal"}})
        assert new.fingerprint != POLICY.fingerprint
        reloaded, stop = threading.Event(), threading.Event()
        results: list[tuple[bool, int, str | None]] = []
        lock = threading.Lock()

        def ask(service: Service) -> None:
            with httpx.Client(base_url=service.url, timeout=30, trust_env=False) as client:
                while not stop.is_set():
                    after = reloaded.is_set()
                    try:
                        response = client.post(EVALUATION, json=request("cameron@fabrikam.com", "dlp.share"))
                        status, fingerprint = response.status_code, response.json()["context"]["policy_fingerprint"]
                    except (httpx.HTTPError, KeyError, ValueError) as exc:
                        status, fingerprint = -1, repr(exc)
                    with lock:
                        results.append((after, status, fingerprint))

        with serving(engine) as (service, _):
            threads = [threading.Thread(target=ask, args=(service,)) for _ in range(8)]
            for thread in threads:
                thread.start()
            until(lambda: len(results) >= 50)  # requests answered before the reload (however loaded the machine)
            service.reload(policy=new)
            reloaded.set()
            until(lambda: sum(after for after, _, _ in results) >= 50)
            stop.set()
            for thread in threads:
                thread.join()
        assert results and all(status == 200 for _, status, _ in results), [r for r in results if r[1] != 200][:3]
        assert {fp for _, _, fp in results} == {POLICY.fingerprint, new.fingerprint}
        assert {fp for after, _, fp in results if after} == {new.fingerprint}
        assert engine.policy is new


# -- CORS (/tmp/h/cors.md) ----------------------------------------------------------------------------------------

class TestCors:
    """A browser add-in's origin may call the service: its answers name the origin; its preflight is answered."""

    @pytest.fixture(scope="class")
    @classmethod
    def cors(cls, engine: TrustEngine) -> Iterator[tuple[Service, httpx.Client]]:
        with serving(engine, token="tok", allow_origins=(ORIGIN,)) as running:
            yield running

    @staticmethod
    def assert_cors(response: httpx.Response) -> None:
        assert ORIGIN == response.headers["access-control-allow-origin"]
        assert "origin" == response.headers["vary"].lower()
        assert "x-request-id" == response.headers["access-control-expose-headers"].lower()

    def test_answers_to_an_allowed_origin(self, cors: tuple[Service, httpx.Client]) -> None:
        """Whatever the status: 200, 400, 401, 404, 405."""
        _, client = cors
        token = {"authorization": "Bearer tok", "origin": ORIGIN}
        for response in (client.post(EVALUATION, json=GOOD, headers=token),
                         client.post(EVALUATION, json={}, headers=token),
                         client.post(EVALUATION, json=GOOD, headers={"origin": ORIGIN}),
                         client.get("/nowhere", headers=token), client.get(EVALUATION, headers=token),
                         client.get("/healthz", headers={"origin": ORIGIN})):
            self.assert_cors(response)
        for origin in ("https://evil.example", "https://addin.contoso.com.evil.example", "null"):
            response = client.post(EVALUATION, json=GOOD, headers={**token, "origin": origin})
            assert 200 == response.status_code and "access-control-allow-origin" not in response.headers
        assert "access-control-allow-origin" not in client.post(EVALUATION, json=GOOD, headers={
            "authorization": "Bearer tok"}).headers

    @pytest.mark.parametrize(("path", "method"), [(EVALUATION, "POST"), (EVALUATIONS, "POST"), ("/v1/check", "POST"),
                                                  ("/.well-known/authzen-configuration", "GET"), ("/healthz", "GET"),
                                                  ("/metrics", "GET")])
    def test_preflight(self, cors: tuple[Service, httpx.Client], path: str, method: str) -> None:
        """OPTIONS from an allowed origin (no token): 204 with the route's method, the headers and max-age."""
        _, client = cors
        response = client.options(path, headers={"origin": ORIGIN, "access-control-request-method": method,
                                                 "access-control-request-headers": "authorization, content-type"})
        assert 204 == response.status_code and b"" == response.content
        self.assert_cors(response)
        assert method == response.headers["access-control-allow-methods"]
        assert "authorization, content-type, x-request-id" == response.headers["access-control-allow-headers"]
        assert "600" == response.headers["access-control-max-age"]

    def test_preflight_without_an_allowed_origin_is_405(self, cors: tuple[Service, httpx.Client]) -> None:
        _, client = cors
        for headers in ({}, {"origin": "https://evil.example"}):
            response = client.options(EVALUATION, headers={**headers, "authorization": "Bearer tok"})
            assert_error(response, 405, "OPTIONS")
            assert "POST" == response.headers["allow"]
            assert not any(name.startswith("access-control-") for name in response.headers)

    def test_an_empty_string_is_one_empty_value(self, engine: TrustEngine, client: httpx.Client) -> None:
        """authentication_results "" is one (empty, so untrusted) value, as engine.mail(identity, "") reads it:
        only "no values" ([]) is read as absent."""
        resource = resource_for("mail.deliver_untagged", auth="")
        answer = client.post(EVALUATION, json=request("cameron@fabrikam.com", "mail.deliver_untagged", resource))
        assert expected(engine, "cameron@fabrikam.com", None, "mail.deliver_untagged", resource) == answer.json()
        assert "auth_header_untrusted" in answer.json()["context"]["reasons"]

    def test_empty_authentication_results_are_absent(self, engine: TrustEngine, client: httpx.Client) -> None:
        """resource.properties.authentication_results [] is read as absent: reason auth_missing."""
        resource = resource_for("mail.deliver_untagged", auth=[])
        answer = client.post(EVALUATION, json=request("cameron@fabrikam.com", "mail.deliver_untagged", resource))
        assert 200 == answer.status_code
        assert expected(engine, "cameron@fabrikam.com", None, "mail.deliver_untagged",
                        resource_for("mail.deliver_untagged")) == answer.json()
        assert "auth_missing" in answer.json()["context"]["reasons"]
