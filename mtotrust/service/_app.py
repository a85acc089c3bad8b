"""The decision service as an ASGI 3 application: routing, the token, body limits, errors, metrics.

A plain ASGI callable rather than a framework: a request is a route lookup, a body read, ``json.loads``, one
decision and ``json.dumps`` (the framework measured slower; see docs/performance.md). Decisions are synchronous
and take microseconds, so they run on the event loop's thread. Every failure answers JSON ``{"error": ...}``; a
traceback goes to the service's log (without the request body), never to a client.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from mtotrust._engine import TrustEngine
from mtotrust.service import _protocol
from mtotrust.service._metrics import CONTENT_TYPE, Metrics

__all__ = ["MAX_BODY", "DecisionApp"]

MAX_BODY = 1 << 20
"""The largest request body read (1 MiB); a larger one is ``413``."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_Handler = Callable[[Scope, bytes], tuple[int, bytes, bytes]]  # (scope, body) -> (status, content type, payload)

_log = logging.getLogger("mtotrust.service")
_access = logging.getLogger("mtotrust.service.access")
_JSON = b"application/json"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?").fullmatch
_DISCOVERY = "/.well-known/authzen-configuration"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_OTHER = "other"  # the metrics' endpoint label for a path that is no endpoint (bounded label values)


