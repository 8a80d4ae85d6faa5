"""Soak: a fleet trading live on our local GRVT-compatible exchange, under chaos, then audited.

`mmfleet fleet up` runs one bot per symbol (each on its own sub-account, real grvt-pysdk) against a
`GrvtSimServerThread` in this process, for `--minutes` (default 10). Every few seconds one thing goes
wrong: a bot is SIGKILLed (the supervisor restarts it), SIGSTOPped for a few seconds, the exchange
fails (5xx bursts, latency, rejects, dropped websockets, partial fills), or an operator command arrives
(stop, start, stop_close). Bot RSS is sampled from /proc throughout. At the end the fleet is stopped
and the exchange's own records are compared with the ledger's:

- lost fills (at the exchange, not in the ledger), phantom fills (in the ledger only), and a ledger
  position that is not the exchange's;
- orphan orders (resting at the exchange after the fleet stopped);
- foreign orders (an order on a bot's sub-account whose client order id is not that bot's of this
  store: placed or touched by another bot);
- limit breaches (a position beyond `max_position_usd` at the fill price, 1% slack for the mid);
- a fleet that did not trade (no fill, or a supervisor that failed): it would prove nothing;
- a bot the supervisor marked failed (a crash loop): each bot is killed at most once in 80 s, inside
  the supervisor's policy (5 crashes in 300 s), so none may be.

Every violation count must be 0. Prints the figures (the supervisor's stderr and the bots' logs stay
in the run's directory); the last line is JSON. Not part of `make test` (it runs for minutes); `make
bench` runs it with `--minutes 2`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from eth_account import Account

from bots.core.orders import Owner, bot_tag, owner_of, store_tag
from bots.store import Ledger
from bots.venues.grvt.server.app import GrvtSimServerThread
from bots.venues.grvt.server.config import GrvtSimConfig
from settings import load_fleet

SYMBOLS = ("BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp")
_MAX_POSITION_USD = 1_500.0
_SLACK = 1.01
_KILL_SPACING_S = 80.0
_RSS_SETTLE_S = 60.0  # RSS growth is measured once a process has warmed up (imports, first books)


def _fleet_file(directory: Path, url: str) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A fleet file of live bots on `url`, the environment holding each bot's credentials, and each
    bot's sub-account id."""
    env: dict[str, str] = {}
    accounts: dict[str, str] = {}
    bots = []
    for index, symbol in enumerate(SYMBOLS):
        prefix = f"SOAK_{index}"
        env[f"{prefix}_API_KEY"] = f"soak-key-{index}-{random.getrandbits(32):x}"
        env[f"{prefix}_PRIVATE_KEY"] = Account.create().key.hex()
        env[f"{prefix}_ACCOUNT"] = accounts[symbol] = str(30_000_001 + index)
        credentials = {
            "api_key_env": f"{prefix}_API_KEY",
            "private_key_env": f"{prefix}_PRIVATE_KEY",
            "trading_account_id_env": f"{prefix}_ACCOUNT",
        }
        bots.append({"symbol": symbol, "exchange": {"credentials": credentials}})
    fleet = {
        "data_dir": str(directory / "data"),
        "metrics_base_port": _free_port_base(),
        "defaults": {
            "exchange": {"mode": "live", "base_url": url, "request_timeout_s": 2.0},
            "strategy": {"spread_pct": 0.0005, "grid_layers": 3, "grid_spacing_pct": 0.0003,
                         "order_size_usd": 100.0, "refresh_interval_s": 0.5},
            "risk": {"max_position_usd": _MAX_POSITION_USD, "max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5},
        },
        "bots": bots,
    }  # fmt: skip
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path, env, accounts


def _free_port_base() -> int:
    """A base port with len(SYMBOLS) free ports after it (the bots' /metrics)."""
    while True:
        base = random.randint(20_000, 60_000)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + len(SYMBOLS)):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base


