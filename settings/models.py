"""Typed, bounded configuration models: one per concern, frozen, unknown keys rejected.

Units are in the field names (`_pct` is a fraction: 0.005 means 0.5%; `_s` seconds; `_usd` US dollars).
A field here is the single source of a knob: the engine gets its own frozen copy of what it reads
(`BotSettings.engine_config`), with no credentials or paths in it.

Every number is finite (no NaN or infinity anywhere) and bounded so that prices, sizes and money stay
computable by the market, the engine and the ledger (exact decimals with 18 places); paths hold no
NUL byte; every min/max pair is ordered.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bots.core.config import CoreConfig, RegimeGammaKappa
from bots.engine.config import EngineConfig, FilterConfig, GridConfig, QuoteModel, RegimeConfig, RiskLimits
from bots.engine.intensity import IntensityConfig
from bots.engine.regime import FILTERS
from bots.venues.registry import DEFAULT_VENUE, VENUES
from settings.names import check_bot_name

__all__ = [
    "BUILTIN_INSTRUMENTS",
    "BotSettings",
    "CredentialRefs",
    "ExchangeSettings",
    "FilterSettings",
    "InstrumentSpec",
    "IntensitySettings",
    "MLSettings",
    "PaperSettings",
    "RegimeParams",
    "RiskSettings",
    "SimFundingSettings",
    "SimSettings",
    "StoreSettings",
    "StrategySettings",
    "TunerSettings",
    "check_position_holds_an_order",
]

Mode = Literal["sim", "paper", "live"]
# An exchange increment: positive, at most 18 decimal places (the ledger's scale), not absurdly large.
PositiveDecimal = Annotated[Decimal, Field(gt=0, le=Decimal(1_000_000), decimal_places=18)]
_MAX_PATH = 4096


def _plain_path(path: Path) -> Path:
    text = str(path)
    if "\x00" in text:
        raise ValueError("a path cannot contain a NUL byte")
    if len(text) > _MAX_PATH:
        raise ValueError(f"a path is at most {_MAX_PATH} characters")
    return path


SafePath = Annotated[Path, AfterValidator(_plain_path)]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class Frozen(BaseModel):
    """Base of every config model: immutable, keyword-only, unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)


