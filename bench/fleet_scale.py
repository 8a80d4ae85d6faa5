"""Fleet scale: N sim bots under the real supervisor, each at 10 book updates/s, for a fixed time.

Per fleet size: RSS per worker, total CPU share of the machine, and p99 tick-to-quote from the
workers' own histograms. The baseline is the smallest fleet of the same run: the ratio is CPU per bot
at N against CPU per bot at the smallest N (1.0 = perfectly linear). Targets: 20 bots on 2 cores under
50% CPU, <= 100 MB RSS each. Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bots.ops.dashboard import parse_exposition

SYMBOLS = ("BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p99_seconds(ports: list[int]) -> float:
    """p99 of the summed tick_to_quote histograms (upper bucket bound, as Prometheus would)."""
    buckets: dict[float, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            samples = parse_exposition(response.read().decode())
        for labels, value in samples["mmfleet_tick_to_quote_seconds_bucket"]:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    return next(b for b in bounds if buckets[b] >= 0.99 * count)


def run_fleet(n: int, seconds: float, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / f"fleet{n}"
    config = workdir / f"fleet{n}.yaml"
    base_port = 19_000 + 100 * n
    bots = [
        {"symbol": SYMBOLS[i % 3], "name": f"{SYMBOLS[i % 3].split('_')[0].lower()}-{i}"} for i in range(n)
    ]
    config.write_text(
        yaml.safe_dump({"data_dir": str(data_dir), "metrics_base_port": base_port, "bots": bots})
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "fleet", "up", "--config", str(config), "--no-table"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        status_file = data_dir / "fleet" / "status.json"
        deadline = time.monotonic() + 120
        pids: list[int] = []
        while time.monotonic() < deadline:
            if status_file.exists():
                rows = json.loads(status_file.read_text())["bots"]
                pids = [r["pid"] for r in rows if r["pid"]]
                if len(pids) == n:
                    break
            time.sleep(0.5)
        time.sleep(5)  # imports and start-up done; measure the steady state only
        start_cpu = {pid: cpu_seconds(pid) for pid in pids}
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cpu = sum(cpu_seconds(pid) - start_cpu[pid] for pid in pids)
        rss = [rss_mb(pid) for pid in pids]
        p99 = p99_seconds([base_port + i for i in range(n)])
    finally:
        supervisor.send_signal(signal.SIGINT)
        supervisor.wait(timeout=120)
    cores = os.cpu_count() or 1
    return {
        "bots": n,
        "cpu_share": cpu / elapsed / cores,
        "cpu_per_bot": cpu / elapsed / n,
        "rss_mb_max": max(rss),
        "rss_mb_mean": sum(rss) / len(rss),
        "p99_tick_to_quote_us": p99 * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_fleet(n, args.seconds, Path(tmp)) for n in args.sizes]
    base = results[0]["cpu_per_bot"]
    header = ("bots", "CPU share", "CPU/bot", "ratio", "RSS max MB", "RSS mean", "p99 us")
    widths = (5, 11, 9, 7, 12, 10, 9)
    print("".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for r in results:
        r["cpu_per_bot_ratio"] = r["cpu_per_bot"] / base
        print(
            f"{r['bots']:>5}{r['cpu_share']:>10.1%}{r['cpu_per_bot']:>9.1%}{r['cpu_per_bot_ratio']:>7.2f}"
            f"{r['rss_mb_max']:>12.1f}{r['rss_mb_mean']:>10.1f}{r['p99_tick_to_quote_us']:>9.0f}"
        )
    print("targets: 20 bots under 50% CPU share of the machine, <= 100 MB RSS per worker")
    print(json.dumps({"fleets": [{k: round(v, 4) for k, v in r.items()} for r in results]}))


if __name__ == "__main__":
    main()
