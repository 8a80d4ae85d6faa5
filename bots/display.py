"""Figures as a person reads them: money to the cent, ratios in basis points, sizes to the lot.

Only for what is shown (reports, tables, artifacts); the ledger and every computation keep exact values.
Rounding is half-even, as the ledger's arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["bps", "size", "usd"]

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_BPS_PER_UNIT = Decimal(10_000)


def usd(value: Decimal | None, *, grouped: bool = False) -> str:
    """Money to the cent ("1234.57"; "1,234.57" when `grouped`); "" for None. Never "-0.00"."""
    if value is None:
        return ""
    cents = value.quantize(_CENT, rounding=ROUND_HALF_EVEN) + 0  # + 0 turns -0.00 into 0.00
    return format(cents, ",f" if grouped else "f")


def bps(ratio: Decimal | None) -> str:
    """A fraction in basis points to a tenth ("19.9" for 0.00199); "" for None."""
    if ratio is None:
        return ""
    return format((ratio * _BPS_PER_UNIT).quantize(_TENTH, rounding=ROUND_HALF_EVEN) + 0, "f")


def size(value: Decimal | None, lot: Decimal | None = None) -> str:
    """A size in base units to the instrument's lot ("0.005" for a 0.001 lot); as is without a lot."""
    if value is None:
        return ""
    shown = value.quantize(lot, rounding=ROUND_HALF_EVEN) if lot is not None else value
    return format(shown + 0, "f")
