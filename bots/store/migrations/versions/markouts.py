"""fill_markouts: each fill's markout at each horizon (1 s, 10 s, 60 s), written when the horizon passes.

A new table only: no existing row or column changes. Types frozen as in the baseline (Money: decimal
text on SQLite, NUMERIC(38, 18) on PostgreSQL).

Revision ID: markouts
Revises: reset_risk
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "markouts"
down_revision: str | None = "reset_risk"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(38, 18).with_variant(sa.String(48), "sqlite")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fill_markouts",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("fill_id", sa.String(length=128), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("size", MONEY, nullable=False),
        sa.Column("fill_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("horizon_s", sa.Double(), nullable=False),
        sa.Column("markout_usd", MONEY, nullable=False),
        sa.Column("markout_bps", sa.Double(), nullable=False),
        sa.Column("recorded_at_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="ck_fill_markouts_side"),
        sa.CheckConstraint("horizon_s > 0", name="ck_fill_markouts_horizon"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bot", "fill_id", "horizon_s", name="uq_fill_markouts_bot_fill_horizon"),
    )
    op.create_index("ix_fill_markouts_bot_ts", "fill_markouts", ["bot", "fill_ts_ns"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_fill_markouts_bot_ts", table_name="fill_markouts")
    op.drop_table("fill_markouts")
