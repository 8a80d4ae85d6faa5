"""A running bot says when the spread floor, not the model, sets its spread: a metric and a log line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bots.store import Ledger
from bots.worker import BotWorker
from tests.integration.test_worker import _settings, _until, _with_worker


def _binding(worker: BotWorker) -> list[float]:
    return [
        sample.value
        for family in worker.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "mmfleet_spread_floor_binding"
    ]


def test_the_spread_floor_binding_is_a_metric_and_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kappa 1000: the model's spread is about 0.2%; a 0.5% floor binds, a 0.1% one does not."""

    def said(message: str) -> bool:
        return any(r.getMessage().startswith(message) for r in caplog.records if r.name == "mmfleet.worker")

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(lambda: _binding(worker) == [0.0], what="a decision of the model's spread")
        decision = worker.core.last_decision
        assert decision is not None and decision.model_spread_pct > 0.001 and not said("spread floor")
        worker.apply_settings(_settings(strategy={"spread_pct": 0.005}), "floored")
        await _until(lambda: said("spread floor binds"), what="the floor's log line")
        assert _binding(worker) == [1.0]
        worker.apply_settings(_settings(), "model")
        await _until(lambda: said("spread floor released"), what="the release's log line")
        assert _binding(worker) == [0.0]

    with caplog.at_level(logging.INFO, logger="mmfleet.worker"):
        asyncio.run(_with_worker(tmp_path, _settings(), body))
