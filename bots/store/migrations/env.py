"""Alembic's environment for the ledger: mmfleet runs it on the connection it opened and locked (see
`bots.store.db.LedgerBase`), so a ledger is upgraded when it is opened (`mmfleet ctl status` will do)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from bots.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise SystemExit(
        "the ledger is upgraded by mmfleet when it opens it (e.g. `mmfleet ctl status -c FLEET.yaml`); "
        "`alembic revision -m ...` needs no database"
    )
# SQLite cannot ALTER a constraint: batch mode copies the table instead.
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite"
)
with context.begin_transaction():
    context.run_migrations()
