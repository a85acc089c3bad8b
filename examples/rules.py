"""Contoso's rules that the [[invariants]] words cannot say: `mtotrust lint policy.toml --invariants rules.py`."""

from __future__ import annotations

from mtotrust import MailDecision
from mtotrust.testing import Point, invariant


@invariant(app="mail", partner="false")
def partner_false_mail_is_tagged(_point: Point, decision: MailDecision) -> bool:
    """Mail from a tenant whose partner policy says it left the MTO is tagged, however it is authenticated."""
    return decision.tag_external
