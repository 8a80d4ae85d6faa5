"""The project's error tree: each class says what the caller should do about it.

Catch `FleetError` at the top of a command or a bot loop; catch the narrow classes where the
reaction differs (retry a `TransientExchangeError`, slow down on `RateLimited`, requote on `Rejected`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from bots.exitcodes import ExitCode

__all__ = [
    "ConfigError",
    "ExchangeError",
    "FleetError",
    "Halted",
    "RateLimited",
    "RejectReason",
    "Rejected",
    "Timeout",
    "TransientExchangeError",
    "Unavailable",
]


class FleetError(Exception):
    """Root of every mmfleet error; anything else escaping a bot is a bug."""


class ConfigError(FleetError):
    """The configuration is unusable: print `problems` (one line each) and stop with exit code 2.

    Never put a secret value in the message or the problems: they are printed and logged.
    """

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        self.problems: tuple[str, ...] = tuple(problems) or (message,)
        super().__init__(message)


class Halted(FleetError):  # noqa: N818 - the name is the condition
    """A bot is halted (a drawdown or breaker trip, another store on its account): a command that would
    make it trade is refused, naming why; only `reset-risk` lifts the halt."""


class ExchangeError(FleetError):
    """The exchange refused or failed a request; `status` is the HTTP status or GRVT code when known."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.message = message
        self.status = status
        super().__init__(message if status is None else f"{message} (status {status})")


class TransientExchangeError(ExchangeError):
    """A failure that may go away: retry the same request with backoff."""


class Unavailable(TransientExchangeError):  # noqa: N818 - the name is the condition
    """The exchange or the connection is down: retry with backoff, quote nothing meanwhile."""


class Timeout(TransientExchangeError):  # noqa: N818
    """No answer in time; the request may or may not have happened: reconcile, then retry with backoff."""


class RateLimited(TransientExchangeError):  # noqa: N818
    """Too many requests: wait `retry_after_s` (or back off when unknown) and send less often."""

    def __init__(
        self, retry_after_s: float | None = None, *, message: str = "rate limited", status: int | None = 429
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, status=status)


class RejectReason(StrEnum):
    """Why an order was refused: the closed set every adapter and the paper fill model raise, and the
    labels of `mmfleet_orders_rejected_total{reason}` (all exported from start, so a rate is never
    absent). A venue's own codes map onto these in its adapter; `OTHER` is a refusal the adapter could
    not name (the venue's code stays in the exception's message). README "Reject reasons" lists them."""

    POST_ONLY_WOULD_CROSS = "post_only_would_cross"
    REDUCE_ONLY_WOULD_INCREASE = "reduce_only_would_increase"
    PRICE_NOT_POSITIVE = "price_not_positive"
    SIZE_NOT_POSITIVE = "size_not_positive"
    PRICE_OFF_TICK = "price_off_tick"
    SIZE_OFF_LOT = "size_off_lot"
    SIZE_BELOW_MIN = "size_below_min"
    BAD_CLIENT_ORDER_ID = "bad_client_order_id"
    OVERLAPPING_CLIENT_ORDER_ID = "overlapping_client_order_id"
    INVALID_ORDER = "invalid_order"
    INSTRUMENT_INVALID = "instrument_invalid"
    BELOW_MARGIN = "below_margin"
    EXCEED_MAX_POSITION_SIZE = "exceed_max_position_size"
    MAX_OPEN_ORDERS = "max_open_orders"
    SELF_TRADE = "self_trade"
    UNAUTHORIZED = "unauthorized"
    BAD_SIGNATURE = "bad_signature"
    MM_PROTECTION = "mm_protection"
    LIQUIDATION = "liquidation"
    EXCHANGE_FAILOVER = "exchange_failover"
    OTHER = "other"


class Rejected(ExchangeError):  # noqa: N818
    """The exchange refused this order (post-only cross, size, margin): requote or count it; no retry."""

    def __init__(
        self, reason: RejectReason, *, message: str | None = None, status: int | None = None
    ) -> None:
        self.reason = reason
        super().__init__(message if message is not None else f"rejected: {reason}", status=status)
