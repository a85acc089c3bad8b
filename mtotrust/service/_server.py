"""Serve an ASGI application with uvicorn (httptools, uvloop) on a background thread.

The listening socket is made here, so port ``0`` gives a free port and the address is known before the first
request. Each accepted socket has Nagle's algorithm off (``TCP_NODELAY``: a small answer must not wait for the
client's delayed ACK): uvloop sets it on every TCP transport, as asyncio does, and the tests check it on the
accepted sockets themselves. Stopping closes the listener, then lets requests in flight
finish (up to ``grace`` seconds) before the connections close.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn
import uvloop

__all__ = ["MAX_CONNECTIONS", "AsgiServer"]

MAX_CONNECTIONS = 1000
"""Connections and requests served at once; past it uvicorn answers ``503`` (a bound on memory and file handles)."""


class AsgiServer:
    """An ASGI 3 application served on ``host:port`` from a thread of its own (``port`` 0: a free port).

    Args:
        app: the application.
        host: the address to listen on.
        port: the port (``0``: any free one; :meth:`start` returns it).
        grace: seconds :meth:`stop` lets requests in flight finish.
    """

    def __init__(self, app: Any, host: str, port: int, *, grace: float = 5.0) -> None:
        # ws="none": no WebSocket upgrade is offered; limit_concurrency: past it, new connections get a 503.
        self._config = uvicorn.Config(app, host=host, port=port, loop="none", http="httptools", ws="none",
                                      limit_concurrency=MAX_CONNECTIONS, lifespan="off", access_log=False,
                                      log_config=None, server_header=False,
                                      timeout_keep_alive=75, timeout_graceful_shutdown=max(1, round(grace)))
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.address: tuple[str, int] = (host, port)

    def start(self) -> tuple[str, int]:
        """Bind, start serving, and return the address once requests are accepted.

        Raises:
            OSError: the address cannot be bound (in use, not local, no permission).
        """
        host, port = self.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=2048)
        self.address = sock.getsockname()[:2]
        started = threading.Event()
        self._server.config.callback_notify = None

        async def serve() -> None:
            task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
            while not self._server.started and not task.done():
                await asyncio.sleep(0.005)
            started.set()
            await task

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(serve())
            except BaseException as exc:  # noqa: BLE001 - handed to start() or stop()
                self._failure = exc
            finally:
                started.set()
                sock.close()

        self._thread = threading.Thread(target=run, name="mtotrust-serve", daemon=True)
        self._thread.start()
        started.wait()
        if not self._server.started:
            raise OSError(f"the server on {host}:{port} did not start: {self._failure!r}")
        return self.address

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close; return once the server thread has ended."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join()
        self._thread = None