def _field_error(field: str, value: object, message: str) -> ValidationError:
    """An error at `field` from a rule that needs another field (the venue): reported like a field's own."""
    error = PydanticCustomError("value_error", "Value error, {message}", {"message": message})
    return ValidationError.from_exception_data(
        field, [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


class InstrumentSpec(Frozen):
    """Exchange rules of one instrument; live mode reads them from the exchange instead."""

    tick_size: PositiveDecimal = Field(description="Price increment in quote currency.")
    lot_size: PositiveDecimal = Field(description="Size increment in base currency.")
    min_size: PositiveDecimal | None = Field(
        default=None, description="Smallest order size in base currency; the lot size when unset."
    )

    @property
    def effective_min_size(self) -> Decimal:
        return self.min_size if self.min_size is not None else self.lot_size


# Tick and lot as GRVT lists them for its main perpetuals (sim and paper defaults).
BUILTIN_INSTRUMENTS: dict[str, InstrumentSpec] = {
    "BTC_USDT_Perp": InstrumentSpec(tick_size=Decimal("0.1"), lot_size=Decimal("0.001")),
    "ETH_USDT_Perp": InstrumentSpec(tick_size=Decimal("0.01"), lot_size=Decimal("0.01")),
    "SOL_USDT_Perp": InstrumentSpec(tick_size=Decimal("0.01"), lot_size=Decimal("0.1")),
}


class CredentialRefs(Frozen):
    """Where a bot's venue credentials live: names of environment variables or secret files, never values.

    A `*_file` path wins over its environment variable; an unset variable name is the venue's (on grvt
    GRVT_API_KEY, GRVT_PRIVATE_KEY, GRVT_TRADING_ACCOUNT_ID). Several sub-accounts run side by side by
    giving each bot its own variable names.
    """

    api_key_env: EnvVarName | None = Field(default=None, description="Env var holding the API key.")
    private_key_env: EnvVarName | None = Field(default=None, description="Env var holding the signing key.")
    trading_account_id_env: EnvVarName | None = Field(
        default=None, description="Env var holding the trading sub-account id."
    )
    api_key_file: SafePath | None = Field(default=None, description="File holding the API key.")
    private_key_file: SafePath | None = Field(default=None, description="File holding the signing key.")
    trading_account_id_file: SafePath | None = Field(default=None, description="File holding the account id.")


_ENVS = "; ".join(
    f"{v.name}: {' or '.join(v.environments)}, default {v.default_environment}" for v in VENUES.values()
)


class ExchangeSettings(Frozen):
    """Which market a bot trades on and how it reaches it: the mode, and the venue of paper and live."""

    mode: Mode = Field(
        default="sim",
        description=(
            "sim (a synthetic market, offline), paper (the venue's market data, fills simulated here)"
            " or live (orders on the venue)."
        ),
    )
    venue: str = Field(
        default=DEFAULT_VENUE,
        description=f"The exchange of paper and live mode; one of: {', '.join(VENUES)}.",
    )
    env: str = Field(default="", description=f"The venue's environment; its default when empty ({_ENVS}).")
    credentials: CredentialRefs = Field(default_factory=CredentialRefs)
    base_url: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "Point every REST and websocket endpoint of the venue at this host (our local"
            " GRVT-compatible server, tests, staging)."
        ),
    )
    request_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Per-request timeout.")
    stop_deadline_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="How long a stopping bot keeps cancelling and confirming that nothing of ours rests "
        "(a Retry-After beyond it is not waited for); past it the bot exits 5 naming what is left. The "
        "supervisor, compose and Kubernetes grace periods are longer.",
    )
    order_lifetime_s: float = Field(
        default=300.0,
        ge=5,
        le=86_400,
        description=(
            "Live: each order is signed to expire this long after it is sent; the exchange cancels it"
            " then (the bot requotes it if still wanted). A bot that dies without cancelling, or an"
            " order booked after its placement's reply was lost and the bot stopped, rests no longer."
        ),
    )
    other_stores_check_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description=(
            "Live: how often the bot reads its symbol's open orders for orders of another mmfleet store"
            " (another data directory or database) on its account, besides at start and at each"
            " reconciliation; finding one halts it until `mmfleet ctl reset-risk`. The same look cancels"
            " any order the bot sent that rests untracked (the exchange booked it after its placement's"
            " reply was lost)."
        ),
    )
    cancel_unknown_orders: bool = Field(
        default=False,
        description=(
            "Live: at reconciliation (start, reconnect), cancel resting orders on the symbol that the"
            " bot has no record of (placed by hand or by another process; never another store's);"
            " when false they are only reported."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port = parts.port  # ValueError when it is not a number in 0..65535
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials do not go in the URL")
        if port == 0:
            raise ValueError("port 0 is not a port")
        return value

    @field_validator("venue")
    @classmethod
    def _known_venue(cls, value: str) -> str:
        if value not in VENUES:
            raise ValueError(f"unknown venue {value!r}; known: {', '.join(sorted(VENUES))}")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _venue_environment(cls, value: object, info: ValidationInfo) -> object:
        """One of the venue's environments; its default when empty."""
        venue = VENUES.get(info.data.get("venue", ""))
        if venue is None:
            return value  # the venue's own error says it all
        if value in (None, ""):
            return venue.default_environment
        if value not in venue.environments:
            raise ValueError(
                f"{venue.name} has no environment {value!r}; known: {', '.join(venue.environments)}"
            )
        return value

    @model_validator(mode="after")
    def _venue_credentials(self) -> ExchangeSettings:
        """The venue's credential names where none is set."""
        venue = VENUES[self.venue]
        unset = {
            f"{name}_env": variable
            for name, variable in venue.credential_env.items()
            if getattr(self.credentials, f"{name}_env") is None
        }
        if unset:
            object.__setattr__(self, "credentials", self.credentials.model_copy(update=unset))
        return self


class PaperSettings(Frozen):
    """The local fill model used by paper, sim and backtests."""

    touch_fill_probability: float = Field(
        default=0.1, ge=0, le=1, description="Chance a resting order fills when the best price touches it."
    )
    queue_model: bool = Field(
        default=True,
        description="Model queue position: a trade fills a resting order only with what is left after"
        " the visible size at better prices and ahead at its level, as in backtests and on the local"
        " GRVT server (false: first at its level, after the better prices only; a print or book only"
        " touching it fills it with `touch_fill_probability`). Backtests use it whatever this says,"
        " unless told otherwise (`BacktestConfig.queue_model`).",
    )
    maker_rebate_bps: float = Field(
        default=1.0, ge=-100, le=100, description="Maker rebate in basis points of notional (1 = 0.01%)."
    )
    taker_fee_bps: float = Field(
        default=5.0,
        ge=-100,
        le=100,
        description="Taker fee in basis points of notional, paid when a non-post-only order crosses.",
    )
    starting_balance_usd: Decimal = Field(
        default=Decimal("10000"),
        gt=0,
        le=Decimal(10) ** 12,
        decimal_places=18,
        description="Paper cash at start.",
    )


_RECORDING_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")  # the formats of bots.exchange.sim.replay


class SimFundingSettings(Frozen):
    """The sim's perpetual funding (bots/exchange/sim/funding.py): a mean-reverting rate settled on the
    open position every `interval_s` (at multiples of it since the epoch, as GRVT's 00/08/16 UTC). Rates
    are fractions of notional per interval; positive: longs pay shorts."""

    interval_s: float = Field(
        default=28_800.0, ge=1, le=7 * 86_400, description="Seconds between funding settlements (8 h)."
    )
    rate_mean: float = Field(
        default=0.0001, ge=-0.01, le=0.01, description="Long-run funding rate per interval (1 bp)."
    )
    rate_std: float = Field(
        default=0.0001, ge=0, le=0.01, description="Stationary standard deviation of the rate."
    )
    half_life_s: float = Field(
        default=86_400.0, gt=0, le=365 * 86_400, description="Half-life of a deviation from the mean."
    )
    start_rate: float | None = Field(
        default=None, ge=-0.01, le=0.01, description="Rate at start; `rate_mean` when unset."
    )


class SimSettings(Frozen):
    """The offline market of sim mode: a seeded random walk with bursts, trends and A*exp(-k*delta) trades,
    part of them informed (they know where the mid goes next), clustered and moving the mid; or the
    replay of a recorded file. The model: `bots/exchange/sim/market.py`."""

    seed: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="Random seed; a fresh one per start when unset."
    )
    start_price: float | None = Field(
        default=None,
        gt=0,
        le=1e9,
        description="First mid; the last recorded mid of the symbol, else a built-in one.",
    )
    sigma: float = Field(default=1e-4, ge=0, le=0.1, description="Calm volatility of log mid per sqrt(s).")
    book_interval_s: float = Field(default=0.1, gt=0, le=60, description="Seconds between book updates.")
    trade_intensity_a: float = Field(
        default=2.0, ge=0, le=1e6, description="Uninformed trades per second per side (at depth 0)."
    )
    trade_decay_k: float = Field(
        default=20_000.0,
        gt=0,
        le=1e9,
        description="Decay of trade arrivals with depth from mid, per unit of mid fraction: a trade reaches"
        " depth delta with probability exp(-k*delta) (20,000: 0.5 bp on average), and fills what rests"
        " there only after the visible size ahead of it.",
    )
    informed_intensity_a: float = Field(
        default=1.0,
        ge=0,
        le=1e6,
        description="Informed trades per second: takers who know the fair price and trade toward it, so"
        " their side predicts the next mid change (0: no adverse selection).",
    )
    quote_lag_s: float = Field(
        default=8.0,
        ge=0,
        le=3600,
        description="The book's mid follows the fair price this late (the crowd's stale quotes informed"
        " takers pick off; 0: no lag).",
    )
    impact_bps: float = Field(
        default=0.3,
        ge=0,
        le=100,
        description="An informed trade moves the book's mid this far its way, for good.",
    )
    noise_impact_bps: float = Field(
        default=0.02,
        ge=0,
        le=100,
        description="An uninformed trade moves the book's mid this far its way, for `impact_decay_s` (the"
        " overshoot a deeper quote earns back).",
    )
    impact_decay_s: float = Field(
        default=30.0, gt=0, le=86_400, description="Time constant of an uninformed trade's impact."
    )
    hawkes_branching: float = Field(
        default=0.6,
        ge=0,
        lt=1,
        description="Trade clustering: each trade brings this many more on its side on average (a"
        " self-exciting Hawkes process; below 1 to stay stationary; 0: independent arrivals).",
    )
    sweep_rate_per_s: float = Field(
        default=0.05,
        ge=0,
        le=100,
        description="Sweeps per second (0.05: one every 20 s): a burst on the informed side takes the whole"
        " visible side and more, and the mid jumps through the book to where it stopped (0: none).",
    )
    sweep_bps: float = Field(default=2.0, gt=0, le=1000, description="Mean depth a sweep reaches from mid.")
    sweep_permanent: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of a sweep's jump that stays; the rest fades like noise impact.",
    )
    hawkes_decay_s: float = Field(
        default=1.0, gt=0, le=3600, description="Time constant of the clustering's excitation."
    )
    speed: float = Field(default=1.0, gt=0, le=1000, description="Simulated seconds per wall-clock second.")
    replay_file: SafePath | None = Field(
        default=None,
        description=(
            "A CSV/Parquet market recording in the format of bots/exchange/sim/replay.py (what"
            " `mmfleet record` writes); when set, sim mode replays it at `speed`, moved to start now,"
            " instead of generating a market."
        ),
    )
    funding: SimFundingSettings = Field(default_factory=SimFundingSettings)

    @field_validator("replay_file")
    @classmethod
    def _recording_suffix(cls, value: Path | None) -> Path | None:
        if value is not None and not value.name.lower().endswith(_RECORDING_SUFFIXES):
            raise ValueError(f"a recording ends in {', '.join(_RECORDING_SUFFIXES)}")
        return value


