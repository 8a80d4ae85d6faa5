"""Alerts in the store: every Alertmanager notification, and the stop command a halting alert issued.

A notification is keyed by (fingerprint, firing episode, status); the episode is the alert's `startsAt`,
which Alertmanager keeps for as long as the alert fires and renews when it fires again after resolving.
Recording is idempotent on that key, and the stop command of a halting alert is queued in the same
transaction as the alert's first row, so a redelivered or retried notification never stops a bot twice
and a crash between the two writes cannot lose the stop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Row, select

from bots.store.control import ALL_BOTS, notify_control
from bots.store.db import LedgerBase
from bots.store.schema import alerts, commands

__all__ = ["AUTHOR_MAX_CHARS", "AlertLog", "AlertNotice", "AlertRecord", "AlertStatus"]

AlertStatus = Literal["firing", "resolved"]
AUTHOR_MAX_CHARS = 128  # the width of commands.author


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """One alert of a notification, as Alertmanager sent it (times in ns since the epoch)."""

    fingerprint: str
    status: AlertStatus
    starts_at_ns: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ends_at_ns: int | None = None
    generator_url: str | None = None
    receiver: str | None = None

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def bot(self) -> str | None:
        return self.labels.get("bot") or None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A recorded notification; `command_id` is the stop command it issued, if any."""

    id: int
    fingerprint: str
    status: str
    alertname: str
    bot: str | None
    starts_at_ns: int
    ends_at_ns: int | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str | None
    receiver: str | None
    received_at_ns: int
    command_id: int | None


def _record(row: Row[Any]) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        fingerprint=row.fingerprint,
        status=row.status,
        alertname=row.alertname,
        bot=row.bot,
        starts_at_ns=row.starts_at_ns,
        ends_at_ns=row.ends_at_ns,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        generator_url=row.generator_url,
        receiver=row.receiver,
        received_at_ns=row.received_at_ns,
        command_id=row.command_id,
    )


class AlertLog(LedgerBase):
    """Alertmanager notifications and the stop commands they issued."""

    def record_alert(
        self,
        notice: AlertNotice,
        *,
        halt: str | None = None,
        author: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> tuple[AlertRecord, bool]:
        """Record `notice`; returns its row and whether it was new (False: already recorded, nothing
        written). When it is new and `halt` names a bot (or "*"), a `stop` command for it, authored by
        `author`, is queued in the same transaction and linked from the row."""
        if notice.status not in ("firing", "resolved"):
            raise ValueError(f"alert status is firing or resolved, not {notice.status!r}")
        if not notice.fingerprint:
            raise ValueError("an alert needs a fingerprint")
        if halt is not None and notice.status != "firing":
            raise ValueError("only a firing alert can halt a bot")
        if halt is not None and not author:
            raise ValueError("a halting alert needs the command's author")
        if author is not None and len(author) > AUTHOR_MAX_CHARS:
            raise ValueError(f"author longer than {AUTHOR_MAX_CHARS} characters")
        now = self._now()
        values = {
            "fingerprint": notice.fingerprint,
            "status": notice.status,
            "alertname": notice.alertname[:256],
            "bot": notice.bot,
            "starts_at_ns": notice.starts_at_ns,
            "ends_at_ns": notice.ends_at_ns,
            "labels": dict(notice.labels),
            "annotations": dict(notice.annotations),
            "generator_url": notice.generator_url,
            "receiver": notice.receiver,
            "received_at_ns": now,
            "command_id": None,
        }
        keys = ("fingerprint", "starts_at_ns", "status")
        with self._begin() as connection:
            written = self._insert_ignore(connection, alerts, values, keys)
            if written and halt is not None:
                command_id = self._queue_stop(connection, halt, str(author), payload, now)
                notify_control(connection, self.backend)  # a halt: the bots hear of it at once
                connection.execute(alerts.update().where(*self._key(notice)).values(command_id=command_id))
            row = connection.execute(select(alerts).where(*self._key(notice))).one()
        return _record(row), written

    def alerts(
        self, *, bot: str | None = None, status: AlertStatus | None = None, limit: int = 100
    ) -> list[AlertRecord]:
        """Recorded notifications, newest first; `bot` selects that bot's alerts (fleet-level ones
        have no bot)."""
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if bot is not None:
            query = query.where(alerts.c.bot == bot)
        if status is not None:
            query = query.where(alerts.c.status == status)
        with self._begin() as connection:
            return [_record(row) for row in connection.execute(query)]

    @staticmethod
    def _key(notice: AlertNotice) -> tuple[Any, ...]:
        return (
            alerts.c.fingerprint == notice.fingerprint,
            alerts.c.starts_at_ns == notice.starts_at_ns,
            alerts.c.status == notice.status,
        )

    @staticmethod
    def _queue_stop(
        connection: Connection, bot: str, author: str, payload: Mapping[str, Any] | None, now: int
    ) -> int:
        # The same row `ControlPlane.enqueue_command` writes, inside the caller's transaction.
        if not bot:
            raise ValueError(f"a halting alert needs a bot name or {ALL_BOTS!r}")
        values = {
            "bot": bot,
            "command": "stop",
            "payload": json.loads(json.dumps(dict(payload or {}))),
            "author": author,
            "created_at_ns": now,
            "expires_at_ns": None,
            "status": "pending",
        }
        inserted = connection.execute(commands.insert().values(**values))
        key = inserted.inserted_primary_key
        if key is None:  # pragma: no cover - commands.id autoincrements
            raise RuntimeError("the database returned no primary key")
        return int(key[0])
