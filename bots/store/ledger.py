"""The ledger: the append-only record of what each bot did, and the state it restarts from.

A fill is durable when `record_fill` returns (the transaction is committed; SQLite syncs its WAL with
`synchronous=FULL`), so a bot acknowledges a fill only after recording it. Recording is idempotent on
(bot, fill_id): the exchange may deliver a fill twice (reconnect, replay after restart) and the second
copy changes nothing. A restart rebuilds the `Portfolio` by replaying the bot's fills in the order they
were recorded, which is the order the live bot applied them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Row, Text, cast, func, select

from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.exchange.base import Fill, OrderStatus, OrderUpdate
from bots.safe_json import decode_json
from bots.store.alerts import AlertLog
from bots.store.control import ControlPlane
from bots.store.funding import FundingLog
from bots.store.identity import StoreIdentity
from bots.store.locks import WorkerLocks
from bots.store.markouts import MarkoutLog
from bots.store.schema import (
    FEATURE_COLUMNS,
    MONEY_SCALE,
    bot_state,
    equity_history,
    fills,
    market_features,
    orders,
    position_snapshots,
)

__all__ = ["EquityPoint", "FeatureRow", "Ledger", "position_row"]

FILL_CURSOR_KEY = "fill_cursor"
PEAK_EQUITY_KEY = "peak_equity"
MAX_STATE_BYTES = 64 * 1024
_FEATURES = frozenset(FEATURE_COLUMNS)
log = logging.getLogger("mmfleet.store")


def _stored_decimal(value: Any) -> Decimal | None:
    """A finite decimal kept as text (peak equity), or None when the stored value is not one."""
    try:
        number = Decimal(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    except InvalidOperation:
        number = None
    return number if number is not None and number.is_finite() else None


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Equity of a bot at one time, and the highest equity seen up to then (drawdown reference)."""

    ts_ns: int
    equity: Decimal
    peak_equity: Decimal


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One recorded set of model features; a feature not computed yet is None."""

    bot: str
    symbol: str
    ts_ns: int
    values: Mapping[str, float | None]


def position_row(bot: str, portfolio: Portfolio, *, mark: Decimal | None, ts_ns: int) -> dict[str, Any]:
    """A position snapshot's values, read now: the portfolio keeps changing after the record is handed
    to the store thread."""
    if portfolio.symbol is None:
        raise ValueError("a position snapshot needs a Portfolio with a symbol")
    return {
        "bot": bot,
        "symbol": portfolio.symbol,
        "ts_ns": ts_ns,
        "position": portfolio.position,
        "entry_price": portfolio.entry_price,
        "cash": portfolio.cash,
        "realized_pnl": portfolio.realized_pnl,
        "grid_profit": portfolio.grid_profit,
        "fees": portfolio.fees,
        "volume": portfolio.volume,
        "mark": mark,
    }


def _check_scale(fill: Fill) -> None:
    # The database keeps 18 decimal places; a finer value would not replay to the same numbers.
    for name in ("price", "size", "fee"):
        value: Decimal = getattr(fill, name)
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -MONEY_SCALE:
            raise ValueError(f"fill {fill.fill_id}: {name}={value} has more than {MONEY_SCALE} decimals")


def _feature_row(row: Row[Any]) -> FeatureRow:
    return FeatureRow(row.bot, row.symbol, row.ts_ns, {name: row._mapping[name] for name in FEATURE_COLUMNS})


def _fill(row: Row[Any]) -> Fill:
    return Fill(
        fill_id=row.fill_id,
        symbol=row.symbol,
        client_order_id=row.client_order_id,
        side=Side(row.side),
        price=row.price,
        size=row.size,
        fee=row.fee,
        ts_ns=row.ts_ns,
        is_taker=bool(row.is_taker),
    )


def _order(row: Row[Any]) -> OrderUpdate:
    return OrderUpdate(
        symbol=row.symbol,
        client_order_id=row.client_order_id,
        exchange_order_id=row.exchange_order_id,
        side=Side(row.side),
        price=row.price,
        size=row.size,
        filled_size=row.filled_size,
        status=OrderStatus(row.status),
        reason=row.reason,
        ts_ns=row.ts_ns,
    )


class Ledger(ControlPlane, WorkerLocks, AlertLog, StoreIdentity, MarkoutLog, FundingLog):
    """The store of one fleet: fills, their markouts, funding payments, orders, positions, equity,
    features, bot state, commands, configs, worker locks, alerts and the store's identity. Open with a
    SQLite path or a PostgreSQL URL (see `bots.store.db.normalise_url`)."""

    # --- fills -------------------------------------------------------------------------------------

    def record_fill(self, bot: str, fill: Fill, *, cursor: str | None = None) -> bool:
        """Append a fill (and optionally the exchange cursor after it) in one committed transaction.
        False when this bot already has this fill_id: nothing was written."""
        return self.record_fills(bot, [fill], cursor=cursor) == 1

    def record_fills(self, bot: str, batch: Iterable[Fill], *, cursor: str | None = None) -> int:
        """Append a batch of fills atomically, with the cursor that follows them; returns how many
        were new."""
        return len(self.record_new_fills(bot, batch, cursor=cursor))

    def record_new_fills(self, bot: str, batch: Iterable[Fill], *, cursor: str | None = None) -> list[Fill]:
        """`record_fills`, answering which fills were new (in order): those are the ones to apply."""
        items = list(batch)
        for fill in items:
            _check_scale(fill)
        now = self._now()
        new: list[Fill] = []
        with self._begin() as connection:
            for fill in items:
                values = {
                    "bot": bot,
                    "symbol": fill.symbol,
                    "fill_id": fill.fill_id,
                    "client_order_id": fill.client_order_id,
                    "side": fill.side.value,
                    "price": fill.price,
                    "size": fill.size,
                    "fee": fill.fee,
                    "is_taker": fill.is_taker,
                    "ts_ns": fill.ts_ns,
                    "recorded_at_ns": now,
                }
                if self._insert_ignore(connection, fills, values, ("bot", "fill_id")):
                    new.append(fill)
            if cursor is not None:
                self._set_state(connection, bot, FILL_CURSOR_KEY, cursor)
        return new

    def fills(self, bot: str, *, since_ts_ns: int | None = None, symbol: str | None = None) -> list[Fill]:
        """The bot's fills in recording order, optionally only those at or after `since_ts_ns`."""
        query = select(fills).where(fills.c.bot == bot).order_by(fills.c.id)
        if since_ts_ns is not None:
            query = query.where(fills.c.ts_ns >= since_ts_ns)
        if symbol is not None:
            query = query.where(fills.c.symbol == symbol)
        with self._begin() as connection:
            return [_fill(row) for row in connection.execute(query)]

    def fill_cursor(self, bot: str) -> str | None:
        """The exchange cursor recorded with the bot's last fills: pass it to `Exchange.fills_since`."""
        value = self.get_state(bot, FILL_CURSOR_KEY)
        return None if value is None else str(value)

    def set_fill_cursor(self, bot: str, cursor: str) -> None:
        """Move the cursor without a fill (an empty page that still advanced it)."""
        self.set_state(bot, FILL_CURSOR_KEY, cursor)

    def restore_portfolio(self, bot: str, symbol: str, starting_balance: Decimal) -> Portfolio:
        """Rebuild the bot's portfolio for `symbol` from its recorded fills and funding payments."""
        return Portfolio.replay(
            self.fills(bot, symbol=symbol),
            starting_balance=starting_balance,
            symbol=symbol,
            funding=self.funding_payments(bot, symbol=symbol),
        )

    # --- orders --------------------------------------------------------------------------------------

    def record_order(self, bot: str, update: OrderUpdate) -> None:
        """Append one state of an order; the history of a client_order_id is its rows in order."""
        self.record_orders(bot, [update])

    def record_orders(self, bot: str, updates: Sequence[OrderUpdate]) -> None:
        """Append several order states in one transaction (one fsync: workers batch them per second)."""
        if not updates:
            return
        now = self._now()
        rows = [
            {
                "bot": bot,
                "symbol": update.symbol,
                "client_order_id": update.client_order_id,
                "exchange_order_id": update.exchange_order_id,
                "side": update.side.value,
                "price": update.price,
                "size": update.size,
                "filled_size": update.filled_size,
                "status": update.status.value,
                "reason": update.reason,
                "ts_ns": update.ts_ns,
                "recorded_at_ns": now,
            }
            for update in updates
        ]
        with self._begin() as connection:
            self._insert_rows(connection, orders, rows)

    def order_history(self, bot: str, client_order_id: str) -> list[OrderUpdate]:
        """Every recorded state of one order, oldest first."""
        query = (
            select(orders)
            .where(orders.c.bot == bot, orders.c.client_order_id == client_order_id)
            .order_by(orders.c.id)
        )
        with self._begin() as connection:
            return [_order(row) for row in connection.execute(query)]

    def latest_orders(self, bot: str, *, open_only: bool = False) -> list[OrderUpdate]:
        """The latest state of each of the bot's orders (only PENDING/OPEN ones with `open_only`)."""
        latest = (
            select(func.max(orders.c.id)).where(orders.c.bot == bot).group_by(orders.c.client_order_id)
        ).scalar_subquery()
        query = select(orders).where(orders.c.id.in_(latest)).order_by(orders.c.id)
        if open_only:
            query = query.where(orders.c.status.in_([OrderStatus.PENDING.value, OrderStatus.OPEN.value]))
        with self._begin() as connection:
            return [_order(row) for row in connection.execute(query)]

    # --- positions, equity, features -------------------------------------------------------------------

    def snapshot_position(
        self, bot: str, portfolio: Portfolio, *, mark: Decimal | None = None, ts_ns: int | None = None
    ) -> None:
        """Record the portfolio's numbers (for reports and dashboards; restarts replay fills instead)."""
        self.record_position(
            position_row(bot, portfolio, mark=mark, ts_ns=self._now() if ts_ns is None else ts_ns)
        )

    def record_position(self, row: Mapping[str, Any]) -> None:
        """Append a `position_row` (taken where the portfolio lives; written later, off the loop)."""
        self.record_positions([row])

    def record_positions(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append `position_row`s with one statement."""
        if not rows:
            return
        with self._begin() as connection:
            self._insert_rows(connection, position_snapshots, rows)

    def latest_position_snapshot(self, bot: str) -> dict[str, Any] | None:
        """The bot's newest position snapshot as a column -> value mapping."""
        query = (
            select(position_snapshots)
            .where(position_snapshots.c.bot == bot)
            .order_by(position_snapshots.c.id.desc())
            .limit(1)
        )
        with self._begin() as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else dict(row._mapping)

    def record_equity(self, bot: str, symbol: str, equity: Decimal, *, ts_ns: int | None = None) -> Decimal:
        """Append an equity point and raise the stored peak if needed; returns the peak (the circuit
        breaker's drawdown reference, which must survive restarts)."""
        return self.record_equities(bot, symbol, [(equity, self._now() if ts_ns is None else ts_ns)])

    def record_equities(
        self,
        bot: str,
        symbol: str,
        points: Sequence[tuple[Decimal, int]],
        *,
        known_peak: Decimal | None = None,
    ) -> Decimal:
        """Append equity points (equity, ts_ns), each with the peak up to it, with one statement, and
        raise the stored peak once; returns the peak. `known_peak`: the stored peak when the caller
        knows it (a store thread remembers the one it wrote), else it is read."""
        if not points:
            raise ValueError("no equity points")
        with self._begin() as connection:
            stored = known_peak
            if stored is None:
                stored = _stored_decimal(self._get_state(connection, bot, PEAK_EQUITY_KEY))
            peak = points[0][0] if stored is None else stored
            rows = []
            for equity, ts_ns in points:
                peak = max(peak, equity)
                rows.append(
                    {"bot": bot, "symbol": symbol, "ts_ns": ts_ns, "equity": equity, "peak_equity": peak}
                )
            if peak != stored:
                self._set_state(connection, bot, PEAK_EQUITY_KEY, str(peak))
            self._insert_rows(connection, equity_history, rows)
        return peak

    def peak_equity(self, bot: str) -> Decimal | None:
        """The highest equity ever recorded for the bot, or None before the first point."""
        return _stored_decimal(self.get_state(bot, PEAK_EQUITY_KEY))

    def reset_peak_equity(self, bot: str, value: Decimal) -> None:
        """Set the peak explicitly (an operator re-arming the drawdown limit after a deposit or reset)."""
        self.set_state(bot, PEAK_EQUITY_KEY, str(value))

    def equity_history(self, bot: str, *, since_ts_ns: int | None = None) -> list[EquityPoint]:
        """The bot's equity points in time order."""
        query = (
            select(equity_history)
            .where(equity_history.c.bot == bot)
            .order_by(equity_history.c.ts_ns, equity_history.c.id)
        )
        if since_ts_ns is not None:
            query = query.where(equity_history.c.ts_ns >= since_ts_ns)
        with self._begin() as connection:
            return [EquityPoint(r.ts_ns, r.equity, r.peak_equity) for r in connection.execute(query)]

    def record_features(
        self, bot: str, symbol: str, ts_ns: int, features: Mapping[str, float | None]
    ) -> None:
        """Append a row of model features; names outside `FEATURE_COLUMNS` are refused."""
        self.record_feature_rows(bot, symbol, [(ts_ns, features)])

    def record_feature_rows(
        self, bot: str, symbol: str, rows: Sequence[tuple[int, Mapping[str, float | None]]]
    ) -> None:
        """Append rows of model features (ts_ns, features) with one statement; names outside
        `FEATURE_COLUMNS` are refused."""
        if not rows:
            return
        values = []
        for ts_ns, features in rows:
            unknown = set(features) - _FEATURES
            if unknown:
                raise ValueError(f"unknown features {sorted(unknown)}; known: {', '.join(FEATURE_COLUMNS)}")
            row = {name: None if value is None else float(value) for name, value in features.items()}
            values.append({"bot": bot, "symbol": symbol, "ts_ns": ts_ns, **row})
        with self._begin() as connection:
            self._insert_rows(connection, market_features, values)

    def features(
        self,
        symbol: str,
        *,
        since_ts_ns: int | None = None,
        until_ts_ns: int | None = None,
        bot: str | None = None,
    ) -> list[FeatureRow]:
        """Recorded features of `symbol` in time order, within [since, until)."""
        query = (
            select(market_features)
            .where(market_features.c.symbol == symbol)
            .order_by(market_features.c.ts_ns, market_features.c.id)
        )
        if since_ts_ns is not None:
            query = query.where(market_features.c.ts_ns >= since_ts_ns)
        if until_ts_ns is not None:
            query = query.where(market_features.c.ts_ns < until_ts_ns)
        if bot is not None:
            query = query.where(market_features.c.bot == bot)
        with self._begin() as connection:
            return [_feature_row(r) for r in connection.execute(query)]

    def last_features(self, symbol: str, *, since_ts_ns: int | None = None) -> FeatureRow | None:
        """The newest recorded row of `symbol` (at or after `since_ts_ns`), or None: one row read."""
        query = (
            select(market_features)
            .where(market_features.c.symbol == symbol)
            .order_by(market_features.c.ts_ns.desc(), market_features.c.id.desc())
            .limit(1)
        )
        if since_ts_ns is not None:
            query = query.where(market_features.c.ts_ns >= since_ts_ns)
        with self._begin() as connection:
            row = connection.execute(query).first()
        return _feature_row(row) if row is not None else None

    # --- bot state -------------------------------------------------------------------------------------

    def get_state(self, bot: str, key: str, default: Any = None) -> Any:
        """A JSON value the bot kept across restarts (peak equity, a latched circuit breaker...)."""
        with self._begin() as connection:
            value = self._get_state(connection, bot, key)
        return default if value is None else value

    def set_state(self, bot: str, key: str, value: Any) -> None:
        """Store a JSON-able value (write Decimals as strings)."""
        with self._begin() as connection:
            self._set_state(connection, bot, key, value)

    def _get_state(self, connection: Connection, bot: str, key: str) -> Any:
        """The decoded value, or None (the caller's default) when there is none or it is unreadable:
        a corrupt row must not stop a bot from starting, so it is logged and read as absent."""
        query = select(cast(bot_state.c.value, Text)).where(bot_state.c.bot == bot, bot_state.c.key == key)
        raw = connection.execute(query).scalar_one_or_none()
        if raw is None:
            return None
        try:
            return decode_json(raw, max_bytes=MAX_STATE_BYTES)
        except ValueError as exc:
            log.warning("unreadable bot state ignored", extra={"fields": {"bot": bot, "key": key,
                        "reason": str(exc)}})  # fmt: skip
            return None

    def _set_state(self, connection: Connection, bot: str, key: str, value: Any) -> None:
        values = {"bot": bot, "key": key, "value": value, "updated_at_ns": self._now()}
        self._insert_rows(connection, bot_state, [values], conflict=("bot", "key"))
