"""The ledger and control plane: one SQLAlchemy Core store on SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from bots.store.alerts import AlertNotice, AlertRecord
from bots.store.control import ALL_BOTS, Command, CommandAck, ConfigAck, ConfigVersion
from bots.store.db import DATABASE_URL_ENV, SchemaVersionError, StoreError, normalise_url
from bots.store.ledger import EquityPoint, FeatureRow, Ledger
from bots.store.locks import LockHolder
from bots.store.schema import COMMANDS, FEATURE_COLUMNS

__all__ = [
    "ALL_BOTS",
    "COMMANDS",
    "DATABASE_URL_ENV",
    "FEATURE_COLUMNS",
    "AlertNotice",
    "AlertRecord",
    "Command",
    "CommandAck",
    "ConfigAck",
    "ConfigVersion",
    "EquityPoint",
    "FeatureRow",
    "Ledger",
    "LockHolder",
    "SchemaVersionError",
    "StoreError",
    "normalise_url",
]
