"""The grvt-pysdk client as a trading bot needs it: transport, error mapping, log masking, SDK hooks.

Why a module of its own: everything here works around how the SDK's `GrvtCcxtWS` (whose REST methods
are `GrvtCcxtPro`'s) behaves; the adapters in `bots.venues.grvt.execution` only call it. Endpoints, payloads,
EIP-712 order signing, instrument loading and the websocket client (connect, subscribe, its 5 s
reconnect loop, resubscription) stay the SDK's. `_SdkClient` overrides the SDK hooks that cannot serve
a trading bot as they are:

- `_auth_and_post`, the one REST transport: the SDK's returns `{}` on any failure (an outage would read
  as "no open orders") and drops the HTTP status and `Retry-After`. Ours maps failures to `bots.errors`
  (5xx and connection errors `Unavailable`, timeouts `Timeout`, 429 `RateLimited(retry_after_s)`,
  other refusals `GrvtApiError`, which order calls turn into `Rejected(reason)`), applies
  `exchange.request_timeout_s`, and logs in again once on a 401.
- `refresh_cookie` (login): the SDK's logs the API key and swallows a refused login; ours raises.
- `_reconnect`: one at a time, and it tells the adapter a websocket connected, so reconnects are
  counted and flag `needs_reconcile` (and a trade-data connection restarts the private streams' trust,
  see `bots.venues.grvt.account`). `connect_now` connects one websocket at once instead of at the
  SDK's next 5 s round (the trade-data one can only connect after the login).
- `_read_messages`: the SDK's reader polls every 2 s while disconnected (so books arrive late after a
  connect) and reads through `asyncio.wait_for`, which in 3.11 can swallow a cancel (a client that
  never closes); ours reads directly and dispatches to the SDK's callbacks the same way.

The SDK's log lines are masked (`_Redactor`, installed on import, which also drops the SDK's info
chatter on the root logger).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any

import aiohttp
import websockets
from pysdk.grvt_ccxt_env import GrvtEnv, GrvtWSEndpointType, get_grvt_endpoint
from pysdk.grvt_ccxt_utils import EnumEncoder
from pysdk.grvt_ccxt_ws import GrvtCcxtWS

from bots.errors import ExchangeError, RateLimited, Timeout, Unavailable
from bots.venues.grvt.parse import GrvtApiError

__all__ = ["SDK_LOGGER", "SDK_LOGGER_NAME", "_REDACTOR", "_SdkClient", "_TaskLoop"]

log = logging.getLogger("mmfleet.grvt")
SDK_LOGGER_NAME = "mmfleet.grvt.sdk"

# ----- secrets in the SDK's logs ------------------------------------------------------------------


class _Redactor(logging.Filter):
    """Masks secrets in log records: registered values (API key, signing key, account id, session
    cookie) and anything logged as `api_key=`, `private_key=` or `gravity=`. The SDK logs all of these
    (some on the root logger); this filter sits on the SDK's logger and on the root logger, where it
    also drops the SDK's own info/debug lines."""

    _KEYED = re.compile(r"""(?i)(\b(?:api_key|private_key|gravity)\b['"]?\s*[:=]\s*['"]?)[^'"\s,;}]+""")

    def __init__(self) -> None:
        super().__init__()
        self._secrets: dict[str, int] = {}

    def add(self, *secrets: str) -> None:
        for secret in secrets:
            if len(secret) >= 6:  # shorter values would mask ordinary numbers
                self._secrets[secret] = self._secrets.get(secret, 0) + 1

    def discard(self, *secrets: str) -> None:
        for secret in secrets:
            count = self._secrets.get(secret, 0) - 1
            if count > 0:
                self._secrets[secret] = count
            else:
                self._secrets.pop(secret, None)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return self._KEYED.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and "pysdk" in record.pathname and record.levelno < logging.WARNING:
            return False
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_REDACTOR = _Redactor()
SDK_LOGGER = logging.getLogger(SDK_LOGGER_NAME)
if SDK_LOGGER.level == logging.NOTSET:
    SDK_LOGGER.setLevel(logging.WARNING)  # the SDK logs every request at info
for _logger in (SDK_LOGGER, logging.getLogger()):
    if _REDACTOR not in _logger.filters:
        _logger.addFilter(_REDACTOR)

# ----- the SDK client ----------------------------------------------------------------------------------


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


