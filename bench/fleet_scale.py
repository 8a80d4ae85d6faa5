"""Fleet scale: N sim bots under the real supervisor, each at 10 book updates/s, for a fixed time.

Per fleet size and ledger (SQLite file, or PostgreSQL with `--postgres URL`): CPU per book event per
bot (CPU seconds of the bot processes from /proc over the book events they decided on, from their own
`tick_to_quote` histograms), the fleet's CPU share of the machine, RSS per worker, p99 tick-to-quote,
and the latency from a `stop` command entering the store to the bot's ack (what `mmfleet ctl stop`
waits for). The baseline is the smallest fleet of the same run: the ratio is CPU per bot at N against
CPU per bot at the smallest N (1.0 = perfectly linear); the floor is what one bare wake-up of an event
loop costs in CPU on this machine, measured first in the same process (each book event wakes a bot
once), and what the per-book work costs warm: one bot with its books back to back (`sim.speed` 1000).
Floor + warm work is the least a bot that wakes once per book could cost here, however lean its
code. Targets: <= 0.3 ms CPU per book event, 100 bots on 2 cores under 50% CPU share, <= 100 MB RSS
each, stop -> ack under 1 s. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import uvloop
import yaml

from bots.ops.dashboard import parse_exposition
from bots.store import Ledger

SYMBOLS = ("BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_SAMPLES = 5  # bots asked to stop, one after the other, for the stop -> ack figure
WARM_SPEED = 1000.0  # sim.speed's maximum: books back to back
WARM_SECONDS = 20.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def histograms(ports: list[int]) -> dict[float, float]:
    """The summed tick_to_quote histogram buckets (upper bound -> cumulative count) of the bots."""
    buckets: dict[float, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            samples = parse_exposition(response.read().decode())
        for labels, value in samples["mmfleet_tick_to_quote_seconds_bucket"]:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    return buckets


def answers(port: int, path: str) -> bool:
    """Whether the bot's HTTP port answers `path` with 200 (/metrics: up; /readyz: fit to trade)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def p99_seconds(buckets: dict[float, float]) -> float:
    """p99 (upper bucket bound, as Prometheus would)."""
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    return next(b for b in bounds if buckets[b] >= 0.99 * count)


def fresh_postgres(url: str, name: str) -> str:
    """A new, empty database `name` on the server of `url` (dropped first if a run left it); its URL."""
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def stop_ack_latencies(ledger_url: str, names: list[str]) -> list[float]:
    """Seconds from a `stop` command's row to the bot's ack, for each of `names` in turn."""
    latencies = []
    with Ledger(ledger_url) as ledger:
        for name in names:
            command_id = ledger.enqueue_command(name, "stop", author="bench")
            created = ledger.command(command_id).created_at_ns
            deadline = time.monotonic() + 30
            while not (acks := ledger.command_acks(command_id)) and time.monotonic() < deadline:
                time.sleep(0.01)
            latencies.append((acks[0].acked_at_ns - created) / 1e9 if acks else float("inf"))
    return latencies


def wakeup_floor_us(seconds: float = 5.0, rate_hz: float = 10.0) -> float:
    """CPU microseconds one bare event-loop timer wake-up costs here (uvloop, as the bots run): the
    floor under a bot's CPU per book event, since every book wakes its loop once. On a VM this is
    tens to hundreds of microseconds of accounted CPU for waking up alone."""

    async def tick() -> float:
        loop = asyncio.get_running_loop()
        start = time.thread_time()
        due = loop.time()
        for _ in range(round(seconds * rate_hz)):
            due += 1 / rate_hz
            await asyncio.sleep(due - loop.time())
        return (time.thread_time() - start) / (seconds * rate_hz) * 1e6

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(tick())


