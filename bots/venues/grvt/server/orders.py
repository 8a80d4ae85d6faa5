"""Validation of a `create_order` request, in the order a GRVT gateway checks it.

1. structure: 2010 order id set, 2011 no client order id, 2040/2042 not exactly one leg, 2061 unknown
   instrument, 2030 time in force not GTT/IOC/FOK, 2032 post-only with IOC/FOK, 2020 market order
   with a price, 2021 limit order without one, 1003 a malformed number;
2. signature (`signing`): 2006/2005/2007 format, 1012 chain id, 2001 expired, 2002 not signed
   by the claimed signer; then 2000 the signer is not the account's key (trust on first use);
3. trading rules: 2064 price off the tick, 2065 size off the lot, 2062 size below the minimum,
   2012 client order id of an active order, 2400/2401 reduce-only with no position / increasing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bots.venues.grvt.server.accounts import Accounts, SubAccount
from bots.venues.grvt.server.config import GrvtSimConfig
from bots.venues.grvt.server.signing import SignedLeg, recover_order_signer
from bots.venues.grvt.server.wire import GrvtApiError, dec

if TYPE_CHECKING:
    from bots.venues.grvt.server.instruments import Instrument

__all__ = ["ParsedOrder", "parse_order"]

_BOOK_TIFS = ("GOOD_TILL_TIME", "IMMEDIATE_OR_CANCEL", "FILL_OR_KILL")


@dataclass(frozen=True, slots=True)
class ParsedOrder:
    """A create-order request that passed every check; `price` None for a market order."""

    instrument: str
    client_order_id: str
    is_buy: bool
    price: Decimal | None
    size: Decimal
    time_in_force: str
    post_only: bool
    reduce_only: bool
    signature: dict[str, Any]
    signer: str
    expiration_ns: int


def _client_order_id(order: Mapping[str, Any]) -> str:
    metadata = order.get("metadata")
    cid = metadata.get("client_order_id") if isinstance(metadata, Mapping) else None
    if isinstance(cid, bool) or not isinstance(cid, str | int) or str(cid) in ("", "0"):
        raise GrvtApiError(2011)
    return str(cid)


def _leg(
    order: Mapping[str, Any], instruments: Mapping[str, Instrument]
) -> tuple[Mapping[str, Any], Instrument]:
    legs = order.get("legs")
    if not isinstance(legs, list) or not legs:
        raise GrvtApiError(2040)
    if len(legs) > 1:
        raise GrvtApiError(2042)
    leg = legs[0]
    if not isinstance(leg, Mapping):
        raise GrvtApiError(1003, "legs[0] must be an object")
    instrument = instruments.get(leg.get("instrument") or "")
    if instrument is None:
        raise GrvtApiError(2061)
    return leg, instrument


def _signature_echo(signature: Mapping[str, Any]) -> dict[str, Any]:
    """The signature as the reply carries it (the SDK's `Signature` fields, normalised)."""
    return {
        "signer": str(signature["signer"]).lower(),
        "r": signature["r"],
        "s": signature["s"],
        "v": int(signature["v"]),
        "expiration": str(int(signature["expiration"])),
        "nonce": int(signature["nonce"]),
    }


def parse_order(
    order: Mapping[str, Any],
    instruments: Mapping[str, Instrument],
    account: SubAccount,
    config: GrvtSimConfig,
    now_ns: int,
) -> ParsedOrder:
    """Check an order (see module docstring); raises `GrvtApiError` with GRVT's code."""
    if order.get("order_id") not in (None, "", "0", "0x0", "0x00"):
        raise GrvtApiError(2010)
    client_order_id = _client_order_id(order)
    leg, instrument = _leg(order, instruments)
    tif = order.get("time_in_force")
    if tif not in _BOOK_TIFS:
        raise GrvtApiError(2030)
    post_only, reduce_only = bool(order.get("post_only")), bool(order.get("reduce_only"))
    if post_only and tif != "GOOD_TILL_TIME":
        raise GrvtApiError(2032)
    is_market = bool(order.get("is_market"))
    raw_price = leg.get("limit_price")
    price = dec(raw_price, "limit_price") if raw_price not in (None, "") else Decimal(0)
    if is_market and price:
        raise GrvtApiError(2020)
    if not is_market and price <= 0:
        raise GrvtApiError(2021)
    size = dec(leg.get("size"), "size")
    if size <= 0:
        raise GrvtApiError(1003, "size must be positive")
    is_buy = leg.get("is_buying_asset")
    if not isinstance(is_buy, bool):
        raise GrvtApiError(1003, "is_buying_asset must be a boolean")

    signed = SignedLeg(instrument.hash, config.base_decimals, size, price, is_buy)
    signer = recover_order_signer(order, [signed], chain_ids=config.chain_ids, now_ns=now_ns)
    Accounts.authorize_signer(account, signer)

    spec = instrument.spec
    if not is_market and price % spec.tick_size:
        raise GrvtApiError(2064)
    if size % spec.lot_size:
        raise GrvtApiError(2065)
    if size < spec.effective_min_size:
        raise GrvtApiError(2062)
    if any(o.client_order_id == client_order_id for o in account.active.values()):
        raise GrvtApiError(2012)
    if reduce_only:
        held = account.positions.get(instrument.name)
        if held is None or not held.size:
            raise GrvtApiError(2400)
        if (held.size > 0) == is_buy:
            raise GrvtApiError(2401)
    signature = _signature_echo(order["signature"])
    return ParsedOrder(
        instrument=instrument.name,
        client_order_id=client_order_id,
        is_buy=is_buy,
        price=None if is_market else price,
        size=size,
        time_in_force=str(tif),
        post_only=post_only,
        reduce_only=reduce_only,
        signature=signature,
        signer=signer,
        expiration_ns=int(signature["expiration"]),
    )
