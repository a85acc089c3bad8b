"""The Graph client's rules (``mtotrust.sync._client``): retries, caps, slow-downs, refusals and credentials.

Almost every test scripts the server's answers with ``httpx.MockTransport`` and injects ``sleep``, ``clock`` and
``random``, so nothing really sleeps: the recorded sleeps are the behaviour under test. One test drops a real
connection mid-body on a loopback server.
"""

from __future__ import annotations

import datetime
import email.utils
import http.server
import itertools
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from mtotrust._version import __version__
from mtotrust.sync._client import AzureToken, EnvToken, GraphClient, TokenSource, token_source
from mtotrust.sync._errors import GraphAccessError, GraphUnavailableError, ResyncRequired, SyncUsageError

GRAPH = "https://graph.microsoft.com"
NOW = 1_800_000_000.0  # the injected wall clock
TENANT = "00000000-0000-0000-0000-0000000000aa"
Answer = httpx.Response | httpx.TransportError


class Tokens:
    """A token source handing out ``tokens`` in turn (the last one again when they run out); records each call."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = tokens or ("token-1",)
        self.calls: list[bool] = []  # the ``refresh`` flag of each call

    def token(self, *, refresh: bool = False) -> str:
        self.calls.append(refresh)
        return self.tokens[min(len(self.calls), len(self.tokens)) - 1]


class Script:
    """A MockTransport handler: each request gets the next scripted answer (a response, or a transport error)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, httpx.TransportError):
            raise answer
        return answer


class Rig:
    """A GraphClient wired to a Script, recording its sleeps, with a fixed clock and scripted random values."""

    def __init__(self, *answers: Answer, max_attempts: int = 8, max_wait: float = 600.0,
                 randoms: tuple[float, ...] = (0.5,), tokens: TokenSource | None = None) -> None:
        self.script = Script(*answers)
        self.tokens = tokens if tokens is not None else Tokens()
        self.sleeps: list[float] = []
        values = itertools.cycle(randoms)
        self.client = GraphClient(GRAPH, self.tokens, max_attempts=max_attempts, max_wait=max_wait,
                                  transport=httpx.MockTransport(self.script), sleep=self.sleeps.append,
                                  clock=lambda: NOW, random=lambda: next(values))

    def counts(self) -> tuple[int, int, float, float]:
        """The client's counters as (requests, retries, throttled_seconds, waited_seconds)."""
        c = self.client.counters
        return c.requests, c.retries, c.throttled_seconds, c.waited_seconds


def ok(body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"value": []} if body is None else body, headers=headers)


def answer(status: int, *, retry_after: str | None = None, code: str = "SomeCode", message: str = "some message",
           headers: dict[str, str] | None = None) -> httpx.Response:
    extra = dict(headers or {}) | ({"Retry-After": retry_after} if retry_after is not None else {})
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=extra)


def http_date(offset: float) -> str:
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(NOW + offset, datetime.UTC), usegmt=True)


