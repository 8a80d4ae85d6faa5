"""A local GRVT-compatible exchange: HTTP + websocket on one host:port, for the real SDK to talk to.

Base-URL contract (every GRVT host family, edge, trade data and market data, is this one base URL):

- `POST /auth/api_key/login` `{"api_key"}`: any non-empty key. Sets cookie `gravity=<token>; expires=<RFC
  1123 GMT>` and header `X-Grvt-Account-Id: <main account id>`; later requests carry both.
- `POST /full/v1/<endpoint>` with GRVT's request JSON, answered `{"result": ...}` (some add `next`) or
  `{"code", "message", "status"}` with that HTTP status; endpoints: instrument, instruments,
  all_instruments, book, ticker, mini, trade, trade_history, kline (empty), funding, create_order,
  cancel_order, cancel_all_orders, open_orders, order, order_history, positions, fill_history,
  funding_payment_history, account_summary, aggregated_account_summary, funding_account_summary (see
  `exchange`; funding in `funding`).
- `GET /ws` and `GET /ws/full` (websocket, identical): market and trade streams and JSON-RPC
  (see `ws`); the private streams need the cookie and header above on the upgrade request.
- Control, never faulted: `GET|POST /_sim/faults` (the JSON of `Faults.apply`), `POST /_sim/step`
  `{"n"}`, `GET /_sim/state` (with `requests`: REST calls served so far per endpoint, e.g.
  `fill_history`; what a client's polling costs the exchange).

The synthetic markets step every `config.step_interval_s` seconds, or only on `await server.step(n)`
when it is None. `GrvtSimServerThread` runs a server on its own event loop in a thread: the SDK's
clients log in with a blocking request in their constructors, which would stall a server sharing
their loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from bots.exchange.sim.market import SimMarket
from bots.venues.grvt.server.config import GrvtSimConfig
from bots.venues.grvt.server.exchange import SimExchange
from bots.venues.grvt.server.faults import Faults
from bots.venues.grvt.server.wire import GrvtApiError
from bots.venues.grvt.server.ws import WsHub

__all__ = ["GrvtSimConfig", "GrvtSimServer", "GrvtSimServerThread"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_FAULT_CODES = {500: 1002, 503: 1009, 429: 1006}
_CONTROL = "/_sim/"


def _fault_response(status: int, retry_after_s: float | None) -> web.Response:
    code = _FAULT_CODES.get(status, 1005)
    error = GrvtApiError(code, status=status)
    headers = {}
    if retry_after_s is not None:
        headers["Retry-After"] = f"{retry_after_s:g}"
    return web.json_response(error.body(), status=status, headers=headers)


async def _json_body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError:
        raise GrvtApiError(1003) from None
    if not isinstance(body, dict):
        raise GrvtApiError(1003, "the request body must be a JSON object")
    return body


class GrvtSimServer:
    """The local exchange; `faults` switches its faults, `exchange` is its state."""

    def __init__(self, config: GrvtSimConfig | None = None) -> None:
        self.config = config if config is not None else GrvtSimConfig()
        self.faults = Faults()
        self.exchange = SimExchange(self.config, self.faults)
        self.hub = WsHub(self.exchange, self.faults)
        self.exchange.listener = self.hub
        self.url = ""
        self.requests: Counter[str] = Counter()  # REST calls per endpoint (login included), faulted too
        self._runner: web.AppRunner | None = None
        self._stepper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: a free port); returns the base URL, e.g. `http://127.0.0.1:PORT`."""
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}"
        self.faults.add_drop_listener(self._drop_from_any_thread)
        if self.config.step_interval_s is not None:
            self._stepper = asyncio.create_task(self._step_forever(self.config.step_interval_s))
        return self.url

    async def stop(self) -> None:
        """Stop stepping, close every websocket and the listening socket."""
        self.faults.remove_drop_listener(self._drop_from_any_thread)
        if self._stepper is not None:
            self._stepper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stepper
            self._stepper = None
        if self._runner is not None:
            await self.hub.close_all()
            await self._runner.cleanup()
            self._runner = None

    async def step(self, n: int = 1) -> None:
        """Advance every synthetic market `n` steps now (fills, feeds), then let the feeds go out."""
        self.exchange.step(n)
        await asyncio.sleep(0)

    def market(self, instrument: str) -> SimMarket:
        """The synthetic market of one instrument."""
        return self.exchange.instruments[instrument].market

    async def _step_forever(self, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += interval_s
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            try:
                self.exchange.step(1)
            except Exception:  # a bug must not stop the market for good: log it and go on
                log.exception("market step failed")

    def _drop_from_any_thread(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self.hub.close_all()))

    # -- HTTP -------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/auth/api_key/login", self._login)
        app.router.add_post("/full/v1/{name}", self._rest)
        app.router.add_get("/ws", self.hub.handle)
        app.router.add_get("/ws/full", self.hub.handle)
        app.router.add_get("/_sim/faults", self._get_faults)
        app.router.add_post("/_sim/faults", self._set_faults)
        app.router.add_post("/_sim/step", self._step)
        app.router.add_get("/_sim/state", self._state)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "POST" and not request.path.startswith(_CONTROL):
            self.requests[request.path.rsplit("/", 1)[-1]] += 1
            if self.faults.latency_s:
                await asyncio.sleep(self.faults.latency_s)
            if slow_s := self.faults.take_slow(request.path):
                await request.read()  # received: handled even if the client gives up meanwhile
                await asyncio.sleep(slow_s)
            fault = self.faults.take_http_fault(request.path)
            if fault is not None:
                return _fault_response(fault.status, fault.retry_after_s)
        try:
            return await handler(request)
        except GrvtApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            if exc.status == 404:
                return web.json_response(GrvtApiError(1004).body(), status=404)
            raise
        except Exception:
            log.exception("request %s failed", request.path)
            return web.json_response(GrvtApiError(1002).body(), status=500)

    async def _login(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        api_key = body.get("api_key")
        now_s = self.exchange.clock() / 1e9
        session = self.exchange.accounts.login(api_key if isinstance(api_key, str) else "", now_s)
        reply = {"status": "success", "location": "", "funding_account_address": session.main_account_id}
        response = web.json_response(reply, headers={"X-Grvt-Account-Id": session.main_account_id})
        expires = email.utils.formatdate(session.expires_at_s, usegmt=True)
        response.set_cookie("gravity", session.token, expires=expires, path="/", httponly=True)
        return response

    async def _rest(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        now_s = self.exchange.clock() / 1e9
        session = self.exchange.accounts.session(
            request.cookies.get("gravity"), request.headers.get("X-Grvt-Account-Id"), now_s
        )
        return web.json_response(self.exchange.call(request.match_info["name"], session, body))

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.snapshot())

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.apply(await _json_body(request))
        except ValueError as exc:
            raise GrvtApiError(1003, str(exc)) from None
        return web.json_response(self.faults.snapshot())

    async def _step(self, request: web.Request) -> web.Response:
        n = (await _json_body(request)).get("n", 1)
        if not isinstance(n, int) or not 0 <= n <= 100_000:
            raise GrvtApiError(1003, "n must be an integer in [0, 100000]")
        await self.step(n)
        return web.json_response(
            {"steps": n, "mids": {k: i.market.mid for k, i in self.exchange.instruments.items()}}
        )

    async def _state(self, request: web.Request) -> web.Response:
        accounts = self.exchange.accounts.sub_accounts
        return web.json_response(
            {
                "instruments": list(self.exchange.instruments),
                "sub_accounts": {
                    k: {"open_orders": len(a.active), "fills": len(a.fills)} for k, a in accounts.items()
                },
                "websockets_open": len(self.hub.connections),
                "websockets_total": self.hub.connections_total,
                "requests": dict(self.requests),
                "faults": self.faults.snapshot(),
            }
        )


class GrvtSimServerThread:
    """A `GrvtSimServer` on its own event loop in a daemon thread (tests, and clients that block)."""

    def __init__(
        self, config: GrvtSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.server = GrvtSimServer(config)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> Faults:
        return self.server.faults

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> str:
        """Start the thread and the server; returns the base URL."""
        started: Future[str] = Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="grvt-sim", daemon=True)
        self._thread.start()
        return started.result(timeout=30)

    def _run(self, started: Future[str]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(self.server.start(self._host, self._port)))
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def run(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None, "not started"

        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=60)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the server's loop (safe access to `server.exchange`) and return its result."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def step(self, n: int = 1) -> None:
        """Advance the markets `n` steps on the server's loop."""
        self.run(self.server.step(n))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop = self._thread = None

    def __enter__(self) -> GrvtSimServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
