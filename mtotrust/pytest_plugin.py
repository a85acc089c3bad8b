"""pytest plugin for mtotrust: the fixtures ``mto_snapshot``, ``mto_policy`` and ``trust_engine``.

Loaded through the ``pytest11`` entry point for everyone who installs mtotrust, extras or not, so it imports
nothing optional (no hypothesis): only pytest and mtotrust's core, which ``import mtotrust`` loads anyway.

Selection, most specific first:

- the marker ``@pytest.mark.mtotrust(snapshot=..., policy=...)`` on the test, its class or module
  (``pytestmark``): a path (relative to the test file's folder), ``"sample"``, a ``Snapshot`` or
  ``SnapshotBuilder``; for the policy a path, ``"default"``, ``"classic"``, a ``Policy`` or a dict (any other
  argument, misspelt or positional, fails the test at setup);
- the ini options ``mtotrust_snapshot`` and ``mtotrust_policy`` (paths relative to the ini file's folder);
- the bundled sample MTO (``Snapshot.sample()``) and ``Policy.default()``.

See docs/testing.md.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import pytest

from mtotrust._builder import SnapshotBuilder
from mtotrust._engine import TrustEngine
from mtotrust._errors import shown
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot

__all__ = ["mto_policy", "mto_snapshot", "pytest_addoption", "pytest_configure", "pytest_runtest_setup",
           "trust_engine"]

_MARKER = ("mtotrust(snapshot=None, policy=None): select the snapshot (path, 'sample', Snapshot or "
           "SnapshotBuilder) and policy (path, 'default', 'classic', Policy or dict) the mtotrust fixtures use")
_ARGUMENTS = ("snapshot", "policy")
_CACHE = pytest.StashKey[dict[tuple[str, int], Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini options ``mtotrust_snapshot`` and ``mtotrust_policy``."""
    parser.addini("mtotrust_snapshot", "snapshot folder or .sqlite file for the mto_snapshot fixture "
                  "(default: the bundled sample MTO)", default="")
    parser.addini("mtotrust_policy", "policy file (TOML or JSON), 'default' or 'classic' for the mto_policy "
                  "fixture (default: Policy.default())", default="")


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
    """Fail a test at setup whose ``mtotrust`` marker (on it, its class or module) has an argument it ignores."""
    for marker in item.iter_markers(name="mtotrust"):
        problem = _marker_problem(marker)
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


@pytest.fixture(name="mto_snapshot")
def mto_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """Return the snapshot the ``mtotrust`` marker or ini option chooses; the bundled sample MTO otherwise."""
    chosen = _choose(request, "snapshot")
    value, base = chosen if chosen is not None else ("sample", Path())
    if isinstance(value, Snapshot):
        return value
    if isinstance(value, SnapshotBuilder):
        return value.build()
    if value == "sample":
        return _load_cached(request.config, Path("<sample>"), lambda _: Snapshot.sample())  # type: ignore[no-any-return]
    if isinstance(value, (str, os.PathLike)):
        return _load_cached(request.config, base / Path(value), Snapshot.load)  # type: ignore[no-any-return]
    msg = f"mtotrust marker: snapshot= must be a path, 'sample', a Snapshot or a SnapshotBuilder, not {shown(value)}"
    raise TypeError(msg)


@pytest.fixture(name="mto_policy")
def mto_policy(request: pytest.FixtureRequest) -> Policy:
    """Return the policy the ``mtotrust`` marker or ini option chooses; :meth:`Policy.default` otherwise."""
    chosen = _choose(request, "policy")
    value, base = chosen if chosen is not None else ("default", Path())
    if isinstance(value, Policy):
        return value
    if isinstance(value, dict):
        return Policy.from_data(value, source="mtotrust marker")
    if value == "default":
        return Policy.default()
    if value == "classic":
        return Policy.classic()
    if isinstance(value, (str, os.PathLike)):
        return _load_cached(request.config, base / Path(value), Policy.load)  # type: ignore[no-any-return]
    msg = f"mtotrust marker: policy= must be a path, 'default', 'classic', a Policy or a dict, not {shown(value)}"
    raise TypeError(msg)


@pytest.fixture(name="trust_engine")
def trust_engine(mto_snapshot: Snapshot, mto_policy: Policy) -> TrustEngine:
    """Return a fresh :class:`~mtotrust.TrustEngine` over ``mto_snapshot`` and ``mto_policy`` (own cache, counters)."""
    return TrustEngine(mto_snapshot, mto_policy)
