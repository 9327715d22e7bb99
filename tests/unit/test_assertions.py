"""The shared API assertions read numbers as the JSON parser does: a string that looks like a
number with an exponent (a result's hash) is not one, and a real exponent or a quoted price
fails."""

from __future__ import annotations

import httpx
import pytest

from tests.assertions import assert_plain_numbers


def _answer(text: str) -> httpx.Response:
    return httpx.Response(200, text=text)


def test_text_inside_a_string_is_never_taken_for_a_number() -> None:
    assert_plain_numbers(_answer('{"result_hash": "sha256:092e9abc", "price": 0.5}'))


@pytest.mark.parametrize("text", ['{"price": 1e-7}', "[1, 2.5E3]", '{"n": -3.0e+2}'])
def test_a_number_with_an_exponent_fails(text: str) -> None:
    with pytest.raises(AssertionError):
        assert_plain_numbers(_answer(text))


def test_a_price_sent_as_a_string_fails() -> None:
    with pytest.raises(AssertionError):
        assert_plain_numbers(_answer('{"unit_price":"0.5"}'))
