"""The directory a snapshot indexes, its address index, and its content id.

- :class:`Directory`: what a snapshot is built from (tenant, domains, MTO tenants, partner flags, users).
- the address index maps a normalised address to the one :class:`DirectoryUser` that answers to it, or to a
  tuple of them (sorted by id) for the rare ambiguous address. An index key *is* the directory's own string
  object whenever the raw value is already in normal form; :class:`Normalizer` computes the keys (the only
  place that decides which addresses an object answers to) and :func:`build_index` builds the index.
- :func:`content_id`: the stable ``Snapshot.id`` over everything resolution reads. Users enter it through an
  order-independent sum of per-user digests, so a delta updates it at the cost of the users it changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from mtotrust._address import (
    ASCII_DOT_ATOM,
    MAX_ADDRESS_LENGTH,
    normalize_address,
    proxy_smtp_address,
    split_ext_upn,
)
from mtotrust._errors import IdentityError
from mtotrust._model import DirectoryUser, Tenant

__all__ = ["DIGEST_MODULUS", "Directory", "Index", "Normalizer", "add_to_index", "build_index", "by_id", "content_id",
           "user_addresses", "user_digest", "users_digest"]

Index = dict[str, "DirectoryUser | tuple[DirectoryUser, ...]"]

# An ASCII RFC 5322 dot-atom local part (the rule of mtotrust._address), "@", an ASCII letter-digit-dot-hyphen
# domain: nothing to trim, no control character, exactly one "@" (group 1: the domain).
_ASCII_LOCAL = re.compile(ASCII_DOT_ATOM).fullmatch
_FAST_ADDRESS = re.compile(rf"{ASCII_DOT_ATOM}@([A-Za-z0-9.-]+)").fullmatch


class Normalizer:
    """Normalises directory values exactly as :func:`~mtotrust._address.normalize_address` does, faster.

    ASCII values ``dot-atom@domain`` whose domain was already seen take a fast path (one regex, ``lower``);
    anything else goes through ``normalize_address`` itself, whose answer also teaches the fast path the
    domain. The result reuses the raw string object when it is already normal.
    """

    __slots__ = ("local_domains", "lower_domains")

    def __init__(self, local_domains: frozenset[str]) -> None:
        self.local_domains = local_domains
        # raw ASCII domain texts whose A-label is their lower case, learnt from normalize_address's answers
        # (the A-label is a pure function of the domain text)
        self.lower_domains: set[str] = set()

    def address(self, value: str) -> str | None:
        """Return the normal form ``local@a-label`` of ``value``, or ``None`` when it is not a valid address."""
        match = _FAST_ADDRESS(value)
        if match is not None and len(value) <= MAX_ADDRESS_LENGTH and match.group(1) in self.lower_domains:
            # an ASCII dot-atom local part at a domain whose A-label is its lower case: the normal form is the
            # lower case of the whole value (no blanks to trim: the pattern has none)
            key = value.lower()
            return value if key == value else key
        try:
            local, a_label = normalize_address(value)
        except IdentityError:
            return None
        domain = value.strip(" \t").partition("@")[2]
        if domain.isascii() and a_label == domain.lower():
            self.lower_domains.add(domain)
        key = f"{local}@{a_label}"
        return value if key == value else key

    def ext_home(self, local: str, upn: str) -> str | None:
        """Return the ``alias@homedomain`` a normalised ``#EXT#`` local part encodes (``split_ext_upn``), or None."""
        if local.endswith("#ext#") and local.count("#ext#") == 1:
            alias, sep, home = local[:-5].rpartition("_")
            # a known ASCII home domain (its A-label is itself: local is lower case) and an ASCII dot-atom alias
            if sep and home in self.lower_domains and _ASCII_LOCAL(alias) is not None:
                return f"{alias}@{home}"
        try:
            decoded = split_ext_upn(local, upn)
        except IdentityError:
            return None
        return None if decoded is None else f"{decoded[0]}@{decoded[1]}"

    def keys(self, user: DirectoryUser) -> list[str]:
        """Every normalised address ``user`` answers to, without repeats (the object-match step of resolution).

        ``mail``, the user principal name (an ``#EXT#`` name at a local verified domain by its decoded
        ``alias@homedomain`` only: the resolver never looks one up undecoded), ``otherMails``, ``SMTP:``/``smtp:``
        proxy addresses. Values that are not valid addresses are skipped: they can never equal a valid identity.
        """
        found: list[str] = []
        seen: set[str] = set()  # the keys of ``found``: a membership test per value stays O(1) for 100k values
        norm = self.address
        mail = user.mail
        if mail:
            key = norm(mail)
            if key is not None:
                found.append(key)
                seen.add(key)
        upn = user.user_principal_name
        if upn:
            key = (found[0] if found else None) if upn == mail else norm(upn)
            local, _, domain = key.rpartition("@") if key is not None else ("", "", "")
            if "#ext#" in local and domain in self.local_domains:
                # An #EXT# name at a local domain is only ever looked up decoded (the resolver decodes it first), so
                # it is indexed by the address it decodes to, not by itself.
                key = self.ext_home(local, upn)
            if key is not None and key not in seen:
                found.append(key)
                seen.add(key)
        for value in user.other_mails:
            if value and value != mail:
                key = norm(value)
                if key is not None and key not in seen:
                    found.append(key)
                    seen.add(key)
        for proxy in user.proxy_addresses:
            address = proxy_smtp_address(proxy)
            if address and address != mail:
                key = norm(address)
                if key is not None and key not in seen:
                    found.append(key)
                    seen.add(key)
        return found


