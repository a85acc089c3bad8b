"""The decision service's requests and answers, apart from HTTP: AuthZEN 1.0 evaluations and ``/v1/check``.

Each function takes the parsed JSON body and returns the JSON-ready answer, or raises :exc:`RequestError` (a ``400``
naming the field and the value). Validation follows AuthZEN 1.0 section 10.1.1: ``subject``, ``action`` and
``resource`` are required with their ``type``/``id``/``name`` strings, ``properties`` and ``context`` are optional
objects, unknown fields are ignored, and a ``null`` counts as absent (section 11.5: nulls are omitted).

The batch follows section 7: the top-level ``subject``, ``action``, ``resource`` and ``context`` are defaults that
an item replaces whole (no merging of ``properties``); with no items or none at all it is a single evaluation; a bad
item answers ``decision: false`` with ``context.error`` and the others are decided; ``deny_on_first_deny`` and
``permit_on_first_permit`` stop after the first deny (an error counts as one) or permit, and the answer lists the
items decided so far. Every decision of a request comes from one engine state (:meth:`TrustEngine.pinned`).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from mtotrust._engine import TrustEngine
from mtotrust._errors import MtoTrustError
from mtotrust._model import AppDecision, Identity, IdentityLike
from mtotrust._policy import TEAMS_ACTIONS, USAGE_RIGHTS

__all__ = ["ACTIONS", "MAX_ITEMS", "SEMANTICS", "RequestError", "check", "evaluation", "evaluations", "shown"]

MAX_ITEMS = 1000
"""The most items one batch evaluation (or one ``/v1/check``) decides."""

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
"""The values of ``options.evaluations_semantic`` (AuthZEN 1.0 section 7.1.2.1); the first is the default."""

ACTIONS = ("mail.deliver_untagged", "dlp.share", *(f"teams.{a}" for a in TEAMS_ACTIONS),
           *(f"label.{r}" for r in sorted(USAGE_RIGHTS)))
"""Every ``action.name`` the service decides."""

_SHOWN = 80  # characters of an offending value quoted in an error
_BOUNDED = reprlib.Repr()
_BOUNDED.maxlevel, _BOUNDED.maxlist, _BOUNDED.maxdict, _BOUNDED.maxstring, _BOUNDED.maxlong = 2, 4, 4, _SHOWN, 40
_BOUNDED.maxother = _SHOWN
_REPR = _BOUNDED.repr
_Memo = dict[tuple[object, ...], dict[str, Any]]  # a batch's answers by outcome (decision, trust, reasons)


class RequestError(Exception):
    """A request the service cannot decide: the HTTP status and a message naming the field and the value."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def evaluation(engine: TrustEngine, body: object) -> dict[str, Any]:
    """Answer ``POST /access/v1/evaluation``: ``{"decision": bool, "context": {...}}``.

    Raises:
        RequestError: a missing or mistyped required field, an unknown action, label or usage right.
    """
    request = _object(body, "the request body")
    _optional_object(request.get("context"), "context")
    identity = _identity(request.get("subject"))  # checked in the order the request lists them
    return _decide(engine.pinned(), identity, _decider(request.get("action"), request.get("resource")))


def evaluations(engine: TrustEngine, body: object) -> dict[str, Any]:
    """Answer ``POST /access/v1/evaluations``: ``{"evaluations": [decision, ...]}`` in request order.

    Without ``evaluations`` (or with an empty list) the request is one evaluation and so is the answer.

    Raises:
        RequestError: a request that is not an object, ``evaluations`` not a list or over :data:`MAX_ITEMS`
            items, an unknown ``options.evaluations_semantic``; a single evaluation's errors.
    """
    request = _object(body, "the request body")
    items = request.get("evaluations")
    if items is None or items == []:
        return evaluation(engine, request)
    if not isinstance(items, list):
        raise RequestError(f"evaluations must be an array of evaluation objects, not {shown(items)}")
    if len(items) > MAX_ITEMS:
        raise RequestError(f"evaluations has {len(items)} items; at most {MAX_ITEMS} are decided per request: "
                           "split the batch")
    semantic = _semantic(request.get("options"))
    _optional_object(request.get("context"), "context")
    subject, action, resource = (request.get(key) for key in ("subject", "action", "resource"))
    view = engine.pinned()  # every item from one snapshot and policy
    stop = None if semantic == "execute_all" else semantic == "permit_on_first_permit"
    deciders: dict[tuple[int, int], _Decider | str] = {}  # by the (action, resource) objects: checked once
    memo: _Memo = {}
    answers = []
    for index, item in enumerate(items):
        try:
            answer = _item(view, item, (subject, action, resource), deciders, memo)
        except RequestError as exc:
            answer = {"decision": False, "context": {"error": {"status": exc.status,
                                                               "message": f"evaluations[{index}]: {exc.message}"}}}
        answers.append(answer)
        if answer["decision"] is stop:
            break
    return {"evaluations": answers}


