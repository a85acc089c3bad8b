"""The import rules of the layout, checked on the source (AST), lazy imports inside functions included.

Data flows one way: a module imports only modules upstream of it (``LAYERS`` below, first to last); the core
imports no wing; a wing imports the core and its own extra only; only the CLI imports wings; ``import mtotrust``
loads none of the wings' dependencies.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mtotrust"

# Upstream first. A module may import only modules of earlier layers (or of its own package, for a package).
LAYERS = [
    "mtotrust._version", "mtotrust._errors", "mtotrust._files", "mtotrust._model", "mtotrust._confusables",
    "mtotrust._address", "mtotrust._graph", "mtotrust._overlay", "mtotrust._directory", "mtotrust._ingest",
    "mtotrust._store",
    "mtotrust._snapshot", "mtotrust._policy", "mtotrust._explain", "mtotrust._resolve", "mtotrust._fromaddr",
    "mtotrust.mailauth",
    "mtotrust._apps", "mtotrust._decisionlog", "mtotrust._engine", "mtotrust._watch", "mtotrust._builder",
    "mtotrust._verify",
    "mtotrust", "mtotrust.testing", "mtotrust.pytest_plugin", "mtotrust.cli", "mtotrust.__main__",
]
WINGS = {"mtotrust.sync": "sync", "mtotrust.mailflow": "mailflow", "mtotrust.service": "serve",
         "mtotrust.reports": None, "mtotrust.replay": "replay"}
CORE_DEPENDENCIES = {"pydantic", "pydantic_core", "attrs", "cachetools", "idna", "typing_extensions"}
TESTING_DEPENDENCIES = {"hypothesis", "pytest"}
WING_DEPENDENCIES = {"httpx", "azure", "aiosmtpd", "uvicorn", "httptools", "uvloop", "pyarrow", "pyspark", "hypothesis"}
STDLIB = set(sys.stdlib_module_names)


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer a module belongs to: the longest entry of LAYERS or WINGS it is, or lies in."""
    names = [*LAYERS, *WINGS]
    found = max((n for n in names if module == n or module.startswith(n + ".")), key=len, default=None)
    if found is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layering.py")
    return found


def imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line, wherever the import statement is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            if base == "__future__":
                continue
            for alias in node.names:  # "from mtotrust import _graph" imports the submodule mtotrust._graph
                sub = root / f"{base}.{alias.name}".replace(".", "/")
                found.append((node.lineno, f"{base}.{alias.name}" if sub.with_suffix(".py").exists()
                              or sub.is_dir() else base))
    return found


def violations(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Return every broken import rule of one source file, naming the file, the line and the import."""
    me = unit(module_name(path, root))
    order = {name: i for i, name in enumerate(LAYERS)}
    allowed = CORE_DEPENDENCIES | (TESTING_DEPENDENCIES if me in ("mtotrust.testing", "mtotrust.pytest_plugin")
                                   else set())
    found = []
    for line, target in imports(path, root):
        where = f"{path.name}:{line}: {me} imports {target}"
        top = target.partition(".")[0]
        if top != "mtotrust":
            if top not in STDLIB and me not in WINGS and top not in allowed:
                found.append(f"{where}, which the core does not depend on")
            continue
        other = unit(target)
        if other == me:
            continue
        if me in WINGS:
            if other in WINGS:
                found.append(f"{where}: a wing imports only the core")
        elif other in WINGS:
            if me != "mtotrust.cli":
                found.append(f"{where}: only mtotrust.cli imports wings")
        elif order[other] > order[me]:
            found.append(f"{where}, which lies downstream of it")
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


class TestLayers:
    """Each module imports only what lies upstream of it."""

    @pytest.mark.parametrize("path", SOURCES, ids=module_name)
    def test_imports_follow_the_rules(self, path):
        """A module imports only earlier layers (or its own package), no wing unless it is the CLI, and only the
        third-party packages its layer depends on."""
        assert [] == violations(path)


class TestChecker:
    """The checker itself finds each kind of broken rule (so the test above can fail)."""

    @pytest.mark.parametrize(("module", "source", "expected"), [
        ("_model.py", "def f():\n    from mtotrust._engine import TrustEngine\n", "lies downstream"),
        ("_engine.py", "import httpx\n", "does not depend on"),
        ("_engine.py", "from mtotrust.sync import pull\n", "only mtotrust.cli imports wings"),
        ("sync/__init__.py", "from mtotrust.replay import x\n", "a wing imports only the core"),
        ("_policy.py", "from mtotrust import _snapshot\n", ""),
    ])
    def test_each_rule(self, tmp_path, module, source, expected):
        """An upward import (lazy ones too), a stray dependency, a wing import outside the CLI, a wing importing
        a wing: each is reported; an upstream import is not."""
        root = tmp_path / "mtotrust"
        for sub in ("sync", "replay"):
            (root / sub).mkdir(parents=True)
            (root / sub / "__init__.py").write_text("")
        for name in ("_engine.py", "_snapshot.py"):
            (root / name).write_text("")
        path = root / module
        path.write_text(source)
        found = violations(path, tmp_path)
        assert (expected in found[0]) if expected else ([] == found), found


class TestImportCost:
    """``import mtotrust`` stays cheap for every app that embeds it."""

    def test_import_loads_no_wing_dependency(self):
        """A fresh interpreter that imports mtotrust has loaded none of the wings' or the testing kit's packages."""
        code = ("import sys, mtotrust; print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))")
        loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.split())
        assert set() == loaded & WING_DEPENDENCIES
        assert "mtotrust" in loaded

    def test_dependency_names_are_real(self):
        """The core dependency names are importable top-level packages (a typo would hide a rule)."""
        import importlib.util

        assert [] == [name for name in CORE_DEPENDENCIES if importlib.util.find_spec(name) is None]
