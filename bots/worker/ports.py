"""What the worker needs from parts it is handed: the regime model, and an exchange whose fill model
lives in this process."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from bots.store import FeatureRow
from settings.models import PaperSettings

__all__ = ["FillModelHost", "RegimeSource"]


class RegimeSource(Protocol):
    """The regime model as a worker uses it (`ml.live_regime.LiveRegime`): recorded features in,
    probabilities out, new versions adopted from the registry."""

    def seed(self, rows: Iterable[FeatureRow]) -> None: ...
    def observe(self, row: FeatureRow) -> None: ...
    def poll(self, now_s: float) -> int | None: ...
    def probabilities(self, now_s: float) -> dict[str, float] | None: ...
    def loaded(self, now_s: float) -> bool: ...
    def reconfigure(self, model_dir: Path, max_model_age_s: float) -> None: ...


class FillModelHost(Protocol):
    """An exchange whose fills are simulated here (paper, sim): its fill model can be rebuilt."""

    def reconfigure_fills(self, paper: PaperSettings) -> None: ...