class FilterSettings(Frozen):
    """Parameters of the regime filters (indicator windows and signal thresholds)."""

    bollinger_window: int = Field(default=20, ge=2, le=10_000, description="Bollinger window in ticks.")
    bollinger_num_std: float = Field(default=2.0, gt=0, le=10, description="Band width in std devs.")
    rsi_period: int = Field(default=14, ge=2, le=10_000, description="Wilder RSI period in ticks.")
    rsi_oversold: float = Field(default=30.0, gt=0, lt=100, description="RSI below this: buy signal.")
    rsi_overbought: float = Field(default=70.0, gt=0, lt=100, description="RSI above this: sell signal.")
    adx_period: int = Field(default=14, ge=2, le=10_000, description="ADX period in ticks.")
    adx_threshold: float = Field(default=25.0, gt=0, lt=100, description="ADX above this: trending.")
    atr_period: int = Field(default=14, ge=2, le=10_000, description="ATR period in ticks.")
    atr_breakout_mult: float = Field(
        default=1.0, gt=0, le=20, description="A move beyond this many ATRs is a breakout signal."
    )
    chop_period: int = Field(default=14, ge=2, le=10_000, description="Choppiness period in ticks.")
    chop_trend_threshold: float = Field(
        default=38.2, gt=0, lt=100, description="Choppiness below this: trending, signal in its direction."
    )

    @model_validator(mode="after")
    def _rsi_band_ordered(self) -> FilterSettings:
        if self.rsi_oversold >= self.rsi_overbought:
            raise ValueError("rsi_oversold must be below rsi_overbought")
        return self


