"""docs/testing.md's user-invariant examples do what the page says they do."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from mtotrust import Policy
from mtotrust._policy import InvariantRule
from mtotrust._verify import verify
from mtotrust._verify.compare import compare
from mtotrust._verify.user import load_module
from mtotrust.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
TEXT = DOCS.read_text(encoding="utf-8")
SECTION = TEXT[TEXT.index("## Your own invariants"):TEXT.index("## `mtotrust lint`")]
CONFIDENTIAL = '[labels.Confidential]\ninternal = "Co-Author"\nmto_member = "Viewer"\n'


def _block(language: str, marker: str) -> str:
    """Return the ``language`` code block of the section that contains ``marker``."""
    for block in re.findall(rf"```{language}\n(.*?)```", SECTION, re.DOTALL):
        if marker in block:
            return str(block)
    raise AssertionError(f"docs/testing.md lost its {language} block with {marker!r}")


WORKED = _block("toml", "the mistake: guests get full rights")
PER_WORD = _block("toml", "tenants that left resolve to guest at most")
RULES = _block("python", "# rules.py")


def test_every_word_has_an_example() -> None:
    """Each word of the vocabulary (every key of an [[invariants]] table) is used by an example on the page."""
    words = set(InvariantRule.model_fields)
    used = {key for rule in tomllib.loads(PER_WORD)["invariants"] for key in rule}
    used |= {key for rule in tomllib.loads(WORKED)["invariants"] for key in rule}
    assert words == used
    documented = set(re.findall(r"^\| `(\w+)` \|", SECTION, re.MULTILINE))
    assert words <= documented


def test_per_word_examples_hold_on_the_default_policy() -> None:
    """The page says each example holds under Policy.default() (with Confidential as in the worked example)."""
    policy = Policy.from_data(tomllib.loads(f"version = 1\n{CONFIDENTIAL}{PER_WORD}"))
    report = verify(policy)
    assert report.ok, report.format()
    assert {rule.name for rule in policy.invariants} <= set(report.checked)


def test_worked_example_fails_with_the_guest_the_label_and_the_key(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """lint exits 1 on the worked example, its counterexample a guest, on Confidential, decided by the guest key."""
    path = tmp_path / "policy.toml"
    path.write_text(WORKED, encoding="utf-8")
    assert main(["lint", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    found = {f["invariant"]: f for f in report["findings"]}
    finding = found["guests never get Confidential rights"]
    assert (finding["trust"], finding["app"], finding["key"]) == \
        ("guest", "label 'Confidential'", 'labels.Confidential.guest = "Co-Owner"')
    assert "removed tenants never pass DLP" in report["checked"]
    assert "removed tenants never pass DLP" not in found


def test_worked_example_fixed_lints_clean(tmp_path: Path) -> None:
    """Without the guest line, as the page says, lint exits 0."""
    path = tmp_path / "policy.toml"
    path.write_text(re.sub(r"^guest = .*\n", "", WORKED, flags=re.MULTILINE), encoding="utf-8")
    assert main(["lint", str(path)]) == 0


def test_python_rules_of_the_page(tmp_path: Path) -> None:
    """The page's rules.py: the Confidential rule fails on the worked example, the partner rule holds."""
    rules = tmp_path / "rules.py"
    rules.write_text(RULES, encoding="utf-8")
    report = verify(Policy.from_data(tomllib.loads(WORKED)), extra=load_module(rules))
    assert set(report.violated()) == {"monotonic_label_rights", "guests never get Confidential rights",
                                      "guests_get_no_confidential_rights"}
    assert "partner_false_mail_is_tagged" in report.checked


def test_compare_default_with_classic_names_the_classes_the_page_lists() -> None:
    """--compare classic on the default policy: mail, DLP and four Teams actions change, for MTO members only."""
    classes = compare(Policy.default(), Policy.classic()).classes
    assert {(c.app, c.trust, c.before, c.after) for c in classes} == {
        ("mail", "mto_member", "tagged at mto_member", "untagged at mto_member"),
        ("dlp", "mto_member", "outside", "inside"),
        *((f"teams {a}", "mto_member", "denied", "allowed")
           for a in ("file_sharing", "meeting_lobby_bypass", "people_search", "presence")),
    }
    assert f"{len(classes)} classes, the first" in SECTION
