"""Decimal money: parsed exactly, rendered as plain JSON numbers."""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Annotated

from pydantic import Field, WithJsonSchema

# Prices are positive and carry at most 18 decimal places (stored NUMERIC(38, 18)), so a price
# lies in [1e-18, 1e20); the published request schema states those bounds.
_DECIMAL_RULE = "A decimal JSON number with at most 18 decimal places and 38 digits in total."
UnitPrice = Annotated[
    Decimal,
    Field(gt=0, max_digits=38, decimal_places=18, allow_inf_nan=False),
    WithJsonSchema(
        {"type": "number", "minimum": 1e-18, "exclusiveMaximum": 1e20, "description": _DECIMAL_RULE}
    ),
]
Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=38, decimal_places=18, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "minimum": 0, "description": _DECIMAL_RULE}),
]


_EXACT = Context(prec=60)
EXACT = _EXACT  # for arithmetic that must not round: amounts have up to 38 digits


def plain(value: Decimal) -> str:
    """Fixed-point text of a Decimal without exponent or trailing zeros: 0.00000075, 0.2, 100."""
    if not value.is_finite():
        raise ValueError("NaN and Infinity are not JSON numbers")
    text = format(value.normalize(_EXACT), "f")
    return text if text not in {"-0", ""} else "0"


def exact(value: Decimal) -> Decimal:
    """Drop trailing zeros without rounding (the default context keeps only 28 digits)."""
    return value.normalize(_EXACT)


# Amounts summed in SQL are kept as three integers, so SQLite (which has no exact decimal type)
# sums them exactly too: whole credits, billionths, and billionths of a billionth.
NANO = 10**9
ATTO = 10**18
Parts = tuple[int, int, int]


def to_parts(value: Decimal) -> Parts:
    """Split a non-negative amount of at most 18 decimal places into (whole, nanos, attos)."""
    return attos_parts(to_attos(value))


def to_attos(value: Decimal) -> int:
    """A non-negative amount of at most 18 decimal places, in billionths of a billionth (sums
    of them are exact and cheap: integers)."""
    attos, denominator = value.scaleb(18, _EXACT).as_integer_ratio()
    if attos < 0 or denominator != 1:
        raise ValueError(f"{value} is negative or has more than 18 decimal places")
    return attos


def attos_parts(attos: int) -> Parts:
    """An amount in attos as (whole, nanos, attos)."""
    whole, fraction = divmod(attos, ATTO)
    nanos, rest = divmod(fraction, NANO)
    return whole, nanos, rest


def from_parts(whole: int, nanos: int, attos: int) -> Decimal:
    """The exact amount of (possibly unnormalised, e.g. summed) parts."""
    return exact(Decimal(whole * ATTO + nanos * NANO + attos).scaleb(-18, _EXACT))
