"""The only module that knows Microsoft Graph JSON.

Pydantic models of the Graph v1.0 responses a snapshot folder holds (design section 2). They **ignore** unknown
fields, because Graph adds fields over time, but are strict about the types of the fields mtotrust reads: a
``"true"`` string where Graph sends a boolean is a :class:`~mtotrust.errors.SnapshotError`, not a guess.
"""

from __future__ import annotations

from typing import Annotated, Any, Required, TypeVar, cast

import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this TypedDict before Python 3.12

from mtotrust.errors import SnapshotError, shown
from mtotrust.model import DirectoryUser, Tenant

__all__ = [
    "DomainRow",
    "DomainsFile",
    "GraphUser",
    "MtoTenantsResponse",
    "OrganizationResponse",
    "PartnersResponse",
    "UsersPage",
    "parse_document",
    "parse_users_page",
    "to_directory_user",
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


def decode_json_bytes(data: bytes, file: str) -> Any:
    """``json.loads`` of a file's bytes, with the errors a snapshot reports (file, position, value)."""
    import json

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


def federated_external_dicts(identities: list[dict[str, Any]] | None) -> bool:
    """:func:`federated_external` for identities given as dicts (from :func:`parse_users_page`)."""
    if identities:
        for i in identities:
            if i.get("signInType") == "federated" and i.get("issuer") == _EXTERNAL_ISSUER:
                return True
    return False


_M = TypeVar("_M", bound=BaseModel)

# GraphUser fields that carry a DirectoryUser field of the same name (``identities`` is handled apart).
_DELTA_FIELDS = ("user_principal_name", "mail", "other_mails", "proxy_addresses", "user_type", "creation_type",
                 "account_enabled")


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


def federated_external(identities: list[ObjectIdentity] | None) -> bool:
    """Return whether a user has a ``federated`` identity issued by ``ExternalAzureAD``."""
    return any(i.sign_in_type == "federated" and i.issuer == _EXTERNAL_ISSUER for i in identities or ())


def to_directory_user(user: GraphUser) -> DirectoryUser:
    """Convert a validated Graph user into the hot-path record (strings interned, lists made tuples)."""
    return DirectoryUser(
        id=user.id,
        user_principal_name=user.user_principal_name,
        mail=user.mail,
        other_mails=tuple(user.other_mails or ()),
        proxy_addresses=tuple(user.proxy_addresses or ()),
        user_type=user.user_type,
        creation_type=user.creation_type,
        account_enabled=user.account_enabled,
        federated_external=federated_external(user.identities),
    )


def delta_changes(user: GraphUser) -> dict[str, Any]:
    """Return the ``DirectoryUser`` fields a partial delta entry carries, converted like a full object."""
    full = to_directory_user(user)
    carried = user.model_fields_set
    changes = {name: getattr(full, name) for name in _DELTA_FIELDS if name in carried}
    if "identities" in carried:
        changes["federated_external"] = full.federated_external
    return changes


def to_tenant(member: MtoTenant) -> Tenant:
    """Convert an MTO member row into a :class:`Tenant` (tenant id lower-cased)."""
    return Tenant(tenant_id=member.tenant_id.lower(), display_name=member.display_name, role=member.role,
                  state=member.state)
