"""A private Postfix instance confined to loopback, for the mail-flow filter's end-to-end test.

:class:`Postfix` writes ``main.cf`` and ``master.cf`` under a folder of its own and runs the installed Postfix with
``-c`` (its own ``config_directory``, ``queue_directory`` and ``data_directory``): the system instance is never
read, written or started. The layout is FILTER_README's "Advanced content filter example"
(https://www.postfix.org/FILTER_README.html): the main ``smtpd`` queues every message with a
``content_filter`` pointing at the filter under test, a dedicated ``smtp`` client (``scan``) hands it over, and the
filter sends it back to a second ``smtpd`` (the reinjection port) that has no content filter; from there all mail
is relayed to ``smtpsink.Sink``, an aiosmtpd server on loopback. Postfix logs to ``postfix.log`` in the folder
(``maillog_file`` and ``postlogd``, Postfix >= 3.4: https://www.postfix.org/MAILLOG_README.html), which
:meth:`Postfix.wait` shows when what it waits for does not happen.

Starting Postfix needs root (the master process binds and changes user), as in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PACKAGE", "Postfix", "postfix_command"]

PACKAGE = "postfix"
"""The Debian package that provides the ``postfix`` command (``.ci/run`` installs it)."""

# The hostname Postfix announces. It must differ from the filter's and the sink's greeting: Postfix's SMTP client
# refuses a server that greets with its own myhostname ("mail for ... loops back to myself").
MYHOSTNAME = "postfix.mtotrust.test"

# Every service Postfix needs to receive, queue and relay over SMTP, none chrooted (nothing is copied into the
# spool); the daemons Debian's master.cf lists for local delivery, TLS and postscreen are left out. Columns:
# service type private unpriv chroot wakeup maxproc command (master(5)).
_MASTER_CF = """\
127.0.0.1:{smtpd_port} inet n - n - - smtpd
  -o content_filter=scan:[127.0.0.1]:{filter_port}
# FILTER_README "Advanced content filter": a dedicated SMTP client into the filter, which must not convert 8-bit
# content to quoted-printable (the filter relays it byte for byte).
scan      unix  -       -       n       -       4       smtp
  -o smtp_send_xforward_command=yes
  -o disable_mime_output_conversion=yes
  -o smtp_generic_maps=
# FILTER_README: the reinjection smtpd clears content_filter (or mail loops through the filter forever) and skips
# the checks the first smtpd already made.
127.0.0.1:{reinject_port} inet n - n - - smtpd
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_helo_restrictions=
  -o smtpd_client_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_recipient_restrictions=
  -o mynetworks=127.0.0.0/8
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_command() -> str | None:
    """Return the path of the installed ``postfix`` command, or None (it lives in /usr/sbin, maybe off PATH)."""
    return shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin:/usr/local/sbin")


def _main_cf(root: Path, sink_port: int, extra: Mapping[str, str]) -> str:
    settings = {
        "compatibility_level": "3.6",
        "myhostname": MYHOSTNAME,
        "queue_directory": str(root / "spool"),
        "data_directory": str(root / "data"),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "maillog_file": str(root / "postfix.log"),
        # Postfix refuses a maillog_file outside these prefixes (default /var, /dev/stdout: postconf(5)).
        "maillog_file_prefixes": str(root),
        # Loopback only: listen on 127.0.0.1, deliver nothing locally, relay everything to the sink, no DNS.
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mydestination": "",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "relayhost": f"[127.0.0.1]:{sink_port}",
        "smtp_dns_support_level": "disabled",
        "smtpd_peername_lookup": "no",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        # FILTER_README: address rewriting happens after the filter (in the reinjection smtpd), not before it.
        "receive_override_options": "no_address_mappings",
        # The test's messages must reach the sink as the filter wrote them.
        "disable_mime_output_conversion": "yes",
        # Deferred mail is retried within seconds, not minutes (the test also flushes).
        "queue_run_delay": "2s",
        "minimal_backoff_time": "2s",
        "maximal_backoff_time": "4s",
        "smtp_connect_timeout": "5s",
        "delay_warning_time": "0",
        "biff": "no",
    }
    settings.update(extra)
    return "".join(f"{name} = {value}\n" for name, value in settings.items())


