"""Alerts that act, end to end: a real sim bot, a real Prometheus, a real Alertmanager and the receiver.

The bot is made to lose money fast (a volatile sim, a small balance) while its own drawdown limit is
far away (risk.max_drawdown_pct 0.5), so nothing inside the bot halts it. Prometheus evaluates the real
drawdown-critical rule from infra/prometheus/rules/alerts.yml with a test threshold and `for: 0s`,
Alertmanager routes it to `mmfleet alerts receive`, and the receiver queues a stop authored by the
alert. The proof: that command was acked by the worker, the bot's persistent `trading_enabled` state
is False (only a stop command writes it), its risk state never tripped, and its metrics show it idle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.store import Command, Ledger
from bots.worker import ENABLED_KEY, RISK_KEY
from tests.integration.test_fleet import (
    free_port,
    http,
    mmfleet,
    processes,
    scrape,
    total,
    wait_for,
    write_fleet,
)

__all__ = ["processes"]  # the fixture, imported for this module's tests

REPO = Path(__file__).resolve().parents[2]
REAL_RULES = REPO / "infra" / "prometheus" / "rules" / "alerts.yml"
BOT = "BTC_USDT_Perp"
# The test's drawdown threshold: 0.05% of peak equity, crossed within seconds by the bot below.
TEST_THRESHOLD = 0.0005
# Loses and wins fast: 0.3% volatility per sqrt(simulated second) at 10x speed on a 1000 USD balance.
# Its own drawdown limit (0.5, from BUSY_BOT) and max loss (1000 USD) stay far away.
VOLATILE = {"sim": {"sigma": 0.003}, "paper": {"starting_balance_usd": 1000}}
FALLBACK_RULE: dict[str, Any] = {
    "alert": "MMFleetDrawdownCritical",
    "expr": "mmfleet_drawdown_ratio > 0.04",
    "labels": {"severity": "critical", "action": "halt"},
    "annotations": {"summary": "{{ $labels.bot }}: drawdown {{ $value | humanizePercentage }}, halting"},
}
_THRESHOLD = re.compile(r"(>=?)\s*([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)")


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{names[0]} is not installed (`make infra-deps` installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def drawdown_halt_rule(threshold: float) -> dict[str, Any]:
    """The real drawdown-critical rule (the drawdown alert labelled `action: halt`) with the test's
    threshold and `for: 0s`; a stand-in with the same shape when the rules file does not exist."""
    rule = dict(FALLBACK_RULE)
    if REAL_RULES.exists():
        groups = yaml.safe_load(REAL_RULES.read_text())["groups"]
        found = [
            r
            for group in groups
            for r in group["rules"]
            if "drawdown" in r.get("alert", "").lower() and r.get("labels", {}).get("action") == "halt"
        ]
        assert len(found) == 1, (
            f"{REAL_RULES}: expected one drawdown alert labelled action: halt, got {found}"
        )
        rule = dict(found[0])
    thresholds = _THRESHOLD.findall(rule["expr"])
    assert len(thresholds) == 1, f"cannot find the one threshold of {rule['alert']}: {rule['expr']!r}"
    rule["expr"] = _THRESHOLD.sub(lambda m: f"{m[1]} {threshold}", rule["expr"])
    rule["for"] = "0s"
    return rule


def start_alertmanager(tmp_path: Path, receiver_port: int, started: list[subprocess.Popen[str]]) -> int:
    port = free_port()
    config = {
        "route": {
            "receiver": "mmfleet",
            "group_by": ["alertname", "bot"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "mmfleet",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{receiver_port}/alerts", "send_resolved": True}
                ],
            }
        ],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    command = [
        _binary("alertmanager", "prometheus-alertmanager"),
        f"--config.file={path}",
        f"--storage.path={tmp_path / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one instance, no ports beyond ours
        "--log.level=warn",
    ]
    started.append(subprocess.Popen(command, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    wait_for(lambda: http(port, "/-/ready")[0] == 200, what="alertmanager ready")
    return port


def start_prometheus(
    tmp_path: Path, bot_port: int, alertmanager_port: int, started: list[subprocess.Popen[str]]
) -> int:
    port = free_port()
    rules = tmp_path / "rules.yml"
    rules.write_text(
        yaml.safe_dump({"groups": [{"name": "e2e", "rules": [drawdown_halt_rule(TEST_THRESHOLD)]}]})
    )
    config = {
        "global": {"scrape_interval": "500ms", "scrape_timeout": "400ms", "evaluation_interval": "500ms"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "mmfleet-bots",
                "static_configs": [{"targets": [f"127.0.0.1:{bot_port}"], "labels": {"fleet": "e2e"}}],
            }
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    command = [
        _binary("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={tmp_path / 'prometheus'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    started.append(subprocess.Popen(command, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    wait_for(lambda: http(port, "/-/ready")[0] == 200, what="prometheus ready")
    return port


def alert_stops(ledger: Ledger) -> list[Command]:
    return [c for c in ledger.recent_commands(500) if c.author.startswith("alertmanager:")]


def test_a_drawdown_alert_halts_the_bot_with_no_person_involved(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    began = time.monotonic()
    rule = drawdown_halt_rule(TEST_THRESHOLD)
    config, bot_port = write_fleet(tmp_path, [BOT], **VOLATILE)
    receiver_port = free_port()
    receiver = mmfleet("alerts", "receive", "--config", str(config), "--port", str(receiver_port), "--quiet")
    processes.append(receiver)
    worker = mmfleet("bot", "run", "--config", str(config), "--bot", BOT, "--quiet")
    processes.append(worker)
    wait_for(lambda: http(receiver_port, "/readyz")[0] == 200, what="receiver ready")
    wait_for(lambda: http(bot_port, "/readyz")[0] == 200, what="worker ready")
    alertmanager_port = start_alertmanager(tmp_path, receiver_port, processes)
    start_prometheus(tmp_path, bot_port, alertmanager_port, processes)

    with Ledger(tmp_path / "data" / "ledger.db") as ledger:

        def halted_by_alert() -> bool:
            return any(c.status == "done" for c in alert_stops(ledger))

        wait_for(halted_by_alert, timeout_s=60, what="a stop command from the alert, acked by the worker")
        stop = next(c for c in reversed(alert_stops(ledger)) if c.status == "done")
        records = ledger.alerts(bot=BOT)
        state = ledger.get_state(BOT, ENABLED_KEY)
        risk = ledger.get_state(BOT, RISK_KEY, {}) or {}
        acks = ledger.command_acks(stop.id)
        every_command = ledger.recent_commands(500)
        stops = alert_stops(ledger)

    # The command: a stop for this bot, authored by the alert, done by the worker.
    assert stop.command == "stop" and stop.bot == BOT
    assert re.fullmatch(rf"alertmanager:{rule['alert']}:[0-9a-f]+", stop.author), stop.author
    assert stop.outcome is not None and stop.outcome.startswith("stopped")
    assert [(a.bot, a.status) for a in acks] == [(BOT, "done")]
    assert {c.author for c in every_command} == {c.author for c in stops}, "only alerts issued commands"
    # The alert that issued it is recorded with its labels, and linked to the command.
    firing = [r for r in records if r.status == "firing"]
    issuer = next(r for r in firing if r.command_id == stop.id)
    assert issuer.alertname == rule["alert"] and stop.author.endswith(f":{issuer.fingerprint}")
    assert issuer.labels["action"] == "halt" and issuer.labels["bot"] == BOT
    assert issuer.labels["severity"] == rule["labels"]["severity"]
    assert BOT in issuer.annotations["summary"]
    assert stop.payload["fingerprint"] == issuer.fingerprint
    # At most one stop per firing episode (a bot stopped with its position may fire again later).
    assert len(stops) == len({(r.fingerprint, r.starts_at_ns) for r in firing})
    assert sorted(c.id for c in stops) == sorted(r.command_id for r in firing if r.command_id is not None)
    # Halted by the stop command, not by its own risk rules: only a stop writes trading_enabled=False.
    assert state is False
    assert not any(risk.values()), f"the bot's own risk limits tripped: {risk}"
    wait_for(
        lambda: (
            total(scrape(bot_port), "trading_enabled") == 0 and total(scrape(bot_port), "orders_open") == 0
        ),
        timeout_s=10,
        what="the worker's metrics to show it halted",
    )
    assert worker.poll() is None, "the worker stays up, stopped, for a person to inspect"
    elapsed = time.monotonic() - began
    print(f"alert halted the bot in {elapsed:.1f}s (command {stop.id}, author {stop.author})")
    assert elapsed < 90
