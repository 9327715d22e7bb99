"""Amounts as integer parts: exact both ways, and refused when they would not be."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import hypothesis
import pytest
from hypothesis import strategies as st

from flow_memory.kit.money import attos_parts, exact, from_parts, to_attos, to_parts


@hypothesis.given(st.decimals(min_value=0, max_value=Decimal(10) ** 20, places=18, allow_nan=False))
def test_an_amount_goes_to_parts_and_back_exactly(value: Decimal) -> None:
    attos = to_attos(value)
    assert attos == Fraction(value) * 10**18  # exactly (a decimal product would round)
    assert to_parts(value) == attos_parts(attos)
    whole, nanos, rest = to_parts(value)
    assert 0 <= nanos < 10**9 and 0 <= rest < 10**9
    assert from_parts(whole, nanos, rest) == exact(value)


@pytest.mark.parametrize(
    "value", [Decimal("-0.000000000000000001"), Decimal("1E-19"), Decimal("0.1234567890123456789")]
)
def test_a_negative_or_finer_amount_is_refused(value: Decimal) -> None:
    with pytest.raises(ValueError, match="negative or has more than 18 decimal places"):
        to_attos(value)
    with pytest.raises(ValueError):
        to_parts(value)


def test_sums_of_attos_split_as_sums_of_amounts() -> None:
    amounts = [Decimal("0.612"), Decimal("1E-18"), Decimal("123456789.999999999999999999")]
    assert attos_parts(sum(map(to_attos, amounts))) == to_parts(sum(amounts, Decimal(0)))
