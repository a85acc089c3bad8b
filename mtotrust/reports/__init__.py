"""Admin reports over a snapshot, as JSON-ready dicts, terminal text and HTML.

``audit`` reports the directory's MTO health, ``inventory`` every account synced from another tenant and ``diff``
how two policies' decisions differ. Each report is a plain dict with its keys in the documented order and its lists
sorted, carrying the snapshot's ``snapshot_id`` and the policy fingerprint(s): the same snapshot and policies give
the same report, byte for byte once dumped. ``text`` renders one for a terminal, ``html`` as a self-contained page
and ``csv_rows`` an inventory's rows as CSV. The package imports only the standard library and the mtotrust core.
"""

from __future__ import annotations

from mtotrust.reports._audit import FINDINGS, MTO_LIMIT, SEVERITIES, audit
from mtotrust.reports._diff import APPS, diff
from mtotrust.reports._html import html
from mtotrust.reports._inventory import ROW_KEYS, csv_rows, inventory
from mtotrust.reports._text import text

__all__ = ["APPS", "FINDINGS", "MTO_LIMIT", "ROW_KEYS", "SEVERITIES", "audit", "csv_rows", "diff", "html",
           "inventory", "text"]
