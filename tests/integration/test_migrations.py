"""The ledger's schema migrations, on SQLite and PostgreSQL: a ledger written before Alembic (by real
bots: tests/fixtures/ledger_baseline.db) upgrades with every fill, position and PnL figure unchanged,
the revisions build exactly the tables the code declares, and a ledger from a newer mmfleet is refused.
"""

from __future__ import annotations

import json
import shutil
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Integer, MetaData, Numeric, create_engine, select, text

from bots.store import Ledger, SchemaVersionError, migrations
from bots.store.db import ledger_engine
from bots.store.schema import metadata
from tests.integration.conftest import LedgerFactory
from tests.integration.ledger_figures import ledger_figures

FIXTURES = Path(__file__).parents[1] / "fixtures"
BASELINE_LEDGER = FIXTURES / "ledger_baseline.db"
BASELINE_FIGURES = json.loads((FIXTURES / "ledger_baseline.json").read_text())


def _copy_rows(source: Connection, target: Connection) -> None:
    """Every row of the baseline ledger into `target`'s tables (PostgreSQL: the baseline's types)."""
    tables = MetaData()
    tables.reflect(source)
    into = MetaData()
    into.reflect(target)
    for table in tables.sorted_tables:
        destination = into.tables[table.name]
        exact = {c.name for c in destination.columns if isinstance(c.type, Numeric) and c.type.asdecimal}
        rows = [
            {k: Decimal(v) if k in exact and v is not None else v for k, v in row._mapping.items()}
            for row in source.execute(select(table))
        ]
        target.execute(destination.delete())
        if rows:
            target.execute(destination.insert(), rows)
        for key in destination.primary_key.columns:  # rows came with their ids: move a serial's sequence on
            if isinstance(key.type, Integer):
                sequence = f"pg_get_serial_sequence('{table.name}', '{key.name}')"
                target.execute(text(f"SELECT setval({sequence}, max({key.name})) FROM {table.name}"))


def _write_pre_alembic_ledger(ledgers: LedgerFactory) -> None:
    """A ledger as the code before Alembic left it: SQLite, the file real bots wrote; PostgreSQL, the
    baseline's tables holding the same rows, with no Alembic revision recorded."""
    if ledgers.backend == "sqlite":
        shutil.copy(BASELINE_LEDGER, ledgers.url)
        return
    engine = ledger_engine(ledgers.url, schema=ledgers.schema)
    source = create_engine(f"sqlite:///{BASELINE_LEDGER}")
    try:
        with engine.begin() as connection, source.connect() as rows:
            migrations.upgrade(connection, migrations.BASELINE)
            connection.execute(text("DROP TABLE alembic_version"))
            _copy_rows(rows, connection)
    finally:
        engine.dispose()
        source.dispose()


def _state(ledger: Ledger) -> tuple[str | None, int]:
    with ledger.engine.connect() as connection:
        version = connection.execute(text("SELECT version FROM schema_version")).scalar_one()
        return migrations.current_revision(connection), version


def test_a_ledger_written_before_alembic_upgrades_with_every_figure_unchanged(ledgers: LedgerFactory) -> None:
    _write_pre_alembic_ledger(ledgers)
    ledger = ledgers.open()
    assert _state(ledger) == (migrations.head_revision(), 2)  # mmfleet before Alembic refuses version 2
    assert ledger_figures(ledger) == BASELINE_FIGURES
    ledger.close()
    assert ledger_figures(ledgers.open()) == BASELINE_FIGURES  # opening an upgraded ledger changes nothing


def test_the_revisions_build_exactly_the_tables_the_code_declares(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences: list[Any] = compare_metadata(context, metadata)
    assert differences == [], "bots/store/schema.py changed without a migration (or the reverse)"


def test_an_upgraded_baseline_ledger_matches_the_declared_tables(ledgers: LedgerFactory) -> None:
    _write_pre_alembic_ledger(ledgers)
    ledger = ledgers.open()
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_head_names_the_newest_revision() -> None:
    """A ledger at `HEAD` opens without Alembic: a revision added without moving `HEAD` would be skipped."""
    assert migrations.head_revision() == migrations.HEAD


def test_a_ledger_from_a_newer_mmfleet_is_refused(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    with ledger.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d_from_the_future'"))
    ledger.close()
    with pytest.raises(SchemaVersionError, match="f00d_from_the_future, newer than this code"):
        ledgers.open()


def test_a_fleet_opening_a_new_ledger_at_once_builds_it_once(ledgers: LedgerFactory) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            Ledger(ledgers.url, schema=ledgers.schema).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ledger = ledgers.open()
    assert _state(ledger) == (migrations.head_revision(), 2)
    with ledger.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
