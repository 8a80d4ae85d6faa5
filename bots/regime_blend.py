"""The worker's use of the regime model: live features, hot reload from the registry, gamma/kappa blend.

numpy only (no scikit-learn in a worker): the registry's artifacts are parameters, not pickles.
"""

from __future__ import annotations

from collections.abc import Iterable

from ml.features import LiveFeatures, RecordedRow
from ml.inference import blend
from ml.registry import RegistryWatcher
from settings.models import BotSettings

__all__ = ["RegimeBlend"]


class RegimeBlend:
    """Feeds features once a second and answers which gamma/kappa to quote with."""

    def __init__(self, settings: BotSettings) -> None:
        self.features = LiveFeatures()
        self.models = RegistryWatcher(settings.ml.model_dir, max_age_s=settings.ml.max_model_age_s)

    def reconfigure(self, old: BotSettings, new: BotSettings) -> None:
        if new.ml.model_dir != old.ml.model_dir:
            self.models = RegistryWatcher(new.ml.model_dir, max_age_s=new.ml.max_model_age_s)
        self.models.max_age_s = new.ml.max_model_age_s

    def seed(self, rows: Iterable[RecordedRow]) -> None:
        """Recorded feature rows of this bot (ledger `FeatureRow`s), oldest first."""
        for row in rows:
            self.observe(row)

    def observe(self, row: RecordedRow) -> None:
        """One feature row, as the worker records it."""
        self.features.update_row(row)

    def parameters(
        self, settings: BotSettings, now: float
    ) -> tuple[float, float, dict[str, float] | None, bool]:
        """(gamma, kappa, regime probabilities or None, whether a new model version was adopted).

        Without a usable model (none, too old, features not warm yet) the config's gamma/kappa apply.
        """
        strategy = settings.strategy
        adopted = self.models.poll(now) is not None
        model = self.models.active(now)
        if model is None or not self.features.ready:
            return strategy.gamma, strategy.kappa, None, adopted
        probabilities = model.regime_probabilities(self.features.vector())
        gamma, kappa = blend(
            probabilities,
            settings.ml.regime_params,
            default_gamma=strategy.gamma,
            default_kappa=strategy.kappa,
        )
        return gamma, kappa, probabilities, adopted
