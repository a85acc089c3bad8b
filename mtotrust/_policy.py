"""``Policy``: the declarative trust policy (docs/policy.md), validated by pydantic.

Unknown keys are errors: a typo must be a :class:`~mtotrust._errors.PolicyError`, not a silently ignored rule.

Why this module is over 600 lines: it is one concept, the policy document, and its sections (the apps, the
overrides, ``[mailflow]``, ``[[invariants]]``) share the validation, the error naming by key path and the
fingerprint; each section's rules sit next to the model that holds them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import attrs
import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo
from pydantic_core import PydanticCustomError

from mtotrust._address import normalize_address, normalize_domain, split_ext_upn
from mtotrust._errors import IdentityError, PolicyError, shown
from mtotrust._files import MAX_POLICY_BYTES, read_regular
from mtotrust._model import Resolution, Trust

__all__ = ["INVARIANT_APPS", "PERMISSION_LEVELS", "TEAMS_ACTIONS", "TENANT_STATES", "USAGE_RIGHTS", "InvariantRule",
           "InvariantScope", "Policy", "expand_grant", "policy_named", "require_fingerprint"]

USAGE_RIGHTS = frozenset({
    "VIEW", "DOCEDIT", "EDIT", "COMMENT", "EXPORT", "FORWARD", "OWNER", "PRINT", "REPLY", "REPLYALL", "EXTRACT",
    "VIEWRIGHTSDATA", "EDITRIGHTSDATA", "OBJMODEL",
})
"""Usage-right codes of Azure Information Protection, the rights a sensitivity label grants."""

_VIEWER = frozenset({"VIEW", "VIEWRIGHTSDATA", "REPLY", "REPLYALL", "OBJMODEL"})
_REVIEWER = _VIEWER | {"EDIT", "DOCEDIT", "FORWARD"}
_CO_AUTHOR = _REVIEWER | {"EXTRACT", "EXPORT", "PRINT"}
PERMISSION_LEVELS: dict[str, frozenset[str]] = {
    "Viewer": _VIEWER,
    "Reviewer": _REVIEWER,
    "Co-Author": _CO_AUTHOR,
    "Co-Owner": _CO_AUTHOR | {"EDITRIGHTSDATA", "OWNER"},
}
"""Built-in permission levels, expanded to usage rights."""


def expand_grant(grant: str | Iterable[str]) -> frozenset[str]:
    """Return the usage rights a label grant means: a permission level's rights, or the listed rights."""
    return PERMISSION_LEVELS[grant] if isinstance(grant, str) else frozenset(grant)


TEAMS_ACTIONS = ("chat", "call", "meeting_lobby_bypass", "file_sharing", "presence", "people_search")
"""Teams collaboration actions a policy sets a minimum trust for."""


def _trust_value(value: object) -> object:
    """Read the library's own :class:`Trust` as its value: ``Trust.GUEST`` means what ``"guest"`` means."""
    return value.value if isinstance(value, Trust) else value


def _exact_int(value: object) -> object:
    """Let only a real ``int`` reach the ``version`` literal: ``True`` and ``1.0`` equal ``1`` but are no version."""
    if type(value) is not int:
        raise PydanticCustomError("version_type", "Input should be the whole number 1, not a {type}",
                                  {"type": type(value).__name__, "expected": "1"})
    return value


TrustName = Annotated[Literal["untrusted", "external", "guest", "mto_member", "internal"],
                      pydantic.BeforeValidator(_trust_value)]
"""A trust level in a policy: its value (``"guest"``), or the :class:`Trust` itself (``Trust.GUEST``)."""
Right = Literal["VIEW", "DOCEDIT", "EDIT", "COMMENT", "EXPORT", "FORWARD", "OWNER", "PRINT", "REPLY", "REPLYALL",
                "EXTRACT", "VIEWRIGHTSDATA", "EDITRIGHTSDATA", "OBJMODEL"]
