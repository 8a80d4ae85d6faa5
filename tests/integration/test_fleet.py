"""Real worker and supervisor processes: the metrics port, the CLI, crash recovery, clean stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.exitcodes import ExitCode
from bots.ops.dashboard import parse_exposition
from bots.store import Ledger

# DESIGN.md's metrics vocabulary, as exposed (counters with _total, the histogram by its count), but
# regime_probability: absent while no regime model answers (regime_model_loaded says so).
VOCABULARY = [
    "position_base", "position_usd", "equity_usd", "peak_equity_usd", "drawdown_ratio", "realized_pnl_usd",
    "unrealized_pnl_usd", "grid_profit_usd", "mid_price", "reservation_price", "quote_price",
    "optimal_spread", "model_spread", "spread_floor_binding", "volatility", "gamma", "kappa", "intensity_a",
    "intensity_fitted", "regime_model_loaded", "signal_latched", "orders_open",
    "orders_placed_total", "orders_cancelled_total", "orders_rejected_total", "fills_total",
    "fill_volume_usd_total", "maker_rebate_usd_total", "tick_to_quote_seconds_count",
    "market_data_age_seconds", "exchange_errors_total", "circuit_breaker_tripped", "trading_enabled",
    "config_info", "model_info",
]  # fmt: skip

# Quotes where the sim's trades arrive (~0.5 bp from the mid): the model's own spread for the fitted
# kappa (~1 bp), no wide floor, grid layers 1 bp apart, orders following every tick.
NEAR_TOUCH: dict[str, Any] = {
    "kappa": "auto",
    "spread_pct": 0.00005,
    "grid_layers": 3,
    "grid_spacing_pct": 0.0001,
    "price_tolerance_pct": 0.0,
}
# A bot that trades within seconds, as a venue would fill it: 10x real time, ten times the sim's trades
# at their usual depth, quoting near the touch.
BUSY_BOT: dict[str, Any] = {
    "sim": {"speed": 10.0, "trade_intensity_a": 20.0},
    "strategy": NEAR_TOUCH,
    "risk": {"max_loss_usd": 1000.0, "max_drawdown_pct": 0.5},
}


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this session: two callers that have not bound
    theirs yet (a bot and a receiver, say) must not get the same one."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        # fleets use consecutive ports from a base: keep every handed-out port 25 apart
        if port < 65_000 and all(abs(port - other) > 25 for other in _HANDED_OUT):
            _HANDED_OUT.add(port)
            return port


def write_fleet(tmp_path: Path, symbols: list[str], **bot_overrides: Any) -> tuple[Path, int]:
    """A fleet file whose bots take consecutive free-looking ports from a random base."""
    base = free_port()
    while any(_port_busy(base + i) for i in range(len(symbols))):
        base = free_port()
    data = {
        "data_dir": str(tmp_path / "data"),
        "metrics_base_port": base,
        "defaults": BUSY_BOT,
        "bots": [{"symbol": s, **bot_overrides} for s in symbols],
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, base


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def mmfleet(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bots.cli", *args], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, **kwargs,
    )  # fmt: skip


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def ready(port: int) -> bool:
    return http(port, "/readyz")[0] == 200


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    status, text = http(port, "/metrics")
    assert status == 200
    return parse_exposition(text)


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples[f"mmfleet_{name}"])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()  # a supervisor stops its workers on SIGTERM
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stop_via_cli(config: Path, bot: str) -> None:
    command = ["ctl", "stop", "--config", str(config), "--bot", bot, "--wait", "20"]
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", *command], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"{bot}: done: stopped" in result.stdout


def assert_metrics_match_ledger(port: int, bot: str, data_dir: Path, *, restarted: bool = False) -> None:
    """Gauges equal the ledger's numbers; counters too unless the process restarted (they reset then)."""
    samples = scrape(port)
    with Ledger(data_dir / "ledger.db") as ledger:
        fills = ledger.fills(bot)
        portfolio = ledger.restore_portfolio(bot, "BTC_USDT_Perp", Decimal(10_000))
    assert fills, "the bot should have traded"
    assert total(samples, "position_base") == pytest.approx(float(portfolio.position), abs=1e-12)
    if not restarted:
        assert total(samples, "fills_total") == len(fills)
    assert total(samples, "realized_pnl_usd") == pytest.approx(
        float(portfolio.realized_pnl), rel=1e-9, abs=1e-9
    )
    assert total(samples, "grid_profit_usd") == pytest.approx(
        float(portfolio.grid_profit), rel=1e-9, abs=1e-9
    )
    mid = Decimal(str(total(samples, "mid_price")))
    assert total(samples, "equity_usd") == pytest.approx(float(portfolio.equity(mid)), rel=1e-9)
    assert total(samples, "orders_open") == 0


