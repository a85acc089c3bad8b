"""What user invariants add to ``mtotrust lint``: the default policy alone, then with ten user invariants.

    python -m benchmarks.lint              # about 1 min on 2 vCPU
    python -m benchmarks.lint --quick      # one repeat

Rows, each a median of whole verifications of the synthetic attribute space (``verify(policy)``, what
``mtotrust lint POLICY`` runs after reading the file), and the ratio to the first row measured in the same run:

- ``built-in invariants``: ``Policy.default()`` and the 19 built-ins; **the baseline**.
- ``+ 10 [[invariants]]``: the same policy with ten declarative invariants, one or more per app, each scoped by
  a different word of the vocabulary.
- ``+ 10 @invariant``: the ten same rules written as Python functions (``--invariants module.py``).
- ``+ both``: twenty user invariants.
- ``lint --compare classic``: the two policies evaluated over the space, for scale.

Times are CPU time of the process (``time.process_time``), which a shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from mtotrust import Policy, Trust
from mtotrust._verify import verify
from mtotrust._verify.compare import compare
from mtotrust._verify.user import UserInvariant, invariant

RULES: list[dict[str, Any]] = [
    {"name": "removed tenants never pass DLP", "app": "dlp", "tenant_state": "removed", "expect": "outside"},
    {"name": "pending tenants' mail is tagged", "app": "mail", "tenant_state": "pending", "expect": "tagged"},
    {"name": "guests get no file sharing", "app": "teams", "trust_at_most": "guest", "action": "file_sharing",
     "expect": "denied"},
    {"name": "failed authentication is untrusted", "app": "mail", "authentication": "fail",
     "tenant_state": ["local", "active"], "expect_trust_at_most": "untrusted"},
    {"name": "unauthenticated mail is tagged", "app": "mail", "authentication": "none", "expect": "tagged"},
    {"name": "partner false is at most guest", "app": "resolve", "partner": "false",
     "expect_trust_at_most": "guest"},
    {"name": "MTO members chat", "app": "teams", "trust": "mto_member", "action": ["chat", "call"],
     "expect": "allowed"},
    {"name": "internal users are inside", "app": "dlp", "trust": "internal", "expect": "inside"},
    {"name": "MTO members' authenticated mail is untagged", "app": "mail", "trust_at_least": "mto_member",
     "authentication": "pass", "expect": "untagged"},
    {"name": "unknown tenants are at most guest", "app": "resolve", "tenant_state": ["unknown", "not_in_mto"],
     "expect_trust_at_most": "guest"},
]
"""Ten rules an admin would state, each holding under ``Policy.default()``."""

_EXPECT: dict[str, Callable[[Any], bool]] = {
    "outside": lambda d: not d.inside_organization, "inside": lambda d: d.inside_organization,
    "tagged": lambda d: d.tag_external, "untagged": lambda d: not d.tag_external,
    "denied": lambda d: not d.allowed, "allowed": lambda d: d.allowed,
}


def python_rules() -> list[UserInvariant]:
    """Return :data:`RULES` as ``@invariant`` functions (the expectation in Python, the scope as keywords)."""
    made = []
    for rule in RULES:
        scope = {k: v for k, v in rule.items() if k not in ("name", "expect", "expect_trust_at_most")}
        expect = rule.get("expect")
        most = rule.get("expect_trust_at_most")

        def check(_point: Any, decision: Any, expect: str | None = expect, most: str | None = most) -> bool:
            if expect is not None:
                return _EXPECT[expect](decision)
            return bool(decision.trust <= Trust(most))
        made.append(invariant(name=f"py: {rule['name']}", **scope)(check))
    return made


def _median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per row")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 5
    default = Policy.default()
    declared = Policy.from_data({"invariants": RULES})
    functions = python_rules()
    rows: list[tuple[str, Callable[[], object]]] = [
        ("built-in invariants (19)", lambda: verify(default)),
        ("+ 10 [[invariants]]", lambda: verify(declared)),
        ("+ 10 @invariant", lambda: verify(default, extra=functions)),
        ("+ both (20 user invariants)", lambda: verify(declared, extra=functions)),
        ("lint --compare classic", lambda: compare(default, Policy.classic())),
    ]
    report = verify(declared, extra=functions)
    if not report.ok:  # the rules hold, so every row measures the same full pass
        raise SystemExit(report.format())
    print(f"verify() of the attribute space, CPU seconds, median of {repeats}")
    print(f"{'row':32} {'seconds':>8} {'ratio':>7}")
    base = None
    for name, fn in rows:
        seconds = _median(fn, repeats)
        base = base or seconds
        print(f"{name:32} {seconds:8.2f} {seconds / base:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
