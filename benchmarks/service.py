"""``mtotrust serve`` over HTTP: AuthZEN decisions against a fixed answer on the same stack, and against Cerbos.

    python -m benchmarks.service                   # 8 clients x 250 requests a row, 3 interleaved rounds (about 1 min)
    python -m benchmarks.service --quick           # 1 round of 100 requests a client: the CI smoke test (< 30 s)
    python -m benchmarks.service --requests 250 --clients 8 --rounds 3 --seed 7
    python -m benchmarks.service --no-cerbos       # without the Cerbos rows (no npm, no download)

Every server runs in **a child process** of its own, one worker, on 127.0.0.1, started afresh each round:

- the **constant endpoint**: ``mtotrust.service._server.AsgiServer`` (uvicorn, httptools, uvloop: the service's
  own stack) serving an ASGI app that reads the body and answers ``{"decision":true}``. Nothing can answer faster on
  this stack: **the baseline** of the service's overhead target;
- **mtotrust**: ``mtotrust.service.Service`` over ``TrustEngine(Snapshot.sample(), the sample policy)`` (the
  ``mtotrust demo`` policy: ``Policy.default()`` plus the mail boundary ``mx.contoso.com`` and two labels;
  ``dlp.inside_at`` is the default ``mto_member``), the default decision cache, as ``mtotrust serve`` builds it;
- **Cerbos** PDP 0.55 (the npm package ``@cerbos/cerbos-linux-x64@0.55``, installed once into
  ``~/.cache/mtotrust-bench/cerbos`` with npm; ``--quick`` never installs it, only uses one already there), with
  ``benchmarks/cerbos/policies/document.yaml``: ``dlp.share`` allowed when ``request.principal.attr.trust`` is
  ``mto_member`` or ``internal``, mtotrust's rule under ``dlp.inside_at = mto_member``. Cerbos holds no directory,
  so the client sends each subject's trust (decided beforehand by the parent's own engine) in
  ``subject.properties.trust``: Cerbos is timed deciding a rule over a given attribute, mtotrust resolving the
  address as well. Without npm, off linux-x64, or when the install fails, the Cerbos rows say why and are skipped.

Rows (``POST``, ``Content-Type: application/json``), each request a different subject from a seeded shuffle of
the sample's addresses (internal, MTO members, guests, external, unknown addresses at known and unknown domains):

- ``constant``: the constant endpoint, sent the ``single`` row's bodies;
- ``single``: ``/access/v1/evaluation``, ``dlp.share`` of a ``document``;
- ``mail``: ``/access/v1/evaluation``, ``mail.deliver_untagged`` of a ``message`` with one
  ``authentication_results`` value, distinct in every request (4 in 5 from the trusted boundary, 1 in 5 from the
  sender's own relay);
- ``batch``: ``/access/v1/evaluations`` with 100 ``dlp.share`` items (action and resource as top-level defaults);
- ``cerbos`` and ``cerbos batch``: the ``single`` and ``batch`` requests to Cerbos's AuthZEN endpoints, with the
  subjects' trust and ``roles: ["user"]`` in ``subject.properties``.

Client: ``--clients`` threads in this process, each with **one** keep-alive ``http.client.HTTPConnection``
(``TCP_NODELAY`` on; each request's head and body in one write, as a gateway sends it: see :class:`Connection`),
sending its requests one after another: ``--warmup`` requests (default 50), a barrier, then
``--requests`` timed requests (``time.perf_counter`` around each request and the read of its answer). Figures per
row and round: p50 and p99 over every timed request, requests/s (the timed requests over the wall time from the
first client's start to the last one's end), and the CPU time per request of the server's process tree
(``utime + stime`` from ``/proc``, all threads and descendants, over the timed phase; 10 ms ticks, so +-5 µs at
2,000 requests) and of the client process. On a small machine the client shares the cores with the server, so p50
and requests/s are partly the client's; the server CPU per request is the steadiest figure. Rows are interleaved,
the servers' order reversed every other round; the table gives each figure's median over the rounds and its
range, and each ratio is the median of the rounds' own ratios.

Targets (issue 15), reported, never asserted: mtotrust ``single`` p50 and p99 at most Cerbos's (ratio <= 1);
``single`` p50 at most 1.10x the constant endpoint's; ``batch`` (100 items) p50 at most 3x ``single``'s;
``single`` p99 under 2 ms. Every answer of every request is checked against the parent's own engine (status 200,
and each decision); the exit status is 1 when any answer is wrong, else 0. A JSON copy of the figures goes to
``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import http.client
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks.run import OUT, _git, _version, write_results
from mtotrust import Snapshot, Trust, TrustEngine

ROOT = Path(__file__).resolve().parent.parent
CERBOS_SOURCE = Path(__file__).resolve().parent / "cerbos"  # config.yaml and policies/ (source files)
CERBOS_HOME = Path.home() / ".cache" / "mtotrust-bench" / "cerbos"  # npm --prefix: the installed binary
CERBOS_PACKAGE, CERBOS_VERSION = "@cerbos/cerbos-linux-x64", "0.55"
BOUNDARY = "mx.contoso.com"  # the sample policy's trusted authserv-id
BATCH = 100
ANSWER = b'{"decision":true}'
HEADERS = {"Content-Type": "application/json"}
DOCUMENT = {"type": "document", "id": "https://contoso.sharepoint.com/sites/finance/Shared%20Documents/q3.docx"}
TICK = os.sysconf("SC_CLK_TCK")

TARGET_X_CERBOS = 1.0  # single p50 and p99 at most Cerbos's
TARGET_X_CONSTANT = 1.10  # single p50 at most 1.1x the constant endpoint's
TARGET_BATCH_X_SINGLE = 3.0  # a batch of 100 at most 3x a single evaluation's p50
TARGET_P99_MS = 2.0  # single p99 under 2 ms
LABELS = {"constant": "constant endpoint (same stack, fixed answer)", "single": "mtotrust dlp.share, single",
          "mail": "mtotrust mail.deliver_untagged, single", "batch": f"mtotrust dlp.share, batch of {BATCH}",
          "cerbos": "Cerbos dlp.share, single", "cerbos_batch": f"Cerbos dlp.share, batch of {BATCH}"}


@dataclass(frozen=True)
class Row:
    """One row: which server, which path, the request bodies and the decisions each must answer."""

    key: str
    server: str
    path: str
    bodies: list[bytes]
    expected: list[Any]  # a bool per body, or (batch) a list of bools
    batch: bool = False


@dataclass
class Run:
    """One row's figures in one round."""

    p50_ms: float
    p99_ms: float
    per_s: float
    server_cpu_us: float
    client_cpu_us: float
    requests: int
    wrong: int
    answer_bytes: float
    errors: list[str] = field(default_factory=list)


