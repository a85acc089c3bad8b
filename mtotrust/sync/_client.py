"""The HTTP side of the Graph sync: credentials, and one GET with every retry rule (nothing about the pages).

- **Throttling**: 429, 503, 504 (and 502, a gateway's transient failure) wait ``Retry-After``, then the same GET
  again; without it, exponential backoff (https://learn.microsoft.com/graph/throttling). ``Retry-After`` is
  delay-seconds or an HTTP-date (https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3); Graph's own example sends
  a fraction (``2.128``), accepted too. A past date is no wait; an unreadable value falls back to the backoff.
- **Backoff** with full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
  ``random() * min(60, 1 * 2 ** n)`` seconds after the (n+1)-th failed try of a request.
- **Transport errors** (refused or dropped connection, timeout, a body cut short: any ``httpx.TransportError``;
  the whole body is read inside the loop) retry the same way.
- **Caps**: at most ``max_attempts`` tries of one request and ``max_wait`` seconds of waiting over the client's
  whole life. A wait that would pass either cap raises :class:`GraphUnavailableError` at once (never sleep, then
  fail), naming the path, the last status or error and both caps.
- **Priority**: every request sends ``x-ms-throttle-priority: low``. Graph's identity and access service (every
  request of the sync) throttles low-priority requests first; the header does not change the limits
  (https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits). A background sync
  should give way to interactive apps.
- **High usage**: the same service sends ``x-ms-throttle-limit-percentage`` on regular (not throttled) responses,
  only once the app used more than 0.8 of its quota (a token bucket of resource units per 10 seconds); despite the
  name the value is a fraction of the quota, 0.8 to 1.8 (same page). Before the next request we pause
  ``10 s * (value - 0.8)``, the value clamped to 0.8..1.8: 1 s at 0.9, 2 s at 1.0 (quota used up), a whole
  10-second window at 1.8. The pause counts as throttled and waited time; it is cut to what is left of
  ``max_wait`` and never fails a sync by itself (the server has refused nothing yet).
- **Refusals**: 401 asks the token source for a new token once, a second 401 is :class:`GraphAccessError`; 403 is
  :class:`GraphAccessError` naming the missing permission (:data:`PERMISSIONS`); 410, or a 4xx whose Graph error
  code is ``syncStateNotFound``/``resyncRequired``, is :class:`ResyncRequired`
  (https://learn.microsoft.com/graph/delta-query-overview); any other status is :class:`GraphUnavailableError`.
- **The token goes only to the host of ``graph_url``**: a link to another scheme, host or port is refused before
  any request, and every message has the token redacted.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import httpx

from mtotrust._version import __version__
from mtotrust.sync._errors import GraphAccessError, GraphUnavailableError, ResyncRequired, SyncUsageError

if TYPE_CHECKING:
    from types import TracebackType

    from azure.core.credentials import TokenCredential

__all__ = ["GRAPH_URL", "PERMISSIONS", "AzureToken", "Counters", "EnvToken", "GraphClient", "GraphResponse",
           "TokenSource", "token_source"]

GRAPH_URL = "https://graph.microsoft.com"
# Path prefix under /v1.0 -> the application permission a 403 there means is missing (least privilege).
PERMISSIONS: dict[str, str] = {
    "/organization": "Organization.Read.All",
    "/tenantRelationships/multiTenantOrganization": "MultiTenantOrganization.Read.All",
    "/policies/crossTenantAccessPolicy": "Policy.Read.All",
    "/users": "User.Read.All",
    "/tenantRelationships/findTenantInformationByDomainName": "CrossTenantInformation.ReadBasic.All",
}
RETRY_STATUSES = frozenset({429, 502, 503, 504})
THROTTLE_STATUSES = frozenset({429, 503, 504})  # waits on these count as throttled_seconds
RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired"})  # Graph error codes, compared casefolded
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0
USAGE_FLOOR, USAGE_CEILING, USAGE_WINDOW = 0.8, 1.8, 10.0
_SECONDS = re.compile(r"\d+(\.\d+)?")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # a bearer token's syntax (RFC 6750 section 2.1)
_TENANT = re.compile(r"[A-Za-z0-9.-]+")  # the characters azure-identity accepts in a tenant id
# Graph host -> the identity platform that issues its tokens (national clouds):
# https://learn.microsoft.com/graph/deployments#microsoft-graph-and-graph-explorer-service-root-endpoints
_AUTHORITIES = {"graph.microsoft.us": "login.microsoftonline.us", "dod-graph.microsoft.us": "login.microsoftonline.us",
                "microsoftgraph.chinacloudapi.cn": "login.chinacloudapi.cn"}
_FORMS = "--client-id with --certificate or --client-secret-env, --managed-identity, or --token-env"


class TokenSource(Protocol):
    """Where the bearer token comes from; ``refresh=True`` asks for a new one after Graph refused the last."""

    def token(self, *, refresh: bool = False) -> str:
        """Return the bearer token to send."""
        ...


class EnvToken:
    """The bearer token held in an environment variable, used as it is (``--token-env VAR``); it cannot refresh."""

    def __init__(self, var: str, environ: Mapping[str, str] = os.environ) -> None:
        self.var = var
        self._environ = environ

    def token(self, *, refresh: bool = False) -> str:  # noqa: ARG002 - the variable holds the only token there is
        """Return the variable's value (surrounding whitespace removed), or raise naming the variable."""
        value = self._environ.get(self.var, "").strip()
        if not value:
            msg = (f"the environment variable {self.var} (--token-env) is not set or empty; set it to a Graph "
                   f"bearer token, e.g. from `az account get-access-token --resource {GRAPH_URL}`")
            raise SyncUsageError(msg, value=self.var)
        return value


