"""jsonenc.dumps: Decimal as plain JSON numbers, datetimes in UTC with Z, nothing else lossy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flow_memory.kit.jsonenc import dumps, render


class TestDecimal:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (Decimal("0.00000075"), "0.00000075"),
            (Decimal("7.5E-7"), "0.00000075"),
            (Decimal("0.2"), "0.2"),
            (Decimal("0.20000"), "0.2"),
            (Decimal("100"), "100"),
            (Decimal("1E+2"), "100"),
            (Decimal("100.000"), "100"),
            (Decimal("0"), "0"),
            (Decimal("0E-18"), "0"),
            (Decimal("-0"), "0"),
            (Decimal("-0.000"), "0"),
            (Decimal("-1.50"), "-1.5"),
            (Decimal("0.000000000000000001"), "0.000000000000000001"),
            (Decimal("1234567890.123456789012345678"), "1234567890.123456789012345678"),
        ],
    )
    def test_plain_fixed_point(self, value: Decimal, text: str) -> None:
        assert dumps(value) == text

    def test_all_38_digits_of_a_stored_amount_are_kept(self) -> None:
        value = Decimal("12345678901234567890.123456789012345678")
        assert dumps(value) == "12345678901234567890.123456789012345678"

    def test_a_decimal_inside_a_document_is_a_number_not_a_string(self) -> None:
        text = dumps({"ask_unit_price": Decimal("7.5E-7")})
        assert text == '{"ask_unit_price":0.00000075}'
        assert json.loads(text, parse_float=Decimal) == {"ask_unit_price": Decimal("0.00000075")}

    @settings(max_examples=500, deadline=None)
    @given(
        st.builds(
            lambda digits, exponent: Decimal(digits).scaleb(exponent),
            st.integers(min_value=-(10**28) + 1, max_value=10**28 - 1),
            st.integers(min_value=-40, max_value=40),
        )
    )
    def test_every_decimal_of_up_to_28_digits_round_trips_without_an_exponent(
        self, value: Decimal
    ) -> None:
        text = dumps(value)
        assert "e" not in text.lower()
        parsed = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        assert parsed == value

    @pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("nan")])
    def test_non_finite_numbers_are_refused(self, value: Any) -> None:
        with pytest.raises(ValueError):
            dumps(value)


class TestDatetime:
    def test_utc_ends_with_z(self) -> None:
        assert dumps(datetime(2026, 6, 17, 0, 5, tzinfo=UTC)) == '"2026-06-17T00:05:00Z"'

    def test_other_offsets_are_converted_to_utc(self) -> None:
        moment = datetime(2026, 6, 17, 2, 0, tzinfo=timezone(timedelta(hours=2)))
        assert dumps(moment) == '"2026-06-17T00:00:00Z"'

    def test_microseconds_are_kept(self) -> None:
        moment = datetime(2026, 6, 17, 0, 0, 0, 123456, tzinfo=UTC)
        assert dumps(moment) == '"2026-06-17T00:00:00.123456Z"'

    def test_no_offset_text_remains(self) -> None:
        text = dumps([datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))])
        assert text == '["2026-01-01T05:00:00Z"]'
        assert "+" not in text


class Colour(Enum):
    RED = "red"


class Item(BaseModel):
    price: Decimal
    at: datetime


class TestOtherValues:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, "null"),
            (True, "true"),
            (False, "false"),
            (0, "0"),
            (-12, "-12"),
            (10**30, "1" + "0" * 30),
            (0.5, "0.5"),
            ("plain", '"plain"'),
            ('quote " and \\ back', '"quote \\" and \\\\ back"'),
            ("line\nbreak", '"line\\nbreak"'),
            ("é", '"\\u00e9"'),
            ([], "[]"),
            ({}, "{}"),
            ((1, 2), "[1,2]"),
            (Colour.RED, '"red"'),
        ],
    )
    def test_scalars_and_containers(self, value: Any, text: str) -> None:
        assert dumps(value) == text

    def test_booleans_are_not_numbers(self) -> None:
        assert dumps([True, 1, False, 0]) == "[true,1,false,0]"

    def test_dict_keys_become_strings_and_order_is_kept(self) -> None:
        assert dumps({"b": 1, "a": 2, 3: "x"}) == '{"b":1,"a":2,"3":"x"}'

    def test_pydantic_models_are_encoded_with_the_same_rules(self) -> None:
        item = Item(price=Decimal("7.5E-7"), at=datetime(2026, 6, 17, tzinfo=UTC))
        assert dumps({"item": item}) == (
            '{"item":{"price":0.00000075,"at":"2026-06-17T00:00:00Z"}}'
        )

    def test_nested_documents_are_valid_json(self) -> None:
        document = {"ok": True, "rows": [{"p": Decimal("0.2"), "n": None, "s": "x"}]}
        assert json.loads(dumps(document)) == {
            "ok": True,
            "rows": [{"p": 0.2, "n": None, "s": "x"}],
        }

    @pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes"])
    def test_unknown_types_are_refused(self, value: Any) -> None:
        with pytest.raises(TypeError):
            dumps(value)

    @settings(max_examples=200, deadline=None)
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.text()
            | st.floats(allow_nan=False, allow_infinity=False),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        )
    )
    def test_plain_data_matches_the_standard_library(self, value: Any) -> None:
        assert json.loads(dumps(value)) == json.loads(json.dumps(value))


class TestRender:
    """The response fast path writes what ``dumps`` writes (non-ASCII as UTF-8, not escaped)."""

    @pytest.mark.parametrize(
        "value",
        [
            Decimal("7.5E-7"),
            Decimal("12345678901234567890.123456789012345678"),
            Decimal("-0.000"),
            {"price": Decimal("0.20000"), "at": datetime(2026, 6, 17, tzinfo=UTC)},
            [datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))],
            datetime(2026, 6, 17, 0, 0, 0, 123456, tzinfo=UTC),
            {"b": 1, "a": 2, 3: "x"},
            {"item": Item(price=Decimal("7.5E-7"), at=datetime(2026, 6, 17, tzinfo=UTC))},
            [True, 1, False, 0, None, 0.5, (1, 2), Colour.RED],
            'quote " and \\ back, line\nbreak, tab\t, nul\u0000, é and 🙂',
            10**30,  # beyond 64 bits: written by the pure-Python path
            {"big": [2**64, Decimal("0.1")]},
        ],
    )
    def test_same_document_as_dumps(self, value: Any) -> None:
        text = render(value).decode()
        assert json.loads(text, parse_float=Decimal) == json.loads(
            dumps(value), parse_float=Decimal
        )

    def test_decimals_and_times_are_written_exactly_as_dumps_writes_them(self) -> None:
        document = {
            "price": Decimal("7.5E-7"),
            "cost": Decimal("100.000"),
            "at": datetime(2026, 6, 17, 2, 0, tzinfo=timezone(timedelta(hours=2))),
        }
        assert render(document) == dumps(document).encode()

    def test_a_remembered_utc_time_is_written_as_dumps_writes_it(self) -> None:
        moment = datetime(2026, 6, 17, 0, 0, 0, 123456, tzinfo=UTC)
        same_instant = moment.astimezone(timezone(timedelta(hours=2)))
        whole_second = datetime(2026, 6, 17, tzinfo=UTC)
        document = [moment, same_instant, whole_second, moment, same_instant, whole_second]
        assert render(document) == dumps(document).encode()

    @pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("-Infinity")])
    def test_non_finite_decimals_are_refused(self, value: Decimal) -> None:
        with pytest.raises(ValueError):
            render({"amount": value})

    @pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes"])
    def test_unknown_types_are_refused(self, value: Any) -> None:
        with pytest.raises(TypeError):
            render([value])

    @settings(max_examples=200, deadline=None)
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.text()
            | st.decimals(allow_nan=False, allow_infinity=False)
            | st.floats(allow_nan=False, allow_infinity=False),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        )
    )
    def test_any_plain_document_matches_dumps(self, value: Any) -> None:
        assert json.loads(render(value), parse_float=Decimal) == json.loads(
            dumps(value), parse_float=Decimal
        )
