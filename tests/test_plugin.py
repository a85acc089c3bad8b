"""The pytest plugin, tested the way users use it: pytest run in a subprocess on a user project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "testing.md"
# What a plain install looks like: hypothesis cannot be imported.
_BLOCK_HYPOTHESIS = """\
import sys
class _NoHypothesis:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("hypothesis", "_hypothesis_pytestplugin"):
            raise ImportError(f"No module named {name!r} (blocked: plain install)")
        return None
_blocker = _NoHypothesis()
sys.meta_path.insert(0, _blocker)
class _Keep:  # pytest puts its assertion rewriter first, and it would find hypothesis: stay in front of it
    def pytest_sessionstart(self, session):
        sys.meta_path.remove(_blocker)
        sys.meta_path.insert(0, _blocker)
"""


def _pytest(cwd: Path, *args: str, block_hypothesis: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    if block_hypothesis:
        code = _BLOCK_HYPOTHESIS + "import pytest\nsys.exit(pytest.main(sys.argv[1:], plugins=[_Keep()]))\n"
        cmd = [sys.executable, "-c", code, "-p", "no:hypothesispytest", "-p", "no:cacheprovider", *args]
    else:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _write_project(tmp_path: Path, test_source: str, ini: str = "") -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n" + ini, encoding="utf-8")
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_source), encoding="utf-8")
    return tmp_path


class TestExamplesProject:
    """examples/ is a user project: its tests pass with the plugin loaded from the entry point."""

    def test_examples_pass(self) -> None:
        """Every test of examples/test_policy.py passes against examples/policy.toml."""
        result = _pytest(EXAMPLES, "-q")
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"\b13 passed\b", result.stdout), result.stdout


class TestDocsExample:
    """docs/testing.md shows a complete user test file that passes."""

    def test_docs_test_file_passes(self, tmp_path: Path) -> None:
        """The first python block of docs/testing.md, saved as a test file in an empty project, passes."""
        text = DOCS.read_text(encoding="utf-8")
        block = re.search(r"```python\n(# test_contoso.py\n.*?)```", text, re.DOTALL)
        assert block is not None, "docs/testing.md lost its complete test file"
        _write_project(tmp_path, block.group(1))
        result = _pytest(tmp_path, "-q")
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"\b8 passed\b", result.stdout), result.stdout


class TestZeroConfiguration:
    """Without configuration the fixtures give the bundled sample and the default policy."""

    def test_defaults(self, mto_snapshot: object, mto_policy: object, trust_engine: object) -> None:
        """This repository's own tests get the fixtures from the entry point, like any user."""
        from mtotrust import Policy, TrustEngine

        assert isinstance(trust_engine, TrustEngine)
        assert mto_policy == Policy.default()
        assert trust_engine.snapshot is mto_snapshot
        assert trust_engine.resolve("cameron@fabrikam.com").trust.value == "mto_member"

    @pytest.mark.mtotrust(policy="classic")
    def test_marker_policy_name(self, mto_policy: object) -> None:
        """The marker selects a built-in policy by name."""
        from mtotrust import Policy

        assert mto_policy == Policy.classic()

    def test_fresh_engine_per_test(self, trust_engine: object) -> None:
        """Each test gets its own engine: the cache starts empty."""
        from mtotrust import TrustEngine

        assert isinstance(trust_engine, TrustEngine)
        assert trust_engine.stats().cache_hits == 0


