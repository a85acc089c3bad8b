"""The mail path's cost: raw-header decisions against a naive parse of the same header, and against authres.

    python -m benchmarks.mail              # about 30 s on 2 vCPU
    python -m benchmarks.mail --quick      # fewer repeats

Every figure is a median of whole passes over a list of distinct messages (no two share a header text or a sender,
so the decision cache never answers for a parse), on the bundled sample directory with its policy (boundary
``mx.contoso.com``). Rows, each also printed as a ratio to its baseline measured in the same run:

- ``naive parse``: what an add-in would write by hand: split the value at ``;``, the first part is the authserv-id,
  a regular expression per part for ``method=result`` and ``header.from``. It checks nothing (no comments, no
  quoting, no counting rule); **the baseline** of the raw-header targets.
- ``authres``: ``authres.AuthenticationResultsHeader.parse`` (the PyPI parser), where it can parse the value (it
  raises on Exchange Online's form, which has no authserv-id).
- ``engine.mail(sender, header)``: the whole decision on the raw value, for a boundary header, an Exchange Online
  header (policy accepting them), and a list of 3 values of which only the topmost counts.
- ``engine.mail(sender, MailAuth)`` against ``engine.resolve(sender)``.
- ``engine.mail_message`` on a 2 KB message with 12 header fields, against ``engine.mail`` of the same From and
  header, and what the ``email`` package's header parser alone costs on it (mtotrust reads a plain header
  section without it).

Targets (issue "the mail path as fast as the lookup"): raw header at most 1.5x the naive parse and at least 50x
faster than authres; 3 headers at most 1.2x one; ``MailAuth`` at most 5x ``resolve``. They are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import importlib.resources
import re
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from mtotrust import MailAuth, Policy, Snapshot, TrustEngine

N = 2_000
BOUNDARY = ("mx.contoso.com; spf=pass (sender IP is 203.0.113.{i}) smtp.mailfrom=fabrikam.com; "
            "dkim=pass (signature was verified) header.d=fabrikam.com header.s=selector{i}; "
            "dmarc=pass action=none header.from=fabrikam.com; compauth=pass reason=100")
EXCHANGE = ("spf=pass (sender IP is 203.0.113.{i}) smtp.mailfrom=fabrikam.com; dkim=pass (signature was verified) "
            "header.d=fabrikam.com;dmarc=pass action=none header.from=fabrikam.com;compauth=pass reason=100")
INNER = ("relay{i}.fabrikam.com; spf=pass smtp.mailfrom=fabrikam.com; dkim=pass header.d=fabrikam.com; "
         "dmarc=pass header.from=fabrikam.com")
MESSAGE = """\
Return-Path: <bounce-{i}@fabrikam.com>
Received: from mail.fabrikam.com (mail.fabrikam.com [203.0.113.{i}]) by mx.contoso.com with ESMTPS id {i}; Mon, \
30 Nov 2026 08:00:00 +0000
Authentication-Results: {auth}
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=fabrikam.com; s=selector1; h=from:to:subject:date;
 bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR
From: "Cameron White" <cameron{i}@fabrikam.com>
To: Ada <ada@contoso.com>
Cc: team@contoso.com
Subject: Quarterly figures {i}
Date: Mon, 30 Nov 2026 08:00:00 +0000
Message-ID: <{i}.msg@fabrikam.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

{body}
"""

_PART = re.compile(r"([A-Za-z0-9_-]+)=([A-Za-z0-9_-]+)")
_FROM = re.compile(r"header\.from=([^\s;]+)")


def naive_parse(value: str) -> tuple[str, dict[str, str], str | None]:
    """The hand-written parse: authserv-id, ``{method: result}``, ``header.from`` of the DMARC result."""
    parts = value.split(";")
    results, header_from = {}, None
    for part in parts[1:]:
        found = _PART.search(part)
        if found:
            results[found.group(1).lower()] = found.group(2).lower()
            if found.group(1).lower() == "dmarc":
                domain = _FROM.search(part)
                header_from = domain.group(1) if domain else None
    return parts[0].strip(), results, header_from


def per_call(fn: Callable[[Any], Any], items: Sequence[Any], repeats: int) -> float:
    """Median µs per call over ``repeats`` passes over ``items``."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for item in items:
            fn(item)
        runs.append((time.perf_counter_ns() - t0) / len(items) / 1e3)
    return statistics.median(runs)


