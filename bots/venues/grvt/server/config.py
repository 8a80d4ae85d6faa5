"""Configuration of the local GRVT exchange (`GrvtSimServer`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from bots.exchange.sim.funding import FundingParams
from bots.exchange.sim.market import BUILTIN_START_PRICES
from settings.models import BUILTIN_INSTRUMENTS

__all__ = ["CURRENCY_IDS", "GrvtSimConfig"]

# GRVT's currency ids, as in pysdk's GrvtCurrency (USDT=3, ETH=4, BTC=5); SOL is not in the SDK's
# list and gets the next id. They make the instrument hashes (`signing.instrument_hash`).
CURRENCY_IDS: Mapping[str, int] = MappingProxyType({"USDT": 3, "ETH": 4, "BTC": 5, "SOL": 6})


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, kw_only=True)
class GrvtSimConfig:
    """Everything about the local exchange but its address; every field has a working default."""

    instruments: tuple[str, ...] = tuple(BUILTIN_INSTRUMENTS)
    """Perpetuals served, named like GRVT's (`BTC_USDT_Perp`); tick and lot from BUILTIN_INSTRUMENTS."""
    start_prices: Mapping[str, float] = field(default_factory=lambda: _frozen(BUILTIN_START_PRICES))
    """First mid of each instrument's synthetic market (100.0 for one not listed)."""
    seed: int = 0
    """Seed of the synthetic markets (instrument i uses seed + i)."""
    step_interval_s: float | None = 0.1
    """Wall-clock seconds between market steps; None: the market moves only on `server.step(n)`."""
    market_dt_s: float | None = None
    """Simulated seconds per step; `step_interval_s` (0.1 when manual) when None."""
    market_params: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    """More `SimMarket` keyword arguments (sigma, trade_intensity_a, trade_decay_k, levels, ...)."""
    funding_params: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    """`FundingParams` keyword arguments of every instrument's funding rate (interval_s, mean, std,
    half_life_s, start; fractions per interval): by default 8 h settlements around +0.01%."""
    starting_balance_usdt: Decimal = Decimal(10_000)
    """Cash of a sub-account created on first use."""
    balances_usdt: Mapping[str, Decimal] = field(default_factory=lambda: _frozen({}))
    """Starting cash per sub-account id, overriding `starting_balance_usdt`."""
    signers: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    """Signing address per sub-account id; a sub-account not listed trusts its first valid signer."""
    chain_ids: tuple[int, ...] = (326, 325)
    """EIP-712 chain ids accepted in order signatures (testnet, prod)."""
    maker_fee_rate: Decimal = Decimal("-0.0001")
    """Fee per unit of notional for a maker fill; negative is a rebate (-1 bp)."""
    taker_fee_rate: Decimal = Decimal("0.0005")
    """Fee per unit of notional for a taker fill (5 bp)."""
    session_ttl_s: float = 86_400.0
    """Lifetime of a login session (GRVT: one day for an API key)."""
    leverage: Decimal = Decimal(10)
    """Initial margin is notional / leverage; maintenance margin half of it."""
    base_decimals: int = 9
    """Decimals of a size in the signed message (contractSize = size * 10^base_decimals)."""

    def __post_init__(self) -> None:
        problems = [
            f"unknown instrument {name!r}" for name in self.instruments if name not in BUILTIN_INSTRUMENTS
        ]
        problems += [
            f"{name!r} is not BASE_QUOTE_Perp with known currencies"
            for name in self.instruments
            if not self._currencies_known(name)
        ]
        if self.step_interval_s is not None and self.step_interval_s <= 0:
            problems.append("step_interval_s must be > 0 or None")
        if self.market_dt_s is not None and self.market_dt_s <= 0:
            problems.append("market_dt_s must be > 0")
        if (
            self.starting_balance_usdt < 0
            or not self.chain_ids
            or self.session_ttl_s <= 0
            or self.leverage <= 0
        ):
            problems.append("need starting_balance_usdt >= 0, chain_ids, session_ttl_s > 0, leverage > 0")
        try:
            FundingParams(**dict(self.funding_params))
        except (TypeError, ValueError) as exc:
            problems.append(f"funding_params: {exc}")
        if problems:
            raise ValueError("; ".join(problems))

    @staticmethod
    def _currencies_known(name: str) -> bool:
        parts = name.split("_")
        return (
            len(parts) == 3 and parts[2] == "Perp" and parts[0] in CURRENCY_IDS and parts[1] in CURRENCY_IDS
        )

    @property
    def dt_s(self) -> float:
        """Simulated seconds per market step."""
        return self.market_dt_s or self.step_interval_s or 0.1
