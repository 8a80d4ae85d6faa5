"""One worker per (account, symbol): a lease row with a heartbeat.

Two workers quoting the same symbol on the same account would fight over orders and double the
position, so a worker takes the lease before it trades and heartbeats while it runs. A second worker is
refused while the holder's heartbeat is fresh. A lease whose heartbeat is older than `stale_after_s`
(the holder hung or died) may be taken over; so may one held by a process of this host that no longer
exists, without waiting. Takeover is a compare-and-swap on (owner, heartbeat), so two contenders cannot
both win. A worker whose heartbeat fails has lost the lease and must stop trading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, select

from bots.store.db import LedgerBase
from bots.store.schema import worker_locks

__all__ = ["DEFAULT_STALE_AFTER_S", "LockHolder", "WorkerLocks"]

DEFAULT_STALE_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the lease of (account, symbol) and when it last said it was alive."""

    account: str
    symbol: str
    owner: str
    host: str
    pid: int
    acquired_at_ns: int
    heartbeat_ns: int


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


class WorkerLocks(LedgerBase):
    """Leases keyed by (account, symbol), held by this handle's `owner`."""

    def acquire_lock(
        self, account: str, symbol: str, *, stale_after_s: float = DEFAULT_STALE_AFTER_S
    ) -> bool:
        """Take the lease; True when this handle holds it now (re-acquiring refreshes the heartbeat)."""
        now = self._now()
        mine = {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "acquired_at_ns": now,
            "heartbeat_ns": now,
        }
        key = {"account": account, "symbol": symbol}
        with self._begin() as connection:
            if self._insert_ignore(connection, worker_locks, {**key, **mine}, ("account", "symbol")):
                return True
            row = connection.execute(self._select(account, symbol)).one_or_none()
            if row is None:  # released between our insert and select
                return self._insert_ignore(connection, worker_locks, {**key, **mine}, ("account", "symbol"))
            if row.owner == self.owner:
                self._touch(connection, account, symbol, now)
                return True
            if not self._is_stale(row, now, stale_after_s):
                return False
            taken = connection.execute(
                worker_locks.update()
                .where(
                    worker_locks.c.account == account,
                    worker_locks.c.symbol == symbol,
                    worker_locks.c.owner == row.owner,
                    worker_locks.c.heartbeat_ns == row.heartbeat_ns,
                )
                .values(**mine)
            )
            return taken.rowcount == 1

    def heartbeat_lock(self, account: str, symbol: str) -> bool:
        """Say this holder is alive; False when the lease is not ours any more (stop trading)."""
        with self._begin() as connection:
            return self._touch(connection, account, symbol, self._now())

    def release_lock(self, account: str, symbol: str) -> bool:
        """Give the lease back; False when it was not ours."""
        with self._begin() as connection:
            deleted = connection.execute(
                worker_locks.delete().where(
                    worker_locks.c.account == account,
                    worker_locks.c.symbol == symbol,
                    worker_locks.c.owner == self.owner,
                )
            )
            return deleted.rowcount == 1

    def lock_holder(self, account: str, symbol: str) -> LockHolder | None:
        """The current holder, fresh or stale, or None when free."""
        with self._begin() as connection:
            row = connection.execute(self._select(account, symbol)).one_or_none()
        if row is None:
            return None
        return LockHolder(
            row.account, row.symbol, row.owner, row.host, row.pid, row.acquired_at_ns, row.heartbeat_ns
        )

    @staticmethod
    def _select(account: str, symbol: str) -> Select[Any]:
        return select(worker_locks).where(worker_locks.c.account == account, worker_locks.c.symbol == symbol)

    def _touch(self, connection: Connection, account: str, symbol: str, now: int) -> bool:
        updated = connection.execute(
            worker_locks.update()
            .where(
                worker_locks.c.account == account,
                worker_locks.c.symbol == symbol,
                worker_locks.c.owner == self.owner,
            )
            .values(heartbeat_ns=now)
        )
        return updated.rowcount == 1

    def _is_stale(self, row: Row[Any], now: int, stale_after_s: float) -> bool:
        if now - row.heartbeat_ns > stale_after_s * 1e9:
            return True
        # Same host, another process that no longer exists: it cannot heartbeat again.
        return row.host == self.host and row.pid != self.pid and _process_gone(row.pid)