LevelName = Literal["Viewer", "Reviewer", "Co-Author", "Co-Owner"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _one_line(text: str) -> str:
    bad = next((c for c in text if c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise ValueError(f"holds {bad!r}: a Subject prefix is one line of text, without control characters")
    return text


class MailPolicy(_Section):
    """``[mail]``: external tagging."""

    untagged_at: TrustName = "mto_member"
    require_authentication: bool = True
    trusted_authserv_ids: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    accept_exchange_online_results: bool = False
    subject_tag: Annotated[str, pydantic.AfterValidator(_one_line)] = "[External]"
    """Prefixed to a tagged message's Subject by a mail-flow filter; one line of text (no control character)."""


class DlpPolicy(_Section):
    """``[dlp]``: who counts as inside the organization."""

    inside_at: TrustName = "mto_member"


class TeamsPolicy(_Section):
    """``[teams]``: minimum trust per collaboration action."""

    chat: TrustName = "external"
    call: TrustName = "external"
    meeting_lobby_bypass: TrustName = "mto_member"
    file_sharing: TrustName = "mto_member"
    presence: TrustName = "mto_member"
    people_search: TrustName = "mto_member"


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SnapshotPolicy(_Section):
    """``[snapshot]``: freshness of the directory snapshot."""

    max_age: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,6}[smhd]$")] | None = None
    """Oldest snapshot that may still grant trust, e.g. ``"24h"`` (units s, m, h, d); ``None``: no limit."""

    @property
    def max_age_seconds(self) -> float | None:
        """``max_age`` in seconds, or ``None`` when off."""
        if self.max_age is None:
            return None
        return int(self.max_age[:-1]) * _DURATION_UNITS[self.max_age[-1]]


def _check_pilot_address(address: str) -> str:
    try:
        local, domain = normalize_address(address)
    except IdentityError as exc:
        raise ValueError(f"{address!r} is not an address ({exc}); list recipients as user@domain") from None
    return f"{local}@{domain}"


class MailflowPolicy(_Section):
    """``[mailflow]``: the mail-flow filter's pilot scope (``mtotrust filter``); no other app reads it.

    With neither key, every recipient gets the policy's decision. With either, only the pilot recipients do (the
    listed addresses, plus those of ``pilot_file``: one per line, ``#`` comments); every other recipient gets the
    classic decision (this policy with ``mail.untagged_at = "internal"``). The fingerprint leaves this table out: it
    chooses who gets which policy, and each decision names the fingerprint of the policy it applied.
    """

    pilot_recipients: list[Annotated[str, pydantic.AfterValidator(_check_pilot_address)]] | None = None
    pilot_file: Annotated[str, Field(min_length=1)] | None = None


def _check_block_entry(entry: str) -> str:
    _block_keys(entry)
    return entry


BlockEntry = Annotated[str, pydantic.AfterValidator(_check_block_entry)]


class OverridesPolicy(_Section):
    """``[overrides]``: addresses and domains that are always ``untrusted``."""

    block: list[BlockEntry] = Field(default_factory=list)


LabelGrant = LevelName | list[Right]


# -- user invariants ([[invariants]]) ----------------------------------------------------------------------------

_EXPECTATIONS = {"mail": ("tagged", "untagged"), "dlp": ("inside", "outside"), "teams": ("allowed", "denied"),
                 "labels": ("no_rights",), "resolve": ()}
"""The ``expect`` words each app's decisions can be held to."""
_ONLY_FOR = {"authentication": "mail", "label": "labels", "action": "teams", "rights_at_most": "labels",
             "rights_at_least": "labels", "rights_exclude": "labels"}
"""Keys that speak of one app's decisions only."""


def _partner_value(value: object) -> object:
    """Read TOML's ``partner = true`` as the flag ``"true"`` (TOML has no null: ``"null"`` says null)."""
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, list):
        return [_partner_value(v) for v in value]
    return value


PartnerFlag = Literal["true", "false", "null", "absent"]
Authentication = Literal["pass", "fail", "none"]
TenantState = Literal["local", "active", "pending", "removed", "stateless", "not_in_mto", "unknown"]
"""Where an identity is at home, as an invariant's ``tenant_state`` names it: the local tenant, an MTO tenant in
each state (``stateless``: the MTO lists it without a state), a known tenant outside the MTO, or no known tenant
(an unknown or look-alike domain, or an identity that is no address)."""
InvariantApp = Literal["resolve", "mail", "dlp", "teams", "labels"]
"""What a user invariant speaks of: the resolution itself, or one app's decisions."""
TENANT_STATES: tuple[str, ...] = get_args(TenantState)
INVARIANT_APPS: tuple[str, ...] = get_args(InvariantApp)
TeamsAction = Literal[TEAMS_ACTIONS]  # type: ignore[valid-type]  # the one list of actions
Expectation = Literal["tagged", "untagged", "inside", "outside", "allowed", "denied", "no_rights"]


class InvariantScope(_Section):
    """The decisions a user invariant speaks of: its ``name``, its ``app`` and the filters that narrow them.

    Every filter left out means "all"; a filter given as a list means "any of these". The trust filters read the
    identity's trust (its resolution, before mail's authentication cap); ``tenant_state`` and ``partner`` read
    its home tenant; ``authentication``, ``label`` and ``action`` narrow mail, label and Teams decisions.

    .. versionadded:: 0.2.0
    """

    name: Annotated[str, Field(min_length=1)]
    app: InvariantApp
    trust: TrustName | Annotated[list[TrustName], Field(min_length=1)] | None = None
    trust_at_least: TrustName | None = None
    trust_at_most: TrustName | None = None
    tenant_state: TenantState | Annotated[list[TenantState], Field(min_length=1)] | None = None
    partner: Annotated[PartnerFlag | Annotated[list[PartnerFlag], Field(min_length=1)] | None,
                       pydantic.BeforeValidator(_partner_value)] = None
    authentication: Authentication | Annotated[list[Authentication], Field(min_length=1)] | None = None
    label: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]],
                                                           Field(min_length=1)] | None = None
    action: TeamsAction | Annotated[list[TeamsAction], Field(min_length=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _check_scope(self) -> InvariantScope:
        for key, app in _ONLY_FOR.items():
            if key in type(self).model_fields and getattr(self, key) is not None and self.app != app:
                raise _rule_error(key, f"{key} applies to app = {app!r} only, not to app = {self.app!r}",
                                  getattr(self, key), self.name)
        if self.trust_at_least is not None and self.trust_at_most is not None \
                and Trust(self.trust_at_least) > Trust(self.trust_at_most):
            raise _rule_error("trust_at_least", f"trust_at_least = {self.trust_at_least!r} is above trust_at_most "
                              f"= {self.trust_at_most!r}: the invariant would speak of no identity",
                              self.trust_at_least, self.name)
        return self


class InvariantRule(InvariantScope):
    """A declarative user invariant (``[[invariants]]`` in a policy file): a scope and what must hold in it.

    ``expect`` is the app's outcome (``tagged``/``untagged``, ``inside``/``outside``, ``allowed``/``denied``,
    ``no_rights``); ``rights_at_most``, ``rights_at_least`` and ``rights_exclude`` bound a label's rights (a
    permission level or a list of rights); ``expect_trust_at_most`` and ``expect_trust_at_least`` bound the trust
    the decision carries. Every expectation given must hold; at least one must be given.

    .. versionadded:: 0.2.0
    """

    expect: Expectation | None = None
    rights_at_most: LabelGrant | None = None
    rights_at_least: LabelGrant | None = None
    rights_exclude: LabelGrant | None = None
    expect_trust_at_most: TrustName | None = None
    expect_trust_at_least: TrustName | None = None

    @pydantic.model_validator(mode="after")
    def _check_expectations(self) -> InvariantRule:
        allowed = _EXPECTATIONS[self.app]
        if self.expect is not None and self.expect not in allowed:
            words = ", ".join(repr(w) for w in allowed) or "none (use expect_trust_at_most or expect_trust_at_least)"
            raise _rule_error("expect", f"expect = {self.expect!r} does not apply to app = {self.app!r}; allowed: "
                              f"{words}", self.expect, self.name)
        stated = ("expect", "rights_at_most", "rights_at_least", "rights_exclude", "expect_trust_at_most",
                  "expect_trust_at_least")
        if all(getattr(self, key) is None for key in stated):
            raise _rule_error("expect", "states nothing to check: give expect, rights_at_most, rights_at_least, "
                              "rights_exclude, expect_trust_at_most or expect_trust_at_least", None, self.name)
        return self


def _rule_error(key: str, message: str, value: object, name: str) -> PydanticCustomError:
    """Make an invariant's error; ``key`` rides in the context, so :func:`_policy_error` names its full key path."""
    return PydanticCustomError("invariant", "invariant {name}: {message}",
                               {"name": repr(name), "message": message, "key": key, "value": value})


class Policy(BaseModel):
    """A trust policy (docs/policy.md): loaded from TOML or JSON, or built in.

    .. versionadded:: 0.1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Annotated[Literal[1], pydantic.BeforeValidator(_exact_int)] = 1
    mail: MailPolicy = MailPolicy()
    dlp: DlpPolicy = DlpPolicy()
    teams: TeamsPolicy = TeamsPolicy()
    labels: dict[str, dict[TrustName, LabelGrant]] = Field(default_factory=dict)
    overrides: OverridesPolicy = OverridesPolicy()
    snapshot: SnapshotPolicy = SnapshotPolicy()
    mailflow: MailflowPolicy = MailflowPolicy()
    invariants: list[InvariantRule] = Field(default_factory=list)
    """``[[invariants]]``: the policy's own rules, proved by ``mtotrust lint``; they change no decision, so the
    fingerprint leaves them out."""

    # What every decision reads, derived once. Read through the private dict (``_derived``), never as
    # ``self._fingerprint``: pydantic resolves a private attribute in ``BaseModel.__getattr__``, which probes it with
    # ``hasattr`` and pays for an AttributeError raised inside pydantic each time (about 2 µs a read).
    _block_entries: tuple[tuple[str, str], ...] = PrivateAttr(default=())
    _blocks: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _authserv_ids: frozenset[str] = PrivateAttr(default=frozenset())
    _fingerprint: str = PrivateAttr(default="")

    @pydantic.field_validator("invariants")
    @classmethod
    def _check_invariants(cls, rules: list[InvariantRule], info: ValidationInfo) -> list[InvariantRule]:
        """Hold each invariant to the rest of the policy: a name used once, labels the policy defines."""
        labels = info.data.get("labels")
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.name in seen:
                raise PydanticCustomError("invariant", "invariant {name}: the name is used twice; each invariant "
                                          "needs a name of its own, the one its findings and test items carry",
                                          {"name": repr(rule.name), "key": f"{i}.name", "value": rule.name})
            seen.add(rule.name)
            wanted = [rule.label] if isinstance(rule.label, str) else rule.label or []
            for j, label in enumerate(wanted):
                if labels is not None and label not in labels:
                    known = ", ".join(repr(n) for n in sorted(labels)) or "none"
                    raise PydanticCustomError("invariant", "invariant {name}: unknown label {label}; the policy "
                                              "defines {known}", {"name": repr(rule.name), "label": repr(label),
                                                                  "known": known, "value": label,
                                                                  "key": f"{i}.label" + (f".{j}" if isinstance(
                                                                      rule.label, list) else "")})
        return rules

    def model_post_init(self, context: Any, /) -> None:  # noqa: ARG002 - pydantic's hook signature
        """Derive, once, what every decision reads: the block sets, the authserv-ids and the fingerprint."""
        keys = self._block_entries = tuple(key for e in self.overrides.block for key in _block_keys(e))
        self._blocks = {kind: frozenset(v for k, v in keys if k == kind) for kind in ("address", "domain", "wildcard")}
        self._authserv_ids = frozenset(i.lower() for i in self.mail.trusted_authserv_ids)
        data = self.model_dump(mode="json", exclude={"invariants", "mailflow"})
        # Order does not change what a list of ids, block entries or rights means: leave it out of the hash.
        data["mail"]["trusted_authserv_ids"] = sorted(self._authserv_ids)
        data["overrides"]["block"] = sorted(data["overrides"]["block"])
        for levels in data["labels"].values():
            for level, grant in levels.items():
                if isinstance(grant, list):
                    levels[level] = sorted(set(grant))
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        self._fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:
        """Return a copy; with ``update``, a policy validated anew (its block list and fingerprint recomputed).

        pydantic's own copy would keep the derived block list, authserv-ids and fingerprint of the original.
        """
        if not update:
            return super().model_copy(deep=deep)
        data = self.model_dump()
        data.update({k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in update.items()})
        return type(self).from_data(data)

    # -- construction --------------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Policy:
        """Return the MTO-aware default: MTO members are untagged, inside for DLP and may collaborate."""
        return cls()

    @classmethod
    def classic(cls) -> Policy:
        """Return Exchange and Purview's behaviour without MTO awareness: MTO members get nothing internal."""
        internal_only = dict.fromkeys(("meeting_lobby_bypass", "file_sharing", "presence", "people_search"),
                                      "internal")
        return cls.from_data({"mail": {"untagged_at": "internal"}, "dlp": {"inside_at": "internal"},
                              "teams": internal_only})

    @classmethod
    def from_data(cls, data: Any, *, source: str = "policy") -> Policy:
        """Validate a decoded policy document (the TOML/JSON structure).

        ``version`` may be left out here (it is ``1``): data built in code cannot be cut short, while a file
        (:meth:`load`) must state it.

        Raises:
            PolicyError: naming the key path, the value and what is allowed.
        """
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise _policy_error(exc, source) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, expect_fingerprint: str | None = None) -> Policy:
        """Read a policy file: TOML, or JSON when the name ends in ``.json``.

        A policy file states its ``version``: an empty file, or one without ``version``, is refused rather than
        read as :meth:`default`. A TOML file cut short at a line boundary after its ``version`` line is still a
        valid, weaker policy (its block list gone, say); only the fingerprint tells the two apart, so pin the
        reviewed policy with ``expect_fingerprint`` (``mtotrust lint`` prints it).

        Args:
            path: the policy file.
            expect_fingerprint: the :attr:`fingerprint` of the policy as it was reviewed; a file whose policy has
                another one (it changed since, or was cut short) is refused.

        Raises:
            PolicyError: for a missing or unreadable file, bad syntax, a bad key or value, no ``version``, or a
                fingerprint other than ``expect_fingerprint``.

        .. versionchanged:: 0.2.0
           ``version`` is required in a file; ``expect_fingerprint``.
        """
        if expect_fingerprint is not None:
            _check_fingerprint_form(expect_fingerprint)
        p = Path(path)
        raw = read_regular(p, MAX_POLICY_BYTES, lambda problem: PolicyError(f"policy file {str(p)!r} {problem}",
                                                                            value=str(p)))
        is_json = p.suffix.lower() == ".json"
        try:
            text = raw.decode("utf-8")
            data = json.loads(text) if is_json else tomllib.loads(text)
        except RecursionError:
            raise PolicyError(f"policy file {str(p)!r} is nested too deeply to be a policy", value=str(p)) from None
        except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"policy file {str(p)!r} is not valid {'JSON' if is_json else 'TOML'}: "
                              f"{exc}", value=str(p)) from None
        policy = cls.from_data(data, source=str(p))
        if "version" not in data:  # a mapping: from_data accepted it
            line = '"version": 1' if is_json else "version = 1"
            raise PolicyError(f"missing in policy file {str(p)!r}: a policy file starts with {line}; an empty file, "
                              "or one that lost its beginning, is refused, never read as the default policy",
                              key="version", value=str(p))
        if expect_fingerprint is None:
            return policy
        return require_fingerprint(policy, expect_fingerprint, source=f"policy file {str(p)!r}")

    # -- reading -------------------------------------------------------------------------------------------

    @property
    def trusted_authserv_ids(self) -> frozenset[str]:
        """``mail.trusted_authserv_ids``, lower-cased, as the mail path compares them."""
        ids: frozenset[str] = _derived(self)["_authserv_ids"]
        return ids

    @property
    def fingerprint(self) -> str:
        """A stable hash of the policy's meaning (same policy, same fingerprint, across processes)."""
        fingerprint: str = _derived(self)["_fingerprint"]
        return fingerprint

    def label_rights(self, label: str, trust: Trust) -> frozenset[str]:
        """Return the usage rights ``label`` grants at ``trust`` (none for a level the label does not list).

        Raises:
            PolicyError: when ``label`` is not a str, or the policy defines no label named ``label``.
        """
        levels = self.labels.get(label) if label.__class__ is str else None
        if levels is None:
            known = ", ".join(repr(n) for n in sorted(self.labels)) or "none"
            if label.__class__ is not str:
                raise PolicyError(f"label must be a label's name (a str), not {shown(label)}; the policy defines "
                                  f"{known}", key="labels", value=label)
            raise PolicyError(f"unknown label {shown(label)}; the policy defines {known}", key=f"labels.{label}",
                              value=label)
        grant = levels.get(trust.value)
        return frozenset() if grant is None else expand_grant(grant)

    def teams_minimum(self, action: str) -> Trust:
        """Return the minimum trust for a Teams ``action``.

        Raises:
            PolicyError: for an action that is not one of :data:`TEAMS_ACTIONS` (a str).
        """
        if action.__class__ is not str or action not in TEAMS_ACTIONS:
            what = "unknown Teams action" if action.__class__ is str else "a Teams action is its name (a str), not"
            raise PolicyError(f"{what} {shown(action)}; allowed: {', '.join(TEAMS_ACTIONS)}", key="teams",
                              value=action)
        return Trust(getattr(self.teams, action))

    @property
    def block_entries(self) -> tuple[tuple[str, str], ...]:
        """``overrides.block`` parsed, in order: ``(kind, value)`` with kind ``address``, ``domain`` or ``wildcard``.

        Values are normalised (``local@a-label``, or an A-label; a wildcard's value is the domain after ``*.``).
        """
        entries: tuple[tuple[str, str], ...] = _derived(self)["_block_entries"]
        return entries

    def is_stale(self, taken_at: dt.datetime, now: float | None = None) -> bool:
        """Return whether a snapshot taken at ``taken_at`` is older than ``snapshot.max_age`` (never when unset)."""
        max_age = self.snapshot.max_age_seconds
        if max_age is None:
            return False
        return (time.time() if now is None else now) > taken_at.timestamp() + max_age

    def apply(self, resolution: Resolution, *, stale: bool = False) -> Resolution:
        """Return ``resolution`` with the policy's own effects on it: the one place they are applied.

        ``overrides.block`` makes a blocked identity ``untrusted`` (reason ``blocked``): an entry matches the
        identity as written (normal form) and, for a decoded ``#EXT#`` name, the decoded address too; ``stale`` (see
        :meth:`is_stale`) caps trust at ``external`` (reason ``snapshot_stale``); the result carries this
        policy's :attr:`fingerprint` as ``policy_fingerprint``. Applying twice changes nothing, so a caller may
        apply the block when it computes an answer and the staleness cap when it serves it.
        """
        derived = _derived(self)
        fingerprint = derived["_fingerprint"]
        if resolution.policy_fingerprint != fingerprint:
            resolution = attrs.evolve(resolution, policy_fingerprint=fingerprint)
        reasons = resolution.reasons
        address = resolution.address
        # An entry names the identity as written (its normal form: an #EXT# name as admin portals show it) or the
        # address it was looked up by (the decoded home address of an #EXT# name).
        if (derived["_block_entries"] and address is not None and "blocked" not in reasons
                and (self.blocked(address, address.rpartition("@")[2])
                     or (resolution.identity != address
                         and self.blocked(resolution.identity, resolution.identity.rpartition("@")[2])))):
            resolution = attrs.evolve(resolution, trust=Trust.UNTRUSTED, reasons=(*reasons, "blocked"))
        if stale and resolution.trust > Trust.EXTERNAL:
            resolution = attrs.evolve(resolution, trust=Trust.EXTERNAL,
                                      reasons=(*resolution.reasons, "snapshot_stale"))
        return resolution

    def blocked(self, address: str, domain: str) -> bool:
        """Return whether ``overrides.block`` names a normalised ``address`` or its ``domain``."""
        blocks = _derived(self)["_blocks"]
        if address in blocks["address"] or domain in blocks["domain"]:
            return True
        wildcards = blocks["wildcard"]
        if not wildcards:
            return False
        labels = domain.split(".")
        return any(".".join(labels[i:]) in wildcards for i in range(len(labels)))


