"""Live GRVT on grvt-pysdk: `GrvtExchange` (the `Exchange` protocol) and `GrvtMarketData` (public data).

Both stand on the SDK's `GrvtCcxtWS` (whose REST methods are `GrvtCcxtPro`'s): endpoints, payloads,
EIP-712 order signing, instrument loading and the websocket client (connect, subscribe, its 5 s
reconnect loop, resubscription) are the SDK's. `_SdkClient` overrides the SDK hooks that cannot serve
a trading bot as they are:

- `_auth_and_post`, the one REST transport: the SDK's returns `{}` on any failure (an outage would read
  as "no open orders") and drops the HTTP status and `Retry-After`. Ours maps failures to `bots.errors`
  (5xx and connection errors `Unavailable`, timeouts `Timeout`, 429 `RateLimited(retry_after_s)`,
  other refusals `GrvtApiError`, which order calls turn into `Rejected(reason)`), applies
  `exchange.request_timeout_s`, and logs in again once on a 401.
- `refresh_cookie` (login): the SDK's logs the API key and swallows a refused login; ours raises.
- `_reconnect`: one at a time, and it tells the adapter a websocket connected, so reconnects are
  counted and flag `needs_reconcile`.
- `_read_messages`: the SDK's reader polls every 2 s while disconnected (so books arrive late after a
  connect) and reads through `asyncio.wait_for`, which in 3.11 can swallow a cancel (a client that
  never closes); ours reads directly and dispatches to the SDK's callbacks the same way.

Only the market-data websocket is used: orders, fills and positions are read over REST (fills from the
fill history, by cursor), so a websocket drop loses nothing but books and trades.

Hosts: `exchange.base_url` points every endpoint at one host (`bots.exchange.grvt_endpoints`, per
client). Secrets stay `SecretStr` until the SDK client is built; the SDK's log lines are masked
(`_Redactor`, which also drops the SDK's info chatter on the root logger) and our messages never
carry them. Prices and sizes leave as decimal strings on the tick and lot (an order off the grid is
`Rejected` locally, with the paper model's reason names) and come back as `Decimal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
)
from datetime import UTC
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote

import aiohttp
import websockets
from eth_account import Account
from pysdk.grvt_ccxt_env import GrvtEnv, GrvtWSEndpointType, get_grvt_endpoint
from pysdk.grvt_ccxt_types import GrvtInvalidOrder
from pysdk.grvt_ccxt_utils import EnumEncoder
from pysdk.grvt_ccxt_ws import GrvtCcxtWS
from pysdk.grvt_raw_types import OrderRejectReason

from bots.engine.types import Side
from bots.errors import (
    ConfigError,
    ExchangeError,
    RateLimited,
    Rejected,
    Timeout,
    TransientExchangeError,
    Unavailable,
)
from bots.exchange.base import (
    BookLevel,
    BookUpdate,
    Fill,
    InstrumentInfo,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Trade,
)
from bots.exchange.grvt_endpoints import base_url_override
from bots.exchange.reconcile import ReconcileReport, reconcile
from settings.credentials import GrvtCredentials, resolve_credentials
from settings.models import BotSettings

__all__ = ["SDK_LOGGER_NAME", "GrvtApiError", "GrvtExchange", "GrvtMarketData"]

log = logging.getLogger("mmfleet.grvt")
SDK_LOGGER_NAME = "mmfleet.grvt.sdk"
T = TypeVar("T")
Step = tuple[BookUpdate, list[Trade]]

_NS_PER_S = 1_000_000_000
_FILL_PAGE = 1000
_MAX_FILL_PAGES = 1000
_SENT_MEMORY = 50_000  # client order ids remembered for idempotent retries
_MAX_PENDING_TRADES = 100_000
_CURSOR_PREFIX = "grvt1:"

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

# ----- errors and decoding -------------------------------------------------------------------------

_NOT_FOUND = re.compile(r"(?i)not found|not exist|unknown order|no such|already (?:cancel|fill|clos)|final")
_REASONS = {
    "FAIL_POST_ONLY": "post_only_would_cross",
    "FAIL_REDUCE_ONLY": "reduce_only_would_increase",
    "CLIENT_CANCEL": "cancelled",
    "CLIENT_BULK_CANCEL": "cancelled",
}
_STATUS = {status.name: status for status in OrderStatus}
_GRVT_REASONS = frozenset(reason.name for reason in OrderRejectReason)


def _reason(grvt_reason: object) -> str | None:
    """A GRVT reject/cancel reason in our vocabulary (the paper model's names where they exist)."""
    name = str(grvt_reason or "").upper()
    if name in ("", "UNSPECIFIED"):
        return None
    return _REASONS.get(name, name.lower())


# GRVT error codes of order refusals, named like the reject reasons (paper names where they exist).
_CODE_REASONS = {
    2012: "overlapping_client_order_id",
    2061: "instrument_invalid",
    2062: "size_below_min",
    2064: "price_off_tick",
    2065: "size_off_lot",
    2080: "below_margin",
    2081: "exceed_max_position_size",
    2090: "max_open_orders",
    2400: "reduce_only_would_increase",
    2401: "reduce_only_would_increase",
    3000: "instrument_invalid",
}
_CODE_NOT_FOUND = 1004


class GrvtApiError(ExchangeError):
    """GRVT refused a request (a 4xx with its `{code, message, status}`): not worth a retry."""

    def __init__(self, endpoint: str, code: int | None, message: str, status: int) -> None:
        self.endpoint = endpoint
        self.code = code
        super().__init__(f"{endpoint}: GRVT error {code}: {message}", status=status)
        self.message = message

    @property
    def reason(self) -> str:
        """A short reason for metrics: by GRVT code, else a reject reason named in the message."""
        if self.code in _CODE_REASONS:
            return _CODE_REASONS[self.code]
        for name in re.findall(r"[A-Z][A-Z_]+", self.message.upper()):
            if name in _GRVT_REASONS and (reason := _reason(name)) is not None:
                return reason
        return f"grvt_{self.code}" if self.code is not None else f"http_{self.status}"

    @property
    def is_not_found(self) -> bool:
        return self.code == _CODE_NOT_FOUND or self.status == 404 or bool(_NOT_FOUND.search(self.message))


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, list):  # per-leg lists in order states
        value = value[0] if value else "0"
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ExchangeError(f"malformed {what} from GRVT: {value!r}") from None


