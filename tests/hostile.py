"""Hostile input for mtotrust: a curated corpus, hypothesis strategies and the reliability harness.

Everything here is importable by the tests (``tests/test_reliability_*.py``) and by ``scripts/reliability.py``,
which runs the same corpus and harness and prints the figures of ``docs/reliability.md``.

The corpus is built from the bundled sample MTO (``Snapshot.sample()``): every local and MTO domain gets its
confusable look-alikes, every Graph file gets its malformed variants. The checks are *fail-closed* invariants,
not expected strings:

* a hostile identity never resolves above ``external``; mail from it is tagged even with an authentication
  result that passes for its own domain; DLP with it as a recipient is ``NotInOrganization``;
* a forged or malformed ``Authentication-Results`` never authenticates a sender;
* a malformed document makes its loader raise the documented error (``SnapshotError``, ``PolicyError``,
  ``IdentityError``), never anything else;
* every call finishes within a generous wall-clock guard (no speed is asserted, only that nothing hangs).
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import datetime as dt
import importlib.resources
import json
import os
import random
import signal
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import mtotrust
from mtotrust import (
    DlpDecision,
    Identity,
    IdentityError,
    LabelDecision,
    MailAuth,
    MailDecision,
    Policy,
    PolicyError,
    Resolution,
    Snapshot,
    SnapshotError,
    TeamsDecision,
    Trust,
    TrustEngine,
    parse_identity,
)
from mtotrust._address import domain_skeleton, normalize_domain
from mtotrust._confusables import _load as _confusable_table
from mtotrust._policy import TEAMS_ACTIONS

# -- the sample ------------------------------------------------------------------------------------------------

SAMPLE_DIR = Path(str(importlib.resources.files("mtotrust") / "sample"))
SAMPLE = Snapshot.sample()
LOCAL_DOMAINS = tuple(sorted(SAMPLE.local_domains))
MTO_DOMAINS = tuple(sorted(SAMPLE.mto_domains - SAMPLE.local_domains))
KNOWN_DOMAINS = tuple(sorted(set(SAMPLE.local_domains) | set(SAMPLE.domain_tenants)))
EXT_HOST = "contoso.onmicrosoft.com"
TRUSTED_ID = "mx.contoso.com"
MTO_SENDER = "cameron@fabrikam.com"  # an MTO member: authenticated mail from it is untagged
LOCAL_SENDER = "megan@contoso.com"
GUARD_SECONDS = 30.0  # per input: only "it finished", never a speed claim

LABELS = {"Confidential": {"internal": "Co-Author", "mto_member": "Viewer"},
          "Highly Confidential": {"internal": ["VIEW", "DOCEDIT", "EDIT"]}}
POLICY = Policy.from_data({"mail": {"trusted_authserv_ids": [TRUSTED_ID]}, "labels": LABELS})
POLICY_EXO = Policy.from_data({"mail": {"trusted_authserv_ids": [TRUSTED_ID],
                                        "accept_exchange_online_results": True}, "labels": LABELS})


def sample_documents() -> dict[str, Any]:
    """Return the sample folder as ``Snapshot.from_documents`` keyword arguments (fresh copies)."""
    def read(name: str) -> Any:
        return json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))

    return {
        "organization": read("organization.json"), "mto": read("mto.json"), "domains": read("domains.json"),
        "partners": read("partners.json"),
        "users": [read(f"users/{p.name}") for p in sorted((SAMPLE_DIR / "users").glob("*.json"))],
        "delta": [read(f"delta/{p.name}") for p in sorted((SAMPLE_DIR / "delta").glob("*.json"))],
    }


# -- a wall-clock guard ----------------------------------------------------------------------------------------

class Hang(AssertionError):  # noqa: N818 - reads as the finding it is
    """A call did not finish within the guard."""


_guard_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hostile-guard")


def bounded(fn: Callable[..., Any], *args: Any, timeout: float = GUARD_SECONDS, **kwargs: Any) -> Any:
    """Run ``fn`` on a worker thread; return its result, re-raise its exception, or raise :class:`Hang`."""
    future = _guard_pool.submit(fn, *args, **kwargs)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise Hang(f"{getattr(fn, '__qualname__', fn)} did not finish within {timeout} s") from None


# -- confusables -----------------------------------------------------------------------------------------------

def _lookalikes() -> dict[str, dict[str, list[str]]]:
    """ASCII letter -> script -> non-ASCII characters whose UTS-39 prototype is that letter."""
    table: dict[str, dict[str, list[str]]] = {}
    for char, proto in sorted(_confusable_table()[0].items()):
        if len(proto) != 1 or not proto.isascii() or not proto.isalnum() or char.isascii():
            continue
        script = unicodedata.name(char, "UNNAMED").split()[0]
        table.setdefault(proto, {}).setdefault(script, []).append(char)
    return table


LOOKALIKES = _lookalikes()
SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "LATIN", "CHEROKEE", "MATHEMATICAL", "FULLWIDTH")
ASCII_SWAPS = (("m", "rn"), ("w", "vv"), ("l", "1"), ("l", "I"), ("o", "0"), ("i", "l"), ("d", "cl"))


def _substitute(label: str, script: str, every: bool) -> Iterator[str]:
    chars = list(label)
    if every:
        out = [LOOKALIKES.get(c, {}).get(script, [c])[0] for c in chars]
        if out != chars:
            yield "".join(out)
        return
    for i, c in enumerate(chars):
        for alt in LOOKALIKES.get(c, {}).get(script, [])[:2]:
            yield "".join([*chars[:i], alt, *chars[i + 1:]])


def confusable_domains() -> list[tuple[str, str]]:
    """Return ``(look-alike, original)`` for every local and MTO domain of the sample (and Adatum).

    Per domain: the whole first label rewritten in each script as far as that script has look-alikes
    (whole-script where every letter has one), every single-character substitution, ASCII tricks (``rn`` for
    ``m``, ``vv`` for ``w``, ``1`` for ``l``), the same in other labels, and upper-case/compatibility forms
    (which UTS-46 maps back to the domain itself: those are the domain, not a look-alike).
    """
    seen: dict[str, str] = {}
    for domain in KNOWN_DOMAINS:
        labels = domain.split(".")
        for pos, label in enumerate(labels):
            variants: list[str] = []
            for script in SCRIPTS:
                variants += _substitute(label, script, every=True)
                if pos == 0:
                    variants += _substitute(label, script, every=False)
            for old, new in ASCII_SWAPS:
                if old in label:
                    variants.append(label.replace(old, new, 1))
            variants.append(label.upper())
            for variant in variants:
                candidate = ".".join([*labels[:pos], variant, *labels[pos + 1:]])
                seen.setdefault(candidate, domain)
    seen.pop("", None)
    for known in KNOWN_DOMAINS:
        seen.pop(known, None)
    return sorted(seen.items())


CONFUSABLES = confusable_domains()


def confusable_expectation(variant: str, original: str) -> str:
    """``"same"`` (UTS-46 maps it to a known domain), ``"invalid"``, ``"confusable"`` or ``"foreign"``."""
    try:
        a_label = normalize_domain(variant)
    except IdentityError:
        return "invalid"
    if a_label in KNOWN_DOMAINS:
        return "same"
    if domain_skeleton(a_label) in {domain_skeleton(d) for d in KNOWN_DOMAINS}:
        return "confusable"
    return "foreign"


# -- hostile identities ----------------------------------------------------------------------------------------

CONTROL_CHARS = [chr(c) for c in range(0x20)] + ["\x7f", "\x85"]
INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u202d", "\u2066", "\u061c", "\u00ad",
              "\u00a0", "\u2007", "\u3000", "\u2028", "\u2029", "\u180e", "\ue000", "\U000e0041"]
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\udcff"]
HUGE = 100_000


def _hostile_identity_strings() -> list[str]:
    out: list[str] = []
    base = LOCAL_SENDER
    local, _, domain = base.partition("@")
    for ch in CONTROL_CHARS + INVISIBLES + LONE_SURROGATES:
        out += [ch + base, local + ch + "@" + domain, local + "@" + ch + domain, base + ch + ".evil.example",
                local + "@" + domain.replace(".", ch + ".", 1)]
        out.append(MTO_SENDER.replace("@", ch + "@"))
    out += [
        base + "\r\nBcc: victim@example.org", base + "\nX-Injected: 1", base + "\x00.evil.example",
        "\x00", "\r\n", "megan@contoso.com\r", "megan@contoso.com\n", "\rmegan@contoso.com",
        "megan\uff20contoso.com", "megan\ufe6bcontoso.com", "megan@contoso.com\uff20evil.example",
        "megan\uff20evil.example@contoso.com", "megan@@contoso.com", "megan@contoso.com@evil.example",
        "@contoso.com", "megan@", "@", "", " ", "\t", " \t ", "megan", "not-an-address",
        '"megan"@contoso.com', '"megan@contoso.com"', '"a b"@contoso.com', "(comment)megan@contoso.com",
        "megan(comment)@contoso.com", "<megan@contoso.com>", "Megan <megan@contoso.com>",
        "megan@[127.0.0.1]", "megan@[IPv6:::1]", "megan@contoso.com.", "megan@.contoso.com",
        "megan@contoso..com", ".megan@contoso.com", "megan.@contoso.com", "me..gan@contoso.com",
        "megan@contoso.com..", "megan@-contoso.com", "megan@contoso-.com", "megan@contoso_com.com",
        "megan@xn--.com", "megan@xn--zzzzzzzzz.com", "megan@xn--contoso-.com",
        "megan@contoso.com/evil", "megan@contoso.com:25", "megan@contoso.com?x=1", "megan@contoso.com%00",
        "megan%contoso.com@evil.example", "evil.example!megan@contoso.com",
        "a" * HUGE + "@contoso.com", "megan@" + "a" * HUGE + ".com", "@" * HUGE, "a" * HUGE,
        ("megan@" + "a." * 64 + "com"), ("megan@" + "a." * 200 + "contoso.com"),
        "megan@" + "a" * 64 + ".com", "megan@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63,
        "a" * 65 + "@contoso.com", "m" * 310 + "@contoso.com", "m" * 400 + "@fabrikam.com",
        "megan@" + ".".join(["x"] * 127), "\u0301megan@contoso.com", "megan\u0301" * 1000 + "@contoso.com",
        "megan@contoso.com" + "\u0301" * 50, "ｍｅｇａｎ@contoso.com\u200b",
        "megan@" + "\U0001f600" * 50 + ".com", "\ud83d\ude00@contoso.com", "megan@con\ud800toso.com",
        "cameron@fabrikam.com\x00@contoso.com", "cameron@fabrikam.com\r\n@contoso.com",
        # #EXT# names at a local domain that are malformed: invalid, never decoded
        "cameronfabrikam.com#EXT#@contoso.onmicrosoft.com", "cameron_fabrikam.com#EXT##EXT#@contoso.onmicrosoft.com",
        "cameron_fabrikam.com#EXT#x_litware.com#EXT#@contoso.onmicrosoft.com",
        "_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        "cameron_#EXT#@contoso.onmicrosoft.com", "#EXT#@contoso.onmicrosoft.com", "_#EXT#@contoso.onmicrosoft.com",
        "cameron_fabrikam.com#EXT#tail@contoso.onmicrosoft.com", "#EXT#cameron_fabrikam.com@contoso.onmicrosoft.com",
        "cameron_fabrikam..com#EXT#@contoso.onmicrosoft.com", "cameron_fabrikam.com.#EXT#@contoso.onmicrosoft.com",
        "cameron_fabrik\u0430m.com#EXT#@contoso.onmicrosoft.com", "cameron_fabrikarn.com#EXT#@contoso.onmicrosoft.com",
        "cameron_fabrikam.com\u200b#EXT#@contoso.onmicrosoft.com", "cameron__#EXT#@contoso.onmicrosoft.com",
        "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com.", "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com\r\n",
        "cameron_fabrikam.com#EXT#@cont\u043eso.onmicrosoft.com", "cameron_evil.example#EXT#@contoso.onmicrosoft.com",
        "cameron_" + "x" * 400 + ".com#EXT#@contoso.onmicrosoft.com",
        "cameron_contoso.com#EXT#@contoso.onmicrosoft.com",  # decodes to a local address: internal? see EXT_CASES
    ]
    return out


# Identities whose answer the corpus states exactly (the #EXT# decoding rules of docs/concepts.md).
EXT_CASES: list[tuple[str, Trust]] = [
    ("cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com", Trust.MTO_MEMBER),
    ("CAMERON_FABRIKAM.COM#ext#@CONTOSO.ONMICROSOFT.COM", Trust.MTO_MEMBER),
    ("cameron_fabrikam.com#EXT#@contoso.com", Trust.MTO_MEMBER),  # any local verified domain decodes
    ("cameron_fabrikam.com#EXT#@fabrikam.com", Trust.EXTERNAL),  # foreign host: an ordinary foreign address
    ("cameron_fabrikam.com#EXT#@evil.example", Trust.EXTERNAL),
    ("cameronfabrikam.com#EXT#@contoso.onmicrosoft.com", Trust.UNTRUSTED),  # no "_"
    ("cameron_fabrikam.com#EXT##EXT#@contoso.onmicrosoft.com", Trust.UNTRUSTED),  # several #EXT#
    ("a_b_fabrikam.com#EXT#@contoso.onmicrosoft.com", Trust.EXTERNAL),  # last "_" separates: a_b@fabrikam.com
    ("cameron_fabrikarn.com#EXT#@contoso.onmicrosoft.com", Trust.UNTRUSTED),  # decodes to a look-alike
]

# Hostile identities that are exact strings (so hashable, CLI-able where argv allows them).
HOSTILE_STRINGS = _hostile_identity_strings()
# Anything but a str or Identity, and Identities carrying hostile fields.
HOSTILE_OBJECTS: list[object] = [
    None, 0, 1.5, b"megan@contoso.com", bytearray(b"megan@contoso.com"), ["megan@contoso.com"],
    {"address": "megan@contoso.com"}, object(), Trust.INTERNAL, ("megan@contoso.com",),
    Identity(None), Identity(123), Identity(b"megan@contoso.com"),  # type: ignore[arg-type]
    Identity("megan@contoso.com", tenant_id=123),  # type: ignore[arg-type]
    Identity("megan@contoso.com", tenant_id="x" * HUGE),
    Identity("megan@contoso.com", tenant_id="22222222-2222-4222-8222-222222222222"),  # local domain, foreign id
    Identity("cameron@fabrikam.com", tenant_id="44444444-4444-4444-8444-444444444444"),
    Identity("cameron@fabrikam.com", tenant_id="22222222-2222-4222-8222-222222222222\x00"),
    Identity("cameron@fabrikam.com", tenant_id="\ud800"),
    Identity("cameron@fabrikam.com", tenant_id=""),
    Identity("cameron@fabrikam.com", tenant_id="11111111-1111-4111-8111-111111111111"),
    Identity("cameron@fabrikam.com\x00", tenant_id="22222222-2222-4222-8222-222222222222"),
]


def confusable_identities() -> list[tuple[str, str, str]]:
    """``(address, original domain, expectation)`` for every look-alike of every known domain."""
    out = []
    for variant, original in CONFUSABLES:
        local = "megan" if original in LOCAL_DOMAINS else "cameron"
        out.append((f"{local}@{variant}", original, confusable_expectation(variant, original)))
    return out


CONFUSABLE_IDENTITIES = confusable_identities()


# -- Authentication-Results ------------------------------------------------------------------------------------

H = "header.from=fabrikam.com"
# Raw headers that must NOT authenticate cameron@fabrikam.com under POLICY (trusted id mx.contoso.com).
FORGED_AUTH: list[tuple[str, object]] = [
    ("forged authserv-id", f"mx.contoso.com.evil.example; dmarc=pass {H}"),
    ("look-alike authserv-id", f"mx.cont\u043eso.com; dmarc=pass {H}"),
    ("authserv-id prefix", f"mx.contoso; dmarc=pass {H}"),
    ("authserv-id in a comment only", f"(mx.contoso.com) evil.example; dmarc=pass {H}"),
    ("untrusted id, quoted", f'"evil.example"; dmarc=pass {H}'),
    ("exchange form not accepted", f"spf=pass smtp.mailfrom=fabrikam.com; dmarc=pass action=none {H};"
                                   "compauth=pass reason=100"),
    ("unknown method only", f"mx.contoso.com; x-trustme=pass {H}"),
    ("unknown method spelled like dmarc", f"mx.contoso.com; dmarc2=pass {H}"),
    ("spf only", "mx.contoso.com; spf=pass smtp.mailfrom=fabrikam.com"),
    ("dkim only", "mx.contoso.com; dkim=pass header.d=fabrikam.com"),
    ("dmarc none", f"mx.contoso.com; dmarc=none {H}"),
    ("dmarc bestguesspass", f"mx.contoso.com; dmarc=bestguesspass {H}"),
    ("dmarc temperror", f"mx.contoso.com; dmarc=temperror {H}"),
    ("dmarc pass and fail", f"mx.contoso.com; dmarc=pass {H}; dmarc=fail {H}"),
    ("dmarc fail then pass", f"mx.contoso.com; dmarc=fail {H}; dmarc=pass {H}"),
    ("dmarc pass, compauth fail", f"mx.contoso.com; dmarc=pass {H}; compauth=fail reason=000"),
    ("compauth pass no reason", f"mx.contoso.com; compauth=pass {H}"),
    ("compauth pass reason 200", f"mx.contoso.com; compauth=pass reason=200 {H}"),
    ("compauth pass reason 1000", f"mx.contoso.com; compauth=pass reason=1000 {H}"),
    ("compauth pass reason 10a", f"mx.contoso.com; compauth=pass reason=10a {H}"),
    ("compauth pass reason quoted text", f'mx.contoso.com; compauth=pass reason="100 ok" {H}'),
    ("compauth softpass", f"mx.contoso.com; compauth=softpass reason=100 {H}"),
    ("result hidden in comment", f"mx.contoso.com; dmarc=(pass) fail {H}"),
    ("pass in a comment", f"mx.contoso.com; dmarc=none (dmarc=pass {H})"),
    ("misaligned header.from", "mx.contoso.com; dmarc=pass header.from=evil.example"),
    ("subdomain header.from", "mx.contoso.com; dmarc=pass header.from=mail.fabrikam.com"),
    ("parent-suffix header.from", "mx.contoso.com; dmarc=pass header.from=fabrikam.com.evil.example"),
    ("look-alike header.from", "mx.contoso.com; dmarc=pass header.from=fabrik\u0430m.com"),
    ("no header.from", "mx.contoso.com; dmarc=pass"),
    ("empty header.from", 'mx.contoso.com; dmarc=pass header.from=""'),
    ("header.from with NUL", "mx.contoso.com; dmarc=pass header.from=fabrikam.com\x00"),
    ("CRLF injection", f"mx.contoso.com; dmarc=pass {H}\r\nX-Evil: 1"),
    ("bare LF", f"mx.contoso.com; dmarc=fail {H}\ndmarc=pass"),
    ("NUL inside", f"mx.contoso.com; dmarc=pass\x00 {H}"),
    ("unclosed comment", f"mx.contoso.com; dmarc=pass {H} (unclosed"),
    ("unclosed quote", 'mx.contoso.com; dmarc=pass header.from="fabrikam.com'),
    ("version 2", f"mx.contoso.com 2; dmarc=pass {H}"),
    ("huge version", f"mx.contoso.com {'9' * 5000}; dmarc=pass {H}"),
    ("none plus result", f"mx.contoso.com; none; dmarc=pass {H}"),
    ("none", "mx.contoso.com; none"),
    ("auth=pass for a foreign sender", "mx.contoso.com; auth=pass smtp.auth=cameron@fabrikam.com"),
    ("over 64 KiB", f"mx.contoso.com; dmarc=pass {H}; " + "x-pad=none; " * 7000),
    ("deeply nested comment", f"mx.contoso.com; dmarc=pass {H} " + "(" * 50_000 + ")" * 49_999),
    ("100 KB of comment", f"mx.contoso.com; dmarc=pass {H} (" + "a" * HUGE),
    ("topmost unparsable, lower genuine", [f"mx.contoso.com; dmarc=pass {H} (", f"mx.contoso.com; dmarc=pass {H}"]),
    ("topmost fail, lower pass", [f"mx.contoso.com; dmarc=fail {H}", f"mx.contoso.com; dmarc=pass {H}"]),
    ("topmost none, lower pass", ["mx.contoso.com; none", f"mx.contoso.com; dmarc=pass {H}"]),
    ("topmost misaligned, lower pass", ["mx.contoso.com; dmarc=pass header.from=evil.example",
                                        f"mx.contoso.com; dmarc=pass {H}"]),
    ("forged headers only", [f"evil.example; dmarc=pass {H}", f"mx.contoso.com.evil; dmarc=pass {H}"]),
    ("empty list", []),
    ("empty string", ""),
    ("only spaces", "   "),
    ("only a field name", "Authentication-Results:"),
    ("non-str in list", [None]),
    ("bytes in list", [f"mx.contoso.com; dmarc=pass {H}".encode()]),
    ("bytes", f"mx.contoso.com; dmarc=pass {H}".encode()),
    ("int", 1),
    ("dict", {"dmarc": "pass", "header_from": "fabrikam.com"}),
    ("mixed list", [f"mx.contoso.com; dmarc=pass {H}", 1]),
    ("lone surrogate", "mx.contoso.com; dmarc=pass header.from=fabrikam.com\ud800"),
    ("MailAuth fail", MailAuth(dmarc="fail", header_from="fabrikam.com")),
    ("MailAuth misaligned", MailAuth(dmarc="pass", header_from="evil.example")),
    ("MailAuth compauth fail", MailAuth(dmarc="pass", compauth="fail", header_from="fabrikam.com")),
    ("MailAuth smtp_auth for a foreign sender", MailAuth(smtp_auth=True)),
    ("MailAuth nothing", MailAuth()),
]
# Controls: these DO authenticate cameron@fabrikam.com (so the forged ones fail for the right reason).
GENUINE_AUTH: list[tuple[str, object]] = [
    ("plain", f"mx.contoso.com; dmarc=pass {H}"),
    ("upper-case id", f"MX.CONTOSO.COM; dmarc=pass {H}"),
    ("quoted id (RFC 8601 value)", f'"mx.contoso.com"; dmarc=pass {H}'),
    ("version 1 and comments", f"mx.contoso.com 1 (boundary); dmarc=pass (p=reject) {H}"),
    ("quoted header.from", 'mx.contoso.com; dmarc=pass header.from="fabrikam.com"'),
    ("with field name", f"Authentication-Results: mx.contoso.com; dmarc=pass {H}"),
    ("folded", f"mx.contoso.com;\r\n\tdmarc=pass\r\n {H}"),
    ("compauth 100", f"mx.contoso.com; compauth=pass reason=100 {H}"),
    ("forged header below", [f"mx.contoso.com; dmarc=pass {H}", f"mx.contoso.com; dmarc=fail {H}"]),
    ("forged header above", [f"evil.example; dmarc=fail {H}", f"mx.contoso.com; dmarc=pass {H}"]),
    ("MailAuth", MailAuth(dmarc="pass", header_from="fabrikam.com")),
]
# Under POLICY_EXO the topmost header without an authserv-id counts; these must still not authenticate.
FORGED_AUTH_EXO: list[tuple[str, object]] = [
    ("topmost exchange header fails", ["spf=fail; dmarc=fail action=oreject " + H, f"dmarc=pass {H}"]),
    ("topmost exchange header unparsable", [f"dmarc=pass {H} (", f"dmarc=pass {H}"]),
    ("compauth none", f"spf=pass; dmarc=none {H}; compauth=none reason=451"),
    ("dmarc bestguesspass", f"spf=pass; dmarc=bestguesspass action=none {H}; compauth=pass reason=200"),
    ("misaligned", "spf=pass; dmarc=pass action=none header.from=evil.example; compauth=pass reason=100"),
]


# -- malformed Graph documents ---------------------------------------------------------------------------------

def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()
_DEEP = "[" * 100_000 + "]" * 100_000


def bad_documents() -> list[tuple[str, dict[str, Any]]]:
    """``(label, from_documents kwargs)`` that must raise ``SnapshotError``."""
    base = sample_documents()
    first_user = base["users"][0]["value"][0]
    cases: list[tuple[str, str, Any]] = []  # (label, role, replacement document or page list)
    doc: Any  # every shape of document, deliberately
    for label, doc in [("not an object", []), ("null", None), ("string", "x"), ("no value", {}),
                       ("value null", {"value": None}), ("value object", {"value": {}}),
                       ("value empty", {"value": []}), ("value of strings", {"value": ["x"]})]:
        cases.append((f"organization {label}", "organization", doc))
    org = base["organization"]
    for label, path, value in [
        ("id missing", ("value", 0, "id"), _DELETE), ("id int", ("value", 0, "id"), 1),
        ("verifiedDomains missing", ("value", 0, "verifiedDomains"), _DELETE),
        ("verifiedDomains string", ("value", 0, "verifiedDomains"), "contoso.com"),
        ("domain name int", ("value", 0, "verifiedDomains", 0, "name"), 7),
        ("domain name with CRLF", ("value", 0, "verifiedDomains", 0, "name"), "contoso.com\r\nx"),
        ("domain name with NUL", ("value", 0, "verifiedDomains", 0, "name"), "contoso\x00.com"),
        ("domain name lone surrogate", ("value", 0, "verifiedDomains", 0, "name"), "cont\ud800oso.com"),
        ("domain name empty", ("value", 0, "verifiedDomains", 0, "name"), ""),
        ("domain name 100 KB", ("value", 0, "verifiedDomains", 0, "name"), "a" * HUGE + ".com"),
        ("domain name 64 labels", ("value", 0, "verifiedDomains", 0, "name"), "a." * 200 + "com"),
        ("domain name label of 64", ("value", 0, "verifiedDomains", 0, "name"), "a" * 64 + ".com"),
        ("domain name trailing dot", ("value", 0, "verifiedDomains", 0, "name"), "contoso.com."),
        ("domain name with @", ("value", 0, "verifiedDomains", 0, "name"), "megan@contoso.com"),
        ("isDefault string", ("value", 0, "verifiedDomains", 0, "isDefault"), "true"),
    ]:
        cases.append((f"organization {label}", "organization", _set(org, path, value)))
    mto = base["mto"]
    for label, path, value in [
        ("no value", ("value",), _DELETE), ("tenantId missing", ("value", 1, "tenantId"), _DELETE),
        ("tenantId int", ("value", 1, "tenantId"), 2), ("state int", ("value", 1, "state"), 1),
        ("state list", ("value", 1, "state"), ["active"]), ("row string", ("value", 1), "fabrikam"),
    ]:
        cases.append((f"mto {label}", "mto", _set(mto, path, value)))
    domains = base["domains"]
    for label, path, value in [
        ("domainName missing", ("value", 0, "domainName"), _DELETE),
        ("domainName invalid", ("value", 0, "domainName"), "bad domain.com"),
        ("domainName 100 KB", ("value", 0, "domainName"), "b" * HUGE),
        ("domainName control", ("value", 0, "domainName"), "adatum\x07.com"),
        ("tenantId missing", ("value", 0, "tenantId"), _DELETE), ("tenantId null", ("value", 0, "tenantId"), None),
        ("two tenants for one domain", ("value", 0, "domainName"), "fabrikam.com"),
    ]:
        cases.append((f"domains {label}", "domains", _set(domains, path, value)))
    partners = base["partners"]
    for label, path, value in [
        ("flag string", ("value", 0, "isInMultiTenantOrganization"), "false"),
        ("flag int", ("value", 0, "isInMultiTenantOrganization"), 0),
        ("tenantId missing", ("value", 0, "tenantId"), _DELETE),
    ]:
        cases.append((f"partners {label}", "partners", _set(partners, path, value)))
    page = base["users"][0]
    user_cases: list[tuple[str, Any]] = [
        ("page is a list", [first_user]), ("page null", None), ("page string", "users"), ("page no value", {}),
        ("value null", {"value": None}), ("value dict", {"value": first_user}),
        ("user null", {"value": [None]}), ("user string", {"value": ["x"]}), ("user without id", {"value": [{}]}),
        ("id empty", {"value": [{"id": ""}]}), ("id int", {"value": [{"id": 5}]}),
        ("id null", {"value": [{"id": None}]}),
    ]
    for label, key, value in [
        ("accountEnabled string", "accountEnabled", "true"), ("accountEnabled int", "accountEnabled", 1),
        ("otherMails string", "otherMails", "a@b.c"), ("otherMails ints", "otherMails", [1]),
        ("proxyAddresses string", "proxyAddresses", "SMTP:a@b.c"), ("proxyAddresses nulls", "proxyAddresses", [None]),
        ("mail int", "mail", 5), ("mail list", "mail", ["a@b.c"]), ("userType bool", "userType", True),
        ("identities string", "identities", "federated"), ("identities of strings", "identities", ["x"]),
        ("@removed string", "@removed", "deleted"), ("userPrincipalName dict", "userPrincipalName", {}),
    ]:
        user_cases.append((label, {"value": [{**first_user, key: value}]}))
    user_cases.append(("duplicate id in a page", {"value": [first_user, first_user]}))
    for label, doc in user_cases:
        cases.append((f"users {label}", "users", [doc]))
    cases.append(("users duplicate id across pages", "users", [page, {"value": [first_user]}]))
    cases.append(("users page huge and broken at the end", "users",
                  [{"value": [{"id": f"id-{i}", "mail": f"u{i}@fabrikam.com"} for i in range(20_000)] + [{"id": 1}]}]))
    for label, doc in [("delta page list", []), ("delta entry without id", {"value": [{"mail": "x@y.z"}]}),
                       ("delta accountEnabled string", {"value": [{"id": first_user["id"], "accountEnabled": "no"}]}),
                       ("delta @removed list", {"value": [{"id": first_user["id"], "@removed": []}]})]:
        cases.append((label, "delta", [doc]))
    out = []
    for label, role, doc in cases:
        kwargs = sample_documents() if role not in ("users", "delta") else {**sample_documents()}
        kwargs[role] = doc
        out.append((label, kwargs))
    return out


def bad_delta_pages() -> list[tuple[str, Any]]:
    """``(label, pages)`` for ``Snapshot.with_delta`` that must raise ``SnapshotError``."""
    uid = sample_documents()["users"][0]["value"][0]["id"]
    return [
        ("page null", [None]), ("page list", [[]]), ("no value", [{}]), ("value string", [{"value": "x"}]),
        ("entry without id", [{"value": [{"mail": "a@b.c"}]}]), ("id int", [{"value": [{"id": 1}]}]),
        ("accountEnabled string", [{"value": [{"id": uid, "accountEnabled": "false"}]}]),
        ("otherMails string", [{"value": [{"id": uid, "otherMails": "a@b.c"}]}]),
        ("@removed int", [{"value": [{"id": uid, "@removed": 1}]}]),
        ("second page broken", [{"value": [{"id": uid, "accountEnabled": False}]}, {"value": [{"id": None}]}]),
    ]


def bad_snapshot_files() -> list[tuple[str, str, bytes | None]]:
    """``(label, file relative to a copy of the sample folder, new bytes or None to delete)``."""
    org = (SAMPLE_DIR / "organization.json").read_bytes()
    users = (SAMPLE_DIR / "users" / "0001.json").read_bytes()
    return [
        ("organization missing", "organization.json", None), ("mto missing", "mto.json", None),
        ("domains missing", "domains.json", None), ("users folder missing", "users", None),
        ("organization empty", "organization.json", b""),
        ("organization truncated", "organization.json", org[:len(org) // 2]),
        ("organization not UTF-8", "organization.json", b'{"value": [{"id": "\xff\xfe"}]}'),
        ("organization NUL bytes", "organization.json", b"\x00" * 64),
        ("organization deeply nested", "organization.json", _DEEP.encode()),
        ("organization trailing garbage", "organization.json", org + b"garbage"),
        ("users page truncated", "users/0001.json", users[: len(users) - 10]),
        ("users page truncated at 1 byte", "users/0001.json", users[:1]),
        ("users page deeply nested", "users/0002.json", _DEEP.encode()),
        ("users page deeply nested object", "users/0002.json", ('{"a":' * 100_000 + "1" + "}" * 100_000).encode()),
        ("users page is a number", "users/0002.json", b"1e999999"),
        ("users page NaN", "users/0002.json", b'{"value": [{"id": NaN}]}'),
        ("delta truncated", "delta/0001.json", b'{"value": [{"id": "x", '),
        ("mto.json is a folder", "mto.json/", b""),
    ]


# -- malformed policies ----------------------------------------------------------------------------------------

BAD_POLICY_DATA: list[tuple[str, Any]] = [
    ("list", []), ("null", None), ("string", "version = 1"), ("int", 1),
    ("unknown top key", {"versoin": 1}), ("version 2", {"version": 2}), ("version string", {"version": "1"}),
    ("unknown mail key", {"mail": {"untaged_at": "internal"}}),
    ("trust upper-case", {"mail": {"untagged_at": "INTERNAL"}}), ("trust unknown", {"dlp": {"inside_at": "root"}}),
    ("trust int", {"dlp": {"inside_at": 4}}), ("trust with NUL", {"dlp": {"inside_at": "internal\x00"}}),
    ("require_authentication string", {"mail": {"require_authentication": "false"}}),
    ("trusted ids string", {"mail": {"trusted_authserv_ids": "mx.contoso.com"}}),
    ("trusted id empty", {"mail": {"trusted_authserv_ids": [""]}}),
    ("teams unknown action", {"teams": {"screen_share": "internal"}}),
    ("label unknown level", {"labels": {"C": {"internal": "Owner"}}}),
    ("label unknown right", {"labels": {"C": {"internal": ["VIEW", "ROOT"]}}}),
    ("label unknown trust", {"labels": {"C": {"admin": "Viewer"}}}),
    ("label not a table", {"labels": {"C": "Viewer"}}),
    ("block invalid", {"overrides": {"block": ["a@b@c"]}}), ("block empty", {"overrides": {"block": [""]}}),
    ("block bare wildcard", {"overrides": {"block": ["*."]}}),
    ("block with CRLF", {"overrides": {"block": ["evil.example\r\n"]}}),
    ("block lone surrogate", {"overrides": {"block": ["ev\ud800il.example"]}}),
    ("block 100 KB", {"overrides": {"block": ["a" * HUGE]}}),
    ("block not a list", {"overrides": {"block": "evil.example"}}),
    ("max_age zero", {"snapshot": {"max_age": "0h"}}), ("max_age no unit", {"snapshot": {"max_age": "24"}}),
    ("max_age years", {"snapshot": {"max_age": "1y"}}), ("max_age negative", {"snapshot": {"max_age": "-1h"}}),
    ("max_age int", {"snapshot": {"max_age": 24}}), ("max_age huge", {"snapshot": {"max_age": "99999999h"}}),
    ("max_age trailing newline", {"snapshot": {"max_age": "24h\n"}}),
    ("max_age fullwidth digits", {"snapshot": {"max_age": "２4h"}}),
    ("snapshot unknown key", {"snapshot": {"max_agee": "24h"}}),
]

BAD_POLICY_FILES: list[tuple[str, str, bytes]] = [
    ("TOML syntax", "p.toml", b"version = \n"), ("JSON syntax", "p.json", b"{version: 1}"),
    ("empty JSON", "p.json", b""), ("not UTF-8", "p.toml", b"version = 1\n\xff\xfe"),
    ("NUL bytes", "p.toml", b"\x00" * 32), ("JSON list", "p.json", b"[1, 2]"),
    ("unknown key", "p.toml", b"version = 1\n[mail]\nuntaged_at = 'internal'\n"),
    ("deeply nested JSON", "p.json", _DEEP.encode()),
    ("deeply nested TOML", "p.toml", ("a = " + "[" * 100_000 + "]" * 100_000).encode()),
    ("huge TOML string", "p.toml", b'version = 1\n[mail]\nsubject_tag = "' + b"x" * HUGE + b'"\nbad = 1\n'),
    ("UTF-16 TOML", "p.toml", "version = 1\n".encode("utf-16")),
]


# -- checks shared by the tests and scripts/reliability.py ------------------------------------------------------

@dataclasses.dataclass
class Tally:
    """What a corpus run tried and what went wrong (each failure is ``(entry point, input, what)``)."""

    tried: int = 0
    crashes: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    fail_open: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.tried += other.tried
        self.crashes += other.crashes
        self.fail_open += other.fail_open

    def assert_clean(self) -> None:
        problems = [f"CRASH {e}({i}): {w}" for e, i, w in self.crashes]
        problems += [f"FAIL-OPEN {e}({i}): {w}" for e, i, w in self.fail_open]
        assert not problems, f"{len(problems)} of {self.tried} inputs failed:\n" + "\n".join(problems[:40])


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _run(tally: Tally, entry: str, value: object, fn: Callable[[], Any],
         expected: tuple[type[BaseException], ...] = ()) -> Any:
    """Call ``fn`` under the guard; count it; record an unexpected exception as a crash. Returns the result
    (or the expected exception instance)."""
    tally.tried += 1
    try:
        return bounded(fn)
    except expected as exc:
        return exc
    except Hang as exc:
        tally.crashes.append((entry, shown(value), str(exc)))
    except Exception as exc:  # noqa: BLE001 - every other exception is the finding
        tally.crashes.append((entry, shown(value), f"{type(exc).__name__}: {str(exc)[:200]}"))
    return None


def _domain_part(identity: object) -> str:
    text = identity.address if isinstance(identity, Identity) else identity
    return text.rpartition("@")[2].strip(" \t") if isinstance(text, str) else "fabrikam.com"


def check_hostile_identity(engine: TrustEngine, identity: object, *, cap: Trust = Trust.EXTERNAL) -> Tally:
    """Run one hostile identity through every engine entry point and ``parse_identity``.

    Fail-open means: trust above ``cap``; mail untagged (with no auth, with a ``MailAuth`` that passes for its
    own domain, and with a trusted raw header that passes for it); DLP ``InOrganization`` alone or beside an
    internal recipient; a Teams action above external allowed; label rights granted.
    """
    t = Tally()
    who = shown(identity)
    hostile: Any = identity  # any value at all is handed to the engine: it must refuse it, not crash or fail open
    res = _run(t, "engine.resolve", identity, lambda: engine.resolve(hostile))
    if res is not None and res.trust > cap:
        t.fail_open.append(("engine.resolve", who, f"trust {res.trust} > {cap}: {res.reasons}"))
    if cap >= Trust.MTO_MEMBER:  # a valid address the rules trust: only "no crash" is checked below
        for call in (lambda: engine.mail(hostile), lambda: engine.dlp([hostile]),
                     lambda: engine.teams(hostile, "chat"), lambda: engine.label_rights(hostile, "Confidential")):
            _run(t, "engine.*", identity, call)
        return t
    domain = _domain_part(identity)
    auths: list[MailAuth | str | None] = [None, MailAuth(dmarc="pass", header_from=domain),
                                          f"{TRUSTED_ID}; dmarc=pass header.from={domain}"[:2000]]
    for auth in auths:
        def mail(a: MailAuth | str | None = auth) -> MailDecision:
            return engine.mail(hostile, a)

        d = _run(t, "engine.mail", identity, mail)
        if d is not None and (not d.tag_external or d.trust > cap):
            t.fail_open.append(("engine.mail", who, f"untagged or trust {d.trust} with auth {shown(auth)}"))
    forms: list[Any] = [[identity], [LOCAL_SENDER, identity]]
    if isinstance(identity, (str, Identity)):
        forms.append(identity)  # a single recipient may be passed bare
    for recipients in forms:
        def dlp(r: Any = recipients) -> DlpDecision:
            return engine.dlp(r)

        d = _run(t, "engine.dlp", identity, dlp)
        if d is not None and (d.inside_organization or d.access_scope != "NotInOrganization"):
            t.fail_open.append(("engine.dlp", who, "InOrganization"))
    for label in LABELS:
        def label_rights(lb: str = label) -> LabelDecision:
            return engine.label_rights(hostile, lb)

        d = _run(t, "engine.label_rights", identity, label_rights)
        if d is not None and cap < Trust.GUEST and d.rights:
            t.fail_open.append(("engine.label_rights", who, f"{label}: {sorted(d.rights)}"))
    for action in TEAMS_ACTIONS:
        def teams(ac: str = action) -> TeamsDecision:
            return engine.teams(hostile, ac)

        d = _run(t, "engine.teams", identity, teams)
        if d is not None and d.allowed and d.trust > cap:
            t.fail_open.append(("engine.teams", who, f"{action} allowed at {d.trust}"))
    if isinstance(identity, str):
        _run(t, "parse_identity", identity, lambda: parse_identity(identity), expected=(IdentityError,))
    return t


def check_auth(engine: TrustEngine, sender: str, auth: object, *, must_authenticate: bool) -> Tally:
    """Run one ``Authentication-Results`` input through ``engine.mail``."""
    t = Tally()
    d = _run(t, "engine.mail(auth)", auth, lambda: engine.mail(sender, auth))  # type: ignore[arg-type]
    if d is None:
        return t
    if must_authenticate:
        if not d.authenticated or d.tag_external:
            t.fail_open.append(("engine.mail(auth)", shown(auth), f"genuine result refused: {d.reasons}"))
    elif d.authenticated or not d.tag_external or d.trust > Trust.EXTERNAL:
        t.fail_open.append(("engine.mail(auth)", shown(auth), f"forged result accepted: {d.trust} {d.reasons}"))
    return t


def _expect_error(t: Tally, entry: str, label: str, fn: Callable[[], Any], error: type[Exception]) -> None:
    result = _run(t, entry, label, fn, expected=(error,))
    if result is None:
        return
    if not isinstance(result, error):
        t.fail_open.append((entry, label, f"accepted; expected {error.__name__}"))
        return
    message = str(result)
    if not message.strip() or len(message) > 10_000:
        t.crashes.append((entry, label, f"{error.__name__} message is empty or unbounded ({len(message)} chars)"))


def check_loaders(workdir: Path) -> Tally:
    """Every malformed document, delta, snapshot file and policy through its loader."""
    t = Tally()
    for label, kwargs in bad_documents():
        def from_documents(k: dict[str, Any] = kwargs) -> Snapshot:
            return Snapshot.from_documents(**k)

        _expect_error(t, "Snapshot.from_documents", label, from_documents, SnapshotError)
    for label, pages in bad_delta_pages():
        def with_delta(p: Any = pages) -> Snapshot:
            return SAMPLE.with_delta(p)

        _expect_error(t, "Snapshot.with_delta", label, with_delta, SnapshotError)
    for i, (label, rel, data) in enumerate(bad_snapshot_files()):
        folder = make_sample_copy(workdir / f"snap-{i}")
        target = folder / rel.rstrip("/")
        if target.is_dir():
            import shutil
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        if rel.endswith("/"):
            target.mkdir()
        elif data is not None:
            target.write_bytes(data)

        def load_folder(f: Path = folder) -> Snapshot:
            return Snapshot.load(f)

        _expect_error(t, "Snapshot.load(folder)", label, load_folder, SnapshotError)
    for label, data in BAD_POLICY_DATA:
        def from_data(d: Any = data) -> Policy:
            return Policy.from_data(d)

        _expect_error(t, "Policy.from_data", label, from_data, PolicyError)
    for i, (label, name, raw) in enumerate(BAD_POLICY_FILES):
        path = workdir / f"policy-{i}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)

        def load_file(p: Path = path) -> Policy:
            return Policy.load(p)

        _expect_error(t, "Policy.load", label, load_file, PolicyError)
    for label, path in [("missing file", workdir / "nope.toml"), ("a folder", workdir)]:
        def load_path(p: Path = path) -> Policy:
            return Policy.load(p)

        _expect_error(t, "Policy.load", label, load_path, PolicyError)
    return t


def make_sample_copy(dest: Path) -> Path:
    """Copy the sample snapshot folder to ``dest`` and return it."""
    import shutil

    shutil.copytree(SAMPLE_DIR, dest)
    return dest


def hostile_cap(identity: object) -> Trust:
    """The highest trust the resolution rules (docs/concepts.md) allow a corpus identity.

    ``external`` for everything, except a string that is a *valid* address at a local verified domain once
    trimmed and normalised (``"\\tmegan@contoso.com"``, ``"evil.example!megan@contoso.com"``): any address at
    a local domain is ``internal`` by design, so only "no crash" is checked for those.
    """
    if isinstance(identity, str):
        try:
            if parse_identity(identity).address.rpartition("@")[2] in LOCAL_DOMAINS:
                return Trust.INTERNAL
        except IdentityError:
            pass
    return Trust.EXTERNAL


def run_identity_corpus(engine: TrustEngine) -> Tally:
    """Hostile strings and objects, confusables and #EXT# edge cases through every engine entry point."""
    t = Tally()
    ext_expected = {text for text, _ in EXT_CASES}
    for identity in HOSTILE_STRINGS + HOSTILE_OBJECTS:
        if isinstance(identity, str) and identity in ext_expected:
            continue
        t.merge(check_hostile_identity(engine, identity, cap=hostile_cap(identity)))
    for address, original, expectation in CONFUSABLE_IDENTITIES:
        if expectation == "same":
            continue  # UTS-46 maps it to the domain itself (upper case, fullwidth...): not a look-alike
        t.merge(check_hostile_identity(engine, address))
        if expectation == "confusable":
            res = engine.resolve(address)
            if res.trust is not Trust.UNTRUSTED or "confusable_domain" not in res.reasons:
                t.fail_open.append(("engine.resolve", address, f"look-alike of {original} not flagged: "
                                    f"{res.trust} {res.reasons}"))
    for text, expected in EXT_CASES:
        t.tried += 1
        res = bounded(engine.resolve, text)
        if res.trust is not expected:
            t.fail_open.append(("engine.resolve", text, f"expected {expected}, got {res.trust} {res.reasons}"))
        if expected <= Trust.EXTERNAL:
            t.merge(check_hostile_identity(engine, text, cap=expected))
    return t


