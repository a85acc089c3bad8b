"""The only module that knows Microsoft Graph JSON.

Pydantic models of the Graph v1.0 responses a snapshot folder holds (docs/snapshot.md). They **ignore** unknown
fields, because Graph adds fields over time, but are strict about the types of the fields mtotrust reads: a
``"true"`` string where Graph sends a boolean is a :class:`~mtotrust._errors.SnapshotError`, not a guess.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any, Required, TypeVar, cast

import attrs
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this TypedDict before Python 3.12

from mtotrust._errors import SnapshotError, shown
from mtotrust._model import DirectoryUser, Tenant

__all__ = [
    "DomainRow",
    "DomainsFile",
    "GraphUser",
    "MtoTenantsResponse",
    "OrganizationResponse",
    "PartnersResponse",
    "UsersPage",
    "apply_entry",
    "parse_document",
    "parse_users_page",
    "read_users_page",
    "to_tenant",
    "user_from_dict",
]

_EXTERNAL_ISSUER = "ExternalAzureAD"


class _GraphModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class VerifiedDomain(_GraphModel):
    """One ``verifiedDomains`` entry of the organization."""

    name: str
    is_default: bool | None = Field(default=None, alias="isDefault")
    is_initial: bool | None = Field(default=None, alias="isInitial")
    type: str | None = None


class Organization(_GraphModel):
    """The local tenant (``GET /organization``)."""

    id: str
    display_name: str | None = Field(default=None, alias="displayName")
    verified_domains: list[VerifiedDomain] = Field(alias="verifiedDomains")


class OrganizationResponse(_GraphModel):
    """``organization.json``."""

    value: list[Organization] = Field(min_length=1)


class MtoTenant(_GraphModel):
    """A ``multiTenantOrganizationMember``; ``state`` is absent with ``ReadBasic`` permission (fail closed)."""

    tenant_id: str = Field(alias="tenantId")
    display_name: str | None = Field(default=None, alias="displayName")
    role: str | None = None
    state: str | None = None


class MtoTenantsResponse(_GraphModel):
    """``mto.json``."""

    value: list[MtoTenant]


class DomainRow(_GraphModel):
    """One ``findTenantInformationByDomainName`` answer, with the domain that was asked."""

    domain_name: str = Field(alias="domainName")
    tenant_id: str = Field(alias="tenantId")
    display_name: str | None = Field(default=None, alias="displayName")


class DomainsFile(_GraphModel):
    """``domains.json`` (mtotrust's own format)."""

    value: list[DomainRow]


class Partner(_GraphModel):
    """A ``crossTenantAccessPolicyConfigurationPartner``."""

    tenant_id: str = Field(alias="tenantId")
    is_in_multi_tenant_organization: bool | None = Field(default=None, alias="isInMultiTenantOrganization")


class PartnersResponse(_GraphModel):
    """``partners.json``."""

    value: list[Partner]


class ObjectIdentity(_GraphModel):
    """One ``identities`` entry of a user."""

    sign_in_type: str | None = Field(default=None, alias="signInType")
    issuer: str | None = None


class Removed(_GraphModel):
    """The ``@removed`` marker of a delta entry."""

    reason: str | None = None


class GraphUser(_GraphModel):
    """A user object as ``GET /users`` or ``/users/delta`` returns it; only ``id`` is required."""

    id: str = Field(min_length=1)
    user_principal_name: str | None = Field(default=None, alias="userPrincipalName")
    mail: str | None = None
    other_mails: list[str] | None = Field(default=None, alias="otherMails")
    proxy_addresses: list[str] | None = Field(default=None, alias="proxyAddresses")
    user_type: str | None = Field(default=None, alias="userType")
    creation_type: str | None = Field(default=None, alias="creationType")
    account_enabled: bool | None = Field(default=None, alias="accountEnabled")
    identities: list[ObjectIdentity] | None = None
    removed: Removed | None = Field(default=None, alias="@removed")


class UsersPage(_GraphModel):
    """A page of ``GET /users`` or ``GET /users/delta``."""

    value: list[GraphUser]


# The same page as plain dicts, validated in one pydantic-core pass (``validate_json`` parses and validates in
# Rust, no model instance per user). It accepts exactly what ``UsersPage`` accepts (same strict types, unknown
# fields ignored, only ``id`` required, duplicate keys: last wins as in ``json.loads``); on any failure the
# caller falls back to ``json.loads`` + ``parse_document(UsersPage, ...)``, which either names the problem
# precisely or accepts the page (a BOM, a lone surrogate escape ...), so the fast path never changes a result.
_STRICT = ConfigDict(strict=True, extra="ignore")


class _IdentityDict(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    signInType: str | None
    issuer: str | None


class _RemovedDict(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    reason: str | None


_UserDict = TypedDict("_UserDict", {  # functional form: "@removed" is not an identifier
    "id": Required[Annotated[str, Field(min_length=1)]],
    "userPrincipalName": str | None,
    "mail": str | None,
    "otherMails": list[str] | None,
    "proxyAddresses": list[str] | None,
    "userType": str | None,
    "creationType": str | None,
    "accountEnabled": bool | None,
    "identities": list[_IdentityDict] | None,
    "@removed": _RemovedDict | None,
}, total=False)
_UserDict.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


class _PageDict(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    value: list[_UserDict]


_PAGE_ADAPTER: TypeAdapter[_PageDict] = TypeAdapter(_PageDict)
_USER_ADAPTER: TypeAdapter[_UserDict] = TypeAdapter(_UserDict)

STREAM_BYTES = 64 << 20
"""A users page file larger than this (64 MiB) is decoded one user object at a time (:func:`read_users_page`).

Below it, one pydantic-core pass over the whole page is faster (about 39 MB/s against 25 MB/s); above it, the
memory of every decoded object at once (four times the page) matters more than the speed.
"""
_STREAM_WINDOW = 16 << 20  # bytes of the page decoded to text at a time
_STREAM_MARGIN = 1 << 16  # text kept ahead of a value before it is decoded (fewer values are cut and decoded again)
_STRING_CACHE, _CACHED_STRING = 16_384, 64  # pydantic-core's string cache: its size, its longest string
_STRING_LISTS = frozenset({"otherMails", "proxyAddresses"})
_strings: dict[str, str] = {}  # the string cache of _share_strings
_T = TypeVar("_T")


def parse_users_page(data: Any, file: str, *, raw: bool = False) -> list[dict[str, Any]]:
    """Validate a ``GET /users`` (or delta) page and return its user objects as dicts keyed by Graph names.

    ``data`` is the decoded page, or with ``raw=True`` the file's bytes. Each dict holds only the fields the
    object carries (so a partial delta object says which fields it changes), with Graph's JSON names
    (``userPrincipalName``, ``@removed`` ...), unknown fields dropped.

    Raises:
        SnapshotError: exactly as :func:`parse_document` with :class:`UsersPage` (file, JSON path, value).
    """
    try:
        fast = _PAGE_ADAPTER.validate_json(data) if raw else _PAGE_ADAPTER.validate_python(data)
        return cast("list[dict[str, Any]]", fast["value"])
    except (pydantic.ValidationError, RecursionError, TypeError, ValueError):
        pass
    if raw:
        data = decode_json_bytes(data, file)
    page = parse_document(UsersPage, data, file)  # raises the precise error, or accepts what the fast path did not
    return [u.model_dump(by_alias=True, exclude_unset=True) for u in page.value]


def read_users_page(data: bytes, file: str, convert: Callable[[dict[str, Any]], _T]) -> list[_T]:
    """Validate a users page file's bytes and return ``convert(user)`` of each user object, in page order.

    ``convert`` gets the dicts :func:`parse_users_page` returns. A page of more than :data:`STREAM_BYTES` is
    decoded one user object at a time and each dict dropped once converted, so it costs its bytes and what
    ``convert`` keeps, not every decoded object at once. Anything the element-by-element reader does not read
    exactly as the whole-page reader does (a syntax or type error, a BOM, a second ``value`` key, a value nested
    too deeply) sends the page to :func:`parse_users_page`, which names the problem or reads it as before: the
    result and every error are the same on both paths.

    Raises:
        SnapshotError: exactly as :func:`parse_users_page`.
    """
    if len(data) > STREAM_BYTES:
        found = _stream_users(data, convert)
        if found is not None:
            return found
    return [convert(user) for user in parse_users_page(data, file, raw=True)]


class _Fallback(Exception):  # noqa: N818 -- not an error: the page goes to the whole-page reader
    """The element-by-element reader met something it leaves to :func:`parse_users_page`."""


class _Text:
    """A window of a UTF-8 page's text, decoded from its bytes as the reader moves on."""

    __slots__ = ("_data", "_decoder", "_done", "pos", "text")

    _solid = re.compile(r"[^ \t\n\r]").search  # the next character that is not a JSON blank
    _decode = json.JSONDecoder().raw_decode

    def __init__(self, data: bytes) -> None:
        self._data, self._done = memoryview(data), 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos = "", 0

    def _more(self, windows: int = 1) -> bool:
        """Decode the next ``windows`` windows of bytes onto the text (dropping what was read); ``False`` at the end.

        The text is joined once per call, so reading many windows at once copies what is kept once, not per window.
        """
        if self._done >= len(self._data):
            return False
        chunks = [self.text[self.pos:]]
        for _ in range(windows):
            if self._done >= len(self._data):
                break
            end = self._done + _STREAM_WINDOW
            try:
                chunks.append(self._decoder.decode(self._data[self._done:end], final=end >= len(self._data)))
            except UnicodeDecodeError:
                raise _Fallback from None
            self._done = end
        self.text, self.pos = "".join(chunks), 0
        return True

    def char(self) -> str:
        """Skip JSON blanks and return the next character ("" at the end of the page)."""
        while True:
            match = self._solid(self.text, self.pos)
            if match is not None:
                self.pos = match.start()
                return match.group()
            self.pos = len(self.text)
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        """Consume the next character, one of ``chars``."""
        found = self.char()
        if not found or found not in chars:
            raise _Fallback
        self.pos += 1
        return found

    def value(self) -> Any:
        """Decode the next JSON value (``json.loads`` semantics: duplicate keys, the last wins)."""
        self.char()
        while len(self.text) - self.pos < _STREAM_MARGIN and self._more():
            pass
        windows = 1
        while True:
            try:
                found, self.pos = self._decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # A value cut by the window's end fails at that end (within a \uXXXX escape) or in a string that
                # runs to it, and decodes once the window holds it; any other failure is the page's own. Each try
                # reads twice as many windows as the last, so a long value (or a string that never ends) costs
                # decodes of geometrically growing text, linear in all, not one decode from its start per window.
                cut = exc.pos >= len(self.text) - 6 or exc.msg.startswith("Unterminated string")
                if not cut or not self._more(windows):
                    raise _Fallback from None
                windows *= 2
            except (ValueError, RecursionError):  # an integer too long for int(), a value nested too deeply
                raise _Fallback from None
            else:
                return found


def _stream_users(data: bytes, convert: Callable[[dict[str, Any]], _T]) -> list[_T] | None:
    """Read a users page element by element (see :func:`read_users_page`); ``None`` for the whole-page reader."""
    try:
        return _stream_page(_Text(data), convert)
    except (_Fallback, pydantic.ValidationError):
        return None


def _stream_page(text: _Text, convert: Callable[[dict[str, Any]], _T]) -> list[_T]:
    """Read a page object whose ``value`` is read by :func:`_stream_value`; other members are skipped."""
    found: list[_T] | None = None
    text.expect("{")
    if text.char() == "}":
        text.pos += 1
    else:
        while True:
            key = text.value()
            if not isinstance(key, str):
                raise _Fallback
            text.expect(":")
            if key != "value":
                text.value()
            elif found is not None:  # a second "value": json.loads keeps the last one
                raise _Fallback
            else:
                found = _stream_value(text, convert)
            if text.expect(",}") == "}":
                break
    if found is None or text.char():  # no "value" (the whole-page reader names it), or text after the page
        raise _Fallback
    return found


def _stream_value(text: _Text, convert: Callable[[dict[str, Any]], _T]) -> list[_T]:
    """Read the ``value`` array of a page, validating and converting one user object at a time."""
    validate = _USER_ADAPTER.validate_python
    text.expect("[")
    found: list[_T] = []
    if text.char() == "]":
        text.pos += 1
        return found
    while True:
        found.append(convert(_share_strings(cast("dict[str, Any]", validate(text.value())))))
        if text.expect(",]") == "]":
            return found


def _share_strings(user: dict[str, Any]) -> dict[str, Any]:
    """Make equal short strings one object, as pydantic-core's process-wide string cache does for whole pages.

    Two objects with the same address then hold one string, which the address index reuses as its key. The
    cache is bounded like pydantic-core's (emptied at 16,384 strings of up to 64 characters); ``setdefault`` and
    ``clear`` are atomic, so threads reading pages at once share it safely.
    """
    if len(_strings) >= _STRING_CACHE:
        _strings.clear()
    share = _strings.setdefault
    for key, value in user.items():
        if value.__class__ is str:
            if len(value) <= _CACHED_STRING:
                user[key] = share(value, value)
        elif key in _STRING_LISTS and value:
            user[key] = [share(v, v) if len(v) <= _CACHED_STRING else v for v in value]
    return user


def decode_json_bytes(data: bytes, file: str) -> Any:
    """``json.loads`` of a file's bytes, with the errors a snapshot reports (file, position, value)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            file=file, value=exc.doc[max(0, exc.pos - 20):exc.pos + 20]) from None
    except RecursionError:
        raise SnapshotError("is nested too deeply to be a Graph response", file=file, value=file) from None
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"is not UTF-8 JSON ({exc.reason} at byte {exc.start})", file=file,
                            value=exc.object[exc.start:exc.start + 8]) from None
    except ValueError as exc:  # a number of more digits than int() reads (sys.get_int_max_str_digits)
        raise SnapshotError(f"holds a number too long to read ({exc}); fix the value or re-export it from Graph",
                            file=file, value=file) from None


def _federated_external(identities: list[dict[str, Any]] | None) -> bool:
    """Return whether a user has a ``federated`` identity issued by ``ExternalAzureAD``."""
    if identities:
        for i in identities:
            if i.get("signInType") == "federated" and i.get("issuer") == _EXTERNAL_ISSUER:
                return True
    return False


_M = TypeVar("_M", bound=BaseModel)


def _json_path(loc: tuple[int | str, ...]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_document(model: type[_M], data: Any, file: str) -> _M:
    """Validate a decoded JSON document against ``model``.

    Raises:
        SnapshotError: naming ``file``, the JSON path of the first problem and the offending value.
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        value = error.get("input")
        message = f"{error['msg'].lower()} (got {shown(value)}); fix the value or re-export it from Graph"
        raise SnapshotError(message, file=file, path=_json_path(tuple(error["loc"])), value=value) from None


def to_tenant(member: MtoTenant) -> Tenant:
    """Convert an MTO member row into a :class:`Tenant` (tenant id lower-cased)."""
    return Tenant(tenant_id=member.tenant_id.lower(), display_name=member.display_name, role=member.role,
                  state=member.state)


# -- user objects ------------------------------------------------------------------------------------------------

def _share(user_principal_name: str | None, mail: str | None,
           other_mails: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """Return the UPN and ``otherMails`` with values equal to ``mail`` replaced by the ``mail`` object itself."""
    if mail is not None:
        if user_principal_name == mail:
            user_principal_name = mail
        if other_mails and mail in other_mails:
            other_mails = tuple(mail if m == mail else m for m in other_mails)
    return user_principal_name, other_mails


_intern = sys.intern


def user_from_dict(obj: dict[str, Any]) -> DirectoryUser:
    """Build the hot-path record of a user dict of :func:`parse_users_page`.

    Equal strings are shared and few-valued fields interned: a million users hold each such value once.
    """
    get = obj.get
    mail = get("mail")
    other = get("otherMails")
    upn, other_mails = _share(get("userPrincipalName"), mail, tuple(other) if other else ())
    proxies = get("proxyAddresses")
    user_type = get("userType")
    creation_type = get("creationType")
    return DirectoryUser(
        obj["id"], upn, mail, other_mails, tuple(proxies) if proxies else (),
        None if user_type is None else _intern(user_type),
        None if creation_type is None else _intern(creation_type),
        get("accountEnabled"), _federated_external(get("identities")),
    )


# Graph field of a delta entry -> the DirectoryUser field it sets
_DELTA_KEYS = (("userPrincipalName", "user_principal_name"), ("mail", "mail"), ("otherMails", "other_mails"),
               ("proxyAddresses", "proxy_addresses"), ("userType", "user_type"),
               ("creationType", "creation_type"), ("accountEnabled", "account_enabled"),
               ("identities", "federated_external"))


def apply_entry(current: DirectoryUser | None, obj: dict[str, Any]) -> DirectoryUser | None:
    """Return an object after one ``/users/delta`` entry (``None`` when the entry is ``@removed``).

    A partial entry changes only the fields it carries; an entry for an unknown id is the whole object.
    """
    if obj.get("@removed") is not None:
        return None
    full = user_from_dict(obj)
    if current is None:
        return full
    changes = {name: getattr(full, name) for key, name in _DELTA_KEYS if key in obj}
    if not changes:
        return current
    new = attrs.evolve(current, **changes)
    upn, other_mails = _share(new.user_principal_name, new.mail, new.other_mails)
    if upn is not new.user_principal_name or other_mails is not new.other_mails:
        new = attrs.evolve(new, user_principal_name=upn, other_mails=other_mails)
    return new