Auto = Literal["auto"]


class IntensitySettings(Frozen):
    """The fit of the A-S arrival intensity A*exp(-kappa*delta) to recent public trades (their distance
    from the mid), behind `kappa: auto` and `glft_intensity_a: auto` (bots/engine/intensity.py)."""

    time_constant_s: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Trades weigh exp(-age/this): the fit follows the market over about this long.",
    )
    min_trades: float = Field(
        default=100.0,
        gt=0,
        le=1e9,
        description="Weighted trades beyond the touch a fit needs; until then the fallbacks apply.",
    )
    fallback_kappa: float = Field(
        default=1000.0, gt=0, le=1e9, description="kappa while `kappa: auto` has too few trades."
    )
    fallback_intensity_a: float = Field(
        default=140.0, gt=0, le=1e9, description="A while `glft_intensity_a: auto` has too few trades."
    )
    bucket_pct: float = Field(
        default=0.00005, gt=0, lt=0.1, description="Width of the depth histogram's buckets, fraction of mid."
    )
    buckets: int = Field(
        default=200,
        ge=2,
        le=100_000,
        description="Depth buckets; a deeper trade counts as beyond the last (censored).",
    )
    kappa_min: float = Field(
        default=10.0, gt=0, le=1e9, description="A fitted kappa is clamped to at least this."
    )
    kappa_max: float = Field(
        default=1e6, gt=0, le=1e9, description="A fitted kappa is clamped to at most this."
    )

    @model_validator(mode="after")
    def _kappa_range_ordered(self) -> IntensitySettings:
        if self.kappa_min >= self.kappa_max:
            raise ValueError("intensity.kappa_min must be below kappa_max")
        return self

    def config(self) -> IntensityConfig:
        return IntensityConfig(
            time_constant_s=self.time_constant_s,
            min_trades=self.min_trades,
            bucket_pct=self.bucket_pct,
            buckets=self.buckets,
            kappa_min=self.kappa_min,
            kappa_max=self.kappa_max,
        )


