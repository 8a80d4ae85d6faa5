"""Halts in the core: a start does not lift them, `reset_risk` does and re-arms the peak; another store's
orders stop the quoting, and our orders go by id, never by a cancel-all."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bots.core.actions import Action, Cancel, CancelAll, Place, RecordEnabled, RecordPeak, RecordRisk
from bots.core.core import BotCore
from bots.core.orders import OrderIds
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.engine.types import Side
from bots.exchange.events import BookLevel, BookUpdate, Fill
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
SETTINGS = BotSettings.model_validate(
    {
        "symbol": SYMBOL,
        "paper": {"starting_balance_usd": "1000"},
        "risk": {"max_loss_usd": 10_000, "max_position_usd": 100_000, "max_drawdown_pct": 0.05},
    }
)
_S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = _S

    def book(self, mid: int) -> tuple[BookUpdate, int]:
        self.ns += _S
        half = Decimal("0.5")
        bids, asks = (BookLevel(mid - half, Decimal(1)),), (BookLevel(mid + half, Decimal(1)),)
        return BookUpdate(SYMBOL, self.ns, bids, asks), self.ns


@pytest.fixture
def core() -> BotCore:
    portfolio = Portfolio(symbol=SYMBOL, starting_balance=Decimal(1000))
    return BotCore(
        SETTINGS.core_config(), QuoteEngine(SETTINGS.engine_config()), portfolio, OrderIds(1, 2, 0)
    )


def _places(actions: list[Action]) -> list[Place]:
    return [a for a in actions if isinstance(a, Place) and a.post_only]


def _drawdown(core: BotCore, clock: Clock) -> None:
    """Long 0.1 BTC at 50,000 on a 1,000 USD account, then the mid falls 1,000: 10% below the peak."""
    assert _places(core.on_book(*clock.book(50_000)))
    core.on_fill(
        Fill("f1", SYMBOL, "1", Side.BUY, Decimal(50_000), Decimal("0.1"), Decimal(0), clock.ns, False)
    )
    actions = core.on_book(*clock.book(49_000))
    assert RecordRisk(False, True) in actions
    assert core.engine.risk_state.drawdown_tripped


def test_a_start_does_not_lift_a_drawdown_halt(core: BotCore) -> None:
    clock = Clock()
    _drawdown(core, clock)
    assert core.start() == [RecordEnabled(True)]  # no risk record: the trip stays
    reason = core.halt_reason()
    assert reason is not None and reason.startswith("drawdown halt") and "1000.00 USD" in reason
    core.on_all_cancelled()  # the close and the quotes are gone
    assert not _places(core.on_book(*clock.book(49_000)))


def test_reset_risk_lifts_the_halt_and_re_arms_the_peak_at_the_equity_now(core: BotCore) -> None:
    clock = Clock()
    _drawdown(core, clock)
    core.on_all_cancelled()
    actions = core.reset_risk()
    assert actions == [RecordPeak(Decimal("900.00")), RecordRisk(False, False)]  # 1000 - 0.1 * 1000
    assert core.halt_reason() is None and core.peak == 900.0
    for _ in range(3):  # quotes again, and the old peak does not trip it again
        core.on_book(*clock.book(49_000))
        assert not core.engine.risk_state.drawdown_tripped
    assert core.orders.orders


def test_another_stores_orders_stop_the_quoting_and_ours_go_by_id(core: BotCore) -> None:
    clock = Clock()
    ours = _places(core.on_book(*clock.book(50_000)))
    assert ours
    reason = "orders of another mmfleet store rest on this account"
    core.on_other_store(reason)
    assert core.halt_reason() == reason
    actions = core.on_book(*clock.book(50_010))
    assert RecordRisk(False, False, reason) in actions  # persisted: a restart stays halted
    assert not any(isinstance(a, CancelAll | Place) for a in actions)
    assert {a.client_order_id for a in actions if isinstance(a, Cancel)} == {p.client_order_id for p in ours}
    assert core.start() == [RecordEnabled(True)] and core.halt_reason() is not None
    assert RecordRisk(False, False, None) in core.reset_risk()
    assert core.halt_reason() is None
