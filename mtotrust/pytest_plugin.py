"""pytest plugin for mtotrust: the fixtures ``mto_snapshot``, ``mto_policy`` and ``trust_engine``, and invariant items.

Loaded through the ``pytest11`` entry point for everyone who installs mtotrust, extras or not, so it imports
nothing optional (no hypothesis): only pytest and mtotrust's core, which ``import mtotrust`` loads anyway.

Selection, most specific first:

- the marker ``@pytest.mark.mtotrust(snapshot=..., policy=...)`` on the test, its class or module
  (``pytestmark``): a path (relative to the test file's folder), ``"sample"``, a ``Snapshot`` or
  ``SnapshotBuilder``; for the policy a path, ``"default"``, ``"classic"``, a ``Policy`` or a dict (any other
  argument, misspelt or positional, fails the test at setup);
- the ini options ``mtotrust_snapshot`` and ``mtotrust_policy`` (paths relative to the ini file's folder);
- the bundled sample MTO (``Snapshot.sample()``) and ``Policy.default()``.

Invariants as test items: ``@pytest.mark.mtotrust(invariants=...)`` on a test (a policy file, a Python file of
``@invariant`` functions, invariants themselves, or a list of these) makes it one item per invariant, the
built-ins and the user's, ``test_x[<invariant name>]``; the ini option ``mtotrust_invariants`` (paths) adds such
items to every run, ``<path>::<invariant name>``. Each item fails with the invariant's minimal counterexample.
The policy verified is the marker's or ini's ``policy`` when given, else the first policy file among the
sources, else ``Policy.default()``; the snapshot only when one is chosen. Each (policy, sources, snapshot) is
verified once per session.

See docs/testing.md.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from mtotrust._builder import SnapshotBuilder
from mtotrust._engine import TrustEngine
from mtotrust._errors import MtoTrustError, shown
from mtotrust._policy import Policy, policy_named
from mtotrust._snapshot import Snapshot

if TYPE_CHECKING:
    from mtotrust._verify import Finding, Invariant
    from mtotrust._verify.user import UserInvariant

__all__ = ["InvariantItem", "InvariantOutcome", "mto_invariant", "mto_policy", "mto_snapshot", "pytest_addoption",
           "pytest_collection_modifyitems", "pytest_configure", "pytest_generate_tests", "pytest_runtest_call",
           "pytest_runtest_setup", "trust_engine"]

_MARKER = ("mtotrust(snapshot=None, policy=None, invariants=None): select the snapshot (path, 'sample', Snapshot "
           "or SnapshotBuilder) and policy (path, 'default', 'classic', Policy or dict) the mtotrust fixtures use; "
           "invariants= (a policy file, a Python file of @invariant functions, invariants, or a list) makes the "
           "test one item per invariant")
_ARGUMENTS = ("snapshot", "policy", "invariants")
_CACHE = pytest.StashKey[dict[tuple[str, int], Any]]()
_VERIFIED = pytest.StashKey[dict[tuple[Any, ...], tuple["_Plan", dict[str, "Finding | None"]]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini options ``mtotrust_snapshot`` and ``mtotrust_policy``."""
    parser.addini("mtotrust_snapshot", "snapshot folder or .sqlite file for the mto_snapshot fixture "
                  "(default: the bundled sample MTO)", default="")
    parser.addini("mtotrust_policy", "policy file (TOML or JSON), 'default' or 'classic' for the mto_policy "
                  "fixture (default: Policy.default())", default="")
    parser.addini("mtotrust_invariants", "policy files and Python files of @invariant functions: every invariant "
                  "(built-in and user) becomes a test item of every run", type="paths", default=[])


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``mtotrust`` marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line("markers", _MARKER)


