"""A hypothesis state machine drives a live-mode worker (real grvt-pysdk) against the local GRVT exchange
and judges, on the exchange's side, what rests there whenever the worker is at rest.

Rules move the market (plain steps of the synthetic market, jumps of its mid, sweeps through our best
resting order so that it fills, fully or partly), switch the exchange's faults (latency, partial fills,
rejects, 5xx within the worker's retry budget) and publish config versions through the control plane
(grid layers, boost, entry anchor and its loss tolerance, max position, price tolerance and its
widening per layer). After each market move: `wait_quiescent` (the worker handled the newest book and
finished its calls), then `exchange_invariants.violations` on the exchange's state, positions valued
at that book's mid.

One exchange serves the whole module; each example trades on a fresh sub-account with its own ledger.
A failure message lists the example's rules (the worker's timing is not replayable, so hypothesis's
own replay of a failure may call it flaky: the listed rules are the reproduction).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bots.control import WorkerExit, merged_settings
from bots.engine.types import Side
from bots.store import Ledger
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from settings.models import BotSettings
from tests.integration.exchange_invariants import (
    ExchangeView,
    Limits,
    PublishedTop,
    exchange_view,
    published_top,
    violations,
)
from tests.integration.quiescence import wait_quiescent
from tests.integration.worker_harness import LoopThread, RunningWorker, start_worker, stop_worker

SYMBOL = "BTC_USDT_Perp"
TICK = Decimal("0.1")
MAX_SPREAD_TICKS = 3
# A quiet synthetic market (well under a tick of noise per step) with trades reaching a few ticks deep,
# so that the rules' jumps and sweeps decide most fills.
MARKET = {"sigma": 2e-6, "max_spread_ticks": MAX_SPREAD_TICKS, "trade_intensity_a": 5.0, "trade_decay_k": 2e5}
# Quotes a few ticks apart on a 65,000 USD market, so the touch, the clamps and the price tolerance all
# matter; losses never halt it (a halted bot rests nothing and proves nothing).
BASE: dict[str, Any] = {
    "symbol": SYMBOL,
    "name": "sm-bot",
    "strategy": {
        "spread_pct": 0.00003,
        "grid_layers": 3,
        "grid_spacing_pct": 0.00001,
        "order_size_usd": 200.0,
        "refresh_interval_s": 0.5,
        "kappa": 1e6,
        "price_tolerance_pct": 0.00002,
        "boost_offsets_pct": [0.000005, 0.00001],
        "volatility_window_ticks": 5,
        "loss_tolerance_neutral_pct": 0.0,
        "loss_tolerance_signal_pct": 0.0,
    },
    "risk": {
        "max_position_usd": 800.0,
        "max_loss_usd": 1e6,
        "max_drawdown_pct": 0.99,
        "max_book_age_s": 3600,
        "inventory_skew_factor": 5.0,  # a position pulls one side's quotes onto the touch: clamps bind
    },
}


def _tolerance(t: float) -> dict[str, Any]:
    return {"strategy": {"loss_tolerance_neutral_pct": t, "loss_tolerance_signal_pct": t}}


FLIPS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "grid_layers": st.integers(1, 4).map(lambda n: {"strategy": {"grid_layers": n}}),
    "signal_boost": st.booleans().map(lambda on: {"strategy": {"signal_boost": on}}),
    "entry_anchor_mode": st.booleans().map(lambda on: {"strategy": {"entry_anchor_mode": on}}),
    "loss_tolerance": st.sampled_from([0.0, 0.00002]).map(_tolerance),
    "max_position_usd": st.sampled_from([400.0, 800.0, 2000.0]).map(
        lambda u: {"risk": {"max_position_usd": u}}
    ),
    "price_tolerance_pct": st.sampled_from([0.0, 0.00002, 0.0002]).map(
        lambda t: {"strategy": {"price_tolerance_pct": t}}
    ),
    "price_tolerance_per_layer_pct": st.sampled_from([0.0, 0.00001, 0.0001]).map(
        lambda t: {"strategy": {"price_tolerance_per_layer_pct": t}}
    ),
}

# What this machine found before the single-consumer worker and the order diff's rules landed: quote
# cycles overlapping when one outlasted refresh_interval_s (two orders at one price, beyond the grid
# and max_position_usd), a failed cancel forgotten, `diff_orders` keeping an order for one target while
# placing another at its price, and kept orders beyond the entry anchor.


class WorkerAtTheExchange(RuleBasedStateMachine):
    server: GrvtSimServerThread  # set by the fixture: one exchange for the whole module
    loop: ClassVar[LoopThread]
    directory: ClassVar[Path]
    runs: ClassVar[Counter[str]] = Counter()  # what the checks met, over every example

    def __init__(self) -> None:
        super().__init__()
        self.running: RunningWorker | None = None
        self.control: Ledger | None = None
        exchange = {"mode": "live", "base_url": self.server.url, "request_timeout_s": 5.0}
        self.settings = BotSettings.model_validate(BASE | {"exchange": exchange})
        self.steps: list[str] = []  # this example's rules so far, for the failure message
        self.published: list[PublishedTop] = []  # the tops of the books published to this worker

    # ----- set-up and tear-down ----------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.runs["examples"] += 1
        path = self.directory / f"ledger-{self.runs['examples']}.db"
        # The worker's first book is the snapshot it subscribes to: the market as it is now.
        self.published.append(self.server.call(lambda: published_top(self.server.server.exchange, SYMBOL, 0)))
        self.running = self.loop.run(start_worker(self.settings, path))
        self.control = Ledger(path)  # the control plane's side of the worker's ledger
        self._move_and_check(steps=1)

    def teardown(self) -> None:
        self.server.faults.clear()
        try:
            if self.running is not None:
                exit_as = self.loop.run(stop_worker(self.running))
                left = self.server.call(self._view).ours
                assert (exit_as, left) == (WorkerExit.STOPPED, ()), "a stopped worker leaves nothing resting"
                self.runs["fills"] += self.server.call(lambda: len(self._account().fills))
        finally:
            if self.control is not None:
                self.control.close()

    # ----- the market --------------------------------------------------------------------------------

    @rule(steps=st.integers(1, 5))
    def step(self, steps: int) -> None:
        self.steps.append(f"step({steps})")
        self._move_and_check(steps=steps)

    @rule(ticks=st.integers(-40, 40))
    def jump(self, ticks: int) -> None:
        self.steps.append(f"jump({ticks})")
        self._move_and_check(steps=1, shift_ticks=ticks)

    @rule(side=st.sampled_from(Side), beyond_ticks=st.integers(0, 3))
    def sweep(self, side: Side, beyond_ticks: int) -> None:
        """Move the synthetic touch through our best order of `side` (when one rests): it fills."""
        self.steps.append(f"sweep({side.name}, {beyond_ticks})")
        ours = [o.price for o in self.server.call(self._view).ours if o.side is side]
        if not ours:
            self._move_and_check(steps=1)
            return
        gap = beyond_ticks + MAX_SPREAD_TICKS + 1  # the synthetic spread drawn next is at most that wide
        target = max(ours) - gap * TICK if side is Side.BUY else min(ours) + gap * TICK
        self._move_and_check(steps=1, to_mid=target)

    # ----- faults ------------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.0, 0.05, 0.15]))
    def latency(self, seconds: float) -> None:
        self.steps.append(f"latency({seconds})")
        self.server.faults.latency(seconds)

    @rule(fraction=st.sampled_from([None, 0.3, 0.5]))
    def partial_fills(self, fraction: float | None) -> None:
        self.steps.append(f"partial_fills({fraction})")
        self.server.faults.partial_fills(fraction)

    @rule(n=st.integers(1, 3), reason=st.sampled_from(["BELOW_MARGIN", 2081]))
    def reject_next(self, n: int, reason: str | int) -> None:
        self.steps.append(f"reject_next({n}, {reason!r})")
        self.server.faults.reject_next(n, reason)

    @rule(
        count=st.integers(1, 3),
        status=st.sampled_from([500, 503]),
        path=st.sampled_from([None, "create_order", "cancel_order"]),
    )
    def http_errors(self, count: int, status: int, path: str | None) -> None:
        """Fewer in a row than the worker's retry attempts (4): every call gets through in the end."""
        self.steps.append(f"http_errors({count}, {status}, {path!r})")
        self.server.faults.http_errors(status, count, path=path)

    # ----- settings ----------------------------------------------------------------------------------

    @precondition(lambda self: self.control is not None)
    @rule(data=st.data(), knob=st.sampled_from(sorted(FLIPS)))
    def flip(self, data: st.DataObject, knob: str) -> None:
        self.reconfigure(data.draw(FLIPS[knob], label=knob))

    def reconfigure(self, patch: dict[str, Any]) -> None:
        """Publish a config version for this bot, wait for its ack, then move the market once."""
        self.steps.append(f"reconfigure({patch})")
        assert self.control is not None
        version = self.control.publish_config(patch, [self.settings.name], author="state-machine")
        deadline = time.monotonic() + 10
        while not (acks := self.control.config_acks(version)):
            assert time.monotonic() < deadline, "the worker never answered a config version"
            time.sleep(0.02)
        assert [(a.bot, a.status) for a in acks] == [(self.settings.name, "applied")], acks
        self.settings = merged_settings(self.settings, patch)
        self._move_and_check(steps=1)

    # ----- the check ---------------------------------------------------------------------------------

    def _account(self) -> Any:
        assert self.running is not None
        return self.server.server.exchange.accounts.sub_accounts[self.running.sub_account_id]

    def _view(self) -> ExchangeView:
        assert self.running is not None
        return exchange_view(self.server.server.exchange, self.running.sub_account_id, SYMBOL)

    def _move_and_check(self, *, steps: int, shift_ticks: int = 0, to_mid: Decimal | None = None) -> None:
        """Move the market's mid, step it, wait until the worker is at rest, judge the exchange."""
        assert self.running is not None
        server = self.server.server

        def move() -> tuple[list[PublishedTop], int]:
            market = server.market(SYMBOL)
            mid = float(to_mid) if to_mid is not None else market.mid + shift_ticks * float(TICK)
            market.log_mid = math.log(mid)
            tops = []
            for step in range(steps, 0, -1):  # each step publishes a book: a fill notice may decide on it
                published_after_ns = time.time_ns()
                server.exchange.step(1)
                tops.append(published_top(server.exchange, SYMBOL, published_after_ns, rest=step == 1))
            return tops, len(self._account().fills)

        tops, fills = self.server.call(move)
        top = tops[-1]
        self.published += tops
        self.loop.run(wait_quiescent(self.running.worker, book_after_ns=top.ts_ns, fills_at_least=fills))
        view = self.server.call(self._view)
        self.runs.update(checks=1, resting=len(view.ours), positioned=view.position != 0)
        mid = (top.bid + top.ask) / 2
        found = violations(view, Limits.of(self.settings, mid), self.published)
        assert not found, (
            f"at rest after a book published at mid {mid}: {found}\nresting: {view.ours}\n"
            f"position {view.position} at {view.entry_price}\nrules: {'; '.join(self.steps)}"
        )


@pytest.fixture(scope="module")
def machine() -> Iterator[type[WorkerAtTheExchange]]:
    config = GrvtSimConfig(seed=7, step_interval_s=None, market_params=MARKET)
    loop = LoopThread()
    try:
        with GrvtSimServerThread(config) as server, tempfile.TemporaryDirectory() as directory:
            WorkerAtTheExchange.server, WorkerAtTheExchange.loop = server, loop
            WorkerAtTheExchange.directory = Path(directory)
            yield WorkerAtTheExchange
    finally:
        loop.stop()


def test_what_rests_at_the_exchange_stays_sane(machine: type[WorkerAtTheExchange]) -> None:
    machine.runs.clear()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=12,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    # The machine met what it is for: resting orders, positions, fills (not an idle bot).
    runs = machine.runs
    assert runs["checks"] >= 20 and runs["resting"] > 0 and runs["positioned"] > 0 and runs["fills"] > 0, runs


@pytest.fixture
def quiet_machine(machine: type[WorkerAtTheExchange]) -> Iterator[type[WorkerAtTheExchange]]:
    """The machine on an exchange of its own whose market prints no trades: only the rules fill."""
    config = GrvtSimConfig(seed=7, step_interval_s=None, market_params=MARKET | {"trade_intensity_a": 0.0})
    with GrvtSimServerThread(config) as server:
        yield type("QuietMarket", (machine,), {"server": server})


def test_kept_orders_obey_a_tighter_entry_anchor(quiet_machine: type[WorkerAtTheExchange]) -> None:
    """Long with exits clamped at entry * (1 - tolerance); the tolerance drops to 0: exits below the
    entry must go, even the ones within `price_tolerance_pct` of a new target."""
    state = quiet_machine()
    try:
        state.start()
        state.reconfigure(_tolerance(0.00002))
        state.reconfigure({"strategy": {"price_tolerance_pct": 0.0}})
        state.sweep(Side.BUY, 1)
        state.jump(-20)
        state.reconfigure({"strategy": {"price_tolerance_pct": 0.0002}})
        state.reconfigure(_tolerance(0.0))
    finally:
        state.teardown()
