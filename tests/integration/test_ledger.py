"""The ledger on real databases (SQLite file and PostgreSQL): exactness, idempotency, restart
recovery, the control plane and the one-worker lock."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.core.markouts import FillMarkout
from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.exchange.base import Fill, OrderStatus, OrderUpdate
from bots.store import Ledger, StoreError, normalise_url
from tests.integration.conftest import LedgerFactory

pytestmark = pytest.mark.integration

SYMBOL = "BTC_USDT_Perp"
D = Decimal
BUY, SELL = Side.BUY, Side.SELL
_ids = itertools.count()


def fill(side: Side, size: str, price: str, fee: str = "0", fill_id: str | None = None) -> Fill:
    n = next(_ids)
    return Fill(
        fill_id=fill_id or f"f{n}",
        symbol=SYMBOL,
        client_order_id=f"c{n}",
        side=side,
        price=D(price),
        size=D(size),
        fee=D(fee),
        ts_ns=1_000 + n,
        is_taker=n % 3 == 0,
    )


# Open long, add, partial close, full close, flip to short, add, partial and full short cover,
# with maker rebates and one taker fee; prices and sizes with awkward decimals.
SCENARIO = [
    (BUY, "0.002", "65000.1", "-0.0130002"),
    (BUY, "0.001", "65010.7", "-0.0065011"),
    (SELL, "0.001", "65100.3", "-0.0065100"),
    (SELL, "0.002", "64990.9", "0.0649909"),
    (BUY, "0.001", "64950.0", "-0.0064950"),
    (SELL, "0.003", "64980.2", "-0.0194941"),
    (SELL, "0.001", "65020.4", "-0.0065020"),
    (BUY, "0.002", "64900.8", "-0.0129802"),
    (BUY, "0.001", "64800.5", "-0.0064801"),
    (BUY, "0.004", "64850.1", "-0.0259400"),
]


def scenario_fills() -> list[Fill]:
    return [fill(side, size, price, fee) for side, size, price, fee in SCENARIO]


def test_fill_round_trip_is_exact(ledger: Ledger) -> None:
    original = fill(BUY, "0.001", "65000.1", "-0.0065001")
    assert ledger.record_fill("bot-a", original)
    (stored,) = ledger.fills("bot-a")
    assert stored == original
    assert (str(stored.price), str(stored.size), str(stored.fee)) == ("65000.1", "0.001", "-0.0065001")


def test_fills_are_idempotent(ledger: Ledger) -> None:
    first, second = fill(BUY, "1", "100"), fill(SELL, "1", "101")
    assert ledger.record_fill("bot-a", first) is True
    assert ledger.record_fill("bot-a", first) is False
    assert ledger.record_fills("bot-a", [first, second, second]) == 1
    # The fill id is unique per bot, not globally: another bot may see the same id.
    assert ledger.record_fill("bot-b", first) is True
    assert [f.fill_id for f in ledger.fills("bot-a")] == [first.fill_id, second.fill_id]
    assert ledger.fills("bot-a", since_ts_ns=second.ts_ns) == [second]


def test_too_many_decimals_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="decimals"):
        ledger.record_fill("bot-a", fill(BUY, "0.0000000000000000001", "100"))
    assert ledger.fills("bot-a") == []


def test_markouts_round_trip_once_per_fill_and_horizon(ledger: Ledger) -> None:
    buy = FillMarkout(
        "b1", SYMBOL, "f-1", BUY, D("65000.1"), D("0.003"), 5_000, 1.0, -1.5538, -0.030299999999999997
    )
    sell = FillMarkout("b1", SYMBOL, "f-2", SELL, D("65000.2"), D("0.001"), 6_000, 10.0, 1.5538, 0.0101)
    other = FillMarkout("b2", SYMBOL, "f-1", BUY, D("65000.1"), D("0.003"), 5_000, 1.0, 0.0, 0.0)
    assert ledger.record_markouts([buy, sell, other]) == 3
    assert ledger.record_markouts([buy, replace(buy, horizon_s=60.0)]) == 1  # a repeat changes nothing
    got = ledger.markouts("b1")
    assert got == [replace(buy, usd=-0.0303), replace(buy, horizon_s=60.0, usd=-0.0303), sell]
    assert ledger.markouts("b1", since_ts_ns=5_500, symbol=SYMBOL) == [sell]
    assert [m.horizon_s for m in ledger.markouts("b1", until_ts_ns=5_500)] == [1.0, 60.0]
    assert ledger.record_markouts([]) == 0


def test_restart_recovery(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    live = Portfolio(symbol=SYMBOL, starting_balance=D(10_000))
    for n, item in enumerate(scenario_fills()):
        assert ledger.record_fill("bot-a", item, cursor=f"cursor-{n}")
        live.apply(item)
        ledger.record_equity("bot-a", SYMBOL, live.equity(item.price), ts_ns=item.ts_ns)
    ledger.record_fill("bot-b", fill(BUY, "5", "10"))  # another bot's fills stay out
    ledger.set_state("bot-a", "breaker_latched", {"latched": True, "reason": "drawdown"})
    peak = ledger.peak_equity("bot-a")
    ledger.close()
    del ledger

    reopened = ledgers.open()
    restored = reopened.restore_portfolio("bot-a", SYMBOL, D(10_000))

    assert restored == live
    assert restored.position == live.position != 0
    assert restored.cash == live.cash
    assert list(restored.lots) == list(live.lots)
    assert restored.realized_pnl == live.realized_pnl
    assert restored.grid_profit == live.grid_profit
    assert restored.fees == live.fees
    assert reopened.peak_equity("bot-a") == peak == max(p.equity for p in reopened.equity_history("bot-a"))
    assert reopened.fill_cursor("bot-a") == f"cursor-{len(SCENARIO) - 1}"
    assert reopened.get_state("bot-a", "breaker_latched") == {"latched": True, "reason": "drawdown"}


def test_peak_equity_only_rises(ledger: Ledger) -> None:
    assert ledger.peak_equity("bot-a") is None
    assert ledger.record_equity("bot-a", SYMBOL, D("1000.5")) == D("1000.5")
    assert ledger.record_equity("bot-a", SYMBOL, D("990")) == D("1000.5")
    assert ledger.record_equity("bot-a", SYMBOL, D("1010.25")) == D("1010.25")
    assert ledger.peak_equity("bot-a") == D("1010.25")
    assert [p.peak_equity for p in ledger.equity_history("bot-a")] == [D("1000.5"), D("1000.5"), D("1010.25")]
    ledger.reset_peak_equity("bot-a", D(900))
    assert ledger.record_equity("bot-a", SYMBOL, D(950)) == D(950)


signed_fills = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 30), st.integers(9_000, 11_000)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=signed_fills)
def test_ledger_position_equals_signed_sum(ledger: Ledger, raw: list[tuple[Side, int, int]]) -> None:
    bot = f"prop-{uuid.uuid4().hex[:8]}"  # examples share the database, not the bot
    fills = [fill(side, str(D(lots).scaleb(-3)), str(D(ticks).scaleb(-1))) for side, lots, ticks in raw]
    assert ledger.record_fills(bot, fills) == len(fills)
    expected = sum((f.size * f.side.sign for f in fills), D(0))
    restored = ledger.restore_portfolio(bot, SYMBOL, D(0))
    assert restored.position == expected
    assert restored == Portfolio.replay(fills, symbol=SYMBOL)


def test_orders_history_and_latest(ledger: Ledger) -> None:
    def state(coid: str, status: OrderStatus, filled: str = "0", reason: str | None = None) -> OrderUpdate:
        price, size = D("65000.1"), D("0.002")
        return OrderUpdate(SYMBOL, coid, "x-" + coid, BUY, price, size, D(filled), status, reason, 1)

    ledger.record_order("bot-a", state("c1", OrderStatus.PENDING))
    ledger.record_order("bot-a", state("c1", OrderStatus.OPEN))
    ledger.record_order("bot-a", state("c1", OrderStatus.FILLED, "0.002"))
    ledger.record_order("bot-a", state("c2", OrderStatus.OPEN))
    ledger.record_order("bot-a", state("c3", OrderStatus.REJECTED, reason="post-only would cross"))
    ledger.record_order("bot-b", state("c4", OrderStatus.OPEN))

    assert [o.status for o in ledger.order_history("bot-a", "c1")] == ["pending", "open", "filled"]
    assert ledger.order_history("bot-a", "c1")[-1].filled_size == D("0.002")
    latest = {o.client_order_id: o for o in ledger.latest_orders("bot-a")}
    assert {k: v.status for k, v in latest.items()} == {"c1": "filled", "c2": "open", "c3": "rejected"}
    assert latest["c3"].reason == "post-only would cross"
    assert [o.client_order_id for o in ledger.latest_orders("bot-a", open_only=True)] == ["c2"]


def test_snapshots_features_and_state(ledger: Ledger) -> None:
    portfolio = Portfolio.replay(scenario_fills()[:3], starting_balance=D(1000), symbol=SYMBOL)
    ledger.snapshot_position("bot-a", portfolio, mark=D("65050.5"), ts_ns=5)
    snapshot = ledger.latest_position_snapshot("bot-a")
    assert snapshot is not None
    assert snapshot["position"] == portfolio.position
    assert portfolio.entry_price is not None
    assert snapshot["entry_price"] == portfolio.entry_price.quantize(D("1e-18"))
    assert snapshot["grid_profit"] == portfolio.grid_profit

    ledger.record_features("bot-a", SYMBOL, 10, {"mid": 65000.15, "spread": 0.1, "sigma": 1e-4})
    ledger.record_features("bot-a", SYMBOL, 20, {"mid": 65001.0, "imbalance": -0.25})
    rows = ledger.features(SYMBOL, since_ts_ns=15)
    assert len(rows) == 1
    assert rows[0].values["mid"] == 65001.0
    assert rows[0].values["imbalance"] == -0.25
    assert rows[0].values["sigma"] is None
    latest = ledger.last_features(SYMBOL)
    assert latest is not None and (latest.ts_ns, latest.values["mid"]) == (20, 65001.0)
    assert ledger.last_features(SYMBOL, since_ts_ns=21) is None
    assert ledger.last_features("ETH_USDT_Perp") is None
    with pytest.raises(ValueError, match="unknown features"):
        ledger.record_features("bot-a", SYMBOL, 30, {"alpha": 1.0})

    assert ledger.get_state("bot-a", "missing", default=7) == 7
    ledger.set_state("bot-a", "k", [1, "two"])
    ledger.set_state("bot-a", "k", {"three": 3})
    assert ledger.get_state("bot-a", "k") == {"three": 3}


def test_command_flow(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    stop = ledger.enqueue_command("bot-a", "stop", {"why": "maintenance"}, author="ops")
    everyone = ledger.enqueue_command("*", "reload_config", author="ops", ttl_s=60)
    other = ledger.enqueue_command("bot-b", "restart", author="ops")
    with pytest.raises(ValueError, match="unknown command"):
        ledger.enqueue_command("bot-a", "explode")

    assert [c.id for c in ledger.pending_commands("bot-a")] == [stop, everyone]
    assert ledger.pending_commands("bot-a")[0].payload == {"why": "maintenance"}
    assert [c.id for c in ledger.pending_commands("bot-b")] == [everyone, other]

    ledger.ack_command(stop, "stopped, 3 orders cancelled")
    with pytest.raises(ValueError, match="broadcast"):
        ledger.ack_command(everyone, "ok")
    ledger.ack_command(everyone, "reloaded v3", bot="bot-a")
    ledger.ack_command(everyone, "ignored", bot="bot-a")  # a second ack changes nothing
    ledger.ack_command(other, "config invalid", ok=False)

    assert ledger.pending_commands("bot-a") == []
    assert [c.id for c in ledger.pending_commands("bot-b")] == [everyone]
    done = ledger.command(stop)
    assert (done.status, done.outcome, done.author) == ("done", "stopped, 3 orders cancelled", "ops")
    assert done.acked_at_ns is not None
    assert ledger.command(other).status == "failed"
    assert [(a.bot, a.outcome) for a in ledger.command_acks(everyone)] == [("bot-a", "reloaded v3")]
    assert [c.id for c in ledger.recent_commands()] == [other, everyone, stop]

    ledgers.clock.advance(61)  # the broadcast expired before bot-b saw it
    assert ledger.pending_commands("bot-b") == []
    assert ledgers.open().command(stop).outcome == "stopped, 3 orders cancelled"  # durable


def pending_version(ledger: Ledger, bot: str) -> int | None:
    pending = ledger.pending_config(bot)
    return None if pending is None else pending.version


def test_config_version_flow(ledger: Ledger) -> None:
    v1 = ledger.publish_config({"strategy": {"gamma": 1.0}}, ["bot-a", "bot-b"], author="flow")
    assert ledger.pending_config("bot-c") is None
    pending = ledger.pending_config("bot-a")
    assert pending is not None
    assert (pending.version, pending.targets) == (v1, ("bot-a", "bot-b"))
    assert pending.config == {"strategy": {"gamma": 1.0}}

    ledger.ack_config(v1, "bot-a", "applied")
    ledger.ack_config(v1, "bot-b", "rejected", "gamma out of range")
    assert ledger.pending_config("bot-a") is None
    assert ledger.pending_config("bot-b") is None
    assert [(a.bot, a.status, a.reason) for a in ledger.config_acks(v1)] == [
        ("bot-a", "applied", None),
        ("bot-b", "rejected", "gamma out of range"),
    ]
    with pytest.raises(ValueError, match="reason"):
        ledger.ack_config(v1, "bot-b", "rejected")

    v2 = ledger.publish_config('{"strategy": {"gamma": 2.0}}', ["*"], author="flow")
    v3 = ledger.publish_config({"strategy": {"gamma": 3.0}}, ["bot-b"], author="flow")
    assert v1 < v2 < v3
    assert pending_version(ledger, "bot-a") == v2
    assert pending_version(ledger, "bot-b") == v3  # v2 superseded before bot-b answered it
    assert pending_version(ledger, "bot-c") == v2

    applied = ledger.applied_config("bot-a")
    assert applied is not None
    assert applied.version == v1
    ledger.ack_config(v2, "bot-a", "applied")
    applied = ledger.applied_config("bot-a")
    assert applied is not None
    assert applied.version == v2
    with pytest.raises(KeyError):
        ledger.ack_config(999, "bot-a", "applied")
    with pytest.raises(ValueError):
        ledger.publish_config({"a": 1}, [])


def test_one_worker_per_account_symbol(ledgers: LedgerFactory) -> None:
    first = ledgers.open(owner="worker-1")
    second = ledgers.open(owner="worker-2")

    assert first.acquire_lock("acct", SYMBOL)
    assert first.acquire_lock("acct", SYMBOL)  # re-entrant for the holder
    assert not second.acquire_lock("acct", SYMBOL)
    assert second.acquire_lock("acct", "ETH_USDT_Perp")  # another symbol is another lease
    assert not second.heartbeat_lock("acct", SYMBOL)
    assert not second.release_lock("acct", SYMBOL)

    ledgers.clock.advance(20)
    assert first.heartbeat_lock("acct", SYMBOL)
    ledgers.clock.advance(20)  # 20 s since the heartbeat: still fresh
    assert not second.acquire_lock("acct", SYMBOL)

    ledgers.clock.advance(11)  # 31 s: stale, reclaimable
    assert second.acquire_lock("acct", SYMBOL)
    holder = second.lock_holder("acct", SYMBOL)
    assert holder is not None
    assert holder.owner == "worker-2"
    assert not first.heartbeat_lock("acct", SYMBOL)  # the old holder learns it lost the lease
    assert not first.acquire_lock("acct", SYMBOL)

    assert second.release_lock("acct", SYMBOL)
    assert first.lock_holder("acct", SYMBOL) is None
    assert first.acquire_lock("acct", SYMBOL)


def test_lock_race_has_one_winner(ledgers: LedgerFactory) -> None:
    contenders = [ledgers.open(owner=f"worker-{n}") for n in range(6)]
    barrier = threading.Barrier(len(contenders))
    won: list[bool] = []

    def contend(ledger: Ledger) -> None:
        barrier.wait()
        won.append(ledger.acquire_lock("acct", SYMBOL))

    threads = [threading.Thread(target=contend, args=(ledger,)) for ledger in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == [False] * (len(contenders) - 1) + [True]


def test_lock_of_dead_local_process_is_reclaimed(ledgers: LedgerFactory) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    crashed = ledgers.open(owner="crashed-worker")
    crashed.pid = child.pid  # as if that (now gone) process had taken the lease
    assert crashed.acquire_lock("acct", SYMBOL)

    successor = ledgers.open(owner="new-worker")
    assert successor.acquire_lock("acct", SYMBOL)  # no need to wait for the heartbeat to go stale
    assert not ledgers.open(owner="third").acquire_lock("acct", SYMBOL)  # a live holder keeps it


def test_sqlite_is_wal_and_synchronous_full(tmp_path: Path) -> None:
    with Ledger(tmp_path / "sub" / "ledger.sqlite") as ledger, ledger.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_url_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalise_url("postgresql://u:secret@db:5432/fleet").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@db/fleet").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@db/fleet").database == "fleet"
    path = tmp_path / "x" / "ledger.sqlite"
    assert normalise_url(str(path)).database == str(path)
    assert path.parent.is_dir()
    monkeypatch.setenv("MMFLEET_DATABASE_URL", "sqlite:///" + str(tmp_path / "env.sqlite"))
    assert normalise_url().database == str(tmp_path / "env.sqlite")
    with pytest.raises(StoreError, match="unsupported"):
        normalise_url("mysql://u@db/fleet")
    with pytest.raises(StoreError, match="schema"):
        Ledger(tmp_path / "y.sqlite", schema="nope")


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open the ledger") as caught:
        Ledger("postgresql://u:secret@127.0.0.1:1/none")
    assert "secret" not in str(caught.value)
