"""Reject reasons are one closed set: what the GRVT adapter and the paper fill model raise is a label of
`mmfleet_orders_rejected_total{reason}`, and the README lists exactly that set."""

from __future__ import annotations

import random
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pysdk.grvt_raw_types import OrderRejectReason

from bots.engine.types import Side
from bots.errors import Rejected, RejectReason
from bots.exchange.base import BookLevel, BookUpdate, OrderRequest, OrderStatus
from bots.exchange.paper import PaperFillModel
from bots.metrics import BotMetrics
from bots.venues.grvt.client import _failure
from bots.venues.grvt.parse import GrvtApiError, _accepted, parse_order, reject_reason
from bots.venues.grvt.server.wire import ERRORS
from settings.models import BUILTIN_INSTRUMENTS, PaperSettings

SYMBOL = "BTC_USDT_Perp"
LABELS = {"bot": "b", "symbol": SYMBOL, "mode": "sim"}
README = Path(__file__).resolve().parents[2] / "README.md"
# GRVT's codes that never refuse an order: not found (a cancel of a gone order), a bad feed name,
# and the rate limit (`RateLimited`, retried).
NOT_ORDER_REFUSALS = {1004, 1006, 1101}
# GRVT's reasons that end an order without refusing it (cancels, expiry, replacement).
CANCEL_LIKE = re.compile(r"UNSPECIFIED|CANCEL|^EXPIRED$|TRIGGERED|REPLACE|SESSION_END")


def _metric_labels() -> dict[str, float]:
    registry = CollectorRegistry()
    BotMetrics(registry, "b", SYMBOL, "sim", grid_layers=1)
    return {
        sample.labels["reason"]: sample.value
        for family in registry.collect()
        if family.name == "mmfleet_orders_rejected"
        for sample in family.samples
    }


def test_every_reason_is_a_metric_label_exported_from_start() -> None:
    assert _metric_labels() == dict.fromkeys((r.value for r in RejectReason), 0.0)


def test_a_reject_is_counted_under_its_own_reason() -> None:
    registry = CollectorRegistry()
    metrics = BotMetrics(registry, "b", SYMBOL, "sim", grid_layers=1)
    metrics.reject(RejectReason.BELOW_MARGIN)
    count = registry.get_sample_value

    assert count("mmfleet_orders_rejected_total", {**LABELS, "reason": "below_margin"}) == 1.0
    assert count("mmfleet_orders_rejected_total", {**LABELS, "reason": "other"}) == 0.0


def test_the_readme_lists_exactly_the_reasons() -> None:
    section = README.read_text().split("### Reject reasons", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(r.value for r in RejectReason)


# ----- GRVT: error codes and order reject reasons -----------------------------------------------------


@pytest.mark.parametrize("code", sorted(c for c, (status, _) in ERRORS.items() if 400 <= status < 500))
def test_every_grvt_refusal_code_maps_to_a_named_reason(code: int) -> None:
    """Through the client's own error mapping, as the adapter sees a refusal of our local GRVT server."""
    status, message = ERRORS[code]
    error = _failure("full/v1/create_order", status, {}, {"code": code, "message": message, "status": status})
    if code in NOT_ORDER_REFUSALS:
        assert not isinstance(error, GrvtApiError) or error.reason is RejectReason.OTHER
        return
    assert isinstance(error, GrvtApiError)
    assert error.reason in set(RejectReason) - {RejectReason.OTHER}, (code, message)


def test_below_margin_and_signature_refusals_are_named() -> None:
    def reason(code: int) -> RejectReason:
        status, message = ERRORS[code]
        return GrvtApiError("create_order", code, message, status).reason

    assert reason(2080) is RejectReason.BELOW_MARGIN
    assert reason(2000) is RejectReason.BAD_SIGNATURE
    assert reason(1000) is RejectReason.UNAUTHORIZED
    assert reason(2064) is RejectReason.PRICE_OFF_TICK
    assert reason(2065) is RejectReason.SIZE_OFF_LOT
    unknown = GrvtApiError("create_order", 2999, "a code GRVT adds later", 400)
    assert unknown.reason is RejectReason.OTHER
    named = GrvtApiError("create_order", None, "order failed: BELOW_MARGIN", 400)
    assert named.reason is RejectReason.BELOW_MARGIN


@pytest.mark.parametrize("name", [r.name for r in OrderRejectReason])
def test_every_grvt_reject_reason_of_a_rejected_order_is_named(name: str) -> None:
    order = {
        "order_id": "0x1",
        "legs": [{"instrument": SYMBOL, "size": "0.01", "limit_price": "100", "is_buying_asset": True}],
        "state": {"status": "REJECTED", "reject_reason": name, "traded_size": ["0"]},
        "metadata": {"client_order_id": "42"},
    }
    with pytest.raises(Rejected) as refused:
        _accepted(parse_order(order))
    expected = reject_reason(name)
    assert refused.value.reason is expected
    assert (expected is RejectReason.OTHER) == bool(CANCEL_LIKE.search(name)), name
    assert refused.value.reason in _metric_labels()


# ----- the paper fill model -------------------------------------------------------------------------------

SPEC = BUILTIN_INSTRUMENTS[SYMBOL]
BOOK = BookUpdate(
    SYMBOL, 1, (BookLevel(Decimal("100.0"), Decimal(1)),), (BookLevel(Decimal("100.2"), Decimal(1)),)
)
_prices = st.decimals(min_value=-1, max_value=200, places=2, allow_nan=False) | st.just(Decimal("NaN"))
_sizes = st.decimals(min_value=-1, max_value=1, places=4, allow_nan=False) | st.just(Decimal("Infinity"))


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from(Side), price=_prices, size=_sizes, post_only=st.booleans())
def test_every_paper_rejection_is_a_metric_label(
    side: Side, price: Decimal, size: Decimal, post_only: bool
) -> None:
    model = PaperFillModel(SPEC, PaperSettings(), random.Random(1))
    update = model.submit(OrderRequest(SYMBOL, side, price, size, "1", post_only=post_only), 1, BOOK)
    if update.status is OrderStatus.REJECTED:
        assert isinstance(update.reason, RejectReason)
        assert update.reason in _metric_labels()
