"""Edges of user invariants a review found: vacuous scopes, empty lists, aliased functions, block probes' homes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mtotrust import Policy, PolicyError, TrustEngine
from mtotrust._verify import enumerate_space, verify
from mtotrust._verify.user import load_module

pytest_plugins = ["pytester"]


def test_an_invariant_that_speaks_of_no_decision_is_an_error() -> None:
    """Filters no identity matches (the local tenant has no partner flag) are refused, not reported as holding."""
    policy = Policy.from_data({"invariants": [{"name": "local partner", "app": "mail", "tenant_state": "local",
                                               "partner": True, "expect": "untagged"}]})
    with pytest.raises(PolicyError, match="'local partner' speaks of no decision") as caught:
        verify(policy)
    assert caught.value.key == "local partner"


@pytest.mark.parametrize("word", ["trust", "tenant_state", "partner", "authentication", "label", "action"])
def test_an_empty_list_is_refused(word: str) -> None:
    """An empty list would select nothing: it is a PolicyError naming the key."""
    app = {"authentication": "mail", "label": "labels", "action": "teams"}.get(word, "dlp")
    expect = {"mail": "tagged", "labels": "no_rights", "teams": "denied", "dlp": "outside"}[app]
    with pytest.raises(PolicyError) as caught:
        Policy.from_data({"labels": {"C": {"internal": "Viewer"}},
                          "invariants": [{"name": "x", "app": app, word: [], "expect": expect}]})
    assert caught.value.key is not None
    assert caught.value.key.startswith(f"invariants.0.{word}")


def test_an_invariant_bound_to_two_names_counts_once(tmp_path: Path) -> None:
    """A module that aliases an @invariant (g = f) defines one invariant, not a clash of two."""
    path = tmp_path / "rules.py"
    path.write_text(textwrap.dedent("""\
        from mtotrust.testing import invariant

        @invariant(app="dlp", tenant_state="removed")
        def removed_outside(point, decision):
            return not decision.inside_organization

        alias = removed_outside
        """), encoding="utf-8")
    found = load_module(path)
    assert [i.name for i in found] == ["removed_outside"]
    assert verify(extra=found).ok


def test_block_probes_are_at_home_where_their_domain_is() -> None:
    """A block probe at an unknown or look-alike domain has tenant_state unknown, as the engine resolves it."""
    policy = Policy.from_data({"overrides": {"block": ["x@unknown-absent.example", "y@active-absent.examp1e",
                                                       "z@contoso.com"]}})
    snapshot, cases = enumerate_space(policy)
    engine = TrustEngine(snapshot, policy)
    probes = [c for c in cases if c.facts is not None and c.facts.home == "blocked"]
    assert len(probes) == 3
    for case in probes:
        home = engine.resolve(case.identity).home_tenant_id
        want = "local" if home == snapshot.tenant_id else "unknown" if home is None else case.home_state
        assert case.home_state == want, case


def test_a_bad_ini_source_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """mtotrust_invariants naming a missing file stops pytest with one line naming it, not an INTERNALERROR."""
    pytester.makeini("[pytest]\nmtotrust_invariants = missing.toml\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*mtotrust_invariants: *missing.toml*"])