def run_fleet(
    n: int, seconds: float, workdir: Path, postgres: str | None, *, speed: float = 1.0
) -> dict[str, Any]:
    """`n` sim bots at `speed` times market time (1: 10 book events a second) for `seconds`."""
    label = f"fleet{n}" if speed == 1.0 else f"fleet{n}x{speed:g}"
    data_dir = workdir / label
    config = workdir / f"{label}.yaml"
    base_port = 19_000 + 100 * n + (50 if postgres else 0) + (25 if speed != 1.0 else 0)
    bots: list[dict[str, Any]] = [
        {
            "symbol": SYMBOLS[i % 3],
            "name": f"{SYMBOLS[i % 3].split('_')[0].lower()}-{i}",
            "sim": {"speed": speed},
        }
        for i in range(n)
    ]
    fleet: dict[str, Any] = {"data_dir": str(data_dir), "metrics_base_port": base_port, "bots": bots}
    if postgres is not None:
        fleet["database_url"] = fresh_postgres(postgres, f"mmfleet_bench_{n}")
    config.write_text(yaml.safe_dump(fleet))
    ledger_url = fleet.get("database_url") or f"sqlite:///{data_dir / 'ledger.db'}"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "fleet", "up", "--config", str(config), "--no-table"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ports = [base_port + i for i in range(n)]
    try:
        status_file = data_dir / "fleet" / "status.json"
        t0 = time.monotonic()
        deadline = t0 + 120 + 4 * n  # start-up is mostly imports: about a CPU second per bot
        pids: list[int] = []
        while time.monotonic() < deadline:
            if status_file.exists():
                rows = json.loads(status_file.read_text())["bots"]
                pids = [r["pid"] for r in rows if r["pid"] and r["state"] == "running"]
                if len(pids) == n:
                    break
            time.sleep(0.5)
        while time.monotonic() < deadline and not all(answers(port, "/metrics") for port in ports):
            time.sleep(0.5)
        up = sum(answers(port, "/metrics") for port in ports)
        if len(pids) != n or up != n:
            waited = time.monotonic() - t0
            raise RuntimeError(f"{len(pids)} of {n} bots running, {up} answering, after {waited:.0f} s")
        time.sleep(10 + n / 10)  # imports and start-up done; measure the steady state only
        pids = [r["pid"] for r in json.loads(status_file.read_text())["bots"]]  # after any restart
        start_cpu = {pid: cpu_seconds(pid) for pid in pids}
        start_events = histograms(ports)
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cpu = sum(cpu_seconds(pid) - start_cpu[pid] for pid in pids)
        end_events = histograms(ports)
        rss = [rss_mb(pid) for pid in pids]
        ready = sum(answers(port, "/readyz") for port in ports)  # fresh data, exchange answering
        window = {bound: end_events[bound] - start_events.get(bound, 0.0) for bound in end_events}
        events = max(window.values())
        stops = stop_ack_latencies(ledger_url, [b["name"] for b in bots[:STOP_SAMPLES]])
    finally:
        supervisor.send_signal(signal.SIGINT)
        supervisor.wait(timeout=120 + n)
    cores = os.cpu_count() or 1
    return {
        "ledger": "postgresql" if postgres else "sqlite",
        "bots": n,
        "cpu_ms_per_book_event": cpu * 1e3 / events if events else float("nan"),
        "book_events_per_s_per_bot": events / elapsed / n,
        "cpu_share": cpu / elapsed / cores,
        "cpu_per_bot": cpu / elapsed / n,
        "rss_mb_max": max(rss),
        "rss_mb_mean": sum(rss) / len(rss),
        "p99_tick_to_quote_us": p99_seconds(window) * 1e6,
        "stop_ack_s_median": statistics.median(stops),
        "stop_ack_s_max": max(stops),
        "ready_bots": ready,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100], help="SQLite fleet sizes")
    parser.add_argument(
        "--postgres-sizes", type=int, nargs="*", default=[10, 50], help="PostgreSQL fleet sizes"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MMFLEET_BENCH_POSTGRES"),
        help="a PostgreSQL server URL (a database per fleet is created on it); none: SQLite only",
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    runs: list[tuple[int, str | None]] = [(n, None) for n in args.sizes]
    if args.postgres:
        runs += [(n, args.postgres) for n in args.postgres_sizes]
    results = []
    floor_us = wakeup_floor_us()
    print(f"one bare event-loop wake-up costs {floor_us:.0f} us of CPU here (10 a second a bot)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        # the same bot with its books back to back (its loop hardly ever sleeps): what the per-book
        # work costs warm; at 10 books a second each book pays the wake-up and runs this work cold
        warm = run_fleet(1, min(args.seconds, WARM_SECONDS), Path(tmp), None, speed=WARM_SPEED)
        warm_ms = warm["cpu_ms_per_book_event"]
        print(f"the per-book work, warm (books back to back): {warm_ms:.3f} ms of CPU", flush=True)
        for n, postgres in runs:
            try:
                results.append(run_fleet(n, args.seconds, Path(tmp), postgres))
            except RuntimeError as exc:  # a fleet this machine cannot start: the others still count
                print(f"{n} bots ({'postgresql' if postgres else 'sqlite'}): {exc}", flush=True)
                continue
            print(json.dumps(results[-1]), flush=True)
    if not results:
        raise SystemExit("no fleet came up")
    base = results[0]["cpu_per_bot"]
    header = (
        "ledger",
        "bots",
        "ms/event",
        "CPU share",
        "CPU/bot",
        "ratio",
        "RSS max MB",
        "p99 us",
        "stop->ack",
    )
    widths = (11, 5, 9, 10, 9, 7, 11, 8, 10)
    print("".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for r in results:
        r["cpu_per_bot_ratio"] = r["cpu_per_bot"] / base
        print(
            f"{r['ledger']:>11}{r['bots']:>5}{r['cpu_ms_per_book_event']:>9.3f}{r['cpu_share']:>10.1%}"
            f"{r['cpu_per_bot']:>9.2%}{r['cpu_per_bot_ratio']:>7.2f}{r['rss_mb_max']:>11.1f}"
            f"{r['p99_tick_to_quote_us']:>8.0f}{r['stop_ack_s_max']:>9.2f}s"
        )
    print(
        "targets: <= 0.3 ms CPU per book event; 100 bots under 50% CPU share of 2 cores; <= 100 MB RSS"
        " per worker; stop -> ack under 1 s"
    )
    summary = [{k: v if isinstance(v, str) else round(v, 4) for k, v in r.items()} for r in results]
    floor = {"wakeup_floor_us": round(floor_us, 1), "warm_ms_per_book_event": round(warm_ms, 4)}
    print(json.dumps({**floor, "fleets": summary}))


if __name__ == "__main__":
    main()
