"""Fault injection for the local GRVT exchange, switchable per test, over HTTP or from the CLI.

`Faults` is thread-safe: a test may flip switches from its own thread while the server runs in another.
The same switches as JSON (`POST /_sim/faults`, see `Faults.apply`) or as a CLI spec
(`parse_fault_spec`):

| switch | effect |
|---|---|
| `drop_websockets(refuse_s)` | close every open websocket; refuse new ones for `refuse_s` s |
| `http_errors(status, count, path)` | the next `count` REST requests (path containing `path`) get `status` |
| `rate_limit(count, retry_after_s, path)` | the next `count` get 429, code 1006, header `Retry-After` |
| `latency(seconds)` | every REST request and websocket RPC waits that long first |
| `slow_next(seconds, count, path)` | the next `count` REST requests (path containing `path`) wait, then run |
| `reject_next(n, reason)` | the next `n` valid orders come back REJECTED with `reason` (see below) |
| `partial_fills(fraction)` | a resting order the market reaches fills `fraction` of its rest (>= 1 lot) |
| `clear()` | all off |

`slow_next` reads the request first: a client that times out meanwhile never hears what became of it
(an order it sent may rest).

`reason` is an `OrderRejectReason` name (default BELOW_MARGIN); a number instead (e.g. 2080) makes the
order fail with that GRVT error code and its HTTP status, as a gateway refusal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pysdk.grvt_raw_types import OrderRejectReason

__all__ = ["Faults", "HttpFault", "parse_fault_spec"]

_REJECT_REASONS = frozenset(r.name for r in OrderRejectReason) - {"UNSPECIFIED"}


@dataclass(frozen=True, slots=True)
class HttpFault:
    """What the server answers instead of handling a request."""

    status: int
    retry_after_s: float | None = None


@dataclass(slots=True)
class _Countdown:
    status: int
    remaining: int
    path: str | None
    retry_after_s: float | None = None


def _check_reason(reason: str | int) -> str | int:
    if isinstance(reason, int) and not isinstance(reason, bool):
        if reason < 1000:
            raise ValueError(f"a reject code is a GRVT error code (>= 1000), got {reason}")
        return reason
    if isinstance(reason, str) and reason in _REJECT_REASONS:
        return reason
    raise ValueError(f"reject reason must be an OrderRejectReason name or a GRVT error code, got {reason!r}")


class Faults:
    """The switches of one server; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drop_listeners: list[Callable[[], None]] = []
        self._http: _Countdown | None = None
        self._rate: _Countdown | None = None
        self._latency_s = 0.0
        self._slow: _Countdown | None = None
        self._slow_s = 0.0
        self._reject_left = 0
        self._reject_reason: str | int = "BELOW_MARGIN"
        self._partial: float | None = None
        self._refuse_until = 0.0

    # -- switches -------------------------------------------------------------------------------
    def drop_websockets(self, refuse_s: float = 0.0) -> None:
        """Close every open websocket (the clients see the connection drop and reconnect)."""
        if refuse_s < 0:
            raise ValueError("refuse_s must be >= 0")
        with self._lock:
            self._refuse_until = time.monotonic() + refuse_s if refuse_s else 0.0
            listeners = list(self._drop_listeners)
        for listener in listeners:
            listener()

    def http_errors(self, status: int = 503, count: int = 1, *, path: str | None = None) -> None:
        """Answer the next `count` REST requests (path containing `path`, when given) with `status`."""
        if not 500 <= status <= 599 or count < 0:
            raise ValueError("status must be 5xx and count >= 0")
        with self._lock:
            self._http = _Countdown(status, count, path) if count else None

    def rate_limit(self, count: int = 1, retry_after_s: float = 1.0, *, path: str | None = None) -> None:
        """Answer the next `count` REST requests with 429 and `Retry-After: retry_after_s`."""
        if count < 0 or retry_after_s < 0:
            raise ValueError("count and retry_after_s must be >= 0")
        with self._lock:
            self._rate = _Countdown(429, count, path, retry_after_s) if count else None

    def latency(self, seconds: float) -> None:
        """Delay every REST request and websocket RPC by `seconds` (0 turns it off)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            self._latency_s = seconds

    def slow_next(self, seconds: float, count: int = 1, *, path: str | None = None) -> None:
        """Delay the next `count` REST requests (path containing `path`, when given) by `seconds`, then
        handle them: a client that timed out meanwhile never hears what became of its request."""
        if seconds < 0 or count < 0:
            raise ValueError("seconds and count must be >= 0")
        with self._lock:
            self._slow = _Countdown(0, count, path) if count and seconds else None
            self._slow_s = seconds

    def reject_next(self, n: int = 1, reason: str | int = "BELOW_MARGIN") -> None:
        """Reject the next `n` orders that pass validation and signature checks."""
        if n < 0:
            raise ValueError("n must be >= 0")
        checked = _check_reason(reason)
        with self._lock:
            self._reject_left, self._reject_reason = n, checked

    def partial_fills(self, fraction: float | None) -> None:
        """Fill only `fraction` (0 < f < 1) of a resting order per market event; None or 1 turns it off."""
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError("fraction must be in (0, 1]")
        with self._lock:
            self._partial = None if fraction is None or fraction == 1 else fraction

    def clear(self) -> None:
        """Every fault off."""
        with self._lock:
            self._http = self._rate = self._slow = None
            self._latency_s = self._slow_s = 0.0
            self._reject_left = 0
            self._partial = None
            self._refuse_until = 0.0

    # -- read by the server ---------------------------------------------------------------------
    def add_drop_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs on `drop_websockets`, in the caller's thread (it must be thread-safe)."""
        with self._lock:
            self._drop_listeners.append(listener)

    def remove_drop_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._drop_listeners:
                self._drop_listeners.remove(listener)

    @property
    def latency_s(self) -> float:
        return self._latency_s

    @property
    def partial_fraction(self) -> float | None:
        return self._partial

    def take_slow(self, path: str) -> float:
        """How long this request waits before it is handled (`slow_next`), counting it down; 0: none."""
        with self._lock:
            slow = self._slow
            if slow is None or (slow.path is not None and slow.path not in path):
                return 0.0
            slow.remaining -= 1
            if slow.remaining <= 0:
                self._slow = None
            return self._slow_s

    def websockets_refused(self) -> bool:
        return time.monotonic() < self._refuse_until

    def take_http_fault(self, path: str) -> HttpFault | None:
        """The fault this request gets, counting it down; None: handle the request normally."""
        with self._lock:
            for countdown in (self._rate, self._http):
                if countdown is None or (countdown.path is not None and countdown.path not in path):
                    continue
                countdown.remaining -= 1
                if countdown.remaining <= 0:
                    if countdown is self._rate:
                        self._rate = None
                    else:
                        self._http = None
                return HttpFault(countdown.status, countdown.retry_after_s)
        return None

    def take_reject(self) -> str | int | None:
        """The reject reason (or error code) for this order, counting down; None: no injected reject."""
        with self._lock:
            if self._reject_left <= 0:
                return None
            self._reject_left -= 1
            return self._reject_reason

    def snapshot(self) -> dict[str, Any]:
        """The switches as JSON (what `GET /_sim/faults` answers)."""
        with self._lock:
            http, rate, slow = self._http, self._rate, self._slow
            return {
                "http_errors": None
                if http is None
                else {"status": http.status, "count": http.remaining, "path": http.path},
                "rate_limit": None
                if rate is None
                else {"count": rate.remaining, "retry_after_s": rate.retry_after_s, "path": rate.path},
                "latency_s": self._latency_s,
                "slow_next": None
                if slow is None
                else {"seconds": self._slow_s, "count": slow.remaining, "path": slow.path},
                "reject_next": {"n": self._reject_left, "reason": self._reject_reason},
                "partial_fills": self._partial,
                "websockets_refused_s": max(0.0, self._refuse_until - time.monotonic()),
            }

    def apply(self, spec: Mapping[str, Any]) -> None:
        """Switch faults from JSON, e.g. `{"clear": true, "http_errors": {"status": 503, "count": 2},
        "rate_limit": {"count": 1, "retry_after_s": 1.5}, "latency_s": 0.2, "slow_next": {"seconds": 3,
        "count": 1, "path": "create_order"}, "reject_next": {"n": 1, "reason": "BELOW_MARGIN"},
        "partial_fills": 0.5, "drop_websockets": {"refuse_s": 1}}`;
        `clear` runs first. Raises ValueError on an unknown key or a bad value."""
        unknown = set(spec) - {
            "clear",
            "drop_websockets",
            "http_errors",
            "rate_limit",
            "latency_s",
            "slow_next",
            "reject_next",
            "partial_fills",
        }
        if unknown:
            raise ValueError(f"unknown fault switches: {sorted(unknown)}")
        try:
            if spec.get("clear"):
                self.clear()
            if (value := spec.get("http_errors")) is not None:
                self.http_errors(
                    int(value.get("status", 503)), int(value.get("count", 1)), path=value.get("path")
                )
            if (value := spec.get("rate_limit")) is not None:
                self.rate_limit(
                    int(value.get("count", 1)), float(value.get("retry_after_s", 1.0)), path=value.get("path")
                )
            if (value := spec.get("latency_s")) is not None:
                self.latency(float(value))
            if (value := spec.get("slow_next")) is not None:
                self.slow_next(
                    float(value.get("seconds", 0.0)), int(value.get("count", 1)), path=value.get("path")
                )
            if (value := spec.get("reject_next")) is not None:
                self.reject_next(int(value.get("n", 1)), value.get("reason", "BELOW_MARGIN"))
            if "partial_fills" in spec:
                value = spec["partial_fills"]
                self.partial_fills(None if value is None else float(value))
            if (value := spec.get("drop_websockets")) not in (None, False):
                refuse = float(value.get("refuse_s", 0.0)) if isinstance(value, Mapping) else 0.0
                self.drop_websockets(refuse)
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"bad fault spec: {exc}") from None