class CutBody(httpx.SyncByteStream):
    """A body that breaks off after its first bytes, as a dropped connection does."""

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"val'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class TestRequests:
    """What every request carries, and where it goes."""

    def test_path_is_joined_under_v1(self) -> None:
        """A path is requested under ``{graph_url}/v1.0`` and its JSON body is returned decoded."""
        rig = Rig(ok({"value": [{"id": "org"}]}))
        response = rig.client.get("/organization")
        assert response is not None
        assert [f"{GRAPH}/v1.0/organization"] == [str(r.url) for r in rig.script.requests]
        assert {"value": [{"id": "org"}]} == response.json()
        assert (1, 0, 0.0, 0.0) == rig.counts()

    def test_absolute_link_is_followed_as_returned(self) -> None:
        """An ``@odata.nextLink`` is requested exactly as Graph returned it, query included."""
        link = f"{GRAPH}/v1.0/users/delta?$skiptoken=abc%3D%3D"
        rig = Rig(ok())
        rig.client.get(link)
        assert [link] == [str(r.url) for r in rig.script.requests]

    def test_headers_on_every_request(self) -> None:
        """Every request, retries included, sends the bearer token, low priority, the user agent, JSON accept and
        a fresh client-request-id."""
        rig = Rig(answer(429, retry_after="1"), ok())
        rig.client.get("/organization")
        assert 2 == len(rig.script.requests)
        for request in rig.script.requests:
            assert "Bearer token-1" == request.headers["Authorization"]
            assert "low" == request.headers["x-ms-throttle-priority"]
            assert f"mtotrust/{__version__}" == request.headers["User-Agent"]
            assert "application/json" == request.headers["Accept"]
            assert 4 == uuid.UUID(request.headers["client-request-id"]).version
        assert 2 == len({r.headers["client-request-id"] for r in rig.script.requests})

    def test_body_that_is_not_json(self) -> None:
        """A 200 whose body is not JSON fails on ``json()`` naming the URL path."""
        rig = Rig(httpx.Response(200, text="<html>login</html>"))
        response = rig.client.get("/organization")
        assert response is not None
        with pytest.raises(GraphUnavailableError, match="/v1.0/organization") as caught:
            response.json()
        assert "/v1.0/organization" == caught.value.url_path

    @pytest.mark.parametrize("link", [
        "https://evil.example/v1.0/users/delta?$skiptoken=x",
        "http://graph.microsoft.com/v1.0/users/delta",
        "https://graph.microsoft.com:8443/v1.0/users/delta",
        "https://graph.microsoft.com.evil.example/v1.0/users/delta",
    ])
    def test_link_to_another_host_is_refused(self, link: str) -> None:
        """A link whose scheme, host or port is not graph_url's is refused before any request is sent."""
        rig = Rig(ok())
        with pytest.raises(GraphUnavailableError, match=r"points to another host; refused, the token is sent only"
                                                        r" to graph\.microsoft\.com"):
            rig.client.get(link)
        assert [] == rig.script.requests

    def test_default_port_spelled_out_is_the_same_host(self) -> None:
        """``https://graph.microsoft.com:443`` is graph_url's own origin and is followed."""
        rig = Rig(ok())
        assert rig.client.get("https://graph.microsoft.com:443/v1.0/users/delta") is not None
        assert 1 == len(rig.script.requests)


class TestThrottling:
    """429/503/504 wait what Retry-After says, else back off with full jitter, then repeat the same GET."""

    @pytest.mark.parametrize(("value", "expected"), [("7", 7.0), ("2.128", 2.128), ("0", 0.0)])
    def test_retry_after_seconds(self, value: str, expected: float) -> None:
        """Retry-After in seconds (Graph sends fractions too) is slept exactly, then the same URL is asked again."""
        rig = Rig(answer(429, retry_after=value), ok())
        assert rig.client.get("/users/delta") is not None
        assert [expected] == rig.sleeps
        assert 2 == len({id(r) for r in rig.script.requests})
        assert {f"{GRAPH}/v1.0/users/delta"} == {str(r.url) for r in rig.script.requests}
        assert (2, 1, expected, expected) == rig.counts()

    def test_retry_after_http_date(self) -> None:
        """Retry-After as an HTTP-date waits until that wall-clock time."""
        rig = Rig(answer(503, retry_after=http_date(30)), ok())
        rig.client.get("/organization")
        assert [30.0] == rig.sleeps

    def test_retry_after_date_in_the_past(self) -> None:
        """An HTTP-date already past means no wait."""
        rig = Rig(answer(429, retry_after=http_date(-120)), ok())
        rig.client.get("/organization")
        assert [0.0] == rig.sleeps

    @pytest.mark.parametrize("value", ["soon", "-5", "1e3", "", "Mon, 99 Foo 2030 99:99:99 GMT"])
    def test_unreadable_retry_after_falls_back_to_backoff(self, value: str) -> None:
        """A Retry-After that is neither seconds nor a date is ignored: the backoff decides (0.5 * 1 s here)."""
        rig = Rig(answer(429, retry_after=value), ok(), randoms=(0.5,))
        rig.client.get("/organization")
        assert [0.5] == rig.sleeps

    def test_backoff_grows_and_is_capped(self) -> None:
        """Without Retry-After the ceiling doubles from 1 s per failed try, up to 60 s."""
        rig = Rig(*[answer(503)] * 8, ok(), max_attempts=9, max_wait=10_000, randoms=(0.5,))
        rig.client.get("/organization")
        assert [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0] == rig.sleeps

    def test_backoff_is_jittered(self) -> None:
        """Each wait is ``random()`` times the ceiling (full jitter)."""
        rig = Rig(*[answer(504)] * 3, ok(), randoms=(0.1, 0.9, 0.0))
        rig.client.get("/organization")
        assert [pytest.approx(0.1), pytest.approx(1.8), 0.0] == rig.sleeps

    @pytest.mark.parametrize(("status", "throttled"), [(429, 3.0), (503, 3.0), (504, 3.0), (502, 0.0)])
    def test_throttled_time_counts_429_503_504(self, status: int, throttled: float) -> None:
        """Waits on 429/503/504 count as throttled time; a 502 is retried but is not throttling."""
        rig = Rig(answer(status, retry_after="3"), ok())
        rig.client.get("/organization")
        assert (2, 1, throttled, 3.0) == rig.counts()

    def test_other_5xx_is_not_retried(self) -> None:
        """A 500 fails at once, naming the status, Graph's error code and message."""
        rig = Rig(answer(500, code="InternalServerError", message="boom"))
        with pytest.raises(GraphUnavailableError, match=r"/v1.0/organization with HTTP 500 "
                                                        r"\(InternalServerError: boom\)"):
            rig.client.get("/organization")
        assert 1 == len(rig.script.requests)


