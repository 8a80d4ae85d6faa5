"""A bot's store thread: its one database connection, off the trading loop.

The worker's event loop runs no SQLAlchemy. It hands this thread what to write and goes on deciding:
- fills (`commit_fills`): committed with the exchange cursor that follows them, then confirmed to the
  loop, which applies them only then (a fill counts once durable; a crash before the commit re-reads
  them from the exchange at the stored cursor);
- records (`record`): order states, bot state, acks, and the market records (equity, position
  snapshot, features), batched into one transaction per wake-up (one commit, one fsync). Past
  `queue_limit` waiting writes, market records are dropped (counted): they are history that the next
  second's record replaces; nothing else ever is;
- calls (`call`): a read or write whose answer the loop awaits (start-up state, a published config).

The same thread keeps the worker lease alive, where a busy or blocked event loop cannot starve it, and
watches the control plane without polling queries: PostgreSQL `LISTEN` on this same connection (the
writers `NOTIFY`; a slow fallback poll catches writers that do not), SQLite `PRAGMA data_version` (a
counter read, no query). Only when that says something changed is `control_mark()` read, and only when
that moved are the pending commands and config version read and handed to the loop.

A stalled database holds up this thread only: the loop keeps deciding, with the unconfirmed fills
waiting here (the worker halts quoting past its own bound). A failing connection is reopened with
backoff, the batch under way retried whole: a fill is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from bots.exchange.base import Fill
from bots.retry import Backoff
from bots.store.control import CONTROL_CHANNEL, Command, ConfigVersion
from bots.store.ledger import Ledger

__all__ = ["DEFAULT_QUEUE_LIMIT", "ControlWork", "Lease", "StoreWriter"]

log = logging.getLogger("mmfleet.store")
T = TypeVar("T")

DEFAULT_QUEUE_LIMIT = 10_000
_MAX_BATCH = 2_000  # writes per transaction
_TICK_S = 0.25  # records wait this long to share a commit; the SQLite change check runs this often
_FALLBACK_POLL_S = 5.0  # PostgreSQL: control_mark() this often even without a notification
_RETRYABLE = (OperationalError, InterfaceError)  # the database, not the write: retry the batch
_RECONNECT = Backoff(base_s=0.2, max_s=5.0)


@dataclass(frozen=True, slots=True)
class Lease:
    """The worker lease this thread heartbeats (`bots.store.locks`)."""

    account: str
    symbol: str
    heartbeat_s: float = 5.0


@dataclass(frozen=True, slots=True)
class ControlWork:
    """What a bot has to obey, read off the loop: pending commands (oldest first) and a config version."""

    commands: tuple[Command, ...]
    config: ConfigVersion | None


@dataclass(slots=True)
class _Job:
    run: Callable[[Ledger], Any]
    future: asyncio.Future[Any] | None
    droppable: bool


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the waiter gave up (cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class StoreWriter:
    """One thread, one connection (pinned: `Ledger.pinned`), for one bot. Start it on the bot's event
    loop; every method but `close` is called from that loop."""

    def __init__(
        self,
        ledger: Ledger,
        bot: str,
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        lease: Lease | None = None,
        on_lease_lost: Callable[[], None] | None = None,
        tick_s: float = _TICK_S,
        fallback_poll_s: float = _FALLBACK_POLL_S,
    ) -> None:
        self.ledger = ledger
        self.bot = bot
        self.queue_limit = queue_limit
        self._lease = lease
        self._on_lease_lost = on_lease_lost
        self._tick_s = tick_s
        self._fallback_poll_s = fallback_poll_s
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._batch: list[_Job] = []  # taken, not committed yet (kept across a reconnect)
        self._urgent = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._on_control: Callable[[ControlWork], None] | None = None
        self._recheck = False  # a new watcher: hand it everything pending
        self._reconnected = False  # a new connection: check at once (a NOTIFY may have been missed)
        self._failed: BaseException | None = None
        self._rng = random.Random()
        self._handed_commands: set[int] = set()
        self._handed_config: int | None = None
        self._mark: tuple[int, int] | None = None
        self._data_version: int | None = None

    # ----- the loop's side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; call on the event loop that will receive the answers."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name=f"store-{self.bot}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def depth(self) -> int:
        """Writes waiting, the batch under way included (the queue-depth metric)."""
        return len(self._jobs) + len(self._batch)

    def commit_fills(self, fills: Sequence[Fill], cursor: str | None) -> asyncio.Future[list[Fill]]:
        """Commit `fills` and the cursor after them in one transaction; the future answers the fills
        that were new (apply those), or the error that refused them."""
        return self.call(partial(_record_new_fills, bot=self.bot, fills=tuple(fills), cursor=cursor))

    def call(self, run: Callable[[Ledger], T]) -> asyncio.Future[T]:
        """Run `run(ledger)` on the store thread, in order with every write handed before it."""
        if self._loop is None:
            raise RuntimeError("StoreWriter.start() first")
        future: asyncio.Future[T] = self._loop.create_future()
        self._submit(_Job(run, future, droppable=False), urgent=True)
        return future

    def record(
        self, run: Callable[[Ledger], object], *, droppable: bool = False, urgent: bool = False
    ) -> bool:
        """Write without waiting for it: committed with the next batch (within `tick_s`; at once when
        `urgent`, e.g. an ack someone waits for). A `droppable` record is dropped while `queue_limit`
        writes wait: False then."""
        if droppable and self.depth >= self.queue_limit:
            return False
        self._submit(_Job(run, None, droppable), urgent=urgent or len(self._jobs) >= self.queue_limit // 2)
        return True

    def watch(self, on_control: Callable[[ControlWork], None]) -> None:
        """Hand pending commands and config versions to `on_control` (on the loop) from now on; a new
        watcher (a restarted worker) is handed everything still pending, at once."""
        with self._cond:
            self._on_control = on_control
            self._recheck = self._urgent = True
            self._cond.notify()

    async def close(self, timeout_s: float = 10.0) -> bool:
        """Commit everything handed over, then stop the thread; False when the database did not let
        it finish within `timeout_s` (what is left was never confirmed to the loop)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        thread = self._thread
        if thread is None:
            return True
        await asyncio.to_thread(thread.join, timeout_s)
        if thread.is_alive():
            log.error("store writes left uncommitted at close", extra={"fields": {"bot": self.bot,
                      "writes": self.depth}})  # fmt: skip
            return False
        return True

    def _submit(self, job: _Job, *, urgent: bool) -> None:
        with self._cond:
            if self._failed is not None:
                raise RuntimeError("the store thread failed") from self._failed
            if self._closing:
                raise RuntimeError("the store writer is closed")
            self._jobs.append(job)
            if urgent and not self._urgent:
                self._urgent = True
                self._cond.notify()

    # ----- the thread ------------------------------------------------------------------------------

    def _main(self) -> None:
        attempt = 0
        while True:
            try:
                with self.ledger.pinned() as connection:
                    self._listen(connection)
                    attempt = 0
                    self._serve(connection)
                    return
            except _RETRYABLE as exc:
                if self._closing and not self.depth:
                    return
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
                log.warning("store unavailable, retrying", extra={"fields": {"bot": self.bot,
                            "error": reason[:200], "writes": self.depth}})  # fmt: skip
                time.sleep(_RECONNECT.delay_s(attempt, self._rng))
                attempt += 1
            except BaseException as exc:  # a bug: every waiter hears of it, and nothing is taken any more
                log.exception("store thread failed", extra={"fields": {"bot": self.bot}})
                with self._cond:
                    self._failed = exc
                    jobs, self._batch = [*self._batch, *self._jobs], []
                    self._jobs.clear()
                loop = self._loop
                for job in jobs:
                    if job.future is not None and loop is not None:
                        loop.call_soon_threadsafe(_settle, job.future, None, exc)
                return

    def _serve(self, connection: Connection) -> None:
        now = time.monotonic()
        next_tick = now
        next_heartbeat = now + (self._lease.heartbeat_s if self._lease else float("inf"))
        next_poll = now + self._fallback_poll_s
        while True:
            with self._cond:
                while not (self._urgent or self._closing or self._batch):
                    remaining = min(next_tick, next_heartbeat) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._urgent = False
                if not self._batch:
                    while self._jobs and len(self._batch) < _MAX_BATCH:
                        self._batch.append(self._jobs.popleft())
                closing, recheck, reconnected = self._closing, self._recheck, self._reconnected
                self._recheck = self._reconnected = False
            if self._batch:
                self._commit(self._batch)
                self._batch = []
            now = time.monotonic()
            if now >= next_heartbeat and self._lease is not None:
                next_heartbeat = now + self._lease.heartbeat_s
                self._heartbeat(self._lease)
            if recheck:
                self._handed_commands.clear()
                self._handed_config = None
            if recheck or reconnected or now >= next_tick:
                next_tick = now + self._tick_s
                polled = now >= next_poll
                if polled:
                    next_poll = now + self._fallback_poll_s
                self._check_control(connection, force=recheck or reconnected, poll=polled)
            if closing and not self._jobs:
                return

    def _commit(self, batch: list[_Job]) -> None:
        """One transaction; each job in its own savepoint, so a write refused for its content (a bad
        value, an unknown id) fails alone. A database error fails the whole batch: retried by `_main`."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        with self.ledger.batch():
            for job in batch:
                try:
                    outcomes.append((job, job.run(self.ledger), None))
                except _RETRYABLE:
                    raise
                except Exception as exc:
                    if job.future is None:
                        log.error("store write refused", extra={"fields": {"bot": self.bot,
                                  "error": f"{type(exc).__name__}: {exc}"[:300]}})  # fmt: skip
                    outcomes.append((job, None, exc))
        loop = self._loop
        for job, result, error in outcomes:
            if job.future is not None and loop is not None:
                loop.call_soon_threadsafe(_settle, job.future, result, error)

    def _heartbeat(self, lease: Lease) -> None:
        if self.ledger.heartbeat_lock(lease.account, lease.symbol):
            return
        log.error("lost the worker lock: stopping", extra={"fields": {"symbol": lease.symbol}})
        self._lease = None  # not ours any more: no more heartbeats
        if self._on_lease_lost is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_lease_lost)

    # ----- the control plane ---------------------------------------------------------------------------

    def _listen(self, connection: Connection) -> None:
        """PostgreSQL: LISTEN on this connection (again after a reconnect, with a full check)."""
        self._data_version = None
        self._reconnected = True
        if self.ledger.backend == "postgresql":
            connection.exec_driver_sql(f"LISTEN {CONTROL_CHANNEL}")
            connection.commit()

    def _changed(self, connection: Connection) -> bool:
        """Whether the database may hold something new for the control plane, without a query."""
        dbapi: Any = connection.connection.dbapi_connection
        if self.ledger.backend == "sqlite":
            version: int = dbapi.execute("PRAGMA data_version").fetchone()[0]  # other connections' commits
            changed = version != self._data_version
            self._data_version = version
            return changed
        return any(True for _ in dbapi.notifies(timeout=0))

    def _check_control(self, connection: Connection, *, force: bool, poll: bool) -> None:
        if self._on_control is None:
            return
        changed = self._changed(connection)
        if not (force or changed or poll):
            return
        mark = self.ledger.control_mark()
        if mark == self._mark and not force:
            return
        self._mark = mark
        commands = [c for c in self.ledger.pending_commands(self.bot) if c.id not in self._handed_commands]
        config = self.ledger.pending_config(self.bot)
        if config is not None and config.version == self._handed_config:
            config = None
        if not commands and config is None:
            return
        self._handed_commands.update(c.id for c in commands)
        if config is not None:
            self._handed_config = config.version
        work = ControlWork(tuple(commands), config)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_control, work)


def _record_new_fills(ledger: Ledger, *, bot: str, fills: tuple[Fill, ...], cursor: str | None) -> list[Fill]:
    return ledger.record_new_fills(bot, fills, cursor=cursor)
