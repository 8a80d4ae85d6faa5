"""Funding payments: a table of their own, one row per funding settlement on a bot's position.

`amount` is the cash the payment moved into the account (negative when the bot paid: longs pay shorts
under a positive rate); `rate` (per funding interval), `position` and `mark` are what it was computed
from, NULL where the venue reports the amount alone (GRVT). Idempotent on (bot, payment_id) like fills.
A new table only: no existing row changes. Money as in the baseline (decimal text on SQLite,
NUMERIC(38, 18) on PostgreSQL), frozen here.

Revision ID: funding_payments
Revises: markouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "funding_payments"
down_revision: str | None = "markouts"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(38, 18).with_variant(sa.String(48), "sqlite")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "funding_payments",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=128), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("rate", MONEY, nullable=True),
        sa.Column("position", MONEY, nullable=True),
        sa.Column("mark", MONEY, nullable=True),
        sa.Column("recorded_at_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bot", "payment_id", name="uq_funding_payments_bot_payment_id"),
    )
    op.create_index("ix_funding_payments_bot_ts", "funding_payments", ["bot", "ts_ns"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_funding_payments_bot_ts", table_name="funding_payments")
    op.drop_table("funding_payments")
