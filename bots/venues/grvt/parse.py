"""GRVT JSON -> our `Decimal` dataclasses, and GRVT's refusals -> our reject reasons.

Why a module of its own: pure decoding with no SDK client or I/O, so the adapters and the SDK client
wrapper share one vocabulary. Prices and sizes come back as `Decimal` (a malformed number is an
`ExchangeError`); reject reasons use the paper model's names where they exist.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, unquote

from pysdk.grvt_raw_types import OrderRejectReason

from bots.engine.types import Side
from bots.errors import ExchangeError, Rejected, RejectReason
from bots.exchange.base import (
    BookLevel,
    BookUpdate,
    Fill,
    InstrumentInfo,
    OrderStatus,
    OrderUpdate,
    Trade,
)

__all__ = [
    "PAGE_LIMIT",
    "GrvtApiError",
    "_accepted",
    "_decimal",
    "_gone_is_fine",
    "_plain",
    "decode_cursor",
    "encode_cursor",
    "every_page",
    "parse_book",
    "parse_fill",
    "parse_instrument",
    "parse_order",
    "parse_trade",
    "reject_reason",
]

_CURSOR_PREFIX = "grvt1:"
PAGE_LIMIT = 1000  # rows asked for per page of a history
_MAX_PAGES = 1000

# ----- errors and decoding -------------------------------------------------------------------------

_NOT_FOUND = re.compile(r"(?i)not found|not exist|unknown order|no such|already (?:cancel|fill|clos)|final")
_REASONS = {
    "FAIL_POST_ONLY": "post_only_would_cross",
    "FAIL_REDUCE_ONLY": "reduce_only_would_increase",
    "CLIENT_CANCEL": "cancelled",
    "CLIENT_BULK_CANCEL": "cancelled",
}
_STATUS = {status.name: status for status in OrderStatus}
_GRVT_REASONS = frozenset(reason.name for reason in OrderRejectReason)


def _reason(grvt_reason: object) -> str | None:
    """A GRVT reject/cancel reason in our vocabulary (the paper model's names where they exist)."""
    name = str(grvt_reason or "").upper()
    if name in ("", "UNSPECIFIED"):
        return None
    return _REASONS.get(name, name.lower())


R = RejectReason
# Every `OrderRejectReason` of the SDK -> our reject reason, for an order whose state is REJECTED.
# The cancel reasons never refuse an order: one seen on a rejected order is `OTHER`.
_ORDER_REJECTS: dict[str, RejectReason] = {
    "FAIL_POST_ONLY": R.POST_ONLY_WOULD_CROSS,
    "FAIL_REDUCE_ONLY": R.REDUCE_ONLY_WOULD_INCREASE,
    "REDUCE_ONLY_LIMIT": R.REDUCE_ONLY_WOULD_INCREASE,
    "DERISK_MUST_BE_REDUCE_ONLY": R.INVALID_ORDER,
    "DERISK_MUST_BE_IOC": R.INVALID_ORDER,
    "DERISK_NOT_SUPPORTED": R.INVALID_ORDER,
    "UNSUPPORTED_TIME_IN_FORCE": R.INVALID_ORDER,
    "MULTI_LEGGED_ORDER": R.INVALID_ORDER,
    "MARKET_ORDER_WITH_LIMIT_PRICE": R.INVALID_ORDER,
    "INVALID_ORDER_TYPE": R.INVALID_ORDER,
    "OVERLAPPING_CLIENT_ORDER_ID": R.OVERLAPPING_CLIENT_ORDER_ID,
    "INSTRUMENT_INVALID": R.INSTRUMENT_INVALID,
    "INSTRUMENT_DEACTIVATED": R.INSTRUMENT_INVALID,
    "CURRENCY_NOT_DEFINED": R.INSTRUMENT_INVALID,
    "BELOW_MARGIN": R.BELOW_MARGIN,
    "EXCEED_MAX_POSITION_SIZE": R.EXCEED_MAX_POSITION_SIZE,
    "SELF_TRADE_PROTECTION": R.SELF_TRADE,
    "SELF_MATCHED_SUBACCOUNT": R.SELF_TRADE,
    "UNAUTHORISED": R.UNAUTHORIZED,
    "SUB_ACCOUNT_NOT_FOUND": R.UNAUTHORIZED,
    "NO_TRADE_PERMISSION": R.UNAUTHORIZED,
    "SESSION_KEY_EXPIRED": R.UNAUTHORIZED,
    "EXCEED_MAX_SIGNATURE_EXPIRATION": R.BAD_SIGNATURE,
    "MM_PROTECTION": R.MM_PROTECTION,
    "LIQUIDATION": R.LIQUIDATION,
    "SYSTEM_FAILOVER": R.EXCHANGE_FAILOVER,
    **dict.fromkeys(
        ("UNSPECIFIED", "CLIENT_CANCEL", "CLIENT_BULK_CANCEL", "CLIENT_SESSION_END", "MARKET_CANCEL",
         "IOC_CANCEL", "AON_CANCEL", "FOK_CANCEL", "EXPIRED", "CLIENT_CANCEL_ON_DISCONNECT_TRIGGERED",
         "OCO_COUNTER_PART_TRIGGERED", "CLIENT_REPLACE"),
        R.OTHER,
    ),
}  # fmt: skip

# GRVT error codes of order refusals (the 4xx a gateway answers) -> our reject reason. Codes not
# here (1004 not found, 1101 feed format, a code GRVT adds later) are `OTHER`; 1006 and 5xx never
# become a refusal (`RateLimited`, `Unavailable`).
_CODE_REASONS: dict[int, RejectReason] = {
    1000: R.UNAUTHORIZED,
    1001: R.UNAUTHORIZED,
    2003: R.UNAUTHORIZED,
    3020: R.UNAUTHORIZED,
    1012: R.BAD_SIGNATURE,
    **dict.fromkeys((2000, 2001, 2002, 2005, 2006, 2007), R.BAD_SIGNATURE),
    **dict.fromkeys((1003, 2010, 2011, 2020, 2021, 2030, 2032, 2040, 2042), R.INVALID_ORDER),
    2012: R.OVERLAPPING_CLIENT_ORDER_ID,
    2061: R.INSTRUMENT_INVALID,
    2062: R.SIZE_BELOW_MIN,
    2064: R.PRICE_OFF_TICK,
    2065: R.SIZE_OFF_LOT,
    2080: R.BELOW_MARGIN,
    2081: R.EXCEED_MAX_POSITION_SIZE,
    2090: R.MAX_OPEN_ORDERS,
    2400: R.REDUCE_ONLY_WOULD_INCREASE,
    2401: R.REDUCE_ONLY_WOULD_INCREASE,
    3000: R.INSTRUMENT_INVALID,
}
_CODE_NOT_FOUND = 1004


def reject_reason(grvt_reason: object) -> RejectReason:
    """A GRVT `OrderRejectReason` name (a rejected order's state) as our reject reason."""
    return _ORDER_REJECTS.get(str(grvt_reason or "").upper(), R.OTHER)


def _final_reason(status: OrderStatus, grvt_reason: object) -> str | None:
    """Why an order ended: a `RejectReason` when it was refused, else the cancel reason, if any."""
    if status is OrderStatus.REJECTED:
        return reject_reason(grvt_reason)
    return _reason(grvt_reason) if status.is_final else None


class GrvtApiError(ExchangeError):
    """GRVT refused a request (a 4xx with its `{code, message, status}`): not worth a retry."""

    def __init__(self, endpoint: str, code: int | None, message: str, status: int) -> None:
        self.endpoint = endpoint
        self.code = code
        super().__init__(f"{endpoint}: GRVT error {code}: {message}", status=status)
        self.message = message

    @property
    def reason(self) -> RejectReason:
        """Our reject reason: by GRVT code, else a GRVT reject reason named in the message, else `OTHER`
        (the code stays in the message)."""
        if self.code in _CODE_REASONS:
            return _CODE_REASONS[self.code]
        for name in re.findall(r"[A-Z][A-Z_]+", self.message.upper()):
            if name in _GRVT_REASONS and (reason := reject_reason(name)) is not R.OTHER:
                return reason
        return R.OTHER

    @property
    def is_not_found(self) -> bool:
        return self.code == _CODE_NOT_FOUND or self.status == 404 or bool(_NOT_FOUND.search(self.message))


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, list):  # per-leg lists in order states
        value = value[0] if value else "0"
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ExchangeError(f"malformed {what} from GRVT: {value!r}") from None


