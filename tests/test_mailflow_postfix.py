"""The mail-flow filter behind a real Postfix, as its after-queue content filter (Postfix FILTER_README).

Mail goes client -> Postfix smtpd -> queue -> :class:`mtotrust.mailflow.MailFilter` -> Postfix's reinjection smtpd
-> queue -> an aiosmtpd sink, all on 127.0.0.1 and under a private Postfix instance (``tests/postfix.py``). Each test
checks what the sink received. The test plays the boundary MTA: the filter trusts ``Authentication-Results``
from ``mx.contoso.com`` only, and a test that wants an authenticated sender adds that header itself.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from postfix import PACKAGE, Postfix, postfix_command
from smtpsink import Delivery, Sink, free_ports

if postfix_command() is None:
    if os.environ.get("CI"):  # .ci/run installs it: in CI a missing Postfix is a failure, never a skip
        raise RuntimeError(f"Postfix is not installed: .ci/run must install the Debian package {PACKAGE!r}")
    pytest.skip(f"Postfix is not installed: install the Debian package {PACKAGE!r} (.ci/run does)",
                allow_module_level=True)

from mtotrust import MailDecision, Policy, Snapshot, Trust, TrustEngine
from mtotrust.mailflow import MailFilter

pytestmark = pytest.mark.postfix

SENDER = "cameron@fabrikam.com"  # an active MTO member of the bundled sample (mtotrust/sample/README.md)
BOUNDARY = "mx.contoso.com"
TAG = "[External]"
POLICY = Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY], "subject_tag": TAG}})


@dataclass
class Chain:
    """The running pieces: Postfix, the filter Postfix hands mail to, and the sink behind Postfix."""

    postfix: Postfix
    filter: MailFilter
    sink: Sink
    engine: TrustEngine

    def delivered(self, token: str) -> list[Delivery]:
        """Return the sink's deliveries of the message whose Message-ID carries ``token``."""
        return [d for d in self.sink.deliveries() if f"<{token}@".encode() in _field(d.content, b"message-id")]

    def queued(self, token: str) -> list[dict[str, Any]]:
        """Return Postfix's queue entries for the message sent to ``token``'s recipient."""
        return [entry for entry in self.postfix.queue()
                if any(r["address"] == _recipient(token) for r in entry["recipients"])]

    def deliver(self, token: str) -> Delivery:
        """Wait until the sink has the message and Postfix's queue no longer holds it; return the one delivery."""
        self.postfix.wait(lambda: bool(self.delivered(token)) and not self.queued(token),
                          f"the message {token} at the sink and out of Postfix's queue")
        found = self.delivered(token)
        assert len(found) == 1, f"the sink received {token} {len(found)} times"
        return found[0]


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    """Start the sink, a private Postfix and the filter on free loopback ports; stop all three afterwards."""
    # Postfix's unprivileged daemons must traverse the folder: pytest's tmp_path lives under a 0700 directory.
    root = Path(tempfile.mkdtemp(prefix="mtotrust-postfix-"))
    root.chmod(0o755)
    smtpd_port, filter_port, reinject_port, sink_port = free_ports(4)
    engine = TrustEngine(Snapshot.sample(), POLICY)
    mail_filter = MailFilter(engine, next_hop=("127.0.0.1", reinject_port))
    try:
        with Sink(sink_port) as sink, Postfix(root, smtpd_port=smtpd_port, filter_port=filter_port,
                                              reinject_port=reinject_port, sink_port=sink_port) as mta:
            mail_filter.start("127.0.0.1", filter_port)
            try:
                yield Chain(mta, mail_filter, sink, engine)
            finally:
                mail_filter.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _recipient(token: str) -> str:
    return f"megan+{token}@contoso.com"


def _message(token: str, *, top: bytes = b"",
             body: bytes = b"See the attached figures.\r\n") -> bytes:
    """Return a message from SENDER with a Message-ID carrying ``token``; ``top`` goes first in the header."""
    return (top + b"From: Cameron <" + SENDER.encode() + b">\r\n"
            b"To: Megan <" + _recipient(token).encode() + b">\r\n"
            b"Subject: Quarterly numbers\r\n"
            b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + token.encode() + b"@fabrikam.com>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n" + body)


def _send(chain: Chain, message: bytes, token: str) -> None:
    chain.postfix.send(message, SENDER, [_recipient(token)])


def _split(content: bytes) -> tuple[list[bytes], bytes]:
    """Return the header fields (each with its folded lines and CRLF) and the body of a CRLF message."""
    head, _, body = content.partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in (head + b"\r\n").splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, body


def _field(content: bytes, name: bytes) -> bytes:
    """Return the first header field called ``name`` (any case) of ``content``, or b""."""
    return next((f for f in _split(content)[0] if f.split(b":", 1)[0].strip().lower() == name), b"")