def _plain(value: Decimal) -> Decimal:
    """`0.100000000` -> `0.1` (never scientific notation)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal  # type: ignore[operator]


def _ns(value: object) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0


def parse_instrument(market: Mapping[str, Any]) -> InstrumentInfo:
    """GRVT lists a tick and a minimum size; sizes are multiples of the minimum (the lot)."""
    tick = _plain(_decimal(market.get("tick_size"), "tick_size"))
    min_size = _plain(_decimal(market.get("min_size"), "min_size"))
    if tick <= 0 or min_size <= 0:
        raise ExchangeError(f"GRVT instrument {market.get('instrument')}: tick and min size must be positive")
    return InstrumentInfo(str(market.get("instrument")), tick, min_size, min_size)


def _levels(rows: Iterable[Mapping[str, Any]] | None, best_first_high: bool) -> tuple[BookLevel, ...]:
    levels = [
        BookLevel(_decimal(r.get("price"), "price"), _decimal(r.get("size"), "size")) for r in rows or ()
    ]
    return tuple(
        sorted((lv for lv in levels if lv.size > 0), key=lambda lv: lv.price, reverse=best_first_high)
    )


def parse_book(data: Mapping[str, Any], symbol: str) -> BookUpdate:
    ts_ns = _ns(data.get("event_time")) or time.time_ns()  # the REST book may say 0
    return BookUpdate(symbol, ts_ns, _levels(data.get("bids"), True), _levels(data.get("asks"), False))


def parse_trade(row: Mapping[str, Any], symbol: str) -> Trade:
    return Trade(
        symbol=str(row.get("instrument") or symbol),
        ts_ns=_ns(row.get("event_time")) or time.time_ns(),
        price=_decimal(row.get("price"), "trade price"),
        size=_decimal(row.get("size"), "trade size"),
        taker_side=Side.BUY if row.get("is_taker_buyer") else Side.SELL,
        trade_id=str(row.get("trade_id", "")),
    )


def parse_order(order: Mapping[str, Any]) -> OrderUpdate:
    leg = (order.get("legs") or [{}])[0]
    state = order.get("state") or {}
    meta = order.get("metadata") or {}
    status = _STATUS.get(str(state.get("status", "PENDING")).upper(), OrderStatus.PENDING)
    order_id = str(order.get("order_id") or "")
    return OrderUpdate(
        symbol=str(leg.get("instrument", "")),
        client_order_id=str(meta.get("client_order_id", "")),
        exchange_order_id=order_id if order_id not in ("", "0", "0x0", "0x00") else None,
        side=Side.BUY if leg.get("is_buying_asset") else Side.SELL,
        price=_decimal(leg.get("limit_price", "0"), "limit price"),
        size=_decimal(leg.get("size", "0"), "order size"),
        filled_size=_decimal(state.get("traded_size") or "0", "traded size"),
        status=status,
        reason=_reason(state.get("reject_reason")) if status.is_final else None,
        ts_ns=_ns(state.get("update_time")) or _ns(meta.get("create_time")),
    )


def parse_fill(row: Mapping[str, Any]) -> Fill:
    """`fill_id` is `<trade_id>-<order_id>`: a trade id alone may be shared by both sides of a trade."""
    trade_id, order_id = str(row.get("trade_id", "")), str(row.get("order_id") or "")
    return Fill(
        fill_id=f"{trade_id}-{order_id}" if order_id else trade_id,
        symbol=str(row.get("instrument", "")),
        client_order_id=str(row.get("client_order_id") or ""),
        side=Side.BUY if row.get("is_buyer") else Side.SELL,
        price=_decimal(row.get("price"), "fill price"),
        size=_decimal(row.get("size"), "fill size"),
        fee=_decimal(row.get("fee") or "0", "fee"),
        ts_ns=_ns(row.get("event_time")),
        is_taker=bool(row.get("is_taker")),
    )


def encode_cursor(ts_ns: int, fill_ids: Iterable[str]) -> str:
    return f"{_CURSOR_PREFIX}{ts_ns}:" + ",".join(quote(i, safe="") for i in sorted(fill_ids))


def decode_cursor(cursor: str | None) -> tuple[int, set[str]]:
    """(newest event time, fill ids at that time); (0, empty) for None or a cursor not ours."""
    if not cursor or not cursor.startswith(_CURSOR_PREFIX):
        return 0, set()
    ts, _, ids = cursor[len(_CURSOR_PREFIX) :].partition(":")
    if not ts.isdigit():
        raise ExchangeError(f"bad GRVT fills cursor {cursor!r}")
    return int(ts), {unquote(i) for i in ids.split(",") if i}


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
    """`GrvtCcxtWS` with our transport, login and connection hook (see the module docstring); only its
    market-data websocket connects (fills and orders come over REST)."""

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
    ) -> None:
        self._mm_ws_types = frozenset({GrvtWSEndpointType.MARKET_DATA})
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


# ----- market data -------------------------------------------------------------------------------------


class _Fanout(Generic[T]):
    """One event kind to bounded per-reader queues; a full queue drops its oldest item (a slow reader
    gets the newest data, never stalls the websocket)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._queues: list[asyncio.Queue[tuple[T] | None]] = []
        self.dropped = 0
        self.closed = False

    def publish(self, item: T) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait((item,))

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def subscribe(self) -> AsyncIterator[T]:
        if self.closed:
            return
        queue: asyncio.Queue[tuple[T] | None] = asyncio.Queue(self._maxsize)
        self._queues.append(queue)
        try:
            while (entry := await queue.get()) is not None:
                yield entry[0]
        finally:
            self._queues.remove(queue)


