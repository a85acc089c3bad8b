"""The SMTP content filter: an MTA hands it every message, it decides, marks the message and relays it on.

The after-queue pattern of Postfix's ``content_filter`` (as amavis works): the MTA connects, the filter opens its
own connection to the next hop (the MTA's reinjection port, or Exchange Online through a connector) and passes
each command on as it comes. ``MAIL`` and every ``RCPT`` get the next hop's own answer; at the end of ``DATA``
the message is decided with ``engine.mail_message``, rewritten (:mod:`mtotrust.mailflow._message`) and sent to
the next hop, and the client gets the next hop's answer to it. So the client hears ``250`` only once the next hop
has the message, and a ``4xx`` when the next hop is down or drops the connection: the sending MTA keeps the
message and retries, and nothing is lost or accepted twice.

A pilot (``[mailflow]`` in the policy) gives the policy's decision to some recipients and the classic one to the
others. One transaction carries one decision: a ``RCPT`` of the other group than the transaction's first one is
answered ``452 4.5.3`` (RFC 5321 section 4.5.3.1.10), which makes the sending MTA send those recipients in a
transaction of their own.

The decision itself never raises (``mail_message`` fails closed); anything else that fails while marking a
message delivers it tagged with ``reasons=internal_error`` and is logged (without any address).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from mtotrust import IdentityError, Policy, PolicyError, Snapshot, TrustEngine, parse_identity
from mtotrust.mailflow._message import header_field, header_section, rewrite

__all__ = ["DEFAULT_MAX_SIZE", "MailFilter", "classic_policy", "pilot_recipients"]

DEFAULT_MAX_SIZE = 50 << 20
"""The default ``--max-size`` (50 MiB), advertised in EHLO's ``SIZE``."""

log = logging.getLogger("mtotrust.mailflow")
_T = TypeVar("_T")
_NEXT_HOP_DOWN = "451 4.4.1 The next hop cannot be reached; try again later"
_NEXT_HOP_LOST = "451 4.4.2 The connection to the next hop was lost; try again later"
_OTHER_GROUP = "452 4.5.3 This recipient is decided by another pilot group; send it in a new transaction"
_TOO_MANY = b"421 4.7.0 Too many connections; try again later\r\n"
_CONNECT_TIMEOUT = 30.0  # seconds to connect to the next hop (then each read or write waits up to --timeout)
_DATA_TIMEOUT = 600.0  # more seconds the client waits for the answer to its message (RFC 5321 4.5.3.2.6: 10 min)


def classic_policy(policy: Policy) -> Policy:
    """Return the classic counterpart of ``policy`` for mail: the same, with ``mail.untagged_at = "internal"``.

    Its authentication settings and subject tag stay the policy's own, so internal mail is decided as before and
    only MTO members lose what the MTO-aware policy grants them.
    """
    data = policy.model_dump(mode="json", exclude={"invariants", "mailflow"})
    data["mail"]["untagged_at"] = "internal"
    return Policy.from_data(data)


def pilot_recipients(policy: Policy, base: Path | None = None) -> frozenset[str] | None:
    """Return the normalised pilot recipients of ``policy``'s ``[mailflow]`` table, or ``None`` for no pilot.

    ``pilot_file`` is read now (a relative path from ``base``, the policy file's folder): one address per line,
    ``#`` starting a comment.

    Raises:
        PolicyError: the file cannot be read, or a line is not an address (naming the file and line).
    """
    section = policy.mailflow
    if section.pilot_recipients is None and section.pilot_file is None:
        return None
    found = set(section.pilot_recipients or ())
    if section.pilot_file is not None:
        path = Path(section.pilot_file)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read the pilot file {str(path)!r} ({exc}); fix the path (relative paths are "
                              "read from the policy file's folder)", key="mailflow.pilot_file",
                              value=section.pilot_file) from exc
        for number, line in enumerate(lines, 1):
            text = line.partition("#")[0].strip()
            if text:
                try:
                    found.add(parse_identity(text).address)
                except IdentityError as exc:
                    raise PolicyError(f"{path}:{number}: {exc}; write one address per line",
                                      key="mailflow.pilot_file", value=text) from None
    return frozenset(found)


@attrs.frozen(slots=True)
class _Deciders:
    """What decides, swapped whole on reload: the engine, the classic one and the pilot (``None``: everyone)."""

    engine: TrustEngine
    classic: TrustEngine | None
    pilot: frozenset[str] | None

    def for_recipient(self, address: str) -> bool:
        """Return whether ``address`` gets the policy's decision (else the classic one)."""
        if self.pilot is None:
            return True
        try:
            return parse_identity(address).address in self.pilot
        except IdentityError:
            return False


