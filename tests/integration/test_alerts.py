"""The alert receiver: the store's alert log on SQLite and PostgreSQL, the HTTP answers, the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import OperationalError

from bots.ops.alerts import (
    AlertReceiver,
    PayloadError,
    build_app,
    command_author,
    halt_target,
    parse_notification,
    parse_time_ns,
)
from bots.store import ALL_BOTS, AlertNotice, Ledger
from tests.integration.conftest import LedgerFactory
from tests.integration.test_fleet import free_port, write_fleet

STARTS = "2026-01-02T03:04:05.123456789Z"
STARTS_NS = 1_767_323_045_123_456_789


def alert(
    status: str = "firing",
    *,
    bot: str | None = "BTC_USDT_Perp",
    action: str | None = "halt",
    fingerprint: str = "a1b2c3d4e5f60718",
    starts_at: str = STARTS,
    alertname: str = "MMFleetDrawdownCritical",
) -> dict[str, Any]:
    labels = {"alertname": alertname, "severity": "critical"}
    if bot is not None:
        labels["bot"] = bot
    if action is not None:
        labels["action"] = action
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{bot}: drawdown 5%"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-02T03:10:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="MMFleetDrawdownCritical"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "mmfleet",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def notice(status: str = "firing", starts_at_ns: int = STARTS_NS, fingerprint: str = "f00d") -> AlertNotice:
    labels = {"alertname": "MMFleetDrawdownCritical", "bot": "b1", "action": "halt"}
    return AlertNotice(fingerprint=fingerprint, status=status, starts_at_ns=starts_at_ns, labels=labels)  # type: ignore[arg-type]


# --- the store ---------------------------------------------------------------------------------------


def test_record_alert_is_idempotent_and_queues_one_stop_per_firing_episode(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    first, new = ledger.record_alert(notice(), halt="b1", author="alertmanager:X:f00d")
    again, new_again = ledger.record_alert(notice(), halt="b1", author="alertmanager:X:f00d")
    assert new and not new_again
    assert first.id == again.id and first.command_id is not None and again.command_id == first.command_id
    stop = ledger.command(first.command_id)
    assert (stop.bot, stop.command, stop.author, stop.status) == (
        "b1",
        "stop",
        "alertmanager:X:f00d",
        "pending",
    )
    assert [c.id for c in ledger.pending_commands("b1")] == [stop.id]

    resolved, new = ledger.record_alert(notice("resolved"))
    assert new and resolved.command_id is None
    refired, new = ledger.record_alert(notice(starts_at_ns=STARTS_NS + 60 * 10**9), halt="b1", author="a")
    assert new and refired.command_id not in (None, stop.id)

    records = ledger.alerts()
    assert [(r.status, r.starts_at_ns) for r in records] == [
        ("firing", STARTS_NS + 60 * 10**9),
        ("resolved", STARTS_NS),
        ("firing", STARTS_NS),
    ]
    assert records[-1].labels["action"] == "halt" and ledger.alerts(bot="other") == []
    assert [r.status for r in ledger.alerts(status="resolved")] == ["resolved"]
    assert len(ledger.recent_commands()) == 2


def test_a_fleet_level_halt_is_a_broadcast_and_bad_calls_write_nothing(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    record, _ = ledger.record_alert(notice(fingerprint="beef"), halt=ALL_BOTS, author="alertmanager:F:beef")
    assert record.command_id is not None
    assert [c.id for c in ledger.pending_commands("any-bot")] == [record.command_id]
    with pytest.raises(ValueError, match="only a firing alert"):
        ledger.record_alert(notice("resolved", fingerprint="cafe"), halt="b1", author="a")
    with pytest.raises(ValueError, match="author"):
        ledger.record_alert(notice(fingerprint="cafe"), halt="b1")
    with pytest.raises(ValueError, match="bot name"):
        ledger.record_alert(notice(fingerprint="cafe"), halt="", author="a")
    assert [r.fingerprint for r in ledger.alerts()] == ["beef"]  # the failed transaction left no row


# --- parsing -------------------------------------------------------------------------------------------


def test_times_targets_and_authors() -> None:
    assert parse_time_ns(STARTS) == STARTS_NS
    assert parse_time_ns("2026-01-02T04:04:05+01:00") == STARTS_NS - 123_456_789
    assert parse_time_ns("0001-01-01T00:00:00Z") is None
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time_ns("yesterday")
    assert halt_target({"action": "halt", "bot": "b1"}) == "b1"
    assert halt_target({"action": "halt"}) == ALL_BOTS
    assert halt_target({"bot": "b1"}) is None and halt_target({"action": "page", "bot": "b1"}) is None
    author = command_author("X" * 300, "0123456789abcdef")
    assert (
        len(author) == 128 and author.startswith("alertmanager:XXX") and author.endswith(":0123456789abcdef")
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty body"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (
            json.dumps({**notification(alert()), "version": "3"}).encode(),
            "version: unsupported webhook payload",
        ),
        (json.dumps({"version": "4", "status": "firing"}).encode(), "alerts: Field required"),
        (json.dumps(notification({**alert(), "status": "pending"})).encode(), "alerts[0].status"),
        (json.dumps(notification({**alert(), "startsAt": "noon"})).encode(), "alerts[0].startsAt"),
        (json.dumps(notification({**alert(), "labels": {}})).encode(), "alerts[0].labels"),
        (json.dumps(notification({**alert(), "fingerprint": "a b"})).encode(), "alerts[0].fingerprint"),
        (
            json.dumps(notification(alert(bot="b" * 129))).encode(),
            "alerts[0].labels: the bot label is longer",
        ),
    ],
)
def test_bad_payloads_name_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(body)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_a_missing_fingerprint_is_derived_from_the_labels() -> None:
    body = json.dumps(notification({**alert(), "fingerprint": None})).encode()
    first, second = (parse_notification(body).alerts[0].stable_fingerprint() for _ in range(2))
    assert first == second and len(first) == 16


# --- HTTP ------------------------------------------------------------------------------------------------


def with_client(
    receiver: AlertReceiver, test: Callable[[TestClient[Any, Any]], Awaitable[None]], **kwargs: Any
) -> None:
    async def run() -> None:
        async with TestClient(TestServer(build_app(receiver, **kwargs))) as client:
            await test(client)

    asyncio.run(run())


def test_the_receiver_records_halts_once_and_answers_bad_payloads_with_400(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.db") as ledger:
        receiver = AlertReceiver(ledger, known_bots=["BTC_USDT_Perp"])

        async def exercise(client: TestClient[Any, Any]) -> None:
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/readyz")).status == 200
            payload = notification(
                alert(),  # halts BTC_USDT_Perp
                alert(
                    bot=None, fingerprint="ffff000011112222", alertname="MMFleetTargetsAbsent"
                ),  # the fleet
                alert(action=None, fingerprint="9999", alertname="MMFleetDrawdownWarning"),  # no action
            )
            response = await client.post("/alerts", json=payload)
            assert response.status == 200
            answer = await response.json()
            assert answer["received"] == 3 and answer["recorded"] == 3
            assert answer["halted"] == ["BTC_USDT_Perp", ALL_BOTS]
            redelivered = await (await client.post("/alerts", json=payload)).json()
            assert redelivered["recorded"] == 0 and redelivered["halted"] == []
            assert [a["command_id"] for a in redelivered["alerts"]] == [
                a["command_id"] for a in answer["alerts"]
            ]
            resolved = notification(alert("resolved"), status="resolved")
            assert (await (await client.post("/alerts", json=resolved)).json())["halted"] == []

            bad = await client.post("/alerts", data=b"{oops", headers={"Content-Type": "application/json"})
            assert bad.status == 400
            error = await bad.json()
            assert error["error"] == "invalid Alertmanager payload" and "not JSON" in error["problems"][0]
            wrong = await client.post("/alerts", json={**payload, "version": "2"})
            assert wrong.status == 400 and "Traceback" not in await wrong.text()
            assert (await client.get("/alerts")).status == 405

        with_client(receiver, exercise)
        stops = ledger.recent_commands()
        assert [(c.bot, c.command, c.author) for c in reversed(stops)] == [
            ("BTC_USDT_Perp", "stop", "alertmanager:MMFleetDrawdownCritical:a1b2c3d4e5f60718"),
            (ALL_BOTS, "stop", "alertmanager:MMFleetTargetsAbsent:ffff000011112222"),
        ]
        assert stops[-1].payload["summary"] == "BTC_USDT_Perp: drawdown 5%"
        assert len(ledger.alerts()) == 4


def test_the_token_is_required_when_set_and_a_store_failure_is_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger(tmp_path / "ledger.db") as ledger:
        receiver = AlertReceiver(ledger)

        async def exercise(client: TestClient[Any, Any]) -> None:
            payload = notification(alert())
            assert (await client.post("/alerts", json=payload)).status == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.post("/alerts", json=payload, headers=wrong)).status == 401
            right = {"Authorization": "Bearer s3cret"}
            assert (await client.post("/alerts", json=payload, headers=right)).status == 200

            def down(*_: Any, **__: Any) -> Any:
                raise OperationalError("INSERT", {}, Exception("database is locked"))

            monkeypatch.setattr(ledger, "record_alert", down)
            failed = await client.post("/alerts", json=payload, headers=right)
            assert failed.status == 503 and "retry" in (await failed.json())["error"]

            def bug(*_: Any, **__: Any) -> Any:
                raise ZeroDivisionError("oops")

            monkeypatch.setattr(ledger, "record_alert", bug)
            crashed = await client.post("/alerts", json=payload, headers=right)
            assert crashed.status == 500 and "Traceback" not in await crashed.text()

        with_client(receiver, exercise, token="s3cret")


# --- the CLI -----------------------------------------------------------------------------------------------


def test_cli_receive_refuses_a_busy_port_and_list_shows_the_alerts(tmp_path: Path) -> None:
    config, _ = write_fleet(tmp_path, ["BTC_USDT_Perp"])
    with Ledger(tmp_path / "data" / "ledger.db") as ledger:
        AlertReceiver(ledger).receive(parse_notification(json.dumps(notification(alert())).encode()))
    listed = subprocess.run(
        [sys.executable, "-m", "bots.cli", "alerts", "list", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "MMFleetDrawdownCritical" in listed.stdout and "BTC_USDT_Perp: pending" in listed.stdout

    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        command = ["alerts", "receive", "--config", str(config), "--port", str(port)]
        busy = subprocess.run(
            [sys.executable, "-m", "bots.cli", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr
