"""Live GRVT on grvt-pysdk: `GrvtExchange` (the `Exchange` protocol) and `GrvtMarketData` (public data).

Why this module: it is the adapters' home and the import point (`bots.exchange.factory`); the parts
live beside it: `client` (the SDK client: transport, error mapping, log masking, SDK hooks),
`parse` (JSON -> our `Decimal` dataclasses, reject reasons), `data` (market-data
websocket, `GrvtMarketData`), `account` (the private streams: our fills and order states) and `fills`
(which of the stream and the REST fill history serves a fill read, and the cursor).

Fills come from the private `fill` stream; the REST fill history is read at start, after a trade-data
reconnect, after a fill message that could not be read, after an order of ours took liquidity, and for
every read of a reconciliation (which the worker runs after a reconnect or a call that may have
happened).

Hosts: `exchange.base_url` points every endpoint at one host (`bots.venues.grvt.endpoints`, per
client). Secrets stay `SecretStr` until the SDK client is built and our messages never carry them.
Prices and sizes leave as decimal strings on the tick and lot (an order off the grid is `Rejected`
locally, with the paper model's reason names) and come back as `Decimal`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from decimal import Decimal
from typing import Any, TypeVar

from eth_account import Account
from pysdk.grvt_ccxt_env import GrvtEnv, GrvtWSEndpointType
from pysdk.grvt_ccxt_types import GrvtInvalidOrder

from bots.engine.types import Side
from bots.errors import (
    ConfigError,
    ExchangeError,
    RateLimited,
    Rejected,
    RejectReason,
    Timeout,
    TransientExchangeError,
    Unavailable,
)
from bots.exchange.base import (
    BookUpdate,
    Capabilities,
    Fill,
    FundingPayment,
    FundingRate,
    InstrumentInfo,
    OrderRequest,
    OrderUpdate,
    Trade,
)
from bots.exchange.reconcile import ReconcileReport, reconcile
from bots.venues.grvt.account import _AccountFeed
from bots.venues.grvt.client import _REDACTOR, _SdkClient, _TaskLoop
from bots.venues.grvt.data import GrvtMarketData, _MarketFeed
from bots.venues.grvt.endpoints import base_url_override
from bots.venues.grvt.fills import _FillSource
from bots.venues.grvt.funding import funding_history_path, new_payments, parse_funding_rate
from bots.venues.grvt.parse import (
    PAGE_LIMIT,
    GrvtApiError,
    _accepted,
    _decimal,
    _gone_is_fine,
    _plain,
    decode_cursor,
    every_page,
    parse_book,
    parse_instrument,
    parse_order,
)
from settings.credentials import GrvtCredentials, credential_source, resolve_credentials
from settings.models import BotSettings

__all__ = ["GrvtExchange", "GrvtMarketData"]

log = logging.getLogger("mmfleet.grvt")
T = TypeVar("T")

_NS_PER_S = 1_000_000_000
_SENT_MEMORY = 50_000  # client order ids remembered for idempotent retries


class GrvtExchange:
    """The `Exchange` protocol on GRVT for one bot's symbol (other symbols are refused).

    Lazy: the first REST call logs in and loads the instruments (tick, lot and minimum size come from
    GRVT, never from the config), the first stream opens the market-data websocket. `close()` at the end.

    Idempotent orders: a client order id this process already sent is looked up on the exchange before
    it is sent again, so a retry after a timeout or a 5xx never makes a second order; GRVT's own
    duplicate check (`OVERLAPPING_CLIENT_ORDER_ID`) is answered with the existing order too.

    Reconciliation: `needs_reconcile` is True at start, after a websocket reconnect and after a call
    that failed transiently (it may have happened); `reconcile()` compares the exchange with the bot.

    Private streams: the first REST call also subscribes to our fills and order states on the
    trade-data websocket (`stream_order_events`); `fills_since` then serves streamed fills without a
    REST call whenever the stream can be trusted (`bots.venues.grvt.account`).
    """

    capabilities = Capabilities(reconciles=True, local_fills=False, order_events=True, funding=True)

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
        self._creds = credentials if credentials is not None else resolve_credentials(exchange)
        self._refs = exchange.credentials
        try:
            Account.from_key(self._creds.private_key.get_secret_value())
        except Exception:  # any parse failure; its message could echo the key
            source = credential_source(self._refs, "private_key")
            raise ConfigError(f"GRVT private_key from {source} is not a valid hex signing key") from None
        self.symbol = settings.symbol
        self.env = GrvtEnv(exchange.env)
        self.base_url = exchange.base_url
        self.request_timeout_s = exchange.request_timeout_s
        self.cancel_unknown_orders = exchange.cancel_unknown_orders
        self._order_lifetime_s = exchange.order_lifetime_s  # each order's signed expiry
        self.configured_instrument = settings.instrument
        self.book_rate_ms, self.book_depth, self.stale_after_s = book_rate_ms, book_depth, stale_after_s
        self.reconnects = 0
        self._loop: _TaskLoop | None = None
        self._client: _SdkClient | None = None
        self._feed: _MarketFeed | None = None
        self._account: _AccountFeed | None = None
        self._connecting = False  # the SDK's connect loop runs
        self._fills = _FillSource(self.symbol, round(fills_overlap_s * _NS_PER_S))
        self._info: InstrumentInfo | None = None
        self._ready_lock = asyncio.Lock()
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._connections: dict[GrvtWSEndpointType, int] = {}
        self._needs_reconcile = True
        self._closed = False

    # ----- lifecycle ------------------------------------------------------------------------------

    @property
    def needs_reconcile(self) -> bool:
        """True until `reconcile()` succeeds after start, a reconnect, a call that may have happened or
        order states dropped unread (a reader far behind)."""
        return self._needs_reconcile or (self._account is not None and self._account.events.dropped > 0)

    @property
    def fills_streamed(self) -> bool:
        """True when the next `fills_since` serves the stream's fills (no REST call)."""
        return self._account is not None and self._fills.streamed(self._account)

    def _secrets(self) -> tuple[str, ...]:
        c = self._creds
        return (
            c.api_key.get_secret_value(),
            c.private_key.get_secret_value(),
            c.trading_account_id.get_secret_value(),
        )

    def _on_connected(self, endpoint_type: GrvtWSEndpointType) -> None:
        self._connections[endpoint_type] = count = self._connections.get(endpoint_type, 0) + 1
        if endpoint_type is GrvtWSEndpointType.TRADE_DATA and self._account is not None:
            self._account.on_connected()
        if count > 1:
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
                    timeout_s=self.request_timeout_s, on_connected=self._on_connected, trade_data=True,
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
            if self._account is None:
                await self._account_feed(client)
        return client

    async def _account_feed(self, client: _SdkClient) -> None:
        """Subscribe to our fills and order states and connect the trade-data websocket (logged in)."""
        self._account = _AccountFeed(client, self.symbol)
        with base_url_override(self.base_url):
            await self._account.subscribe()
            self._connect(client)
            await client.connect_now(GrvtWSEndpointType.TRADE_DATA)

    def _connect(self, client: _SdkClient) -> None:
        """Start the SDK's connect loop once (it reconnects every websocket that dropped, every 5 s)."""
        if not self._connecting:
            assert self._loop is not None
            self._connecting = True
            self._loop.create_task(client.connect_all_channels(), name=f"grvt-connect-{self.symbol}")

    async def _market_feed(self) -> _MarketFeed:
        client = self._sdk_client()
        if self._feed is None:
            assert self._loop is not None
            with base_url_override(self.base_url):
                self._feed = _MarketFeed(client, self.symbol, self.book_rate_ms, self.book_depth)
                await self._feed.subscribe()
                self._connect(client)
                self._feed.start_watchdog(self._loop, self.stale_after_s)
        return self._feed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._feed is not None:
            self._feed.close()
        if self._account is not None:
            self._account.close()
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
            raise Rejected(
                RejectReason.INVALID_ORDER, message=f"{what}: {_REDACTOR.redact(str(exc))}"
            ) from None

    async def verify_credentials(self) -> None:
        """Log in and read the sub-account once, before any order: GRVT refusing the credentials is a
        ConfigError (exit 2, no restart helps) naming where each refused credential is read from."""
        try:
            await self.balance()
        except ExchangeError as exc:
            if isinstance(exc, TransientExchangeError) or exc.status not in (400, 401, 403):
                raise
            login = not isinstance(exc, GrvtApiError)  # the login itself was refused
            fields = ("api_key",) if login else ("trading_account_id", "api_key")
            refused = " for the ".join(f"{f} from {credential_source(self._refs, f)}" for f in fields)
            detail = exc.message if isinstance(exc, GrvtApiError) else "login refused"
            raise ConfigError(
                f"{self.symbol}: GRVT {self.env.value} refused the {refused} (HTTP {exc.status}: {detail})"
            ) from None

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

    async def stream_order_events(self, symbol: str) -> AsyncGenerator[OrderUpdate | Fill, None]:
        """Our orders' states and our fills as the private streams deliver them, from the first call on
        (a fill here is a notice: take it with `fills_since`, which keeps the cursor)."""
        self._check(symbol)
        await self._ready()
        assert self._account is not None
        async for event in self._account.events.subscribe():
            yield event

    # ----- orders ----------------------------------------------------------------------------------

    @staticmethod
    def _validate(request: OrderRequest, info: InstrumentInfo) -> None:
        if request.price <= 0:
            raise Rejected(RejectReason.PRICE_NOT_POSITIVE)
        if request.size <= 0:
            raise Rejected(RejectReason.SIZE_NOT_POSITIVE)
        if request.price % info.tick_size != 0:
            raise Rejected(RejectReason.PRICE_OFF_TICK)
        if request.size % info.lot_size != 0:
            raise Rejected(RejectReason.SIZE_OFF_LOT)
        if request.size < info.min_size:
            raise Rejected(RejectReason.SIZE_BELOW_MIN)
        coid = request.client_order_id
        if not coid.isdigit() or not 0 < int(coid) < 2**64:
            raise Rejected(
                RejectReason.BAD_CLIENT_ORDER_ID, message=f"GRVT client order ids are uint64, got {coid!r}"
            )

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self._check(request.symbol)
        client = await self._ready()
        info = self._info
        assert info is not None
        self._validate(request, info)
        coid = request.client_order_id
        if coid in self._sent and (known := await self._lookup(coid)) is not None:
            return self._placed(known)  # a retry whose first attempt reached the exchange
        self._sent[coid] = None
        while len(self._sent) > _SENT_MEMORY:
            self._sent.popitem(last=False)
        side = "buy" if request.side is Side.BUY else "sell"
        size, price = (
            f"{request.size.quantize(info.lot_size):f}",
            f"{request.price.quantize(info.tick_size):f}",
        )
        params = {"client_order_id": coid, "post_only": request.post_only,
                  "reduce_only": request.reduce_only, "time_in_force": "GOOD_TILL_TIME",
                  "order_duration_secs": self._order_lifetime_s}  # fmt: skip
        try:
            result = await self._sdk(
                "create_order",
                lambda: client.create_order(request.symbol, "limit", side, size, price, params),
            )
        except GrvtApiError as exc:
            if (
                exc.reason is RejectReason.OVERLAPPING_CLIENT_ORDER_ID
                and (known := await self._lookup(coid)) is not None
            ):
                return self._placed(known)
            raise Rejected(exc.reason, message=str(exc), status=exc.status) from None
        except ExchangeError:
            raise
        except Exception as exc:  # signing: its message could echo the key
            raise ExchangeError(f"create_order: could not sign the order ({type(exc).__name__})") from None
        if not result:
            raise Unavailable("create_order: reply without an order")
        update = parse_order(result)
        if (
            update.reason == RejectReason.OVERLAPPING_CLIENT_ORDER_ID
            and (known := await self._lookup(coid)) is not None
        ):
            return self._placed(known)
        return self._placed(update)

    def _placed(self, update: OrderUpdate) -> OrderUpdate:
        """The order as placed (`Rejected` when refused); one that traded at once makes the next
        `fills_since` read the history, so its caller sees those fills at once."""
        self._fills.taken = self._fills.taken or update.filled_size > 0
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
        """Our fills after `cursor`, oldest first: the streamed ones, or the REST history's (every page,
        joined with the stream by fill id); which one serves, and the cursor: `bots.venues.grvt.fills`."""
        self._check(symbol)
        client = await self._ready()
        assert self._account is not None

        async def fetch_page(start_ns: int | None, limit: int, params: dict[str, str]) -> Any:
            return await self._sdk(
                "fill_history", lambda: client.fetch_my_trades(symbol, start_ns, limit, params)
            )

        return await self._fills.read(self._account, cursor, fetch_page)

    # ----- funding ---------------------------------------------------------------------------------

    async def funding_rate(self, symbol: str) -> FundingRate | None:
        """The ticker's current funding rate (`bots.venues.grvt.funding`)."""
        self._check(symbol)
        client = await self._ready()
        ticker = await self._sdk("ticker", lambda: client.fetch_ticker(symbol))
        return parse_funding_rate(ticker if isinstance(ticker, dict) else None, symbol)

    async def funding_since(self, symbol: str, cursor: str | None) -> tuple[list[FundingPayment], str | None]:
        """Our funding payments after `cursor`, oldest first, from GRVT's funding payment history
        (every page from the cursor's time on); the cursor is the fills' kind."""
        self._check(symbol)
        client = await self._ready()
        last_ns, _ = decode_cursor(cursor)
        account = self._secrets()[2]

        async def fetch_page(page: str | None) -> Any:
            body: dict[str, Any] = {"sub_account_id": account, "instrument": symbol, "limit": PAGE_LIMIT}
            if page:
                body["cursor"] = page
            elif last_ns:
                body["start_time"] = str(last_ns)
            return await self._sdk(  # the path inside the call: `base_url_override` applies there
                "funding_payment_history", lambda: client._auth_and_post(funding_history_path(self.env), body)
            )

        return new_payments(await every_page("funding_payment_history", fetch_page), symbol, cursor)

    # ----- reconciliation --------------------------------------------------------------------------

    async def reconcile(
        self,
        known_client_order_ids: Collection[str] = (),
        cursor: str | None = None,
        *,
        spare: Callable[[str], bool] | None = None,
    ) -> ReconcileReport:
        """Fills since `cursor`, position and open orders against the orders the bot knows; unknown
        orders are reported, and cancelled when `exchange.cancel_unknown_orders` is set (unless
        `spare` accepts their client order id)."""
        self._needs_reconcile = False
        self._fills.reconciling = True
        if self._account is not None:
            self._account.events.dropped = 0
        try:
            return await reconcile(
                self, self.symbol, known_client_order_ids, cursor,
                cancel_unknown=self.cancel_unknown_orders, position_detail=self.position_detail,
                cancel=self._cancel, spare=spare,
            )  # fmt: skip
        except BaseException:
            self._needs_reconcile = True
            raise
        finally:
            self._fills.reconciling = False
