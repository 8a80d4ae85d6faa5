"""The core's own frozen configuration: what it needs beyond the engine's, and nothing else (no
credentials, no paths). Built from a bot's settings by `settings.models.BotSettings.core_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bots.engine import pickling
from bots.engine.intensity import IntensityConfig

__all__ = ["CoreConfig", "RegimeGammaKappa"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RegimeGammaKappa:
    """gamma and kappa to quote with in one regime (kappa None: the bot's, fitted when auto)."""

    gamma: float
    kappa: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreConfig:
    """One bot's orchestration: identity, instrument steps, order management, timer, regime blending,
    the intensity fit behind `kappa: auto`."""

    name: str
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    price_tolerance_pct: float = 0.0
    price_tolerance_per_layer_pct: float = 0.0  # added to the tolerance for each layer out from the best
    refresh_interval_ns: int = _NS_PER_S  # a quiet market is requoted this often (and stale data noticed)
    record_interval_ns: int = _NS_PER_S  # equity, position and features are recorded this often
    gamma: float = 1.0  # the configured values: what the blend falls back to
    kappa: float = 1000.0  # with kappa_auto, the value until the intensity fit has enough trades
    intensity_a: float = 140.0  # GLFT's A; with intensity_a_auto, the value until the fit is ready
    kappa_auto: bool = False  # kappa (and/or A) from the intensity fit of the public trades
    intensity_a_auto: bool = False
    intensity: IntensityConfig = field(default_factory=IntensityConfig)
    regime_enabled: bool = False
    regime_params: dict[str, RegimeGammaKappa] = field(default_factory=dict)
    regime_smoothing_ns: int = 0  # time constant of the smoothed posterior; 0: the raw one
    close_attempts: int = 5  # reduce-only closes tried per close request before giving up until asked again
    close_slippage: Decimal = Decimal("0.01")  # a close may pay up to 1% beyond the touch, never more
    keep_order_log: bool = True  # the worker records order states; a backtest does not need them
    record_market: bool = True  # equity and features once a record interval (a backtest: for the regime)
    record_markouts: bool = True  # fills' markouts as books pass (a backtest computes them from its curve)

    @property
    def fits_intensity(self) -> bool:
        return self.kappa_auto or self.intensity_a_auto

    def __post_init__(self) -> None:
        if not (self.tick_size > 0 and self.lot_size > 0):
            raise ValueError("tick_size and lot_size must be positive")
        if not (self.refresh_interval_ns > 0 and self.record_interval_ns > 0):
            raise ValueError("refresh_interval_ns and record_interval_ns must be positive")
        if self.regime_smoothing_ns < 0:
            raise ValueError("regime_smoothing_ns must not be negative")


pickling.register(CoreConfig, RegimeGammaKappa)