def run_auth_corpus() -> Tally:
    """Forged, malformed and genuine ``Authentication-Results`` through ``engine.mail``."""
    t = Tally()
    engine = TrustEngine(SAMPLE, POLICY)
    exo = TrustEngine(SAMPLE, POLICY_EXO)
    for _label, auth in FORGED_AUTH:
        t.merge(check_auth(engine, MTO_SENDER, auth, must_authenticate=False))
    for _label, auth in FORGED_AUTH + FORGED_AUTH_EXO:
        if _label not in ("exchange form not accepted",):
            t.merge(check_auth(exo, MTO_SENDER, auth, must_authenticate=False))
    for _label, auth in GENUINE_AUTH:
        t.merge(check_auth(engine, MTO_SENDER, auth, must_authenticate=True))
    # An explicit failure for a local or MTO domain is spoofing: untrusted, whatever the directory says.
    for sender in (MTO_SENDER, LOCAL_SENDER):
        domain = sender.partition("@")[2]
        for auth in (f"{TRUSTED_ID}; dmarc=fail header.from={domain}",
                     MailAuth(dmarc="fail", header_from=domain),
                     f"{TRUSTED_ID}; dmarc=pass header.from={domain}; compauth=fail reason=000"):
            t.tried += 1
            d = bounded(engine.mail, sender, auth)
            if d.trust is not Trust.UNTRUSTED or "spoof_suspected" not in d.reasons or not d.tag_external:
                t.fail_open.append(("engine.mail", f"{sender} {shown(auth)}", f"not spoof: {d.trust} {d.reasons}"))
    return t