class ClientError(RuntimeError):
    """A client could not finish its requests (connection refused or reset, a malformed answer)."""


class Connection(http.client.HTTPConnection):
    """An ``http.client.HTTPConnection`` that sends a request's head and body in one ``send`` (one TCP segment).

    http.client sends them with two, so with ``TCP_NODELAY`` a request is two segments: the server parses the head,
    starts the request, and waits for the body, which comes when this client's thread next gets the GIL. Gateways
    (Envoy, Go's net/http) write a small request at once; so does this client, so the server is not timed waiting
    for the client (measured: about 20 µs more server CPU a request, and a slower p50, with two segments).
    """

    _held: bytes | None = None

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes) and not encode_chunked:
            self._held, message_body = message_body, None  # sent by send(), with the head
        super().endheaders(message_body, encode_chunked=encode_chunked)

    def send(self, data: Any) -> None:
        if self._held is not None:
            data, self._held = bytes(data) + self._held, None
        super().send(data)


# ---------------------------------------------------------------------------------------------------------------
# the servers
# ---------------------------------------------------------------------------------------------------------------

async def constant_app(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
    """ASGI 3: read the whole body, answer ``{"decision":true}`` (the floor of the service's stack)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]})
    await send({"type": "http.response.body", "body": ANSWER})


def sample_engine() -> TrustEngine:
    """The engine ``mtotrust demo`` uses: the bundled sample snapshot and policy, the default decision cache."""
    from mtotrust.cli.demo import _sample_policy  # the demo's own loader of the sample policy

    return TrustEngine(Snapshot.sample(), _sample_policy(None))


def _serve(kind: str) -> None:
    """Child process: serve ``kind`` on a free port, print the port, and stop when stdin closes."""
    if kind == "constant":
        from mtotrust.service._server import AsgiServer

        server: Any = AsgiServer(constant_app, "127.0.0.1", 0)
    else:
        from mtotrust.service import Service

        server = Service(sample_engine(), host="127.0.0.1", port=0)
    port = server.start()[1]
    print(port, flush=True)
    sys.stdin.read()  # until the parent closes the pipe
    server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc/PID/task/TID/children``)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds (``utime + stime``, every thread) of ``pid`` and its descendants so far."""
    ticks = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICK


class Server:
    """A server in a child process: its port and pid; :meth:`stop` ends it.

    With ``port`` ``None`` the child is one of ours (``--serve``): it prints its port once it accepts requests and
    stops when its stdin closes; else (Cerbos) it listens on ``port`` once ``ready(port)``, and is terminated.
    """

    def __init__(self, command: list[str], port: int | None, ready: Callable[[int], bool], cwd: Path,
                 log: IO[bytes] | None = None) -> None:
        self._ours = port is None
        self._process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log)
        self.pid = self._process.pid
        if port is None:  # a Python child prints its port once it accepts requests
            assert self._process.stdout is not None
            line = self._process.stdout.readline()
            if not line.strip().isdigit():
                self.stop()
                raise RuntimeError(f"the server {command[-1]} did not start (it printed {line!r})")
            port = int(line)
        self.port = port
        deadline = time.monotonic() + 60
        while not ready(port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server {command[0]} did not become ready on port {port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Close the child's stdin (ours stop then) or terminate it (Cerbos), and wait for it to end."""
        with contextlib.suppress(OSError):
            assert self._process.stdin is not None
            self._process.stdin.close()
        if not self._ours:
            self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def python_server(kind: str) -> Server:
    return Server([sys.executable, "-m", "benchmarks.service", "--serve", kind], None, lambda _: True, ROOT)


def _cerbos_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/_cerbos/health")
        response = conn.getresponse()
        return response.status == 200 and b"SERVING" in response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def cerbos_server(binary: Path, log: IO[bytes]) -> Server:
    """Cerbos on free ports (HTTP, gRPC, its gops debug listener), the benchmark's policy; ready when SERVING."""
    http_port, grpc_port, debug_port = _free_port(), _free_port(), _free_port()
    command = [str(binary), "server", f"--config={CERBOS_SOURCE / 'config.yaml'}",
               f"--set=server.httpListenAddr=127.0.0.1:{http_port}",
               f"--set=server.grpcListenAddr=127.0.0.1:{grpc_port}",
               f"--set=storage.disk.directory={CERBOS_SOURCE / 'policies'}",
               f"--debug-listen-addr=127.0.0.1:{debug_port}", "--log-level=error"]
    return Server(command, http_port, _cerbos_healthy, CERBOS_SOURCE, log)


def find_cerbos(install: bool) -> tuple[Path | None, str]:
    """The Cerbos binary (installed with npm when ``install`` and needed), or ``None`` and why not."""
    package = CERBOS_HOME / "node_modules" / "@cerbos" / "cerbos-linux-x64"
    binary = package / "cerbos-linux-x64"

    def installed() -> str | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            version = str(json.loads((package / "package.json").read_text())["version"])
            if version.startswith(CERBOS_VERSION + ".") and os.access(binary, os.X_OK):
                return version
        return None

    version = installed()
    if version is not None:
        return binary, f"Cerbos {version} ({binary})"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, f"{CERBOS_PACKAGE} is for linux-x64 only, this is {platform.system()} {platform.machine()}"
    npm = shutil.which("npm")
    if npm is None:
        return None, f"npm is not installed, so {CERBOS_PACKAGE}@{CERBOS_VERSION} cannot be installed"
    if not install:
        return None, (f"Cerbos is not installed in {CERBOS_HOME} and --quick does not install it (a full run does, "
                      "with npm)")
    print(f"installing {CERBOS_PACKAGE}@{CERBOS_VERSION} into {CERBOS_HOME} with npm ...", flush=True)
    try:
        done = subprocess.run([npm, "install", "--prefix", str(CERBOS_HOME), "--no-audit", "--no-fund",
                               "--loglevel=error", f"{CERBOS_PACKAGE}@{CERBOS_VERSION}"],
                              capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"npm install {CERBOS_PACKAGE}@{CERBOS_VERSION} failed: {exc}"
    version = installed()
    if done.returncode != 0 or version is None:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return None, f"npm install {CERBOS_PACKAGE}@{CERBOS_VERSION} failed (exit {done.returncode}): {last}"
    return binary, f"Cerbos {version} ({binary}, just installed)"


# ---------------------------------------------------------------------------------------------------------------
# the requests
# ---------------------------------------------------------------------------------------------------------------

def subjects(engine: TrustEngine, seed: int) -> list[tuple[str, Trust, bool]]:
    """Every address of the sample with a mailbox, and a few unknown ones, shuffled: (address, trust, inside)."""
    addresses = sorted(u.mail for u in engine.snapshot.users.values() if u.mail)
    local = sorted(engine.snapshot.local_domains)[0]
    addresses += [f"{name}@{domain}" for name in ("alex.unknown", "billing")
                  for domain in (local, "partner.example", "mail.example.net")]
    random.Random(seed).shuffle(addresses)
    out = []
    for address in addresses:
        decision = engine.dlp(address)
        out.append((address, decision.trust, decision.inside_organization))
    return out


def _dump(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _subject(address: str, trust: Trust | None) -> dict[str, Any]:
    if trust is None:
        return {"type": "user", "id": address}
    return {"type": "user", "id": address, "properties": {"roles": ["user"], "trust": trust.value}}


def _auth_value(address: str, i: int) -> str:
    domain = address.rpartition("@")[2]
    if i % 5 == 4:  # only the sender's own relay vouches for it: not the boundary, so it does not count
        return f"mail.{domain}; dmarc=pass header.from={domain}"
    return (f"{BOUNDARY}; spf=pass (sender IP is 203.0.113.{i % 250}) smtp.mailfrom={domain}; dkim=pass "
            f"(signature was verified) header.d={domain}; dmarc=pass action=none header.from={domain}")


def build_rows(engine: TrustEngine, people: list[tuple[str, Trust, bool]], count: int, seed: int) -> list[Row]:
    """The rows, each with ``count`` request bodies (one per request of a round) and their expected answers.

    The Cerbos rows expect what mtotrust decides for the same subject: a difference would be a policy that is not
    equivalent, and counts as a wrong answer.
    """
    n = len(people)

    def single(i: int, cerbos: bool) -> bytes:
        address, trust, _ = people[i % n]
        return _dump({"subject": _subject(address, trust if cerbos else None), "action": {"name": "dlp.share"},
                      "resource": DOCUMENT, "context": {"client": "benchmarks.service"}})

    def batch(i: int, cerbos: bool) -> bytes:
        chosen = [people[(i * BATCH + j) % n] for j in range(BATCH)]
        items = [{"subject": _subject(address, trust if cerbos else None)} for address, trust, _ in chosen]
        return _dump({"action": {"name": "dlp.share"}, "resource": DOCUMENT, "evaluations": items})

    def mail(i: int) -> tuple[bytes, bool]:
        address = people[i % n][0]
        value = _auth_value(address, i)
        body = _dump({"subject": _subject(address, None), "action": {"name": "mail.deliver_untagged"},
                      "resource": {"type": "message", "id": f"<{i}.{seed}@bench.mtotrust.test>",
                                   "properties": {"authentication_results": [value]}}})
        return body, not engine.mail(address, [value]).tag_external

    inside = [people[i % n][2] for i in range(count)]
    inside_batches = [[people[(i * BATCH + j) % n][2] for j in range(BATCH)] for i in range(count)]
    singles = [single(i, False) for i in range(count)]
    mails = [mail(i) for i in range(count)]
    return [
        Row("constant", "constant", "/access/v1/evaluation", singles, [True] * count),
        Row("single", "mtotrust", "/access/v1/evaluation", singles, inside),
        Row("mail", "mtotrust", "/access/v1/evaluation", [body for body, _ in mails],
            [untagged for _, untagged in mails]),
        Row("batch", "mtotrust", "/access/v1/evaluations", [batch(i, False) for i in range(count)], inside_batches,
            batch=True),
        Row("cerbos", "cerbos", "/access/v1/evaluation", [single(i, True) for i in range(count)], inside),
        Row("cerbos_batch", "cerbos", "/access/v1/evaluations", [batch(i, True) for i in range(count)],
            inside_batches, batch=True),
    ]


def decisions(answer: bytes, batch: bool) -> Any:
    """The decision (or, for a batch, the list of decisions) an answer carries."""
    document = json.loads(answer)
    return [item["decision"] for item in document["evaluations"]] if batch else document["decision"]


# ---------------------------------------------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------------------------------------------

def drive(row: Row, server: Server, clients: int, warmup: int, requests: int) -> Run:
    """Send each client's warm-up, then its timed requests, over one keep-alive connection; check every answer.

    Raises:
        ClientError: a client could not finish (the connection failed, an answer was not HTTP).
    """
    per_client = warmup + requests
    ready, go = threading.Barrier(clients + 1), threading.Barrier(clients + 1)
    got: list[tuple[float, float, list[float], list[tuple[int, int, bytes]]]] = [(0.0, 0.0, [], [])] * clients
    failures: list[str] = []
    errors: list[str] = []

    def work(c: int) -> None:
        conn = Connection("127.0.0.1", server.port, timeout=60)
        answers: list[tuple[int, int, bytes]] = []
        latencies: list[float] = []
        clock = time.perf_counter
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first = c * per_client
            for k in range(first, first + warmup):
                conn.request("POST", row.path, row.bodies[k], HEADERS)
                response = conn.getresponse()
                answers.append((k, response.status, response.read()))
            ready.wait()
            go.wait()
            start = clock()
            for k in range(first + warmup, first + per_client):
                t0 = clock()
                conn.request("POST", row.path, row.bodies[k], HEADERS)
                response = conn.getresponse()
                data = response.read()
                latencies.append(clock() - t0)
                answers.append((k, response.status, data))
            got[c] = (start, clock(), latencies, answers)
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            failures.append(f"client {c}: {exc!r}")
            ready.abort()
            go.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    gc.collect()
    for t in threads:
        t.start()
    cpu_server = cpu_client = 0.0
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
        cpu_server, cpu_client = tree_cpu(server.pid), time.process_time()
        go.wait()
    for t in threads:
        t.join()
    cpu_server, cpu_client = tree_cpu(server.pid) - cpu_server, time.process_time() - cpu_client
    if failures:
        raise ClientError("; ".join(failures[:3]))
    latencies = sorted(x for g in got for x in g[2])
    n = len(latencies)
    wall = max(g[1] for g in got) - min(g[0] for g in got)
    wrong, errors, sizes = 0, [], []  # every answer, the warm-up's too
    for g in got:
        for k, status, data in g[3]:
            sizes.append(len(data))
            try:
                ok = status == 200 and decisions(data, row.batch) == row.expected[k]
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                wrong += 1
                if len(errors) < 3:
                    errors.append(f"request {k}: {status} {data[:200]!r}, expected {row.expected[k]!r}")
    return Run(p50_ms=latencies[n // 2] * 1e3, p99_ms=latencies[min(n - 1, int(n * 0.99))] * 1e3, per_s=n / wall,
               server_cpu_us=cpu_server / n * 1e6, client_cpu_us=cpu_client / n * 1e6, requests=n, wrong=wrong,
               answer_bytes=statistics.median(sizes), errors=errors)


def cerbos_batch_works(server: Server, row: Row) -> str | None:
    """``None`` when Cerbos answers its batch endpoint with one decision per item, else what it answered."""
    conn = Connection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", row.path, row.bodies[0], HEADERS)
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{row.path}: {exc!r}"
    finally:
        conn.close()
    try:
        if response.status == 200 and len(decisions(data, batch=True)) == BATCH:
            return None
    except (ValueError, KeyError, TypeError):
        pass
    return f"{row.path} answered {response.status} {data[:120]!r}"


# ---------------------------------------------------------------------------------------------------------------
# the rounds
# ---------------------------------------------------------------------------------------------------------------

def start_server(group: str, cerbos: Path | None, log: Path) -> Server:
    """Start the server of ``group`` (``constant``, ``mtotrust`` or ``cerbos``, whose log goes to ``log``)."""
    if group != "cerbos":
        return python_server(group)
    assert cerbos is not None
    with log.open("ab") as out:  # the child has its own descriptor once started
        return cerbos_server(cerbos, out)


def bench(args: argparse.Namespace, cerbos: Path | None) -> dict[str, Any]:
    engine = sample_engine()
    people = subjects(engine, args.seed)
    rows = build_rows(engine, people, args.clients * (args.warmup + args.requests), args.seed)
    if cerbos is None:
        rows = [row for row in rows if row.server != "cerbos"]
    groups = list(dict.fromkeys(row.server for row in rows))
    runs: dict[str, list[Run]] = {row.key: [] for row in rows}
    skipped: dict[str, str] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="service-", dir=OUT) as tmp:
        log = Path(tmp) / "cerbos.log"
        for r in range(args.rounds):
            for group in groups if r % 2 == 0 else reversed(groups):
                todo = [row for row in rows if row.server == group and row.key not in skipped]
                if not todo:
                    continue
                try:
                    server = start_server(group, cerbos, log)
                except RuntimeError as exc:
                    said = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                    reason = f"{exc} {' '.join(said)}".strip()
                    if group != "cerbos":
                        failed.append(f"{group}: {reason}")
                    for row in todo:  # Cerbos not starting skips its rows, as not installing it does
                        skipped[row.key] = reason
                    continue
                try:
                    for row in todo:
                        if row.key == "cerbos_batch" and (why := cerbos_batch_works(server, row)) is not None:
                            skipped[row.key] = why
                            continue
                        try:
                            run = drive(row, server, args.clients, args.warmup, args.requests)
                        except ClientError as exc:
                            failed.append(f"{row.key}, round {r + 1}: {exc}")
                            continue
                        runs[row.key].append(run)
                        print(f"  round {r + 1}/{args.rounds} {row.key:<12}: p50 {run.p50_ms:.2f} ms, p99 "
                              f"{run.p99_ms:.2f} ms, {run.per_s:,.0f} req/s, server CPU {run.server_cpu_us:.0f} "
                              f"µs/req, {run.wrong} wrong", file=sys.stderr, flush=True)
                finally:
                    server.stop()
    figures = ("p50_ms", "p99_ms", "per_s", "server_cpu_us", "client_cpu_us", "answer_bytes")
    summary: dict[str, Any] = {}
    for row in rows:
        done = runs[row.key]
        if done:
            summary[row.key] = {key: _spread([getattr(run, key) for run in done]) for key in figures}
            summary[row.key].update(request_bytes=statistics.median(len(b) for b in row.bodies),
                                    answers=sum(run.requests for run in done) + len(done) * args.clients * args.warmup,
                                    wrong=sum(run.wrong for run in done),
                                    errors=[e for run in done for e in run.errors][:3])
    return {"clients": args.clients, "requests": args.requests, "warmup": args.warmup, "rounds": args.rounds,
            "seed": args.seed, "subjects": len(people), "batch": BATCH, "dlp_inside_at": engine.policy.dlp.inside_at,
            "rows": summary, "skipped": skipped, "failed": failed,
            "runs": {key: [vars(run) for run in done] for key, done in runs.items()}, "ratios": ratios(runs)}


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratios(runs: dict[str, list[Run]]) -> dict[str, dict[str, float]]:
    """The targets' ratios: the median (and range) of each round's own ratio, for the rows that ran."""
    out = {}
    for name, top, bottom, figure in (("single_p50_x_cerbos", "single", "cerbos", "p50_ms"),
                                      ("single_p99_x_cerbos", "single", "cerbos", "p99_ms"),
                                      ("single_p50_x_constant", "single", "constant", "p50_ms"),
                                      ("batch_p50_x_single", "batch", "single", "p50_ms"),
                                      ("single_cpu_x_constant", "single", "constant", "server_cpu_us"),
                                      ("cerbos_cpu_x_single", "cerbos", "single", "server_cpu_us"),
                                      ("batch_p50_x_cerbos_batch", "batch", "cerbos_batch", "p50_ms")):
        pairs = list(zip(runs.get(top, []), runs.get(bottom, []), strict=False))
        if pairs and all(getattr(b, figure) > 0 for _, b in pairs):
            out[name] = _spread([getattr(a, figure) / getattr(b, figure) for a, b in pairs])
    return out


# ---------------------------------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------------------------------

def _cell(spread: dict[str, float], fmt: str) -> str:
    text = fmt.format(spread["median"])
    if spread["max"] > spread["min"]:
        text += f" [{fmt.format(spread['min'])}–{fmt.format(spread['max'])}]"
    return text


def print_table(res: dict[str, Any]) -> None:
    clients = f"{res['clients']} client{'s' if res['clients'] != 1 else ''}"
    print(f"\n== {clients} x {res['requests']} timed requests a row (after {res['warmup']} warm-up "
          f"each), one keep-alive http.client connection each, TCP_NODELAY; {res['subjects']} subjects (seed "
          f"{res['seed']}); median [min–max] of {res['rounds']} interleaved round(s) ==")
    print(f"{'row':<44} {'p50 ms':>18} {'p99 ms':>18} {'req/s':>20} {'server CPU µs/req':>18} "
          f"{'client CPU':>10} {'bytes in/out':>14}")
    for key, label in LABELS.items():
        r = res["rows"].get(key)
        if key in res["skipped"] or r is None:
            if key in res["skipped"]:
                print(f"{label:<44} skipped: {res['skipped'][key]}")
            continue
        print(f"{label:<44} {_cell(r['p50_ms'], '{:.2f}'):>18} {_cell(r['p99_ms'], '{:.2f}'):>18} "
              f"{_cell(r['per_s'], '{:,.0f}'):>20} {_cell(r['server_cpu_us'], '{:.0f}'):>18} "
              f"{r['client_cpu_us']['median']:>10.0f} {r['request_bytes']:>7,.0f}/{r['answer_bytes']['median']:<6,.0f}")
    for key in ("batch", "cerbos_batch"):
        r = res["rows"].get(key)
        if r is not None:
            print(f"  {LABELS[key]}: {r['per_s']['median'] * res['batch']:,.0f} decisions/s, server CPU "
                  f"{r['server_cpu_us']['median'] / res['batch']:.1f} µs a decision")
    x = res["ratios"]
    if "single_cpu_x_constant" in x:
        print(f"server CPU: mtotrust single {_cell(x['single_cpu_x_constant'], '{:.2f}')}× the constant endpoint's"
              + (f"; Cerbos single {_cell(x['cerbos_cpu_x_single'], '{:.2f}')}× mtotrust single's"
                 if "cerbos_cpu_x_single" in x else ""))
    if "batch_p50_x_cerbos_batch" in x:
        print(f"batch of {res['batch']}: mtotrust p50 {_cell(x['batch_p50_x_cerbos_batch'], '{:.2f}')}× Cerbos's")
    print("answers checked against the parent's engine (warm-up included): " + ", ".join(
        f"{key} {r['wrong']} wrong of {r['answers']:,}" for key, r in res["rows"].items()))


def print_targets(res: dict[str, Any]) -> None:
    print("\n== issue 15 targets (reported, not asserted; ratios: the median [range] of the rounds' own) ==")
    rows, x = res["rows"], res["ratios"]

    def line(ok: bool | None, text: str) -> None:
        print(f"  [{'—' if ok is None else ('met' if ok else 'MISSED'):>6}] {text}")

    for figure in ("p50", "p99"):
        name = f"single_{figure}_x_cerbos"
        if name in x:
            line(x[name]["median"] <= TARGET_X_CERBOS,
                 f"mtotrust single {figure} {_cell(x[name], '{:.2f}')}× Cerbos single's "
                 f"({rows['single'][figure + '_ms']['median']:.2f} vs {rows['cerbos'][figure + '_ms']['median']:.2f}"
                 f" ms; ≤ {TARGET_X_CERBOS:.0f}×)")
        else:
            line(None, f"mtotrust single {figure} ÷ Cerbos single's: Cerbos did not run")
    if "single_p50_x_constant" in x:
        r = x["single_p50_x_constant"]
        line(r["median"] <= TARGET_X_CONSTANT, f"mtotrust single p50 {_cell(r, '{:.2f}')}× the constant endpoint's "
             f"({rows['single']['p50_ms']['median']:.2f} vs {rows['constant']['p50_ms']['median']:.2f} ms; "
             f"≤ {TARGET_X_CONSTANT:.2f}×)")
    if "batch_p50_x_single" in x:
        r = x["batch_p50_x_single"]
        line(r["median"] <= TARGET_BATCH_X_SINGLE, f"batch of {res['batch']} p50 {_cell(r, '{:.2f}')}× single's "
             f"({rows['batch']['p50_ms']['median']:.2f} vs {rows['single']['p50_ms']['median']:.2f} ms; "
             f"≤ {TARGET_BATCH_X_SINGLE:.0f}×)")
    if "single" in rows:
        p99 = rows["single"]["p99_ms"]
        line(p99["median"] < TARGET_P99_MS, f"mtotrust single p99 {_cell(p99, '{:.2f}')} ms (< {TARGET_P99_MS:.0f} ms)")


def main(argv: list[str] | None = None) -> int:
    """Run the service benchmark and print its table."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        _serve(argv[1])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="client threads, one connection each (default 8)")
    parser.add_argument("--requests", type=int, default=None,
                        help="timed requests per client and row (default 250; quick 100)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per client (default 50; quick 20)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1 round of 100 requests a client (CI smoke, < 30 s)")
    parser.add_argument("--no-cerbos", action="store_true", help="skip the Cerbos rows")
    args = parser.parse_args(argv)
    args.requests = args.requests or (100 if args.quick else 250)
    args.warmup = args.warmup if args.warmup is not None else (20 if args.quick else 50)
    args.rounds = args.rounds or (1 if args.quick else 3)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"mtotrust service benchmark — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; Python "
          f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; mtotrust git {_git()}; "
          f"uvicorn {_version('uvicorn')}, httptools {_version('httptools')}, uvloop {_version('uvloop')}; "
          "each server in a child process on 127.0.0.1, one worker", flush=True)
    if args.no_cerbos:
        cerbos, note = None, "Cerbos rows skipped: --no-cerbos"
    else:
        cerbos, note = find_cerbos(install=not args.quick)
        if cerbos is None:
            note = f"Cerbos rows skipped: {note}"
    print(note, flush=True)
    res = bench(args, cerbos)
    res["cerbos"] = note
    print_table(res)
    print_targets(res)
    for key, r in res["rows"].items():
        for error in r["errors"]:
            print(f"  [FAILED] {key}: {error}")
    for failure in res["failed"]:
        print(f"  [FAILED] {failure}")
    write_results("service", [res], started)
    return 1 if res["failed"] or any(r["wrong"] for r in res["rows"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
