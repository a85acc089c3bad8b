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

from collections.abc import Callable, Mapping
from typing import Any

from mtotrust._engine import TrustEngine
from mtotrust._errors import MtoTrustError
from mtotrust._model import AppDecision, Identity, IdentityLike
from mtotrust._policy import TEAMS_ACTIONS, USAGE_RIGHTS

__all__ = ["ACTIONS", "MAX_ITEMS", "SEMANTICS", "RequestError", "check", "evaluation", "evaluations"]

MAX_ITEMS = 1000
"""The most items one batch evaluation (or one ``/v1/check``) decides."""

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
"""The values of ``options.evaluations_semantic`` (AuthZEN 1.0 section 7.1.2.1); the first is the default."""

ACTIONS = ("mail.deliver_untagged", "dlp.share", *(f"teams.{a}" for a in TEAMS_ACTIONS),
           *(f"label.{r}" for r in sorted(USAGE_RIGHTS)))
"""Every ``action.name`` the service decides."""

_SHOWN = 80  # characters of an offending value quoted in an error


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
    return _decide(engine, request.get("subject"), request.get("action"), request.get("resource"))


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
        raise RequestError(f"evaluations must be an array of evaluation objects, not {_shown(items)}")
    if len(items) > MAX_ITEMS:
        raise RequestError(f"evaluations has {len(items)} items; at most {MAX_ITEMS} are decided per request: "
                           "split the batch")
    semantic = _semantic(request.get("options"))
    defaults = {key: request.get(key) for key in ("subject", "action", "resource")}
    view = engine.pinned()  # every item from one snapshot and policy
    stop = None if semantic == "execute_all" else semantic == "permit_on_first_permit"
    answers = []
    for index, item in enumerate(items):
        try:
            given = _object(item, "the item")
            answer = _decide(view, *(_field(given, key, defaults) for key in ("subject", "action", "resource")))
        except RequestError as exc:
            answer = {"decision": False, "context": {"error": {"status": exc.status,
                                                               "message": f"evaluations[{index}]: {exc.message}"}}}
        answers.append(answer)
        if answer["decision"] is stop:
            break
    return {"evaluations": answers}


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
        raise RequestError(f"identities must be a non-empty array of addresses, not {_shown(identities)}")
    if len(identities) > MAX_ITEMS:
        raise RequestError(f"identities has {len(identities)} items; at most {MAX_ITEMS} are checked per request")
    for index, identity in enumerate(identities):
        if not isinstance(identity, str):
            raise RequestError(f"identities[{index}] must be a string, not {_shown(identity)}")
    auth = _auth(request.get("auth"), "auth")
    tenant_id = _optional_string(request.get("tenant_id"), "tenant_id")
    view = engine.pinned()
    return [view.report(Identity(identity, tenant_id), auth) for identity in identities]


# -- one evaluation ----------------------------------------------------------------------------------------------

def _decide(engine: TrustEngine, subject: object, action: object, resource: object) -> dict[str, Any]:
    """Decide one evaluation; its context is the app decision's trust and reasons, and what it was decided from."""
    subject_object = _entity(subject, "subject")
    if subject_object["type"] != "user":
        raise RequestError(f"subject.type {_shown(subject_object['type'])} is not supported: mtotrust decides "
                           "for subjects of type 'user' (subject.id an address)")
    tenant_id = _optional_string(_properties(subject_object, "subject").get("tenant_id"),
                                 "subject.properties.tenant_id")
    # A plain str where there is no tenant id: the engine answers an address in normal form with one lookup.
    identity: IdentityLike = subject_object["id"] if tenant_id is None else Identity(subject_object["id"], tenant_id)
    name = _string(_object(action, "action").get("name"), "action.name")
    resource_object = _entity(resource, "resource")
    family, _, rest = name.partition(".")
    decide = _FAMILIES.get(family)
    if decide is None or not rest:
        raise RequestError(f"action.name {_shown(name)} is not an mtotrust action: use mail.deliver_untagged, "
                           f"dlp.share, teams.ACTION ({', '.join(TEAMS_ACTIONS)}) or label.RIGHT (label.VIEW ...)")
    allowed, decision = decide(engine, identity, rest, resource_object)
    return {"decision": allowed, "context": {"trust": decision.trust.value, "reasons": list(decision.reasons),
                                             "snapshot_id": decision.snapshot_id,
                                             "policy_fingerprint": decision.policy_fingerprint}}


