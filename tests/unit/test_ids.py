"""Identifiers: a prefix and the first 20 characters of the base-32 encoding of 13 random
bytes."""

from __future__ import annotations

import base64
import re

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
