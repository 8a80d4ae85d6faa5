"""The `reset_risk` command (lifts a bot's halt, re-arms its peak equity) and the store's identity.

`commands.command` is checked against the list of commands, so a new command changes the constraint
(SQLite cannot alter one: the table is copied in batch mode, from its frozen definition below).
`store_identity` holds the random id this database's bots carry in their client order ids, so that two
stores trading one account tell each other apart.

Revision ID: reset_risk
Revises: 0002_refuse_pre_alembic_code
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "reset_risk"
down_revision: str | None = "0002_refuse_pre_alembic_code"
branch_labels = None
depends_on = None

_BEFORE = ("start", "stop", "stop_close", "reload_config", "restart", "shutdown")
_AFTER = (*_BEFORE, "reset_risk")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _check(commands: tuple[str, ...]) -> str:
    return "command IN (" + ", ".join(f"'{name}'" for name in commands) + ")"


def _commands(commands: tuple[str, ...]) -> sa.Table:
    """The commands table as the revision before leaves it, but checking `commands` (batch mode on
    SQLite copies the table from this definition instead of reflecting it)."""
    return sa.Table(
        "commands",
        sa.MetaData(),
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(length=128), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("acked_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint(_check(commands), name="ck_commands_command"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_commands_status"),
        sa.Index("ix_commands_bot_status", "bot", "status"),
    )


def _recheck(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    with op.batch_alter_table("commands", copy_from=_commands(old)) as batch:
        batch.drop_constraint("ck_commands_command", type_="check")
        batch.create_check_constraint("ck_commands_command", sa.text(_check(new)))


def upgrade() -> None:
    _recheck(_BEFORE, _AFTER)
    op.create_table(
        "store_identity",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("store_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_store_identity_single_row"),
        sa.CheckConstraint("store_id >= 0", name="ck_store_identity_store_id"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Refused while a reset_risk command is recorded (the old constraint cannot hold it, and the audit
    trail is not deleted to make it fit)."""
    op.drop_table("store_identity")
    _recheck(_AFTER, _BEFORE)