class TestCaps:
    """At most max_attempts tries of one request and max_wait seconds of waiting over the client's life."""

    def test_attempts_cap(self) -> None:
        """The third failed try of three gives up without a last wait, naming the path, the last status and caps."""
        rig = Rig(*[answer(503, retry_after="1", code="ServiceUnavailable")] * 4, max_attempts=3)
        with pytest.raises(GraphUnavailableError) as caught:
            rig.client.get("/users/delta")
        text = str(caught.value)
        for part in ("/v1.0/users/delta", "3 times", "HTTP 503", "ServiceUnavailable", "--max-attempts 3",
                     "--max-wait 600 s"):
            assert part in text
        assert "/v1.0/users/delta" == caught.value.url_path
        assert ([1.0, 1.0], 3) == (rig.sleeps, len(rig.script.requests))

    def test_wait_longer_than_budget_fails_before_sleeping(self) -> None:
        """A Retry-After longer than what is left of max_wait fails at once instead of sleeping and then failing."""
        rig = Rig(answer(429, retry_after="30"), ok(), max_wait=10)
        with pytest.raises(GraphUnavailableError, match=r"30\.0 s away.*10\.0 s left.*--max-wait 10 s"):
            rig.client.get("/organization")
        assert ([], 1) == (rig.sleeps, len(rig.script.requests))

    def test_budget_spans_the_client_life(self) -> None:
        """Waits of earlier requests use up the budget: 6 s then 4 s fit in 10 s, one more second does not."""
        rig = Rig(answer(429, retry_after="6"), ok(), answer(429, retry_after="4"), ok(),
                  answer(429, retry_after="1"), ok(), max_wait=10)
        rig.client.get("/organization")
        rig.client.get("/tenantRelationships/multiTenantOrganization/tenants")
        with pytest.raises(GraphUnavailableError, match="/v1.0/policies/crossTenantAccessPolicy/partners"):
            rig.client.get("/policies/crossTenantAccessPolicy/partners")
        assert [6.0, 4.0] == rig.sleeps
        assert (5, 2, 10.0, 10.0) == rig.counts()

    @pytest.mark.parametrize(("attempts", "wait"), [(0, 600.0), (8, -1.0), (8, float("nan"))])
    def test_bad_caps_are_refused(self, attempts: int, wait: float) -> None:
        """max_attempts below 1 or a max_wait that is negative or not a number is a usage error."""
        with pytest.raises(SyncUsageError, match="--max-attempts"):
            GraphClient(GRAPH, Tokens(), max_attempts=attempts, max_wait=wait)