def user_addresses(user: DirectoryUser, local_domains: frozenset[str]) -> set[str]:
    """Return every normalised address a directory object answers to (the object-match step of resolution)."""
    return set(Normalizer(local_domains).keys(user))


def add_to_index(index: Index, key: str, user: DirectoryUser) -> None:
    """Add ``user`` under ``key`` (the slow branch of an insert: the key is already taken)."""
    prev = index[key]
    if prev.__class__ is tuple:
        if all(u.id != user.id for u in prev):
            index[key] = tuple(sorted((*prev, user), key=by_id))
    elif prev.id != user.id:  # type: ignore[union-attr]
        index[key] = tuple(sorted((prev, user), key=by_id))  # type: ignore[arg-type]


def by_id(user: DirectoryUser) -> str:
    """Sort key of the objects of an ambiguous address."""
    return user.id


def build_index(users: Iterable[DirectoryUser], local_domains: frozenset[str]) -> Index:
    """Return the address index of ``users``: every address they answer to → its object(s)."""
    index: Index = {}
    keys = Normalizer(local_domains).keys
    setdefault = index.setdefault
    for user in users:
        for key in keys(user):
            if setdefault(key, user) is not user:
                add_to_index(index, key, user)
    return index


@attrs.frozen(slots=True)
class Directory:
    """What a snapshot is built from, before indexing."""

    tenant_id: str
    display_name: str | None
    local_domains: frozenset[str]
    tenants: dict[str, Tenant]
    domain_tenants: dict[str, str]
    partners: dict[str, bool | None]
    users: Mapping[str, DirectoryUser]


# -- content id --------------------------------------------------------------------------------------------------

DIGEST_MODULUS = 1 << 256
"""Users digests are kept modulo this (the store writes one as 64 hex digits)."""


def user_digest(user: DirectoryUser, _sha256: Any = hashlib.sha256, _from_bytes: Any = int.from_bytes) -> int:
    """Return the digest of the fields of ``user`` that resolution reads, as an int (see :func:`content_id`).

    The canonical text is ``ascii()`` of the field tuple: every non-ASCII character escaped, so it does not depend
    on the Unicode version of the Python that computes it (``repr`` would).
    """
    canonical = ascii((user.id, user.user_principal_name, user.mail, user.other_mails, user.proxy_addresses,
                       user.user_type, user.creation_type, user.account_enabled, user.federated_external))
    return _from_bytes(_sha256(canonical.encode()).digest(), "big")  # type: ignore[no-any-return]


def users_digest(users: Iterable[DirectoryUser]) -> int:
    """Return the order-independent digest of many users: the sum of their digests modulo 2**256."""
    return sum(map(user_digest, users)) % DIGEST_MODULUS


def content_id(directory: Directory, users: int) -> str:
    """Return ``Snapshot.id``: ``"sha256:"`` and 32 hex digits over everything resolution reads.

    ``users`` is :func:`users_digest` of the directory's users (kept up to date by deltas). Display names,
    roles, file layout and page order take no part; a change that can change a resolution changes the id.
    """
    header = json.dumps({
        "tenant_id": directory.tenant_id,
        "local_domains": sorted(directory.local_domains),
        "tenants": sorted([t.tenant_id, t.state] for t in directory.tenants.values()),
        "domains": sorted(directory.domain_tenants.items()),
        "partners": sorted(directory.partners.items()),
        "users": f"{users % DIGEST_MODULUS:064x}",
    }, separators=(",", ":"), sort_keys=True)
    return "sha256:" + hashlib.sha256(header.encode()).hexdigest()[:32]
