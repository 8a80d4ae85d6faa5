"""`mmfleet ctl <command>`: the exit code says whether every bot acked in time."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bots.cli import app
from bots.cli.ctl import ACK_TIMEOUT, COMMAND_REFUSED
from bots.store import Ledger

BTC, ETH = "BTC_USDT_Perp", "ETH_USDT_Perp"
runner = CliRunner()


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("MMFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "fleet.yaml"
    data = {"data_dir": str(tmp_path / "data"), "bots": [{"symbol": BTC}, {"symbol": ETH}]}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(params=[True], ids=["done"])
def bot_acking(fleet: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A bot (BTC) that acks every command of its own, through the same store, as a worker does (done,
    or refused when the test's parameter says False)."""
    ok: bool = request.param
    stop = threading.Event()
    store = fleet.parent / "data" / "ledger.db"
    with Ledger(store):
        pass  # the schema exists before ctl and the bot open the store side by side

    def run() -> None:
        with Ledger(store) as ledger:
            while not stop.wait(0.05):
                for command in ledger.pending_commands(BTC):
                    outcome = "stopped" if ok else "refused: halted: drawdown halt"
                    ledger.ack_command(command.id, outcome, bot=BTC, ok=ok)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield BTC
    stop.set()
    thread.join(timeout=5)


def ctl(fleet: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["ctl", "stop", "--config", str(fleet), *args])
    return result.exit_code, result.stdout, result.stderr


def test_no_ack_in_time_exits_with_the_ack_timeout_code_naming_the_bot(fleet: Path) -> None:
    code, out, err = ctl(fleet, "--bot", ETH, "--wait", "0.5")
    assert code == ACK_TIMEOUT == 124
    assert f"{ETH}: no ack yet" in out
    assert f"no ack within 0.5 s from {ETH}" in err and "stays queued" in err


def test_an_acked_command_exits_0(fleet: Path, bot_acking: str) -> None:
    code, out, err = ctl(fleet, "--bot", bot_acking, "--wait", "10")
    assert (code, err) == (0, "")
    assert f"{bot_acking}: done: stopped" in out


def test_one_bot_of_all_silent_is_a_timeout(fleet: Path, bot_acking: str) -> None:
    code, out, err = ctl(fleet, "--all", "--wait", "1")
    assert code == ACK_TIMEOUT
    assert f"{bot_acking}: done: stopped" in out
    assert f"from {ETH} " in err and bot_acking not in err


def test_not_waiting_is_not_a_timeout(fleet: Path) -> None:
    code, out, _ = ctl(fleet, "--bot", ETH, "--wait", "0")
    assert code == 0 and "command 1: stop" in out


@pytest.mark.parametrize("bot_acking", [False], ids=["refused"], indirect=True)
def test_a_refused_command_exits_with_the_refused_code_and_the_ack_says_why(
    fleet: Path, bot_acking: str
) -> None:
    code, out, err = ctl(fleet, "--bot", bot_acking, "--wait", "10")
    assert code == COMMAND_REFUSED == 123
    assert f"{bot_acking}: failed: refused: halted: drawdown halt" in out
    assert f"stop refused or failed by {bot_acking}" in err


def test_the_command_row_keeps_its_author(fleet: Path) -> None:
    ctl(fleet, "--bot", ETH, "--wait", "0")
    with Ledger(fleet.parent / "data" / "ledger.db") as ledger:
        (command,) = ledger.recent_commands(1)
    assert command.author.startswith("cli ") and "@" in command.author