def _failure(endpoint: str, status: int, headers: Mapping[str, str], data: object) -> ExchangeError:
    body = data if isinstance(data, dict) else {}
    message = _REDACTOR.redact(str(body.get("message") or ""))
    if 200 <= status < 300 and isinstance(body.get("status"), int):
        status = body["status"]  # an error reported in a 200
    code = body.get("code")
    if status == 429 and code in (None, 1006):  # 2090 (too many open orders) is a 429 and a refusal
        return RateLimited(_retry_after_s(headers), message=f"{endpoint}: rate limited")
    if status >= 500 or not isinstance(data, dict):
        return Unavailable(f"{endpoint}: {message or 'server error or unreadable reply'}", status=status)
    if status == 408:
        return Timeout(f"{endpoint}: {message or 'request timeout'}", status=status)
    return GrvtApiError(endpoint, code if isinstance(code, int) else None, message, status)


def _session_cookie(headers: Any) -> tuple[str, float] | None:
    """The `gravity` cookie and its expiry (epoch seconds) from a login reply's Set-Cookie headers."""
    jar: SimpleCookie = SimpleCookie()
    for header in headers.getall("Set-Cookie", []):
        with contextlib.suppress(CookieError):
            jar.load(header)
    morsel = jar.get("gravity")
    if morsel is None or not morsel.value:
        return None
    expires = time.time() + 3600.0
    if morsel["max-age"]:
        expires = time.time() + float(morsel["max-age"])
    elif morsel["expires"]:
        with contextlib.suppress(TypeError, ValueError):
            when = parsedate_to_datetime(morsel["expires"])
            expires = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return morsel.value, expires