class _HttpError(Exception):
    """Answer the request now with this status and JSON error message (raised while reading it)."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class DecisionApp:
    """The ASGI application ``mtotrust serve`` runs over ``engine``.

    Args:
        engine: decides every request (``update`` it to reload; requests in flight keep their state).
        token: when given, every endpoint but ``/healthz`` needs ``Authorization: Bearer <token>``.
        public_url: the base URL the discovery document names (behind a proxy); default: from the request.
        access_log: log one line per request to the ``mtotrust.service.access`` logger (method, path, status,
            milliseconds, request id: never a body, so never an identity).
        allow_origins: browser origins (``https://addin.contoso.com``) allowed to call the service (CORS): their
            preflight ``OPTIONS`` is answered, and every answer to them names the origin.
    """

    def __init__(self, engine: TrustEngine, *, token: str | None = None, public_url: str | None = None,
                 access_log: bool = False, allow_origins: Collection[str] = ()) -> None:
        self.engine = engine
        self._origins = frozenset(origin.rstrip("/").encode() for origin in allow_origins)
        self.metrics = Metrics()
        self._token = None if token is None else token.encode()
        self._public_url = None if public_url is None else public_url.rstrip("/")
        self._access_log = access_log
        self._routes: dict[str, tuple[bytes, _Handler, bool]] = {
            "/access/v1/evaluation": (b"POST", self._json(_protocol.evaluation), True),
            "/access/v1/evaluations": (b"POST", self._json(_protocol.evaluations), True),
            "/v1/check": (b"POST", self._json(_protocol.check), True),
            _DISCOVERY: (b"GET", self._discovery, True),
            "/healthz": (b"GET", self._health, False),
            "/metrics": (b"GET", self._metrics, True),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request (ASGI 3); other scope types are ignored."""
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        path = scope["path"]
        headers = dict(scope["headers"])  # names are lower-case bytes (ASGI); a repeated name keeps its last value
        request_id = headers.get(b"x-request-id")
        origin = headers.get(b"origin")
        cors = origin is not None and origin in self._origins
        extra: tuple[tuple[bytes, bytes], ...] = ()
        endpoint = path if path in self._routes else _OTHER
        try:
            if cors and scope["method"] == "OPTIONS" and path in self._routes:
                status, content_type, payload, extra = 204, b"", b"", self._preflight(path)
            else:
                status, content_type, payload = await self._answer(scope, headers, receive)
        except _HttpError as answer:
            status, content_type, payload, extra = answer.status, _JSON, _error(answer.message), answer.headers
        except Exception:  # noqa: BLE001 - a client gets a JSON 500, the log gets the traceback (no body)
            _log.exception("mtotrust serve: internal error answering %s", endpoint)
            status, content_type, payload = 500, _JSON, _error("internal error: see the service's log")
        response = [*extra]
        if status != 204:  # a 204 has neither (RFC 9110 section 8.6)
            response += [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
        if request_id is not None:
            response.append((b"x-request-id", request_id))
        if self._origins:
            response.append((b"vary", b"origin"))  # the answer depends on Origin, for every cache in between
        if cors:
            assert origin is not None
            response += [(b"access-control-allow-origin", origin), (b"access-control-expose-headers", b"x-request-id")]
        await send({"type": "http.response.start", "status": status, "headers": response})
        await send({"type": "http.response.body", "body": payload if scope["method"] != "HEAD" else b""})
        elapsed = time.perf_counter() - start
        self.metrics.observe(endpoint, status, elapsed)
        if self._access_log:
            _access.info("%s %s %d %.3fms id=%s", scope["method"], endpoint, status, elapsed * 1000,
                         request_id.decode("latin-1") if request_id is not None else "-")

    async def _answer(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive) -> tuple[int, bytes, bytes]:
        """Route, check the method and the token, read the body, and return the endpoint's answer."""
        path = scope["path"]
        route = self._routes.get(path)
        if route is None:
            raise _HttpError(404, f"no endpoint {_protocol.shown(path)}: see GET {_DISCOVERY}")
        method, handle, guarded = route
        if scope["method"].encode() != method and not (method == b"GET" and scope["method"] == "HEAD"):
            allow = b"GET, HEAD" if method == b"GET" else method
            raise _HttpError(405, f"{path} takes {allow.decode()}, not {scope['method']}", ((b"allow", allow),))
        if guarded and self._token is not None and not _token_matches(headers.get(b"authorization"), self._token):
            raise _HttpError(401, "missing or wrong bearer token: send Authorization: Bearer <token>",
                             ((b"www-authenticate", b'Bearer realm="mtotrust"'),))
        body = await _read(headers, receive) if method == b"POST" else b""
        return handle(scope, body)

    def _preflight(self, path: str) -> tuple[tuple[bytes, bytes], ...]:
        """Return the headers that answer a browser's CORS preflight for ``path`` (from an allowed origin)."""
        return ((b"access-control-allow-methods", self._routes[path][0]),
                (b"access-control-allow-headers", b"authorization, content-type, x-request-id"),
                (b"access-control-max-age", b"600"))

    # -- the endpoints ---------------------------------------------------------------------------------------

    def _json(self, answer: Callable[[TrustEngine, object], object]) -> _Handler:
        """Return an endpoint that decodes the body, answers ``answer(engine, body)`` and encodes the result."""

        def handle(scope: Scope, body: bytes) -> tuple[int, bytes, bytes]:  # noqa: ARG001 - one signature for all
            try:
                request = json.loads(body.decode(), parse_constant=_no_constant)  # UTF-8 (I-JSON)
            except ValueError as exc:  # UnicodeDecodeError included
                raise _HttpError(400, f"the request body is not JSON: {exc}") from None
            except RecursionError:
                raise _HttpError(400, "the request body nests too deeply to be read: send flat JSON") from None
            try:
                result = answer(self.engine, request)
            except _protocol.RequestError as exc:
                raise _HttpError(exc.status, exc.message) from None
            try:
                return 200, _JSON, _encode(result)
            except UnicodeEncodeError as exc:  # a lone surrogate (\ud800) came in a string and is echoed
                raise _HttpError(400, f"the request has a string with a lone surrogate ({exc.object[exc.start]!r}), "
                                 "which I-JSON (RFC 7493) forbids: send valid Unicode") from None

        return handle

    def _discovery(self, scope: Scope, body: bytes) -> tuple[int, bytes, bytes]:  # noqa: ARG002
        base = self._public_url or _base_url(scope)
        document = {"policy_decision_point": base, "access_evaluation_endpoint": base + "/access/v1/evaluation",
                    "access_evaluations_endpoint": base + "/access/v1/evaluations"}
        return 200, _JSON, json.dumps(document).encode()

    def _health(self, scope: Scope, body: bytes) -> tuple[int, bytes, bytes]:  # noqa: ARG002
        engine = self.engine.pinned()
        stale = engine.policy.is_stale(engine.snapshot.taken_at)
        answer = {"status": "stale" if stale else "ok", "snapshot_id": engine.snapshot.id,
                  "snapshot_age_seconds": round(time.time() - engine.snapshot.taken_at.timestamp(), 3)}
        return 503 if stale else 200, _JSON, json.dumps(answer).encode()

    def _metrics(self, scope: Scope, body: bytes) -> tuple[int, bytes, bytes]:  # noqa: ARG002
        return 200, CONTENT_TYPE, self.metrics.render(self.engine)


async def _read(headers: dict[bytes, bytes], receive: Receive) -> bytes:
    """Read a JSON request body of at most :data:`MAX_BODY` bytes."""
    content_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
    if content_type != _JSON:
        shown = headers.get(b"content-type", b"").decode("latin-1")[:80] or "none"
        raise _HttpError(400, f"Content-Type {shown!r} is not application/json: send the request as JSON")
    length = headers.get(b"content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise _HttpError(413, f"the request body is {int(length)} bytes; the most is {MAX_BODY} (1 MiB): split it")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _HttpError(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _HttpError(413, f"the request body is over {MAX_BODY} bytes (1 MiB): split it")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _token_matches(given: bytes | None, expected: bytes) -> bool:
    """Whether ``Authorization`` is ``Bearer <expected>`` (the scheme in any case), compared in constant time."""
    scheme, _, token = (given or b"").strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected)


def _base_url(scope: Scope) -> str:
    """Return the base URL the client reached: from the ``Host`` header when it is a host name, else the socket."""
    host = next((value for name, value in scope["headers"] if name == b"host"), b"").decode("latin-1")
    if not _HOST(host):
        server = scope.get("server") or ("127.0.0.1", 8181)
        host = f"[{server[0]}]:{server[1]}" if ":" in server[0] else f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _no_constant(name: str) -> object:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``: Python's ``json`` reads them, JSON (RFC 8259) has none."""
    raise ValueError(f"{name} is not a JSON value")


def _encode(result: object) -> bytes:
    """Return the JSON of an answer; an object a list repeats (a batch's equal outcomes) is encoded once."""
    if isinstance(result, list):
        return _encode_list(result).encode()
    if isinstance(result, dict) and all(isinstance(value, list) for value in result.values()):
        return ("{" + ",".join(f"{_ENCODER(key)}:{_encode_list(value)}" for key, value in result.items())
                + "}").encode()
    return _ENCODER(result).encode()


def _encode_list(items: list[Any]) -> str:
    done: dict[int, str] = {}
    parts = []
    for item in items:
        text = done.get(id(item))
        if text is None:
            text = done[id(item)] = _ENCODER(item)
        parts.append(text)
    return "[" + ",".join(parts) + "]"


def _error(message: str) -> bytes:
    return json.dumps({"error": message}, ensure_ascii=False).encode()
