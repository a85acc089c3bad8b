"""An SMTP sink on loopback (aiosmtpd) that keeps what it receives, and free ports for test servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Delivery", "Sink", "free_ports"]

SINK_HOSTNAME = "sink.mtotrust.test"  # not the MTA's own name: Postfix refuses a next hop that greets as itself


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 the OS reports free (all bound to port 0 at once, released)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]



@dataclass(frozen=True)
class Delivery:
    """One message the sink accepted: the envelope and the DATA exactly as received."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class _Collect:
    """aiosmtpd handler that keeps every message it is given and refuses the recipients in ``refuse``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.refuse: set[str] = set()
        self.data_answer = "250 OK"  # what DATA is answered (a 4xx or 5xx delivers nothing)
        self.delay = 0.0  # seconds to wait before answering DATA

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        if not self.data_answer.startswith("250"):
            return self.data_answer
        content = envelope.original_content
        assert isinstance(content, bytes) and envelope.mail_from is not None
        with self.lock:
            self.deliveries.append(Delivery(envelope.mail_from, tuple(envelope.rcpt_tos), content))
        return self.data_answer


class Sink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message (the next hop, or the final hop after Postfix).

    ``refuse`` holds recipients it answers 550.
    """

    def __init__(self, port: int) -> None:
        self._handler = _Collect()
        self.port = port
        self.refuse = self._handler.refuse
        self.handler = self._handler
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=port,
                                      server_hostname=SINK_HOSTNAME, decode_data=False, enable_SMTPUTF8=True)

    def __enter__(self) -> Sink:
        self._controller.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()

    def deliveries(self) -> list[Delivery]:
        """Return a copy of what the sink received so far, oldest first."""
        with self._handler.lock:
            return list(self._handler.deliveries)

    def clear(self) -> None:
        """Forget what the sink received (between tests sharing one sink)."""
        with self._handler.lock:
            self._handler.deliveries.clear()