def test_worker_exposes_the_vocabulary_matching_the_ledger(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    config, port = write_fleet(tmp_path, ["BTC_USDT_Perp"])
    worker = mmfleet("bot", "run", "--config", str(config), "--bot", "BTC_USDT_Perp", "--quiet")
    processes.append(worker)
    wait_for(lambda: http(port, "/readyz")[0] == 200, what="readyz")
    assert http(port, "/healthz") == (200, "ok\n")
    samples = scrape(port)
    missing = [name for name in VOCABULARY if f"mmfleet_{name}" not in samples]
    assert not missing, f"missing from the exposition: {missing}"
    assert "mmfleet_regime_probability" not in samples  # no model: absent, not 0
    assert [v for _, v in samples["mmfleet_regime_model_loaded"]] == [0.0]
    for labels, _ in samples["mmfleet_position_base"]:
        assert labels == {"bot": "BTC_USDT_Perp", "symbol": "BTC_USDT_Perp", "mode": "sim"}
    wait_for(lambda: total(scrape(port), "fills_total") >= 3, what="fills")

    # A second worker for the same account and symbol is refused before it sends anything.
    second = mmfleet("bot", "run", "--config", str(config), "--bot", "BTC_USDT_Perp", "--metrics-port", "1")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert "already run by" in err and "Traceback" not in err

    stop_via_cli(config, "BTC_USDT_Perp")
    assert_metrics_match_ledger(port, "BTC_USDT_Perp", tmp_path / "data")
    status = subprocess.run(
        [sys.executable, "-m", "bots.cli", "ctl", "status", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    row = next(line for line in status.stdout.splitlines() if "BTC_USDT_Perp" in line)
    assert "stopped" in row and "stop: stopped" in row and " sim " in row
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == ExitCode.TERMINATED  # a clean stop, told apart from `shutdown`
    log_lines = (tmp_path / "data" / "logs" / "BTC_USDT_Perp.log").read_text().splitlines()
    assert json.loads(log_lines[-1])["message"] == "stopped"


def test_supervisor_restarts_a_killed_worker_with_the_ledger_position(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    config, base = write_fleet(tmp_path, ["BTC_USDT_Perp", "ETH_USDT_Perp"])
    supervisor = mmfleet("fleet", "up", "--config", str(config), "--no-table")
    processes.append(supervisor)
    status_file = tmp_path / "data" / "fleet" / "status.json"
    for port in (base, base + 1):
        wait_for(partial(ready, port), what=f"worker on {port}")
    targets = json.loads((tmp_path / "data" / "fleet" / "targets.json").read_text())
    assert [t["targets"] for t in targets] == [[f"127.0.0.1:{base}"], [f"127.0.0.1:{base + 1}"]]
    wait_for(lambda: total(scrape(base), "fills_total") >= 2 and total(scrape(base), "position_base") != 0)

    def btc() -> dict[str, Any]:
        status: dict[str, Any] = json.loads(status_file.read_text())["bots"][0]
        return status

    old_pid = btc()["pid"]
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: btc()["pid"] not in (None, old_pid) and btc()["state"] == "running", what="restart")
    assert btc()["restarts"] == 1
    wait_for(lambda: http(base, "/readyz")[0] == 200, what="restarted worker ready")
    stop_via_cli(config, "BTC_USDT_Perp")
    assert_metrics_match_ledger(base, "BTC_USDT_Perp", tmp_path / "data", restarted=True)

    supervisor.send_signal(signal.SIGINT)
    assert supervisor.wait(timeout=60) == 0
    states = {b["name"]: b["state"] for b in json.loads(status_file.read_text())["bots"]}
    assert states == {"BTC_USDT_Perp": "stopped", "ETH_USDT_Perp": "stopped"}
    assert http(base, "/healthz")[0] == 0 and http(base + 1, "/healthz")[0] == 0  # both processes gone


def test_invalid_config_exits_2_naming_the_field_before_any_order(tmp_path: Path) -> None:
    config, _ = write_fleet(tmp_path, ["BTC_USDT_Perp"], strategy={"gamma": -1})
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "bot", "run", "--config", str(config), "--bot", "BTC_USDT_Perp"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "bots[0].strategy.gamma" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "ledger.db").exists()


def test_live_mode_needs_the_explicit_flag(tmp_path: Path) -> None:
    config, _ = write_fleet(tmp_path, ["BTC_USDT_Perp"], exchange={"mode": "live"})
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "fleet", "up", "--config", str(config), "--no-table"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--i-understand-live-trading" in result.stderr


def test_workers_stop_when_the_supervisor_is_killed(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    config, base = write_fleet(tmp_path, ["BTC_USDT_Perp"])
    supervisor = mmfleet("fleet", "up", "--config", str(config), "--no-table")
    processes.append(supervisor)
    wait_for(partial(ready, base), what="worker ready")
    supervisor.kill()
    supervisor.wait()
    wait_for(lambda: http(base, "/healthz")[0] == 0, timeout_s=30, what="orphaned worker to stop")


def test_a_crash_looping_worker_is_marked_failed_and_fleet_status_and_down_work(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    config, base = write_fleet(tmp_path, ["BTC_USDT_Perp"])
    supervisor = mmfleet("fleet", "up", "--config", str(config), "--no-table", "--max-crashes", "2")
    processes.append(supervisor)
    status_file = tmp_path / "data" / "fleet" / "status.json"

    def bot() -> dict[str, Any]:
        row: dict[str, Any] = json.loads(status_file.read_text())["bots"][0]
        return row

    for crash in range(2):
        wait_for(partial(ready, base), what=f"worker up before crash {crash + 1}")
        os.kill(bot()["pid"], signal.SIGKILL)
        if crash == 0:
            wait_for(lambda: bot()["restarts"] == 1, what="first restart")
    wait_for(lambda: bot()["state"] == "failed", what="failed state")
    assert "2 crashes" in bot()["last_error"]
    assert bot()["last_exit_code"] == -signal.SIGKILL

    status = subprocess.run(
        [sys.executable, "-m", "bots.cli", "fleet", "status", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "failed" in status.stdout
    down = subprocess.run(
        [sys.executable, "-m", "bots.cli", "fleet", "down", "--config", str(config)],
        capture_output=True, text=True, timeout=90, check=True,
    )  # fmt: skip
    assert "fleet stopped" in down.stdout
    assert supervisor.wait(timeout=10) == 0