class StrategySettings(Frozen):
    """The quoting model, grid, regime filters and entry-anchor rules."""

    model: QuoteModel = Field(default="avellaneda", description="avellaneda (A-S 2008) or glft.")
    spread_pct: float = Field(
        default=0.0005,
        gt=0,
        lt=0.1,
        description=(
            "Floor under the model's total spread, fraction of mid: a safety net, below the model's"
            " spread in a normal market (mmfleet_spread_floor_binding says when it decides)."
        ),
    )
    grid_layers: int = Field(default=7, ge=1, le=50, description="Orders per side.")
    grid_spacing_pct: float = Field(
        default=0.0012, gt=0, lt=0.1, description="Distance between grid layers, fraction of mid."
    )
    order_size_usd: float = Field(default=200.0, gt=0, le=10_000_000, description="Notional per order.")
    refresh_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="Longest time between quote recomputations."
    )
    gamma: float = Field(default=1.0, gt=0, le=1000, description="Risk aversion (A-S gamma).")
    kappa: Annotated[float, Field(gt=0, le=1e9)] | Auto = Field(
        default=1000.0,
        description=(
            "Order-book liquidity (A-S kappa), per unit of mid fraction; `auto`: fitted from recent"
            " public trades (`intensity`)."
        ),
    )
    horizon_s: float = Field(
        default=3600.0, gt=0, le=86_400 * 365, description="Rolling horizon T-t for perpetuals, seconds."
    )
    glft_intensity_a: Annotated[float, Field(gt=0, le=1e9)] | Auto = Field(
        default=140.0,
        description="GLFT fill intensity A (arrivals per second per side at zero depth); `auto`: fitted.",
    )
    intensity: IntensitySettings = Field(default_factory=IntensitySettings)
    volatility_window_ticks: int = Field(
        default=20, ge=2, le=100_000, description="Ticks of log returns in the volatility estimate."
    )
    trend_strategy: str = Field(
        default="bollinger", description="Regime filter: bollinger, rsi, adx, atr or chop."
    )
    filters: FilterSettings = Field(default_factory=FilterSettings)
    price_tolerance_pct: float = Field(
        default=0.001, ge=0, lt=0.1, description="Keep an open order while within this of its target."
    )
    price_tolerance_per_layer_pct: float = Field(
        default=0.0,
        ge=0,
        lt=0.01,
        description=(
            "Added to price_tolerance_pct for each grid layer (or boost) an order sits out from its"
            " side's best: outer layers, which fill only on large moves, need not follow every tick."
        ),
    )
    entry_anchor_mode: bool = Field(default=True, description="Anchor exits and adds to the entry price.")
    loss_tolerance_neutral_pct: float = Field(
        default=0.0, ge=0, lt=0.5, description="Loss allowed on an exit in a neutral regime."
    )
    loss_tolerance_signal_pct: float = Field(
        default=0.005, ge=0, lt=0.5, description="Loss allowed on an exit while a signal is latched."
    )
    latch_release_rsi_buy: float = Field(
        default=40.0, gt=0, lt=100, description="A buy latch releases when RSI rises above this."
    )
    latch_release_rsi_sell: float = Field(
        default=60.0, gt=0, lt=100, description="A sell latch releases when RSI falls below this."
    )
    signal_boost: bool = Field(default=True, description="Add near-mid orders on the signal's side.")
    boost_offsets_pct: tuple[float, ...] = Field(
        default=(0.0005, 0.001), min_length=1, max_length=10, description="Boost order distances from mid."
    )
    funding_skew_horizon_s: float = Field(
        default=0.0,
        ge=0,
        le=30 * 86_400,
        description=(
            "Funding skew, off at 0: the reservation price moves by -(funding rate per second) times"
            " this holding time, as a fraction of mid, so a positive rate (longs pay shorts) leans the"
            " quotes short and a negative one long. 28800 prices one 8 h funding interval."
        ),
    )

    @field_validator("kappa", "glft_intensity_a", mode="wrap")
    @classmethod
    def _number_or_auto(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        """One error naming both choices, not one per member of the union."""
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"a number in (0, 1e9] or auto (got {value!r})") from None

    @property
    def kappa_value(self) -> float:
        """kappa, or its fallback while `auto` has no fit."""
        return self.intensity.fallback_kappa if self.kappa == "auto" else self.kappa

    @property
    def intensity_a_value(self) -> float:
        """GLFT's A, or its fallback while `auto` has no fit."""
        a = self.glft_intensity_a
        return self.intensity.fallback_intensity_a if a == "auto" else a

    @field_validator("boost_offsets_pct")
    @classmethod
    def _offsets_in_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < offset < 0.1 for offset in value):
            raise ValueError("every boost offset must be in (0, 0.1)")
        return value

    @field_validator("trend_strategy")
    @classmethod
    def _known_filter(cls, value: str) -> str:
        if value not in FILTERS:
            raise ValueError(f"unknown filter {value!r}; known: {', '.join(sorted(FILTERS))}")
        return value