def _item(engine: TrustEngine, item: object, defaults: tuple[object, object, object],
          deciders: dict[tuple[int, int], _Decider | str], memo: _Memo) -> dict[str, Any]:
    """Decide one batch item; an item's own key replaces the top-level default whole (AuthZEN 1.0 section 7.1.1).

    ``deciders`` remembers each (action, resource) pair already checked, by object: the defaults are checked once
    per batch, not once per item.
    """
    given = _object(item, "the item")
    subject, action, resource = defaults
    if (own := given.get("subject")) is not None:
        subject = own
    if (own := given.get("action")) is not None:
        action = own
    if (own := given.get("resource")) is not None:
        resource = own
    _optional_object(given.get("context"), "context")
    identity = _identity(subject)
    key = (id(action), id(resource))
    decider = deciders.get(key)
    if decider is None:
        try:
            decider = _decider(action, resource)
        except RequestError as exc:
            decider = exc.message
        deciders[key] = decider
    if isinstance(decider, str):
        raise RequestError(decider)
    return _decide(engine, identity, decider, memo)


def check(engine: TrustEngine, body: object) -> list[dict[str, Any]]:
    """Answer ``POST /v1/check``: the array ``mtotrust check --json`` prints, one object per identity.

    ``auth`` (optional) is one raw ``Authentication-Results`` value or a list of them, topmost first;
    ``tenant_id`` (optional) applies to every identity.

    Raises:
        RequestError: ``identities`` missing, not a list of strings, empty or over :data:`MAX_ITEMS`; a bad
            ``auth`` or ``tenant_id``.
    """
    request = _object(body, "the request body")
    identities = request.get("identities")
    if not isinstance(identities, list) or not identities:
        raise RequestError(f"identities must be a non-empty array of addresses, not {shown(identities)}")
    if len(identities) > MAX_ITEMS:
        raise RequestError(f"identities has {len(identities)} items; at most {MAX_ITEMS} are checked per request")
    for index, identity in enumerate(identities):
        if not isinstance(identity, str):
            raise RequestError(f"identities[{index}] must be a string, not {shown(identity)}")
    auth = _auth(request.get("auth"), "auth")
    tenant_id = _optional_string(request.get("tenant_id"), "tenant_id")
    view = engine.pinned()
    return [view.report(Identity(identity, tenant_id), auth) for identity in identities]


# -- one evaluation ----------------------------------------------------------------------------------------------

_Decider = Callable[[TrustEngine, IdentityLike], tuple[bool, AppDecision]]
"""Decides one subject for a validated action and resource: ``(decision, the app's decision)``."""


def _decide(engine: TrustEngine, identity: IdentityLike, decider: _Decider,
            memo: _Memo | None = None) -> dict[str, Any]:
    """Decide one evaluation; its context is the app decision's trust and reasons, and what it was decided from.

    ``memo`` (a batch's, all from one state) hands out one answer object per distinct outcome, which the
    service then encodes once.
    """
    allowed, decision = decider(engine, identity)
    key = (allowed, decision.trust, decision.reasons)
    if memo is not None and (answer := memo.get(key)) is not None:
        return answer
    answer = {"decision": allowed, "context": {"trust": decision.trust.value, "reasons": list(decision.reasons),
                                               "snapshot_id": decision.snapshot_id,
                                               "policy_fingerprint": decision.policy_fingerprint}}
    if memo is not None:
        memo[key] = answer
    return answer


def _identity(subject: object) -> IdentityLike:
    """Return the identity a subject names: its ``id``, with ``properties.tenant_id`` when given."""
    if subject.__class__ is dict and subject.get("type") == "user" and subject.get("properties") is None:
        address = subject.get("id")
        if address.__class__ is str:  # the common case, checked in one go
            return address
    subject_object = _entity(subject, "subject")
    if subject_object["type"] != "user":
        raise RequestError(f"subject.type {shown(subject_object['type'])} is not supported: mtotrust decides "
                           "for subjects of type 'user' (subject.id an address)")
    properties = subject_object.get("properties")
    tenant_id = None if properties is None else _optional_string(
        _object(properties, "subject.properties").get("tenant_id"), "subject.properties.tenant_id")
    # A plain str where there is no tenant id: the engine answers an address in normal form with one lookup.
    return subject_object["id"] if tenant_id is None else Identity(subject_object["id"], tenant_id)


def _decider(action: object, resource: object) -> _Decider:
    """Validate an action and its resource; return what decides a subject for them."""
    action_object = _object(action, "action")
    name = _string(action_object.get("name"), "action.name")
    _optional_object(action_object.get("properties"), "action.properties")
    resource_object = _entity(resource, "resource")
    family, _, rest = name.partition(".")
    make = _FAMILIES.get(family)
    if make is None or not rest:
        raise RequestError(f"action.name {shown(name)} is not an mtotrust action: use mail.deliver_untagged, "
                           f"dlp.share, teams.ACTION ({', '.join(TEAMS_ACTIONS)}) or label.RIGHT (label.VIEW ...)")
    return make(name, rest, resource_object)


