"""`mmfleet bot run` as a real process exits with the code of its cause (bots/exitcodes.py)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from bots.exchange.sim.market import SimMarket
from bots.exchange.sim.replay import write_recording
from bots.exitcodes import ExitCode
from bots.store import Ledger
from settings.models import BUILTIN_INSTRUMENTS
from tests.integration.test_fleet import BUSY_BOT, free_port, mmfleet, ready, wait_for

pytestmark = pytest.mark.integration


def _fleet(tmp_path: Path, **sim: object) -> Path:
    path = tmp_path / "fleet.yaml"
    bot = {"symbol": "BTC_USDT_Perp", "sim": {**BUSY_BOT["sim"], **sim}}
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "metrics_base_port": free_port(),
                "defaults": BUSY_BOT,
                "bots": [bot],
            }
        )
    )
    return path


def _run(path: Path) -> subprocess.Popen[str]:
    return mmfleet("bot", "run", "--config", str(path), "--bot", "BTC_USDT_Perp", "--quiet")


def _port(path: Path) -> int:
    return int(yaml.safe_load(path.read_text())["metrics_base_port"])


def test_the_shutdown_command_exits_0_and_a_signal_128_plus_its_number(tmp_path: Path) -> None:
    path = _fleet(tmp_path)
    worker = _run(path)
    try:
        wait_for(lambda: ready(_port(path)), what="worker ready")
        with Ledger(tmp_path / "data" / "ledger.db") as ledger:
            ledger.enqueue_command("BTC_USDT_Perp", "shutdown", author="test")
        assert worker.wait(timeout=30) == ExitCode.SHUTDOWN
        worker = _run(path)
        wait_for(lambda: ready(_port(path)), what="worker ready again")
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=30) == ExitCode.INTERRUPTED
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_corrupt_row_in_a_replay_ends_the_bot_with_the_market_data_code(tmp_path: Path) -> None:
    market = SimMarket("BTC_USDT_Perp", BUILTIN_INSTRUMENTS["BTC_USDT_Perp"], seed=3, s0=65_000.0)
    recording = tmp_path / "market.csv"
    write_recording(recording, list(market.steps(30)))
    lines = recording.read_text().splitlines()
    middle = next(i for i in range(len(lines) // 2, len(lines)) if ",book," in lines[i])
    lines.insert(middle, lines[middle].replace(",book,", ",bogus,", 1))  # one corrupt row in the middle
    recording.write_text("\n".join(lines) + "\n")
    worker = _run(_fleet(tmp_path, replay_file=str(recording), speed=50.0))
    try:
        assert worker.wait(timeout=60) == ExitCode.MARKET_DATA_ENDED
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.stderr is not None
    assert "Traceback" not in worker.stderr.read()
    log = (tmp_path / "data" / "logs" / "BTC_USDT_Perp.log").read_text()
    assert "market data source failed" in log and "unknown row kind 'bogus'" in log
