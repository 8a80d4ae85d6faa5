"""What a bot restarts from, read in one go on its store thread (`StoreWriter.call(load_bot)`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bots.engine.portfolio import Portfolio
from bots.engine.risk import RiskState
from bots.store.funding import FUNDING_CURSOR_KEY
from bots.store.ledger import FeatureRow, Ledger

__all__ = ["ENABLED_KEY", "RISK_KEY", "StoredBot", "load_bot"]

ENABLED_KEY = "trading_enabled"
RISK_KEY = "risk_state"
_SEED_TICKS = 5_000

log = logging.getLogger("mmfleet.worker")


@dataclass(frozen=True, slots=True)
class StoredBot:
    """The ledger's side of a bot at start: fills and funding replayed, the fill and funding cursors,
    peak, the operator's and the risk engine's latches (raw: the worker validates them), and recorded
    features to warm up from."""

    portfolio: Portfolio
    cursor: str | None
    funding_cursor: str | None
    peak_equity: Decimal | None
    enabled: Any
    risk: Any
    symbol_features: list[FeatureRow]  # the symbol's newest rows, any bot (indicator seed)
    own_features: list[FeatureRow]  # this bot's rows (regime model seed)

    def halts(self) -> tuple[RiskState, str | None]:
        """The risk trips and the other-store halt kept in the ledger; a value that is not what the
        worker writes fails closed (breaker tripped: no quoting until an operator's `reset-risk`), never
        a crash."""
        value = self.risk
        if isinstance(value, dict):
            trips = {k: v for k, v in value.items() if k != "other_store"}
            other = value.get("other_store")
            readable = set(trips) <= {"breaker_tripped", "drawdown_tripped"}
            readable = readable and all(type(v) is bool for v in trips.values())
            if readable and (other is None or isinstance(other, str)):
                return RiskState(**trips), other
        log.warning("stored risk state unreadable: breaker tripped until `mmfleet ctl reset-risk`")
        return RiskState(breaker_tripped=True), None


def load_bot(
    ledger: Ledger, *, bot: str, symbol: str, starting_balance: Decimal, features_since_ns: int
) -> StoredBot:
    return StoredBot(
        portfolio=ledger.restore_portfolio(bot, symbol, starting_balance),
        cursor=ledger.fill_cursor(bot),
        funding_cursor=None
        if (funding := ledger.get_state(bot, FUNDING_CURSOR_KEY)) is None
        else str(funding),
        peak_equity=ledger.peak_equity(bot),
        enabled=ledger.get_state(bot, ENABLED_KEY, True),
        risk=ledger.get_state(bot, RISK_KEY, {}),
        symbol_features=ledger.features(symbol, since_ts_ns=features_since_ns)[-_SEED_TICKS:],
        own_features=ledger.features(symbol, since_ts_ns=features_since_ns, bot=bot),
    )
