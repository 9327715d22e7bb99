"""Decimal money: parsed exactly, rendered as plain JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, WithJsonSchema

# Prices are positive and carry at most 18 decimal places (stored NUMERIC(38, 18)).
UnitPrice = Annotated[
    Decimal,
    Field(gt=0, max_digits=38, decimal_places=18, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]
Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=38, decimal_places=18, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "minimum": 0}),
]


def plain(value: Decimal) -> str:
    """Fixed-point text of a Decimal without exponent or trailing zeros: 0.00000075, 0.2, 100."""
    text = format(value.normalize(), "f")
    return text if text not in {"-0", ""} else "0"
