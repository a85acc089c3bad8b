"""docs/sync.md's FakeGraph example runs and passes as the page says a user's own test would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "sync.md"


def test_fakegraph_example_passes(tmp_path: Path) -> None:
    """The page's pytest example, run as it is printed, syncs twice and its assertions hold."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
              if "FakeGraph" in b and "def test_" in b]
    assert len(blocks) == 1, "docs/sync.md lost its FakeGraph example"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    tests[0](tmp_path)
