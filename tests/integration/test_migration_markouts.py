"""The `markouts` revision on SQLite and PostgreSQL: a ledger at the revision before it (the baseline
real bots wrote, upgraded) gains an empty fill_markouts table with every fill, position and PnL figure
unchanged, and markouts then record; a downgrade removes the table again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from bots.core.markouts import FillMarkout
from bots.engine.types import Side
from bots.store import migrations
from bots.store.db import ledger_engine
from tests.integration.conftest import LedgerFactory
from tests.integration.ledger_figures import ledger_figures
from tests.integration.test_migrations import BASELINE_FIGURES, _write_pre_alembic_ledger

BEFORE = "reset_risk"  # the revision before this one


def _to(ledgers: LedgerFactory, revision: str) -> set[str]:
    """Migrate the ledger up or down to `revision`; the tables it then has."""
    engine = ledger_engine(ledgers.url, schema=ledgers.schema)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(Path(migrations.__file__).parent))
            config.attributes["connection"] = connection
            current = migrations.current_revision(connection)
            if current not in (None, BEFORE) and revision == BEFORE:  # from markouts or a later head
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)
            assert migrations.current_revision(connection) == revision
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_the_markouts_revision_adds_its_table_and_changes_no_figure(ledgers: LedgerFactory) -> None:
    _write_pre_alembic_ledger(ledgers)
    assert "fill_markouts" not in _to(ledgers, BEFORE)
    assert "fill_markouts" in _to(ledgers, "markouts")
    ledger = ledgers.open()
    assert ledger_figures(ledger) == BASELINE_FIGURES
    markout = FillMarkout(
        "b", "BTC_USDT_Perp", "f-1", Side.BUY, Decimal("65000.1"), Decimal("0.002"), 1, 1.0, -1.5, -0.0195
    )
    assert ledger.markouts("b") == [] and ledger.record_markouts([markout]) == 1
    assert ledger.markouts("b") == [markout]
    ledger.close()
    assert "fill_markouts" not in _to(ledgers, BEFORE)
