"""One core: the worker and the backtest decide alike on one recorded, timestamped event sequence.

The backtest runs a synthetic market with order latency, `kappa: auto` (fitted from the public
trades) and `ml.regime_enabled` (a published regime model blends gamma/kappa), journaling every event
its core met and the actions it answered. The same events then go to the core a worker builds from
the same settings; its market records go through the worker's own record path (ledger, regime model,
probabilities back to the core as an event). Every answer must be the backtest's, action for action,
with the blend moving gamma on the way.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from bots.core.actions import Action, RecordMarket, RecordMarkouts, RecordOrders
from bots.core.core import JournalEntry
from bots.core.orders import OrderIds
from bots.engine.portfolio import Portfolio
from bots.exchange.events import Fill
from bots.exchange.factory import make_exchange
from bots.metrics import BotMetrics
from bots.store import Ledger
from bots.worker import BotWorker
from ml.backtest import SyntheticMarket
from ml.backtest_loop import BacktestConfig, BacktestLoop
from ml.live_regime import LiveRegime
from settings.models import BotSettings
from tests.integration.regime_model import train_and_publish


def _settings(model_dir: Path) -> BotSettings:
    return BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            "sim": {"seed": 4, "sigma": 4e-4},
            "strategy": {"spread_pct": 0.0005, "refresh_interval_s": 0.5, "kappa": "auto"},
            "paper": {"touch_fill_probability": 0.5},
            "ml": {"regime_enabled": True, "model_dir": str(model_dir)},
        }
    )


def _backtest_journal(settings: BotSettings, seconds: float) -> list[JournalEntry]:
    regime = LiveRegime(settings.ml.model_dir, settings.ml.max_model_age_s)
    now = time.time()
    assert regime.poll(now) == 1
    loop = BacktestLoop(settings, BacktestConfig(latency_ms=150, seed=1), regime, now)
    journal: list[JournalEntry] = []
    loop.core.journal = journal
    for book, trades in SyntheticMarket(seconds, seed=9).steps(settings):
        loop.step(book, trades)
    return journal


def _decisions(actions: list[Action]) -> list[Action]:
    """What both must agree on: the worker also records order states and markouts; a backtest keeps no
    order log and takes its markouts from its mid curve (the same figures: tests/unit/test_core_markouts)."""
    return [action for action in actions if not isinstance(action, RecordOrders | RecordMarkouts)]


def test_the_worker_core_answers_the_backtest_event_sequence_action_for_action(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "models")
    ledger = Ledger(tmp_path / "ledger.db")
    train_and_publish(ledger, "trainer", settings.symbol, settings.ml.model_dir)
    journal = _backtest_journal(settings, seconds=700)  # the regime features warm up after 600 rows

    methods = {method for method, _, _ in journal}
    assert {"on_book", "on_trade", "on_fill", "on_placed", "on_cancelled", "on_timer", "on_regime"} <= methods
    blended = [args[0] for method, args, _ in journal if method == "on_regime" and args[0] is not None]
    assert blended, "the backtest never blended: the regime model did not answer"

    async def replay() -> list[float]:
        exchange = await make_exchange(settings, Portfolio(symbol=settings.symbol))
        metrics = BotMetrics(CollectorRegistry(), settings.name, settings.symbol, "sim", 7)
        regime = LiveRegime(settings.ml.model_dir, settings.ml.max_model_age_s)
        regime.poll(time.time())
        worker = BotWorker(settings, exchange, ledger, metrics, regime=regime)
        core = worker.core
        core.ids = OrderIds(0, 0, 0)  # the backtest's ids, so that client order ids compare
        gammas: list[float] = []
        try:
            for method, args, expected in journal:
                if method == "on_regime":
                    continue  # the worker's record path derives its own
                actions = getattr(core, method)(*args) or []
                assert _decisions(actions) == expected, f"{method} at event {len(gammas)}"
                await worker.perform([a for a in actions if isinstance(a, RecordMarket)])
                gammas.append(core.engine.gamma)
        finally:
            await exchange.close()
        assert core.portfolio.position == Decimal(sum(f.size * f.side.sign for f in _fills(journal)))
        assert core.fitted is not None  # the worker's core fitted kappa from the trades, as the backtest's
        return gammas

    gammas = asyncio.run(replay())
    # gamma starts at the config's and moves once the features are warm and the model answers
    assert gammas[0] == settings.strategy.gamma and gammas[-1] != settings.strategy.gamma
    assert sum(method == "on_trade" for method, _, _ in journal) > 1_000  # what kappa: auto fits
    ledger.close()


def _fills(journal: list[JournalEntry]) -> list[Fill]:
    return [args[0] for method, args, _ in journal if method == "on_fill" and isinstance(args[0], Fill)]
