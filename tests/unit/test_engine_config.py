"""The engine's own config: built from settings, frozen, and the only thing the engine sees of them
(that bots.engine imports nothing from settings is the `layers` import-linter contract)."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal

import pytest

from bots.engine.config import EngineConfig, FilterConfig, RiskLimits
from bots.engine.quoter import QuoteEngine
from settings.models import BotSettings, FilterSettings, InstrumentSpec


def test_engine_config_carries_the_settings_the_engine_reads() -> None:
    settings = BotSettings.model_validate(
        {
            "symbol": "ETH_USDT_Perp",
            "instrument": {"tick_size": "0.05", "lot_size": "0.01", "min_size": "0.025"},
            "strategy": {
                "model": "glft",
                "gamma": 2.5,
                "kappa": 700.0,
                "spread_pct": 0.003,
                "grid_layers": 4,
                "grid_spacing_pct": 0.002,
                "signal_boost": False,
                "trend_strategy": "adx",
                "filters": {"adx_period": 9, "adx_threshold": 30.0},
                "latch_release_rsi_buy": 45.0,
            },
            "risk": {"max_position_usd": 900.0, "max_loss_usd": 20.0, "inventory_skew_factor": 1.5},
        }
    )
    config = settings.engine_config()
    assert (config.tick, config.lot, config.min_lots) == (0.05, 0.01, 3)  # 0.025 needs 3 lots
    assert (config.model, config.gamma, config.kappa, config.spread_floor_pct) == ("glft", 2.5, 700.0, 0.003)
    assert (config.grid.layers, config.grid.spacing_pct, config.grid.signal_boost) == (4, 0.002, False)
    assert config.regime.trend_strategy == "adx" and config.regime.latch_release_rsi_buy == 45.0
    assert dataclasses.asdict(config.regime.filters) == settings.strategy.filters.model_dump()
    assert config.risk == RiskLimits(
        max_position_usd=900.0,
        max_loss_usd=20.0,
        max_drawdown_pct=0.05,
        inventory_skew_factor=1.5,
        max_book_age_s=5.0,
    )
    engine = QuoteEngine(config)
    assert engine.config is config and (engine.gamma, engine.kappa) == (2.5, 700.0)


def test_filter_config_mirrors_the_filter_settings() -> None:
    assert [f.name for f in dataclasses.fields(FilterConfig)] == list(FilterSettings.model_fields)


def test_engine_config_is_frozen_keyword_only_and_picklable() -> None:
    config = BotSettings(symbol="BTC_USDT_Perp").engine_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gamma = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        EngineConfig(0.1, 0.001)  # type: ignore[call-arg]
    assert pickle.loads(pickle.dumps(config)) == config
    assert not hasattr(config, "__dict__")  # slotted
    assert dataclasses.replace(config, gamma=3.0).gamma == 3.0


def test_live_settings_without_instrument_rules_cannot_build_an_engine_config() -> None:
    settings = BotSettings.model_validate({"symbol": "DOGE_USDT_Perp", "exchange": {"mode": "live"}})
    with pytest.raises(LookupError, match="instrument rules"):
        settings.engine_config()
    loaded = settings.model_copy(
        update={"instrument": InstrumentSpec(tick_size=Decimal("0.0001"), lot_size=Decimal("1"))}
    )
    assert loaded.engine_config().tick == 0.0001
