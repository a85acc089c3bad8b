"""``mtotrust serve`` as an admin runs it: a subprocess on a free loopback port, real HTTP, real signals.

Every wait has a timeout: stderr is read by a thread into a queue, so a server that never says a line fails the
test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from smtpsink import free_ports

from mtotrust import Identity, Policy, Snapshot, TrustEngine

SAMPLE = Snapshot.sample()
TIMEOUT = 30.0
EVALUATION = "/access/v1/evaluation"
QUIET = 'version = 1\n[snapshot]\nmax_age = "3650d"\n'  # a bounded policy: no max_age warning on stderr


def evaluation(address: str, action: str = "dlp.share") -> dict[str, Any]:
    return {"subject": {"type": "user", "id": address}, "action": {"name": action},
            "resource": {"type": "document", "id": "q3.xlsx"}}


def command(*options: str) -> list[str]:
    return [sys.executable, "-m", "mtotrust", "serve", *options]


class Running:
    """A ``mtotrust serve`` process: its stderr lines, as they come, on a queue."""

    def __init__(self, options: list[str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(command(*options), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        """Return the next stderr line containing ``text``; fail if the process ends or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no stderr line with {text!r} in {timeout} s; seen: {self.seen}")
            if line is None:
                pytest.fail(f"mtotrust serve ended (exit {self.proc.wait(TIMEOUT)}) before {text!r}; seen: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> str:
        """SIGTERM; check the exit is 0 and return the whole of stderr."""
        self.proc.send_signal(signal.SIGTERM)
        assert 0 == self.proc.wait(timeout=TIMEOUT)
        while (line := self.lines.get(timeout=TIMEOUT)) is not None:
            self.seen.append(line)
        return "".join(self.seen)

    def close(self) -> None:
        """Kill the process if it still runs, and release its pipe."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@contextlib.contextmanager
def serving(*options: str, host: str = "127.0.0.1") -> Iterator[tuple[Running, httpx.Client]]:
    """Run ``mtotrust serve --listen HOST:PORT OPTIONS`` until it says it listens; yield it and a client."""
    port = free_ports(1)[0]
    running = Running(["--listen", f"{host}:{port}", *options], port)
    try:
        running.wait_for("listening on")
        with httpx.Client(base_url=running.url, timeout=TIMEOUT, trust_env=False) as client:
            yield running, client
    finally:
        running.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample, saved as a .sqlite store."""
    path = tmp_path_factory.mktemp("store") / "contoso.sqlite"
    SAMPLE.save(path)
    return path


def fingerprint(client: httpx.Client, **headers: str) -> str:
    response = client.post(EVALUATION, json=evaluation("cameron@fabrikam.com"), headers=headers)
    assert 200 == response.status_code, response.text
    return str(response.json()["context"]["policy_fingerprint"])


class TestServing:
    def test_serves_the_bundled_sample(self) -> None:
        """Without --snapshot and --policy: the sample and Policy.default(), decided as the engine decides."""
        engine = TrustEngine(SAMPLE, Policy.default())
        with serving() as (running, client):
            listening = f"listening on {running.url}; snapshot {SAMPLE.id}, policy {Policy.default().fingerprint}"
            assert listening in running.seen[-1]
            assert any("bundled sample" in line for line in running.seen)
            health = client.get("/healthz").json()
            assert ("ok", SAMPLE.id) == (health["status"], health["snapshot_id"])
            for address in ("megan@contoso.com", "cameron@fabrikam.com", "pat@fabrikam.com", "someone@example.org"):
                answer = client.post(EVALUATION, json=evaluation(address)).json()
                decision = engine.dlp(Identity(address))
                assert (decision.inside_organization, decision.trust.value, decision.snapshot_id,
                        decision.policy_fingerprint) == (answer["decision"], answer["context"]["trust"],
                                                         answer["context"]["snapshot_id"],
                                                         answer["context"]["policy_fingerprint"])
            discovery = client.get("/.well-known/authzen-configuration").json()
            assert running.url == discovery["policy_decision_point"]
            assert "Traceback" not in running.stop()

    def test_help(self) -> None:
        done = subprocess.run(command("--help"), capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert 0 == done.returncode and "" == done.stderr
        for option in ("--snapshot", "--policy", "--listen", "--token-file", "--public-url", "--watch-every",
                       "--access-log", "--allow-origin"):
            assert option in done.stdout

    def test_token_file(self, tmp_path: Path) -> None:
        """With --token-file (first line, blanks stripped) every endpoint but /healthz needs the bearer token; with
        it, a non-loopback address is allowed."""
        token = tmp_path / "token"
        token.write_text("  s3cret-token-42 \nsecond line is ignored\n")
        with serving("--token-file", str(token), host="0.0.0.0") as (running, client):
            assert 401 == client.post(EVALUATION, json=evaluation("megan@contoso.com")).status_code
            wrong = client.post(EVALUATION, json=evaluation("megan@contoso.com"),
                                headers={"authorization": "Bearer second line is ignored"})
            assert 401 == wrong.status_code and wrong.headers["www-authenticate"].startswith("Bearer")
            assert fingerprint(client, authorization="Bearer s3cret-token-42")
            assert 401 == client.get("/metrics").status_code
            assert 200 == client.get("/healthz").status_code
            running.stop()

    def test_access_log_names_no_identity(self, tmp_path: Path) -> None:
        """--access-log writes one line per request (method, path, status, request id), never an identity."""
        address = "zebulon.quixote-7731@fabrikam.com"
        with serving("--access-log") as (running, client):
            for path in (EVALUATION, "/access/v1/evaluations"):
                response = client.post(path, json=evaluation(address), headers={"x-request-id": "req-7731"})
                assert 200 == response.status_code
            bad = client.post(EVALUATION, json={**evaluation(address), "action": {"name": f"x.{address}"}})
            assert 400 == bad.status_code and address in bad.json()["error"]  # the client is told, the log is not
            assert 404 == client.get(f"/{address}").status_code
            assert 200 == client.post("/v1/check", json={"identities": [address]}).status_code
            err = running.stop()
        assert "POST /access/v1/evaluation 200" in err and "req-7731" in err
        assert "GET other 404" in err
        assert address not in err and "zebulon" not in err and "7731@" not in err


class TestReload:
    def test_sighup_reloads_under_load(self, tmp_path: Path) -> None:
        """SIGHUP with requests in flight: none fails, the changed policy file is picked up; a broken file is a
        failed reload that keeps the running policy."""
        policy = tmp_path / "policy.toml"
        policy.write_text(QUIET)
        old = Policy.load(policy).fingerprint
        policy.write_text(QUIET + '[mail]\nuntagged_at = "internal"\n')
        new = Policy.load(policy).fingerprint
        policy.write_text(QUIET)
        assert old != new
        failures: list[str] = []
        seen: set[str] = set()
        stop = threading.Event()

        def ask(url: str) -> None:
            with httpx.Client(base_url=url, timeout=TIMEOUT, trust_env=False) as client:
                while not stop.is_set():
                    try:
                        seen.add(fingerprint(client))
                    except (AssertionError, httpx.HTTPError) as exc:
                        failures.append(repr(exc))

        with serving("--policy", str(policy)) as (running, client):
            assert old == fingerprint(client)
            threads = [threading.Thread(target=ask, args=(running.url,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(0.2)
                policy.write_text(QUIET + '[mail]\nuntagged_at = "internal"\n')
                os.kill(running.proc.pid, signal.SIGHUP)
                assert f"policy {new}" in running.wait_for("reloaded")
                time.sleep(0.2)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(TIMEOUT)
            assert [] == failures and {old, new} == seen
            assert new == fingerprint(client)

            policy.write_text("version = 1\n[mail\n")
            os.kill(running.proc.pid, signal.SIGHUP)
            assert str(policy) in running.wait_for("reload failed")
            assert new == fingerprint(client)
            assert 200 == client.get("/healthz").status_code
            assert "Traceback" not in running.stop()

    def test_a_watched_store_is_swapped_in(self, tmp_path: Path) -> None:
        """A .sqlite --snapshot is polled every --watch-every seconds: a new generation is served, no signal."""
        path = tmp_path / "contoso.sqlite"
        SAMPLE.save(path)
        cameron = SAMPLE.lookup("cameron@fabrikam.com")[0].id
        changed = SAMPLE.with_delta([{"value": [{"id": cameron, "accountEnabled": False}]}])
        assert changed.id != SAMPLE.id
        with serving("--snapshot", str(path), "--policy", str(_quiet(tmp_path)), "--watch-every", "0.2") as (
                running, client):
            assert SAMPLE.id == client.get("/healthz").json()["snapshot_id"]
            assert client.post(EVALUATION, json=evaluation("cameron@fabrikam.com")).json()["decision"] is True
            changed.save(path)
            assert changed.id in running.wait_for("new generation")
            deadline = time.monotonic() + TIMEOUT
            while client.get("/healthz").json()["snapshot_id"] != changed.id:
                assert time.monotonic() < deadline, "the new generation was not served"
                time.sleep(0.05)
            answer = client.post(EVALUATION, json=evaluation("cameron@fabrikam.com")).json()
            assert (False, changed.id) == (answer["decision"], answer["context"]["snapshot_id"])
            running.stop()


def _quiet(folder: Path) -> Path:
    path = folder / "quiet.toml"
    path.write_text(QUIET)
    return path


@contextlib.contextmanager
def _port_in_use() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _listen(value: str) -> Callable[[Path], list[str]]:
    return lambda _: ["--listen", value]


def _token_file(text: str | None) -> Callable[[Path], list[str]]:
    def options(folder: Path) -> list[str]:
        path = folder / "token"
        if text is not None:
            path.write_text(text)
        return ["--token-file", str(path)]
    return options


BAD_USAGE: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("listen-nonsense", _listen("nonsense"), "--listen 'nonsense'"),
    ("listen-no-port", _listen("127.0.0.1"), "--listen '127.0.0.1'"),
    ("listen-big-port", _listen("127.0.0.1:70000"), "--listen '127.0.0.1:70000'"),
    ("non-loopback-without-token", _listen("0.0.0.0:8181"), "'0.0.0.0'"),
    ("missing-token-file", _token_file(None), "cannot read --token-file"),
    ("empty-token-file", _token_file("\n  \nsecond\n"), "empty first line"),
    ("watch-every-0", lambda _: ["--watch-every", "0"], "--watch-every 0"),
    ("watch-every-negative", lambda _: ["--watch-every", "-1"], "--watch-every -1"),
    ("public-url-no-scheme", lambda _: ["--public-url", "pdp.contoso.com"], "--public-url 'pdp.contoso.com'"),
    ("public-url-ftp", lambda _: ["--public-url", "ftp://pdp.contoso.com"], "--public-url 'ftp://pdp.contoso.com'"),
    ("allow-origin-path", lambda _: ["--allow-origin", "https://addin.contoso.com/app"],
     "--allow-origin 'https://addin.contoso.com/app'"),
    ("missing-policy", lambda _: ["--policy", "/nonexistent/policy.toml"], "/nonexistent/policy.toml"),
]


class TestBadUsage:
    """Bad usage is exit 2 with one line on stderr naming the option and value, and no traceback."""

    @pytest.mark.parametrize(("options", "named"), [(o, n) for _, o, n in BAD_USAGE], ids=[i for i, _, _ in BAD_USAGE])
    def test_bad_usage(self, store: Path, tmp_path: Path, options: Callable[[Path], list[str]], named: str) -> None:
        given = options(tmp_path)
        argv = ["--snapshot", str(store), "--policy", str(_quiet(tmp_path)), "--listen", "127.0.0.1:0"]
        for index in range(0, len(given), 2):  # the case's options replace the defaults
            if given[index] in argv:
                argv[argv.index(given[index]) + 1] = given[index + 1]
            else:
                argv += given[index:index + 2]
        done = subprocess.run(command(*argv), capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert 2 == done.returncode, done.stderr
        assert [done.stderr.strip()] == done.stderr.splitlines(), done.stderr  # one line
        assert done.stderr.startswith("mtotrust") and named in done.stderr and "Traceback" not in done.stderr

    def test_port_in_use(self, store: Path, tmp_path: Path) -> None:
        with _port_in_use() as port:
            done = subprocess.run(command("--snapshot", str(store), "--policy", str(_quiet(tmp_path)), "--listen",
                                          f"127.0.0.1:{port}"), capture_output=True, text=True, timeout=TIMEOUT,
                                  check=False)
        assert 2 == done.returncode, done.stderr
        assert [done.stderr.strip()] == done.stderr.splitlines(), done.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