class Postfix:
    """A running private Postfix: ``with Postfix(root, ...) as mta:`` writes the configuration, starts it, and stops it.

    ``root`` holds ``etc/`` (main.cf, master.cf), ``spool/`` (the queue), ``data/`` and ``postfix.log``; it must be
    traversable by the ``postfix`` user (mode 0755), which a pytest ``tmp_path`` under /tmp/pytest-of-root is not.
    ``smtpd_port`` is where mail comes in, ``filter_port`` the filter Postfix hands every message to,
    ``reinject_port`` where the filter sends it back, ``sink_port`` where Postfix relays everything.
    ``extra_main_cf`` adds or overrides main.cf parameters.
    """

    def __init__(self, root: Path, *, smtpd_port: int, filter_port: int, reinject_port: int, sink_port: int,
                 extra_main_cf: Mapping[str, str] | None = None) -> None:
        command = postfix_command()
        if command is None:
            raise RuntimeError(f"the {PACKAGE!r} command is not installed: apt-get install {PACKAGE}")
        self._postfix = command
        self._sbin = Path(command).parent
        self.root = root
        self.etc = root / "etc"
        self.log_file = root / "postfix.log"
        self.smtpd_port = smtpd_port
        self.filter_port = filter_port
        self.reinject_port = reinject_port
        self.sink_port = sink_port
        self._main_cf = _main_cf(root, sink_port, extra_main_cf or {})
        self._master_cf = _MASTER_CF.format(smtpd_port=smtpd_port, filter_port=filter_port,
                                            reinject_port=reinject_port)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def __enter__(self) -> Postfix:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.root / "spool").mkdir(exist_ok=True)  # Postfix creates what it needs inside (post-install)
        (self.etc / "main.cf").write_text(self._main_cf, encoding="ascii")
        (self.etc / "master.cf").write_text(self._master_cf, encoding="ascii")
        try:
            self._run(self._postfix, "check")
            self._run(self._postfix, "start")
            self.wait(lambda: _accepts(self.smtpd_port) and _accepts(self.reinject_port),
                      f"Postfix listening on 127.0.0.1:{self.smtpd_port} and :{self.reinject_port}")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        """Stop this instance; if ``postfix stop`` fails, kill its master by the pid file."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run([self._postfix, "-c", str(self.etc), "stop"], capture_output=True, check=False,
                           timeout=30)
        deadline = time.monotonic() + 10
        while self._master_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = self._master_pid()
        if pid is not None and self._master_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _master_pid(self) -> int | None:
        try:
            return int((self.root / "spool" / "pid" / "master.pid").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def _master_running(self) -> bool:
        pid = self._master_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    # -- use -----------------------------------------------------------------------------------------------------

    def send(self, message: bytes, mail_from: str, rcpt_to: Sequence[str]) -> None:
        """Submit ``message`` to Postfix's smtpd over SMTP (8BITMIME); Postfix must queue it (250)."""
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, local_hostname="client.mtotrust.test", timeout=30) as smtp:
            smtp.ehlo()
            refused = smtp.sendmail(mail_from, list(rcpt_to), message, mail_options=["BODY=8BITMIME"])
        assert not refused, f"Postfix refused recipients {refused}\n{self.log()}"

    def flush(self) -> None:
        """Ask Postfix to retry every deferred message now (``postqueue -f``)."""
        self._run(str(self._sbin / "postqueue"), "-f")

    def queue(self) -> list[dict[str, Any]]:
        """Return the queue listing (``postqueue -j``: one JSON object per message, ``queue_name`` e.g. deferred)."""
        listing = self._run(str(self._sbin / "postqueue"), "-j")
        return [json.loads(line) for line in listing.splitlines() if line.strip()]

    def log(self) -> str:
        """Return Postfix's log so far (empty if it wrote none)."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait(self, done: Callable[[], bool], what: str, *, timeout: float = 20.0) -> None:
        """Poll ``done`` every 0.05 s until it is true; after ``timeout`` seconds fail naming ``what``, with the log."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up after {timeout} s waiting for {what}\n--- {self.log_file}:\n"
                                     f"{self.log()}")
            time.sleep(0.05)

    def _run(self, command: str, *args: str) -> str:
        done = subprocess.run([command, "-c", str(self.etc), *args], capture_output=True, text=True, check=False,
                              timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{Path(command).name} -c {self.etc} {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}{done.stderr}\n--- {self.log_file}:\n{self.log()}")
        return done.stdout


def _accepts(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
