"""Shared fixtures of the integration tests: the ledger on a real SQLite file and a real PostgreSQL.

PostgreSQL comes from $MMFLEET_TEST_DATABASE_URL (default: the local server with trust auth). Each
test gets its own schema, dropped afterwards, so parallel and repeated runs never see each other's rows.
Without a server the PostgreSQL cases are skipped, except under CI (the `CI` variable set), where a
missing server is a failure: CI must not turn green by testing only SQLite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from bots.store import Ledger, normalise_url

TEST_DATABASE_URL_ENV = "MMFLEET_TEST_DATABASE_URL"
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


class FakeClock:
    """A settable nanosecond clock, so staleness and TTLs are tested without sleeping."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        self.now_ns += 1  # strictly increasing, like a real clock between two calls
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)


@dataclass
class LedgerFactory:
    """Opens `Ledger` handles on one database (file or schema) that lives for the whole test."""

    backend: str
    url: str
    schema: str | None
    clock: FakeClock = field(default_factory=FakeClock)
    opened: list[Ledger] = field(default_factory=list)

    def open(self, **kwargs: Any) -> Ledger:
        ledger = Ledger(self.url, schema=self.schema, clock=self.clock, **kwargs)
        self.opened.append(ledger)
        return ledger


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL once it answered; skip (or fail under CI) when it does not."""
    url = os.environ.get(TEST_DATABASE_URL_ENV, DEFAULT_TEST_DATABASE_URL)
    engine = create_engine(normalise_url(url), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        message = f"PostgreSQL at {TEST_DATABASE_URL_ENV}={url!r} is not reachable: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


def _drop_schema(url: str, schema: str) -> None:
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerFactory]:
    """A fresh, empty database per test on each backend."""
    if request.param == "sqlite":
        factory = LedgerFactory("sqlite", str(tmp_path / "ledger.sqlite"), None)
    else:
        url = request.getfixturevalue("postgres_url")
        factory = LedgerFactory("postgresql", url, f"mmfleet_test_{uuid.uuid4().hex[:16]}")
    try:
        yield factory
    finally:
        for ledger in factory.opened:
            ledger.close()
        if factory.schema is not None:
            _drop_schema(factory.url, factory.schema)


@pytest.fixture
def ledger(ledgers: LedgerFactory) -> Ledger:
    """One open ledger on a fresh database."""
    return ledgers.open()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server and database for the whole session (the harness's server is a
    process-wide singleton: two harnesses would share and stop it), for every module that asks."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=180):
        yield
