"""Watching a canary bot through Prometheus's HTTP API: its health before a config change (the
baseline) and after it, and the verdict.

Signals, each from the bot's own series (label `bot`):
- drawdown: `mmfleet_drawdown_ratio`; after the change, its highest value since the change
  (`max_over_time`), so a spike between two polls still counts;
- reject rate: `sum(rate(mmfleet_orders_rejected_total[1m]))`, rejected orders per second;
- quoting, judged from what rests on the book, not from the flag alone: `mmfleet_trading_enabled`
  (after the change, its lowest value since the change), resting orders `mmfleet_orders_open` (the
  most of each side over the last `quiet_s`) and the quotes the strategy wants
  (`mmfleet_quote_price` that are not NaN), which say why when nothing rests.
A breach is drawdown or reject rate above the baseline by more than the guard allows, or a bot that
quoted before the change (enabled, with resting orders) and after it was disabled, or had no resting
order for a whole `quiet_s` (a patch can leave the bot enabled and quoting nothing). A canary with no
sample in the last `stale_after_s` is a breach too: it died, or Prometheus lost it, and nothing proves
it healthy. An unreachable Prometheus is `PrometheusUnreachable`, naming its URL.

Every query reads a range (`last_over_time`, `max_over_time`, ...), never a bare instant vector: one
slow scrape makes Prometheus mark a series stale at once, and an instant query would then see no bot.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from flows.common import FlowError, is_transient

__all__ = [
    "DEFAULT_GUARD",
    "PROMETHEUS_URL_ENV",
    "CanaryGuard",
    "Health",
    "PrometheusUnreachable",
    "health_queries",
    "judge",
    "query_health",
]


PROMETHEUS_URL_ENV = "MMFLEET_PROMETHEUS_URL"


def _default_prometheus_url() -> str:
    return os.environ.get(PROMETHEUS_URL_ENV) or "http://127.0.0.1:9090"


class CanaryGuard(BaseModel):
    """How a canary is watched and what makes it fail (a rollout-config parameter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prometheus_url: str = Field(
        default_factory=_default_prometheus_url,
        description="Prometheus scraping the fleet (its HTTP API root); default $MMFLEET_PROMETHEUS_URL,"
        " else http://127.0.0.1:9090.",
    )
    watch_s: float = Field(default=120.0, ge=0, le=86_400, description="How long the canary is watched.")
    poll_s: float = Field(default=5.0, gt=0, le=3600, description="Seconds between two looks.")
    max_drawdown_increase: float = Field(
        default=0.01, ge=0, le=1, description="Drawdown ratio allowed above the baseline (0.01 = 1 point)."
    )
    max_reject_rate_increase: float = Field(
        default=0.2, ge=0, description="Rejected orders per second allowed above the baseline."
    )
    require_quoting: bool = Field(
        default=True, description="Fail when a canary that quoted before the change stops quoting."
    )
    quiet_s: int = Field(
        default=15,
        ge=1,
        le=3600,
        description="A canary with no resting order for this long (or the whole watch, when shorter) has"
        " stopped quoting.",
    )
    rate_window: str = Field(
        default="1m", pattern=r"^[0-9]+[smh]$", description="Range of the reject-rate `rate()`."
    )
    stale_after_s: int = Field(
        default=30, ge=1, le=3600, description="A canary with no sample for this long is down (a breach)."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Timeout of one Prometheus query.")

    @property
    def quiet_window_s(self) -> int:
        """The window in which a quoting canary must have had a resting order."""
        return max(1, min(self.quiet_s, int(self.watch_s)))


DEFAULT_GUARD = CanaryGuard()


class PrometheusUnreachable(FlowError):  # noqa: N818 - the name is the condition
    """Prometheus did not answer: the message names its URL (a bare URLError says nothing of where)."""


@dataclass(frozen=True, slots=True)
class Health:
    """What Prometheus says of one bot; None where it has no series.

    `orders`: the most resting orders per side, summed, over the guard's quiet window (0: none at
    any moment of it); `quotes`: quote prices the strategy wants at the latest look; `since_s`:
    seconds since the change (None for a baseline).
    """

    drawdown: float | None
    reject_rate: float | None
    enabled: float | None
    orders: float | None
    quotes: float | None
    samples: float | None  # samples of the trading-enabled series in the last `stale_after_s`
    since_s: int | None = None

    @property
    def quoting(self) -> bool:
        """Enabled, with an order resting at some moment of the quiet window."""
        return self.enabled == 1.0 and bool(self.orders)

    def describe(self) -> str:
        def show(value: float | None, fmt: str) -> str:
            return "none" if value is None else format(value, fmt)

        return (
            f"drawdown {show(self.drawdown, '.4%')}, reject rate {show(self.reject_rate, '.3f')}/s,"
            f" enabled {show(self.enabled, 'g')}, resting orders {show(self.orders, 'g')},"
            f" quotes {show(self.quotes, 'g')}"
        )


def health_queries(bot: str, guard: CanaryGuard, since_s: int | None = None) -> dict[str, str]:
    """PromQL of the signals: the latest values, or with `since_s` the worst over that many seconds."""
    selector = f'{{bot="{bot}"}}'
    recent = f"[{guard.stale_after_s}s]"
    if since_s is None:
        drawdown = f"max(last_over_time(mmfleet_drawdown_ratio{selector}{recent}))"
        enabled = f"min(last_over_time(mmfleet_trading_enabled{selector}{recent}))"
    else:
        drawdown = f"max(max_over_time(mmfleet_drawdown_ratio{selector}[{since_s}s]))"
        enabled = f"min(min_over_time(mmfleet_trading_enabled{selector}[{since_s}s]))"
    return {
        "drawdown": drawdown,
        "reject_rate": f"sum(rate(mmfleet_orders_rejected_total{selector}[{guard.rate_window}]))",
        "enabled": enabled,
        "orders": f"sum(max_over_time(mmfleet_orders_open{selector}[{guard.quiet_window_s}s]))",
        # NaN (no quote) fails `> 0`: this counts the quotes the strategy wants.
        "quotes": f"count(last_over_time(mmfleet_quote_price{selector}{recent}) > 0)",
        "samples": f"sum(count_over_time(mmfleet_trading_enabled{selector}{recent}))",
    }


def _instant(base_url: str, query: str, timeout_s: float) -> float | None:
    """The single value of an instant query, None when it returns no series."""
    url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        raise FlowError(f"Prometheus at {base_url} answered HTTP {exc.code} to {query!r}") from None
    except OSError as exc:  # URLError: a refused connection, a name that does not resolve; a timeout
        reason = getattr(exc, "reason", None) or exc
        raise PrometheusUnreachable(f"Prometheus at {base_url} did not answer: {reason}") from None
    if body.get("status") != "success":
        raise FlowError(f"Prometheus refused {query!r}: {body.get('error', body)}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def query_health(guard: CanaryGuard, bot: str, since_s: int | None = None) -> Health:
    """Ask Prometheus for the bot's drawdown, reject rate and quoting state."""
    queries = health_queries(bot, guard, since_s)
    values = {name: _instant(guard.prometheus_url, q, guard.timeout_s) for name, q in queries.items()}
    return Health(**values, since_s=since_s)


def judge(baseline: Health, now: Health, guard: CanaryGuard) -> str | None:
    """The breach, in words, or None when the canary looks as healthy as its baseline allows."""
    if not now.samples:
        return f"no sample from the canary in the last {guard.stale_after_s} s (down?)"
    base_drawdown = baseline.drawdown or 0.0
    if now.drawdown is not None and now.drawdown - base_drawdown > guard.max_drawdown_increase:
        return (
            f"drawdown {now.drawdown:.4%} exceeds its baseline {base_drawdown:.4%}"
            f" by more than {guard.max_drawdown_increase:.4%}"
        )
    base_rejects = baseline.reject_rate or 0.0
    rejects = now.reject_rate or 0.0
    if rejects - base_rejects > guard.max_reject_rate_increase:
        return (
            f"reject rate {rejects:.3f}/s exceeds its baseline {base_rejects:.3f}/s"
            f" by more than {guard.max_reject_rate_increase:g}/s"
        )
    if guard.require_quoting and baseline.quoting:
        if now.enabled is not None and now.enabled < 1.0:
            return "the canary stopped quoting (mmfleet_trading_enabled went to 0)"
        window = guard.quiet_window_s
        if now.since_s is not None and now.since_s >= window and not now.orders:
            wanted = f"{now.quotes:g} quotes wanted" if now.quotes else "no quote wanted either"
            return (
                f"the canary stopped quoting: trading enabled but no resting order for {window} s"
                f" (mmfleet_orders_open), {wanted}"
            )
    return None