class TestSelection:
    """Marker and ini options select snapshot and policy; paths are relative to the test or ini file."""

    def test_ini_and_marker(self, tmp_path: Path) -> None:
        """ini picks a snapshot folder and a policy; a module marker and a test marker override them."""
        from mtotrust.testing import SnapshotBuilder

        SnapshotBuilder().tenant("litware").synced_member("li@litware.com").write(tmp_path / "snap")
        (tmp_path / "strict.toml").write_text('version = 1\n[dlp]\ninside_at = "internal"\n', encoding="utf-8")
        project = _write_project(tmp_path, """
            import pytest
            from mtotrust import Policy

            def test_ini(trust_engine, mto_policy):
                assert trust_engine.resolve("li@litware.com").trust.value == "mto_member"
                assert mto_policy.dlp.inside_at == "internal"

            @pytest.mark.mtotrust(snapshot="sample", policy="default")
            def test_marker(trust_engine, mto_policy):
                assert mto_policy == Policy.default()
                assert trust_engine.resolve("cameron@fabrikam.com").trust.value == "mto_member"

            @pytest.mark.mtotrust(snapshot="snap")
            def test_marker_path(mto_snapshot):
                assert len(mto_snapshot.users) == 1

            @pytest.mark.mtotrust(policy={"dlp": {"inside_at": "guest"}})
            def test_marker_dict(mto_policy):
                assert mto_policy.dlp.inside_at == "guest"
            """, ini="mtotrust_snapshot = snap\nmtotrust_policy = strict.toml\n")
        result = _pytest(project, "-q")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 passed" in result.stdout

    def test_bad_policy_file_errors_naming_the_key(self, tmp_path: Path) -> None:
        """A typo in the ini policy file is a PolicyError naming the key, at fixture setup."""
        (tmp_path / "typo.toml").write_text('version = 1\n[mail]\nuntaged_at = "internal"\n', encoding="utf-8")
        project = _write_project(tmp_path, """
            def test_it(trust_engine):
                pass
            """, ini="mtotrust_policy = typo.toml\n")
        result = _pytest(project, "-q")
        assert result.returncode == 1
        assert "PolicyError" in result.stdout
        assert "untaged_at" in result.stdout

    @pytest.mark.parametrize(("marker", "shown"), [
        ('polcy="classic"', "unknown argument polcy='classic'; allowed: snapshot, policy, invariants (did you mean "
                            "policy?)"),
        ("snapshots=None", "unknown argument snapshots=None; allowed: snapshot, policy, invariants (did you mean "
                           "snapshot?)"),
        ('policy="classic", engine=1', "unknown argument engine=1; allowed: snapshot, policy, invariants"),
        ('"classic"', "takes keyword arguments only, got the positional argument 'classic'; allowed: snapshot, "
                      "policy, invariants, e.g. @pytest.mark.mtotrust(policy='classic')"),
    ], ids=["misspelt_policy", "misspelt_snapshot", "unknown", "positional"])
    def test_bad_marker_argument_fails_at_setup(self, pytester: pytest.Pytester, marker: str, shown: str) -> None:
        """An unknown keyword or any positional marker argument fails the test at setup, naming it and the allowed."""
        pytester.makepyfile(f"""
            import pytest

            @pytest.mark.mtotrust({marker})
            def test_it(mto_policy):
                pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(errors=1)
        assert [f"mtotrust marker: {shown}"] == [
            line for line in result.outlines if line.startswith("mtotrust marker:")]

    def test_each_argument_from_its_closest_marker(self, pytester: pytest.Pytester) -> None:
        """A test's snapshot= keeps the policy= of its module's marker, and its own policy= wins over it."""
        pytester.makepyfile("""
            import pytest
            from mtotrust import Policy

            pytestmark = pytest.mark.mtotrust(policy="classic")

            @pytest.mark.mtotrust(snapshot="sample")
            def test_module_policy_kept(mto_policy):
                assert Policy.classic().fingerprint == mto_policy.fingerprint

            @pytest.mark.mtotrust(policy="default")
            def test_own_policy_wins(mto_policy):
                assert Policy.default().fingerprint == mto_policy.fingerprint
            """)
        pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)

    def test_bad_module_marker_fails_every_test(self, pytester: pytest.Pytester) -> None:
        """A misspelt argument of a module marker fails every test of the module, fixtures or not."""
        pytester.makepyfile("""
            import pytest

            pytestmark = pytest.mark.mtotrust(polcy="classic")

            def test_fixture(mto_policy):
                pass

            @pytest.mark.mtotrust(policy="classic")
            def test_no_fixture():
                pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(errors=2)
        message = "mtotrust marker: unknown argument polcy='classic'*"
        result.stdout.fnmatch_lines(["*ERROR at setup of test_fixture*", message,
                                     "*ERROR at setup of test_no_fixture*", message])

    def test_marker_registered(self, tmp_path: Path) -> None:
        """--strict-markers accepts the mtotrust marker, and --markers documents it."""
        result = _pytest(_write_project(tmp_path, "def test_x():\n    pass\n"), "--markers")
        assert "mtotrust(snapshot=None, policy=None, invariants=None)" in result.stdout


class TestPlainInstall:
    """The plugin is loaded for everyone: it must work with hypothesis missing."""

    def test_plugin_imports_nothing_optional(self) -> None:
        """Importing the plugin module imports neither hypothesis nor mtotrust.testing."""
        code = ("import sys; import mtotrust.pytest_plugin; "
                "bad = [m for m in ('hypothesis', 'mtotrust.testing') if m in sys.modules]; "
                "sys.exit(1 if bad else 0)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr

    def test_fixtures_without_hypothesis(self, tmp_path: Path) -> None:
        """With hypothesis unimportable, a user's tests still get the fixtures."""
        project = _write_project(tmp_path, """
            import pytest

            def test_it(trust_engine):
                assert trust_engine.resolve("megan@contoso.com").trust.value == "internal"

            def test_really_plain():
                with pytest.raises(ImportError):
                    import hypothesis  # noqa: F401
            """)
        result = _pytest(project, "-q", block_hypothesis=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