def _authres() -> Callable[[str], Any] | None:
    try:
        import authres  # type: ignore[import-not-found]
    except ImportError:
        return None
    return lambda value: authres.AuthenticationResultsHeader.parse("Authentication-Results: " + value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 500 messages")
    args = parser.parse_args(argv)
    n, repeats = (500, 3) if args.quick else (N, 7)
    snap = Snapshot.sample()
    with importlib.resources.as_file(importlib.resources.files("mtotrust") / "sample" / "policy.toml") as path:
        policy = Policy.load(path)
    eo_policy = policy.model_copy(update={"mail": policy.mail.model_copy(
        update={"accept_exchange_online_results": True})})
    engine, eo_engine = TrustEngine(snap, policy, cache_size=0), TrustEngine(snap, eo_policy, cache_size=0)
    senders = [f"cameron{i}@fabrikam.com" for i in range(n)]
    boundary = [BOUNDARY.format(i=i % 250) + f" x={i}" for i in range(n)]
    exchange = [EXCHANGE.format(i=i % 250) + f" x={i}" for i in range(n)]
    three = [[b, INNER.format(i=i), INNER.format(i=i + 1)] for i, b in enumerate(boundary)]
    body = ("Figures attached. " * 80)[:1300]
    messages = [MESSAGE.format(i=i, auth=boundary[i], body=body).replace("\n", "\r\n").encode() for i in range(n)]
    pairs_b, pairs_e, pairs_3 = [*zip(senders, boundary, strict=True)], [*zip(senders, exchange, strict=True)], [
        *zip(senders, three, strict=True)]
    auth = MailAuth(dmarc="pass", header_from="fabrikam.com")
    authres = _authres()

    rows: list[tuple[str, float, str]] = []
    naive_b = per_call(naive_parse, boundary, repeats)
    naive_e = per_call(naive_parse, exchange, repeats)
    rows += [("naive parse, boundary header (baseline)", naive_b, "1.00x"),
             ("naive parse, Exchange Online header (baseline)", naive_e, "1.00x")]
    mail_b = per_call(lambda p: engine.mail(*p), pairs_b, repeats)
    mail_e = per_call(lambda p: eo_engine.mail(*p), pairs_e, repeats)
    mail_3 = per_call(lambda p: engine.mail(*p), pairs_3, repeats)
    rows += [("engine.mail(sender, boundary header)", mail_b, f"{mail_b / naive_b:.2f}x naive (target <= 1.5x)"),
             ("engine.mail(sender, Exchange Online header)", mail_e, f"{mail_e / naive_e:.2f}x naive (target <= 1.5x)"),
             ("engine.mail(sender, [3 headers, topmost counts])", mail_3, f"{mail_3 / mail_b:.2f}x one header "
              "(target <= 1.2x)")]
    if authres is not None:
        lib = per_call(authres, boundary, max(1, repeats // 2))
        rows.append(("authres parse, boundary header", lib, f"engine.mail is {lib / mail_b:.0f}x faster "
                     "(target >= 50x)"))
    else:
        rows.append(("authres parse, boundary header", float("nan"), "not installed (pip install authres)"))
    resolve = per_call(engine.resolve, senders, repeats)
    mail_auth = per_call(lambda s: engine.mail(s, auth), senders, repeats)
    rows += [("engine.resolve(sender) (baseline)", resolve, "1.00x"),
             ("engine.mail(sender, MailAuth(...))", mail_auth, f"{mail_auth / resolve:.2f}x resolve (target <= 5x)")]
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    parse_only = per_call(headers.parsebytes, messages, repeats)
    whole = per_call(engine.mail_message, messages, repeats)
    rows += [("engine.mail_message(2 KB, 12 fields)", whole, f"{whole / mail_b:.2f}x engine.mail of its fields; "
              f"the email package's header parser alone: {parse_only:.1f} us ({parse_only / whole:.0%}; skipped "
              "for a plain header section)")]
    print(f"mail path, {n} distinct messages, median of {repeats} passes, uncached engines")
    for name, us, note in rows:
        print(f"  {name:50} {us:8.2f} us  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
