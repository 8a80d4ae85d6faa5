"""The local GRVT exchange without its transport: instruments, synthetic markets, books and accounts,
and one handler per GRVT endpoint (`SimExchange.call`), shared by REST and websocket JSON-RPC.

Orders are validated in GRVT's order (codes in `wire.ERRORS`), their EIP-712 signature checked
(`signing`), then matched (`book`). A validation or signature failure is an error reply; an
order the matching engine refuses comes back as an order with state REJECTED (FAIL_POST_ONLY, or an
injected reject) or CANCELLED (IOC_CANCEL, FOK_CANCEL, MARKET_CANCEL, SELF_TRADE_PROTECTION): the sim
answers with the final state at once, where GRVT may first answer PENDING. Every change is also pushed
to the `ExchangeListener` (the websocket hub) as GRVT feed payloads.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from bots.exchange.sim.funding import Settlement
from bots.venues.grvt.server.accounts import Accounts, Session, SubAccount
from bots.venues.grvt.server.book import BookOrder, Match
from bots.venues.grvt.server.config import GrvtSimConfig
from bots.venues.grvt.server.faults import Faults
from bots.venues.grvt.server.funding import page, payments_page
from bots.venues.grvt.server.instruments import Instrument, MarketData, build_instruments
from bots.venues.grvt.server.orders import parse_order
from bots.venues.grvt.server.payloads import (
    account_summary,
    fill_payload,
    order_payload,
    order_state_feed,
    position_payload,
)
from bots.venues.grvt.server.wire import ZERO, GrvtApiError, fmt, public_trade, str_list

__all__ = ["ExchangeListener", "Instrument", "SimExchange"]

Handler = Callable[[Session | None, Mapping[str, Any]], dict[str, Any]]


class ExchangeListener(Protocol):
    """Receives every change as GRVT feed payloads (the websocket hub implements it)."""

    def on_market(self, instrument: str) -> None: ...

    def on_trade(self, instrument: str, trade: dict[str, Any]) -> None: ...

    def on_private(self, stream: str, sub_account_id: str, instrument: str, feed: dict[str, Any]) -> None: ...


class _NoListener:
    def on_market(self, instrument: str) -> None:
        pass

    def on_trade(self, instrument: str, trade: dict[str, Any]) -> None:
        pass

    def on_private(self, stream: str, sub_account_id: str, instrument: str, feed: dict[str, Any]) -> None:
        pass


class SimExchange:
    """See the module docstring. Not thread-safe: drive it from one event loop."""

    def __init__(
        self,
        config: GrvtSimConfig,
        faults: Faults | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.faults = faults if faults is not None else Faults()
        self.listener: ExchangeListener = _NoListener()
        self.clock = clock
        self.accounts = Accounts(
            starting_balance=config.starting_balance_usdt,
            signers=config.signers,
            balances=config.balances_usdt,
            session_ttl_s=config.session_ttl_s,
        )
        self._trade_ids = itertools.count(1)
        self._order_ids = itertools.count(1)
        self._order_prefix = secrets.randbits(32)
        now = clock()
        self.instruments = build_instruments(config, now, self._next_trade_id)
        self.market_data = MarketData(self.instruments, config.base_decimals, clock)
        md = self.market_data
        self.handlers: dict[str, tuple[bool, Handler]] = {
            "instrument": (False, lambda s, b: md.instrument(b)),
            "instruments": (False, lambda s, b: md.instruments(b)),
            "all_instruments": (False, lambda s, b: md.instruments(b)),
            "book": (False, lambda s, b: md.book(b)),
            "ticker": (False, lambda s, b: md.ticker(b, mini=False)),
            "mini": (False, lambda s, b: md.ticker(b, mini=True)),
            "trade": (False, lambda s, b: md.trades(b)),
            "trade_history": (False, lambda s, b: md.trades(b) | {"next": ""}),
            "kline": (False, lambda s, b: {"result": [], "next": ""}),
            "funding": (False, lambda s, b: md.of(b).funding.rates(b)),
            "create_order": (True, self._create_order),
            "cancel_order": (True, self._cancel_order),
            "cancel_all_orders": (True, self._cancel_all_orders),
            "open_orders": (True, self._open_orders),
            "order": (True, self._get_order),
            "order_history": (True, self._order_history),
            "positions": (True, self._positions),
            "fill_history": (True, self._fill_history),
            "funding_payment_history": (True, self._funding_payment_history),
            "account_summary": (True, self._account_summary),
            "aggregated_account_summary": (True, self._main_summary),
            "funding_account_summary": (True, self._main_summary),
        }

    # -- entry points -----------------------------------------------------------------------------
    def call(self, name: str, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        """Handle `full/v1/<name>`; returns the reply body or raises `GrvtApiError`."""
        entry = self.handlers.get(name)
        if entry is None:
            raise GrvtApiError(1004, f"unknown endpoint {name}")
        private, handler = entry
        if private and session is None:
            raise GrvtApiError(1000)
        return handler(session, body)

    def book_payload(self, instrument: Instrument, depth: int) -> dict[str, Any]:
        """The visible book of an instrument (synthetic levels and client orders), `depth` levels."""
        return self.market_data.book_payload(instrument, depth)

    def step(self, n: int = 1) -> None:
        """Advance every synthetic market `n` steps, filling the resting orders it reaches."""
        for _ in range(n):
            for instrument in self.instruments.values():
                self._step(instrument)

    def _step(self, instrument: Instrument) -> None:
        book, trades = instrument.market.step()
        now = self.clock()
        instrument.last = book
        fraction = self.faults.partial_fraction
        matches: list[Match] = []
        for trade in trades:
            trade_id = self._next_trade_id()
            payload = public_trade(
                event_time_ns=now,
                instrument=instrument.name,
                is_taker_buyer=trade.taker_side.value == "buy",
                size=trade.size,
                price=trade.price,
                mark_price=instrument.mark,
                trade_id=trade_id,
            )
            instrument.trades.append(payload)
            self.listener.on_trade(instrument.name, payload)
            matches += instrument.book.on_trade(trade, book, trade_id, fraction, now)
        matches += instrument.book.on_book(book, fraction, now)
        self._settle(matches, now)
        for order in instrument.book.expire(now):
            self._changed(order)
        for settlement in instrument.funding.advance(book.ts_ns):
            self._fund(instrument, settlement)
        self.listener.on_market(instrument.name)

    def _fund(self, instrument: Instrument, settlement: Settlement) -> None:
        """A funding time: every open position on the instrument pays `size * mark * rate` (GRVT's
        amount, positive when paid: a long under a positive rate), received when negative."""
        mark, rate, funding_ns = instrument.mark, settlement.rate, settlement.ts_ns
        instrument.funding.settled(settlement, mark)
        for account in self.accounts.sub_accounts.values():
            position = account.positions.get(instrument.name)
            if position is None or not position.size:
                continue
            paid = position.size * mark * rate
            account.balance -= paid
            account.funding.append(
                {
                    "event_time": str(funding_ns),
                    "sub_account_id": account.sub_account_id,
                    "instrument": instrument.name,
                    "currency": instrument.quote,
                    "amount": fmt(paid),
                    "tx_id": f"funding-{instrument.name}-{funding_ns}",
                }
            )

    # -- orders -----------------------------------------------------------------------------------
    def _create_order(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        raw = body.get("order")
        if not isinstance(raw, Mapping):
            raise GrvtApiError(1003, "order is required")
        account = self.accounts.sub_account(session, raw.get("sub_account_id"), for_order=True)
        parsed = parse_order(raw, self.instruments, account, self.config, now)
        instrument = self.instruments[parsed.instrument]
        order = BookOrder(
            order_id=f"0x{self._order_prefix:08x}{next(self._order_ids):024x}",
            sub_account_id=account.sub_account_id,
            client_order_id=parsed.client_order_id,
            instrument=parsed.instrument,
            is_buy=parsed.is_buy,
            price=parsed.price,
            size=parsed.size,
            time_in_force=parsed.time_in_force,
            post_only=parsed.post_only,
            reduce_only=parsed.reduce_only,
            signature=parsed.signature,
            create_time_ns=now,
            expiration_ns=parsed.expiration_ns,
            update_time_ns=now,
            signer=parsed.signer,
        )
        injected = self.faults.take_reject()
        if isinstance(injected, int):
            raise GrvtApiError(injected)
        account.active[order.order_id] = order
        matches = self._match(order, instrument, injected, now)
        self._settle(matches, now)
        self._changed(order)
        return {"result": order_payload(order)}

    def _match(self, order: BookOrder, instrument: Instrument, injected: str | None, now: int) -> list[Match]:
        book, market = instrument.book, instrument.last
        if injected is not None:
            order.finish("REJECTED", injected, now)
            return []
        crosses = book.crosses(order, market)
        if crosses and order.post_only:
            order.finish("REJECTED", "FAIL_POST_ONLY", now)
            return []
        if order.time_in_force == "FILL_OR_KILL":
            _, available, _ = book.take(order, market, now, dry_run=True)
            if available < order.size:
                order.finish("CANCELLED", "FOK_CANCEL", now)
                return []
        matches: list[Match] = []
        self_trade = False
        if crosses:
            matches, _, self_trade = book.take(order, market, now)
            for match in matches:
                if match.is_taker:
                    trade = public_trade(
                        event_time_ns=now,
                        instrument=instrument.name,
                        is_taker_buyer=order.is_buy,
                        size=match.size,
                        price=match.price,
                        mark_price=instrument.mark,
                        trade_id=match.trade_id,
                    )
                    instrument.trades.append(trade)
                    self.listener.on_trade(instrument.name, trade)
        if order.status != "FILLED":
            if self_trade:
                order.finish("CANCELLED", "SELF_TRADE_PROTECTION", now)
            elif order.price is None:
                order.finish("CANCELLED", "MARKET_CANCEL", now)
            elif order.time_in_force == "IMMEDIATE_OR_CANCEL":
                order.finish("CANCELLED", "IOC_CANCEL", now)
            else:
                book.rest(order, market)
        return matches

    def _settle(self, matches: list[Match], now: int) -> None:
        """Book the fills into accounts and tell the listener."""
        for match in matches:
            order = match.order
            account = self.accounts.sub_accounts[order.sub_account_id]
            rate = self.config.taker_fee_rate if match.is_taker else self.config.maker_fee_rate
            fee = match.price * match.size * rate
            position = account.position(order.instrument)
            realized = position.apply(order.is_buy, match.size, match.price)
            account.balance += realized - fee
            fill = fill_payload(match, now, fee, rate, realized, self.instruments[order.instrument].mark)
            account.fills.append(fill)
            self.listener.on_private("fill", account.sub_account_id, order.instrument, fill)
            self.listener.on_private(
                "position",
                account.sub_account_id,
                order.instrument,
                position_payload(
                    account,
                    order.instrument,
                    self.instruments[order.instrument].mark,
                    now,
                    self.config.leverage,
                ),
            )
            if not match.is_taker:  # an incoming taker's change is pushed once by `_create_order`
                self._changed(order)

    def _changed(self, order: BookOrder) -> None:
        """An order's state moved: archive it when final, push `order` and `state` feeds."""
        account = self.accounts.sub_accounts[order.sub_account_id]
        if order.status not in ("PENDING", "OPEN"):
            account.finish(order)
        self.listener.on_private("order", order.sub_account_id, order.instrument, order_payload(order))
        self.listener.on_private("state", order.sub_account_id, order.instrument, order_state_feed(order))

    def _account(self, session: Session | None, body: Mapping[str, Any]) -> SubAccount:
        return self.accounts.sub_account(session, body.get("sub_account_id"))

    def _filtered(self, body: Mapping[str, Any]) -> set[str]:
        kinds, bases, quotes = str_list(body, "kind"), str_list(body, "base"), str_list(body, "quote")
        return {n for n, i in self.instruments.items() if i.matches_filter(kinds, bases, quotes)}

    def _cancel(self, order: BookOrder, reason: str, now: int) -> None:
        self.instruments[order.instrument].book.remove(order)
        order.finish("CANCELLED", reason, now)
        self._changed(order)

    def _cancel_order(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account = self._account(session, body)
        order_id, client_id = body.get("order_id"), body.get("client_order_id")
        if not order_id and client_id is None:
            raise GrvtApiError(1003, "order_id or client_order_id is required")
        order = account.order(str(order_id) if order_id else None, str(client_id))
        if order is None or order.order_id not in account.active:
            raise GrvtApiError(1004, "order not found or no longer open")
        self._cancel(order, "CLIENT_CANCEL", self.clock())
        return {"result": {"ack": True}}

    def _cancel_all_orders(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account, names, now = self._account(session, body), self._filtered(body), self.clock()
        for order in [o for o in account.active.values() if o.instrument in names]:
            self._cancel(order, "CLIENT_BULK_CANCEL", now)
        return {"result": {"ack": True}}

    def _open_orders(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account, names = self._account(session, body), self._filtered(body)
        return {"result": [order_payload(o) for o in account.active.values() if o.instrument in names]}

    def _get_order(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account = self._account(session, body)
        order_id, client_id = body.get("order_id"), body.get("client_order_id")
        order = account.order(
            str(order_id) if order_id else None, None if client_id is None else str(client_id)
        )
        if order is None:
            raise GrvtApiError(1004)
        return {"result": order_payload(order)}

    def _order_history(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account, names = self._account(session, body), self._filtered(body)
        limit = max(1, min(int(body.get("limit") or 500), 1000))
        orders = [o for o in reversed(account.finished.values()) if o.instrument in names][:limit]
        return {"result": [order_payload(o) for o in orders], "next": ""}

    def _positions(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account, names, now = self._account(session, body), self._filtered(body), self.clock()
        held = [n for n, p in account.positions.items() if p.size and n in names]
        lev = self.config.leverage
        return {"result": [position_payload(account, n, self.instruments[n].mark, now, lev) for n in held]}

    def _fill_history(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account = self._account(session, body)
        names = {body["instrument"]} if body.get("instrument") else self._filtered(body)
        return page([f for f in reversed(account.fills) if f["instrument"] in names], body, "event_time")

    def _funding_payment_history(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        return payments_page(self._account(session, body).funding, body)

    def _account_summary(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        account = self._account(session, body)
        marks = {n: i.mark for n, i in self.instruments.items()}
        return {"result": account_summary(account, marks, self.clock(), self.config.leverage)}

    def _main_summary(self, session: Session | None, body: Mapping[str, Any]) -> dict[str, Any]:
        assert session is not None
        marks = {n: i.mark for n, i in self.instruments.items()}
        now = self.clock()
        equity = sum(
            (
                Decimal(account_summary(a, marks, now, self.config.leverage)["total_equity"])
                for a in self.accounts.sub_accounts.values()
                if a.main_account_id == session.main_account_id
            ),
            ZERO,
        )
        summary = {
            "main_account_id": session.main_account_id,
            "total_equity": fmt(equity),
            "spot_balances": [{"currency": "USDT", "balance": fmt(equity), "index_price": "1"}],
        }
        tier = {
            "tier": 1,
            "futures_taker_fee": 0,
            "futures_maker_fee": 0,
            "options_taker_fee": 0,
            "options_maker_fee": 0,
        }
        return {"result": summary, "tier": tier}

    def _next_trade_id(self) -> str:
        return str(next(self._trade_ids))
