"""``mtotrust filter`` / ``MailFilter`` over real SMTP on loopback: smtplib -> the filter -> an aiosmtpd sink.

Every expectation about a decision comes from the in-process engine deciding the original message
(``engine.mail_message``): the filter must carry exactly that decision, and change nothing else.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from smtpsink import Sink, free_ports

from mtotrust import Policy, Snapshot, TrustEngine
from mtotrust.mailflow import MailFilter, header_field, rewrite

BOUNDARY = "mx.contoso.com"
TRUSTING = Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY]}})


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink(free_ports(1)[0]) as server:
        yield server


@pytest.fixture
def engine() -> TrustEngine:
    return TrustEngine(Snapshot.sample(), TRUSTING)


@pytest.fixture
def mail_filter(engine: TrustEngine, sink: Sink) -> Iterator[tuple[MailFilter, int]]:
    with MailFilter(engine, ("127.0.0.1", sink.port), max_size=64 << 10, max_connections=16) as running:
        _host, port = running.start("127.0.0.1", 0)
        yield running, port


def message(sender: str = "cameron@fabrikam.com", *, subject: str | None = "Quarterly numbers",
            extra: bytes = b"", body: bytes = b"Hello,\r\nthe numbers.\r\n") -> bytes:
    lines = [f"From: Cameron <{sender}>".encode(), b"To: megan@contoso.com",
             f"Message-ID: {make_msgid(domain='fabrikam.com')}".encode()]
    if subject is not None:
        lines.append(f"Subject: {subject}".encode())
    return extra + b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(port: int, data: bytes, rcpts: tuple[str, ...] = ("megan@contoso.com",),
         sender: str = "cameron@fabrikam.com") -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, list(rcpts), data)


def expected(engine: TrustEngine, data: bytes) -> bytes:
    """The readable reference: the message as the in-process engine's decision marks it."""
    decision = engine.mail_message(data)
    return rewrite(data, header_field(decision), subject_tag=decision.subject_tag)


def field(delivered: bytes) -> str:
    """The unfolded value of the first header field, which must be X-MTOTrust."""
    first, *rest = delivered.split(b"\r\n")
    assert first.startswith(b"X-MTOTrust: ")
    value = first.removeprefix(b"X-MTOTrust: ")
    for line in rest:
        if line[:1] not in (b" ", b"\t"):
            break
        value += line
    return value.decode()