def _parts(value: str, name: str, low: int, high: int) -> list[str]:
    parts = value.split(":") if value else []
    if not low <= len(parts) <= high:
        raise ValueError(f"{name} takes {low}..{high} ':'-separated values, got {value!r}")
    return parts


def parse_fault_spec(text: str) -> dict[str, Any]:
    """The CLI form of the switches as the JSON of `Faults.apply`: comma-separated items
    `clear`, `drop_websockets[=REFUSE_S]`, `http_errors=STATUS[:COUNT[:PATH]]`,
    `rate_limit=COUNT[:RETRY_AFTER_S[:PATH]]`, `latency=SECONDS`, `slow_next=SECONDS[:COUNT[:PATH]]`,
    `reject_next=N[:REASON]`, `partial_fills=FRACTION`. Example:
    `latency=0.2,http_errors=503:2:create_order`."""
    spec: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name == "clear":
            spec["clear"] = True
        elif name == "drop_websockets":
            spec[name] = {"refuse_s": float(value) if value else 0.0}
        elif name == "http_errors":
            p = _parts(value, name, 1, 3)
            spec[name] = {"status": int(p[0]), "count": int(p[1]) if len(p) > 1 else 1}
            spec[name]["path"] = p[2] if len(p) > 2 else None
        elif name == "rate_limit":
            p = _parts(value, name, 1, 3)
            spec[name] = {"count": int(p[0]), "retry_after_s": float(p[1]) if len(p) > 1 else 1.0}
            spec[name]["path"] = p[2] if len(p) > 2 else None
        elif name == "latency":
            spec["latency_s"] = float(value)
        elif name == "slow_next":
            p = _parts(value, name, 1, 3)
            spec[name] = {"seconds": float(p[0]), "count": int(p[1]) if len(p) > 1 else 1}
            spec[name]["path"] = p[2] if len(p) > 2 else None
        elif name == "reject_next":
            p = _parts(value, name, 1, 2)
            reason: str | int = p[1] if len(p) > 1 else "BELOW_MARGIN"
            spec[name] = {"n": int(p[0]), "reason": int(reason) if str(reason).isdigit() else reason}
        elif name == "partial_fills":
            spec[name] = float(value)
        else:
            raise ValueError(f"unknown fault {name!r}")
    Faults().apply(spec)  # validate every value now, before it reaches a server
    return spec