class RiskSettings(Frozen):
    """Position, loss and drawdown limits."""

    max_position_usd: float = Field(default=5000.0, gt=0, le=1e9, description="Largest |position| in USD.")
    max_loss_usd: float = Field(
        default=50.0, gt=0, le=1e9, description="Unrealized loss that trips the circuit breaker."
    )
    max_drawdown_pct: float = Field(
        default=0.05, gt=0, lt=1, description="Drop from peak equity that closes everything and halts."
    )
    inventory_skew_factor: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="Quote-centre shift per unit of position/limit, in half-spreads.",
    )
    max_book_age_s: float = Field(
        default=5.0, gt=0, le=3600, description="Older market data is stale: no quoting."
    )


class RegimeParams(Frozen):
    """gamma and kappa to use while the regime model says this regime."""

    gamma: float = Field(gt=0, le=1000)
    kappa: float | None = Field(
        default=None, gt=0, le=1e9, description="Unset: the bot's kappa (fitted with `kappa: auto`)."
    )


class TunerSettings(Frozen):
    """Bounds of the adaptive gamma/kappa tuner."""

    enabled: bool = Field(default=False, description="Let the tuner propose gamma/kappa changes.")
    gamma_step_pct: float = Field(default=0.1, gt=0, le=1, description="Largest relative gamma step.")
    kappa_step_pct: float = Field(default=0.1, gt=0, le=1, description="Largest relative kappa step.")
    gamma_min: float = Field(default=0.05, gt=0, le=1000, description="Lowest gamma the tuner may set.")
    gamma_max: float = Field(default=10.0, gt=0, le=1000, description="Highest gamma the tuner may set.")
    kappa_min: float = Field(default=100.0, gt=0, le=1e9, description="Lowest kappa the tuner may set.")
    kappa_max: float = Field(default=10_000.0, gt=0, le=1e9, description="Highest kappa the tuner may set.")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> TunerSettings:
        if self.gamma_min >= self.gamma_max or self.kappa_min >= self.kappa_max:
            raise ValueError("tuner ranges need min < max")
        return self