class TestMarking:
    """What arrives at the next hop: the decision, the tag, and every other byte as sent."""

    def test_unauthenticated_mto_member_is_tagged(self, mail_filter: tuple[MailFilter, int], sink: Sink,
                                                  engine: TrustEngine) -> None:
        """No trusted Authentication-Results: tagged, Subject prefixed once, body and envelope unchanged."""
        data = message(body=b"8-bit: caf\xc3\xa9 " + b"x" * 980 + b"\r\n.\r\n..\r\n--\r\n")
        send(mail_filter[1], data, ("megan@contoso.com", "adele@contoso.com"))
        [(sender, rcpts, delivered)] = [(d.mail_from, d.rcpt_tos, d.content) for d in sink.deliveries()]
        assert ("cameron@fabrikam.com", ("megan@contoso.com", "adele@contoso.com")) == (sender, rcpts)
        assert expected(engine, data) == delivered
        assert "tag=yes" in field(delivered) and b"\r\nSubject: [External] Quarterly numbers\r\n" in delivered
        assert delivered.endswith(data.partition(b"\r\n\r\n")[2])

    def test_authenticated_mto_member_is_not_tagged(self, mail_filter: tuple[MailFilter, int], sink: Sink,
                                                    engine: TrustEngine) -> None:
        """The boundary's trusted dmarc=pass: untagged, Subject as sent."""
        data = message(extra=f"Authentication-Results: {BOUNDARY}; dmarc=pass header.from=fabrikam.com\r\n".encode())
        send(mail_filter[1], data)
        [delivered] = [d.content for d in sink.deliveries()]
        assert expected(engine, data) == delivered
        assert field(delivered).startswith("trust=mto_member; tag=no;")
        assert b"\r\nSubject: Quarterly numbers\r\n" in delivered

    def test_forged_results_and_forged_field(self, mail_filter: tuple[MailFilter, int], sink: Sink,
                                             engine: TrustEngine) -> None:
        """Authentication-Results from an untrusted host and a sender's own X-MTOTrust are worth nothing."""
        forged = (b"X-MTOTrust: trust=internal; tag=no; reasons=forged\r\n"
                  b"Authentication-Results: mx.attacker.example; dmarc=pass header.from=fabrikam.com\r\n")
        data = message(extra=forged)
        send(mail_filter[1], data)
        [delivered] = [d.content for d in sink.deliveries()]
        assert expected(engine, data) == delivered
        assert delivered.count(b"X-MTOTrust:") == 1 and "tag=yes" in field(delivered)

    def test_stale_snapshot_tags_and_says_so(self, engine: TrustEngine, sink: Sink) -> None:
        """With a snapshot older than [snapshot] max_age, even authenticated MTO mail is tagged, snapshot_stale."""
        engine.update(policy=Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY]},
                                               "snapshot": {"max_age": "1s"}}))
        with MailFilter(engine, ("127.0.0.1", sink.port)) as running:
            _, port = running.start("127.0.0.1", 0)
            send(port, message(extra=f"Authentication-Results: {BOUNDARY}; dmarc=pass "
                                     "header.from=fabrikam.com\r\n".encode()))
        [delivered] = [d.content for d in sink.deliveries()]
        assert "tag=yes" in field(delivered) and "snapshot_stale" in field(delivered)

    def test_two_from_mailboxes_are_ambiguous(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """A From field naming two mailboxes is tagged with from_ambiguous."""
        data = message().replace(b"From: Cameron <cameron@fabrikam.com>",
                                 b"From: cameron@fabrikam.com, megan@contoso.com")
        send(mail_filter[1], data)
        [delivered] = [d.content for d in sink.deliveries()]
        assert "from_ambiguous" in field(delivered) and "tag=yes" in field(delivered)

    def test_internal_error_delivers_tagged(self, mail_filter: tuple[MailFilter, int], sink: Sink,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A failure while marking delivers the message tagged, saying internal_error."""
        import mtotrust.mailflow._filter as filter_module

        calls: list[int] = []

        def broken(*args: Any, **kwargs: Any) -> bytes:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("boom")
            return rewrite(*args, **kwargs)

        monkeypatch.setattr(filter_module, "rewrite", broken)
        send(mail_filter[1], message(extra=f"Authentication-Results: {BOUNDARY}; dmarc=pass "
                                           "header.from=fabrikam.com\r\n".encode()))
        [delivered] = [d.content for d in sink.deliveries()]
        assert "tag=yes; reasons=internal_error" in field(delivered)
        assert b"\r\nSubject: [External] Quarterly numbers\r\n" in delivered


class TestAnswers:
    """The client hears the next hop's answers: nothing is accepted that the next hop does not have."""

    def test_next_hop_down_is_4xx_then_delivered_once(self, engine: TrustEngine) -> None:
        """With the next hop down, MAIL is a 4xx (the sender keeps the message); once it is back, one delivery."""
        port = free_ports(1)[0]
        with MailFilter(engine, ("127.0.0.1", port)) as running:
            _, filter_port = running.start("127.0.0.1", 0)
            data = message()
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                send(filter_port, data)
            assert 400 <= refused.value.smtp_code < 500
            with Sink(port) as back:
                send(filter_port, data)
                assert [data.partition(b"\r\n\r\n")[2]] == [d.content.partition(b"\r\n\r\n")[2]
                                                             for d in back.deliveries()]

    def test_refused_recipient_is_refused_with_the_same_code(self, mail_filter: tuple[MailFilter, int],
                                                             sink: Sink) -> None:
        """A recipient the next hop refuses is refused to the client with its code; the others get the mail."""
        sink.refuse.add("nobody@contoso.com")
        refused = send(mail_filter[1], message(), ("nobody@contoso.com", "megan@contoso.com"))
        assert 550 == refused["nobody@contoso.com"][0]
        assert [("megan@contoso.com",)] == [d.rcpt_tos for d in sink.deliveries()]

    def test_oversize_is_552(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """A message over --max-size is 552 and never reaches the next hop."""
        with pytest.raises(smtplib.SMTPException) as caught:
            send(mail_filter[1], message(body=b"y" * (70 << 10) + b"\r\n"))
        assert "552" in str(caught.value)
        assert [] == sink.deliveries()

    def test_ehlo_advertises_the_extensions(self, mail_filter: tuple[MailFilter, int]) -> None:
        """EHLO offers SIZE (the limit), 8BITMIME, SMTPUTF8 and PIPELINING."""
        with smtplib.SMTP("127.0.0.1", mail_filter[1], timeout=30) as client:
            client.ehlo()
            assert (str(64 << 10), True, True, True) == (client.esmtp_features.get("size"),
                                                         client.has_extn("8bitmime"), client.has_extn("smtputf8"),
                                                         client.has_extn("pipelining"))

    def test_connections_are_bounded(self, engine: TrustEngine, sink: Sink) -> None:
        """Past --max-connections a new client is told 421 at once; a freed slot is used again."""
        with MailFilter(engine, ("127.0.0.1", sink.port), max_connections=2) as running:
            _, port = running.start("127.0.0.1", 0)
            held = [smtplib.SMTP("127.0.0.1", port, timeout=30) for _ in range(2)]
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP("127.0.0.1", port, timeout=30)
            assert 421 == refused.value.smtp_code
            for client in held:
                client.quit()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    send(port, message())
                    break
                except smtplib.SMTPConnectError:
                    time.sleep(0.02)
            assert 1 == len(sink.deliveries())


class TestLoad:
    """Many clients at once."""

    def test_thousand_messages_from_eight_clients(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """1,000 messages over 8 concurrent connections: each delivered exactly once (counted by Message-ID)."""
        def client(n: int) -> list[str]:
            ids = []
            with smtplib.SMTP("127.0.0.1", mail_filter[1], timeout=60) as smtp:
                for _ in range(125):
                    data = message()
                    ids.append(data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode())
                    smtp.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], data)
            return ids

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sent = [i for ids in pool.map(client, range(8)) for i in ids]
        delivered = [d.content.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for d in sink.deliveries()]
        assert 1000 == len(sent) == len(set(sent))
        assert sorted(sent) == sorted(delivered)


class TestReload:
    """A new policy or snapshot applies to the next message, on connections already open."""

    def test_reload_keeps_connections(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """On one open connection, a message before and one after reload(policy=...) get each policy's answer."""
        running, port = mail_filter
        data = message(extra=f"Authentication-Results: {BOUNDARY}; dmarc=pass header.from=fabrikam.com\r\n".encode())
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], data)
            running.reload(policy=Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY],
                                                             "untagged_at": "internal"}}))
            client.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], data)
        assert ["tag=no", "tag=yes"] == [field(d.content).split("; ")[1] for d in sink.deliveries()]

    def test_pilot_recipients(self, engine: TrustEngine, sink: Sink) -> None:
        """Pilot recipients get the policy's decision, the others the classic one, each in its own transaction."""
        policy = Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY]},
                                   "mailflow": {"pilot_recipients": ["megan@contoso.com"]}})
        engine.update(policy=policy)
        data = message(extra=f"Authentication-Results: {BOUNDARY}; dmarc=pass header.from=fabrikam.com\r\n".encode())
        with MailFilter(engine, ("127.0.0.1", sink.port)) as running:
            _, port = running.start("127.0.0.1", 0)
            refused = send(port, data, ("megan@contoso.com", "adele@contoso.com"))
            assert 452 == refused["adele@contoso.com"][0]  # another transaction, as an MTA retries it
            send(port, data, ("adele@contoso.com",))
        tags = {d.rcpt_tos: field(d.content).split("; ")[1] for d in sink.deliveries()}
        assert {("megan@contoso.com",): "tag=no", ("adele@contoso.com",): "tag=yes"} == tags


    def test_a_new_snapshot_reaches_both_pilot_groups(self, engine: TrustEngine, sink: Sink, tmp_path: Path) -> None:
        """reload(snapshot=...) (what a store watch does) moves the pilot and the classic group to it alike, and
        keeps the pilot it has (the pilot file is read again only with a new policy)."""
        pilot = tmp_path / "pilot.txt"
        pilot.write_text("# the pilot\nmegan@contoso.com\n")
        engine.update(policy=Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY]},
                                               "mailflow": {"pilot_file": str(pilot)}}))
        newer = engine.snapshot.with_delta([{"value": [{"id": sorted(engine.snapshot.users)[0],
                                                        "@removed": {"reason": "deleted"}}]}])
        with MailFilter(engine, ("127.0.0.1", sink.port)) as running:
            _, port = running.start("127.0.0.1", 0)
            pilot.unlink()  # being edited, say
            running.reload(snapshot=newer)
            for rcpt in ("megan@contoso.com", "adele@contoso.com"):
                send(port, message(), (rcpt,))
        assert [f"snapshot={newer.id}"] * 2 == [next(p for p in field(d.content).split("; ")
                                                     if p.startswith("snapshot=")) for d in sink.deliveries()]