class _Hop:
    """The filter's connection to the next hop for one client connection (blocking smtplib, run on threads).

    Every use of the connection holds its lock, so a close (the client went away) never interleaves its QUIT with
    a message being sent. ``open`` says a transaction was started there (MAIL accepted) and not yet ended, and
    ``group`` is the pilot group of the transaction's recipients.
    """

    def __init__(self, host: str, port: int, timeout: float, local_hostname: str) -> None:
        self.lock = threading.Lock()
        self.open = False
        self.group: bool | None = None
        self.smtp = smtplib.SMTP(timeout=_CONNECT_TIMEOUT, local_hostname=local_hostname)
        try:
            self.smtp.connect(host, port)
            self.smtp.sock.settimeout(timeout)  # type: ignore[union-attr]
            code, message = self.smtp.ehlo()
        except BaseException:
            self.smtp.close()
            raise
        if code != 250:
            self.smtp.close()
            raise smtplib.SMTPHeloError(code, message)

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one smtplib call under the connection's lock."""
        with self.lock:
            return fn(*args)

    def send(self, message: bytes) -> tuple[int, bytes]:
        """Send the message (DATA) and return the next hop's answer to it, waiting up to ten minutes for it."""
        with self.lock:
            sock = self.smtp.sock
            before = sock.gettimeout() if sock is not None else None
            if sock is not None:
                sock.settimeout(max(before or 0.0, _DATA_TIMEOUT))
            try:
                return self.smtp.data(message)
            finally:
                if sock is not None and self.smtp.sock is sock:
                    sock.settimeout(before)

    def reset(self) -> None:
        """End an open transaction (RSET) so the next MAIL starts a new one."""
        with self.lock:
            if self.open:
                self.smtp.rset()
            self.open, self.group = False, None

    def close(self) -> None:
        """QUIT and close (after any call under way)."""
        with self.lock:
            with contextlib.suppress(Exception):
                self.smtp.quit()
            with contextlib.suppress(Exception):
                self.smtp.close()


def _answer(code: int, message: bytes | str) -> str:
    """Return an SMTP reply of ``code`` and ``message`` (several lines as a multi-line reply)."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    lines = text.splitlines() or [""]
    return "\r\n".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines))


class _Handler:
    """The aiosmtpd handler: every command passed on to the next hop, the message marked at DATA.

    aiosmtpd ends its own transaction on its own in places (a 552 or a 500 to DATA, EHLO, HELO): whatever the
    client does next, a transaction still open at the next hop is reset first.
    """

    def __init__(self, owner: MailFilter) -> None:
        self.owner = owner

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.owner._pool, functools.partial(fn, *args))

    async def _reset(self, session: Session) -> None:
        hop: _Hop | None = getattr(session, "mtotrust_hop", None)
        if hop is not None and hop.open:
            try:
                await self._run(hop.reset)
            except (OSError, smtplib.SMTPException):
                self._drop(session)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """Answer EHLO as aiosmtpd does, with PIPELINING too (it reads pipelined commands in order)."""
        await self._reset(session)
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        """Answer HELO as aiosmtpd does, ending a transaction still open at the next hop."""
        await self._reset(session)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        """Open the next hop's connection if needed and pass MAIL on; answer with its reply."""
        await self._reset(session)
        hop: _Hop | None = getattr(session, "mtotrust_hop", None)
        if hop is None:
            host, port = self.owner.next_hop
            try:
                hop = await self._run(_Hop, host, port, self.owner.timeout, self.owner.hostname)
            except (OSError, smtplib.SMTPException):
                return _NEXT_HOP_DOWN
            session.mtotrust_hop = hop  # type: ignore[attr-defined]
        try:
            code, message = await self._run(hop.call, hop.smtp.mail, address, options)
        except smtplib.SMTPNotSupportedError:
            return "555 5.5.4 The next hop does not support SMTPUTF8"
        except (OSError, smtplib.SMTPException):
            self._drop(session)
            return _NEXT_HOP_LOST
        if code == 250:
            hop.open = True
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return _answer(code, message)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        """Pass RCPT on (one pilot group per transaction); answer with the next hop's reply."""
        hop: _Hop | None = getattr(session, "mtotrust_hop", None)
        if hop is None or not hop.open:
            return _NEXT_HOP_LOST
        group = self.owner._deciders.for_recipient(address)
        if hop.group is not None and group != hop.group:
            return _OTHER_GROUP
        try:
            code, message = await self._run(hop.call, hop.smtp.rcpt, address, options)
        except (OSError, smtplib.SMTPException):
            self._drop(session)
            return _NEXT_HOP_LOST
        if code in (250, 251):
            hop.group = group  # the transaction's decision group, fixed by its first accepted recipient
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return _answer(code, message)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Decide, mark and send the message to the next hop; answer with its reply to the message."""
        hop: _Hop | None = getattr(session, "mtotrust_hop", None)
        if hop is None or not hop.open:
            return _NEXT_HOP_LOST
        marked = self.owner.mark(envelope.original_content or b"", pilot=hop.group is not False)
        # While the next hop takes the message, the client must not time out (its retry would deliver twice).
        server._reset_timeout(self.owner.timeout + _DATA_TIMEOUT)
        with self.owner._relaying():
            try:
                code, message = await self._run(hop.send, marked)
            except smtplib.SMTPResponseException as exc:  # DATA itself refused: pass the answer on
                await self._reset(session)
                return _answer(exc.smtp_code, exc.smtp_error)
            except (OSError, smtplib.SMTPException):
                self._drop(session)
                return _NEXT_HOP_LOST
            finally:
                server._reset_timeout()
        hop.open, hop.group = False, None
        return _answer(code, message)

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Reset the next hop's transaction too."""
        await self._reset(session)
        return "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Close the next hop's connection."""
        self._drop(session)
        return "221 Bye"

    async def handle_exception(self, error: Exception) -> str:
        """Answer a 4xx for any failure in a hook: aiosmtpd's default 500 would make the sending MTA bounce."""
        log.error("mtotrust filter: internal error in an SMTP command (%s); answered 451", type(error).__name__)
        return "451 4.3.0 Internal error; try again later"

    def _drop(self, session: Session) -> None:
        hop: _Hop | None = getattr(session, "mtotrust_hop", None)
        if hop is not None:
            session.mtotrust_hop = None  # type: ignore[attr-defined]
            self.owner._pool.submit(hop.close)


