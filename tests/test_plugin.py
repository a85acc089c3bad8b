"""The pytest plugin, tested the way users use it: pytest run in a subprocess on a user project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest

from mtotrust import Policy
from mtotrust._verify import INVARIANTS

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
        """Every test of examples/test_policy.py passes against examples/policy.toml, one item per invariant too."""
        result = _pytest(EXAMPLES, "-q")
        assert result.returncode == 0, result.stdout + result.stderr
        own = len(Policy.load(EXAMPLES / "policy.toml").invariants) + 1  # and rules.py's one @invariant
        assert re.search(rf"\b{13 + len(INVARIANTS) + own} passed\b", result.stdout), result.stdout


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


class TestInvariantItems:
    """Invariants as test items: the marker and the ini option make one item per invariant, failing with its finding.

    The user invariants are DLP rules ("recipients at trust T count inside/outside"), so whether each holds follows
    from the policy's ``dlp.inside_at`` alone (:meth:`_holds`, the DLP contract), and the built-ins hold on the
    default and classic policies (tests/test_verify.py): every expected outcome is computed, none is written down.
    """

    DECLARED: ClassVar[dict[str, tuple[str, str]]] = {
        "mto members stay outside DLP": ("mto_member", "outside"),  # violated by the default policy, not by classic
        "internal users stay inside DLP": ("internal", "inside"),
    }
    """The ``[[invariants]]`` of policy.toml: name -> (trust, inside or outside)."""
    PYTHON: ClassVar[dict[str, tuple[str, str]]] = {"python mto_member recipients outside": ("mto_member", "outside")}
    """The ``@invariant`` functions of rules.py."""
    OBJECT: ClassVar[dict[str, tuple[str, str]]] = {"object internal recipients inside": ("internal", "inside")}
    """The ``@invariant`` the test file passes to the marker itself."""
    INI = "mtotrust_invariants = policy.toml rules.py\n"
    _LINE = re.compile(r"^(?P<id>\S.*?) (?P<outcome>PASSED|FAILED|ERROR)(?: +\[ *\d+%\])?$")

    @staticmethod
    def _holds(policy: Policy, trust: str, expect: str) -> bool:
        """Whether "recipients at ``trust`` count ``expect``" holds: DLP counts a recipient inside from inside_at up."""
        from mtotrust import Trust

        return (Trust(trust) >= Trust(policy.dlp.inside_at)) == (expect == "inside")

    @staticmethod
    def _function(name: str) -> str:
        """Return the Python name of the ``@invariant`` function named ``name``."""
        return re.sub(r"\W+", "_", name)

    @classmethod
    def _rule(cls, name: str, trust: str, expect: str) -> str:
        """Return the source of an ``@invariant`` function: recipients at ``trust`` count ``expect``."""
        return (f'\n\n@invariant(app="dlp", trust="{trust}", name="{name}")\n'
                f"def {cls._function(name)}(point, decision):\n"
                f"    return decision.inside_organization is {expect == 'inside'}\n")

    @classmethod
    def _project(cls, root: Path, test_source: str, ini: str = "") -> Path:
        """Write a user project: policy.toml (DECLARED), rules.py (PYTHON), the test file and pytest.ini."""
        invariants = "".join(f'\n[[invariants]]\nname = "{name}"\napp = "dlp"\ntrust = "{trust}"\nexpect = "{expect}"\n'
                             for name, (trust, expect) in cls.DECLARED.items())
        (root / "policy.toml").write_text("version = 1\n" + invariants, encoding="utf-8")
        rules = "".join(cls._rule(name, *rule) for name, rule in cls.PYTHON.items())
        (root / "rules.py").write_text("from mtotrust.testing import invariant\n" + rules, encoding="utf-8")
        return _write_project(root, test_source, ini)

    @classmethod
    def _expected(cls, node: str, policy: Policy, user: dict[str, tuple[str, str]]) -> dict[str, str]:
        """Return each item's outcome by node id (``node`` formatted with the invariant's name), built-ins first."""
        holds = {inv.name: True for inv in INVARIANTS}
        holds |= {name: cls._holds(policy, *rule) for name, rule in user.items()}
        return {node.format(name): "PASSED" if ok else "FAILED" for name, ok in holds.items()}

    @classmethod
    def _outcomes(cls, result: pytest.RunResult, prefix: str = "") -> dict[str, str]:
        """Return the outcome of each item of a ``-v`` run whose node id starts with ``prefix``."""
        found = {m["id"]: m["outcome"] for line in result.outlines if (m := cls._LINE.match(line))}
        return {node: outcome for node, outcome in found.items() if node.startswith(prefix)}

    @staticmethod
    def _result(completed: subprocess.CompletedProcess[str]) -> pytest.RunResult:
        """Return a subprocess run of ``_pytest`` as pytester's result, for ``assert_outcomes``."""
        return pytest.RunResult(completed.returncode, completed.stdout.splitlines(), completed.stderr.splitlines(),
                                0.0)

    @staticmethod
    def _section(result: pytest.RunResult, title: str) -> str:
        """Return what pytest reports for the item ``title`` (its ``___ title ___`` section)."""
        text = str(result.stdout)
        found = re.search(rf"_+ {re.escape(title)} _+\n(.*?)(?=\n_{{3,}} |\n={{3,}})", text, re.DOTALL)
        assert found is not None, text
        return found.group(1)

    @pytest.fixture(scope="class", name="marker_run")
    @classmethod
    def marker_run(cls, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pytest.RunResult]:
        """Run, once for the class, a project whose test functions carry the marker with each kind of source."""
        (name, rule), = cls.OBJECT.items()
        project = cls._project(tmp_path_factory.mktemp("marker"), f"""\
from pathlib import Path

import pytest
from mtotrust.testing import invariant

SEEN = Path(__file__).with_name("seen.txt")
{cls._rule(name, *rule)}

@pytest.mark.mtotrust(invariants="policy.toml")
def test_x(mto_invariant):
    with SEEN.open("a", encoding="utf-8") as seen:
        seen.write(f"{{mto_invariant.name}}|{{mto_invariant.holds}}|{{mto_invariant.finding}}\\n")


@pytest.mark.mtotrust(invariants=["policy.toml", "rules.py"])
def test_list(mto_invariant):
    pass


@pytest.mark.mtotrust(invariants={cls._function(name)})
def test_object(mto_invariant):
    pass


@pytest.mark.mtotrust(invariants="rules.py", policy="classic")
def test_classic(mto_invariant):
    pass
""")
        return project, cls._result(_pytest(project, "-v"))

    def test_one_item_per_invariant(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """A marked test is test_x[<name>] for every built-in and user invariant; only the violated one fails."""
        from mtotrust import Policy

        project, result = marker_run
        expected = self._expected("test_user.py::test_x[{}]", Policy.load(project / "policy.toml"), self.DECLARED)
        assert ["FAILED"] == [outcome for outcome in expected.values() if outcome != "PASSED"]
        assert expected == self._outcomes(result, "test_user.py::test_x[")

    def test_outcomes_counted(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """The run counts a failure per violated invariant item, a pass per holding one, and no error."""
        from mtotrust import Policy

        project, result = marker_run
        default = Policy.load(project / "policy.toml")
        expected = (self._expected("test_user.py::test_x[{}]", default, self.DECLARED)
                    | self._expected("test_user.py::test_list[{}]", default, self.DECLARED | self.PYTHON)
                    | self._expected("test_user.py::test_object[{}]", Policy.default(), self.OBJECT)
                    | self._expected("test_user.py::test_classic[{}]", Policy.classic(), self.PYTHON))
        outcomes = list(expected.values())
        result.assert_outcomes(passed=outcomes.count("PASSED"), failed=outcomes.count("FAILED"))

    def test_violated_item_shows_counterexample(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """A violated invariant's item fails with its minimal counterexample and the policy key that decided it."""
        from mtotrust import Policy

        _, result = marker_run
        name = next(n for n, rule in self.DECLARED.items() if not self._holds(Policy.default(), *rule))
        report = self._section(result, f"test_x[{name}]")
        assert f"invariant {name!r} is violated:" in report
        assert "minimal counterexample:" in report
        assert re.search(r"^ +identity: '[^']+@[^']+'", report, re.MULTILINE), report
        assert f"a recipient at trust {self.DECLARED[name][0]} counts inside" in report
        assert f'decided by: dlp.inside_at = "{Policy.default().dlp.inside_at}"' in report

    def test_list_of_sources(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """invariants=[policy file, Python file] makes an item per built-in, file and module invariant."""
        from mtotrust import Policy

        project, result = marker_run
        expected = self._expected("test_user.py::test_list[{}]", Policy.load(project / "policy.toml"),
                                  self.DECLARED | self.PYTHON)
        assert expected == self._outcomes(result, "test_user.py::test_list[")

    def test_invariant_object(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """An @invariant passed to the marker itself is an item, verified against the default policy."""
        from mtotrust import Policy

        _, result = marker_run
        expected = self._expected("test_user.py::test_object[{}]", Policy.default(), self.OBJECT)
        assert expected == self._outcomes(result, "test_user.py::test_object[")

    def test_policy_argument_picks_the_verified_policy(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """policy="classic" beside invariants= verifies classic: a rule default breaks passes under classic."""
        from mtotrust import Policy

        _, result = marker_run
        (name, rule), = self.PYTHON.items()
        assert self._holds(Policy.classic(), *rule) != self._holds(Policy.default(), *rule)
        expected = self._expected("test_user.py::test_classic[{}]", Policy.classic(), self.PYTHON)
        assert expected == self._outcomes(result, "test_user.py::test_classic[")
        outcomes = self._outcomes(result)
        assert ["PASSED", "FAILED"] == [outcomes[f"test_user.py::test_classic[{name}]"],
                                        outcomes[f"test_user.py::test_list[{name}]"]]

    def test_body_reads_the_outcome(self, marker_run: tuple[Path, pytest.RunResult]) -> None:
        """A holding item's body reads mto_invariant's name, holds and finding; a violated item's body never runs."""
        from mtotrust import Policy

        project, _ = marker_run
        expected = self._expected("{}", Policy.load(project / "policy.toml"), self.DECLARED)
        seen = (project / "seen.txt").read_text(encoding="utf-8").splitlines()
        assert sorted(f"{name}|True|None" for name, outcome in expected.items() if outcome == "PASSED") == sorted(seen)

    def test_test_without_the_fixture_argument(self, pytester: pytest.Pytester) -> None:
        """A marked test that does not take mto_invariant is still one item per invariant, failing the violated one."""
        from mtotrust import Policy

        self._project(pytester.path, """
            import pytest

            @pytest.mark.mtotrust(invariants="policy.toml")
            def test_x():
                pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider", "-v")
        expected = self._expected("test_user.py::test_x[{}]", Policy.load(pytester.path / "policy.toml"),
                                  self.DECLARED)
        assert expected == self._outcomes(result)

    def test_policy_argument_keeps_the_files_invariants(self, pytester: pytest.Pytester) -> None:
        """With policy="classic" the [[invariants]] of a policy file among the sources are still items, on classic."""
        from mtotrust import Policy

        self._project(pytester.path, """
            import pytest

            @pytest.mark.mtotrust(invariants="policy.toml", policy="classic")
            def test_x(mto_invariant):
                pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider", "-v")
        assert self._expected("test_user.py::test_x[{}]", Policy.classic(), self.DECLARED) == self._outcomes(result)

    def test_fixture_without_the_marker(self, pytester: pytest.Pytester) -> None:
        """Requesting mto_invariant in a test without invariants= fails it at setup, saying which marker it needs."""
        pytester.makepyfile("""
            def test_it(mto_invariant):
                pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(errors=1)
        assert ["mto_invariant: only a test with @pytest.mark.mtotrust(invariants=...) has an invariant"] == [
            line for line in result.outlines if line.startswith("mto_invariant:")]

    def test_invariants_on_module_or_class(self, pytester: pytest.Pytester) -> None:
        """invariants= on a module's pytestmark or on a class fails each of their tests, asking for a test function."""
        self._project(pytester.path, """
            import pytest

            pytestmark = pytest.mark.mtotrust(invariants="policy.toml")

            def test_one():
                pass

            def test_two(mto_policy):
                pass
            """)
        pytester.makepyfile(test_class="""
            import pytest

            @pytest.mark.mtotrust(invariants="policy.toml")
            class TestRules:
                def test_three(self):
                    pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(errors=3)
        wanted = "each of its tests one item per invariant; put it on one test function"
        result.stdout.fnmatch_lines([
            "*ERROR at setup of TestRules.test_three*",
            f"mtotrust marker: invariants= on class 'TestRules' would make {wanted}",
            "*ERROR at setup of test_one*",
            f"mtotrust marker: invariants= on module 'test_user.py' would make {wanted}",
            "*ERROR at setup of test_two*",
            f"mtotrust marker: invariants= on module 'test_user.py' would make {wanted}"])

    def test_ini_option_adds_items(self, pytester: pytest.Pytester) -> None:
        """mtotrust_invariants adds policy.toml::<name> per invariant to a run whose tests never mention invariants."""
        from mtotrust import Policy

        self._project(pytester.path, "def test_plain():\n    pass\n", ini=self.INI)
        result = pytester.runpytest("-p", "no:cacheprovider", "-v")
        expected = self._expected("policy.toml::{}", Policy.load(pytester.path / "policy.toml"),
                                  self.DECLARED | self.PYTHON) | {"test_user.py::test_plain": "PASSED"}
        assert expected == self._outcomes(result)
        outcomes = list(expected.values())
        result.assert_outcomes(passed=outcomes.count("PASSED"), failed=outcomes.count("FAILED"))

    def test_ini_items_selected_by_keyword(self, pytester: pytest.Pytester) -> None:
        """-k with a word of a user invariant's name runs just its item, and a violated one fails."""
        from mtotrust import Policy

        self._project(pytester.path, "def test_plain():\n    pass\n", ini=self.INI)
        every = self._expected("policy.toml::{}", Policy.default(), self.DECLARED | self.PYTHON)
        name = next(n for n, rule in self.DECLARED.items() if not self._holds(Policy.default(), *rule))
        word = "members"
        assert [f"policy.toml::{name}"] == [node for node in every if word in node]
        result = pytester.runpytest("-p", "no:cacheprovider", "-v", "-k", word)
        assert {f"policy.toml::{name}": "FAILED"} == self._outcomes(result)
        result.assert_outcomes(failed=1, deselected=len(every))

    @pytest.mark.parametrize(("source", "content", "shown"), [
        ("missing.toml", None, "*PolicyError: policy file '*missing.toml' cannot be read*"),
        ("broken.py", "import no_such_module_here\n",
         "*PolicyError: invariants module '*broken.py' cannot be imported: ModuleNotFoundError*no_such_module_here*"),
    ], ids=["missing_policy", "broken_rules"])
    def test_bad_source_is_a_collection_error(self, pytester: pytest.Pytester, source: str, content: str | None,
                                              shown: str) -> None:
        """A marker source that cannot be loaded is a collection error naming the file, not a crash of pytest."""
        if content is not None:
            (pytester.path / source).write_text(content, encoding="utf-8")
        pytester.makepyfile(f"""
            import pytest

            @pytest.mark.mtotrust(invariants="{source}")
            def test_x(mto_invariant):
                pass
            """)
        result = pytester.runpytest("-p", "no:cacheprovider")
        assert pytest.ExitCode.INTERRUPTED == result.ret
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*ERROR collecting*", shown])
        assert "INTERNALERROR" not in str(result.stdout)

    @pytest.mark.parametrize(("ini", "test", "node"), [
        ("mtotrust_invariants = raising.py\n", "def test_x():", "raising.py::{}"),
        ("", '@pytest.mark.mtotrust(invariants="raising.py")\ndef test_x(mto_invariant):', "test_user.py::test_x[{}]"),
    ], ids=["ini", "marker"])
    def test_raising_invariant_fails_its_item(self, pytester: pytest.Pytester, ini: str, test: str,
                                              node: str) -> None:
        """A Python invariant that raises makes its item fail, naming the invariant and the exception."""
        (pytester.path / "raising.py").write_text(
            "from mtotrust.testing import invariant\n\n\n@invariant(app=\"dlp\", name=\"raising rule\")\n"
            "def raising(point, decision):\n    raise ValueError(\"cannot decide \" + point.identity)\n",
            encoding="utf-8")
        _write_project(pytester.path, f"import pytest\n\n\n{test}\n    pass\n", ini=ini)
        result = pytester.runpytest("-p", "no:cacheprovider", "-v")
        assert pytest.ExitCode.TESTS_FAILED == result.ret
        assert self._outcomes(result)[node.format("raising rule")] in ("FAILED", "ERROR")
        result.stdout.fnmatch_lines(["*invariant 'raising rule' (raising.py:4 raising) raised ValueError: cannot "
                                     "decide *"])

    def test_plain_install(self, tmp_path: Path) -> None:
        """With hypothesis unimportable, a rules.py importing mtotrust.testing.invariant loads and its items run."""
        from mtotrust import Policy

        project = self._project(tmp_path, """
            import pytest

            @pytest.mark.mtotrust(invariants="rules.py")
            def test_x(mto_invariant):
                pass

            def test_really_plain():
                with pytest.raises(ImportError):
                    import hypothesis  # noqa: F401
            """)
        result = self._result(_pytest(project, "-v", block_hypothesis=True))
        expected = (self._expected("test_user.py::test_x[{}]", Policy.default(), self.PYTHON)
                    | {"test_user.py::test_really_plain": "PASSED"})
        assert expected == self._outcomes(result), str(result.stdout) + "\n".join(result.errlines)

    def test_one_verification_per_plan(self, tmp_path: Path) -> None:
        """Markers and the ini option with the same sources and policy share one verification and agree."""
        from mtotrust import Policy

        (tmp_path / "conftest.py").write_text(textwrap.dedent("""
            import mtotrust._verify

            _verify = mtotrust._verify.verify
            CALLS = []

            def _counted(*args, **kwargs):
                CALLS.append(args)
                return _verify(*args, **kwargs)

            mtotrust._verify.verify = _counted

            def pytest_terminal_summary(terminalreporter):
                terminalreporter.write_line(f"mtotrust verifications: {len(CALLS)}")
            """), encoding="utf-8")
        project = self._project(tmp_path, """
            import pytest

            SOURCES = ["policy.toml", "rules.py"]

            @pytest.mark.mtotrust(invariants=SOURCES)
            def test_a(mto_invariant):
                pass

            @pytest.mark.mtotrust(invariants=SOURCES)
            def test_b(mto_invariant):
                pass

            @pytest.mark.mtotrust(invariants=SOURCES, policy="classic")
            def test_c(mto_invariant):
                pass

            @pytest.mark.mtotrust(invariants=SOURCES, policy="classic")
            def test_d(mto_invariant):
                pass
            """, ini=self.INI)
        result = self._result(_pytest(project, "-v"))
        outcomes = self._outcomes(result)
        names = self._expected("{}", Policy.default(), self.DECLARED | self.PYTHON)  # every name the items carry
        for node, twin in [("policy.toml::{}", "test_user.py::test_a[{}]"),
                           ("test_user.py::test_b[{}]", "test_user.py::test_a[{}]"),
                           ("test_user.py::test_d[{}]", "test_user.py::test_c[{}]")]:
            assert {n: outcomes.get(twin.format(n)) for n in names} == {n: outcomes.get(node.format(n)) for n in names}
        assert ["mtotrust verifications: 2"] == [line for line in result.outlines if "verifications:" in line]
