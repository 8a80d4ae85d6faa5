"""GRVT's JSON as the local exchange speaks it: error codes, decimal strings and payload shapes.

Every shape here parses with the installed SDK's strict dataclasses (`pysdk.grvt_raw_types`, via dacite)
and carries exactly their fields, so the async `GrvtRawAsync` client accepts it as well as the ccxt-style
clients. Prices and sizes are plain decimal strings ("65000.1", "0.01"), as GRVT's "full" endpoints send
them; times are unix nanoseconds as strings.

Errors are `{"code", "message", "status"}` with GRVT's codes (see `ERRORS`); nothing else may be added
to that body, because the SDK builds `GrvtError(**body)` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "ERRORS",
    "ZERO",
    "GrvtApiError",
    "dec",
    "fmt",
    "public_trade",
    "str_list",
]

ZERO = Decimal(0)

# code -> (HTTP status, message), as GRVT documents them.
ERRORS: dict[int, tuple[int, str]] = {
    1000: (401, "You need to authenticate prior to using this functionality"),
    1001: (403, "You are not authorized to access this functionality"),
    1002: (500, "Internal Server Error"),
    1003: (400, "Request could not be processed due to malformed syntax"),
    1004: (404, "Data Not Found"),
    1005: (500, "Unknown Error"),
    1006: (429, "You have surpassed the allocated rate limit for your tier"),
    1009: (503, "We are temporarily deactivating this API endpoint, please try again later"),
    1012: (400, "Invalid signature chain ID"),
    1101: (400, "Feed Format must be in the format of <primary>@<secondary>"),
    2000: (403, "Signature is from an unauthorized signer"),
    2001: (403, "Signature has expired"),
    2002: (403, "Signature does not match payload"),
    2003: (403, "Order sub account does not match logged in user"),
    2005: (403, "Signature V must be 27/28"),
    2006: (403, "Signature R/S must have exactly 64 characters long without 0x prefix"),
    2007: (403, "Signature S must be in the lower half of the curve"),
    2010: (400, "Order ID should be empty when creating an order"),
    2011: (400, "Client Order ID should be supplied when creating an order"),
    2012: (400, "Client Order ID overlaps with existing active order"),
    2020: (400, "Market Order must always be supplied without a limit price"),
    2021: (400, "Limit Order must always be supplied with a limit price"),
    2030: (400, "Orderbook Orders must have a TimeInForce of GTT/IOC/FOK"),
    2032: (400, "Post Only can only be set to true for GTT/AON orders"),
    2040: (400, "Order must contain at least one leg"),
    2042: (400, "Orderbook Orders must contain only one leg"),
    2061: (400, "Unsupported Instrument Requested"),
    2062: (400, "Order size smaller than min size"),
    2064: (400, "Invalid limit price tick"),
    2065: (400, "Order size too granular"),
    2080: (400, "Insufficient margin to create order"),
    2081: (400, "Order Fill would result in exceeding maximum position size"),
    2090: (429, "Max open orders exceeded"),
    2400: (400, "Reduce only order with no position"),
    2401: (400, "Reduce only order must not increase position size"),
    3000: (400, "Instrument is invalid"),
    3020: (400, "Sub account ID must be an uint64 integer"),
}


class GrvtApiError(Exception):
    """A GRVT-style refusal: HTTP `status` and the body `{"code", "message", "status"}`."""

    def __init__(self, code: int, message: str | None = None, *, status: int | None = None) -> None:
        known_status, known_message = ERRORS.get(code, (400, "Request rejected by the simulator"))
        self.code = code
        self.status = status if status is not None else known_status
        self.message = message if message is not None else known_message
        super().__init__(f"{self.code} ({self.status}): {self.message}")

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "status": self.status}


def fmt(value: Decimal) -> str:
    """A decimal as GRVT writes it: plain notation, no exponent, no trailing zeros ("0" for zero)."""
    if not value:
        return "0"
    return format(value.normalize(), "f")


def dec(value: Any, field: str) -> Decimal:
    """A finite decimal from a JSON string or number, else error 1003 naming the field."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise GrvtApiError(1003, f"{field} must be a decimal string")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise GrvtApiError(1003, f"{field} must be a decimal string") from None
    if not result.is_finite():
        raise GrvtApiError(1003, f"{field} must be finite")
    return result


def public_trade(
    *,
    event_time_ns: int,
    instrument: str,
    is_taker_buyer: bool,
    size: Decimal,
    price: Decimal,
    mark_price: Decimal,
    trade_id: str,
) -> dict[str, Any]:
    """A public `Trade` (market-data REST and the `trade` stream)."""
    return {
        "event_time": str(event_time_ns),
        "instrument": instrument,
        "is_taker_buyer": is_taker_buyer,
        "size": fmt(size),
        "price": fmt(price),
        "mark_price": fmt(mark_price),
        "index_price": fmt(mark_price),
        "interest_rate": "0",
        "forward_price": "0",
        "trade_id": trade_id,
        "venue": "ORDERBOOK",
        "is_rpi": False,
    }


def str_list(body: Mapping[str, Any], key: str) -> list[str] | None:
    """An optional filter list of strings (`kind`, `base`, `quote`); a bare string counts as one."""
    value = body.get(key)
    if value is None or value == []:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise GrvtApiError(1003, f"{key} must be a list of strings")
