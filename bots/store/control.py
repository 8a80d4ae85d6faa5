"""The control plane in the store: a durable command queue and versioned configs with per-bot acks.

Flows and the CLI write here; bots poll. Nothing is deleted, so every change stays audited: who asked,
when, and what each bot answered.

Rows are validated where they are read, because anything can write a database: a command whose
payload is not a JSON object, or a config version whose config or targets are unreadable, is acked
`rejected: <reason>` for the reading bot and never handed out again. JSON columns are read as text
and decoded with `bots.safe_json` (bounded size and depth, finite numbers), so no row can crash a bot.

A command targets one bot or "*" (every bot). A targeted command's row carries its status; a broadcast
is acknowledged per bot in `command_acks` (its row shows the latest ack). A broadcast stays pending for
every bot that has not acked it, so give it a `ttl_s` unless bots started later should obey it too.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Connection,
    Label,
    Row,
    Select,
    Table,
    Text,
    and_,
    cast,
    or_,
    select,
    text,
)

from bots.safe_json import decode_json, decode_json_object, describe_kind
from bots.store.db import SIGNAL_KEY, LedgerBase
from bots.store.schema import COMMANDS, command_acks, commands, config_acks, config_versions

__all__ = [
    "ALL_BOTS",
    "CONTROL_CHANNEL",
    "Command",
    "CommandAck",
    "ConfigAck",
    "ConfigVersion",
    "ControlPlane",
    "default_author",
    "notify_control",
]

ALL_BOTS = "*"
CONTROL_CHANNEL = "mmfleet_control"  # PostgreSQL NOTIFY channel: a command or a config version was added
AckStatus = Literal["applied", "rejected"]
MAX_PAYLOAD_BYTES = 64 * 1024  # a command payload is a few keys
MAX_CONFIG_BYTES = 1024 * 1024  # a whole bot config as JSON is a few kilobytes
MAX_TARGETS = 10_000
_CONTROL_MARK = "SELECT (SELECT max(id) FROM commands), (SELECT max(version) FROM config_versions)"


def default_author() -> str:
    """`user@host` of this process: who a command came from, for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class Command:
    """One queued command; `status` is pending, done or failed."""

    id: int
    bot: str
    command: str
    payload: dict[str, Any]
    author: str
    created_at_ns: int
    expires_at_ns: int | None
    status: str
    acked_at_ns: int | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class CommandAck:
    """One bot's answer to a command."""

    command_id: int
    bot: str
    status: str
    outcome: str | None
    acked_at_ns: int


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """A published, already validated config and the bots it is meant for ("*" = all)."""

    version: int
    config: dict[str, Any]
    targets: tuple[str, ...]
    author: str
    created_at_ns: int

    def targets_bot(self, bot: str) -> bool:
        return bot in self.targets or ALL_BOTS in self.targets


@dataclass(frozen=True, slots=True)
class ConfigAck:
    """A bot's answer to a config version: applied, or rejected with the reason."""

    version: int
    bot: str
    status: str
    reason: str | None
    at_ns: int


def notify_control(connection: Connection, backend: str) -> None:
    """Wake the watching bots after a write to `commands` or `config_versions`, once it is committed:
    PostgreSQL `NOTIFY` (delivered at the commit), SQLite the ledger's control signal file (grown after
    the commit; see `bots.store.db.CONTROL_SIGNAL_SUFFIX`)."""
    if backend == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CONTROL_CHANNEL})
    else:
        connection.info[SIGNAL_KEY] = True


def _new_id(key: Any) -> int:
    if key is None:  # pragma: no cover - every table here has an autoincrement key
        raise RuntimeError("the database returned no primary key")
    return int(key[0])


def _as_text(table: Table, *json_columns: str) -> Select[Any]:
    """SELECT every column of `table`, the JSON ones as their text: decoding is ours to bound."""
    columns: list[Column[Any] | Label[Any]] = [
        cast(column, Text).label(column.name) if column.name in json_columns else column for column in table.c
    ]
    return select(*columns)