class TestCommand:
    """``mtotrust filter`` as an admin runs it."""

    def test_run_reload_and_stop(self, sink: Sink, tmp_path: Path) -> None:
        """The command relays, SIGHUP reads the policy file again, SIGTERM stops it with exit 0."""
        policy = tmp_path / "policy.toml"
        policy.write_text(f'version = 1\n[mail]\ntrusted_authserv_ids = ["{BOUNDARY}"]\n')
        port = free_ports(1)[0]
        proc = subprocess.Popen([sys.executable, "-m", "mtotrust", "filter", "--listen", f"127.0.0.1:{port}",
                                 "--next-hop", f"127.0.0.1:{sink.port}", "--policy", str(policy)],
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            while "listening on" not in (line := proc.stderr.readline()):
                assert line, "the filter exited before listening"
            data = message(extra=f"Authentication-Results: {BOUNDARY}; dmarc=pass "
                                 "header.from=fabrikam.com\r\n".encode())
            send(port, data)
            policy.write_text(f'version = 1\n[mail]\ntrusted_authserv_ids = ["{BOUNDARY}"]\nuntagged_at = "internal"\n')
            os.kill(proc.pid, signal.SIGHUP)
            while "reloaded" not in (line := proc.stderr.readline()):
                assert line, "the filter exited instead of reloading"
            send(port, data)
            proc.send_signal(signal.SIGTERM)
            assert 0 == proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert ["tag=no", "tag=yes"] == [field(d.content).split("; ")[1] for d in sink.deliveries()]

    def test_bad_listen_address(self) -> None:
        """A --listen that is not HOST:PORT is exit 2 with one line naming it."""
        done = subprocess.run([sys.executable, "-m", "mtotrust", "filter", "--listen", "localhost", "--next-hop",
                               "127.0.0.1:25"], capture_output=True, text=True, timeout=60, check=False)
        assert 2 == done.returncode and "--listen 'localhost'" in done.stderr and "Traceback" not in done.stderr

    @pytest.mark.parametrize(("options", "named"), [
        (["--listen", "127.0.0.1:99999"], "--listen '127.0.0.1:99999'"),
        (["--listen", "127.0.0.1:１０２５"], "--listen '127.0.0.1:１０２５'"),  # fullwidth digits are no port
        (["--next-hop", "[::1]"], "--next-hop '[::1]'"),
        (["--max-size", "0"], "--max-size"),
        (["--max-connections", "-1"], "--max-connections"),
        (["--policy", "/nonexistent/policy.toml"], "/nonexistent/policy.toml"),
    ])
    def test_bad_options(self, options: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Each bad option or input is exit 2 with one stderr line naming it, before anything listens."""
        from mtotrust.cli import main

        argv = {"--listen": "127.0.0.1:0", "--next-hop": "127.0.0.1:25"}
        for option, value in zip(options[::2], options[1::2], strict=True):
            argv[option] = value
        assert 2 == main(["filter", *[x for kv in argv.items() for x in kv]])
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err and err.count("\n") <= 2


class TestPilotScope:
    """``[mailflow]``: who is in the pilot, and what the others get."""

    def test_pilot_file_and_list(self, tmp_path: Path) -> None:
        """The list and the file's lines (comments and blanks skipped, relative to the policy's folder) join."""
        from mtotrust.mailflow import pilot_recipients

        (tmp_path / "pilot.txt").write_text("# pilot\n\nAdele@Contoso.com  # the first\n")
        policy = Policy.from_data({"mailflow": {"pilot_recipients": ["megan@contoso.com"],
                                                "pilot_file": "pilot.txt"}})
        assert frozenset({"megan@contoso.com", "adele@contoso.com"}) == pilot_recipients(policy, tmp_path)
        assert pilot_recipients(Policy.default()) is None

    def test_bad_pilot_file(self, tmp_path: Path) -> None:
        """A line that is no address, or a missing file, is a PolicyError naming the file and line."""
        from mtotrust import PolicyError
        from mtotrust.mailflow import pilot_recipients

        (tmp_path / "pilot.txt").write_text("megan@contoso.com\nnot an address\n")
        with pytest.raises(PolicyError, match=r"pilot.txt:2"):
            pilot_recipients(Policy.from_data({"mailflow": {"pilot_file": "pilot.txt"}}), tmp_path)
        with pytest.raises(PolicyError, match="cannot read the pilot file"):
            pilot_recipients(Policy.from_data({"mailflow": {"pilot_file": "missing.txt"}}), tmp_path)

    def test_classic_keeps_the_authentication_settings(self) -> None:
        """The classic counterpart differs only in mail.untagged_at: internal mail is decided as before."""
        from mtotrust.mailflow import classic_policy

        policy = Policy.from_data({"mail": {"trusted_authserv_ids": [BOUNDARY], "subject_tag": "[Ext]"},
                                   "snapshot": {"max_age": "24h"}})
        classic = classic_policy(policy)
        assert classic.mail.untagged_at == "internal"
        assert classic.model_dump(exclude={"mail"}) == policy.model_dump(exclude={"mail"})
        assert (classic.mail.trusted_authserv_ids, classic.mail.subject_tag) == ([BOUNDARY], "[Ext]")


class TestTransactions:
    """One client connection, many transactions: a failure in one never spoils the next."""

    def test_after_too_much_data(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """A message over the size (no SIZE= on MAIL) is 552 at the end of DATA; the next one is delivered."""
        with smtplib.SMTP("127.0.0.1", mail_filter[1], timeout=30) as client:
            client.ehlo()
            client.mail("cameron@fabrikam.com")
            client.rcpt("megan@contoso.com")
            code, _ = client.data(message(body=(b"y" * 990 + b"\r\n") * 80))
            assert (552, 0) == (code, len(sink.deliveries()))
            assert {} == client.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], message())
        assert 1 == len(sink.deliveries())

    def test_after_the_next_hop_refused_the_message(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """The next hop's 4xx to a message is the client's answer; the next message goes through."""
        sink.handler.data_answer = "451 4.3.0 Try later"
        with smtplib.SMTP("127.0.0.1", mail_filter[1], timeout=30) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], message())
            assert 451 == refused.value.smtp_code
            sink.handler.data_answer = "250 OK"
            client.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], message())
        assert 1 == len(sink.deliveries())

    def test_ehlo_mid_transaction_and_rset(self, mail_filter: tuple[MailFilter, int], sink: Sink) -> None:
        """EHLO or RSET in the middle of a transaction ends it at the next hop too: a new MAIL is accepted."""
        with smtplib.SMTP("127.0.0.1", mail_filter[1], timeout=30) as client:
            for end in (client.ehlo, client.rset):
                client.ehlo()
                assert 250 == client.mail("cameron@fabrikam.com")[0]
                assert 250 == client.rcpt("megan@contoso.com")[0]
                end()
            client.sendmail("cameron@fabrikam.com", ["megan@contoso.com"], message())
        assert [("megan@contoso.com",)] == [d.rcpt_tos for d in sink.deliveries()]

    def test_a_slow_next_hop_is_waited_for(self, engine: TrustEngine, sink: Sink) -> None:
        """A next hop slower than the filter's timeout to accept a message: the client still hears 250, once."""
        sink.handler.delay = 1.5
        with MailFilter(engine, ("127.0.0.1", sink.port), timeout=1.0) as running:
            _, port = running.start("127.0.0.1", 0)
            send(port, message())
        assert 1 == len(sink.deliveries())