class _MarketFeed:
    """Book snapshots (`book.s`) and trades of one symbol on an SDK websocket client, fanned out to
    readers; with `steps`, also as `(book, trades since the previous book)` for one reader."""

    def __init__(
        self, client: _SdkClient, symbol: str, rate_ms: int, depth: int, *, steps: bool = False
    ) -> None:
        self.client = client
        self.symbol = symbol
        self.books: _Fanout[BookUpdate] = _Fanout(1)
        self.trades: _Fanout[Trade] = _Fanout(10_000)
        self.last_message_s = time.monotonic()
        self._params = (
            {"instrument": symbol, "rate": rate_ms, "depth": depth},
            {"instrument": symbol, "limit": 50},
        )
        self._steps = steps
        self._step_book: BookUpdate | None = None
        self._step_trades: list[Trade] = []
        self._step_ready = asyncio.Event()
        self._closed = False

    async def subscribe(self) -> None:
        book_params, trade_params = self._params
        await self.client.subscribe(stream="book.s", callback=self._on_book, params=book_params)
        await self.client.subscribe(stream="trade", callback=self._on_trade, params=trade_params)

    def start_watchdog(self, loop: _TaskLoop, stale_after_s: float | None) -> None:
        if stale_after_s is not None:
            loop.create_task(self._watchdog(stale_after_s), name=f"grvt-watchdog-{self.symbol}")

    async def _watchdog(self, stale_after_s: float) -> None:
        while True:
            await asyncio.sleep(min(1.0, stale_after_s / 4))
            if time.monotonic() - self.last_message_s > stale_after_s:
                log.warning(
                    "GRVT market data silent: reconnecting", extra={"fields": {"symbol": self.symbol}}
                )
                self.client.force_reconnect()
                self.last_message_s = time.monotonic()

    async def _on_book(self, message: dict[str, Any]) -> None:
        self.last_message_s = time.monotonic()
        try:
            book = parse_book(message["feed"], self.symbol)
        except (ExchangeError, KeyError, TypeError, AttributeError):
            log.warning("malformed GRVT book message dropped", extra={"fields": {"symbol": self.symbol}})
            return
        self.books.publish(book)
        if self._steps:
            self._step_book = book
            self._step_ready.set()

    async def _on_trade(self, message: dict[str, Any]) -> None:
        self.last_message_s = time.monotonic()
        feed = message.get("feed")
        try:
            rows: list[Any] = feed if isinstance(feed, list) else [feed]
            trades = [parse_trade(row, self.symbol) for row in rows]
        except (ExchangeError, TypeError, AttributeError):
            log.warning("malformed GRVT trade message dropped", extra={"fields": {"symbol": self.symbol}})
            return
        for trade in trades:
            self.trades.publish(trade)
        if self._steps:
            self._step_trades.extend(trades)
            del self._step_trades[:-_MAX_PENDING_TRADES]

    async def next_step(self) -> Step | None:
        """The newest book with the trades since the previous step; None once closed."""
        while not self._closed:
            if self._step_book is not None:
                step = (self._step_book, self._step_trades)
                self._step_book, self._step_trades = None, []
                return step
            self._step_ready.clear()
            await self._step_ready.wait()
        return None

    def close(self) -> None:
        self._closed = True
        self._step_ready.set()
        self.books.close()
        self.trades.close()