def _mail(engine: TrustEngine, identity: IdentityLike, rest: str,
          resource: Mapping[str, Any]) -> tuple[bool, AppDecision]:
    _expect(f"mail.{rest}", rest == "deliver_untagged", "mail.deliver_untagged")
    _resource_type(resource, "message", "mail.deliver_untagged")
    auth = _auth(_properties(resource, "resource").get("authentication_results"),
                 "resource.properties.authentication_results")
    decision = engine.mail(identity, None if auth == [] else auth)  # no values: the message had none
    return not decision.tag_external, decision


def _dlp(engine: TrustEngine, identity: IdentityLike, rest: str,
         resource: Mapping[str, Any]) -> tuple[bool, AppDecision]:
    _expect(f"dlp.{rest}", rest == "share", "dlp.share")
    _resource_type(resource, "document", "dlp.share")
    decision = engine.dlp(identity)
    return decision.inside_organization, decision


def _teams(engine: TrustEngine, identity: IdentityLike, rest: str,
           resource: Mapping[str, Any]) -> tuple[bool, AppDecision]:
    _expect(f"teams.{rest}", rest in TEAMS_ACTIONS, ", ".join(f"teams.{a}" for a in TEAMS_ACTIONS))
    _resource_type(resource, "teams", f"teams.{rest}")
    decision = engine.teams(identity, rest)
    return decision.allowed, decision


def _label(engine: TrustEngine, identity: IdentityLike, rest: str,
           resource: Mapping[str, Any]) -> tuple[bool, AppDecision]:
    _expect(f"label.{rest}", rest in USAGE_RIGHTS, "label.RIGHT with a usage right: " + ", ".join(sorted(USAGE_RIGHTS)))
    _resource_type(resource, "label", f"label.{rest}")
    label = resource["id"]
    if label not in engine.policy.labels:
        known = ", ".join(sorted(engine.policy.labels)) or "none"
        raise RequestError(f"resource.id {_shown(label)} is not a label of the policy (labels: {known})")
    try:
        decision = engine.label_rights(identity, label)
    except MtoTrustError as exc:  # the policy changed between the check and the call: the pinned view's say
        raise RequestError(f"resource.id {_shown(label)}: {exc}") from None
    return rest in decision.rights, decision


_FAMILIES: dict[str, Callable[[TrustEngine, IdentityLike, str, Mapping[str, Any]], tuple[bool, AppDecision]]] = {
    "mail": _mail, "dlp": _dlp, "teams": _teams, "label": _label}


# -- validation ----------------------------------------------------------------------------------------------

def _object(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        what = "is missing" if value is None else f"must be a JSON object, not {_shown(value)}"
        raise RequestError(f"{name} {what}")
    return value


def _entity(value: object, name: str) -> Mapping[str, Any]:
    """Return a subject or resource, checked to be an object with ``type`` and ``id`` strings."""
    entity = _object(value, name)
    _string(entity.get("type"), f"{name}.type")
    _string(entity.get("id"), f"{name}.id")
    return entity


def _properties(entity: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    properties = entity.get("properties")
    return {} if properties is None else _object(properties, f"{name}.properties")


def _field(item: Mapping[str, Any], key: str, defaults: Mapping[str, object]) -> object:
    """Return an item's own ``key`` (replacing the default whole), else the request's top-level one."""
    value = item.get(key)
    return defaults[key] if value is None else value


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        what = "is missing" if value is None else f"must be a string, not {_shown(value)}"
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
                       f"first), not {_shown(value)}")


def _resource_type(resource: Mapping[str, Any], expected: str, action: str) -> None:
    if resource["type"] != expected:
        raise RequestError(f"resource.type {_shown(resource['type'])} does not fit action {action}: it takes a "
                           f"resource of type {expected!r}")


def _expect(name: str, known: bool, choices: str) -> None:
    if not known:
        raise RequestError(f"action.name {_shown(name)} is not an mtotrust action: use {choices}")


def _semantic(options: object) -> str:
    if options is None:
        return SEMANTICS[0]
    semantic = _object(options, "options").get("evaluations_semantic")
    if semantic is None:
        return SEMANTICS[0]
    if semantic not in SEMANTICS:
        raise RequestError(f"options.evaluations_semantic {_shown(semantic)} is not one of {', '.join(SEMANTICS)}")
    return str(semantic)


def _shown(value: object) -> str:
    """Return the offending value as an error quotes it: its JSON-ish repr, cut to a bounded length."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