class TestTransportErrors:
    """A dropped connection, a timeout or a body cut short repeats the same GET."""

    @pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                       httpx.ReadError("reset"), httpx.RemoteProtocolError("cut"),
                                       httpx.PoolTimeout("busy"), httpx.WriteTimeout("slow")])
    def test_transport_error_then_success(self, error: httpx.TransportError) -> None:
        """After the error the same URL is asked again and its answer returned; the wait is backoff, not
        throttling."""
        link = f"{GRAPH}/v1.0/users/delta?$skiptoken=p2"
        rig = Rig(error, ok({"value": [1]}))
        response = rig.client.get(link)
        assert response is not None
        assert {"value": [1]} == response.json()
        assert [link, link] == [str(r.url) for r in rig.script.requests]
        assert (2, 1, 0.0, 0.5) == rig.counts()

    def test_body_cut_short_is_retried(self) -> None:
        """A 200 whose body breaks off is not returned half-read: the GET is repeated."""
        rig = Rig(httpx.Response(200, stream=CutBody()), ok({"value": [2]}))
        response = rig.client.get("/users/delta")
        assert response is not None
        assert {"value": [2]} == response.json()
        assert 2 == len(rig.script.requests)

    def test_transport_errors_past_the_cap(self) -> None:
        """Errors on every try give up at max_attempts, naming the error."""
        rig = Rig(*[httpx.ConnectError("connection refused")] * 2, max_attempts=2)
        with pytest.raises(GraphUnavailableError, match=r"ConnectError: connection refused.*--max-attempts 2"):
            rig.client.get("/organization")


class TestHighUsage:
    """``x-ms-throttle-limit-percentage`` (a fraction of the quota, 0.8-1.8) slows the next request down."""

    @pytest.mark.parametrize(("value", "pause"), [("0.9", 1.0), ("1.0", 2.0), ("1.8", 10.0), ("7", 10.0)])
    def test_usage_header_slows_the_next_request(self, value: str, pause: float) -> None:
        """The next request waits 10 s * (value - 0.8), at most 10 s, counted as throttled."""
        rig = Rig(ok(headers={"x-ms-throttle-limit-percentage": value}), ok())
        rig.client.get("/users/delta")
        assert [] == rig.sleeps
        rig.client.get("/users/delta")
        assert [pytest.approx(pause)] == rig.sleeps
        assert pytest.approx((2, 0, pause, pause)) == rig.counts()

    @pytest.mark.parametrize("value", ["0.5", "high", "nan"])
    def test_low_or_unreadable_usage_does_not_slow_down(self, value: str) -> None:
        """A value at or below 0.8, or one that is not a number, changes nothing."""
        rig = Rig(ok(headers={"x-ms-throttle-limit-percentage": value}), ok())
        rig.client.get("/users/delta")
        rig.client.get("/users/delta")
        assert [] == rig.sleeps

    def test_pause_is_cut_to_the_budget(self) -> None:
        """The slow-down never fails a sync: it shrinks to what is left of max_wait."""
        rig = Rig(ok(headers={"x-ms-throttle-limit-percentage": "1.8"}), ok(), max_wait=1.5)
        rig.client.get("/users/delta")
        assert rig.client.get("/users/delta") is not None
        assert [1.5] == rig.sleeps


