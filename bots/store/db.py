"""Opening the ledger's database: URL rules, SQLite and PostgreSQL setup, schema creation and version check.

The same SQLAlchemy Core code runs on both backends; the differences live here:
- SQLite (the embedded default, one file): WAL so readers never block the writer, `synchronous=FULL`
  so a committed fill survives a power cut, and `BEGIN IMMEDIATE` for every transaction so that
  concurrent processes queue for the write lock instead of failing on a lock upgrade.
- PostgreSQL (at scale): `postgresql://` is read as `postgresql+psycopg://` (psycopg 3); an optional
  `schema` puts every table in that schema via `search_path` (used to isolate test runs).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

from bots.errors import ConfigError, FleetError
from bots.exitcodes import ExitCode
from bots.store import migrations
from bots.store.prepared import PreparedInsert, driver_errors
from bots.store.schema import schema_version

__all__ = [
    "CONTROL_SIGNAL_SUFFIX",
    "DATABASE_URL_ENV",
    "DEFAULT_SQLITE_PATH",
    "SIGNAL_KEY",
    "LedgerBase",
    "SchemaVersionError",
    "StoreError",
    "check_database",
    "ledger_engine",
    "normalise_url",
]

DATABASE_URL_ENV = "MMFLEET_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("data/mmfleet.sqlite")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_BEGIN = "BEGIN IMMEDIATE"  # SQLite: take the write lock at once (a deferred one may fail at its first write)
_SYNCHRONOUS = {True: "PRAGMA synchronous=FULL", False: "PRAGMA synchronous=NORMAL"}  # SQLite, WAL
_ASYNC_COMMIT = "SET LOCAL synchronous_commit TO OFF"  # PostgreSQL: this transaction only
_SYNCED_KEY = "mmfleet_synced"  # in a SQLite connection's info: its synchronous setting (FULL at connect)
# SQLite: a file beside the ledger that grows by a byte after every commit with a command or a config
# version in it (`notify_control`): bots watch it (`bots.store.signal_watch`) instead of the database,
# whose own change counter (`PRAGMA data_version`) moves with every commit of every bot.
CONTROL_SIGNAL_SUFFIX = "-control"
SIGNAL_KEY = "mmfleet_control_signal"  # in a connection's info: signal after this transaction commits
_INIT_LOCK_KEY = 0x6D6D666C656574  # "mmfleet": serialises schema creation across processes on PostgreSQL


class StoreError(FleetError):
    """The ledger database cannot be used (unreachable, bad URL): a bot exits with `exit_code`, and
    the supervisor retries with backoff (a database that is down now may be up in a minute)."""

    exit_code = ExitCode.STORE_UNAVAILABLE


class SchemaVersionError(StoreError):
    """The database was written by a newer (or unknown) schema: refuse it rather than corrupt it."""


def _parse_url(url: str | Path | None) -> URL:
    """`normalise_url` without touching the disk; StoreError (never showing the password) when unusable."""
    if url is None:
        url = os.environ.get(DATABASE_URL_ENV) or DEFAULT_SQLITE_PATH
    if isinstance(url, Path) or "://" not in url:
        if "\x00" in str(url):
            raise StoreError("a SQLite path cannot contain a NUL byte")
        return URL.create("sqlite+pysqlite", database=str(Path(url).expanduser()))
    try:
        parsed = make_url(url)
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ValueError("port out of range")
    except (ArgumentError, ValueError):  # their messages repeat the URL, password included
        raise StoreError("unreadable database URL (expected postgresql://user:pw@host:port/db)") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    if "\x00" in (parsed.database or ""):
        raise StoreError("a database name or SQLite path cannot contain a NUL byte")
    if parsed.drivername not in ("postgresql+psycopg", "sqlite+pysqlite"):
        raise StoreError(
            f"unsupported database {parsed.drivername[:40]!r}: use a SQLite path or postgresql://user@host/db"
        )
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    return None if url.database in (None, "", ":memory:") else Path(url.database).expanduser()


def normalise_url(url: str | Path | None = None) -> URL:
    """The SQLAlchemy URL of the ledger: `url`, else $MMFLEET_DATABASE_URL, else the default SQLite file.

    A path (or any string without "://") is a SQLite file, whose directory is created; `postgres://` and
    `postgresql://` mean psycopg 3.
    """
    parsed = _parse_url(url)
    path = _sqlite_file(parsed) if parsed.drivername == "sqlite+pysqlite" else None
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror or type(exc).__name__}") from None
    return parsed


def check_database(url: str | Path, *, timeout_s: int = 5) -> None:
    """StoreError, with the password masked, unless the ledger at `url` is usable; creates nothing.

    SQLite: the file, or the directory it would be created in, must be writable. PostgreSQL: the server
    must accept a connection within `timeout_s`. A URL that cannot be used at all is a ConfigError.
    """
    try:
        parsed = _parse_url(url)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    safe = parsed.render_as_string(hide_password=True)
    if parsed.drivername == "sqlite+pysqlite":
        path = _sqlite_file(parsed)
        if path is None:
            return
        if path.exists():
            if not path.is_file() or not os.access(path, os.W_OK):
                raise StoreError(f"{safe}: not a writable file")
            return
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"{safe}: {parent} is not a writable directory")
        return
    engine = create_engine(parsed, poolclass=NullPool, connect_args={"connect_timeout": timeout_s})
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise StoreError(f"cannot reach the ledger at {safe}: {reason}") from None
    finally:
        engine.dispose()


def _lenient_text(raw: bytes) -> str:
    """SQLite stores whatever bytes a writer gave it; pysqlite raises on a non-UTF-8 TEXT value, which
    would make one bad row crash every read that touches it. Undecodable bytes read as U+FFFD instead,
    and the row's validation refuses it."""
    return raw.decode("utf-8", "replace")


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        connect_args={"timeout": 30.0, "check_same_thread": False},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN handling is off: see _on_begin
        dbapi_connection.text_factory = _lenient_text
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if not record.info.get(_SYNCED_KEY, True):  # a store thread's, with history batches: FULL again
            dbapi_connection.execute(_SYNCHRONOUS[True])
            record.info[_SYNCED_KEY] = True

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # On the driver's connection: a Core execute here would cost more than the commit it starts.
        with driver_errors(engine.dialect, _BEGIN):
            connection.connection.driver_connection.execute(_BEGIN)  # type: ignore[union-attr]

    return engine


