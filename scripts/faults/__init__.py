"""Fault-injection scenarios of ``scripts/reliability.py``: one module per class of fault.

Each module offers ``run(quick: bool) -> list[Row]``; a row is one printed line of the reliability run and says
whether the scenario held.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Row"]


@dataclass(frozen=True)
class Row:
    """One scenario's figure: what was measured, the value as printed, and whether the rule held."""

    scenario: str
    value: str
    ok: bool