def _mail(name: str, rest: str, resource: Mapping[str, Any]) -> _Decider:
    _expect(name, rest == "deliver_untagged", "mail.deliver_untagged")
    _resource_type(resource, "message", name)
    auth = _auth(_properties(resource, "resource").get("authentication_results"),
                 "resource.properties.authentication_results")
    given = None if auth == [] else auth  # no values: the message had none

    def decide(engine: TrustEngine, identity: IdentityLike) -> tuple[bool, AppDecision]:
        decision = engine.mail(identity, given)
        return not decision.tag_external, decision

    return decide


def _dlp(name: str, rest: str, resource: Mapping[str, Any]) -> _Decider:
    _expect(name, rest == "share", "dlp.share")
    _resource_type(resource, "document", name)
    return _share


def _share(engine: TrustEngine, identity: IdentityLike) -> tuple[bool, AppDecision]:
    decision = engine.dlp(identity)
    return decision.inside_organization, decision


def _teams(name: str, rest: str, resource: Mapping[str, Any]) -> _Decider:
    _expect(name, rest in TEAMS_ACTIONS, ", ".join(f"teams.{a}" for a in TEAMS_ACTIONS))
    _resource_type(resource, "teams", name)

    def decide(engine: TrustEngine, identity: IdentityLike) -> tuple[bool, AppDecision]:
        decision = engine.teams(identity, rest)
        return decision.allowed, decision

    return decide


def _label(name: str, rest: str, resource: Mapping[str, Any]) -> _Decider:
    _expect(name, rest in USAGE_RIGHTS, "label.RIGHT with a usage right: " + ", ".join(sorted(USAGE_RIGHTS)))
    _resource_type(resource, "label", name)
    label = resource["id"]

    def decide(engine: TrustEngine, identity: IdentityLike) -> tuple[bool, AppDecision]:
        try:
            decision = engine.label_rights(identity, label)
        except MtoTrustError:  # the engine's policy defines no such label
            known = ", ".join(sorted(engine.policy.labels)) or "none"  # the policy that decided: a pinned view's
            raise RequestError(f"resource.id {shown(label)} is not a label of the policy (labels: {known})") from None
        return rest in decision.rights, decision

    return decide


_FAMILIES: dict[str, Callable[[str, str, Mapping[str, Any]], _Decider]] = {
    "mail": _mail, "dlp": _dlp, "teams": _teams, "label": _label}


# -- validation ----------------------------------------------------------------------------------------------

def _object(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        what = "is missing" if value is None else f"must be a JSON object, not {shown(value)}"
        raise RequestError(f"{name} {what}")
    return value


def _entity(value: object, name: str) -> Mapping[str, Any]:
    """Return a subject or resource, checked to be an object with ``type`` and ``id`` strings."""
    entity = _object(value, name)
    _string(entity.get("type"), f"{name}.type")
    _string(entity.get("id"), f"{name}.id")
    _optional_object(entity.get("properties"), f"{name}.properties")
    return entity


def _optional_object(value: object, name: str) -> None:
    if value is not None:
        _object(value, name)


def _properties(entity: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    properties = entity.get("properties")
    return {} if properties is None else _object(properties, f"{name}.properties")


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        what = "is missing" if value is None else f"must be a string, not {shown(value)}"
        raise RequestError(f"{name} {what}")
    return value


def _optional_string(value: object, name: str) -> str | None:
    return None if value is None else _string(value, name)


def _auth(value: object, name: str) -> str | list[str] | None:
    """Authentication-Results values: absent, one string, or a list of strings (topmost first)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise RequestError(f"{name} must be an Authentication-Results value or a list of them (strings, topmost "
                       f"first), not {shown(value)}")


def _resource_type(resource: Mapping[str, Any], expected: str, action: str) -> None:
    if resource["type"] != expected:
        raise RequestError(f"resource.type {shown(resource['type'])} does not fit action {action}: it takes a "
                           f"resource of type {expected!r}")


def _expect(name: str, known: bool, choices: str) -> None:
    if not known:
        raise RequestError(f"action.name {shown(name)} is not an mtotrust action: use {choices}")


def _semantic(options: object) -> str:
    if options is None:
        return SEMANTICS[0]
    semantic = _object(options, "options").get("evaluations_semantic")
    if semantic is None:
        return SEMANTICS[0]
    if semantic not in SEMANTICS:
        raise RequestError(f"options.evaluations_semantic {shown(semantic)} is not one of {', '.join(SEMANTICS)}")
    return str(semantic)


def shown(value: object) -> str:
    """Return the offending value as an error quotes it: its JSON-ish repr, cut to a bounded length."""
    text = _REPR(value)  # bounded: a huge value is never rebuilt whole for a message
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
