"""Prefixed, unguessable identifiers."""

from __future__ import annotations

import os

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base 32 (RFC 4648), lower case
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # ten bits at a time
_SHIFTS = tuple(range(90, -1, -10))


def new_id(prefix: str) -> str:
    """Return e.g. ``credref_k3j…``: a prefix and 20 random base-32 characters (100 bits).

    The characters are those of the base-32 encoding of 13 random bytes, cut to 20; they are
    worked out ten bits at a time because ``base64.b32encode`` costs four times as much, and
    the market writes several identifiers per order."""
    bits = int.from_bytes(os.urandom(13)) >> 4
    return f"{prefix}_{''.join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])}"