class _Server(SMTP):
    """aiosmtpd's SMTP server, with a bound on connections and the next hop closed with the client's."""

    def __init__(self, owner: MailFilter, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self._owner
        with owner._lock:
            full = owner._connections >= owner.max_connections
            if not full:
                owner._connections += 1
                self._counted = True
        if full:
            transport.write(_TOO_MANY)  # type: ignore[attr-defined]
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._counted:
            return
        with self._owner._lock:
            self._owner._connections -= 1
        if self.session is not None:
            self.event_handler._drop(self.session)
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, owner: MailFilter, host: str, port: int) -> None:
        super().__init__(_Handler(owner), hostname=host, port=port)
        self._owner = owner

    def factory(self) -> SMTP:
        owner = self._owner
        return _Server(owner, self.handler, data_size_limit=owner.max_size, enable_SMTPUTF8=True,
                       hostname=owner.hostname, timeout=owner.timeout)


class MailFilter:
    """The mail-flow content filter: an SMTP server in a thread of its own (aiosmtpd), relaying to ``next_hop``.

    ``engine`` decides (its policy's ``[mailflow]`` pilot applies); :meth:`reload` swaps in a new snapshot, policy
    or both without dropping a connection. :meth:`start` returns the address it listens on; :meth:`stop` closes
    it. Use it as a context manager, or run ``mtotrust filter``.

    .. versionadded:: 0.2.0
    """

    def __init__(self, engine: TrustEngine, next_hop: tuple[str, int], *, max_size: int = DEFAULT_MAX_SIZE,
                 max_connections: int = 100, timeout: float = 300.0, hostname: str = "mtotrust-filter",
                 policy_folder: Path | None = None) -> None:
        if max_size < 1 or max_connections < 1:
            raise ValueError(f"max_size ({max_size}) and max_connections ({max_connections}) must be at least 1")
        self.next_hop = next_hop
        self.max_size, self.max_connections, self.timeout, self.hostname = max_size, max_connections, timeout, hostname
        self._policy_folder = policy_folder
        self._lock = threading.Lock()  # the connection and in-flight counters
        self._reload_lock = threading.Lock()
        self._connections = 0
        self._in_flight = 0  # messages being handed to the next hop
        self._idle = threading.Condition(self._lock)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_connections + 4, thread_name_prefix="mtotrust-hop")
        pilot = pilot_recipients(engine.policy, policy_folder)
        self._deciders = _Deciders(engine, _classic(engine.snapshot, engine.policy, pilot), pilot)
        self._controller: _Controller | None = None

    @property
    def engine(self) -> TrustEngine:
        """The engine that decides for the pilot (everyone, without a pilot)."""
        return self._deciders.engine

    def reload(self, snapshot: Snapshot | None = None, policy: Policy | None = None) -> None:
        """Swap in a new snapshot, policy or both (and the pilot the policy names) for the next messages.

        A new policy reads its pilot again, first: a bad pilot file raises and swaps nothing. A new snapshot alone
        keeps the pilot. Reloads take turns (a SIGHUP and a store watch never undo each other).

        Raises:
            PolicyError: the policy's pilot file cannot be read or holds a line that is not an address.
        """
        with self._reload_lock:
            old = self._deciders
            pilot = old.pilot if policy is None else pilot_recipients(policy, self._policy_folder)
            policy = policy or old.engine.policy
            snapshot = snapshot or old.engine.snapshot
            classic = _classic(snapshot, policy, pilot)  # built before the swap: the two groups move together
            old.engine.update(snapshot, policy=policy)
            self._deciders = _Deciders(old.engine, classic, pilot)

    def mark(self, message: bytes, *, pilot: bool = True) -> bytes:
        """Return ``message`` decided and marked, for the pilot group or (``pilot=False``) the classic one.

        Never raises: a failure delivers the message tagged, saying ``internal_error``.
        """
        deciders = self._deciders
        engine = deciders.engine if pilot or deciders.classic is None else deciders.classic
        try:
            decision = engine.mail_message(header_section(message))
            return rewrite(message, header_field(decision), subject_tag=decision.subject_tag)
        except Exception as exc:
            # The type only: an exception's text may quote the message (the traceback is at DEBUG).
            log.error("mtotrust filter: internal error marking a message (%s); delivered tagged",  # noqa: TRY400
                      type(exc).__name__)
            log.debug("mtotrust filter: the internal error", exc_info=True)
            return _internal_error(message, engine)

    @contextlib.contextmanager
    def _relaying(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def start(self, host: str = "127.0.0.1", port: int = 10025) -> tuple[str, int]:
        """Start listening; return the address (``port=0`` picks a free one).

        Raises:
            OSError: the address cannot be bound (in use, not local, no permission).
        """
        if port == 0:  # aiosmtpd's readiness check connects to the port it was given: find one first
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.bind((host, 0))
                port = int(probe.getsockname()[1])
        controller = _Controller(self, host, port)
        controller.start()
        self._controller = controller
        sock = controller.server.sockets[0]  # type: ignore[union-attr]
        address = sock.getsockname()
        return str(address[0]), int(address[1])

    def stop(self, grace: float = 30.0) -> None:
        """Stop: accept no new connection, then close every connection.

        Messages being handed to the next hop finish first (for up to ``grace`` seconds). A client cut off in
        mid-transaction has no answer, so it keeps its message and retries.
        """
        controller, self._controller = self._controller, None
        if controller is None:
            return
        server = controller.server
        if server is not None:
            controller.loop.call_soon_threadsafe(server.close)
        with self._lock:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)
        controller.stop()

    def close(self) -> None:
        """Stop, then end the relay threads (after the next hop connections have said QUIT)."""
        self.stop()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> MailFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _classic(snapshot: Snapshot, policy: Policy, pilot: frozenset[str] | None) -> TrustEngine | None:
    """Return the engine of the classic group (``None`` without a pilot)."""
    return None if pilot is None else TrustEngine(snapshot, classic_policy(policy))


def _internal_error(message: bytes, engine: TrustEngine) -> bytes:
    """Return the message tagged, saying ``internal_error`` (what a failure while marking delivers)."""
    policy, snapshot = engine.policy, engine.snapshot
    value = (f"trust=untrusted; tag=yes; reasons=internal_error; snapshot={snapshot.id}; "
             f"policy={policy.fingerprint}")
    for tag in (policy.mail.subject_tag, ""):  # without the Subject tag, if it was what failed
        with contextlib.suppress(Exception):
            return rewrite(message, value, subject_tag=tag)
    # The rewrite itself fails: prepend the field to the untouched bytes (a forged copy below stays, ours is first)
    return b"X-MTOTrust: " + value.encode() + b"\r\n" + message