def _status(data_dir: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((data_dir / "fleet" / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data


def _pids(data_dir: Path) -> dict[str, int]:
    bots = _status(data_dir).get("bots", [])
    return {b["name"]: b["pid"] for b in bots if b.get("pid")}


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Chaos:
    """One random mishap at a time, each counted."""

    def __init__(
        self, server: GrvtSimServerThread, ledger: Ledger, data_dir: Path, rng: random.Random
    ) -> None:
        self.server, self.ledger, self.data_dir, self.rng = server, ledger, data_dir, rng
        self.counts: dict[str, int] = defaultdict(int)
        self.killed_at: dict[str, float] = {}  # bot -> monotonic time of its last SIGKILL

    def strike(self) -> None:
        kind = self.rng.choice(["kill", "freeze", "fault", "fault", "command"])
        pids = _pids(self.data_dir)
        now = time.monotonic()
        # The supervisor marks a bot that crashed 5 times in 300 s failed (a crash loop, left down):
        # a bot is killed at most once in _KILL_SPACING_S, so the chaos stays inside that policy.
        killable = [bot for bot in pids if now - self.killed_at.get(bot, -_KILL_SPACING_S) >= _KILL_SPACING_S]
        if (kind == "kill" and not killable) or (kind == "freeze" and not pids):
            kind = "fault"
        if kind == "kill":
            bot = self.rng.choice(killable)
            self.killed_at[bot] = now
            os.kill(pids[bot], signal.SIGKILL)
        elif kind == "freeze":
            pid = self.rng.choice(list(pids.values()))
            os.kill(pid, signal.SIGSTOP)
            time.sleep(self.rng.uniform(1.0, 4.0))
            os.kill(pid, signal.SIGCONT)
        elif kind == "fault":
            self._fault()
            return
        else:
            bot = self.rng.choice(SYMBOLS)
            command = self.rng.choice(["stop", "start", "stop_close", "start"])
            self.ledger.enqueue_command(bot, command, author="soak")
            kind = f"command:{command}"
        self.counts[kind] += 1

    def _fault(self) -> None:
        faults = self.server.faults
        which = self.rng.choice(["5xx", "latency", "reject", "websockets", "partial"])
        if which == "5xx":
            faults.http_errors(503, self.rng.randint(1, 6))
        elif which == "latency":
            faults.latency(self.rng.uniform(0.2, 2.5))
        elif which == "reject":
            reasons: list[str | int] = ["BELOW_MARGIN", 2081]  # a reject status, a GRVT error code
            faults.reject_next(self.rng.randint(1, 3), self.rng.choice(reasons))
        elif which == "websockets":
            faults.drop_websockets(refuse_s=self.rng.uniform(0.5, 3.0))
        else:
            faults.partial_fills(0.5)
        time.sleep(self.rng.uniform(1.0, 4.0))
        faults.clear()
        self.counts[f"fault:{which}"] += 1


def _audit(server: GrvtSimServerThread, ledger: Ledger, accounts: dict[str, str]) -> dict[str, int]:
    """The exchange's records against the ledger's, per bot (see the module docstring)."""
    violations: dict[str, int] = defaultdict(int)

    def snapshot() -> dict[str, Any]:
        subs = server.server.exchange.accounts.sub_accounts
        out: dict[str, Any] = {}
        for bot, account_id in accounts.items():
            sub = subs.get(account_id)
            out[bot] = (
                ([dict(f) for f in sub.fills if f["instrument"] == bot],
                 [(o.client_order_id, o.instrument) for o in sub.active.values()],
                 [o.client_order_id for o in [*sub.active.values(), *sub.finished.values()]])
                if sub is not None else ([], [], [])
            )  # fmt: skip
        return out

    for bot, (fills, active, every_order) in server.call(snapshot).items():
        at_exchange = {f"{f['trade_id']}-{f['order_id']}" for f in fills}
        in_ledger = {fill.fill_id for fill in ledger.fills(bot) if not fill.fill_id.startswith("reconcile-")}
        violations["lost_fills"] += len(at_exchange - in_ledger)
        violations["phantom_fills"] += len(in_ledger - at_exchange)
        position = sum((Decimal(f["size"]) * (1 if f["is_buyer"] else -1) for f in fills), Decimal(0))
        ledger_position = sum((f.size * f.side.sign for f in ledger.fills(bot)), Decimal(0))
        violations["position_mismatches"] += int(position != ledger_position)
        violations["orphan_orders"] += len(active)
        owner = Owner(store_tag(ledger.store_id()), bot_tag(bot))
        violations["foreign_orders"] += sum(1 for cid in every_order if owner_of(cid) != owner)
        running = Decimal(0)
        for fill in sorted(fills, key=lambda f: int(f["event_time"])):
            running += Decimal(fill["size"]) * (1 if fill["is_buyer"] else -1)
            if float(abs(running) * Decimal(fill["price"])) > _MAX_POSITION_USD * _SLACK:
                violations["limit_breaches"] += 1
    return dict(violations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pause-s", type=float, nargs=2, default=(2.0, 6.0), help="between two mishaps")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    random.seed(args.seed)
    directory = Path(tempfile.mkdtemp(prefix="mmfleet-soak-"))
    config = GrvtSimConfig(
        seed=args.seed, step_interval_s=0.1, market_params={"trade_intensity_a": 20.0, "trade_decay_k": 400.0}
    )
    server = GrvtSimServerThread(config)
    url = server.start()
    path, credentials, accounts = _fleet_file(directory, url)
    fleet = load_fleet(path)
    data_dir = fleet.data_dir
    ledger = Ledger(fleet.ledger_url())
    env = {**os.environ, **credentials}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "fleet", "up", "--config", str(path), "--no-table",
         "--i-understand-live-trading"],
        env=env, stdout=subprocess.DEVNULL, stderr=(directory / "supervisor.err").open("w"),
    )  # fmt: skip
    chaos = Chaos(server, ledger, data_dir, rng)
    rss: dict[int, list[tuple[float, float]]] = defaultdict(list)  # pid -> (seconds, MB) once settled
    first_seen: dict[int, float] = {}
    started = time.monotonic()
    deadline = started + args.minutes * 60
    time.sleep(5.0)  # the fleet starts, logs in and quotes
    while time.monotonic() < deadline:
        for pid in _pids(data_dir).values():
            seconds = time.monotonic() - started
            if seconds - first_seen.setdefault(pid, seconds) >= _RSS_SETTLE_S and (mb := _rss_mb(pid)):
                rss[pid].append((seconds, mb))
        time.sleep(rng.uniform(*args.pause_s))
        chaos.strike()
    for bot in accounts:  # every bot enabled again: the fleet's own shutdown must leave nothing resting
        ledger.enqueue_command(bot, "start", author="soak")
    time.sleep(3.0)
    supervisor.send_signal(signal.SIGINT)
    supervisor.wait(timeout=120)
    status = _status(data_dir)
    violations = _audit(server, ledger, accounts)
    fills = sum(len(ledger.fills(bot)) for bot in accounts)
    if fills == 0 or supervisor.returncode != 0:  # a fleet that never traded proves nothing
        violations["fleet_did_not_trade"] = 1
    # a bot the supervisor gave up on was left down with what it had resting: within the chaos's
    # policy that must not happen
    violations["bots_failed"] = sum(1 for b in status.get("bots", []) if b.get("state") == "failed")
    growth = [
        (samples[-1][1] - samples[0][1]) / ((samples[-1][0] - samples[0][0]) / 3600)
        for samples in rss.values()
        if len(samples) > 2 and samples[-1][0] - samples[0][0] >= 60
    ]
    restarts = sum(b.get("restarts", 0) for b in status.get("bots", []))
    server.stop()
    ledger.close()
    print(f"soak: {args.minutes:g} min, {len(accounts)} live bots on the local exchange, data in {directory}")
    print(f"  mishaps: {dict(sorted(chaos.counts.items()))}")
    print(f"  fills {fills}, restarts {restarts}, RSS growth max {max(growth, default=0.0):.1f} MB/h")
    for name in ("lost_fills", "phantom_fills", "position_mismatches", "orphan_orders", "foreign_orders",
                 "limit_breaches", "fleet_did_not_trade", "bots_failed"):  # fmt: skip
        print(f"  {name:<20} {violations.get(name, 0)}")
    print(
        json.dumps(
            {
                "minutes": args.minutes,
                "fills": fills,
                "restarts": restarts,
                "mishaps": dict(sorted(chaos.counts.items())),
                "rss_growth_mb_per_h_max": round(max(growth, default=0.0), 1),
                "violations": sum(violations.values()),
                **{name: violations.get(name, 0) for name in sorted(violations)},
            }
        )
    )
    sys.exit(1 if sum(violations.values()) else 0)


if __name__ == "__main__":
    main()