def _default_regime_params() -> dict[str, RegimeParams]:
    return {
        "trending": RegimeParams(gamma=2.0, kappa=500.0),
        "ranging": RegimeParams(gamma=0.5, kappa=1500.0),
        "volatile": RegimeParams(gamma=3.0, kappa=300.0),
    }


class MLSettings(Frozen):
    """Regime model and tuner."""

    regime_enabled: bool = Field(default=False, description="Blend gamma/kappa by regime probabilities.")
    model_dir: SafePath = Field(
        default=Path("data/models"),
        description=(
            "Model registry directory; `<data_dir>/models` when not set, so that the flows writing"
            " models and the bots reading them agree wherever data_dir is."
        ),
    )
    max_model_age_s: float = Field(
        default=3 * 86_400.0,
        gt=0,
        le=365 * 86_400.0,
        description="Older models are ignored (config gamma/kappa used).",
    )
    regime_params: dict[str, RegimeParams] = Field(default_factory=_default_regime_params)
    regime_smoothing_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description=(
            "Time constant of the smoothed regime posterior the blend uses (an exponential moving"
            " average of the model's probabilities): a regime switch moves gamma/kappa 63% of the way"
            " in this long, 95% in three times it. 0: the raw posterior, which jumps."
        ),
    )
    tuner: TunerSettings = Field(default_factory=TunerSettings)


class StoreSettings(Frozen):
    """The bot's store thread (`bots.store.writer`): how much may wait for the database."""

    queue_limit: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description=(
            "Writes that may wait for the store thread; past it, market records (equity, position"
            " snapshots, features) are dropped and counted. Fills, order states and acks are never dropped."
        ),
    )
    max_unconfirmed_fills: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description=(
            "Fills handed to the store and not yet committed; past it the bot halts quoting and cancels"
            " its orders, and resumes by itself once every waiting fill is committed."
        ),
    )


def check_position_holds_an_order(risk: RiskSettings, strategy: StrategySettings) -> None:
    """The position limit must leave room for at least one order (fleet defaults and every bot)."""
    if risk.max_position_usd < strategy.order_size_usd:
        raise ValueError("risk.max_position_usd must be at least strategy.order_size_usd")


