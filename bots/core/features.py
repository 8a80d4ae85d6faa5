"""The market features a bot records once a second: the regime model's training data and live input.

The row layout is shared with `ml.features` (mid, relative spread, book imbalance, public trades per
second, and the model state the bot quoted with).
"""

from __future__ import annotations

import math

from bots.engine.quoter import QuoteDecision
from bots.exchange.events import BookUpdate

__all__ = ["market_features"]


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