def _marking(delivery: Delivery) -> dict[str, str]:
    """Return the parameters of the one X-MTOTrust field, checking it is the first field the filter's output has.

    Above it may stand only the ``Received`` field Postfix's reinjection smtpd prepends.
    """
    fields, _ = _split(delivery.content)
    names = [f.split(b":", 1)[0].lower() for f in fields]
    assert names.count(b"x-mtotrust") == 1, delivery.content
    above = names[:names.index(b"x-mtotrust")]
    assert set(above) <= {b"received"}, delivery.content
    value = fields[names.index(b"x-mtotrust")].split(b":", 1)[1].decode("ascii").replace("\r\n", "")
    return dict(part.strip().partition("=")[::2] for part in value.split(";"))


def _expected(decision: MailDecision, tag: str) -> dict[str, str]:
    return {"trust": decision.trust.value, "tag": tag, "reasons": ",".join(decision.reasons),
            "snapshot": decision.snapshot_id, "policy": decision.policy_fingerprint}


def _subject(delivery: Delivery) -> str:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(delivery.content)
    assert len(message.get_all("Subject") or []) == 1, delivery.content
    return str(message["Subject"])


def test_unauthenticated_mto_sender_is_tagged(chain: Chain) -> None:
    """An MTO member's mail without a trusted Authentication-Results arrives tagged, Subject prefixed, same envelope."""
    token = uuid.uuid4().hex
    sent = _message(token)
    _send(chain, sent, token)
    delivery = chain.deliver(token)
    decision = chain.engine.mail_message(sent)
    assert chain.engine.resolve(SENDER).trust is Trust.MTO_MEMBER  # tagged for want of authentication only
    assert decision.tag_external
    assert _marking(delivery) == _expected(decision, "yes")
    assert _subject(delivery) == f"{TAG} Quarterly numbers"
    assert (delivery.mail_from, delivery.rcpt_tos) == (SENDER, (_recipient(token),))


def test_authenticated_mto_sender_is_not_tagged(chain: Chain) -> None:
    """With the boundary's dmarc=pass for the From domain, the MTO member's mail arrives untagged, Subject as sent."""
    token = uuid.uuid4().hex
    sent = _message(token, top=b"Authentication-Results: " + BOUNDARY.encode()
                    + b"; dmarc=pass header.from=fabrikam.com\r\n")
    _send(chain, sent, token)
    delivery = chain.deliver(token)
    decision = chain.engine.mail_message(sent)
    assert not decision.tag_external
    assert _marking(delivery) == _expected(decision, "no")
    assert _subject(delivery) == "Quarterly numbers"
    assert _field(delivery.content, b"subject") == b"Subject: Quarterly numbers\r\n"


def test_header_and_body_arrive_byte_for_byte(chain: Chain) -> None:
    """An 8-bit body with lines of 998 octets (SMTP's limit), and every header field sent, arrive unchanged."""
    token = uuid.uuid4().hex
    long_line = ("Grüße aus Köln, " * 70).encode()[:996]
    body = (b"Caf\xc3\xa9 \xe2\x82\xac 100\r\n" + long_line + b"\xc3\xa9\r\n"
            b".a line that starts with a dot\r\n..two dots\r\n"
            b"trailing blanks  \t\r\n\r\n\r\nraw 8-bit, not UTF-8: \xe9\xff\xfe\r\n" + long_line[:990] + b"\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) == 998
    sent = _message(token, body=body)
    _send(chain, sent, token)
    delivery = chain.deliver(token)
    fields, received_body = _split(delivery.content)
    assert received_body == body
    sent_fields = [f for f in _split(sent)[0] if not f.lower().startswith(b"subject:")]
    assert [f for f in fields if f in sent_fields] == sent_fields


def test_filter_down_postfix_defers_then_delivers_once(chain: Chain) -> None:
    """With the filter stopped, Postfix defers the message; once it is back and the queue flushed, one delivery."""
    token = uuid.uuid4().hex
    port = chain.postfix.filter_port
    chain.filter.stop()
    try:
        _send(chain, _message(token), token)
        chain.postfix.wait(lambda: any(e["queue_name"] == "deferred" for e in chain.queued(token)),
                           f"the message {token} in Postfix's deferred queue")
        [entry] = chain.queued(token)
        assert f"127.0.0.1[127.0.0.1]:{port}" in str(entry["recipients"])  # deferred because the filter is down
        assert chain.delivered(token) == []
    finally:
        chain.filter.start("127.0.0.1", port)
    chain.postfix.flush()
    delivery = chain.deliver(token)
    assert _marking(delivery)["tag"] == "yes"  # it went through the filter, not around it