class BotSettings(Frozen):
    """The effective configuration of one bot: fleet defaults with this bot's overrides applied."""

    symbol: str = Field(
        max_length=40, description="The venue's instrument, by its rule: e.g. BTC_USDT_Perp on grvt."
    )
    name: str = Field(
        default="",
        description=(
            "Bot name in metrics, commands, logs and Kubernetes objects; the symbol when empty. 1 to 63"
            " characters from A-Z a-z 0-9 _ -, starting and ending with a letter or a digit"
            " (settings/names.py)."
        ),
    )
    instrument: InstrumentSpec | None = Field(
        default=None,
        description="Tick and lot; built-in for known symbols, read from the venue in live mode.",
    )
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    ml: MLSettings = Field(default_factory=MLSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @field_validator("name")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return check_bot_name(value) if value else value

    @model_validator(mode="after")
    def _fill_derived(self) -> BotSettings:
        venue = VENUES[self.exchange.venue]
        if not venue.is_symbol(self.symbol):
            rule = f"not a {venue.label} instrument (like {venue.symbol_example}: {venue.symbol_pattern})"
            raise _field_error("symbol", self.symbol, rule)
        if not self.name:
            object.__setattr__(self, "name", self.symbol)
        if self.instrument is None:
            builtin = BUILTIN_INSTRUMENTS.get(self.symbol)
            if builtin is None and self.exchange.mode != "live":
                raise ValueError(f"instrument: no built-in tick/lot for {self.symbol}; set instrument")
            object.__setattr__(self, "instrument", builtin)
        check_position_holds_an_order(self.risk, self.strategy)
        return self

    @property
    def spec(self) -> InstrumentSpec:
        """The instrument rules; only None in live mode before the exchange is asked."""
        if self.instrument is None:
            raise LookupError(f"{self.symbol}: instrument rules not loaded yet")
        return self.instrument

    def core_config(self, *, keep_order_log: bool = True, record_market: bool = True) -> CoreConfig:
        """What the bot core needs of these settings (a backtest keeps no order log and records the
        market only for the regime model)."""
        strategy, ml = self.strategy, self.ml
        return CoreConfig(
            name=self.name,
            symbol=self.symbol,
            tick_size=self.spec.tick_size,
            lot_size=self.spec.lot_size,
            price_tolerance_pct=strategy.price_tolerance_pct,
            price_tolerance_per_layer_pct=strategy.price_tolerance_per_layer_pct,
            refresh_interval_ns=round(strategy.refresh_interval_s * 1_000_000_000),
            gamma=strategy.gamma,
            kappa=strategy.kappa_value,
            intensity_a=strategy.intensity_a_value,
            kappa_auto=strategy.kappa == "auto",
            intensity_a_auto=strategy.glft_intensity_a == "auto",
            intensity=strategy.intensity.config(),
            regime_enabled=ml.regime_enabled,
            regime_params={name: RegimeGammaKappa(p.gamma, p.kappa) for name, p in ml.regime_params.items()},
            regime_smoothing_ns=round(ml.regime_smoothing_s * 1_000_000_000),
            keep_order_log=keep_order_log,
            record_market=record_market,
        )

    def engine_config(self) -> EngineConfig:
        """What the quoting engine reads, as its own frozen config (needs the instrument rules)."""
        spec, strategy, risk = self.spec, self.strategy, self.risk
        return EngineConfig(
            tick=float(spec.tick_size),
            lot=float(spec.lot_size),
            min_lots=math.ceil(spec.effective_min_size / spec.lot_size),
            model=strategy.model,
            gamma=strategy.gamma,
            kappa=strategy.kappa_value,
            horizon_s=strategy.horizon_s,
            glft_intensity_a=strategy.intensity_a_value,
            spread_floor_pct=strategy.spread_pct,
            order_size_usd=strategy.order_size_usd,
            volatility_window_ticks=strategy.volatility_window_ticks,
            entry_anchor_mode=strategy.entry_anchor_mode,
            loss_tolerance_neutral_pct=strategy.loss_tolerance_neutral_pct,
            loss_tolerance_signal_pct=strategy.loss_tolerance_signal_pct,
            grid=GridConfig(
                layers=strategy.grid_layers,
                spacing_pct=strategy.grid_spacing_pct,
                signal_boost=strategy.signal_boost,
                boost_offsets_pct=strategy.boost_offsets_pct,
            ),
            regime=RegimeConfig(
                trend_strategy=strategy.trend_strategy,
                filters=FilterConfig(**strategy.filters.model_dump()),
                latch_release_rsi_buy=strategy.latch_release_rsi_buy,
                latch_release_rsi_sell=strategy.latch_release_rsi_sell,
            ),
            risk=RiskLimits(
                max_position_usd=risk.max_position_usd,
                max_loss_usd=risk.max_loss_usd,
                max_drawdown_pct=risk.max_drawdown_pct,
                inventory_skew_factor=risk.inventory_skew_factor,
                max_book_age_s=risk.max_book_age_s,
            ),
            funding_horizon_s=strategy.funding_skew_horizon_s,
        )
