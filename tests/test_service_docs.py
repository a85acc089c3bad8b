"""docs/service.md's request examples, sent to a real service, get the answers the page prints.

Each example block is ``POST PATH``, the request JSON, a blank line, then ``STATUS`` and the answer as printed,
where ``…`` stands for what the page leaves out. Every complete ``"key": value`` the printed answer shows must be
in the real answer, and the decisions must come in the printed order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtotrust import Policy, Snapshot, TrustEngine
from mtotrust.service import Service

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "service.md"
_PAIR = re.compile(r'"(\w+)": (true|false|null|-?\d+(?:\.\d+)?|"[^"…]*")(?=[,}\]\s])')


def examples() -> list[tuple[str, Any, int, str]]:
    """(path, request body, printed status, printed answer) of every POST example of the page."""
    found = []
    for block in re.findall(r"```\n(POST .*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL):
        request, _, answer = block.partition("\n\n")
        first, _, body = request.partition("\n")
        status, _, printed = answer.strip().partition(" ")
        found.append((first.split()[1], json.loads(body), int(status), printed))
    return found


def pairs(value: object) -> Iterator[tuple[str, str]]:
    """Every ``(key, JSON scalar)`` of a JSON document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                yield from pairs(item)
            else:
                yield key, json.dumps(item)
    elif isinstance(value, list):
        for item in value:
            yield from pairs(item)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    service = Service(TrustEngine(Snapshot.sample(), Policy.load(ROOT / "examples" / "policy.toml")), port=0)
    service.start()
    try:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            yield http
    finally:
        service.stop()


def test_the_page_has_an_example_of_every_endpoint() -> None:
    """The page shows one evaluation per action family, a batch and /v1/check."""
    found = examples()
    actions = {body.get("action", {}).get("name", "").partition(".")[0] for _, body, _, _ in found}
    paths = {path for path, _, _, _ in found}
    assert {"mail", "dlp", "teams", "label"} <= actions
    assert {"/access/v1/evaluation", "/access/v1/evaluations", "/v1/check"} <= paths


@pytest.mark.parametrize(("path", "body", "status", "printed"), examples(),
                         ids=[f"{i}-{e[0]}" for i, e in enumerate(examples())])
def test_example_answer(client: httpx.Client, path: str, body: Any, status: int, printed: str) -> None:
    """The real answer has the printed status, every complete key and value printed, and the decisions in order."""
    response = client.post(path, json=body)
    assert status == response.status_code, response.text
    real = response.json()
    shown = [(key, json.dumps(json.loads(value))) for key, value in _PAIR.findall(printed)]
    assert shown, f"no complete value printed for {path}"
    missing = [pair for pair in shown if pair not in set(pairs(real))]
    assert not missing, f"docs/service.md prints {missing} for {json.dumps(body)}; the service answers {real}"
    decisions = [value for key, value in pairs(real) if key == "decision"]
    assert [value for key, value in shown if key == "decision"] == decisions
