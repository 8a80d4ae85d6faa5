"""The compiled per-event path: built as configured, current, and as picklable as the plain Python."""

from __future__ import annotations

import os
import pickle
from decimal import Decimal
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from bots import native
from bots.engine.orders import OpenOrder, OrderDiff
from bots.engine.portfolio import Lot
from bots.engine.risk import RiskState
from bots.engine.types import Book, DesiredOrder, OrderKind, Side
from bots.errors import ConfigError
from bots.exchange.events import BookLevel, BookUpdate, Fill, OrderRequest, Trade
from bots.runner import BotProcess, run_bot
from ml.backtest_loop import BacktestConfig


def test_ci_runs_every_configured_module_compiled() -> None:
    modules = [path.removesuffix(".py").replace("/", ".") for path in native.configured()]
    assert "bots.engine.quoter" in modules
    if os.environ.get("CI"):  # `make test` builds them: CI must not quietly test the slow path
        assert sorted(native.compiled()) == sorted(modules)
    assert native.stale() == []


def test_value_types_survive_pickling_compiled_or_not() -> None:
    level = BookLevel(Decimal("50000.1"), Decimal("0.004"))
    values: list[object] = [
        Book(1, 50_000.0, 1.0, 50_000.1, 2.0),
        DesiredOrder(Side.SELL, 500_001, 4, 2, OrderKind.BOOST),
        OpenOrder("c1", Side.BUY, 500_000, 4),
        OrderDiff(("c1",), (DesiredOrder(Side.BUY, 499_990, 4, 0),)),
        RiskState(breaker_tripped=True),
        Lot(Decimal("0.004"), Decimal("50000.1"), 7, "f1"),
        BookUpdate("BTC_USDT_Perp", 7, (level,), (level,)),
        Trade("BTC_USDT_Perp", 7, Decimal("50000.1"), Decimal("0.002"), Side.BUY, "t1"),
        OrderRequest("BTC_USDT_Perp", Side.BUY, Decimal("50000.1"), Decimal("0.004"), "c1"),
        Fill("f1", "BTC_USDT_Perp", "c1", Side.BUY, Decimal(1), Decimal(2), Decimal("-0.01"), 7, False),
        BacktestConfig(latency_ms=250.0, seed=3),
    ]
    for value in values:
        copy = pickle.loads(pickle.dumps(value))
        assert copy == value and type(copy) is type(value)


def test_an_extension_older_than_its_source_is_reported_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "bots" / "engine"
    package.mkdir(parents=True)
    fresh, old = package / "fresh.py", package / "old.py"
    for source in (fresh, old):
        source.write_text("X = 1\n")
        os.utime(source, (1_000, 1_000))
    suffix = EXTENSION_SUFFIXES[0]
    (package / f"fresh{suffix}").write_bytes(b"")
    os.utime(package / f"fresh{suffix}", (2_000, 2_000))  # built after its source
    (package / f"old{suffix}").write_bytes(b"")
    os.utime(package / f"old{suffix}", (500, 500))  # built before its source changed
    (package / "plain.py").write_text("Y = 2\n")  # no extension: runs as Python
    monkeypatch.setattr(native, "_ROOT", tmp_path)
    assert native.compiled() == ["bots.engine.fresh", "bots.engine.old"]
    assert native.stale() == ["bots.engine.old"]

    # and a bot refuses to start on it, before reading its config or taking its lease
    with pytest.raises(ConfigError, match=r"bots\.engine\.old; run `make native`"):
        run_bot(BotProcess(tmp_path / "no-such-fleet.yaml", "b", None))