class GrvtMarketData:
    """GRVT public market data (no credentials) as async `(BookUpdate, list[Trade])` steps: a book
    snapshot with the trades printed since the previous one (the paper and record source).

    Each iteration opens its own websocket client and closes it when the iteration ends or is
    cancelled. A slow reader gets the newest book with every trade since its last step. Reconnects
    are the SDK's (every 5 s); a feed silent for `stale_after_s` is reconnected as well.
    """

    def __init__(
        self,
        symbol: str,
        *,
        env: str = "testnet",
        base_url: str | None = None,
        book_rate_ms: int = 500,
        book_depth: int = 10,
        stale_after_s: float | None = 30.0,
    ) -> None:
        self.symbol = symbol
        self.env = GrvtEnv(env)
        self.base_url = base_url
        self.book_rate_ms = book_rate_ms
        self.book_depth = book_depth
        self.stale_after_s = stale_after_s

    @classmethod
    def from_settings(cls, settings: BotSettings) -> GrvtMarketData:
        return cls(settings.symbol, env=settings.exchange.env, base_url=settings.exchange.base_url)

    def __aiter__(self) -> AsyncIterator[Step]:
        return self.steps()

    async def steps(self) -> AsyncGenerator[Step, None]:
        loop = _TaskLoop(asyncio.get_running_loop())
        with base_url_override(self.base_url):
            client = _SdkClient(self.env, loop, params={}, api_key=None, timeout_s=10.0)
            feed = _MarketFeed(client, self.symbol, self.book_rate_ms, self.book_depth, steps=True)
        try:
            with base_url_override(self.base_url):
                await feed.subscribe()
                loop.create_task(client.connect_all_channels(), name=f"grvt-connect-{self.symbol}")
                feed.start_watchdog(loop, self.stale_after_s)
            while (step := await feed.next_step()) is not None:
                yield step
        finally:
            feed.close()
            try:
                await client.shutdown(loop)
            except GeneratorExit:  # finalised without `aclose()` (a reader that broke off): no awaiting
                client.abort(loop)
                raise


