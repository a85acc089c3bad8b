"""The reference evaluator is independent of the engine: it never imports the resolver, apps, engine or snapshot."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mtotrust"
REFERENCE = "mtotrust._verify.reference"
SIBLINGS = "mtotrust._verify."
ALLOWED = frozenset({"mtotrust._model", "mtotrust._policy", "mtotrust._address", "mtotrust._errors"})
FORBIDDEN = ("mtotrust._resolve", "mtotrust._apps", "mtotrust._engine", "mtotrust._snapshot", "mtotrust._explain")

# ``mtotrust/__init__.py`` imports the engine for the public API, and ``mtotrust/_verify/__init__.py`` the
# verifier, so a plain import of any submodule loads them. The subprocess replaces both packages by empty ones
# with the real ``__path__``: then only what the imported module itself pulls in gets loaded.
_IMPORT_ALONE = """
import importlib, json, sys, types
for name, path in (("mtotrust", {package!r}), ("mtotrust._verify", {package!r} + "/_verify")):
    stub = types.ModuleType(name)
    stub.__path__ = [path]
    sys.modules[name] = stub
module = importlib.import_module({module!r})
if hasattr(module, "reference_trust"):
    from mtotrust._verify.space import Facts
    assert module.reference_trust(Facts("active")).value == "mto_member"
print(json.dumps(sorted(m for m in sys.modules if m == "mtotrust" or m.startswith("mtotrust."))))
"""


def _module_path(module: str) -> Path:
    return PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _mtotrust_imports(module: str) -> set[str]:
    """Return every module ``module``'s source imports from mtotrust, anywhere in the file, relative ones resolved."""
    tree = ast.parse(_module_path(module).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            # ``from package import name`` may import the submodule ``package.name``
            names = [base, *(f"{base}.{alias.name}" for alias in node.names
                             if _module_path(f"{base}.{alias.name}").is_file())]
        else:
            continue
        found.update(n for n in names if n == "mtotrust" or n.startswith("mtotrust."))
    return found


def _import_alone(module: str) -> list[str]:
    code = _IMPORT_ALONE.format(package=str(PACKAGE), module=module)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


class TestReferenceIndependence:
    """The reference evaluator imports only the model, the policy, addresses and errors (and siblings that do)."""

    def test_source_imports_only_the_allowed_modules(self) -> None:
        """Its source, and that of every ``mtotrust._verify`` sibling it imports, names no other mtotrust module."""
        seen: set[str] = set()
        todo = [REFERENCE]
        bad: dict[str, set[str]] = {}
        while todo:
            module = todo.pop()
            seen.add(module)
            imports = _mtotrust_imports(module)
            siblings = {m for m in imports if m.startswith(SIBLINGS) and _module_path(m).is_file()}
            todo += sorted(siblings - seen)
            if imports - siblings - ALLOWED:
                bad[module] = imports - siblings - ALLOWED
        assert bad == {}
        assert "mtotrust._verify.space" in seen

    def test_importing_it_loads_no_engine_module(self) -> None:
        """Imported alone in a fresh interpreter, it loads none of the resolver, apps, engine, snapshot, explain."""
        loaded = _import_alone(REFERENCE)
        assert REFERENCE in loaded
        assert [m for m in FORBIDDEN if m in loaded] == []

    @pytest.mark.parametrize("module", ["mtotrust._verify.verifier", "mtotrust._verify.enumeration"])
    def test_the_checks_see_a_dependent_module(self, module: str) -> None:
        """The same two checks do flag a verifier module that uses the engine or the snapshot."""
        outside = {m for m in _mtotrust_imports(module) if not m.startswith(SIBLINGS)}
        assert outside - ALLOWED
        assert [m for m in FORBIDDEN if m in _import_alone(module)] != []