class TestRefusals:
    """401, 403, 404, 410 and Graph's resync error codes."""

    def test_401_refreshes_once(self) -> None:
        """A 401 asks the token source for a new token (refresh=True) and retries with it."""
        tokens = Tokens("old-token", "new-token")
        rig = Rig(answer(401, code="InvalidAuthenticationToken"), ok(), tokens=tokens)
        assert rig.client.get("/organization") is not None
        assert [False, True] == tokens.calls
        assert ["Bearer old-token", "Bearer new-token"] == [r.headers["Authorization"] for r in rig.script.requests]
        assert (2, 1) == rig.counts()[:2]

    def test_401_twice_is_an_access_error(self) -> None:
        """A second 401 after the refresh is GraphAccessError naming the path and Graph's error."""
        tokens = Tokens()
        rig = Rig(answer(401, code="InvalidAuthenticationToken"), answer(401, code="InvalidAuthenticationToken"),
                  tokens=tokens)
        with pytest.raises(GraphAccessError, match=r"/v1.0/organization twice \(401 InvalidAuthenticationToken"):
            rig.client.get("/organization")
        assert [False, True] == tokens.calls

    @pytest.mark.parametrize(("path", "permission"), [
        ("/organization", "Organization.Read.All"),
        ("/tenantRelationships/multiTenantOrganization/tenants", "MultiTenantOrganization.Read.All"),
        ("/policies/crossTenantAccessPolicy/partners", "Policy.Read.All"),
        ("/users/delta?$select=id,mail", "User.Read.All"),
        ("/tenantRelationships/findTenantInformationByDomainName(domainName='contoso.com')",
         "CrossTenantInformation.ReadBasic.All"),
    ])
    def test_403_names_the_permission(self, path: str, permission: str) -> None:
        """A 403 is GraphAccessError naming the application permission that request needs and Graph's error."""
        rig = Rig(answer(403, code="Authorization_RequestDenied", message="Insufficient privileges"))
        with pytest.raises(GraphAccessError) as caught:
            rig.client.get(path)
        assert permission == caught.value.permission
        assert permission in str(caught.value)
        assert "Authorization_RequestDenied: Insufficient privileges" in str(caught.value)
        assert 2 == caught.value.exit_code

    def test_410_is_a_resync_with_its_location(self) -> None:
        """A 410 on the delta link asks for a full resync, carrying the Location Graph gave."""
        location = f"{GRAPH}/v1.0/users/delta?$deltatoken="
        rig = Rig(answer(410, headers={"Location": location}))
        with pytest.raises(ResyncRequired) as caught:
            rig.client.get(f"{GRAPH}/v1.0/users/delta?$deltatoken=old")
        assert location == caught.value.location

    @pytest.mark.parametrize("code", ["syncStateNotFound", "resyncRequired"])
    def test_resync_error_codes(self, code: str) -> None:
        """A 400 whose Graph error code says the sync state is gone asks for a full resync (no Location)."""
        rig = Rig(answer(400, code=code))
        with pytest.raises(ResyncRequired) as caught:
            rig.client.get(f"{GRAPH}/v1.0/users/delta?$deltatoken=old")
        assert caught.value.location is None

    def test_other_400_is_not_a_resync(self) -> None:
        """A 400 with another code is an unusable response, naming it."""
        rig = Rig(answer(400, code="BadRequest", message="Invalid filter"))
        with pytest.raises(GraphUnavailableError, match="BadRequest: Invalid filter"):
            rig.client.get("/users/delta")

    def test_404_missing_ok(self) -> None:
        """A 404 with missing_ok is None (a domain with no tenant)."""
        rig = Rig(answer(404, code="Request_ResourceNotFound"))
        path = "/tenantRelationships/findTenantInformationByDomainName(domainName='nowhere.example')"
        assert rig.client.get(path, missing_ok=True) is None

    def test_404_without_missing_ok(self) -> None:
        """A 404 where an answer is required is GraphUnavailableError naming the status and path."""
        rig = Rig(answer(404, code="Request_ResourceNotFound"))
        with pytest.raises(GraphUnavailableError, match=r"/v1.0/organization with HTTP 404") as caught:
            rig.client.get("/organization")
        assert 1 == caught.value.exit_code


TOKEN68 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"


def echoing(kind: str) -> Script:
    """A server that echoes the bearer token it got into every error it returns, for each way a GET can fail."""

    class Echo(Script):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            token = request.headers["Authorization"]
            if kind == "transport":
                raise httpx.ReadError(f"reset while sending {token}")
            status = {"401": 401, "403": 403, "500": 500, "400": 400, "throttled": 429}[kind]
            return answer(status, retry_after="1", code=f"Code{token}", message=f"you sent {token}",
                          headers={"Location": "x"})

    return Echo()


class TestTokenSecrecy:
    """The bearer token never appears in an exception message."""

    @given(token=st.text(alphabet=TOKEN68, min_size=16, max_size=80).map(lambda t: f"eyJ{t}"),
           kind=st.sampled_from(["401", "403", "500", "400", "throttled", "transport"]))
    def test_token_never_in_messages(self, token: str, kind: str) -> None:
        """Whatever the failure, and even when Graph echoes the token back, the message does not carry it.

        Tokens start as a JWT does (``eyJ``): a random one such as ``/v1.0/users/delt`` is part of the path a
        message rightly names."""
        script = echoing(kind)
        sleeps: list[float] = []
        with (GraphClient(GRAPH, Tokens(token), max_attempts=2, transport=httpx.MockTransport(script),
                          sleep=sleeps.append, random=lambda: 0.0) as client,
              pytest.raises((GraphAccessError, GraphUnavailableError)) as caught):
            client.get("/users/delta")
        assert script.requests
        assert token not in str(caught.value)

    def test_malformed_token_is_refused_unsent(self) -> None:
        """A token a header cannot carry (a newline) is refused before any request, without echoing it."""
        rig = Rig(ok(), tokens=Tokens("secret-value\nsecond-line"))
        with pytest.raises(GraphAccessError, match="not a bearer token") as caught:
            rig.client.get("/organization")
        assert "secret-value" not in str(caught.value)
        assert [] == rig.script.requests


