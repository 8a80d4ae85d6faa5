"""The worker's HTTP port: `/metrics` for Prometheus, `/healthz` (alive), `/readyz` (fit to trade).

Served from a thread of its own (prometheus_client's threading WSGI server), not from the trading event
loop: a scrape is answered while the loop is busy with a burst of books, and a scrape never delays a
quote. `readiness()` and the collectors then run in that thread; they only read the worker's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["HttpServer", "start_http"]

# socketserver's default polls twice a second: a wake-up per poll per bot that a fleet pays for nothing;
# `HttpServer._stop` wakes it by connecting instead
_POLL_S = 3600.0
_TEXT = ("Content-Type", "text/plain; charset=utf-8")  # a fresh list per response: wsgiref appends to it


class _QuietHandler(WSGIRequestHandler):
    """No access log: Prometheus scrapes every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpServer:
    """The running server; `cleanup()` stops it and waits for its thread."""

    def __init__(self, server: ThreadingWSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    async def cleanup(self) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        # The server blocks in select() without a timeout (no wake-ups between scrapes): shutdown()
        # sets its flag, and a connection of our own wakes it to see it.
        stopper = threading.Thread(target=self._server.shutdown, name="mmfleet-http-stop")
        stopper.start()
        while stopper.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection(_loopback(self._server.server_address), timeout=1).close()
            stopper.join(0.05)
        self._server.server_close()
        self._thread.join()


def _loopback(address: tuple[Any, ...]) -> tuple[str, int]:
    """Where to reach a server bound to `address` from this host (an unspecified address: loopback)."""
    host, port = str(address[0]), int(address[1])
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


async def start_http(
    registry: CollectorRegistry, readiness: Callable[[], str | None], host: str, port: int
) -> HttpServer:
    """Serve until `cleanup()`. `readiness()` returns None when ready, else why not."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        if path == "/healthz":
            start_response("200 OK", [_TEXT])
            return [b"ok\n"]
        if path == "/readyz":
            problem = readiness()
            if problem is None:
                start_response("200 OK", [_TEXT])
                return [b"ready\n"]
            start_response("503 Service Unavailable", [_TEXT])
            return [f"not ready: {problem}\n".encode()]
        start_response("404 Not Found", [_TEXT])
        return [b"not found\n"]

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    server_class: type[ThreadingWSGIServer] = type(
        "_Server", (ThreadingWSGIServer,), {"address_family": family}
    )
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=partial(server.serve_forever, _POLL_S), name="mmfleet-http", daemon=True)
    thread.start()
    return HttpServer(server, thread)