# ----- the exchange --------------------------------------------------------------------------------------


class GrvtExchange:
    """The `Exchange` protocol on GRVT for one bot's symbol (other symbols are refused).

    Lazy: the first REST call logs in and loads the instruments (tick, lot and minimum size come from
    GRVT, never from the config), the first stream opens the market-data websocket. `close()` at the end.

    Idempotent orders: a client order id this process already sent is looked up on the exchange before
    it is sent again, so a retry after a timeout or a 5xx never makes a second order; GRVT's own
    duplicate check (`OVERLAPPING_CLIENT_ORDER_ID`) is answered with the existing order too.

    Reconciliation: `needs_reconcile` is True at start, after a websocket reconnect and after a call
    that failed transiently (it may have happened); `reconcile()` compares the exchange with the bot.
    """

    def __init__(
        self,
        settings: BotSettings,
        *,
        credentials: GrvtCredentials | None = None,
        book_rate_ms: int = 500,
        book_depth: int = 10,
        stale_after_s: float | None = 30.0,
        fills_overlap_s: float = 10.0,
    ) -> None:
        exchange = settings.exchange
        self._creds = credentials if credentials is not None else resolve_credentials(exchange.credentials)
        try:
            Account.from_key(self._creds.private_key.get_secret_value())
        except Exception:  # any parse failure; its message could echo the key
            raise ConfigError("GRVT private_key is not a valid hex signing key") from None
        self.symbol = settings.symbol
        self.env = GrvtEnv(exchange.env)
        self.base_url = exchange.base_url
        self.request_timeout_s = exchange.request_timeout_s
        self.cancel_unknown_orders = exchange.cancel_unknown_orders
        self.configured_instrument = settings.instrument
        self.book_rate_ms, self.book_depth, self.stale_after_s = book_rate_ms, book_depth, stale_after_s
        self.fills_overlap_ns = round(fills_overlap_s * _NS_PER_S)
        self.reconnects = 0
        self._loop: _TaskLoop | None = None
        self._client: _SdkClient | None = None
        self._feed: _MarketFeed | None = None
        self._info: InstrumentInfo | None = None
        self._ready_lock = asyncio.Lock()
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._delivered: dict[str, int] = {}  # fill id -> event time, within the overlap window
        self._connections = 0
        self._needs_reconcile = True
        self._closed = False

    # ----- lifecycle ------------------------------------------------------------------------------

    @property
    def needs_reconcile(self) -> bool:
        """True until `reconcile()` succeeds after start, a reconnect or a call that may have happened."""
        return self._needs_reconcile

    def _secrets(self) -> tuple[str, ...]:
        c = self._creds
        return (
            c.api_key.get_secret_value(),
            c.private_key.get_secret_value(),
            c.trading_account_id.get_secret_value(),
        )

    def _on_connected(self, _endpoint_type: GrvtWSEndpointType) -> None:
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
            self._needs_reconcile = True
            log.info(
                "GRVT websocket reconnected", extra={"fields": {"symbol": self.symbol, "n": self.reconnects}}
            )

    def _sdk_client(self) -> _SdkClient:
        if self._closed:
            raise ExchangeError("the GRVT exchange is closed")
        if self._client is None:
            self._loop = _TaskLoop(asyncio.get_running_loop())
            api_key, private_key, account_id = self._secrets()
            _REDACTOR.add(api_key, private_key, account_id)
            params = {"trading_account_id": account_id, "private_key": private_key}
            with base_url_override(self.base_url):
                self._client = _SdkClient(
                    self.env, self._loop, params=params, api_key=api_key,
                    timeout_s=self.request_timeout_s, on_connected=self._on_connected,
                )  # fmt: skip
        return self._client

    async def _ready(self) -> _SdkClient:
        """The client, logged in, with the instruments loaded."""
        client = self._sdk_client()
        async with self._ready_lock:
            if self._info is None:
                await self._sdk("login", client.refresh_cookie)
                markets = await self._sdk("instruments", client.load_markets)
                market = (markets or {}).get(self.symbol)
                if market is None:
                    raise ExchangeError(f"{self.symbol} is not an active instrument on GRVT {self.env.value}")
                self._info = parse_instrument(market)
                spec = self.configured_instrument
                if spec is not None and (spec.tick_size, spec.lot_size) != (
                    self._info.tick_size,
                    self._info.lot_size,
                ):
                    log.warning("configured tick/lot differ from GRVT's; GRVT's apply",
                                extra={"fields": {"symbol": self.symbol, "tick": str(self._info.tick_size),
                                                  "lot": str(self._info.lot_size)}})  # fmt: skip
        return client

    async def _market_feed(self) -> _MarketFeed:
        client = self._sdk_client()
        if self._feed is None:
            assert self._loop is not None
            with base_url_override(self.base_url):
                self._feed = _MarketFeed(client, self.symbol, self.book_rate_ms, self.book_depth)
                await self._feed.subscribe()
                self._loop.create_task(client.connect_all_channels(), name=f"grvt-connect-{self.symbol}")
                self._feed.start_watchdog(self._loop, self.stale_after_s)
        return self._feed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._feed is not None:
            self._feed.close()
        if self._client is not None and self._loop is not None:
            await self._client.shutdown(self._loop)
            _REDACTOR.discard(*self._secrets())

    async def _sdk(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One SDK call against this exchange's host, bounded in time, errors mapped."""
        try:  # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow the worker's cancel
            with base_url_override(self.base_url):
                async with asyncio.timeout(self.request_timeout_s + 1.0):
                    return await call()
        except TimeoutError:
            self._needs_reconcile = True
            raise Timeout(f"{what}: no answer within {self.request_timeout_s:g}s") from None
        except TransientExchangeError as exc:
            if not isinstance(exc, RateLimited):
                self._needs_reconcile = True
            raise
        except GrvtInvalidOrder as exc:
            raise Rejected("invalid_order", message=f"{what}: {_REDACTOR.redact(str(exc))}") from None

    def _check(self, symbol: str) -> None:
        if symbol != self.symbol:
            raise ExchangeError(f"this GRVT exchange trades {self.symbol}, not {symbol}")

    # ----- market data ---------------------------------------------------------------------------

    async def instrument(self, symbol: str) -> InstrumentInfo:
        self._check(symbol)
        await self._ready()
        assert self._info is not None
        return self._info

    async def book(self, symbol: str) -> BookUpdate:
        self._check(symbol)
        client = self._sdk_client()
        reply = await self._sdk("book", lambda: client.fetch_order_book(symbol, limit=self.book_depth))
        return parse_book(reply, symbol)

    async def stream_books(self, symbol: str) -> AsyncGenerator[BookUpdate, None]:
        self._check(symbol)
        feed = await self._market_feed()
        async for book in feed.books.subscribe():
            yield book

    async def stream_trades(self, symbol: str) -> AsyncGenerator[Trade, None]:
        self._check(symbol)
        feed = await self._market_feed()
        async for trade in feed.trades.subscribe():
            yield trade

    # ----- orders ----------------------------------------------------------------------------------

    @staticmethod
    def _validate(request: OrderRequest, info: InstrumentInfo) -> None:
        if request.price <= 0:
            raise Rejected("price_not_positive")
        if request.size <= 0:
            raise Rejected("size_not_positive")
        if request.price % info.tick_size != 0:
            raise Rejected("price_off_tick")
        if request.size % info.lot_size != 0:
            raise Rejected("size_off_lot")
        if request.size < info.min_size:
            raise Rejected("size_below_min")
        coid = request.client_order_id
        if not coid.isdigit() or not 0 < int(coid) < 2**64:
            raise Rejected("bad_client_order_id", message=f"GRVT client order ids are uint64, got {coid!r}")

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self._check(request.symbol)
        client = await self._ready()
        info = self._info
        assert info is not None
        self._validate(request, info)
        coid = request.client_order_id
        if coid in self._sent and (known := await self._lookup(coid)) is not None:
            return _accepted(known)  # a retry whose first attempt reached the exchange
        self._sent[coid] = None
        while len(self._sent) > _SENT_MEMORY:
            self._sent.popitem(last=False)
        side = "buy" if request.side is Side.BUY else "sell"
        size, price = (
            f"{request.size.quantize(info.lot_size):f}",
            f"{request.price.quantize(info.tick_size):f}",
        )
        params = {"client_order_id": coid, "post_only": request.post_only,
                  "reduce_only": request.reduce_only, "time_in_force": "GOOD_TILL_TIME"}  # fmt: skip
        try:
            result = await self._sdk(
                "create_order",
                lambda: client.create_order(request.symbol, "limit", side, size, price, params),
            )
        except GrvtApiError as exc:
            if (
                exc.reason == "overlapping_client_order_id"
                and (known := await self._lookup(coid)) is not None
            ):
                return _accepted(known)
            raise Rejected(exc.reason, message=str(exc), status=exc.status) from None
        except ExchangeError:
            raise
        except Exception as exc:  # signing: its message could echo the key
            raise ExchangeError(f"create_order: could not sign the order ({type(exc).__name__})") from None
        if not result:
            raise Unavailable("create_order: reply without an order")
        update = parse_order(result)
        if update.reason == "overlapping_client_order_id" and (known := await self._lookup(coid)) is not None:
            return _accepted(known)
        return _accepted(update)

    async def _lookup(self, coid: str) -> OrderUpdate | None:
        """Our order with this client order id, in any state; None when the exchange has none."""
        client = self._sdk_client()
        try:
            reply = await self._sdk("order", lambda: client.fetch_order(params={"client_order_id": coid}))
        except GrvtApiError:  # unknown there, or not served: look among the resting orders
            reply = None
        order = reply.get("result") if isinstance(reply, dict) else None
        if isinstance(order, dict) and order:
            return parse_order(order)
        return next((o for o in await self.open_orders(self.symbol) if o.client_order_id == coid), None)

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel by client order id; an order already gone (not found, or no ack) is not an error."""
        self._check(symbol)
        client = await self._ready()
        with _gone_is_fine():
            await self._sdk(
                "cancel_order", lambda: client.cancel_order(params={"client_order_id": client_order_id})
            )

    async def cancel_exchange_order(self, order_id: str) -> None:
        """Cancel by GRVT order id (for orders that are not ours, e.g. placed by hand)."""
        client = await self._ready()
        with _gone_is_fine():
            await self._sdk("cancel_order", lambda: client.cancel_order(id=order_id))

    async def cancel_all(self, symbol: str) -> int:
        """GRVT's bulk cancel on the symbol's kind/base/quote, then one by one whatever still rests (an
        order that raced the bulk cancel); returns how many rested before."""
        self._check(symbol)
        client = await self._ready()
        before = await self.open_orders(symbol)
        base, quote_currency, *_ = symbol.split("_")
        params = {"kind": "PERPETUAL", "base": base, "quote": quote_currency}
        await self._sdk("cancel_all_orders", lambda: client.cancel_all_orders(params=params))
        for order in await self.open_orders(symbol):
            await self._cancel(order)
        return len(before)

    async def _cancel(self, order: OrderUpdate) -> None:
        if order.exchange_order_id:
            await self.cancel_exchange_order(order.exchange_order_id)
        else:
            await self.cancel_order(order.symbol, order.client_order_id)

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        self._check(symbol)
        client = await self._ready()
        rows = await self._sdk("open_orders", lambda: client.fetch_open_orders(symbol=symbol))
        return [parse_order(row) for row in rows or []]

    # ----- account ---------------------------------------------------------------------------------

    async def position_detail(self, symbol: str) -> tuple[Decimal, Decimal | None, Decimal | None]:
        """Signed size, entry price and mark price of the position (0, None, None when flat)."""
        self._check(symbol)
        client = await self._ready()
        rows = await self._sdk("positions", lambda: client.fetch_positions(symbols=[symbol]))
        for row in rows or []:
            if row.get("instrument") == symbol:
                entry, mark = row.get("entry_price"), row.get("mark_price")
                return (
                    _decimal(row.get("size", "0"), "position size"),
                    _decimal(entry, "entry price") if entry not in (None, "") else None,
                    _decimal(mark, "mark price") if mark not in (None, "") else None,
                )
        return Decimal(0), None, None

    async def position(self, symbol: str) -> Decimal:
        return (await self.position_detail(symbol))[0]

    async def balance(self) -> Decimal:
        """Total equity minus unrealized PnL (else the USD-like spot balances) of the sub-account."""
        client = await self._ready()
        summary = await self._sdk("account_summary", lambda: client.get_account_summary("sub-account"))
        if not isinstance(summary, dict) or not summary:
            raise Unavailable("account_summary: empty reply")
        if summary.get("total_equity") is not None:
            unrealized = _decimal(summary.get("unrealized_pnl") or "0", "unrealized pnl")
            return _plain(_decimal(summary["total_equity"], "total equity") - unrealized)
        rows = [b for b in summary.get("spot_balances") or [] if b.get("currency") in ("USDT", "USD", "USDC")]
        return sum((_decimal(b.get("balance", "0"), "balance") for b in rows), Decimal(0))

    async def fills_since(self, symbol: str, cursor: str | None) -> tuple[list[Fill], str | None]:
        """Our fills after `cursor`, oldest first, from GRVT's fill history (every page).

        The cursor is `grvt1:<newest event time ns>:<fill ids at that time>`. The query starts
        `fills_overlap_s` before it, so a fill that reaches the history late is still delivered (once
        per process; after a restart such a fill may come again, and the ledger drops it by fill id).
        None, or a cursor another mode wrote, reads the whole history.
        """
        self._check(symbol)
        client = await self._ready()
        last_ns, last_ids = decode_cursor(cursor)
        start_ns = max(1, last_ns - self.fills_overlap_ns) if last_ns else None
        rows: list[dict[str, Any]] = []
        page: str | None = None

        async def fetch_page(params: dict[str, str]) -> Any:
            return await client.fetch_my_trades(symbol, start_ns, _FILL_PAGE, params)

        for _ in range(_MAX_FILL_PAGES):
            params = {"cursor": page} if page else {}
            reply = await self._sdk("fill_history", functools.partial(fetch_page, params))
            batch = (reply.get("result") or []) if isinstance(reply, dict) else []
            rows.extend(batch)
            following = reply.get("next") if isinstance(reply, dict) else None
            if not batch or not following or following == page:
                break
            page = str(following)
        else:
            raise ExchangeError(f"fill_history: more than {_MAX_FILL_PAGES} pages")
        unique = {f.fill_id: f for f in map(parse_fill, rows) if f.symbol == symbol}
        fills = sorted(unique.values(), key=lambda f: (f.ts_ns, f.fill_id))
        new = [
            f for f in fills
            if f.ts_ns > last_ns
            or (f.fill_id not in last_ids and (f.ts_ns == last_ns or f.fill_id not in self._delivered))
        ]  # fmt: skip
        if not new:
            return [], cursor
        for fill in new:
            self._delivered[fill.fill_id] = fill.ts_ns
        newest = max(last_ns, new[-1].ts_ns)
        self._delivered = {k: ts for k, ts in self._delivered.items() if ts >= newest - self.fills_overlap_ns}
        at_newest = {f.fill_id for f in fills if f.ts_ns == newest} | (
            last_ids if newest == last_ns else set()
        )
        return new, encode_cursor(newest, at_newest)

    # ----- reconciliation --------------------------------------------------------------------------

    async def reconcile(
        self, known_client_order_ids: Collection[str] = (), cursor: str | None = None
    ) -> ReconcileReport:
        """Fills since `cursor`, position and open orders against the orders the bot knows; unknown
        orders are reported, and cancelled when `exchange.cancel_unknown_orders` is set."""
        self._needs_reconcile = False
        try:
            return await reconcile(
                self, self.symbol, known_client_order_ids, cursor,
                cancel_unknown=self.cancel_unknown_orders, position_detail=self.position_detail,
                cancel=self._cancel,
            )  # fmt: skip
        except BaseException:
            self._needs_reconcile = True
            raise


def _accepted(update: OrderUpdate) -> OrderUpdate:
    """The order as the exchange holds it, or `Rejected` when it refused it."""
    if update.status is OrderStatus.REJECTED:
        raise Rejected(update.reason or "rejected")
    return update


@contextlib.contextmanager
def _gone_is_fine() -> Iterator[None]:
    try:
        yield
    except GrvtApiError as exc:
        if not exc.is_not_found:
            raise
