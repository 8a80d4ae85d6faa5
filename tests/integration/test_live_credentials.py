"""Live credentials that our local GRVT-compatible exchange refuses at start: exit 2 naming the variable
or file each refused credential comes from, never its value, before any order."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from bots.engine.portfolio import Portfolio
from bots.errors import ConfigError
from bots.exchange.factory import make_exchange
from bots.exitcodes import ExitCode
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from settings.models import BotSettings

pytestmark = pytest.mark.integration

SYMBOL = "BTC_USDT_Perp"


@pytest.fixture(scope="module")
def server() -> Iterator[GrvtSimServerThread]:
    with GrvtSimServerThread(GrvtSimConfig(seed=5, step_interval_s=0.05)) as running:
        yield running


def _secrets(account: str) -> dict[str, str]:
    return {
        "GRVT_API_KEY": f"api-key-{random.getrandbits(64):x}",
        "GRVT_PRIVATE_KEY": Account.create().key.hex(),
        "GRVT_TRADING_ACCOUNT_ID": account,
    }


def _settings(url: str, **credentials: Any) -> BotSettings:
    exchange = {"mode": "live", "base_url": url, "request_timeout_s": 2.0, "credentials": credentials}
    return BotSettings.model_validate({"symbol": SYMBOL, "exchange": exchange})


def _start(settings: BotSettings) -> None:
    async def main() -> None:
        exchange = await make_exchange(settings, Portfolio(symbol=SYMBOL))
        await exchange.close()

    asyncio.run(main())


def _claim(server: GrvtSimServerThread, account: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another key's main account uses `account` first: it owns it from then on."""
    for name, value in _secrets(account).items():
        monkeypatch.setenv(name, value)
    _start(_settings(server.url))


def test_a_sub_account_of_another_key_is_refused_naming_both_variables(
    server: GrvtSimServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = str(random.randrange(10**8, 10**9))
    _claim(server, account, monkeypatch)
    secrets = _secrets(account)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        _start(_settings(server.url))
    message = str(caught.value)
    assert message.startswith(
        f"{SYMBOL}: GRVT testnet refused the trading_account_id from environment variable"
        " GRVT_TRADING_ACCOUNT_ID for the api_key from environment variable GRVT_API_KEY (HTTP 403: "
    ), message
    assert not [value for value in secrets.values() if value in message]


def test_a_malformed_account_id_from_a_file_is_refused_naming_the_file(
    server: GrvtSimServerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = _secrets("not-a-number")
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    account_file = tmp_path / "account_id"
    account_file.write_text("12ab34\n")
    with pytest.raises(ConfigError) as caught:
        _start(_settings(server.url, trading_account_id_file=str(account_file)))
    message = str(caught.value)
    assert f"refused the trading_account_id from file {account_file} for the api_key" in message
    assert "(HTTP 400: " in message
    assert "12ab34" not in message and not [value for value in secrets.values() if value in message]


def test_bot_run_exits_2_and_the_supervisor_would_not_restart_it(
    server: GrvtSimServerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    account = str(random.randrange(10**8, 10**9))
    _claim(server, account, monkeypatch)
    secrets = _secrets(account)
    fleet = tmp_path / "fleet.yaml"
    bot = {"symbol": SYMBOL, "exchange": {"mode": "live", "base_url": server.url}}
    fleet.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "bots": [bot]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMFLEET_", "GRVT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "bot", "run", "-c", str(fleet), "--bot", SYMBOL, "--quiet",
         "--i-understand-live-trading"],
        check=False, capture_output=True, text=True, timeout=120, env={**env, **secrets}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "GRVT_TRADING_ACCOUNT_ID" in result.stderr and "Traceback" not in result.stderr
    assert not [value for value in secrets.values() if value in result.stdout + result.stderr]
    log = (tmp_path / "data" / "logs" / f"{SYMBOL}.log").read_text()
    assert not [value for value in secrets.values() if value in log]


def test_an_exchange_failing_at_start_is_waited_out_not_a_crash(
    server: GrvtSimServerThread, tmp_path: Path
) -> None:
    """Found by bench/soak.py: a 5xx burst while the bot logged in crashed it (exit 1, a restart).
    Connecting is retried with backoff; the bot starts once the exchange answers."""
    secrets = _secrets(str(random.randrange(10**8, 10**9)))
    fleet = tmp_path / "fleet.yaml"
    bot = {"symbol": SYMBOL, "exchange": {"mode": "live", "base_url": server.url, "request_timeout_s": 2.0}}
    fleet.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "bots": [bot]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMFLEET_", "GRVT_"))}
    server.faults.http_errors(503, 4)
    process = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "bot", "run", "-c", str(fleet), "--bot", SYMBOL, "--quiet",
         "--i-understand-live-trading", "--metrics-port", "0"],
        env={**env, **secrets}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = tmp_path / "data" / "logs" / f"{SYMBOL}.log"
    try:
        deadline = time.monotonic() + 90
        while '"message": "started"' not in (log.read_text() if log.exists() else ""):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the bot never started"
            time.sleep(0.2)
    finally:
        server.faults.clear()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "exchange unavailable at start, retrying" in log.read_text()
