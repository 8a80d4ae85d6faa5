"""Baseline: the ledger's schema as it stood before Alembic (schema_version 1, written by create_all).

A ledger created by that code is stamped at this revision and upgraded from here; a new ledger runs
this revision first. The types are frozen here (not imported from bots.store.schema) so that a later
change of the live schema cannot rewrite history: Money was decimal text on SQLite, NUMERIC(38, 18) on
PostgreSQL.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(38, 18).with_variant(sa.String(48), "sqlite")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A ledger written before Alembic already has these tables (one written before the alerts table
    # existed lacks that one): create only what is missing, change nothing that exists.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "alerts" not in existing:
        op.create_table(
            "alerts",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("fingerprint", sa.String(length=64), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("alertname", sa.String(length=256), nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=True),
            sa.Column("starts_at_ns", sa.BigInteger(), nullable=False),
            sa.Column("ends_at_ns", sa.BigInteger(), nullable=True),
            sa.Column("labels", sa.JSON(), nullable=False),
            sa.Column("annotations", sa.JSON(), nullable=False),
            sa.Column("generator_url", sa.Text(), nullable=True),
            sa.Column("receiver", sa.String(length=256), nullable=True),
            sa.Column("received_at_ns", sa.BigInteger(), nullable=False),
            sa.Column("command_id", sa.BigInteger(), nullable=True),
            sa.CheckConstraint("status IN ('firing', 'resolved')", name="ck_alerts_status"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("fingerprint", "starts_at_ns", "status", name="uq_alerts_episode_status"),
        )
        op.create_index("ix_alerts_received", "alerts", ["received_at_ns"], unique=False)
    if "bot_state" not in existing:
        op.create_table(
            "bot_state",
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("key", sa.String(length=128), nullable=False),
            sa.Column("value", sa.JSON(), nullable=False),
            sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("bot", "key"),
        )
    if "command_acks" not in existing:
        op.create_table(
            "command_acks",
            sa.Column("command_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("outcome", sa.Text(), nullable=True),
            sa.Column("acked_at_ns", sa.BigInteger(), nullable=False),
            sa.CheckConstraint("status IN ('done', 'failed')", name="ck_command_acks_status"),
            sa.PrimaryKeyConstraint("command_id", "bot"),
        )
    if "commands" not in existing:
        op.create_table(
            "commands",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("command", sa.String(length=32), nullable=False),
            sa.Column("payload", sa.JSON(), nullable=False),
            sa.Column("author", sa.String(length=128), nullable=False),
            sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
            sa.Column("expires_at_ns", sa.BigInteger(), nullable=True),
            sa.Column("acked_at_ns", sa.BigInteger(), nullable=True),
            sa.Column("outcome", sa.Text(), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.CheckConstraint(
                "command IN ('start', 'stop', 'stop_close', 'reload_config', 'restart', 'shutdown')",
                name="ck_commands_command",
            ),
            sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_commands_status"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_commands_bot_status", "commands", ["bot", "status"], unique=False)
    if "config_acks" not in existing:
        op.create_table(
            "config_acks",
            sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("at_ns", sa.BigInteger(), nullable=False),
            sa.CheckConstraint("status IN ('applied', 'rejected')", name="ck_config_acks_status"),
            sa.PrimaryKeyConstraint("version", "bot"),
        )
    if "config_versions" not in existing:
        op.create_table(
            "config_versions",
            sa.Column("version", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("config", sa.JSON(), nullable=False),
            sa.Column("targets", sa.JSON(), nullable=False),
            sa.Column("author", sa.String(length=128), nullable=False),
            sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("version"),
        )
    if "equity_history" not in existing:
        op.create_table(
            "equity_history",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("symbol", sa.String(length=64), nullable=False),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
            sa.Column("equity", MONEY, nullable=False),
            sa.Column("peak_equity", MONEY, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_equity_history_bot_ts", "equity_history", ["bot", "ts_ns"], unique=False)
    if "fills" not in existing:
        op.create_table(
            "fills",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("symbol", sa.String(length=64), nullable=False),
            sa.Column("fill_id", sa.String(length=128), nullable=False),
            sa.Column("client_order_id", sa.String(length=128), nullable=False),
            sa.Column("side", sa.String(length=4), nullable=False),
            sa.Column("price", MONEY, nullable=False),
            sa.Column("size", MONEY, nullable=False),
            sa.Column("fee", MONEY, nullable=False),
            sa.Column("is_taker", sa.Boolean(), nullable=False),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
            sa.Column("recorded_at_ns", sa.BigInteger(), nullable=False),
            sa.CheckConstraint("side IN ('buy', 'sell')", name="ck_fills_side"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("bot", "fill_id", name="uq_fills_bot_fill_id"),
        )
        op.create_index("ix_fills_bot_ts", "fills", ["bot", "ts_ns"], unique=False)
    if "market_features" not in existing:
        op.create_table(
            "market_features",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("symbol", sa.String(length=64), nullable=False),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
            sa.Column("mid", sa.Double(), nullable=True),
            sa.Column("spread", sa.Double(), nullable=True),
            sa.Column("sigma", sa.Double(), nullable=True),
            sa.Column("imbalance", sa.Double(), nullable=True),
            sa.Column("trade_intensity", sa.Double(), nullable=True),
            sa.Column("reservation_price", sa.Double(), nullable=True),
            sa.Column("gamma", sa.Double(), nullable=True),
            sa.Column("kappa", sa.Double(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_market_features_symbol_ts", "market_features", ["symbol", "ts_ns"], unique=False)
    if "orders" not in existing:
        op.create_table(
            "orders",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("symbol", sa.String(length=64), nullable=False),
            sa.Column("client_order_id", sa.String(length=128), nullable=False),
            sa.Column("exchange_order_id", sa.String(length=128), nullable=True),
            sa.Column("side", sa.String(length=4), nullable=False),
            sa.Column("price", MONEY, nullable=False),
            sa.Column("size", MONEY, nullable=False),
            sa.Column("filled_size", MONEY, nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
            sa.Column("recorded_at_ns", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_orders_bot_coid", "orders", ["bot", "client_order_id"], unique=False)
    if "position_snapshots" not in existing:
        op.create_table(
            "position_snapshots",
            sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
            sa.Column("bot", sa.String(length=128), nullable=False),
            sa.Column("symbol", sa.String(length=64), nullable=False),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
            sa.Column("position", MONEY, nullable=False),
            sa.Column("entry_price", MONEY, nullable=True),
            sa.Column("cash", MONEY, nullable=False),
            sa.Column("realized_pnl", MONEY, nullable=False),
            sa.Column("grid_profit", MONEY, nullable=False),
            sa.Column("fees", MONEY, nullable=False),
            sa.Column("volume", MONEY, nullable=False),
            sa.Column("mark", MONEY, nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_position_snapshots_bot_ts", "position_snapshots", ["bot", "ts_ns"], unique=False)
    if "schema_version" not in existing:
        op.create_table(
            "schema_version",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
            sa.CheckConstraint("id = 1", name="ck_schema_version_single_row"),
            sa.PrimaryKeyConstraint("id"),
        )
    if "worker_locks" not in existing:
        op.create_table(
            "worker_locks",
            sa.Column("account", sa.String(length=128), nullable=False),
            sa.Column("symbol", sa.String(length=64), nullable=False),
            sa.Column("owner", sa.String(length=256), nullable=False),
            sa.Column("host", sa.String(length=255), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("acquired_at_ns", sa.BigInteger(), nullable=False),
            sa.Column("heartbeat_ns", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("account", "symbol"),
        )
    schema_version = sa.table(
        "schema_version", sa.column("id"), sa.column("version"), sa.column("updated_at_ns")
    )
    if "schema_version" not in existing:
        op.bulk_insert(schema_version, [{"id": 1, "version": 1, "updated_at_ns": time.time_ns()}])


def downgrade() -> None:
    raise NotImplementedError("the baseline is not downgraded: it would drop every table of the ledger")
