"""GRVT as the settings see it: environments, instrument names and credential names."""

from __future__ import annotations

from bots.venues.base import Venue

__all__ = ["GRVT"]

GRVT = Venue(
    name="grvt",
    label="GRVT",
    environments=("prod", "testnet"),
    default_environment="testnet",
    symbol_pattern=r"[A-Z0-9]+_[A-Z0-9]+_Perp",  # perpetuals: base_quote_Perp
    symbol_example="BTC_USDT_Perp",
    credential_env={
        "api_key": "GRVT_API_KEY",
        "private_key": "GRVT_PRIVATE_KEY",
        "trading_account_id": "GRVT_TRADING_ACCOUNT_ID",
    },
)