def policy_named(name: str | os.PathLike[str]) -> Policy:
    """Return the policy a command line or a marker names: ``"default"``, ``"classic"`` or a policy file's path.

    (A file called ``classic`` is ``./classic``.)

    Raises:
        PolicyError: as :meth:`Policy.load`.
    """
    if name == "default":
        return Policy.default()
    if name == "classic":
        return Policy.classic()
    return Policy.load(name)


def _derived(policy: Policy) -> dict[str, Any]:
    """Return the private attributes of ``policy`` as the dict pydantic keeps them in (a direct read)."""
    return policy.__pydantic_private__  # type: ignore[return-value]  # set by model_post_init, never None


_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def _check_fingerprint_form(expected: object) -> None:
    if not isinstance(expected, str) or _FINGERPRINT.fullmatch(expected) is None:
        raise PolicyError(f"expected fingerprint {shown(expected)} is not a policy fingerprint: 16 lower-case hex "
                          "digits, as Policy.fingerprint and mtotrust lint give it", value=expected)


def require_fingerprint(policy: Policy, expected: str, *, source: str) -> Policy:
    """Return ``policy`` when its :attr:`~Policy.fingerprint` is ``expected``: the policy as it was reviewed.

    Args:
        policy: the policy about to be used.
        expected: the fingerprint of the reviewed policy (16 lower-case hex digits).
        source: where ``policy`` comes from, as the message names it (``"policy file 'p.toml'"``).

    Raises:
        PolicyError: ``expected`` is not a fingerprint, or ``policy`` has another one; the message names
            ``source`` and both fingerprints.
    """
    _check_fingerprint_form(expected)
    if policy.fingerprint != expected:
        raise PolicyError(f"{source} has fingerprint {policy.fingerprint}, not the expected {expected}: the "
                          "policy changed since it was reviewed (or was cut short); review it, then expect its "
                          "new fingerprint", value=policy.fingerprint)
    return policy


