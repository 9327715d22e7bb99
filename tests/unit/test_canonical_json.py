"""canonical_json (the JSON columns' bind step) gives exactly what the round trip through json
gives: sorted keys, JSON's own values, ``str`` for anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite

from flow_memory.kit.db import JSONDocument, canonical_json


def round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.decimals(allow_nan=False),
    st.just(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.dictionaries(st.integers(), inner, max_size=3),
    ),
    max_leaves=20,
)


plain_documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself, and key order compared too."""
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@given(st.one_of(documents, plain_documents))
def test_canonical_json_is_the_round_trip(value: Any) -> None:
    try:
        expected = round_trip(value)
    except TypeError:  # keys json cannot sort (mixed types): both refuse
        try:
            canonical_json(value)
        except TypeError:
            return
        raise AssertionError("canonical_json accepted what json refuses") from None
    assert same(canonical_json(value), expected)


@pytest.mark.parametrize("price", [0.5, Decimal("0.5")])
def test_keys_are_sorted_at_every_level(price: Any) -> None:
    value = {"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": price}}
    result = canonical_json(value)
    assert list(result) == ["a", "b"]
    assert list(result["a"]) == ["c", "d"] and list(result["a"]["d"][0]) == ["y", "z"]
    assert result["a"]["c"] == (0.5 if isinstance(price, float) else "0.5")


def _unfused(dialect: Any) -> Any:
    """The column's bind step as two steps: ``canonical_json``, then the JSON type's own."""
    column_type = JSONDocument().dialect_impl(dialect)
    return TypeDecorator.bind_processor(column_type, dialect)


def written(value: Any) -> Any:
    """What a bind step hands the driver: text, or (psycopg) the document it will write."""
    return getattr(value, "obj", value)


DIALECTS = [sqlite.dialect(), postgresql.psycopg.dialect()]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@given(value=st.one_of(documents, plain_documents))
def test_the_column_writes_what_the_two_steps_write(dialect: Any, value: Any) -> None:
    fused = JSONDocument().dialect_impl(dialect).bind_processor(dialect)
    unfused = _unfused(dialect)
    try:
        expected = written(unfused(value))
    except TypeError:  # keys json cannot sort: both refuse
        with pytest.raises(TypeError):
            fused(value)
        return
    assert same(written(fused(value)), expected)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_an_empty_object_and_a_feed_payload_are_written_as_before(dialect: Any) -> None:
    fused = JSONDocument().dialect_impl(dialect).bind_processor(dialect)
    payload = {"units": 300, "side": "bid", "limit_unit_price": "0.0005", "status": "open"}
    for value in ({}, dict(), payload, {"nested": {"b": [1.5, None], "a": True}}):
        assert same(written(fused(value)), written(_unfused(dialect)(value)))
    if dialect.name == "sqlite":
        assert fused(payload) == json.dumps(payload, sort_keys=True)
