"""``mtotrust.service``: an OpenID AuthZEN 1.0 decision service over a :class:`~mtotrust.TrustEngine` (``serve`` extra).

:class:`Service` is what ``mtotrust serve`` runs: ``/.well-known/authzen-configuration``, ``/access/v1/evaluation``,
``/access/v1/evaluations``, the native ``/v1/check``, ``/healthz`` and ``/metrics``, on uvicorn. See
``docs/service.md``.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from mtotrust._engine import TrustEngine
from mtotrust._errors import MtoTrustError
from mtotrust._policy import Policy
from mtotrust._snapshot import Snapshot
from mtotrust.service._app import MAX_BODY, DecisionApp
from mtotrust.service._protocol import ACTIONS, MAX_ITEMS, SEMANTICS, RequestError, check, evaluation, evaluations
from mtotrust.service._server import AsgiServer

__all__ = ["ACTIONS", "DEFAULT_PORT", "MAX_BODY", "MAX_ITEMS", "SEMANTICS", "DecisionApp", "RequestError", "Service",
           "ServiceError", "check", "evaluation", "evaluations", "is_loopback", "require_token"]

DEFAULT_PORT = 8181
"""The port ``mtotrust serve`` listens on unless ``--listen`` says otherwise."""


class ServiceError(MtoTrustError, ValueError):
    """The service cannot start as asked (a non-loopback address without a token, an empty token)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) is a loopback address, reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_token(host: str, token: str | None) -> None:
    """Refuse what :class:`Service` refuses: a host that is not loopback without a token, or an empty token.

    Raises:
        ServiceError: naming the host, and the fix.
    """
    if token is not None and not token.strip():
        raise ServiceError("the token is empty: put a long random string on the token file's first line")
    if token is None and not is_loopback(host):
        raise ServiceError(f"refusing to listen on {host!r} without a token: anyone who reaches it could ask "
                           "about your directory; give --token-file FILE, or listen on 127.0.0.1")


class Service:
    """The decision service: a :class:`DecisionApp` over ``engine``, served on ``host:port`` from a thread.

    Args:
        engine: decides every request; :meth:`reload` (or ``engine.update``) swaps snapshot and policy while
            requests are served (each request keeps the state it started with).
        host: the address to listen on; one that is not loopback needs ``token``.
        port: the port (``0``: any free one, which :meth:`start` returns).
        token: when given, every endpoint but ``/healthz`` needs ``Authorization: Bearer <token>``.
        public_url: the base URL the discovery document names (the proxy's, behind one).
        access_log: log one line per request (no bodies, so no identities) to ``mtotrust.service.access``.
        allow_origins: browser origins allowed to call the service (CORS), such as an Outlook add-in's.
        grace: seconds :meth:`stop` lets requests in flight finish.

    Raises:
        ServiceError: ``host`` is not loopback and there is no ``token``, or ``token`` is empty.
    """

    def __init__(self, engine: TrustEngine, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: str | None = None, public_url: str | None = None, access_log: bool = False,
                 allow_origins: Collection[str] = (), grace: float = 5.0) -> None:
        require_token(host, token)
        self.engine = engine
        self.app = DecisionApp(engine, token=None if token is None else token.strip(), public_url=public_url,
                               access_log=access_log, allow_origins=allow_origins)
        self._server = AsgiServer(self.app, host, port, grace=grace)

    @property
    def url(self) -> str:
        """The base URL the service listens on (``http://127.0.0.1:8181``)."""
        host, port = self._server.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> tuple[str, int]:
        """Listen and serve; return the bound address once requests are accepted.

        Raises:
            OSError: the address cannot be bound.
        """
        return self._server.start()

    def reload(self, snapshot: Snapshot | None = None, policy: Policy | None = None) -> None:
        """Swap in a new snapshot, policy or both; requests in flight finish on the state they started with."""
        self.engine.update(snapshot, policy=policy)

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, and return once the server has stopped."""
        self._server.stop()
