"""What a worker writes once a second and reads back at start: market features and indicator seeding.

Features recorded here are the regime model's training data, so the row layout is shared with
`ml.features` (mid, relative spread, book imbalance, public trades per second, and the model state
the bot quoted with).
"""

from __future__ import annotations

import math

from bots.engine.quoter import QuoteDecision, QuoteEngine
from bots.exchange.base import BookUpdate
from bots.regime_blend import RegimeBlend
from bots.store import Ledger

__all__ = ["SEED_WINDOW_NS", "market_features", "seed_from_history"]

SEED_WINDOW_NS = 3600 * 1_000_000_000  # an hour of recorded history warms the indicators up
_SEED_TICKS = 5_000


def market_features(
    book: BookUpdate, decision: QuoteDecision, trade_intensity: float | None = None
) -> dict[str, float] | None:
    """The feature row of this moment; None without a two-sided book or a mid. `trade_intensity`
    (public trades per second since the last row) is left out when unknown (the first row)."""
    if not book.bids or not book.asks or math.isnan(decision.mid):
        return None
    bid, ask = book.bids[0], book.asks[0]
    depth = float(bid.size + ask.size)
    row = {
        "mid": decision.mid,
        "spread": float(ask.price - bid.price) / decision.mid,
        "sigma": decision.sigma,
        "imbalance": float(bid.size - ask.size) / depth if depth > 0 else 0.0,
        "reservation_price": decision.reservation_price,
        "gamma": decision.gamma,
        "kappa": decision.kappa,
    }
    if trade_intensity is not None:
        row["trade_intensity"] = trade_intensity
    return row


def seed_from_history(
    engine: QuoteEngine,
    regime: RegimeBlend,
    ledger: Ledger,
    *,
    symbol: str,
    bot: str,
    flat: bool,
    now_ns: int,
) -> int:
    """No warm-up wait: replay the last hour of recorded mids of `symbol` (any bot) into the engine's
    indicators, and this bot's own rows into the regime features. Returns the ticks replayed."""
    since = now_ns - SEED_WINDOW_NS
    rows = ledger.features(symbol, since_ts_ns=since)[-_SEED_TICKS:]
    for row in rows:
        mid = row.values.get("mid")
        if mid is not None and mid > 0:
            engine.observe(mid, row.ts_ns, flat)
    regime.seed(ledger.features(symbol, since_ts_ns=since, bot=bot))
    return len(rows)
