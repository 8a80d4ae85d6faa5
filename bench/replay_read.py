"""Replay read cost: microseconds per snapshot to read a recording, the replay format against the old one.

The same synthetic market (`SimMarket`, 10 levels a side) is written twice: in the replay format
(`.parquet`: integer ticks and lots in columns, `bots.exchange.sim.replay_columns`) and in the layout
earlier versions wrote to Parquet (one row per event, decimal strings, read by
`bots.exchange.sim.replay_text`: the baseline, in the same process). Each read builds the same
`(BookUpdate, list[Trade])` steps. Then a whole backtest (`ml.backtest.run_backtest`, latency 0) over
each file: what the read cost means for a file backtest. Times are this process's CPU time (the machine
is shared: wall time would count the neighbours' turns), runs interleaved `--repeats` times and the best
kept. One process, pinned to one core where the OS allows. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from bots import native
from bots.exchange.sim import SimMarket, Step
from bots.exchange.sim.replay import read_recording, write_recording
from bots.exchange.sim.replay_text import columns, read_text, write_text
from ml.backtest import BacktestConfig, RecordedMarket, run_backtest
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"


def write_old_parquet(path: Path, steps: list[Step], workdir: Path) -> None:
    """The recording as earlier versions wrote it to Parquet: string columns (ts_ns int64), nulls for
    empty cells, zstd."""
    text = workdir / "old.csv"
    write_text(text, steps)
    types = {name: pa.int64() if name == "ts_ns" else pa.string() for name in columns()}
    options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
    pq.write_table(pa_csv.read_csv(text, convert_options=options), path, compression="zstd")
    text.unlink()


def read_rate(read: Callable[[], Iterator[Step]]) -> tuple[float, int]:
    """Microseconds per step of reading every step, and the count."""
    start = time.process_time()
    count = sum(1 for _ in read())
    return (time.process_time() - start) / count * 1e6, count


def backtest_rate(settings: BotSettings, path: Path) -> tuple[float, int]:
    """Events per second of a backtest over the file, and its fills."""
    start = time.process_time()
    result = run_backtest(settings, RecordedMarket(path), BacktestConfig(latency_ms=0.0))
    return result.stats.events / (time.process_time() - start), result.stats.fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    settings = BotSettings(symbol=SYMBOL)
    steps = list(SimMarket(SYMBOL, settings.spec, seed=args.seed, s0=65_000.0).steps(args.steps))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        old, new = workdir / "old.parquet", workdir / "new.parquet"
        write_old_parquet(old, steps, workdir)
        write_recording(new, steps)
        old_file = pq.ParquetFile(old)
        assert list(read_text(old, old_file)) == steps == list(read_recording(new))  # the same steps

        old_us: list[float] = []
        new_us: list[float] = []
        old_bt: list[float] = []
        new_bt: list[float] = []
        for _ in range(args.repeats):
            old_us.append(read_rate(lambda: read_text(old, pq.ParquetFile(old)))[0])
            new_us.append(read_rate(lambda: read_recording(new))[0])
            rate, fills_old = backtest_rate(settings, old)
            old_bt.append(rate)
            rate, fills_new = backtest_rate(settings, new)
            new_bt.append(rate)
        sizes = (old.stat().st_size, new.stat().st_size)
    assert fills_old == fills_new, "the same market must give the same backtest"

    best_old, best_new = min(old_us), min(new_us)
    print(f"{'':<40}{'us/step':>10}{'backtest events/s':>20}")
    print(f"{'old: decimal strings (baseline)':<40}{best_old:>10.2f}{max(old_bt):>20,.0f}")
    print(f"{'replay format: ticks/lots columns':<40}{best_new:>10.2f}{max(new_bt):>20,.0f}")
    print(
        f"read {best_old / best_new:.1f}x faster; backtest {max(new_bt) / max(old_bt):.2f}x; "
        f"files {sizes[0] / 1e6:.1f} MB -> {sizes[1] / 1e6:.1f} MB; {len(steps):,} steps, "
        f"{sum(len(t) for _, t in steps):,} trades, {fills_new} fills; best of {args.repeats}; "
        f"compiled modules: {', '.join(native.compiled()) or 'none'}"
    )
    figures = {
        "steps": len(steps),
        "old_read_us_per_step": round(best_old, 2),
        "new_read_us_per_step": round(best_new, 2),
        "read_ratio_vs_old": round(best_old / best_new, 2),
        "backtest_events_per_s_old": round(max(old_bt)),
        "backtest_events_per_s_new": round(max(new_bt)),
        "backtest_ratio_vs_old": round(max(new_bt) / max(old_bt), 2),
        "file_bytes_old": sizes[0],
        "file_bytes_new": sizes[1],
        "repeats": args.repeats,
        "compiled": bool(native.compiled()),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