def _plain(value: Decimal) -> Decimal:
    """`0.100000000` -> `0.1` (never scientific notation)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal  # type: ignore[operator]


def _ns(value: object) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0


def parse_instrument(market: Mapping[str, Any]) -> InstrumentInfo:
    """GRVT lists a tick and a minimum size; sizes are multiples of the minimum (the lot)."""
    tick = _plain(_decimal(market.get("tick_size"), "tick_size"))
    min_size = _plain(_decimal(market.get("min_size"), "min_size"))
    if tick <= 0 or min_size <= 0:
        raise ExchangeError(f"GRVT instrument {market.get('instrument')}: tick and min size must be positive")
    return InstrumentInfo(str(market.get("instrument")), tick, min_size, min_size)


def _levels(rows: Iterable[Mapping[str, Any]] | None, best_first_high: bool) -> tuple[BookLevel, ...]:
    levels = [
        BookLevel(_decimal(r.get("price"), "price"), _decimal(r.get("size"), "size")) for r in rows or ()
    ]
    return tuple(
        sorted((lv for lv in levels if lv.size > 0), key=lambda lv: lv.price, reverse=best_first_high)
    )


def parse_book(data: Mapping[str, Any], symbol: str) -> BookUpdate:
    ts_ns = _ns(data.get("event_time")) or time.time_ns()  # the REST book may say 0
    return BookUpdate(symbol, ts_ns, _levels(data.get("bids"), True), _levels(data.get("asks"), False))


def parse_trade(row: Mapping[str, Any], symbol: str) -> Trade:
    return Trade(
        symbol=str(row.get("instrument") or symbol),
        ts_ns=_ns(row.get("event_time")) or time.time_ns(),
        price=_decimal(row.get("price"), "trade price"),
        size=_decimal(row.get("size"), "trade size"),
        taker_side=Side.BUY if row.get("is_taker_buyer") else Side.SELL,
        trade_id=str(row.get("trade_id", "")),
    )


def parse_order(order: Mapping[str, Any]) -> OrderUpdate:
    leg = (order.get("legs") or [{}])[0]
    state = order.get("state") or {}
    meta = order.get("metadata") or {}
    status = _STATUS.get(str(state.get("status", "PENDING")).upper(), OrderStatus.PENDING)
    order_id = str(order.get("order_id") or "")
    return OrderUpdate(
        symbol=str(leg.get("instrument", "")),
        client_order_id=str(meta.get("client_order_id", "")),
        exchange_order_id=order_id if order_id not in ("", "0", "0x0", "0x00") else None,
        side=Side.BUY if leg.get("is_buying_asset") else Side.SELL,
        price=_decimal(leg.get("limit_price", "0"), "limit price"),
        size=_decimal(leg.get("size", "0"), "order size"),
        filled_size=_decimal(state.get("traded_size") or "0", "traded size"),
        status=status,
        reason=_final_reason(status, state.get("reject_reason")),
        ts_ns=_ns(state.get("update_time")) or _ns(meta.get("create_time")),
    )


def parse_fill(row: Mapping[str, Any]) -> Fill:
    """`fill_id` is `<trade_id>-<order_id>`: a trade id alone may be shared by both sides of a trade."""
    trade_id, order_id = str(row.get("trade_id", "")), str(row.get("order_id") or "")
    return Fill(
        fill_id=f"{trade_id}-{order_id}" if order_id else trade_id,
        symbol=str(row.get("instrument", "")),
        client_order_id=str(row.get("client_order_id") or ""),
        side=Side.BUY if row.get("is_buyer") else Side.SELL,
        price=_decimal(row.get("price"), "fill price"),
        size=_decimal(row.get("size"), "fill size"),
        fee=_decimal(row.get("fee") or "0", "fee"),
        ts_ns=_ns(row.get("event_time")),
        is_taker=bool(row.get("is_taker")),
    )


def encode_cursor(ts_ns: int, fill_ids: Iterable[str]) -> str:
    return f"{_CURSOR_PREFIX}{ts_ns}:" + ",".join(quote(i, safe="") for i in sorted(fill_ids))


def decode_cursor(cursor: str | None) -> tuple[int, set[str]]:
    """(newest event time, fill ids at that time); (0, empty) for None or a cursor not ours."""
    if not cursor or not cursor.startswith(_CURSOR_PREFIX):
        return 0, set()
    ts, _, ids = cursor[len(_CURSOR_PREFIX) :].partition(":")
    if not ts.isdigit():
        raise ExchangeError(f"bad GRVT fills cursor {cursor!r}")
    return int(ts), {unquote(i) for i in ids.split(",") if i}


def _accepted(update: OrderUpdate) -> OrderUpdate:
    """The order as the exchange holds it, or `Rejected` when it refused it."""
    if update.status is OrderStatus.REJECTED:
        raise Rejected(update.reason if isinstance(update.reason, RejectReason) else R.OTHER)
    return update


@contextlib.contextmanager
def _gone_is_fine() -> Iterator[None]:
    try:
        yield
    except GrvtApiError as exc:
        if not exc.is_not_found:
            raise


async def every_page(what: str, fetch_page: Callable[[str | None], Awaitable[Any]]) -> list[dict[str, Any]]:
    """The rows of every page of a GRVT history (`result`, then `next` as the following page's cursor)."""
    rows: list[dict[str, Any]] = []
    page: str | None = None
    for _ in range(_MAX_PAGES):
        reply = await fetch_page(page)
        batch = (reply.get("result") or []) if isinstance(reply, dict) else []
        rows.extend(batch)
        following = reply.get("next") if isinstance(reply, dict) else None
        if not batch or not following or following == page:
            return rows
        page = str(following)
    raise ExchangeError(f"{what}: more than {_MAX_PAGES} pages")
