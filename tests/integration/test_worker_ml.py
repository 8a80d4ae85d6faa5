"""Hot reload of the regime model inside a running worker: load, blend, newer version, refusals."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from bots.engine.portfolio import Portfolio
from bots.exchange.factory import make_exchange
from bots.metrics import BotMetrics
from bots.store import Ledger
from bots.worker import BotWorker
from ml.inference import blend
from ml.live_regime import LiveRegime
from ml.registry import PARAMS_FILE, TrainingInfo, publish
from settings.models import BotSettings
from tests.integration.regime_model import train_and_publish


def _metric(worker: BotWorker, name: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in worker.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"mmfleet_{name}":
                values[sample.labels.get("version", sample.labels.get("regime", ""))] = sample.value
    return values


def test_a_running_bot_hot_reloads_newer_models_and_refuses_bad_ones(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    settings = BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            "sim": {"seed": 2, "speed": 5.0},
            "ml": {"regime_enabled": True, "model_dir": str(model_dir)},
        }
    )
    ledger = Ledger(tmp_path / "ledger.db")
    fit, info = train_and_publish(ledger, settings.name, settings.symbol, model_dir)

    async def scenario() -> None:
        exchange = await make_exchange(settings, Portfolio(symbol=settings.symbol))
        metrics = BotMetrics(CollectorRegistry(), settings.name, settings.symbol, "sim", 7)
        regime = LiveRegime(settings.ml.model_dir, settings.ml.max_model_age_s)
        regime.models.poll_interval_s = 0.2
        worker = BotWorker(settings, exchange, ledger, metrics, regime=regime)
        run = asyncio.create_task(worker.run())

        async def until(check: object, what: str) -> None:
            deadline = time.monotonic() + 20
            while not check():  # type: ignore[operator]
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await asyncio.sleep(0.1)

        try:
            await until(lambda: _metric(worker, "model_info") == {"1": 1.0}, "model version 1 in use")
            assert _metric(worker, "regime_model_loaded") == {"": 1.0}
            await until(lambda: sum(_metric(worker, "regime_probability").values()) > 0.99, "probabilities")
            probabilities = _metric(worker, "regime_probability")
            assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-9)
            expected = blend(
                probabilities, settings.ml.regime_params, default_gamma=1.0, default_kappa=1000.0
            )
            assert math.isclose(worker.engine.gamma, expected[0], rel_tol=1e-6)
            assert math.isclose(worker.engine.kappa, expected[1], rel_tol=1e-6)
            assert 0.5 <= worker.engine.gamma <= 3.0  # inside the configured per-regime range

            assert publish(model_dir, fit.artifact(), info) == 2
            await until(lambda: _metric(worker, "model_info") == {"2": 1.0}, "hot reload of version 2")

            assert publish(model_dir, fit.artifact(), info) == 3
            params = next(model_dir.glob(f"*3*/{PARAMS_FILE}"))
            tampered = json.loads(params.read_text())
            tampered["weights"] = list(reversed(tampered["weights"]))
            params.write_text(json.dumps(tampered))
            stale = TrainingInfo(trained_at=time.time() - 10 * 86_400, data_since_ts_ns=0, data_until_ts_ns=0)
            assert publish(model_dir, fit.artifact(), stale) == 4  # older than max_model_age_s
            await asyncio.sleep(1.5)
            assert _metric(worker, "model_info") == {"2": 1.0}  # both refused; version 2 kept
            assert regime.models.version == 2
        finally:
            worker.request_stop()
            await asyncio.wait_for(run, timeout=20)
            await exchange.close()

    asyncio.run(scenario())
    ledger.close()
