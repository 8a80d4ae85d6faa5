"""A recording with a corrupt cell stops the replay with a ValueError naming the file (the bot then
exits with the market-data code), never with a NaN price reaching the fill model or the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.exchange.sim.market import SimMarket
from bots.exchange.sim.replay import read_recording, write_recording
from settings.models import BUILTIN_INSTRUMENTS


def _recording(tmp_path: Path) -> tuple[Path, list[str]]:
    market = SimMarket("BTC_USDT_Perp", BUILTIN_INSTRUMENTS["BTC_USDT_Perp"], seed=1, s0=65_000.0)
    path = tmp_path / "market.csv"
    write_recording(path, list(market.steps(20)))
    return path, path.read_text().splitlines()


@pytest.mark.parametrize("cell", ["NaN", "Infinity", "-inf", "-1", "abc", "1e999999999999", "sNaN"])
def test_a_corrupt_price_or_size_is_a_value_error_naming_the_file(tmp_path: Path, cell: str) -> None:
    path, lines = _recording(tmp_path)
    header = lines[0].split(",")
    at = next(i for i in range(10, len(lines)) if lines[i].split(",")[header.index("kind")] == "book")
    for column in ("bid_px_0", "ask_sz_0"):
        row = lines[at].split(",")
        row[header.index(column)] = cell
        path.write_text("\n".join([*lines[:at], ",".join(row), *lines[at + 1 :]]) + "\n")
        with pytest.raises(ValueError, match=f"^{path}: "):
            list(read_recording(path))


def test_a_clean_recording_reads_every_step(tmp_path: Path) -> None:
    path, _ = _recording(tmp_path)
    steps = list(read_recording(path))
    assert len(steps) == 20
    assert all(book.bids[0].price < book.asks[0].price for book, _ in steps)
