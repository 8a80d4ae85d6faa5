"""The ledger's schema migrations (Alembic). Every change of a table is a revision in `versions/`,
tested on SQLite and PostgreSQL against a ledger written by the code before it
(tests/integration/test_migrations.py).

A new revision: `alembic revision -m "what changes"` from the repository root (pyproject's
[tool.alembic]), then write its upgrade by hand (SQLite alters a constraint in batch mode) and set
`HEAD` to it; tests/integration/test_migrations.py fails while bots/store/schema.py and the revisions
disagree, or `HEAD` is not the newest revision.

Alembic (with Mako and Pygments, ~12 MB of a bot's memory) is imported only to upgrade or inspect the
revisions: a ledger already at `HEAD`, what every bot but the first of a fleet opens, needs neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = ["BASELINE", "HEAD", "current_revision", "head_revision", "known_revision", "upgrade"]

BASELINE: Final = "0001_baseline"
HEAD: Final = "funding_payments"  # the newest revision in versions/ (`head_revision()`, tested equal)
_LOCATION = Path(__file__).parent
_VERSION_TABLE = "alembic_version"  # Alembic's default: env.py names no other


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module's docstring

    config = Config()
    config.set_main_option("script_location", str(_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the module's docstring

    return ScriptDirectory.from_config(_config())


def current_revision(connection: Connection) -> str | None:
    """The revision the ledger is at; None for a new ledger or one written before Alembic. Read as
    Alembic stores it, one row of its version table (two rows, a branched history, raise)."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return None
    revision: str | None = connection.execute(
        text(f"SELECT version_num FROM {_VERSION_TABLE}")
    ).scalar_one_or_none()
    return revision


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
    from alembic import command  # noqa: PLC0415 - see the module's docstring

    command.upgrade(_config(connection), revision)
