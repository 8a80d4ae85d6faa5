"""Configuration: typed models per concern, the layered fleet loader and credential resolution."""

from settings.credentials import GrvtCredentials, resolve_credentials
from settings.fleet import BotDefaults, FleetSettings, bot_settings, load_fleet
from settings.models import (
    BUILTIN_INSTRUMENTS,
    BotSettings,
    CredentialRefs,
    ExchangeSettings,
    FilterSettings,
    InstrumentSpec,
    MLSettings,
    PaperSettings,
    RegimeParams,
    RiskSettings,
    SimSettings,
    StrategySettings,
    TunerSettings,
)
from settings.names import BOT_NAME_RULE, check_bot_name, kubernetes_name

__all__ = [
    "BOT_NAME_RULE",
    "BUILTIN_INSTRUMENTS",
    "BotDefaults",
    "BotSettings",
    "CredentialRefs",
    "ExchangeSettings",
    "FilterSettings",
    "FleetSettings",
    "GrvtCredentials",
    "InstrumentSpec",
    "MLSettings",
    "PaperSettings",
    "RegimeParams",
    "RiskSettings",
    "SimSettings",
    "StrategySettings",
    "TunerSettings",
    "bot_settings",
    "check_bot_name",
    "kubernetes_name",
    "load_fleet",
    "resolve_credentials",
]