def _postgres_engine(url: URL, schema: str | None, max_connections: int | None) -> Engine:
    if schema is not None:
        bootstrap = create_engine(url, poolclass=NullPool)
        try:
            with bootstrap.begin() as connection:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INIT_LOCK_KEY})
                connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        finally:
            bootstrap.dispose()
    if max_connections is None:
        engine = create_engine(url, pool_pre_ping=True)
    else:  # a bot's budget: the server allows ~100 connections for the whole fleet
        engine = create_engine(
            url, pool_pre_ping=True, poolclass=QueuePool, pool_size=max_connections, max_overflow=0
        )
    if schema is not None:

        @event.listens_for(engine, "connect", insert=True)
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            cursor.execute(f'SET SESSION search_path TO "{schema}"')
            cursor.close()
            dbapi_connection.autocommit = autocommit

    return engine


def ledger_engine(
    url: URL | str | Path | None = None, *, schema: str | None = None, max_connections: int | None = None
) -> Engine:
    """The engine of the ledger at `url` (see `normalise_url`), set up as every store handle sets it up;
    on PostgreSQL at most `max_connections` (a bot: one), when given."""
    parsed = url if isinstance(url, URL) else normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return _postgres_engine(parsed, schema, max_connections)


class LedgerBase:
    """Owns the engine and the clock; the ledger's parts (control plane, locks, fills) build on it."""

    def __init__(
        self,
        url: str | Path | None = None,
        *,
        schema: str | None = None,
        clock: Callable[[], int] = time.time_ns,
        owner: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        # Who this ledger handle is, for worker locks: unique even for two handles in one process.
        self.owner = owner or f"{self.host}:{self.pid}:{secrets.token_hex(4)}"
        self.url = normalise_url(url)
        self.backend = self.url.get_backend_name()
        sqlite_file = _sqlite_file(self.url) if self.backend == "sqlite" else None
        self.control_signal = None if sqlite_file is None else Path(f"{sqlite_file}{CONTROL_SIGNAL_SUFFIX}")
        self._clock = clock
        self._thread = threading.local()  # `pinned`: the connection this thread's calls use, if any
        self._prepared: dict[tuple[str, tuple[str, ...]], PreparedInsert] = {}
        if schema is not None and (self.backend != "postgresql" or not _SCHEMA_NAME.match(schema)):
            raise StoreError(f"schema {schema!r}: a plain identifier, and only on PostgreSQL")
        safe_url = self.url.render_as_string(hide_password=True)
        try:
            self._engine = ledger_engine(self.url, schema=schema, max_connections=max_connections)
            try:
                self._prepare()
            except BaseException:
                self._engine.dispose()
                raise
        except OperationalError as exc:
            raise StoreError(f"cannot open the ledger at {safe_url}: {exc.orig}") from exc

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Close every pooled connection; the data is already committed."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _now(self) -> int:
        return self._clock()

    @contextmanager
    def pinned(self) -> Iterator[Connection]:
        """Every call of this handle from this thread runs on one connection until the block ends (a
        bot's store thread: its only connection, LISTEN included); the calls commit one by one, or
        together inside `batch()`."""
        with self._engine.connect() as connection:
            self._thread.pinned = connection
            try:
                yield connection
            finally:
                self._thread.pinned = None

    @contextmanager
    def batch(self, *, synced: bool = True) -> Iterator[Connection]:
        """One transaction for the calls made inside the block (on the pinned connection): one commit.
        The calls join it: when one fails, the whole transaction is rolled back, unless the call ran
        inside `savepoint()`.

        `synced=False` is for history that can wait for the disk: the commit does not (SQLite
        `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`). A crash of the process loses none
        of it, a power loss at most what came since the last synced commit, which makes it durable."""
        connection: Connection | None = getattr(self._thread, "pinned", None)
        if connection is None:
            raise RuntimeError("batch() needs a pinned() connection")
        info = connection.info
        if self.backend == "sqlite" and info.get(_SYNCED_KEY, True) != synced:
            with driver_errors(self._engine.dialect, _SYNCHRONOUS[synced]):  # not inside a transaction
                connection.connection.driver_connection.execute(_SYNCHRONOUS[synced])  # type: ignore[union-attr]
            info[_SYNCED_KEY] = synced
        with connection.begin():
            if not synced and self.backend == "postgresql":
                with driver_errors(self._engine.dialect, _ASYNC_COMMIT):
                    connection.connection.driver_connection.execute(_ASYNC_COMMIT)  # type: ignore[union-attr]
            yield connection
        self._signal(info)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside `batch()`: the calls made in the block undo only their own rows when one fails."""
        connection: Connection | None = getattr(self._thread, "pinned", None)
        if connection is None or not connection.in_transaction():
            raise RuntimeError("savepoint() needs a batch()")
        with connection.begin_nested():
            yield

    def _pinned_sqlite(self) -> Any | None:
        """This thread's pinned pysqlite connection, if it has one: in autocommit mode, so a statement
        run on it outside `batch()` is a plain read, without the write lock `BEGIN IMMEDIATE` takes."""
        pinned: Connection | None = getattr(self._thread, "pinned", None)
        if pinned is None or self.backend != "sqlite":
            return None
        return pinned.connection.dbapi_connection

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction for one call: on the pinned connection when this thread has one (joining the
        `batch()` under way), else from the pool."""
        pinned: Connection | None = getattr(self._thread, "pinned", None)
        if pinned is None:
            with self._engine.begin() as connection:
                info = connection.info
                yield connection
            self._signal(info)
        elif pinned.in_transaction():
            yield pinned
        else:
            with pinned.begin():
                info = pinned.info
                yield pinned
            self._signal(info)

    def _signal(self, committed: dict[Any, Any]) -> None:
        """After a commit that wrote a command or a config version (`notify_control`): grow the SQLite
        control signal (`committed`: the connection's info). Best effort: a bot that is not told finds
        the write with its slow fallback check."""
        if committed.pop(SIGNAL_KEY, False) and self.control_signal is not None:
            with suppress(OSError), self.control_signal.open("ab") as signal:
                signal.write(b"\n")

    def _prepare(self) -> None:
        """Bring the schema to this code's revision (Alembic), under a lock so that a fleet starting at
        once migrates once; refuse a ledger written by a newer mmfleet."""
        with self._begin() as connection:
            if self.backend == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INIT_LOCK_KEY})
            found = migrations.current_revision(connection)
            if found == migrations.HEAD:  # nothing to upgrade: Alembic is never imported
                return
            if found is None and inspect(connection).has_table(schema_version.name):
                legacy = connection.execute(select(schema_version.c.version)).scalar_one_or_none()
                if legacy not in (None, 1):
                    raise SchemaVersionError(
                        f"the ledger database has schema version {legacy} but no Alembic revision: "
                        "it was not written by mmfleet"
                    )
            elif found is not None and not migrations.known_revision(found):
                raise SchemaVersionError(
                    f"the ledger database is at revision {found}, newer than this code "
                    f"({migrations.head_revision()}): upgrade mmfleet"
                )
            migrations.upgrade(connection)

    def _insert_ignore(
        self, connection: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]
    ) -> bool:
        """INSERT that does nothing on a duplicate of `keys`; True when a row was written.

        RETURNING tells the two cases apart: the rowcount of an upsert is not reliable on every driver.
        """
        returned = table.c[keys[0]]
        if self.backend == "sqlite":
            sqlite_stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
            return connection.execute(sqlite_stmt.returning(returned)).first() is not None
        pg_stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
        return connection.execute(pg_stmt.returning(returned)).first() is not None

    def _insert_rows(
        self,
        connection: Connection,
        table: Table,
        rows: Iterable[Mapping[str, Any]],
        *,
        conflict: Sequence[str] = (),
    ) -> None:
        """Insert `rows` with one prepared `executemany` (`bots.store.prepared`): what a bot writes every
        second; with `conflict` keys, an upsert."""
        key = (table.name, tuple(conflict))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = PreparedInsert(table, self._engine.dialect, conflict=conflict)
        prepared.run(connection, rows)

    def _upsert(
        self, connection: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]
    ) -> None:
        """INSERT, or UPDATE the non-key columns of the row with the same `keys`."""
        changes = {name: value for name, value in values.items() if name not in keys}
        if self.backend == "sqlite":
            sqlite_stmt = sqlite.insert(table).values(**values)
            connection.execute(sqlite_stmt.on_conflict_do_update(index_elements=keys, set_=changes))
            return
        pg_stmt = postgresql.insert(table).values(**values)
        connection.execute(pg_stmt.on_conflict_do_update(index_elements=keys, set_=changes))