def _commands_query() -> Select[Any]:
    return _as_text(commands, "payload")


def _configs_query() -> Select[Any]:
    return _as_text(config_versions, "config", "targets")


def _read_command(row: Row[Any]) -> tuple[Command, str | None]:
    """The command, and why it must be refused (None when it is sound); a bad payload reads as {}."""
    problem: str | None = None
    payload: dict[str, Any] = {}
    if row.command not in COMMANDS:
        problem = f"unknown command {str(row.command)[:40]!r}"
    else:
        try:
            payload = decode_json_object(row.payload or "", max_bytes=MAX_PAYLOAD_BYTES)
        except ValueError as exc:
            problem = f"payload: {exc}"
    command = Command(
        id=row.id,
        bot=row.bot,
        command=row.command,
        payload=payload,
        author=row.author,
        created_at_ns=row.created_at_ns,
        expires_at_ns=row.expires_at_ns,
        status=row.status,
        acked_at_ns=row.acked_at_ns,
        outcome=row.outcome,
    )
    return command, problem


def _read_targets(text: str | None) -> tuple[str, ...]:
    targets = decode_json(text or "", max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(targets, list) or not targets or len(targets) > MAX_TARGETS:
        raise ValueError(f"not a list of 1 to {MAX_TARGETS} bot names (got {describe_kind(targets)})")
    if not all(isinstance(target, str) and target for target in targets):
        raise ValueError("every target is a non-empty bot name")
    return tuple(targets)


def _read_config(row: Row[Any]) -> ConfigVersion | str:
    """The version, or why it must be refused."""
    try:
        targets = _read_targets(row.targets)
    except ValueError as exc:
        return f"targets: {exc}"
    try:
        config = decode_json_object(row.config or "", max_bytes=MAX_CONFIG_BYTES)
    except ValueError as exc:
        return f"config: {exc}"
    return ConfigVersion(
        version=row.version,
        config=config,
        targets=targets,
        author=row.author,
        created_at_ns=row.created_at_ns,
    )


def _targets_bot(row: Row[Any], bot: str) -> bool:
    """Whether a version row is meant for `bot`; unreadable targets count as meant for everyone, so
    every bot refuses the version (with the reason) instead of passing over it in silence."""
    try:
        targets = _read_targets(row.targets)
    except ValueError:
        return True
    return bot in targets or ALL_BOTS in targets


def _rejected(reason: str) -> str:
    return f"rejected: {reason}"


class ControlPlane(LedgerBase):
    """Commands and config versions."""

    def enqueue_command(
        self,
        bot: str,
        command: str,
        payload: Mapping[str, Any] | None = None,
        *,
        author: str | None = None,
        ttl_s: float | None = None,
    ) -> int:
        """Queue `command` for `bot` (or "*"); returns its id. Unknown commands are refused here."""
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
        if not bot:
            raise ValueError("a command needs a bot name or '*'")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        now = self._now()
        values = {
            "bot": bot,
            "command": command,
            "payload": json.loads(json.dumps(dict(payload or {}))),  # fail now if not JSON-able
            "author": author or default_author(),
            "created_at_ns": now,
            "expires_at_ns": None if ttl_s is None else now + round(ttl_s * 1e9),
            "status": "pending",
        }
        with self._begin() as connection:
            inserted = connection.execute(commands.insert().values(**values))
            self._notify(connection)
            return _new_id(inserted.inserted_primary_key)

    def control_mark(self) -> tuple[int, int]:
        """(newest command id, newest config version): it changes exactly when there may be something
        new to obey, and costs two index lookups, so a bot checks it instead of its pending queries. On
        a store thread's SQLite connection it is one plain read: no transaction, so no write lock."""
        raw = self._pinned_sqlite()
        if raw is not None:
            newest = raw.execute(_CONTROL_MARK).fetchone()
        else:
            with self._begin() as connection:
                newest = connection.execute(text(_CONTROL_MARK)).one()
        return int(newest[0] or 0), int(newest[1] or 0)

    def _notify(self, connection: Connection) -> None:
        notify_control(connection, self.backend)

    def pending_commands(self, bot: str) -> list[Command]:
        """Commands `bot` has yet to act on, oldest first: its own pending ones and unacked broadcasts.

        A row that does not validate is acked `rejected: <reason>` for `bot` here and left out.
        """
        acked_by_bot = (
            select(command_acks.c.command_id)
            .where(command_acks.c.command_id == commands.c.id, command_acks.c.bot == bot)
            .exists()
        )
        now = self._now()
        query = (
            _commands_query()
            .where(
                or_(
                    and_(commands.c.bot == bot, commands.c.status == "pending"),
                    and_(commands.c.bot == ALL_BOTS, ~acked_by_bot),
                ),
                or_(commands.c.expires_at_ns.is_(None), commands.c.expires_at_ns > now),
            )
            .order_by(commands.c.id)
        )
        with self._begin() as connection:
            rows = [_read_command(row) for row in connection.execute(query)]
        sound = []
        for command, problem in rows:
            if problem is None:
                sound.append(command)
            else:
                self.ack_command(command.id, _rejected(problem), bot=bot, ok=False)
        return sound

    def ack_command(self, command_id: int, outcome: str, *, bot: str | None = None, ok: bool = True) -> None:
        """Record what a bot did with a command. `bot` is required for a broadcast; acking twice keeps
        the first answer."""
        status = "done" if ok else "failed"
        now = self._now()
        with self._begin() as connection:
            query = select(commands.c.bot).where(commands.c.id == command_id)
            row = connection.execute(query).one_or_none()
            if row is None:
                raise KeyError(f"no command {command_id}")
            if row.bot == ALL_BOTS and bot is None:
                raise ValueError(f"command {command_id} is a broadcast: say which bot acks it")
            if row.bot != ALL_BOTS and bot is not None and bot != row.bot:
                raise ValueError(f"command {command_id} is for {row.bot}, not {bot}")
            acker = bot or row.bot
            ack = {"command_id": command_id, "bot": acker, "status": status, "outcome": outcome}
            written = self._insert_ignore(
                connection, command_acks, {**ack, "acked_at_ns": now}, ("command_id", "bot")
            )
            if written:
                connection.execute(
                    commands.update()
                    .where(commands.c.id == command_id)
                    .values(status=status, outcome=outcome, acked_at_ns=now)
                )

    def command(self, command_id: int) -> Command:
        """One command by id (KeyError when unknown); an unreadable payload reads as {}."""
        with self._begin() as connection:
            row = connection.execute(_commands_query().where(commands.c.id == command_id)).one_or_none()
        if row is None:
            raise KeyError(f"no command {command_id}")
        return _read_command(row)[0]

    def recent_commands(self, limit: int = 50) -> list[Command]:
        """The latest commands, newest first: the audit view."""
        query = _commands_query().order_by(commands.c.id.desc()).limit(limit)
        with self._begin() as connection:
            return [_read_command(row)[0] for row in connection.execute(query)]

    def command_acks(self, command_id: int) -> list[CommandAck]:
        """Every bot's answer to a command, in the order they came."""
        query = (
            select(command_acks)
            .where(command_acks.c.command_id == command_id)
            .order_by(command_acks.c.acked_at_ns, command_acks.c.bot)
        )
        with self._begin() as connection:
            return [
                CommandAck(row.command_id, row.bot, row.status, row.outcome, row.acked_at_ns)
                for row in connection.execute(query)
            ]

    def publish_config(
        self, config: Mapping[str, Any] | str, targets: Sequence[str], author: str | None = None
    ) -> int:
        """Store a validated config for `targets` (bot names or ["*"]); returns the new version."""
        document = json.loads(config) if isinstance(config, str) else json.loads(json.dumps(dict(config)))
        if not isinstance(document, dict):
            raise ValueError("a config is a JSON object")
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError("targets: a non-empty list of bot names, or ['*']")
        values = {
            "config": document,
            "targets": sorted(set(targets)),
            "author": author or default_author(),
            "created_at_ns": self._now(),
        }
        with self._begin() as connection:
            inserted = connection.execute(config_versions.insert().values(**values))
            self._notify(connection)
            return _new_id(inserted.inserted_primary_key)

    def config_version(self, version: int) -> ConfigVersion:
        """One published version (KeyError when unknown, ValueError when its row does not validate)."""
        query = _configs_query().where(config_versions.c.version == version)
        with self._begin() as connection:
            row = connection.execute(query).one_or_none()
        if row is None:
            raise KeyError(f"no config version {version}")
        read = _read_config(row)
        if isinstance(read, str):
            raise ValueError(f"config version {version}: {read}")
        return read

    def pending_config(self, bot: str) -> ConfigVersion | None:
        """The newest version meant for `bot`, unless the bot has already answered it (a newer version
        supersedes older unanswered ones). One that does not validate is acked rejected, and None."""
        with self._begin() as connection:
            newest = self._newest_config_for(connection, bot)
            if newest is None:
                return None
            answered = connection.execute(
                select(config_acks.c.status).where(
                    config_acks.c.version == newest.version, config_acks.c.bot == bot
                )
            ).first()
            if answered is not None:
                return None
        read = _read_config(newest)
        if isinstance(read, str):
            self.ack_config(newest.version, bot, "rejected", read)
            return None
        return read

    def applied_config(self, bot: str) -> ConfigVersion | None:
        """The newest version `bot` acked as applied: what it should run with after a restart.

        A row that no longer validates (changed after it was applied) is acked rejected and the
        previous applied version is the answer.
        """
        query = (
            _configs_query()
            .join(config_acks, config_acks.c.version == config_versions.c.version)
            .where(config_acks.c.bot == bot, config_acks.c.status == "applied")
            .order_by(config_versions.c.version.desc())
        )
        with self._begin() as connection:
            rows = list(connection.execute(query))
        for row in rows:
            read = _read_config(row)
            if not isinstance(read, str):
                return read
            self.ack_config(row.version, bot, "rejected", read)
        return None

    def ack_config(self, version: int, bot: str, status: AckStatus, reason: str | None = None) -> None:
        """Record a bot's answer to a version; a later answer to the same version replaces it."""
        if status not in ("applied", "rejected"):
            raise ValueError(f"config ack status is applied or rejected, not {status!r}")
        if status == "rejected" and not reason:
            raise ValueError("a rejection needs a reason")
        with self._begin() as connection:
            target = connection.execute(
                select(config_versions.c.targets).where(config_versions.c.version == version)
            ).one_or_none()
            if target is None:
                raise KeyError(f"no config version {version}")
            values = {
                "version": version,
                "bot": bot,
                "status": status,
                "reason": reason,
                "at_ns": self._now(),
            }
            self._upsert(connection, config_acks, values, ("version", "bot"))

    def config_acks(self, version: int) -> list[ConfigAck]:
        """Every bot's answer to a version, in the order they came (the rollout flow watches this)."""
        query = (
            select(config_acks)
            .where(config_acks.c.version == version)
            .order_by(config_acks.c.at_ns, config_acks.c.bot)
        )
        with self._begin() as connection:
            return [
                ConfigAck(row.version, row.bot, row.status, row.reason, row.at_ns)
                for row in connection.execute(query)
            ]

    @staticmethod
    def _newest_config_for(connection: Connection, bot: str) -> Row[Any] | None:
        # Targets are a JSON list; matching in Python keeps the query portable. Versions are few.
        query = _configs_query().order_by(config_versions.c.version.desc())
        for row in connection.execute(query):
            if _targets_bot(row, bot):
                return row
        return None
