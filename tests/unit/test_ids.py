"""Identifiers: a prefix and the first 20 characters of the base-32 encoding of 13 random
bytes; ordered ones put nine characters of their time first."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest

from flow_memory.kit import ids


def test_an_id_is_the_prefix_and_twenty_base32_characters() -> None:
    made = {ids.new_id("ord") for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"ord_[a-z2-7]{20}", i) for i in made)


def test_the_characters_are_the_base32_encoding_of_the_random_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for raw in (bytes(13), bytes(range(13)), b"\xff" * 13, bytes(range(200, 213))):
        monkeypatch.setattr(ids.os, "urandom", lambda n, raw=raw: raw[:n])
        assert ids.new_id("x") == "x_" + base64.b32encode(raw).decode()[:20].lower()


def test_ordered_ids_sort_by_their_time_and_keep_twenty_random_characters() -> None:
    start = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    moments = [start + timedelta(milliseconds=m) for m in (0, 1, 2, 31, 32, 999, 10**6, 10**9)]
    made = [ids.new_ordered_id("fill", moment) for moment in moments]
    assert made == sorted(made)
    assert all(re.fullmatch(r"fill_[a-z2-7]{29}", i) for i in made)
    same_time = {ids.new_ordered_id("fill", start) for _ in range(1000)}
    assert len(same_time) == 1000  # the random part tells them apart
    assert len({i[:14] for i in same_time}) == 1  # prefix, separator and time
    assert ids.new_ordered_id("ord", moments[1]) > ids.new_ordered_id("ord", moments[0])
