"""GRVT JSON objects built from the local exchange's accounts and orders: Order, OrderStateFeed, Fill,
Positions, SubAccount. Field sets follow `pysdk.grvt_raw_types` exactly. An instrument's own objects
(Instrument, Ticker/MiniTicker, the book) are built in `instruments`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bots.venues.grvt.server.accounts import SubAccount
from bots.venues.grvt.server.book import BookOrder, Match
from bots.venues.grvt.server.wire import ZERO, fmt

__all__ = [
    "account_summary",
    "fill_payload",
    "order_payload",
    "order_state_feed",
    "position_payload",
]


def _state(order: BookOrder) -> dict[str, Any]:
    return {
        "status": order.status,
        "reject_reason": order.reject_reason,
        "book_size": [fmt(order.remaining if order.status == "OPEN" else ZERO)],
        "traded_size": [fmt(order.traded)],
        "update_time": str(order.update_time_ns),
        "avg_fill_price": [fmt(order.avg_fill_price)],
    }


def order_payload(order: BookOrder) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "sub_account_id": order.sub_account_id,
        "is_market": order.price is None,
        "time_in_force": order.time_in_force,
        "post_only": order.post_only,
        "reduce_only": order.reduce_only,
        "legs": [
            {
                "instrument": order.instrument,
                "size": fmt(order.size),
                "limit_price": fmt(order.price if order.price is not None else ZERO),
                "is_buying_asset": order.is_buy,
            }
        ],
        "signature": dict(order.signature),
        "metadata": {"client_order_id": order.client_order_id, "create_time": str(order.create_time_ns)},
        "state": _state(order),
    }


def order_state_feed(order: BookOrder) -> dict[str, Any]:
    """The `state` stream's `OrderStateFeed`."""
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "order_state": _state(order),
    }


def fill_payload(
    match: Match, now_ns: int, fee: Decimal, fee_rate: Decimal, realized: Decimal, mark: Decimal
) -> dict[str, Any]:
    """A private `Fill`; `fee` negative is a rebate, `fee_rate` a fraction of notional."""
    order = match.order
    return {
        "event_time": str(now_ns),
        "sub_account_id": order.sub_account_id,
        "instrument": order.instrument,
        "is_buyer": order.is_buy,
        "is_taker": match.is_taker,
        "size": fmt(match.size),
        "price": fmt(match.price),
        "mark_price": fmt(mark),
        "index_price": fmt(mark),
        "interest_rate": "0",
        "forward_price": "0",
        "realized_pnl": fmt(realized),
        "fee": fmt(fee),
        "fee_rate": fmt(fee_rate),
        "trade_id": match.trade_id,
        "order_id": order.order_id,
        "venue": "ORDERBOOK",
        "client_order_id": order.client_order_id,
        "signer": order.signer,
        "is_rpi": False,
    }


def position_payload(
    account: SubAccount, instrument: str, mark: Decimal, now_ns: int, leverage: Decimal
) -> dict[str, Any]:
    position = account.position(instrument)
    unrealized = (mark - position.entry_price) * position.size if position.size else ZERO
    total = unrealized + position.realized_pnl
    cost = position.entry_price * abs(position.size)
    return {
        "event_time": str(now_ns),
        "sub_account_id": account.sub_account_id,
        "instrument": instrument,
        "size": fmt(position.size),
        "notional": fmt(position.size * mark),
        "entry_price": fmt(position.entry_price),
        "exit_price": fmt(position.exit_price),
        "mark_price": fmt(mark),
        "unrealized_pnl": fmt(unrealized),
        "realized_pnl": fmt(position.realized_pnl),
        "total_pnl": fmt(total),
        "roi": fmt((total / cost * 100).quantize(Decimal("0.0001")) if cost else ZERO),
        "quote_index_price": "1",
        "est_liquidation_price": "0",
        "leverage": fmt(leverage),
    }


def account_summary(
    account: SubAccount, marks: Mapping[str, Decimal], now_ns: int, leverage: Decimal
) -> dict[str, Any]:
    """`SubAccount`: equity = USDT balance + unrealized PnL; initial margin = |notional| / leverage,
    maintenance half of it; available = equity - initial margin - min(unrealized, 0)."""
    held = [(n, p) for n, p in account.positions.items() if p.size]
    unrealized = sum(((marks[n] - p.entry_price) * p.size for n, p in held), ZERO)
    initial = sum((abs(p.size) * marks[n] for n, p in held), ZERO) / leverage
    equity = account.balance + unrealized
    return {
        "event_time": str(now_ns),
        "sub_account_id": account.sub_account_id,
        "margin_type": "SIMPLE_CROSS_MARGIN",
        "settle_currency": "USDT",
        "unrealized_pnl": fmt(unrealized),
        "total_equity": fmt(equity),
        "initial_margin": fmt(initial),
        "maintenance_margin": fmt(initial / 2),
        "available_balance": fmt(equity - initial - min(unrealized, ZERO)),
        "spot_balances": [{"currency": "USDT", "balance": fmt(account.balance), "index_price": "1"}],
        "positions": [position_payload(account, n, marks[n], now_ns, leverage) for n, _ in held],
        "settle_index_price": "1",
        "derisk_margin": "0",
        "derisk_to_maintenance_margin_ratio": "1",
        "is_vault": False,
    }