# -- hypothesis strategies -------------------------------------------------------------------------------------

HOSTILE_ALPHABET = st.sampled_from(
    [*CONTROL_CHARS, *INVISIBLES, *LONE_SURROGATES, "@", "\uff20", ".", "_", "#", "#EXT#", '"', "(", ")", "<", ">",
     " ", "\t", "\\", "/", ":", ";", "=", "\u0301", "\u0430", "\u043e", "\u0435", "\u0456", "\u03bf", "rn", "vv",
     "1", "I", "0", "ſ", "K", "ǅ", "ß", "ς", "İ", "\U0001d41a", "ａ", "-", "xn--"])


def hostile_text() -> st.SearchStrategy[str]:
    """Arbitrary text over all of Unicode, lone surrogates included, sometimes long."""
    return st.one_of(
        st.text(st.characters(codec=None, categories=None), max_size=80),
        st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=400),
        st.lists(HOSTILE_ALPHABET, max_size=40).map("".join),
    )


@st.composite
def hostile_address(draw: st.DrawFn) -> str:
    """A known address with hostile fragments spliced in at random places."""
    base = draw(st.sampled_from([LOCAL_SENDER, MTO_SENDER, "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                                 "lee@litware.com", "sales@contoso.com", "x@contoso.co.uk"]))
    chars = list(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(chars)))
        chars.insert(pos, draw(HOSTILE_ALPHABET))
    return "".join(chars)


@st.composite
def confusable_address(draw: st.DrawFn) -> str:
    """An address at a known domain with one to three characters swapped for UTS-39 look-alikes."""
    domain = draw(st.sampled_from(KNOWN_DOMAINS))
    chars = list(domain)
    positions = [i for i, c in enumerate(chars) if c in LOOKALIKES]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.sampled_from(positions))
        scripts = LOOKALIKES[domain[i]]
        script = draw(st.sampled_from(sorted(scripts)))
        chars[i] = draw(st.sampled_from(scripts[script]))
    return "cameron@" + "".join(chars)


@st.composite
def auth_header(draw: st.DrawFn) -> str:
    """An ``Authentication-Results`` value assembled from real and hostile pieces."""
    ids = st.sampled_from([TRUSTED_ID, "MX.CONTOSO.COM", '"mx.contoso.com"', "evil.example", "mx.contoso.com.evil",
                           "", "(c) mx.contoso.com"])
    methods = st.sampled_from(["dmarc", "compauth", "spf", "dkim", "auth", "x-foo", "none", "DMARC", ""])
    results = st.sampled_from(["pass", "fail", "none", "softpass", "bestguesspass", "temperror", "(pass)", ""])
    props = st.sampled_from(["header.from=fabrikam.com", 'header.from="fabrikam.com"', "header.from=evil.example",
                             "reason=100", "reason=200", "reason=1000", "action=none", "(comment)", "",
                             "header.from=fabrik\u0430m.com", "smtp.mailfrom=fabrikam.com"])
    parts = [draw(ids)]
    for _ in range(draw(st.integers(0, 4))):
        parts.append(f"{draw(methods)}={draw(results)} {draw(props)} {draw(props)}")
    sep = draw(st.sampled_from(["; ", ";", ";\r\n\t", " ; ", ";\n", "\x00;"]))
    value = sep.join(parts)
    if draw(st.booleans()):
        value += draw(hostile_text())
    return value


# -- the concurrency harness ------------------------------------------------------------------------------------

# Identities whose answers every delta round flips together: a decision that mixes two generations shows.
SWAP_IDENTITIES = ("cameron@fabrikam.com", "dana@fabrikam.com", "new.hire@fabrikam.com", "omar.martin@fabrikam.com",
                   "swap.probe@fabrikam.com", "megan@contoso.com", "jo@fabrikam.com", "lee@litware.com",
                   "nobody@fabrikam.com", "cameron_fabrikam.com#EXT#@contoso.onmicrosoft.com")


def _user_id(snapshot: Snapshot, address: str) -> str:
    users = snapshot.lookup(address)
    assert len(users) == 1, address
    return users[0].id


def swap_delta(snapshot: Snapshot, round_no: int) -> list[dict[str, Any]]:
    """A delta page for round ``round_no``: odd rounds disable/remove, even rounds enable/re-add."""
    on = round_no % 2 == 0
    page: list[dict[str, Any]] = [
        {"id": _user_id(SAMPLE, "cameron@fabrikam.com"), "accountEnabled": on},
        {"id": _user_id(SAMPLE, "dana@fabrikam.com"), "accountEnabled": on},
        {"id": _user_id(SAMPLE, "omar.martin@fabrikam.com"), "userType": "Member" if on else "Guest"},
    ]
    probe = {"id": "swap-probe-0000", "mail": "swap.probe@fabrikam.com", "userType": "Member",
             "accountEnabled": True, "creationType": "Invitation",
             "userPrincipalName": "swap.probe_fabrikam.com#EXT#@contoso.onmicrosoft.com"}
    page.append(probe if on else {"id": "swap-probe-0000", "@removed": {"reason": "deleted"}})
    return [{"value": page}]


@dataclasses.dataclass
class SwapReport:
    swaps: int = 0
    decisions: int = 0
    mixed: list[str] = dataclasses.field(default_factory=list)
    stale: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    max_cache_entries: int = 0


def reference_answers(snapshot: Snapshot, policy: Policy) -> dict[str, Any]:
    """What a fresh, cache-less engine says for every swap identity, and the DLP decision for all of them."""
    ref = TrustEngine(snapshot, policy, cache_size=0)
    out: dict[str, Any] = {a: ref.resolve(a) for a in SWAP_IDENTITIES}
    out["__dlp__"] = ref.dlp(list(SWAP_IDENTITIES)).recipients
    return out


def swap_stress(swaps: int = 100, readers: int = 8, cache_size: int = 4096) -> SwapReport:
    """8 reader threads resolve and ask DLP while the main thread applies deltas and swaps ``swaps`` times.

    Each reader notes the published generation index before and after a call; its answer must equal the
    reference answer of one generation in ``[before, after + 1]`` (``after + 1``: the swap may be visible a
    moment before its index is published). A DLP decision must match one generation for *all* recipients.
    """
    policy = POLICY
    snapshots = [SAMPLE]
    refs = [reference_answers(SAMPLE, policy)]
    engine = TrustEngine(SAMPLE, policy, cache_size=cache_size)
    report = SwapReport()
    published = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def matches(kind: str, answer: Any, lo: int, hi: int) -> int | None:
        for k in range(max(lo, 0), min(hi, len(refs) - 1) + 1):
            if refs[k][kind] == answer:
                return k
        return None

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        count = 0
        try:
            while not stop.is_set():
                before = published[0]
                answer: Resolution | tuple[Resolution, ...]
                if rng.random() < 0.2:
                    kind = "__dlp__"
                    answer = engine.dlp(list(SWAP_IDENTITIES)).recipients
                else:
                    kind = rng.choice(SWAP_IDENTITIES)
                    answer = engine.resolve(kind)
                after = published[0]
                count += 1
                if matches(kind, answer, before, after + 1) is None:
                    older = matches(kind, answer, 0, before - 1)
                    with lock:
                        if older is not None:
                            report.stale.append(f"{kind}: answer of generation {older} after {before} was published")
                        else:
                            report.mixed.append(f"{kind}: matches no generation in [{before}, {after + 1}]")
                entries = engine.stats().cache_entries
                report.max_cache_entries = max(report.max_cache_entries, entries)
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            with lock:
                report.errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            report.decisions += count

    threads = [threading.Thread(target=reader, args=(i,), name=f"reader-{i}") for i in range(readers)]
    for th in threads:
        th.start()
    try:
        for i in range(1, swaps + 1):
            new = snapshots[-1].with_delta(swap_delta(snapshots[-1], i))
            snapshots.append(new)
            refs.append(reference_answers(new, policy))
            engine.update(new)
            published[0] = i
            report.swaps += 1
            time.sleep(0.001)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
    return report


# -- the SIGKILL harness ----------------------------------------------------------------------------------------

def kill_snapshots() -> tuple[Snapshot, Snapshot]:
    """Two small, different snapshots (the sample before and after its delta, fewer users)."""
    docs = sample_documents()
    docs["users"] = docs["users"][:1]
    a = Snapshot.from_documents(**{**docs, "delta": []})
    b = Snapshot.from_documents(**docs)
    return a, b


def _fingerprint(snapshot: Snapshot) -> tuple[Any, ...]:
    engine = TrustEngine(snapshot, POLICY, cache_size=0)
    probes = sorted(snapshot.addresses())[:200] + list(SWAP_IDENTITIES)
    return (len(snapshot.users), tuple((p, engine.resolve(p).trust, engine.resolve(p).reasons) for p in probes))


@dataclasses.dataclass
class KillReport:
    kills: int = 0
    survived: int = 0
    saves_completed: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    temp_files_after_kills: int = 0  # files beside the store right after each kill (the next save removes them)
    leftover_temp_files: int = 0  # files beside the store after a save that followed the last kill: must be 0


def kill_writer(kills: int = 100, seed: int = 5) -> KillReport:
    """Fork a child that saves snapshots A, B, A, ... to one path in a loop; SIGKILL it at a random moment.

    After each kill the store must load with ``verify=True`` and resolve exactly like A or B, and its
    ``taken_at`` (a sequence number) must be the last save the child reported or the one after it. What the
    killed writers left beside the store is counted after each kill, and once more after a save that follows the
    last kill (``leftover_temp_files``: a save removes what killed ones left).
    """
    if not hasattr(os, "fork"):
        raise RuntimeError("the SIGKILL test needs os.fork (POSIX)")
    rng = random.Random(seed)
    a, b = kill_snapshots()
    fingerprints = {0: _fingerprint(a), 1: _fingerprint(b)}
    # in the past: a save's taken_at (base + its sequence number) must never lie in the future
    base_time = a.taken_at.replace(microsecond=0) - dt.timedelta(days=1)
    report = KillReport()
    with tempfile.TemporaryDirectory(prefix="mtotrust-kill-") as tmp:
        path = Path(tmp) / "store.sqlite"
        last_seq = 0

        def snap_for(seq: int) -> Snapshot:
            src = a if seq % 2 == 0 else b
            # same directory, distinct taken_at: a cheap marker of which save a store came from
            return src.with_delta([], taken_at=base_time + dt.timedelta(seconds=seq))

        snap_for(0).save(path)

        for _ in range(kills):
            read_fd, write_fd = os.pipe()
            start_seq = last_seq + 1
            pid = os.fork()
            if pid == 0:  # child: save forever, report each completed save
                try:
                    os.close(read_fd)
                    os.write(write_fd, b"-1\n")  # started: the parent's random delay counts from here
                    seq = start_seq
                    while True:
                        snap_for(seq).save(path)
                        os.write(write_fd, f"{seq}\n".encode())
                        seq += 1
                finally:
                    os._exit(0)
            os.close(write_fd)
            os.read(read_fd, 3)  # wait for "-1\n": the child runs (a fork of a big process takes a while)
            time.sleep(rng.uniform(0.0, 0.12))  # the first save in a fresh fork is the slowest
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            report.kills += 1
            report.temp_files_after_kills += sum(p.name != "store.sqlite" for p in Path(tmp).iterdir())
            with os.fdopen(read_fd, "rb") as fh:
                done = [int(x) for x in fh.read().split()]
            report.saves_completed += len(done)
            if done:
                last_seq = done[-1]
            try:
                loaded = Snapshot.load(path, verify=True)
            except Exception as exc:  # noqa: BLE001
                report.failures.append(f"kill {report.kills}: store does not load: {type(exc).__name__}: {exc}")
                continue
            seq = round((loaded.taken_at - base_time).total_seconds())
            if seq not in (last_seq, last_seq + 1):
                report.failures.append(f"kill {report.kills}: store holds save {seq}, expected {last_seq} "
                                       f"or {last_seq + 1}")
            elif _fingerprint(loaded) != fingerprints[seq % 2]:
                report.failures.append(f"kill {report.kills}: save {seq} does not resolve like its snapshot")
            else:
                report.survived += 1
            last_seq = max(last_seq, seq)
        snap_for(last_seq + 1).save(path)
        report.leftover_temp_files = sum(p.name != "store.sqlite" for p in Path(tmp).iterdir())
    return report


# -- memory ----------------------------------------------------------------------------------------------------

def rss_kib() -> int:
    """Resident set size of this process in KiB (Linux ``/proc``; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def random_identity(rng: random.Random) -> str:
    """A random identity for soaks: mostly fresh addresses at known or random domains, some hostile."""
    roll = rng.random()
    local = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789._-", k=rng.randint(1, 20))).strip(".") or "x"
    if roll < 0.55:
        return f"{local}@{rng.choice(KNOWN_DOMAINS)}"
    if roll < 0.8:
        return f"{local}@{rng.randrange(10**9)}.example"
    if roll < 0.9:
        return rng.choice(HOSTILE_STRINGS[:400])
    return f"{local}@{rng.choice(CONFUSABLES)[0]}"


__all__ = [name for name in dir() if not name.startswith("_")] + ["mtotrust"]


# -- issue classes with figures: forged #EXT# spellings, DLP under concurrent updates ----------------------------

EXT_HOST = "contoso.onmicrosoft.com"
# Alphabets UTS-46 maps to the ASCII letter: fullwidth and nine hole-free mathematical alphabets (bold, bold
# italic, bold script, bold fraktur, sans-serif, sans bold, sans italic, sans bold italic, monospace).
_LETTER_BASES = (0xFF41, 0x1D41A, 0x1D482, 0x1D4EA, 0x1D586, 0x1D5BA, 0x1D5EE, 0x1D622, 0x1D656, 0x1D68A)


def forged_ext_names(count: int, alias: str = "cameron", home: str = "fabrikam") -> Iterator[str]:
    """Yield ``count`` distinct spellings of ``alias_home.com#EXT#@contoso.onmicrosoft.com`` that all decode to
    ``alias@home.com`` (each letter of ``home`` ASCII or one of ten look-alike alphabets UTS-46 folds to it)."""
    choices = [[c, *(chr(base + ord(c) - 97) for base in _LETTER_BASES)] for c in home]
    for serial in range(count):
        letters, rest = [], serial
        for options in choices:
            rest, pick = divmod(rest, len(options))
            letters.append(options[pick])
        yield f"{alias}_{''.join(letters)}.com#EXT#@{EXT_HOST}"


@dataclasses.dataclass
class MemoryReport:
    names: int = 0
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    rss_marks_kib: list[int] = dataclasses.field(default_factory=list)  # after every tenth of the names
    answers: int = 0
    cache_entries: int = 0
    wrong: int = 0


def forged_ext_memory(count: int, cache_size: int = 65_536) -> MemoryReport:
    """Resolve ``count`` forged spellings of Cameron's #EXT# name; report RSS, kept answers and wrong answers."""
    engine = TrustEngine(SAMPLE, POLICY, cache_size=cache_size)
    expected = engine.resolve(f"cameron_fabrikam.com#EXT#@{EXT_HOST}")
    report = MemoryReport(rss_start_kib=rss_kib())
    step = max(count // 10, 1)
    for name in forged_ext_names(count):
        found = engine.resolve(name)
        report.names += 1
        if (found.trust, found.address) != (expected.trust, expected.address):
            report.wrong += 1
        if report.names % step == 0:
            report.rss_marks_kib.append(rss_kib())
    stats = engine.stats()
    report.rss_end_kib, report.answers, report.cache_entries = rss_kib(), stats.precomputed_answers, stats.cache_entries
    return report


def dlp_states() -> tuple[Snapshot, Snapshot]:
    """Two snapshots in which each of two recipients is inside in one and outside in the other."""
    docs = sample_documents()
    base = Snapshot.from_documents(**docs)
    one, two = (_user_id(base, a) for a in ("cameron@fabrikam.com", "dana@fabrikam.com"))
    a = base.with_delta([{"value": [{"id": two, "accountEnabled": False}]}])
    b = base.with_delta([{"value": [{"id": one, "accountEnabled": False}, {"id": two, "accountEnabled": True}]}])
    return a, b


@dataclasses.dataclass
class MixReport:
    calls: int = 0
    swaps: int = 0
    mixed: int = 0


def dlp_mix(calls: int, readers: int = 2) -> MixReport:
    """Ask DLP for [cameron, dana] ``calls`` times from ``readers`` threads while another swaps two snapshots.

    In each snapshot exactly one of the two is outside, so an ``InOrganization`` answer, or one whose recipients
    name two snapshots, mixed two states.
    """
    a, b = dlp_states()
    engine = TrustEngine(a, POLICY)
    report = MixReport()
    stop = threading.Event()
    lock = threading.Lock()

    def swap() -> None:
        flip = False
        while not stop.is_set():
            engine.update(b if flip else a)
            flip = not flip
            report.swaps += 1

    def read(n: int) -> None:
        mixed = 0
        for _ in range(n):
            decision = engine.dlp(["cameron@fabrikam.com", "dana@fabrikam.com"])
            ids = {decision.snapshot_id, *(r.snapshot_id for r in decision.recipients)}
            if decision.inside_organization or len(ids) != 1:
                mixed += 1
        with lock:
            report.mixed += mixed
            report.calls += n

    swapper = threading.Thread(target=swap)
    swapper.start()
    workers = [threading.Thread(target=read, args=(calls // readers,)) for _ in range(readers)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        swapper.join()
    return report


def class_variants(limit: int | None = None) -> Tally:
    """Generated variants of the identity classes of the fail-open review; each must stay at its cap.

    - every Default_Ignorable_Code_Point inserted into a real MTO member's address (local part and domain);
    - forged spellings of an #EXT# name under a policy that blocks the name as admin portals show it;
    - a native object named ``alias_home#EXT#@host`` at foreign hosts (no evidence of being external).
    """
    from mtotrust._address import is_default_ignorable

    t = Tally()
    engine = TrustEngine(SAMPLE, POLICY)
    points = [chr(c) for c in range(0x10FFFF + 1) if not 0xD800 <= c <= 0xDFFF and is_default_ignorable(chr(c))]
    for ch in points[:limit]:
        for identity in (f"came{ch}ron@fabrikam.com", f"cameron@fabri{ch}kam.com", f"cameron@fabrikam.com{ch}"):
            t.tried += 1
            found = engine.resolve(identity)
            if found.trust is not Trust.UNTRUSTED or engine.dlp([identity]).inside_organization:
                t.fail_open.append(("resolve", f"U+{ord(ch):04X} in {identity!a}", str(found.trust)))
    blocking = TrustEngine(SAMPLE, Policy.from_data({"overrides": {"block": [
        f"cameron_fabrikam.com#EXT#@{EXT_HOST}"]}}))
    for name in (*forged_ext_names(limit or 20_000), f"cameron_fabrikam.com#EXT#@{EXT_HOST}".upper(),
                 "cameron@fabrikam.com", "Cameron@FABRIKAM.com"):
        t.tried += 1
        found = blocking.resolve(name)
        if found.trust is not Trust.UNTRUSTED:
            t.fail_open.append(("block", name[:80], str(found.trust)))
    for host in ("fabrikam.com", "contoso.com.evil", "fabrikam.onmicrosoft.com", "onmicrosoft.com",
                 "contoso.onmicrosoft.com.example"):
        upn = f"cam_fabrikam.com#EXT#@{host}"
        docs = sample_documents()
        docs["users"][0]["value"].append({"id": f"forged-{host}", "userPrincipalName": upn,
                                          "mail": "cam@fabrikam.com", "userType": "Member",
                                          "accountEnabled": True, "identities": []})
        found = TrustEngine(Snapshot.from_documents(**docs), POLICY).resolve("cam@fabrikam.com")
        t.tried += 1
        if found.trust > Trust.EXTERNAL:
            t.fail_open.append(("external", upn, str(found.trust)))
    return t
