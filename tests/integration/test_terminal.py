"""What a trader sees in a terminal: tables never cut when piped, `ctl start` bringing back a bot that
was shut down, `fleet up` ending with its last bot, `stack up` ports."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.cli.common import table_console
from bots.ops.dashboard import fleet_table
from bots.ops.stack import CONVENTIONAL_PORTS, PortTakenError, StackPorts, alertmanager_config, resolve_ports
from bots.ops.supervisor import ChildStatus
from tests.integration.test_fleet import mmfleet, processes, ready, wait_for, write_fleet

__all__ = ["processes"]  # the fixture, shared with test_fleet

BTC, ETH = "BTC_USDT_Perp", "ETH_USDT_Perp"
LONG_ERROR = "ConnectionResetError: the exchange closed the websocket while a cancel was in flight"


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args], capture_output=True, text=True, timeout=timeout,
        check=False, env=env,
    )  # fmt: skip


def _fleet_rows() -> list[ChildStatus]:
    return [
        ChildStatus(BTC, BTC, "sim", 9100, "running", 4242),
        ChildStatus(ETH, ETH, "paper", 9101, "failed", None, 5, 1, LONG_ERROR),
    ]


@pytest.fixture
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.mark.usefixtures("no_columns")
def test_a_piped_table_is_as_wide_as_its_columns_need() -> None:
    table = fleet_table(_fleet_rows(), {})
    out = io.StringIO()
    console = table_console(table, file=out)  # a StringIO is not a terminal
    console.print(table)
    text = out.getvalue()
    assert console.width > 80  # rich alone would cut this at 80 columns
    assert "…" not in text and LONG_ERROR[-50:] in text
    for header in ("bot", "process", "state", "mid", "position", "equity $", "PnL $", "drawdown", "fills"):
        assert header in text
    assert max(len(line) for line in text.splitlines()) == console.width  # no wider than it needs


def test_columns_sets_the_width_when_there_is_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "132")
    table = fleet_table(_fleet_rows(), {})
    assert table_console(table, file=io.StringIO()).width == 132


def test_ctl_status_piped_shows_every_column_whole(tmp_path: Path) -> None:
    config, _ = write_fleet(tmp_path, [BTC, ETH, "SOL_USDT_Perp"])
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = cli("ctl", "status", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if "bot" in line and "last ack" in line)
    for column in ("mode", "position", "equity $", "realized $", "grid $", "state", "config"):
        assert column in header
    assert any(line.count("SOL_USDT_Perp") == 1 and "sim" in line for line in result.stdout.splitlines())


def _status(config: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((config.parent / "data" / "fleet" / "status.json").read_text())
    return {row["name"]: row for row in data["bots"]}


def test_ctl_start_relaunches_a_shut_down_bot_and_fleet_up_ends_with_its_last_bot(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    config, base = write_fleet(tmp_path, [BTC, ETH])
    supervisor = mmfleet("fleet", "up", "--config", str(config))  # piped: the table comes at the end
    processes.append(supervisor)
    for port in (base, base + 1):
        wait_for(partial(ready, port), timeout_s=120, what=f"worker on {port}")
    first_pid = _status(config)[BTC]["pid"]

    down = cli("ctl", "shutdown", "--config", str(config), "--bot", BTC, "--wait", "30")
    assert f"{BTC}: done: shutting down" in down.stdout, down.stdout + down.stderr
    wait_for(lambda: _status(config)[BTC]["state"] == "stopped", timeout_s=60, what="BTC shut down")
    assert supervisor.poll() is None  # ETH still trades: the supervisor stays

    start = cli("ctl", "start", "--config", str(config), "--bot", BTC, "--wait", "90")
    assert f"{BTC}: done: trading enabled" in start.stdout, start.stdout + start.stderr
    wait_for(partial(ready, base), timeout_s=60, what="relaunched BTC ready")
    assert _status(config)[BTC]["state"] == "running" and _status(config)[BTC]["pid"] != first_pid
    assert _status(config)[BTC]["restarts"] == 0  # a relaunch on command is not a crash

    # A broadcast start: the running bot answers itself, the shut-down one is relaunched for it.
    cli("ctl", "shutdown", "--config", str(config), "--bot", ETH, "--wait", "30")
    wait_for(lambda: _status(config)[ETH]["state"] == "stopped", timeout_s=60, what="ETH shut down")
    everyone = cli("ctl", "start", "--config", str(config), "--all", "--wait", "30")
    assert f"{BTC}: done: trading enabled" in everyone.stdout, everyone.stdout
    assert f"{ETH}: done: relaunched; start sent as command" in everyone.stdout, everyone.stdout
    wait_for(partial(ready, base + 1), timeout_s=90, what="relaunched ETH ready")

    cli("ctl", "shutdown", "--config", str(config), "--all", "--wait", "30")
    assert supervisor.wait(timeout=90) == 0  # the last bot shut down: `fleet up` ends
    assert {row["state"] for row in _status(config).values()} == {"stopped"}
    assert supervisor.stdout is not None
    printed = supervisor.stdout.read()
    rows = [line for line in printed.splitlines() if BTC in line or ETH in line]
    assert "…" not in printed and [row.split()[3] for row in rows[-2:]] == ["stopped"] * 2, printed
    assert str(config) in printed  # the intro's lines are not wrapped either


# --- stack up ports -------------------------------------------------------------------------------------


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other process holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_given_explicitly_stops_the_stack_naming_it(listening: int) -> None:
    with pytest.raises(PortTakenError, match=f"port {listening} \\(--prometheus-port\\) is taken"):
        resolve_ports(StackPorts(prometheus=listening))


def test_a_port_not_given_is_the_conventional_one_or_a_free_one(listening: int) -> None:
    free = [_unused_port() for _ in range(3)]
    conventional = replace(CONVENTIONAL_PORTS, prefect=listening, prometheus=free[0], alertmanager=free[1])
    chosen = resolve_ports(StackPorts(alert_receiver=free[2]), conventional)
    assert (chosen.prometheus, chosen.alertmanager, chosen.alert_receiver) == tuple(free)
    assert chosen.prefect not in (listening, *free) and not _taken(chosen.prefect)


def test_stack_up_fails_before_starting_anything_when_a_given_port_is_taken(
    tmp_path: Path, listening: int
) -> None:
    config, _ = write_fleet(tmp_path, [BTC])
    result = cli("stack", "up", "--config", str(config), "--alert-receiver-port", str(listening), timeout=60)
    assert result.returncode == 2
    assert f"port {listening} (--alert-receiver-port) is taken" in result.stderr
    assert not (tmp_path / "data" / "stack").exists()  # nothing was started


def test_alertmanager_reaches_the_receiver_on_its_chosen_port(tmp_path: Path) -> None:
    chosen = resolve_ports(StackPorts(alert_receiver=_unused_port()))
    config = alertmanager_config(chosen)
    urls = [hook["url"] for r in config["receivers"] for hook in r.get("webhook_configs", [])]
    assert urls and all(url == f"http://127.0.0.1:{chosen.alert_receiver}/alerts" for url in urls)
    assert chosen.alert_receiver != CONVENTIONAL_PORTS.alert_receiver
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (`make infra-deps`)")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    subprocess.run([amtool, "check-config", str(path)], check=True, capture_output=True, timeout=60)


def _taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