class TestEnvToken:
    """``--token-env VAR``: the token is the variable's value."""

    def test_value_is_the_token(self) -> None:
        """The variable's value is returned (without a trailing newline a shell may add)."""
        assert "eyJ0eXAi.abc" == EnvToken("GRAPH_TOKEN", {"GRAPH_TOKEN": "eyJ0eXAi.abc\n"}).token()

    @pytest.mark.parametrize("environ", [{}, {"GRAPH_TOKEN": ""}, {"GRAPH_TOKEN": "  \n"}])
    def test_missing_or_empty_variable(self, environ: dict[str, str]) -> None:
        """A missing or empty variable is SyncUsageError naming it."""
        with pytest.raises(SyncUsageError, match="GRAPH_TOKEN") as caught:
            EnvToken("GRAPH_TOKEN", environ).token()
        assert "GRAPH_TOKEN" == caught.value.value


def certificate_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Write a self-signed RSA certificate with its private key as one PEM file, as azure-identity reads it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtotrust-test")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    path = tmp_path_factory.mktemp("cert") / "app.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def source(**options: str | bool | None) -> TokenSource:
    """Call token_source with every option absent except those given."""
    base: dict[str, str | bool | None] = {"client_id": None, "certificate": None, "client_secret_env": None,
                                          "managed_identity": False, "token_env": None}
    merged = base | options
    return token_source(tenant=TENANT, graph_url=GRAPH, client_id=_opt(merged["client_id"]),
                        certificate=_opt(merged["certificate"]), client_secret_env=_opt(merged["client_secret_env"]),
                        managed_identity=bool(merged["managed_identity"]), token_env=_opt(merged["token_env"]))


def _opt(value: str | bool | None) -> str | None:
    assert not isinstance(value, bool)
    return value


