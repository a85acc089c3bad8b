"""The Arrow schemas of message-trace replay: the normalised trace rows it reads and the decided rows it writes.

``TRACE_SCHEMA``, one row per message and recipient (what the readers produce and
:func:`~mtotrust.replay.evaluate_batch` reads):

- ``message_id`` (string, not null): the message's Internet ``Message-ID`` as the trace gives it.
- ``received`` (timestamp, microseconds, UTC, not null): when the service received the message; it picks the
  snapshot in force (:class:`~mtotrust.replay.SnapshotHistory`).
- ``sender`` (string): the sender address; a null is decided as the empty (invalid) address and fails closed.
- ``recipient`` (string): the recipient address; a null is decided as the empty (invalid) address.
- ``direction`` (string, nullable): the trace's own direction word (``directionality`` of the extended trace),
  passed through; null when the trace has none.
- ``authentication_results`` (list of string, nullable): raw ``Authentication-Results`` values, topmost first;
  null when the trace carries none (message traces never do).
- ``dmarc`` (string, nullable): the tenant's own DMARC verdict for the message (``custom_data`` ``S:DMARC=...``
  of the extended trace); null when absent.

``OUTPUT_SCHEMA`` is every ``TRACE_SCHEMA`` column, passed through, then:

- ``sender_trust`` (string, not null): the mail decision's trust word (``engine.mail(sender, auth).trust``).
- ``tag_external`` (bool, not null): whether the mail decision tags the message ``[External]``.
- ``authenticated`` (bool, not null): whether the mail decision counted the sender as authenticated. Without
  authentication (``auth_source`` ``"absent"``), a policy that requires it tags every message it would
  otherwise trust: that is the trace lacking the results, not the senders failing them.
- ``recipient_trust`` (string, not null): ``engine.resolve(recipient).trust``.
- ``recipient_inside`` (bool, not null): ``engine.dlp(recipient).inside_organization``.
- ``reasons`` (list of string, not null): the mail decision's reasons.
- ``auth_source`` (string, not null): where the authentication the mail decision used came from:
  ``"authentication_results"`` (the row's ``authentication_results``), ``"trace_dmarc"`` (the row's ``dmarc``,
  as ``MailAuth(dmarc=..., header_from=<sender's domain>)``) or ``"absent"`` (neither: decided with no
  authentication).
- ``before_first_snapshot`` (bool, not null): the row was received before every snapshot of a
  :class:`~mtotrust.replay.SnapshotHistory` and was decided against the oldest one.
- ``snapshot_id`` (string, not null): the ``Snapshot.id`` the row was decided from.
- ``policy_fingerprint`` (string, not null): the fingerprint of the policy it was decided with.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["AUTH_SOURCES", "OUTPUT_SCHEMA", "TRACE_SCHEMA"]

AUTH_SOURCES = ("authentication_results", "trace_dmarc", "absent")
"""The words of the ``auth_source`` column."""

TRACE_SCHEMA = pa.schema([
    pa.field("message_id", pa.string(), nullable=False),
    pa.field("received", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("sender", pa.string()),
    pa.field("recipient", pa.string()),
    pa.field("direction", pa.string()),
    pa.field("authentication_results", pa.list_(pa.string())),
    pa.field("dmarc", pa.string()),
])
"""The normalised message-trace rows (see the module docstring for each column)."""

OUTPUT_SCHEMA = pa.schema([
    *TRACE_SCHEMA,
    pa.field("sender_trust", pa.string(), nullable=False),
    pa.field("tag_external", pa.bool_(), nullable=False),
    pa.field("authenticated", pa.bool_(), nullable=False),
    pa.field("recipient_trust", pa.string(), nullable=False),
    pa.field("recipient_inside", pa.bool_(), nullable=False),
    pa.field("reasons", pa.list_(pa.string()), nullable=False),
    pa.field("auth_source", pa.string(), nullable=False),
    pa.field("before_first_snapshot", pa.bool_(), nullable=False),
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("policy_fingerprint", pa.string(), nullable=False),
])
"""The decided rows: the trace columns, then the decision columns (see the module docstring)."""