class AzureToken:
    """A token from any azure-identity (``azure.core``) credential for ``scope``; a refresh asks it again."""

    def __init__(self, credential: TokenCredential, scope: str) -> None:
        self.credential = credential
        self.scope = scope

    def token(self, *, refresh: bool = False) -> str:  # noqa: ARG002 - the credential decides whether its cache is stale
        """Return a token; a refused request is :class:`GraphAccessError` naming the credential's form."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        form = type(self.credential).__name__
        try:
            return self.credential.get_token(self.scope).token
        except ClientAuthenticationError as exc:
            reason = (str(exc.message or exc).splitlines() or [type(exc).__name__])[0]
            msg = (f"{form} could not get a token for {self.scope}: {reason}; check the tenant, the client id "
                   "and the credential, and that the app is registered in that tenant")
            raise GraphAccessError(msg) from exc
        except AzureError as exc:
            msg = f"{form} could not reach the identity platform for {self.scope}: {exc}; check the network"
            raise GraphUnavailableError(msg) from exc


def token_source(*, tenant: str, graph_url: str, client_id: str | None, certificate: str | None,
                 client_secret_env: str | None, managed_identity: bool, token_env: str | None) -> TokenSource:
    """Build the token source of exactly one credential form; anything else is :class:`SyncUsageError`."""
    forms = [name for name, given in (("--certificate", certificate is not None),
                                      ("--client-secret-env", client_secret_env is not None),
                                      ("--managed-identity", managed_identity), ("--token-env", token_env is not None))
             if given]
    if len(forms) != 1:
        msg = f"give exactly one credential form, not {' and '.join(forms) or 'none'}: {_FORMS}"
        raise SyncUsageError(msg, value=forms)
    if token_env is not None:
        if client_id is not None:
            raise SyncUsageError(f"--client-id is not used with --token-env; drop it ({_FORMS})", value=client_id)
        return EnvToken(token_env)
    if not _TENANT.fullmatch(tenant):
        raise SyncUsageError(f"--tenant {tenant!r} is not a tenant id; pass the directory (tenant) id", value=tenant)
    from azure.identity import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    scope = graph_url.rstrip("/") + "/.default"
    # A national cloud's Graph takes tokens from that cloud's identity platform (the public one by default).
    authority = {"authority": _AUTHORITIES[host]} if (host := httpx.URL(graph_url).host) in _AUTHORITIES else {}
    if managed_identity:  # client_id, when given, picks a user-assigned identity
        return AzureToken(ManagedIdentityCredential(client_id=client_id), scope)
    if client_id is None:
        raise SyncUsageError(f"{forms[0]} needs --client-id (the app registration's id): {_FORMS}", value=forms[0])
    if certificate is not None:
        try:
            return AzureToken(CertificateCredential(tenant, client_id, certificate_path=certificate, **authority),
                              scope)
        except (OSError, ValueError) as exc:
            msg = (f"--certificate {certificate!r} cannot be used ({type(exc).__name__}: {exc}); pass a PEM or "
                   "PKCS12 file that holds the certificate and its RSA private key")
            raise SyncUsageError(msg, value=certificate) from exc
    secret = os.environ.get(client_secret_env or "", "")
    if not secret:
        msg = f"the environment variable {client_secret_env} (--client-secret-env) is not set or empty; set it to " \
              "the app's client secret"
        raise SyncUsageError(msg, value=client_secret_env)
    return AzureToken(ClientSecretCredential(tenant, client_id, secret, **authority), scope)


@attrs.define
class Counters:
    """What the client did over its whole life (the sync's ``--json`` summary reports it)."""

    requests: int = 0  # every HTTP request sent, retries included
    retries: int = 0  # requests that repeated an earlier one
    throttled_seconds: float = 0.0  # time waited on 429/503/504 and on high-usage slow-downs
    waited_seconds: float = 0.0  # all waiting (what max_wait caps)


@attrs.frozen
class GraphResponse:
    """One successful answer: the absolute URL asked, its status, headers and whole body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """Return the decoded body; a body that is not JSON is :class:`GraphUnavailableError` naming the path."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            path = httpx.URL(self.url).path
            msg = f"Graph answered {path} with a body that is not JSON ({exc}); check --graph-url points at Graph"
            raise GraphUnavailableError(msg, url_path=path) from None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _graph_error(body: bytes) -> tuple[str, str]:
    """Return Graph's error code and message (``{"error": {"code", "message"}}``), empty when the body has none."""
    try:
        error = json.loads(body)["error"]
        return str(error.get("code", "")), str(error.get("message", ""))[:300]
    except (ValueError, TypeError, KeyError, AttributeError):
        return "", ""


def _described(body: bytes) -> str:
    code, message = _graph_error(body)
    return f"{code}: {message}" if code or message else "no Graph error body"


class GraphClient:
    """GETs against ``graph_url`` with the retry rules of this module; a context manager owning an httpx client."""

    def __init__(self, graph_url: str, tokens: TokenSource, *, max_attempts: int = 8, max_wait: float = 600.0,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 random: Callable[[], float] = random.random) -> None:
        self.graph_url = graph_url.rstrip("/")
        base = httpx.URL(self.graph_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise SyncUsageError(f"--graph-url {graph_url!r} is not an http(s) URL; e.g. {GRAPH_URL}", value=graph_url)
        if max_attempts < 1 or not max_wait >= 0:
            msg = f"--max-attempts {max_attempts} must be at least 1 and --max-wait {max_wait} at least 0"
            raise SyncUsageError(msg, value=(max_attempts, max_wait))
        self.max_attempts, self.max_wait = max_attempts, max_wait
        self.counters = Counters()
        self._tokens, self._sleep, self._clock, self._random = tokens, sleep, clock, random
        self._origin, self._host = _origin(base), base.netloc.decode("ascii")
        self._token: str | None = None
        self._sent: set[str] = set()  # every token used, redacted from every message
        self._pause = 0.0  # the high-usage slow-down owed before the next request
        self._http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, headers={
            "x-ms-throttle-priority": "low", "User-Agent": f"mtotrust/{__version__}", "Accept": "application/json"})

    def url(self, path: str) -> str:
        """Return the absolute URL of a Graph v1.0 path (``"/organization"``)."""
        return f"{self.graph_url}/v1.0{path}"

    def target(self, url: str) -> httpx.URL:
        """Return the absolute URL of a path or a link, refusing a link to another host than ``graph_url``'s.

        A sync checks every link with it before it keeps the link (a delta link is used by the next run).
        """
        target = self.url(url) if url.startswith("/") else url
        try:
            parsed = httpx.URL(target)
        except httpx.InvalidURL as exc:
            raise GraphUnavailableError(f"Graph gave a link that is not a URL ({exc}); refused") from None
        if _origin(parsed) != self._origin:
            where = f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}{parsed.path}"
            msg = f"the link {where} points to another host; refused, the token is sent only to {self._host}"
            raise GraphUnavailableError(msg, url_path=parsed.path)
        return parsed

    def get(self, url: str, *, missing_ok: bool = False) -> GraphResponse | None:
        """GET a path or an absolute link, whole body read, retrying as the module says (404 -> None if missing_ok)."""
        parsed = self.target(url)
        target = self.url(url) if url.startswith("/") else url  # a link exactly as Graph returned it
        path, tries, refreshed = parsed.path, 0, False
        while True:
            self._slow_down()
            tries += 1
            self.counters.requests += 1
            self.counters.retries += tries > 1
            try:
                response = self._send(target)
            except httpx.TransportError as exc:
                self._wait(path, tries, f"{type(exc).__name__}: {exc}", None, throttled=False)
                continue
            status = response.status_code
            if status in RETRY_STATUSES:
                last, after = f"HTTP {status} ({_described(response.content)})", response.headers.get("Retry-After")
                self._wait(path, tries, last, after, throttled=status in THROTTLE_STATUSES)
                continue
            self._pause = self._usage_pause(response.headers.get("x-ms-throttle-limit-percentage"))
            if status == 401 and not refreshed:
                refreshed = True
                self._token = self._checked(self._tokens.token(refresh=True))
                continue
            if 200 <= status < 300:
                return GraphResponse(target, status, response.headers, response.content)
            if status == 404 and missing_ok:
                return None
            raise self._refusal(path, status, response)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _checked(self, token: str) -> str:
        if not _TOKEN68.fullmatch(token):  # a header could not carry it; never echo it
            msg = f"the token from {type(self._tokens).__name__} is not a bearer token (RFC 6750 token68 syntax)"
            raise GraphAccessError(msg)
        self._sent.add(token)
        return token

    def _send(self, target: str) -> httpx.Response:
        if self._token is None:
            self._token = self._checked(self._tokens.token())
        headers = {"Authorization": f"Bearer {self._token}", "client-request-id": str(uuid.uuid4())}
        # send() without stream=True reads the whole body here, so a body cut short raises inside the retry loop.
        return self._http.send(self._http.build_request("GET", target, headers=headers))

    def _redact(self, text: str) -> str:
        for token in self._sent:
            text = text.replace(token, "[token]")
        return text

    def _slow_down(self) -> None:
        pause, self._pause = min(self._pause, self.max_wait - self.counters.waited_seconds), 0.0
        if pause > 0:
            self._sleep(pause)
            self.counters.waited_seconds += pause
            self.counters.throttled_seconds += pause

    @staticmethod
    def _usage_pause(value: str | None) -> float:
        try:
            used = float(value or "nan")
        except ValueError:
            return 0.0
        if math.isnan(used):
            return 0.0
        return USAGE_WINDOW * (min(max(used, USAGE_FLOOR), USAGE_CEILING) - USAGE_FLOOR)

    def _retry_after(self, value: str | None) -> float | None:
        """Return the seconds a ``Retry-After`` value asks for (0 for a past date), ``None`` when unreadable."""
        value = (value or "").strip()
        if _SECONDS.fullmatch(value):
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000": UTC with no offset information (RFC 5322)
            when = when.replace(tzinfo=datetime.UTC)
        return max(0.0, when.timestamp() - self._clock())

    def _wait(self, path: str, tries: int, last: str, retry_after: str | None, *, throttled: bool) -> None:
        """Wait before the next try of ``path``, or raise when that would pass a cap."""
        left = self.max_wait - self.counters.waited_seconds
        caps = (f"--max-attempts {self.max_attempts}, --max-wait {self.max_wait:g} s; "
                f"{self.counters.waited_seconds:.1f} s waited so far")
        if tries >= self.max_attempts:
            msg = f"GET {path} failed {tries} times (last: {last}); caps {caps}; raise --max-attempts or run later"
            raise GraphUnavailableError(self._redact(msg), url_path=path)
        delay = self._retry_after(retry_after)
        if delay is None:  # full jitter: random() * min(cap, base * 2 ** n)
            delay = self._random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (tries - 1))
        if delay > left:
            msg = (f"GET {path} failed (last: {last}) and the next try is {delay:.1f} s away, more than the "
                   f"{max(left, 0.0):.1f} s left of the waiting budget; caps {caps}; raise --max-wait or run later")
            raise GraphUnavailableError(self._redact(msg), url_path=path)
        self._sleep(delay)
        self.counters.waited_seconds += delay
        if throttled:
            self.counters.throttled_seconds += delay

    def _refusal(self, path: str, status: int, response: httpx.Response) -> Exception:
        """Return the exception a final non-2xx answer means."""
        error = self._redact(_described(response.content))
        if status == 410:
            return ResyncRequired(response.headers.get("Location"))
        if 400 <= status < 500 and _graph_error(response.content)[0].casefold() in RESYNC_CODES:
            return ResyncRequired(None)
        if status == 401:
            msg = (f"Graph refused the credentials for {path} twice (401 {error}), also after asking "
                   f"{type(self._tokens).__name__} for a new token; check the token is for {self._host}, not "
                   "expired, and issued for the right tenant")
            return GraphAccessError(msg, url_path=path)
        if status == 403:
            v1 = path.removeprefix("/v1.0")
            permission = next((PERMISSIONS[p] for p in sorted(PERMISSIONS, key=len, reverse=True)
                               if v1.startswith(p)), None)
            need = f"the application permission {permission}" if permission else "a permission this request needs"
            msg = (f"Graph refused {path} (403 {error}): the app lacks {need}; grant it with admin consent in the "
                   "app registration, then run again")
            return GraphAccessError(msg, url_path=path, permission=permission)
        msg = f"Graph answered {path} with HTTP {status} ({error}); check --graph-url, or run again later"
        return GraphUnavailableError(msg, url_path=path)