class _TaskLoop:
    """The event loop as the SDK's websocket client sees it: it starts its endless reader tasks with
    `loop.create_task` and never stops them, so we record them to cancel them on close."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: set[asyncio.Task[Any]] = set()

    def create_task(self, coro: Any, *, name: str | None = None) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


class _SdkClient(GrvtCcxtWS):  # type: ignore[misc]  # the SDK ships no type information
    """`GrvtCcxtWS` with our transport, login and connection hook (see the module docstring). Its
    market-data websocket connects, and with `trade_data` (a client with credentials) the trade-data
    one, which carries the private streams (fills, order states)."""

    _api_key: str
    _cookie: dict[str, Any] | None
    _session: aiohttp.ClientSession | None
    endpoint_types: list[GrvtWSEndpointType]

    def __init__(
        self,
        env: GrvtEnv,
        loop: _TaskLoop,
        *,
        params: dict[str, str],
        api_key: str | None,
        timeout_s: float,
        on_connected: Callable[[GrvtWSEndpointType], None] | None = None,
        trade_data: bool = False,
    ) -> None:
        self._mm_ws_types = frozenset(
            {GrvtWSEndpointType.MARKET_DATA, *([GrvtWSEndpointType.TRADE_DATA] if trade_data else [])}
        )
        self._mm_timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._mm_timeout_s = timeout_s
        self._mm_on_connected = on_connected
        self._mm_login_lock = asyncio.Lock()
        self._mm_closing = False
        self._mm_reconnect_lock = asyncio.Lock()
        super().__init__(env, loop, logger=SDK_LOGGER, parameters=params)  # no api_key: no blocking login
        self._api_key = api_key or ""
        self.endpoint_types = [t for t in self.endpoint_types if t in self._mm_ws_types]

    def __del__(self) -> None:  # the SDK's needs a running loop; ours closes in shutdown()
        session = getattr(self, "_session", None)
        if session is not None and not session.closed:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(session.close())

    async def _read_messages(self, endpoint_type: GrvtWSEndpointType) -> None:
        """The SDK's reader, minus its 2 s polls and its `wait_for` (which can swallow a cancel): read
        while connected, reconnect when the server closes, dispatch feeds to the SDK's callbacks."""
        if endpoint_type not in self._mm_ws_types:
            return
        while True:
            ws = self.ws.get(endpoint_type)
            if ws is None or not self.is_connection_open(endpoint_type):
                await asyncio.sleep(0.05)
                continue
            try:
                raw = await ws.recv()
            except websockets.ConnectionClosed:
                await self._reconnect(endpoint_type)
                continue
            try:
                message = json.loads(raw)
                if not isinstance(message, dict):
                    continue
                self._check_susbcribed_stream(endpoint_type, message)
                stream, selector = message.get("stream"), message.get("selector")
                callbacks = self.callbacks[endpoint_type].get(stream, {})
                callback = callbacks.get(selector) if "feed" in message else None
                if callback is not None:
                    await callback(message)
            except Exception:  # one bad message must not stop the feed
                log.exception("GRVT websocket message dropped")

    def is_connection_open(self, endpoint_type: GrvtWSEndpointType) -> bool:
        return not self._mm_closing and bool(super().is_connection_open(endpoint_type))

    async def _reconnect(self, endpoint_type: GrvtWSEndpointType) -> None:
        """The SDK's reconnect, one at a time (its reader and its 5 s loop may both try)."""
        async with self._mm_reconnect_lock:
            if self._mm_closing or (self.is_connection_open(endpoint_type) and not self.force_reconnect_flag):
                return
            await super()._reconnect(endpoint_type)
            if self._mm_on_connected is not None and self.is_connection_open(endpoint_type):
                self._mm_on_connected(endpoint_type)

    async def connect_now(self, endpoint_type: GrvtWSEndpointType) -> None:
        """Connect (and subscribe) one websocket now, unless it is open."""
        await self._reconnect(endpoint_type)

    async def _post(self, path: str, payload: Mapping[str, Any]) -> tuple[int, Any, Any]:
        endpoint = path.rsplit("/", 1)[-1]
        if self._session is None:
            raise ExchangeError(f"{endpoint}: the GRVT client is closed")
        body = json.dumps(payload, cls=EnumEncoder)
        headers = {"Content-Type": "application/json"}
        try:
            async with self._session.post(
                path, data=body, headers=headers, timeout=self._mm_timeout
            ) as reply:
                text = await reply.text()
                try:
                    data = json.loads(text)
                except ValueError:
                    data = None
                return reply.status, reply.headers, data
        except TimeoutError:
            raise Timeout(f"{endpoint}: no answer within {self._mm_timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"{endpoint}: {type(exc).__name__}: {_REDACTOR.redact(str(exc))}") from None

    async def refresh_cookie(self) -> dict[str, Any] | None:
        if not self.should_refresh_cookie():
            return self._cookie
        async with self._mm_login_lock:
            if not self.should_refresh_cookie():
                return self._cookie
            status, headers, data = await self._post(
                get_grvt_endpoint(self.env, "AUTH"), {"api_key": self._api_key}
            )
            if status in (401, 403):
                raise ExchangeError("GRVT login refused: check the API key", status=status)
            if not 200 <= status < 300:
                raise _failure("login", status, headers, data)
            cookie = _session_cookie(headers)
            if cookie is None:
                raise ExchangeError("GRVT login: the reply has no session cookie", status=status)
            if self._cookie:
                _REDACTOR.discard(str(self._cookie.get("gravity", "")))
            _REDACTOR.add(cookie[0])
            account = headers.get("X-Grvt-Account-Id", "")
            self._cookie = {"gravity": cookie[0], "expires": cookie[1], "X-Grvt-Account-Id": account}
            self.update_session_with_cookie()
            return self._cookie

    async def _auth_and_post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        endpoint = path.rsplit("/", 1)[-1] if path else "?"
        if not path:
            raise ExchangeError("the SDK has no endpoint for this call")
        for attempt in range(2):
            await self.refresh_cookie()
            status, headers, data = await self._post(path, payload)
            if status == 401 and attempt == 0 and self._api_key:
                self._cookie = None  # the session ended on the server: log in again, once
                continue
            if 200 <= status < 300 and isinstance(data, dict) and not data.get("code"):
                return data
            raise _failure(endpoint, status, headers, data)
        raise ExchangeError(f"{endpoint}: unauthorized after a fresh login", status=401)

    async def shutdown(self, loop: _TaskLoop) -> None:
        """Stop the SDK's tasks, close the websockets and the HTTP session."""
        self._mm_closing = True  # the SDK's loops now see no connection and never reconnect
        pending = set(loop.tasks)
        while pending:  # a task may swallow a cancel (asyncio.wait_for in 3.11 does): insist
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        for ws in [ws for ws in self.ws.values() if ws is not None]:
            ws.close_timeout = 0.5  # a server slow to drop the TCP connection must not hold us 10 s
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._cookie:
            _REDACTOR.discard(str(self._cookie.get("gravity", "")))

    def abort(self, loop: _TaskLoop) -> None:
        """`shutdown()` without waiting, for where awaiting is not possible (an abandoned generator)."""
        self._mm_closing = True
        for task in loop.tasks:
            task.cancel()
        for ws in [ws for ws in self.ws.values() if ws is not None]:
            ws.transport.abort()
        session, self._session = self._session, None
        if session is not None:
            loop.create_task(session.close())  # runs if the loop still does
