"""The ledger's schema migrations (Alembic). Every change of a table is a revision in `versions/`,
tested on SQLite and PostgreSQL against a ledger written by the code before it
(tests/integration/test_migrations.py).

A new revision: `alembic revision -m "what changes"` from the repository root (pyproject's
[tool.alembic]), then write its upgrade by hand (SQLite alters a constraint in batch mode);
tests/integration/test_migrations.py fails while bots/store/schema.py and the revisions disagree.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

__all__ = ["BASELINE", "current_revision", "head_revision", "known_revision", "upgrade"]

BASELINE = "0001_baseline"
_LOCATION = Path(__file__).parent


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def current_revision(connection: Connection) -> str | None:
    """The revision the ledger is at; None for a new ledger or one written before Alembic."""
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The revision this code writes."""
    head = _scripts().get_current_head()
    assert head is not None, "bots/store/migrations/versions has no revision"
    return head


def known_revision(revision: str) -> bool:
    """Whether this code knows `revision` (an unknown one was written by a newer mmfleet)."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the ledger to `revision` inside the caller's transaction (which holds the lock that keeps
    two processes from migrating at once)."""
    command.upgrade(_config(connection), revision)