class TestTokenSource:
    """Exactly one credential form, each built into the right credential."""

    @pytest.mark.parametrize("options", [
        {},
        {"client_id": "app"},
        {"managed_identity": True, "token_env": "T"},
        {"client_id": "app", "certificate": "c.pem", "client_secret_env": "S"},
    ])
    def test_zero_or_two_forms_are_refused(self, options: dict[str, str | bool]) -> None:
        """No form, or more than one, is SyncUsageError naming every option a user can choose from."""
        with pytest.raises(SyncUsageError) as caught:
            source(**options)
        for option in ("--client-id with --certificate or --client-secret-env", "--managed-identity",
                       "--token-env"):
            assert option in str(caught.value)

    def test_token_env(self) -> None:
        """``--token-env`` reads the named variable as it is."""
        tokens = source(token_env="GRAPH_TOKEN")
        assert isinstance(tokens, EnvToken)
        assert "GRAPH_TOKEN" == tokens.var

    def test_managed_identity(self) -> None:
        """``--managed-identity`` (optionally with a user-assigned client id) uses ManagedIdentityCredential."""
        tokens = source(managed_identity=True, client_id="user-assigned-id")
        assert isinstance(tokens, AzureToken)
        assert isinstance(tokens.credential, ManagedIdentityCredential)
        assert f"{GRAPH}/.default" == tokens.scope

    def test_client_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``--client-id`` with ``--client-secret-env`` uses ClientSecretCredential with the variable's secret."""
        monkeypatch.setenv("APP_SECRET", "s3cret-value")
        tokens = source(client_id="app-id", client_secret_env="APP_SECRET")
        assert isinstance(tokens, AzureToken)
        assert isinstance(tokens.credential, ClientSecretCredential)

    @pytest.mark.parametrize(("graph_url", "authority"), [
        ("https://graph.microsoft.com", "https://login.microsoftonline.com"),
        ("https://graph.microsoft.us", "https://login.microsoftonline.us"),
        ("https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
        ("https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    ])
    def test_national_cloud_authority(self, monkeypatch: pytest.MonkeyPatch, graph_url: str, authority: str) -> None:
        """A national cloud's Graph gets its token from that cloud's identity platform, for its own scope."""
        monkeypatch.setenv("APP_SECRET", "s3cret-value")
        tokens = token_source(tenant=TENANT, graph_url=graph_url, client_id="app-id", certificate=None,
                              client_secret_env="APP_SECRET", managed_identity=False, token_env=None)
        assert isinstance(tokens, AzureToken)
        assert (authority, f"{graph_url}/.default") == (tokens.credential._authority, tokens.scope)  # type: ignore[attr-defined]

    def test_client_secret_variable_missing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A missing secret variable is SyncUsageError naming it."""
        monkeypatch.delenv("APP_SECRET", raising=False)
        with pytest.raises(SyncUsageError, match="APP_SECRET"):
            source(client_id="app-id", client_secret_env="APP_SECRET")

    def test_certificate(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        """``--client-id`` with ``--certificate`` uses CertificateCredential on that PEM file."""
        tokens = source(client_id="app-id", certificate=certificate_file(tmp_path_factory))
        assert isinstance(tokens, AzureToken)
        assert isinstance(tokens.credential, CertificateCredential)

    def test_unreadable_certificate(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        """A certificate path that cannot be read is SyncUsageError naming the path."""
        missing = str(tmp_path_factory.mktemp("none") / "missing.pem")
        with pytest.raises(SyncUsageError, match="missing.pem"):
            source(client_id="app-id", certificate=missing)

    @pytest.mark.parametrize("form", [{"certificate": "c.pem"}, {"client_secret_env": "S"}])
    def test_app_forms_need_a_client_id(self, form: dict[str, str]) -> None:
        """A certificate or a secret without ``--client-id`` is refused naming it."""
        with pytest.raises(SyncUsageError, match="needs --client-id"):
            source(**form)

    def test_refused_token_request(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A token request the identity platform refuses is GraphAccessError naming the form, never the secret."""
        credential = ClientSecretCredential(TENANT, "app-id", "s3cret-value")

        def refuse(*scopes: str, **kwargs: object) -> object:
            raise ClientAuthenticationError(message="AADSTS7000215: Invalid client secret provided.")

        monkeypatch.setattr(credential, "get_token", refuse)
        with pytest.raises(GraphAccessError, match="ClientSecretCredential could not get a token.*AADSTS7000215") \
                as caught:
            AzureToken(credential, f"{GRAPH}/.default").token()
        assert "s3cret-value" not in str(caught.value)


class DropOnceServer(http.server.ThreadingHTTPServer):
    """A loopback server whose first answer sends all its headers but only part of the body, then hangs up."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), DropOnceHandler)
        self.paths: list[str] = []


class DropOnceHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, DropOnceServer)
        server.paths.append(self.path)
        body = b'{"value": [{"id": "u1"}, {"id": "u2"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if len(server.paths) == 1:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


class TestLoopback:
    """A real connection dropped mid-body."""

    def test_truncated_body_on_a_real_socket_is_retried(self) -> None:
        """A real server that closes the connection halfway through the body: the client retries the same GET."""
        server = DropOnceServer()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        sleeps: list[float] = []
        try:
            # An explicit transport: no proxy from the environment stands between the client and the loopback.
            with GraphClient(f"http://127.0.0.1:{server.server_address[1]}", Tokens(), transport=httpx.HTTPTransport(),
                             sleep=sleeps.append, random=lambda: 0.0, timeout=5) as client:
                response = client.get("/users/delta?$skiptoken=p2")
        finally:
            server.shutdown()
            server.server_close()
        assert response is not None
        assert {"value": [{"id": "u1"}, {"id": "u2"}]} == response.json()
        assert ["/v1.0/users/delta?$skiptoken=p2"] * 2 == server.paths
        assert (2, 1) == (client.counters.requests, client.counters.retries)
