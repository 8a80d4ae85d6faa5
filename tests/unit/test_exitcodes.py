"""Every exit code of the table leads the real supervisor to its documented action, with real child
processes that end with that code (or die from that signal)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from bots.errors import ConfigError
from bots.exitcodes import ExitCode, SupervisorAction, signal_exit_code, supervisor_action
from bots.ops.supervisor import Supervisor, _Child
from bots.store import StoreError
from settings import FleetSettings

EXPECTED = {
    ExitCode.SHUTDOWN: SupervisorAction.STOPPED,
    ExitCode.CRASH: SupervisorAction.RESTART,
    ExitCode.CONFIG: SupervisorAction.FAILED,
    ExitCode.STORE_UNAVAILABLE: SupervisorAction.RESTART,
    ExitCode.MARKET_DATA_ENDED: SupervisorAction.FAILED,
    ExitCode.ORDERS_LEFT: SupervisorAction.RESTART,  # its next start cancels what was left
    ExitCode.INTERRUPTED: SupervisorAction.RESTART,  # someone else stopped it: keep the fleet up
    ExitCode.TERMINATED: SupervisorAction.RESTART,
}


def test_the_table_covers_every_code_and_a_stopping_supervisor_restarts_nothing() -> None:
    assert set(EXPECTED) == set(ExitCode)
    for code, action in EXPECTED.items():
        assert supervisor_action(code, stopping=False) is action
        assert supervisor_action(code, stopping=True) is SupervisorAction.STOPPED
    assert supervisor_action(-signal.SIGKILL, stopping=False) is SupervisorAction.RESTART
    assert supervisor_action(77, stopping=False) is SupervisorAction.RESTART  # unknown: a crash
    assert signal_exit_code(signal.SIGTERM) is ExitCode.TERMINATED
    assert ConfigError.exit_code == ExitCode.CONFIG
    assert StoreError.exit_code == ExitCode.STORE_UNAVAILABLE


class _Exits(Supervisor):
    """The real supervisor, whose worker is a process that prints a line and ends with `code`."""

    def __init__(self, tmp_path: Path, code: int) -> None:
        fleet = FleetSettings(data_dir=tmp_path / "data", bots=[{"symbol": "BTC_USDT_Perp"}])
        super().__init__(tmp_path / "fleet.yaml", fleet, max_crashes=2, crash_window_s=60, backoff_max_s=0.05)
        self.code = code

    def _command(self, child: _Child) -> list[str]:
        if self.code < 0:  # die from the signal, as SIGKILL by the OOM killer would
            body = f"import os, sys; print('dying', file=sys.stderr); os.kill(os.getpid(), {-self.code})"
        else:
            body = f"import sys; print('cause of exit {self.code}', file=sys.stderr); sys.exit({self.code})"
        return [sys.executable, "-c", body]


async def _supervise(supervisor: Supervisor) -> None:
    run = asyncio.create_task(supervisor.run())
    child = next(iter(supervisor.children.values()))
    deadline = asyncio.get_running_loop().time() + 30
    while child.status.state not in ("stopped", "failed"):
        assert asyncio.get_running_loop().time() < deadline, child.status
        await asyncio.sleep(0.02)
    supervisor.request_stop()
    await run


@pytest.mark.parametrize("code", [*ExitCode, -signal.SIGKILL])
def test_each_exit_code_leads_the_supervisor_to_its_action(tmp_path: Path, code: int) -> None:
    supervisor = _Exits(tmp_path, int(code))
    asyncio.run(_supervise(supervisor))
    status = supervisor.statuses()[0]
    assert status.last_exit_code == code
    action = supervisor_action(code, stopping=False)
    if action is SupervisorAction.STOPPED:
        assert (status.state, status.restarts) == ("stopped", 0)
    elif action is SupervisorAction.FAILED:
        assert (status.state, status.restarts) == ("failed", 0)  # never restarted
        assert status.last_error == f"cause of exit {code}"
    else:  # restarted until the crash budget ran out
        assert (status.state, status.restarts) == ("failed", 1)
        assert status.last_error.startswith("2 crashes in 60s: ")
