"""The proxy remembers flat routing-field sets found clean, but only sets of short plain values:
a remembered set holds its values, and any proxy field may carry megabytes."""

from __future__ import annotations

import pytest

from flow_memory.proxy import bodies as api


@pytest.fixture(autouse=True)
def empty() -> None:
    api._CLEAN_FIELDS.clear()


def test_short_plain_fields_are_remembered_once_found_clean() -> None:
    fields = {"model": "m", "stream": False, "temperature": 0.2, "user": "u-1", "n": None}
    assert api._forbidden_in(fields) is None
    assert len(api._CLEAN_FIELDS) == 1
    assert api._forbidden_in(dict(fields)) is None
    assert len(api._CLEAN_FIELDS) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "m", "user": "x" * 1_000_000},
        {"model": "m", "k" * 200: 1},
        {"model": "m", "metadata": {"a": 1}},
        {"model": "m", "stop": ["a"]},
    ],
)
def test_long_or_nested_values_are_scanned_and_never_kept(fields: dict[str, object]) -> None:
    assert api._forbidden_in(fields) is None
    assert set() == api._CLEAN_FIELDS


def test_a_forbidden_value_is_refused_whether_or_not_it_could_be_kept() -> None:
    short = {"model": "m", "api_key": "sk-live-abcdef0123456789"}
    long = {"model": "m", "api_key": "sk-live-abcdef0123456789" + "x" * 500}
    for fields in (short, long, short):
        found = api._forbidden_in(fields)
        assert found is not None and found.field == "api_key"
    assert set() == api._CLEAN_FIELDS
