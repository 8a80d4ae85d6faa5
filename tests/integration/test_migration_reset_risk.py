"""Revision `reset_risk` on SQLite and PostgreSQL: a ledger real bots wrote before it takes the new
command (and still refuses an unknown one) with every figure unchanged, and gets a store id that stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bots.store import Ledger, migrations
from tests.integration.conftest import LedgerFactory
from tests.integration.ledger_figures import ledger_figures
from tests.integration.test_migrations import BASELINE_FIGURES, _write_pre_alembic_ledger


def _insert_command(ledger: Ledger, command: str) -> None:
    """A row written past `enqueue_command`'s own check: what the database's constraint allows."""
    with ledger.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO commands (bot, command, payload, author, created_at_ns, status)"
                " VALUES ('b', :command, '{}', 'test', 1, 'pending')"
            ),
            {"command": command},
        )


def test_a_ledger_from_before_the_revision_takes_reset_risk_and_keeps_every_figure(
    ledgers: LedgerFactory,
) -> None:
    _write_pre_alembic_ledger(ledgers)
    ledger = ledgers.open()
    with ledger.engine.begin() as connection:
        assert migrations.current_revision(connection) == migrations.head_revision()
    assert ledger_figures(ledger) == BASELINE_FIGURES  # the commands table was copied, not emptied
    before = {c.id: (c.command, c.author) for c in ledger.recent_commands(1_000)}
    command_id = ledger.enqueue_command("BTC_USDT_Perp", "reset_risk", author="cli ops@desk")
    assert ledger.command(command_id).command == "reset_risk"
    assert ledger.command(command_id).author == "cli ops@desk"
    with pytest.raises(IntegrityError):  # the constraint is still there, with the new list
        _insert_command(ledger, "bogus")
    after = {c.id: (c.command, c.author) for c in ledger.recent_commands(1_000) if c.id != command_id}
    assert after == before
    store_id = ledger.store_id()
    ledger.close()
    assert ledgers.open().store_id() == store_id  # drawn once, kept in the database


def test_two_databases_are_two_stores(
    ledgers: LedgerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = Ledger(tmp_path_factory.mktemp("other") / "ledger.db")
    try:
        assert ledgers.open().store_id() != other.store_id()  # 63 random bits each
    finally:
        other.close()


def test_the_revision_downgrades_and_upgrades_again(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    ledger.store_id()
    with ledger.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(Path(migrations.__file__).parent))
        config.attributes["connection"] = connection
        command.downgrade(config, "0002_refuse_pre_alembic_code")
        assert migrations.current_revision(connection) == "0002_refuse_pre_alembic_code"
    with pytest.raises(IntegrityError):
        _insert_command(ledger, "reset_risk")
    ledger.close()
    ledger = ledgers.open()  # opening upgrades it again
    _insert_command(ledger, "reset_risk")
    assert ledger.store_id() >= 0
