"""EIP-712 verification of GRVT orders, with the SDK's own type definitions.

The signed message is the one `pysdk` builds (`grvt_raw_signing.build_EIP712_order_message_data`):
`Order{subAccountID, isMarket, timeInForce, postOnly, reduceOnly, legs, nonce, expiration}` with legs
`{assetID = instrument_hash, contractSize = size * 10^base_decimals, limitPrice = price * 1e9,
isBuyingContract}` under the domain `{"GRVT Exchange", "0", chainId}`. The server rebuilds it from the
order JSON and recovers the signer; the checks and their GRVT codes:

- 2006 r/s not 0x + 64 hex, 2005 v not 27/28, 2007 s in the upper half of the curve;
- 1012 a `chain_id` in the signature that the server does not accept;
- 2001 the signature expired;
- 2002 the recovered address is not the claimed `signer` (a forged or tampered signature);
- 2000 the claimed signer is not the account's key (checked by the caller, see `accounts`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from pysdk.grvt_raw_env import GrvtEnv
from pysdk.grvt_raw_signing import EIP712_ORDER_MESSAGE_TYPE, SignTimeInForce, get_EIP712_domain_data

from bots.venues.grvt.server.wire import GrvtApiError

__all__ = ["PRICE_MULTIPLIER", "SignedLeg", "instrument_hash", "recover_order_signer"]

PRICE_MULTIPLIER = 1_000_000_000  # limitPrice is the price in 9 decimals
_HEX64 = re.compile(r"0x[0-9a-fA-F]{64}")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_KIND_PERPETUAL = 1


def instrument_hash(base_id: int, quote_id: int, kind_id: int = _KIND_PERPETUAL) -> str:
    """GRVT's asset id of a perpetual: kind, base and quote currency ids as bytes, most significant
    first: BTC_USDT_Perp (BTC=5, USDT=3) is "0x030501"."""
    return f"0x{quote_id:02x}{base_id:02x}{kind_id:02x}"


class SignedLeg:
    """One order leg as the signature sees it."""

    __slots__ = ("asset_id", "base_decimals", "is_buying", "price", "size")

    def __init__(
        self, asset_id: str, base_decimals: int, size: Decimal, price: Decimal, is_buying: bool
    ) -> None:
        self.asset_id = asset_id
        self.base_decimals = base_decimals
        self.size = size
        self.price = price
        self.is_buying = is_buying

    def message(self) -> dict[str, Any]:
        return {
            "assetID": int(self.asset_id, 16),
            "contractSize": int(self.size * Decimal(10**self.base_decimals)),
            "limitPrice": int(self.price * PRICE_MULTIPLIER),
            "isBuyingContract": self.is_buying,
        }


def _int_field(signature: Mapping[str, Any], key: str) -> int:
    value = signature.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise GrvtApiError(1003, f"signature.{key} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise GrvtApiError(1003, f"signature.{key} must be an integer") from None


def _signable(
    chain_id: int, order: Mapping[str, Any], legs: Iterable[SignedLeg], nonce: int, expiration: int
) -> SignableMessage:
    domain = get_EIP712_domain_data(GrvtEnv.TESTNET, chain_id)  # chainId given: the env is not used
    message = {
        "subAccountID": int(order["sub_account_id"]),
        "isMarket": bool(order.get("is_market") or False),
        "timeInForce": SignTimeInForce[order["time_in_force"]].value,
        "postOnly": bool(order.get("post_only") or False),
        "reduceOnly": bool(order.get("reduce_only") or False),
        "legs": [leg.message() for leg in legs],
        "nonce": nonce,
        "expiration": expiration,
    }
    return encode_typed_data(domain, EIP712_ORDER_MESSAGE_TYPE, message)


def recover_order_signer(
    order: Mapping[str, Any], legs: list[SignedLeg], *, chain_ids: Iterable[int], now_ns: int
) -> str:
    """Check the signature of a validated order (`time_in_force` a known name, `sub_account_id` an
    integer string) and return its signer address, lower case; raises `GrvtApiError` (see module)."""
    signature = order.get("signature")
    if not isinstance(signature, Mapping):
        raise GrvtApiError(1003, "order.signature is required")
    r, s, signer = signature.get("r"), signature.get("s"), signature.get("signer")
    if not (isinstance(r, str) and isinstance(s, str) and _HEX64.fullmatch(r) and _HEX64.fullmatch(s)):
        raise GrvtApiError(2006)
    v = _int_field(signature, "v")
    if v not in (27, 28):
        raise GrvtApiError(2005)
    r_int, s_int = int(r, 16), int(s, 16)
    if s_int > _SECP256K1_N // 2:
        raise GrvtApiError(2007)
    nonce, expiration = _int_field(signature, "nonce"), _int_field(signature, "expiration")
    if not 0 <= nonce < 2**32:
        raise GrvtApiError(1003, "signature.nonce must be a uint32")
    if expiration <= now_ns:
        raise GrvtApiError(2001)
    if not isinstance(signer, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", signer):
        raise GrvtApiError(1003, "signature.signer must be an address")
    allowed = list(chain_ids)
    claimed = signature.get("chain_id")
    if claimed is not None:
        chain = _int_field(signature, "chain_id")
        if chain not in allowed:
            raise GrvtApiError(1012)
        allowed = [chain]
    for chain_id in allowed:
        try:
            recovered = Account.recover_message(
                _signable(chain_id, order, legs, nonce, expiration), vrs=(v, r_int, s_int)
            )
        except Exception:  # a point off the curve and the like: not a signature of anything
            continue
        if recovered.lower() == signer.lower():
            return str(recovered).lower()
    raise GrvtApiError(2002)
