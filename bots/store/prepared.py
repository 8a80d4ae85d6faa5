"""Prepared inserts for the rows a bot writes every second: the SQL built once, the rows handed to the
driver's `executemany`, inside the SQLAlchemy transaction under way.

A Core execute costs a bot's store thread more than its rows do: a cache key, an execution context and
a result, every time, and the thread runs cold (a few times a second, the trading loop's work having
taken the CPU caches in between), which makes that overhead several times dearer than a benchmark loop
shows. Here each value still goes through its column type's bind processor, as a Core execute sends it
(Money as exact decimal text on SQLite), and a driver error is raised as SQLAlchemy's (an
`OperationalError` is still the database's, not the row's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.exc import DBAPIError

__all__ = ["PreparedInsert", "driver_errors"]


class PreparedInsert:
    """`INSERT INTO table (columns) VALUES (...)` for one dialect; with `conflict` keys, an upsert that
    updates the other columns (the same syntax on SQLite and PostgreSQL)."""

    def __init__(self, table: Table, dialect: Dialect, *, conflict: Sequence[str] = ()) -> None:
        if dialect.paramstyle not in ("qmark", "format", "pyformat"):  # pragma: no cover - our two drivers
            raise ValueError(f"unsupported paramstyle {dialect.paramstyle}")
        key = table.autoincrement_column
        columns = [column for column in table.c if column is not key]
        self.names = tuple(column.name for column in columns)
        self._processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(columns):
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors.append((index, processor))
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in self.names)}) "
            f"VALUES ({', '.join(mark for _ in self.names)})"
        )
        if conflict:
            changes = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in self.names if n not in conflict)
            self.sql += (
                f" ON CONFLICT ({', '.join(quote(name) for name in conflict)}) DO UPDATE SET {changes}"
            )
        self._dialect = dialect

    def run(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write `rows` (column -> value; a column left out is NULL) with one `executemany`."""
        params = []
        for row in rows:
            values = [row.get(name) for name in self.names]
            for index, processor in self._processors:
                values[index] = processor(values[index])
            params.append(values)
        if not params:
            return
        dbapi: Any = connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            with driver_errors(self._dialect, self.sql):
                cursor.executemany(self.sql, params)
        finally:
            cursor.close()


@contextmanager
def driver_errors(dialect: Dialect, sql: str) -> Iterator[None]:
    """Raise a driver's error inside the block as SQLAlchemy would (`sqlite3.OperationalError` as
    `sqlalchemy.exc.OperationalError`): callers tell the database's failures from the row's by those."""
    error_type: type[Exception] = dialect.loaded_dbapi.Error
    try:
        yield
    except error_type as exc:
        raise DBAPIError.instance(sql, None, exc, error_type, hide_parameters=True, dialect=dialect) from exc
