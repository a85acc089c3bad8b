"""The README is a contract with a new user: its example runs and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


class TestReadme:
    def test_python_example_runs(self) -> None:
        """The README's Python example runs as written, and its assertions hold."""
        block = re.search(r"```python\n(.*?)```", README, re.DOTALL)
        assert block is not None
        exec(compile(block.group(1), "README.md", "exec"), {})

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run installs and tests exactly as the README tells a developer to."""
        commands = re.findall(r"```sh\n(.*?)\n```", README, re.DOTALL)
        assert commands[0].endswith("pip install . && mtotrust demo")
        test_command = commands[1].split("&& ", 2)[2]
        assert test_command == "pip install -e '.[dev]' && python -m pytest"
        assert test_command.replace("pip install", "pip install --quiet") in (ROOT / ".ci" / "run").read_text()
