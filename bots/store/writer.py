"""A bot's store thread: its one database connection, off the trading loop.

The worker's event loop runs no SQLAlchemy. It hands this thread what to write and goes on deciding:
- fills (`commit_fills`): committed with the exchange cursor that follows them, then confirmed to the
  loop, which applies them only then (a fill counts once durable; a crash before the commit re-reads
  them from the exchange at the stored cursor);
- records (`record`, `append`): order states, bot state, and the market records (equity, position
  snapshot, features). They wait up to `record_interval_s` (default 1 s) to share one transaction,
  which, holding history only, does not wait for the disk (`Ledger.batch(synced=False)`); an urgent
  write (an ack someone waits for, a fill, a call) commits at once, synced, with everything handed
  before it. Rows of one kind (`Appender`) go in with one statement per batch. Past
  `queue_limit` waiting writes, market records are dropped (counted): they are history that the next
  second's record replaces; nothing else ever is;
- calls (`call`): a read or write whose answer the loop awaits (start-up state, a published config).

A batch runs as one plain transaction. Only when a write in it fails for its content (a bad value, an
unknown id) is it rolled back and run again write by write, each in a savepoint, so that the refused
write fails alone and everything else commits.

The same thread keeps the worker lease alive (its heartbeat rides in a batch's transaction), where a
busy or blocked event loop cannot starve it, and watches the control plane without polling queries,
asleep until something is due: PostgreSQL `LISTEN` on this same connection (the thread sleeps in
`select()` on its socket, so a `NOTIFY` wakes it at once); SQLite the ledger's control signal file,
which grows after each commit of a command or a config version (`PRAGMA data_version` would move with
every commit of every bot on the file), watched with inotify (`bots.store.signal_watch`), else looked
at every `tick_s`. A slow fallback poll (`fallback_poll_s`) catches writers that do not notify. Only
when something changed is `control_mark()` read (on SQLite one plain read, no write lock), and only
when that moved are the pending commands and config version read and handed to the loop. Each wake-up
of this mostly idle thread costs more than what it then does: a bot's thread wakes about once a second.

A stalled database holds up this thread only: the loop keeps deciding, with the unconfirmed fills
waiting here (the worker halts quoting past its own bound). A failing connection is reopened with
backoff, the batch under way retried whole: a fill is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from bots.exchange.base import Fill
from bots.retry import Backoff
from bots.store.control import CONTROL_CHANNEL, Command, ConfigVersion
from bots.store.ledger import Ledger
from bots.store.signal_watch import SignalWatch

__all__ = ["DEFAULT_QUEUE_LIMIT", "RECORD_INTERVAL_S", "Appender", "ControlWork", "Lease", "StoreWriter"]

log = logging.getLogger("mmfleet.store")
T = TypeVar("T")

DEFAULT_QUEUE_LIMIT = 10_000
RECORD_INTERVAL_S = 1.0  # records wait at most this long to share a commit: about one fsync a second
_MAX_BATCH = 2_000  # writes per transaction
_TICK_S = 0.25  # SQLite without inotify: the control signal file is looked at this often
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


class Appender(Protocol):
    """A kind of row (an order state, an equity point...): the rows of one batch are written together,
    one statement for all of them, in the order they were handed."""

    def write(self, ledger: Ledger, rows: list[Any]) -> None: ...

    def rolled_back(self) -> None:
        """What `write` wrote was rolled back: forget anything remembered of it (a peak written)."""


@dataclass(slots=True)
class _Job:
    run: Callable[[Ledger], Any] | None  # else rows for `appender`
    future: asyncio.Future[Any] | None
    droppable: bool
    appender: Appender | None = None
    rows: tuple[Any, ...] = ()


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
        record_interval_s: float = RECORD_INTERVAL_S,
    ) -> None:
        self.ledger = ledger
        self.bot = bot
        self.queue_limit = queue_limit
        self._lease = lease
        self._on_lease_lost = on_lease_lost
        self._tick_s = tick_s
        self._fallback_poll_s = fallback_poll_s
        self._record_interval_s = record_interval_s
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = -1, -1  # a pipe: a byte in it wakes the thread (see `_sleep`)
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
        self._signal_version: tuple[int, int, int] | None = None
        self._signal_watch: SignalWatch | None = None  # SQLite: the control signal file, where inotify is

    # ----- the loop's side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; call on the event loop that will receive the answers."""
        self._loop = asyncio.get_running_loop()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
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
        """Write without waiting for it: committed with the next batch (within `record_interval_s`; at
        once when `urgent`, e.g. an ack someone waits for). A `droppable` record is dropped while
        `queue_limit` writes wait: False then."""
        return self._hand(_Job(run, None, droppable), urgent=urgent)

    def append(self, appender: Appender, rows: Iterable[Any], *, droppable: bool = False) -> bool:
        """`record` rows of one kind: written with the others of their kind in the next batch (one
        statement); False when dropped (see `record`)."""
        return self._hand(_Job(None, None, droppable, appender, tuple(rows)), urgent=False)

    def watch(self, on_control: Callable[[ControlWork], None]) -> None:
        """Hand pending commands and config versions to `on_control` (on the loop) from now on; a new
        watcher (a restarted worker) is handed everything still pending, at once."""
        with self._lock:
            self._on_control = on_control
            self._recheck = True
            self._wake()

    async def close(self, timeout_s: float = 10.0) -> bool:
        """Commit everything handed over, then stop the thread; False when the database did not let
        it finish within `timeout_s` (what is left was never confirmed to the loop)."""
        with self._lock:
            self._closing = True
            self._wake()
        thread = self._thread
        if thread is None:
            return True
        await asyncio.to_thread(thread.join, timeout_s)
        if thread.is_alive():
            log.error("store writes left uncommitted at close", extra={"fields": {"bot": self.bot,
                      "writes": self.depth}})  # fmt: skip
            return False
        return True

    def _hand(self, job: _Job, *, urgent: bool) -> bool:
        if job.droppable and self.depth >= self.queue_limit:
            return False
        self._submit(job, urgent=urgent or len(self._jobs) >= self.queue_limit // 2)
        return True

    def _submit(self, job: _Job, *, urgent: bool) -> None:
        with self._lock:
            if self._failed is not None:
                raise RuntimeError("the store thread failed") from self._failed
            if self._closing:
                raise RuntimeError("the store writer is closed")
            self._jobs.append(job)
            if urgent:
                self._wake()

    def _wake(self) -> None:
        """Wake the thread (under `_lock`): at most one byte waits in the pipe."""
        if not self._urgent and self._wake_w >= 0:
            self._urgent = True
            with suppress(BlockingIOError):  # full: it wakes the thread already
                os.write(self._wake_w, b"\0")

    # ----- the thread ------------------------------------------------------------------------------

    def _main(self) -> None:
        attempt = 0
        signal = self.ledger.control_signal
        self._signal_watch = None if signal is None else SignalWatch.open(signal)
        if signal is not None and self._signal_watch is None:
            log.warning(
                "no inotify for the control signal file: looking at it every tick instead (more CPU;"
                " fs.inotify.max_user_instances may be reached)",
                extra={"fields": {"bot": self.bot, "tick_s": self._tick_s}},
            )
        try:
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
                    orig = exc.orig
                    reason = str(orig).strip().splitlines()[0] if orig is not None else type(exc).__name__
                    log.warning("store unavailable, retrying", extra={"fields": {"bot": self.bot,
                                "error": reason[:200], "writes": self.depth}})  # fmt: skip
                    time.sleep(_RECONNECT.delay_s(attempt, self._rng))
                    attempt += 1
        except BaseException as exc:  # a bug: every waiter hears of it, and nothing is taken any more
            log.exception("store thread failed", extra={"fields": {"bot": self.bot}})
            with self._lock:
                self._failed = exc
                jobs, self._batch = [*self._batch, *self._jobs], []
                self._jobs.clear()
            loop = self._loop
            for job in jobs:
                if job.future is not None and loop is not None:
                    loop.call_soon_threadsafe(_settle, job.future, None, exc)
        finally:
            with self._lock:
                wake_r, wake_w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, -1, -1
            os.close(wake_r)
            os.close(wake_w)
            if self._signal_watch is not None:
                self._signal_watch.close()

    def _serve(self, connection: Connection) -> None:
        # The thread sleeps until the flush, the heartbeat or the fallback poll is due, or the loop, a
        # NOTIFY (PostgreSQL) or the control signal file (SQLite, `SignalWatch`) wakes it. Without a
        # watch (no inotify) SQLite wakes every tick to look at the file instead, the flush and the
        # heartbeat riding on the nearest tick (each wake-up of a cold thread costs more than the look).
        listening = self._listening(connection)
        ticking = listening is None
        slack = self._tick_s / 2 if ticking else 0.0
        now = time.monotonic()
        next_tick = now
        next_flush = now + self._record_interval_s
        next_heartbeat = now + (self._lease.heartbeat_s if self._lease else float("inf"))
        next_poll = now + self._fallback_poll_s
        while True:
            with self._lock:
                busy = self._urgent or self._closing or bool(self._batch)
                waiting = bool(self._jobs)
            if not busy:
                if ticking:
                    due = next_tick
                else:
                    due = min(next_heartbeat, next_poll, next_flush if waiting else next_poll)
                self._sleep(due - time.monotonic(), listening)
            with self._lock:
                now = time.monotonic()
                heartbeat = self._lease if now + slack >= next_heartbeat else None
                flush = self._urgent or self._closing or heartbeat is not None or now + slack >= next_flush
                if flush and not self._batch:
                    while self._jobs and len(self._batch) < _MAX_BATCH:
                        self._batch.append(self._jobs.popleft())
                self._urgent = False
                closing, recheck, reconnected = self._closing, self._recheck, self._reconnected
                self._recheck = self._reconnected = False
                watcher = self._on_control  # one taken with `recheck`: a new one brings its own
            if self._batch or heartbeat is not None:
                self._commit(self._batch, heartbeat)
                self._batch = []
                next_flush = now + self._record_interval_s
                if heartbeat is not None:
                    next_heartbeat = now + heartbeat.heartbeat_s
            elif now + slack >= next_flush:
                next_flush = now + self._record_interval_s
            if recheck:
                self._handed_commands.clear()
                self._handed_config = None
            if not ticking or recheck or reconnected or now + slack >= next_tick:
                next_tick += self._tick_s  # on a grid: the flush stays on a tick
                if next_tick <= now:
                    next_tick = now + self._tick_s
                polled = now >= next_poll
                if polled:
                    next_poll = now + self._fallback_poll_s
                self._check_control(connection, watcher, force=recheck or reconnected, poll=polled)
            if closing and not self._jobs:
                return

    def _listening(self, connection: Connection) -> Any:
        """What tells this thread of a control write while it sleeps (None: nothing, it must look)."""
        if self.ledger.backend == "postgresql":
            return connection.connection.dbapi_connection
        return self._signal_watch

    def _sleep(self, timeout_s: float, listening: Any) -> None:
        """Until `timeout_s` passed or the loop woke us, or `listening` (anything with a `fileno()`: the
        PostgreSQL connection, the SQLite signal watch) turned readable."""
        if timeout_s <= 0:
            return
        fds = [self._wake_r] if listening is None else [self._wake_r, listening.fileno()]
        ready, _, _ = select.select(fds, [], [], timeout_s)
        if self._wake_r in ready:
            with suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def _commit(self, batch: list[_Job], lease: Lease | None) -> None:
        """One plain transaction, the lease's heartbeat included when due. When a write is refused for
        its content (a bad value, an unknown id), the batch is rolled back and run again write by
        write, each in a savepoint, so that it fails alone. A database error fails the whole batch:
        retried by `_main`. A batch of appended rows only (history) commits without waiting for the
        disk; the next synced commit (a fill, an ack, a call, the heartbeat) makes it durable."""
        synced = lease is not None or any(job.run is not None for job in batch)
        try:
            with self.ledger.batch(synced=synced):
                outcomes = self._run(batch)
                alive = self._heartbeat(lease)
        except _RETRYABLE:
            self._rolled_back(batch)
            raise
        except Exception:
            self._rolled_back(batch)
            try:
                with self.ledger.batch(synced=synced):
                    outcomes = [self._run_alone(job) for job in batch]
                    alive = self._heartbeat(lease)
            except BaseException:
                self._rolled_back(batch)
                raise
        loop = self._loop
        for job, result, error in outcomes:
            if job.future is not None and loop is not None:
                loop.call_soon_threadsafe(_settle, job.future, result, error)
        if not alive and lease is not None:
            log.error("lost the worker lock: stopping", extra={"fields": {"symbol": lease.symbol}})
            self._lease = None  # not ours any more: no more heartbeats
            if self._on_lease_lost is not None and loop is not None:
                loop.call_soon_threadsafe(self._on_lease_lost)

    def _run(self, batch: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        """Every job in order; an appender's rows are written together, before the next call (which may
        read them) and at the end. The first error raises: the caller replays the batch."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        rows: dict[Appender, list[Any]] = {}
        for job in batch:
            if job.run is None:
                rows.setdefault(job.appender, []).extend(job.rows)  # type: ignore[arg-type]
                continue
            self._write(rows)
            outcomes.append((job, job.run(self.ledger), None))
        self._write(rows)
        return outcomes

    def _write(self, rows: dict[Appender, list[Any]]) -> None:
        for appender, items in rows.items():
            appender.write(self.ledger, items)
        rows.clear()

    def _run_alone(self, job: _Job) -> tuple[_Job, Any, BaseException | None]:
        try:
            with self.ledger.savepoint():
                if job.run is None:
                    self._write({job.appender: list(job.rows)})  # type: ignore[dict-item]
                    return job, None, None
                return job, job.run(self.ledger), None
        except _RETRYABLE:
            raise
        except Exception as exc:
            if job.appender is not None:
                job.appender.rolled_back()
            if job.future is None:
                log.error("store write refused", extra={"fields": {"bot": self.bot,
                          "error": f"{type(exc).__name__}: {exc}"[:300]}})  # fmt: skip
            return job, None, exc

    @staticmethod
    def _rolled_back(batch: list[_Job]) -> None:
        for appender in {job.appender for job in batch if job.appender is not None}:
            appender.rolled_back()

    def _heartbeat(self, lease: Lease | None) -> bool:
        """Whether the lease is still ours (True when there is none to keep)."""
        return lease is None or self.ledger.heartbeat_lock(lease.account, lease.symbol)

    # ----- the control plane ---------------------------------------------------------------------------

    def _listen(self, connection: Connection) -> None:
        """PostgreSQL: LISTEN on this connection (again after a reconnect, with a full check)."""
        self._reconnected = True
        if self.ledger.backend == "postgresql":
            connection.exec_driver_sql(f"LISTEN {CONTROL_CHANNEL}")
            connection.commit()

    def _changed(self, connection: Connection) -> bool:
        """Whether the database may hold something new for the control plane, without a query."""
        if self.ledger.backend == "postgresql":
            dbapi: Any = connection.connection.dbapi_connection
            return sum(1 for _ in dbapi.notifies(timeout=0)) > 0  # all: those queued during queries too
        if self._signal_watch is not None:
            return self._signal_watch.changed()
        signal = self.ledger.control_signal
        if signal is None:  # an in-memory ledger: no other process writes to it
            return True
        try:
            seen = signal.stat()
        except FileNotFoundError:  # no control write yet
            return False
        version = (seen.st_ino, seen.st_size, seen.st_mtime_ns)
        changed = version != self._signal_version
        self._signal_version = version
        return changed

    def _check_control(
        self,
        connection: Connection,
        watcher: Callable[[ControlWork], None] | None,
        *,
        force: bool,
        poll: bool,
    ) -> None:
        changed = self._changed(connection)  # always: what is not drained would keep waking the thread
        if watcher is None or not (force or changed or poll):
            return  # before `watch()`: it asks for a full check
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
            self._loop.call_soon_threadsafe(watcher, work)


def _record_new_fills(ledger: Ledger, *, bot: str, fills: tuple[Fill, ...], cursor: str | None) -> list[Fill]:
    return ledger.record_new_fills(bot, fills, cursor=cursor)