def _block_keys(entry: str) -> list[tuple[str, str]]:
    """Classify and normalise an ``overrides.block`` entry; raise ``ValueError`` naming a bad one.

    An ``#EXT#`` name (``alias_homedomain#EXT#@host``, as admin portals show an external account) also blocks the
    home address it encodes, so the person is blocked whichever way they are named (an extra block only ever
    lowers trust).
    """
    try:
        if "@" in entry:
            local, domain = normalize_address(entry)
            keys = [("address", f"{local}@{domain}")]
            try:
                decoded = split_ext_upn(local, entry)
            except IdentityError:  # not a well-formed #EXT# name: it blocks the address as written only
                decoded = None
            if decoded is not None:
                keys.append(("address", f"{decoded[0]}@{decoded[1]}"))
            return keys
        if entry.startswith("*."):
            return [("wildcard", normalize_domain(entry[2:]))]
        return [("domain", normalize_domain(entry))]
    except IdentityError as exc:
        raise ValueError(f"block entry {shown(entry)} is not an address, a domain or '*.domain': {exc}") from None


def _policy_error(exc: pydantic.ValidationError, source: str) -> PolicyError:
    errors = exc.errors(include_url=False)
    # A union (a permission level or a list of rights) reports one error per branch; the deepest one names the
    # offending element (the bad right in a list) rather than the whole value.
    branch = errors[0]["loc"][:-1]
    same_value = all(e["loc"][: len(branch)] == branch for e in errors)
    error = max(errors, key=lambda e: len(e["loc"])) if same_value else errors[0]
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("literal[", "list[", "tuple[", "function-"))]
    ctx = error.get("ctx") or {}
    if error["type"] == "invariant":  # a rule's own check: its context names the key within the rule
        loc = [*loc, *str(ctx["key"]).split(".")]
        return PolicyError(f"{error['msg']} [in {source}]", key=".".join(loc), value=ctx.get("value"))
    key = ".".join(loc) or "(top level)"
    value = error.get("input")
    allowed = ""
    if "expected" in ctx:
        allowed = f"; allowed: {ctx['expected']}"
    elif error["type"] == "string_pattern_mismatch":
        allowed = "; allowed: a duration such as '90m', '24h' or '7d' (a whole number and s, m, h or d)"
    elif error["type"] == "extra_forbidden":
        allowed = "; remove it or check its spelling against docs/policy.md"
    return PolicyError(f"{error['msg']} (got {shown(value)}){allowed} [in {source}]", key=key, value=value)
