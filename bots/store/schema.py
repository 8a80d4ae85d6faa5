"""Tables of the ledger (SQLAlchemy Core). One schema for SQLite and PostgreSQL.

Conventions: timestamps are integer nanoseconds since the epoch (`BigInteger`), money and sizes are
`Money` (exact decimals), model features are floats. Every row names its bot; rows are appended, and
only the control-plane rows (command status, acks, state, locks) are ever updated.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Dialect,
    Double,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "COMMANDS",
    "FEATURE_COLUMNS",
    "MONEY_SCALE",
    "Money",
    "alerts",
    "bot_state",
    "command_acks",
    "commands",
    "config_acks",
    "config_versions",
    "equity_history",
    "fill_markouts",
    "fills",
    "funding_payments",
    "market_features",
    "metadata",
    "orders",
    "position_snapshots",
    "schema_version",
    "store_identity",
    "tidy",
    "worker_locks",
]

# Every change of a table here comes with an Alembic revision in bots/store/migrations/versions (a test
# fails when the two disagree).

MONEY_SCALE = 18
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
_MONEY_CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)

COMMANDS = ("start", "stop", "stop_close", "reload_config", "restart", "shutdown", "reset_risk")
FEATURE_COLUMNS = (
    "mid",
    "spread",
    "sigma",
    "imbalance",
    "trade_intensity",
    "reservation_price",
    "gamma",
    "kappa",
)


class Money(TypeDecorator[Decimal]):
    """An exact decimal: `NUMERIC(38, 18)` on PostgreSQL, decimal text on SQLite.

    SQLite has no decimal type: a NUMERIC column there stores a REAL (a binary float), which would
    turn 65000.1 into 65000.100000000005820766. A TEXT column keeps the digits. Values are rounded
    to 18 places on the way in on both backends, so both return the same numbers.
    """

    impl = Numeric(38, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(38, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise TypeError(f"Money needs a finite Decimal, got {value!r}")
        quantized = value.quantize(_QUANTUM, context=_MONEY_CONTEXT)
        return format(tidy(quantized), "f") if dialect.name == "sqlite" else quantized

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return tidy(value if isinstance(value, Decimal) else Decimal(value))


def tidy(value: Decimal) -> Decimal:
    """Drop trailing zeros without going to an exponent (`100.000` -> `100`, `0.50` -> `0.5`), so both
    backends hand back the same representation, not just the same value."""
    normal = value.normalize(_MONEY_CONTEXT)
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normal.quantize(Decimal(1), context=_MONEY_CONTEXT)
    return normal


def _id_column() -> Column[int]:
    # SQLite autoincrements only an INTEGER PRIMARY KEY (the rowid); PostgreSQL wants BIGINT here.
    return Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)


metadata = MetaData()

# Before Alembic, the schema's version (1); Alembic-managed ledgers hold 2 here so that mmfleet from
# before Alembic refuses them. The revision in `alembic_version` is what this code checks.
schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("updated_at_ns", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_schema_version_single_row"),
)

fills = Table(
    "fills",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("fill_id", String(128), nullable=False),
    Column("client_order_id", String(128), nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", Money, nullable=False),
    Column("size", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("is_taker", Boolean, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("recorded_at_ns", BigInteger, nullable=False),
    UniqueConstraint("bot", "fill_id", name="uq_fills_bot_fill_id"),
    CheckConstraint("side IN ('buy', 'sell')", name="ck_fills_side"),
    Index("ix_fills_bot_ts", "bot", "ts_ns"),
)

# Each fill's markout at each horizon (`bots.core.markouts`), written when the horizon passes: the mid
# then against the fill's price, signed for us (negative: the mid went against us). The figures are the
# model's floats; the USD one is kept as Money rounded to 1e-12 (below a float's precision at these sizes).
fill_markouts = Table(
    "fill_markouts",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("fill_id", String(128), nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", Money, nullable=False),
    Column("size", Money, nullable=False),
    Column("fill_ts_ns", BigInteger, nullable=False),
    Column("horizon_s", Double, nullable=False),
    Column("markout_usd", Money, nullable=False),
    Column("markout_bps", Double, nullable=False),
    Column("recorded_at_ns", BigInteger, nullable=False),
    UniqueConstraint("bot", "fill_id", "horizon_s", name="uq_fill_markouts_bot_fill_horizon"),
    CheckConstraint("side IN ('buy', 'sell')", name="ck_fill_markouts_side"),
    CheckConstraint("horizon_s > 0", name="ck_fill_markouts_horizon"),
    Index("ix_fill_markouts_bot_ts", "bot", "fill_ts_ns"),
)

orders = Table(
    "orders",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("client_order_id", String(128), nullable=False),
    Column("exchange_order_id", String(128)),
    Column("side", String(4), nullable=False),
    Column("price", Money, nullable=False),
    Column("size", Money, nullable=False),
    Column("filled_size", Money, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("ts_ns", BigInteger, nullable=False),
    Column("recorded_at_ns", BigInteger, nullable=False),
    Index("ix_orders_bot_coid", "bot", "client_order_id"),
)

position_snapshots = Table(
    "position_snapshots",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("position", Money, nullable=False),
    Column("entry_price", Money),
    Column("cash", Money, nullable=False),
    Column("realized_pnl", Money, nullable=False),
    Column("grid_profit", Money, nullable=False),
    Column("fees", Money, nullable=False),
    Column("volume", Money, nullable=False),
    Column("mark", Money),
    Index("ix_position_snapshots_bot_ts", "bot", "ts_ns"),
)

equity_history = Table(
    "equity_history",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("equity", Money, nullable=False),
    Column("peak_equity", Money, nullable=False),
    Index("ix_equity_history_bot_ts", "bot", "ts_ns"),
)

market_features = Table(
    "market_features",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    *(Column(name, Double) for name in FEATURE_COLUMNS),
    Index("ix_market_features_symbol_ts", "symbol", "ts_ns"),
)

_COMMAND_LIST = ", ".join(f"'{name}'" for name in COMMANDS)

commands = Table(
    "commands",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),  # a bot name, or "*" for every bot
    Column("command", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("author", String(128), nullable=False),
    Column("created_at_ns", BigInteger, nullable=False),
    Column("expires_at_ns", BigInteger),
    Column("acked_at_ns", BigInteger),
    Column("outcome", Text),
    Column("status", String(16), nullable=False),
    CheckConstraint(f"command IN ({_COMMAND_LIST})", name="ck_commands_command"),
    CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_commands_status"),
    Index("ix_commands_bot_status", "bot", "status"),
)

command_acks = Table(
    "command_acks",
    metadata,
    Column("command_id", BigInteger, primary_key=True, autoincrement=False),
    Column("bot", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("outcome", Text),
    Column("acked_at_ns", BigInteger, nullable=False),
    CheckConstraint("status IN ('done', 'failed')", name="ck_command_acks_status"),
)

config_versions = Table(
    "config_versions",
    metadata,
    Column("version", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("config", JSON, nullable=False),
    Column("targets", JSON, nullable=False),  # list of bot names; ["*"] for every bot
    Column("author", String(128), nullable=False),
    Column("created_at_ns", BigInteger, nullable=False),
)

config_acks = Table(
    "config_acks",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("bot", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("at_ns", BigInteger, nullable=False),
    CheckConstraint("status IN ('applied', 'rejected')", name="ck_config_acks_status"),
)

bot_state = Table(
    "bot_state",
    metadata,
    Column("bot", String(128), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at_ns", BigInteger, nullable=False),
)

worker_locks = Table(
    "worker_locks",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at_ns", BigInteger, nullable=False),
    Column("heartbeat_ns", BigInteger, nullable=False),
)

# Alertmanager notifications, one row per (alert fingerprint, firing episode, status): a repeated
# delivery of the same notification changes nothing. `command_id` is the stop command a halting alert
# issued.
alerts = Table(
    "alerts",
    metadata,
    _id_column(),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("alertname", String(256), nullable=False),
    Column("bot", String(128)),  # the alert's `bot` label; None for fleet-level alerts
    Column("starts_at_ns", BigInteger, nullable=False),
    Column("ends_at_ns", BigInteger),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text),
    Column("receiver", String(256)),
    Column("received_at_ns", BigInteger, nullable=False),
    Column("command_id", BigInteger),
    UniqueConstraint("fingerprint", "starts_at_ns", "status", name="uq_alerts_episode_status"),
    CheckConstraint("status IN ('firing', 'resolved')", name="ck_alerts_status"),
    Index("ix_alerts_received", "received_at_ns"),
)

# Which store this database is: a random id drawn once, when the first bot asks. Client order ids carry
# it, so bots of two stores (two data directories or databases) on one account tell each other apart.
store_identity = Table(
    "store_identity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("store_id", BigInteger, nullable=False),
    Column("created_at_ns", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_store_identity_single_row"),
    CheckConstraint("store_id >= 0", name="ck_store_identity_store_id"),
)

# Perpetual funding settled on a bot's position, one row per payment: `amount` is the cash it moved into
# the account (negative when the bot paid: longs pay shorts under a positive rate); `rate` (per funding
# interval), `position` and `mark` are what it was computed from, NULL where the venue does not say
# (GRVT reports the amount alone). Idempotent on (bot, payment_id), like fills. Created by the Alembic
# revision `funding_payments` (bots/store/migrations).
funding_payments = Table(
    "funding_payments",
    metadata,
    _id_column(),
    Column("bot", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("payment_id", String(128), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("amount", Money, nullable=False),
    Column("rate", Money),
    Column("position", Money),
    Column("mark", Money),
    Column("recorded_at_ns", BigInteger, nullable=False),
    UniqueConstraint("bot", "payment_id", name="uq_funding_payments_bot_payment_id"),
    Index("ix_funding_payments_bot_ts", "bot", "ts_ns"),
)
