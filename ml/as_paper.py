"""The Monte Carlo of Avellaneda and Stoikov (2008), section 4, with the engine's own A-S formulas.

Per step of length dt, for every path at once: the agent quotes (bid, ask); its ask is lifted with
probability `A*exp(-k*delta_a)*dt` and its bid hit with probability `A*exp(-k*delta_b)*dt`, one unit
each, where delta_a = ask - s and delta_b = s - bid; then the mid moves up or down by sigma*sqrt(dt)
with probability 1/2 each. At T the profit is cash + q*s_T.

- "inventory" strategy: `bots.engine.avellaneda.AvellanedaStoikov.quotes`, i.e. the reservation
  price r = s - q*gamma*sigma^2*(T-t) (eq. 29) -/+ half the optimal spread (eq. 30);
- "symmetric" strategy: the same spread (`AvellanedaStoikov.spread`), centred on the mid.

Both strategies see the same mid paths and the same uniform draws (common random numbers), so their
difference is the strategy's, not the noise's. `spread` is the mean quoted spread over steps and
paths: gamma*sigma^2*(T-t) averages to gamma*sigma^2*T/2, so at gamma=0.1 it is about 1.49; the
paper's table lists 1.29, the spread's limit as t -> T, (2/gamma)*ln(1+gamma/k).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from bots.engine.avellaneda import AvellanedaStoikov

__all__ = ["PaperParams", "PaperResult", "StrategyOutcome", "simulate"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperParams:
    """The paper's parameters (its section 4 defaults); `paths` simulations, seeded by `seed`."""

    gamma: float = 0.1
    k: float = 1.5
    A: float = 140.0
    sigma: float = 2.0
    T: float = 1.0
    dt: float = 0.005
    s0: float = 100.0
    paths: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.gamma > 0 and self.k > 0 and self.A >= 0 and self.sigma >= 0):
            raise ValueError("need gamma > 0, k > 0, A >= 0, sigma >= 0")
        if not (self.T > 0 and 0 < self.dt <= self.T and self.paths >= 1):
            raise ValueError("need T > 0, 0 < dt <= T and paths >= 1")

    @property
    def steps(self) -> int:
        return round(self.T / self.dt)


@dataclass(frozen=True, slots=True)
class StrategyOutcome:
    """One strategy over all paths: per-path profit and final inventory, and the mean quoted spread."""

    spread: float
    profits: FloatArray
    final_q: FloatArray

    def summary(self) -> dict[str, float]:
        return {
            "spread": self.spread,
            "profit_mean": float(self.profits.mean()),
            "profit_std": float(self.profits.std(ddof=1)) if len(self.profits) > 1 else 0.0,
            "final_q_mean": float(self.final_q.mean()),
            "final_q_std": float(self.final_q.std(ddof=1)) if len(self.final_q) > 1 else 0.0,
        }


@dataclass(frozen=True, slots=True)
class PaperResult:
    params: PaperParams
    inventory: StrategyOutcome
    symmetric: StrategyOutcome

    def to_dict(self) -> dict[str, object]:
        """The `--json` document: params, then each strategy's summary."""
        return {
            "params": asdict(self.params),
            "inventory": self.inventory.summary(),
            "symmetric": self.symmetric.summary(),
        }


def _fill_probability(intensity_a: float, k: float, delta: FloatArray, dt: float) -> FloatArray:
    """A*exp(-k*delta)*dt, capped at 1 (a quote through the mid is all but certain to trade)."""
    return np.minimum(intensity_a * np.exp(-k * delta) * dt, 1.0)


def simulate(params: PaperParams | None = None) -> PaperResult:
    """Run both strategies over `params.paths` paths of `params.steps` steps."""
    p = params or PaperParams()
    rng = np.random.default_rng(p.seed)
    n = p.paths
    move = p.sigma * math.sqrt(p.dt)
    s = np.full(n, p.s0)
    q = {name: np.zeros(n) for name in ("inventory", "symmetric")}
    cash = {name: np.zeros(n) for name in ("inventory", "symmetric")}
    spread_sum = 0.0
    model = AvellanedaStoikov(p.gamma, p.k)
    # the engine's formulas take floats (they are compiled with it): applied path by path
    path_quotes = np.vectorize(model.quotes, otypes=[np.float64, np.float64])
    for step in range(p.steps):
        tau = p.T - step * p.dt
        lift = rng.random(n)  # < P(ask lifted)
        hit = rng.random(n)  # < P(bid hit)
        up = rng.random(n) < 0.5
        spread = model.spread(p.sigma, tau)
        spread_sum += spread
        for name in ("inventory", "symmetric"):
            if name == "inventory":
                bid, ask = path_quotes(s, q[name], p.sigma, tau)
            else:
                bid, ask = s - 0.5 * spread, s + 0.5 * spread
            sold = lift < _fill_probability(p.A, p.k, ask - s, p.dt)
            bought = hit < _fill_probability(p.A, p.k, s - bid, p.dt)
            q[name] += bought.astype(np.float64) - sold
            cash[name] += np.where(sold, ask, 0.0) - np.where(bought, bid, 0.0)
        s = s + np.where(up, move, -move)
    mean_spread = spread_sum / p.steps
    outcomes = {name: StrategyOutcome(mean_spread, cash[name] + q[name] * s, q[name]) for name in q}
    return PaperResult(p, outcomes["inventory"], outcomes["symmetric"])
