"""schema_version 2: mmfleet from before Alembic refuses a ledger that Alembic manages.

That code checked `schema_version.version == 1` and would otherwise write into tables it does not
know have changed ("the ledger database has schema version 2, this code knows 1: upgrade mmfleet").
Later revisions keep the row at 2: the revision in `alembic_version` is what this code checks.

Revision ID: 0002_refuse_pre_alembic_code
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_refuse_pre_alembic_code"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None

_SCHEMA_VERSION = sa.table("schema_version", sa.column("id"), sa.column("version"))


def upgrade() -> None:
    op.execute(_SCHEMA_VERSION.update().where(_SCHEMA_VERSION.c.id == 1).values(version=2))


def downgrade() -> None:
    op.execute(_SCHEMA_VERSION.update().where(_SCHEMA_VERSION.c.id == 1).values(version=1))
