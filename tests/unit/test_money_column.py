"""The Money column's bind step writes what its two declared steps write (its own, then its
implementation type's), on both dialects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite

from flow_memory.kit.db import Money

VALUES = [
    None,
    Decimal("0.00050"),
    Decimal("1E-18"),
    Decimal("-12.5"),
    Decimal("123456789012345678.000000000000000001"),
    7,
    "0.25",
    0.1,
]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_money_binds_as_its_declared_steps_do(dialect: Any, value: Any) -> None:
    column_type = Money().dialect_impl(dialect)
    declared = TypeDecorator.bind_processor(column_type, dialect)
    ours = column_type.bind_processor(dialect)
    expected = value if declared is None else declared(value)
    got = value if ours is None else ours(value)
    assert got == expected and type(got) is type(expected)
    if dialect.name == "sqlite" and value is not None:
        assert got == format(Decimal(value), "f")
