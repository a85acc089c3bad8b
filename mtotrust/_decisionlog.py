"""Opt-in decision log: one JSON line per app decision, identities hashed unless asked otherwise.

A failure to write the log never breaks the decision: it is counted and reported once through the
``mtotrust`` logger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import IO, Any

from mtotrust._model import AppDecision, DlpDecision, LabelDecision, MailDecision, Resolution

__all__ = ["DecisionLog", "outcome"]

_log = logging.getLogger("mtotrust")


def outcome(decision: AppDecision) -> tuple[str, str]:
    """Return ``(app, outcome)`` words for a decision, as the log and ``engine.stats()`` count them."""
    if isinstance(decision, MailDecision):
        return "mail", "tagged" if decision.tag_external else "untagged"
    if isinstance(decision, DlpDecision):
        return "dlp", decision.access_scope
    if isinstance(decision, LabelDecision):
        return "labels", "granted" if decision.rights else "no_rights"
    return "teams", "allowed" if decision.allowed else "denied"


def _resolutions(decision: AppDecision) -> tuple[Resolution, ...]:
    return decision.recipients if isinstance(decision, DlpDecision) else (decision.resolution,)


class DecisionLog:
    """Write one JSON line per decision to a file (appended) or an open text stream.

    Args:
        target: a path (opened for appending, line-buffered) or a writable text stream.
        salt: the per-deployment secret identities are hashed with (HMAC-SHA-256). Without one, a random salt
            is drawn per process, so hashes are comparable only within one run.
        hash_identities: ``False`` writes addresses in plain text; only do this where the log is protected.

    .. versionadded:: 0.1.0
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str], *, salt: bytes | str | None = None,
                 hash_identities: bool = True) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._stream: IO[str] = Path(target).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._owned = True
        else:
            self._stream, self._owned = target, False
        raw_salt = salt.encode() if isinstance(salt, str) else salt
        self._salt = raw_salt if raw_salt is not None else os.urandom(16)
        self._hash = hash_identities
        self._lock = threading.Lock()
        self.errors = 0
        """Number of records that could not be written."""

    def identity(self, text: str) -> str:
        """Return how an identity appears in the log: an HMAC of it, or itself when hashing is off."""
        if not self._hash:
            return text
        return "hmac:" + hmac.new(self._salt, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    def record(self, decision: AppDecision) -> None:
        """Append one line for ``decision``. Never raises."""
        try:
            app, word = outcome(decision)
            line: dict[str, Any] = {
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "decision_id": uuid.uuid4().hex,
                "app": app,
                "trust": decision.trust.value,
                "outcome": word,
                "reasons": list(decision.reasons),
                "snapshot_id": decision.snapshot_id,
                "policy_fingerprint": decision.policy_fingerprint,
                "identities": [self.identity(r.address or r.identity) for r in _resolutions(decision)],
            }
            text = json.dumps(line, ensure_ascii=True) + "\n"
            with self._lock:
                self._stream.write(text)
        except Exception as exc:  # noqa: BLE001 - a log failure must never break a decision
            self.errors += 1
            if self.errors == 1:
                _log.warning("mtotrust decision log: cannot write (%s); decisions go on unlogged",
                             type(exc).__name__)

    def close(self) -> None:
        """Close the file this log opened (a stream passed in is left open)."""
        if self._owned:
            self._stream.close()