def _marker_problem(marker: pytest.Mark) -> str | None:
    """Say what is wrong with the arguments of one ``mtotrust`` marker, or return ``None``."""
    allowed = ", ".join(_ARGUMENTS)
    if marker.args:
        return (f"mtotrust marker: takes keyword arguments only, got the positional argument "
                f"{shown(marker.args[0])}; allowed: {allowed}, e.g. @pytest.mark.mtotrust(policy='classic')")
    for name, value in marker.kwargs.items():
        if name not in _ARGUMENTS:
            close = difflib.get_close_matches(name, _ARGUMENTS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"mtotrust marker: unknown argument {name}={shown(value)}; allowed: {allowed}{hint}"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test at setup whose ``mtotrust`` marker (on it, its class or module) has an argument it ignores.

    ``invariants=`` belongs on a test function: on a class or module it fails each test it would multiply.
    """
    for node, marker in item.iter_markers_with_node(name="mtotrust"):
        problem = _marker_problem(marker)
        if problem is None and node is not item and marker.kwargs.get("invariants") is not None:
            problem = (f"mtotrust marker: invariants= on {type(node).__name__.lower()} {node.name!r} would make "
                       "each of its tests one item per invariant; put it on one test function")
        if problem is not None:
            pytest.fail(problem, pytrace=False)


def _marker_value(request: pytest.FixtureRequest, name: str) -> tuple[Any, Path] | None:
    """Return the closest ``mtotrust`` marker's ``name`` argument, each argument looked up on its own.

    ``@pytest.mark.mtotrust(snapshot=...)`` on a test keeps the ``policy=`` its module's ``pytestmark`` gives.
    """
    for marker in request.node.iter_markers(name="mtotrust"):  # closest first: test, class, module
        if marker.kwargs.get(name) is not None:
            return marker.kwargs[name], Path(request.path).parent
    return None


def _ini_value(config: pytest.Config, name: str) -> tuple[Any, Path] | None:
    value = str(config.getini(name) or "").strip()
    if not value:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return value, Path(base)


def _load_cached(config: pytest.Config, path: Path, loader: Any) -> Any:
    """Load a snapshot or policy file once per session and file version (both are immutable)."""
    cache = config.stash.setdefault(_CACHE, {})
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        return loader(path)  # let the loader raise its own error naming the path
    if key not in cache:
        cache[key] = loader(path)
    return cache[key]


def _choose(request: pytest.FixtureRequest, name: str) -> tuple[Any, Path] | None:
    return _marker_value(request, name) or _ini_value(request.config, f"mtotrust_{name}")


def _snapshot_of(config: pytest.Config, value: Any, base: Path) -> Snapshot:
    """Return the snapshot a marker or ini value names (a path relative to ``base``)."""
    if isinstance(value, Snapshot):
        return value
    if isinstance(value, SnapshotBuilder):
        return value.build()
    if value == "sample":
        return _load_cached(config, Path("<sample>"), lambda _: Snapshot.sample())  # type: ignore[no-any-return]
    if isinstance(value, (str, os.PathLike)):
        return _load_cached(config, base / Path(value), Snapshot.load)  # type: ignore[no-any-return]
    msg = f"mtotrust marker: snapshot= must be a path, 'sample', a Snapshot or a SnapshotBuilder, not {shown(value)}"
    raise TypeError(msg)


def _policy_of(config: pytest.Config, value: Any, base: Path) -> Policy:
    """Return the policy a marker or ini value names (a path relative to ``base``)."""
    if isinstance(value, Policy):
        return value
    if isinstance(value, dict):
        return Policy.from_data(value, source="mtotrust marker")
    if value in ("default", "classic"):
        return policy_named(value)
    if isinstance(value, (str, os.PathLike)):
        return _load_cached(config, base / Path(value), Policy.load)  # type: ignore[no-any-return]
    msg = f"mtotrust marker: policy= must be a path, 'default', 'classic', a Policy or a dict, not {shown(value)}"
    raise TypeError(msg)


@pytest.fixture(name="mto_snapshot")
def mto_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """Return the snapshot the ``mtotrust`` marker or ini option chooses; the bundled sample MTO otherwise."""
    chosen = _choose(request, "snapshot")
    return _snapshot_of(request.config, *(chosen if chosen is not None else ("sample", Path())))


@pytest.fixture(name="mto_policy")
def mto_policy(request: pytest.FixtureRequest) -> Policy:
    """Return the policy the ``mtotrust`` marker or ini option chooses; :meth:`Policy.default` otherwise."""
    chosen = _choose(request, "policy")
    return _policy_of(request.config, *(chosen if chosen is not None else ("default", Path())))


@pytest.fixture(name="trust_engine")
def trust_engine(mto_snapshot: Snapshot, mto_policy: Policy) -> TrustEngine:
    """Return a fresh :class:`~mtotrust.TrustEngine` over ``mto_snapshot`` and ``mto_policy`` (own cache, counters)."""
    return TrustEngine(mto_snapshot, mto_policy)


# -- invariants as test items ------------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class InvariantOutcome:
    """One invariant's verdict, the value of ``mto_invariant`` in an item the ``invariants=`` marker made.

    .. versionadded:: 0.2.0
    """

    name: str
    finding: Finding | None
    """The invariant's minimal counterexample, or ``None`` when it holds."""

    @property
    def holds(self) -> bool:
        """Whether the invariant holds."""
        return self.finding is None


@attrs.frozen(slots=True)
class _Plan:
    """What one set of invariant items verifies: the policy, the snapshot and every invariant (built-ins first)."""

    policy: Policy
    snapshot: Snapshot | None
    extra: tuple[UserInvariant | Invariant, ...]
    names: tuple[str, ...]

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two plans verify alike (the cache keeps the plan, so the ids stay its objects')."""
        snapshot = self.snapshot.id if self.snapshot is not None else None
        from mtotrust._verify.user import UserInvariant

        extra = tuple(repr(i.scope) if isinstance(i, UserInvariant) and i.function is None else id(i)
                      for i in self.extra)  # a policy file's rules by value: each load makes new objects
        return (self.policy.fingerprint, repr(self.policy.invariants), snapshot, extra)


def _sources(config: pytest.Config, value: Any, base: Path) -> Iterator[Any]:
    """Yield each source of ``invariants=``: a loaded :class:`Policy`, or user invariants (files loaded once)."""
    from mtotrust._verify.user import UserInvariant, load_module

    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, (UserInvariant, Policy)):
            yield item
        elif isinstance(item, (str, os.PathLike)):
            path = base / Path(item)
            if path.suffix == ".py":
                yield from _load_cached(config, path, load_module)
            else:
                yield _load_cached(config, path, Policy.load)
        else:
            msg = (f"mtotrust invariants=: each source is a policy file, a Python file of @invariant functions, a "
                   f"Policy or an @invariant, not {shown(item)}")
            raise TypeError(msg)


def _plan(sources: list[Any], policy: Policy | None, snapshot: Snapshot | None) -> _Plan:
    from mtotrust._verify import INVARIANTS
    from mtotrust._verify.user import declared

    files = [s for s in sources if isinstance(s, Policy)]
    chosen = policy if policy is not None else files[0] if files else Policy.default()
    # a policy file's [[invariants]] are checked against the chosen policy, whichever it is
    extra = tuple(i for s in sources for i in ((s,) if not isinstance(s, Policy) else
                                               declared(s) if s is not chosen else ()))
    names = tuple(i.name for i in (*INVARIANTS, *declared(chosen), *extra))
    return _Plan(chosen, snapshot, extra, names)


def _verdicts(config: pytest.Config, plan: _Plan) -> dict[str, Finding | None]:
    """Verify ``plan`` once per session: each invariant's finding, ``None`` for those that hold."""
    from mtotrust._verify import verify

    cache = config.stash.setdefault(_VERIFIED, {})
    if plan.key not in cache:
        report = verify(plan.policy, plan.snapshot, extra=plan.extra)
        found = {f.invariant: f for f in report.findings}
        cache[plan.key] = (plan, {name: found.get(name) for name in report.checked})
    return cache[plan.key][1]


def _fail(name: str, finding: Finding | None) -> None:
    if finding is not None:
        pytest.fail(f"invariant {name!r} is violated:\n{finding.format()}", pytrace=False)


def _marker_plan(metafunc: pytest.Metafunc, value: Any) -> _Plan:
    """Return the plan of a test's ``invariants=`` marker, with the policy and snapshot its other arguments choose."""
    base = Path(metafunc.definition.path).parent
    config = metafunc.config
    policy_choice = _closest(metafunc.definition, "policy") or _ini_value(config, "mtotrust_policy")
    snapshot_choice = _closest(metafunc.definition, "snapshot") or _ini_value(config, "mtotrust_snapshot")
    policy = _policy_of(config, *policy_choice) if policy_choice else None
    snapshot = _snapshot_of(config, *snapshot_choice) if snapshot_choice else None
    return _plan(list(_sources(config, value, base)), policy, snapshot)


def _closest(node: pytest.Item | pytest.Collector, name: str) -> tuple[Any, Path] | None:
    for marker in node.iter_markers(name="mtotrust"):
        if marker.kwargs.get(name) is not None:
            return marker.kwargs[name], Path(node.path).parent
    return None


@attrs.frozen(slots=True)
class _Param:
    """The parameter of one item the ``invariants=`` marker made: its plan and its invariant's name."""

    plan: _Plan
    name: str


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Make a test with ``@pytest.mark.mtotrust(invariants=...)`` one item per invariant (``mto_invariant``)."""
    own = [m.kwargs["invariants"] for m in metafunc.definition.own_markers
           if m.name == "mtotrust" and m.kwargs.get("invariants") is not None]
    if not own:
        return
    plan = _marker_plan(metafunc, own[0])
    if "mto_invariant" not in metafunc.fixturenames:
        metafunc.fixturenames.append("mto_invariant")
    metafunc.parametrize("mto_invariant", [_Param(plan, name) for name in plan.names], ids=list(plan.names),
                         indirect=True)


@pytest.fixture(name="mto_invariant")
def mto_invariant(request: pytest.FixtureRequest) -> InvariantOutcome:
    """Return the verdict of this item's invariant (tests made by the ``invariants=`` marker only)."""
    param = getattr(request, "param", None)
    if not isinstance(param, _Param):
        pytest.fail("mto_invariant: only a test with @pytest.mark.mtotrust(invariants=...) has an invariant",
                    pytrace=False)
    return InvariantOutcome(param.name, _verdicts(request.config, param.plan)[param.name])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Fail an item the ``invariants=`` marker made when its invariant is violated, before its body runs."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "mto_invariant" not in callspec.params:
        return
    param: _Param = callspec.params["mto_invariant"]
    _fail(param.name, _verdicts(item.config, param.plan)[param.name])


class InvariantItem(pytest.Item):
    """A test item of the ini option ``mtotrust_invariants``: one invariant, verified with the others once.

    .. versionadded:: 0.2.0
    """

    def __init__(self, *, plan: _Plan, invariant: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.invariant = invariant

    def runtest(self) -> None:
        """Fail with the invariant's minimal counterexample when it is violated."""
        _fail(self.invariant, _verdicts(self.config, self.plan)[self.invariant])

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Name the sources' first file and the invariant."""
        return self.path, None, f"mtotrust invariant: {self.invariant}"


class _InvariantSources(pytest.File):
    """The files of ``mtotrust_invariants``, the parent of their items (named after the first of them)."""

    def __init__(self, *, plan: _Plan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def collect(self) -> Iterator[InvariantItem]:
        for name in self.plan.names:
            yield InvariantItem.from_parent(self, name=name, plan=self.plan, invariant=name)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add an item per invariant of the ini option ``mtotrust_invariants`` (before ``-k``/``-m`` select)."""
    paths: list[Path] = config.getini("mtotrust_invariants")
    if not paths:
        return
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    try:
        policy_choice = _ini_value(config, "mtotrust_policy")
        snapshot_choice = _ini_value(config, "mtotrust_snapshot")
        policy = _policy_of(config, *policy_choice) if policy_choice else None
        snapshot = _snapshot_of(config, *snapshot_choice) if snapshot_choice else None
        plan = _plan(list(_sources(config, [str(p) for p in paths], base)), policy, snapshot)
    except (MtoTrustError, OSError) as exc:
        raise pytest.UsageError(f"mtotrust_invariants: {exc}") from None
    parent = _InvariantSources.from_parent(session, path=paths[0], plan=plan)
    items[:0] = list(parent.collect())
