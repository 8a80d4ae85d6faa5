"""The fleet supervisor: one worker process per bot, restarted with backoff, stopped cleanly together.

What it does when a worker exits depends on the exit code: see the table in `bots.exitcodes`.

It writes Prometheus file-service-discovery targets (`targets.json`) and a status file that
`mmfleet fleet status` reads; both are replaced atomically so a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bots.exitcodes import SupervisorAction, supervisor_action
from bots.ops.relaunch import claim_starts
from settings import FleetSettings

__all__ = ["ChildStatus", "Supervisor", "fleet_dir", "read_status", "write_json_atomic"]

log = logging.getLogger("mmfleet.fleet")

_STOP_MARGIN_S = 15.0  # after a bot's stop deadline: the last fills, the ledger flush, the HTTP server
_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 20


def _die_with_parent() -> None:
    """Linux: SIGTERM the worker if the supervisor dies without stopping it (e.g. SIGKILL), so a
    worker never trades unsupervised; it then cancels its orders as on any SIGTERM."""
    if sys.platform == "linux":
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def fleet_dir(fleet: FleetSettings) -> Path:
    return fleet.data_dir / "fleet"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file, fsync, rename: readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_status(fleet: FleetSettings) -> dict[str, Any] | None:
    path = fleet_dir(fleet) / "status.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


@dataclass
class ChildStatus:
    """What the supervisor knows of one worker; `state` is starting, running, backoff, stopped or failed."""

    name: str
    symbol: str
    mode: str
    port: int
    state: str = "starting"
    pid: int | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    last_error: str = ""


@dataclass
class _Child:
    status: ChildStatus
    grace_s: float  # SIGTERM to SIGKILL: longer than the bot's own stop deadline
    process: asyncio.subprocess.Process | None = None
    crashes: deque[float] = field(default_factory=deque)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    relaunch: asyncio.Event = field(default_factory=asyncio.Event)  # set by a `ctl start` once shut down


class Supervisor:
    """Starts, watches and restarts the workers of one fleet file."""

    def __init__(
        self,
        config_path: Path,
        fleet: FleetSettings,
        *,
        max_crashes: int = 5,
        crash_window_s: float = 300.0,
        backoff_max_s: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.config_path = config_path
        self.fleet = fleet
        self.max_crashes = max_crashes
        self.crash_window_s = crash_window_s
        self.backoff_max_s = backoff_max_s
        self.extra_args = extra_args
        self.children = {
            bot.name: _Child(
                ChildStatus(bot.name, bot.symbol, bot.exchange.mode, fleet.metrics_base_port + i),
                bot.exchange.stop_deadline_s + _STOP_MARGIN_S,
            )
            for i, bot in enumerate(fleet.bots)
        }
        self._stopping = asyncio.Event()
        self.dir = fleet_dir(fleet)

    def statuses(self) -> list[ChildStatus]:
        return [child.status for child in self.children.values()]

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, on_change: Callable[[], None] | None = None) -> None:
        """Run every worker until `request_stop()`; then SIGTERM them and wait (SIGKILL after a grace)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "supervisor.pid").write_text(str(os.getpid()))
        self._write_targets()
        watchers = [asyncio.create_task(self._watch(child, on_change)) for child in self.children.values()]
        watchers.append(asyncio.create_task(self._poll_starts()))
        try:
            await self._stopping.wait()
        finally:
            await asyncio.gather(*(self._terminate(c) for c in self.children.values()))
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for child in self.children.values():
                if child.status.state != "failed":
                    child.status.state = "stopped"
            self._write_status()
            (self.dir / "supervisor.pid").unlink(missing_ok=True)

    def _command(self, child: _Child) -> list[str]:
        return [
            sys.executable, "-m", "bots.cli", "bot", "run",
            "--config", str(self.config_path), "--bot", child.status.name,
            "--metrics-port", str(child.status.port), "--quiet", *self.extra_args,
        ]  # fmt: skip

    async def _watch(self, child: _Child, on_change: Callable[[], None] | None) -> None:
        status = child.status
        while not self._stopping.is_set():
            child.tail.clear()
            child.process = await asyncio.create_subprocess_exec(
                *self._command(child), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            status.state, status.pid = "running", child.process.pid
            self._changed(on_change)
            assert child.process.stderr is not None
            async for raw in child.process.stderr:
                child.tail.append(raw.decode(errors="replace").rstrip())
            code = await child.process.wait()
            status.last_exit_code, status.pid = code, None
            action = supervisor_action(code, stopping=self._stopping.is_set())
            if action is SupervisorAction.STOPPED:
                status.state = action.value
                self._changed(on_change)
                if await self._relaunched(child):
                    continue
                return
            status.last_error = next((line for line in reversed(child.tail) if line.strip()), f"exit {code}")
            if action is SupervisorAction.FAILED:  # restarting cannot fix it: an operator must
                status.state = action.value
                self._changed(on_change)
                return
            now = time.monotonic()
            child.crashes.append(now)
            while child.crashes and now - child.crashes[0] > self.crash_window_s:
                child.crashes.popleft()
            if len(child.crashes) >= self.max_crashes:
                status.state = SupervisorAction.FAILED.value
                status.last_error = (
                    f"{len(child.crashes)} crashes in {self.crash_window_s:.0f}s: {status.last_error}"
                )
                self._changed(on_change)
                return
            status.state = SupervisorAction.RESTART.value
            status.restarts += 1
            self._changed(on_change)
            delay = min(self.backoff_max_s, 0.5 * 2 ** (len(child.crashes) - 1))
            log.warning(
                "worker crashed", extra={"fields": {"bot": status.name, "code": code, "delay_s": delay}}
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _relaunched(self, child: _Child) -> bool:
        """A worker that shut down on command waits for a `ctl start` (True) or the supervisor's end;
        when it was the last one running, the supervisor ends."""
        if self._stopping.is_set():
            return False
        if all(c.status.state in ("stopped", "failed") for c in self.children.values()):
            log.info("every bot has shut down: the supervisor stops")
            self.request_stop()
            return False
        child.relaunch.clear()
        stopping = asyncio.create_task(self._stopping.wait())
        relaunch = asyncio.create_task(child.relaunch.wait())
        await asyncio.wait((stopping, relaunch), return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stopping, relaunch):
            waiter.cancel()
        return not self._stopping.is_set()

    async def _poll_starts(self) -> None:
        """Once a second, while some bot is shut down: relaunch those a pending start waits for."""
        while not self._stopping.is_set():
            down = [c.status.name for c in self.children.values() if c.status.state == "stopped"]
            if down:
                try:
                    for name in await asyncio.to_thread(claim_starts, self.fleet.ledger_url(), down):
                        log.info("relaunching on a start command", extra={"fields": {"bot": name}})
                        self.children[name].relaunch.set()
                except Exception:  # the store unreachable for a moment: ask again next second
                    log.exception("reading start commands failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    async def _terminate(self, child: _Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=child.grace_s)
        except TimeoutError:
            log.error("worker ignored SIGTERM: killing", extra={"fields": {"bot": child.status.name}})
            process.kill()
            await process.wait()

    def _changed(self, on_change: Callable[[], None] | None) -> None:
        self._write_status()
        if on_change is not None:
            on_change()

    def _write_status(self) -> None:
        write_json_atomic(
            self.dir / "status.json",
            {
                "supervisor_pid": os.getpid(),
                "updated_at": time.time(),
                "bots": [asdict(s) for s in self.statuses()],
            },
        )

    def _write_targets(self) -> None:
        """Prometheus file_sd: one target per worker, labelled with the fleet file it came from."""
        targets = [
            {"targets": [f"127.0.0.1:{c.status.port}"], "labels": {"fleet": self.config_path.stem}}
            for c in self.children.values()
        ]
        write_json_atomic(self.dir / "targets.json", targets)
