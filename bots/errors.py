"""The project's error tree: each class says what the caller should do about it.

Catch `FleetError` at the top of a command or a bot loop; catch the narrow classes where the
reaction differs (retry a `TransientExchangeError`, slow down on `RateLimited`, requote on `Rejected`).
"""

from __future__ import annotations

from collections.abc import Iterable

from bots.exitcodes import ExitCode

__all__ = [
    "ConfigError",
    "ExchangeError",
    "FleetError",
    "RateLimited",
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


class Rejected(ExchangeError):  # noqa: N818
    """The exchange refused this order (post-only cross, size, margin): requote or count it; no retry."""

    def __init__(self, reason: str, *, message: str | None = None, status: int | None = None) -> None:
        self.reason = reason
        super().__init__(message if message is not None else f"rejected: {reason}", status=status)
