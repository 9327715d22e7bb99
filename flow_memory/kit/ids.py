"""Prefixed, unguessable identifiers."""

from __future__ import annotations

import os
import threading
from datetime import datetime

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base 32 (RFC 4648), lower case
# Each byte's low five bits, as their character.
_CHARACTERS = bytes(ord(_ALPHABET[value & 31]) for value in range(256))


def new_id(prefix: str) -> str:
    """Return e.g. ``credref_k3j…``: a prefix and 20 random base-32 characters (100 bits).

    Each character is five bits of one random byte, picked in one ``bytes.translate``: the
    market writes several identifiers per order, and working the characters out bit by bit
    costs three times as much."""
    return f"{prefix}_{_random_characters()}"


def _random_characters() -> str:
    pool = _POOL
    start = pool.used
    if start == len(pool.text):
        pool.refill()
        start = 0
    pool.used = start + 20
    return pool.text[start : start + 20]


class _Pool(threading.local):
    """Random characters drawn from the system in blocks, one block per thread: one system
    call per 256 identifiers instead of one each. A process forked off draws afresh."""

    def __init__(self) -> None:
        self.text = ""
        self.used = 0

    def refill(self) -> None:
        self.text = os.urandom(20 * 256).translate(_CHARACTERS).decode()
        self.used = 0

    def forget(self) -> None:
        self.text = ""
        self.used = 0


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


# The same characters in the order text sorts them (digits before letters).
_SORTED_ALPHABET = "".join(sorted(_ALPHABET))
_STAMP_SHIFTS = tuple(range(40, -1, -5))  # nine characters: 45 bits of milliseconds


def new_ordered_id(prefix: str, now: datetime) -> str:
    """Return e.g. ``ord_2cx7…``: a prefix, nine characters of ``now`` (milliseconds since
    1970, in an order text sorts the same way), then the 20 random characters of ``new_id``.

    For rows written by the thousand: identifiers that sort by time go at the end of their
    table's key index, so a batch of them changes a few pages of it instead of one page per
    row, and the commit writes that much less."""
    global _last_stamp
    moment = int(now.timestamp() * 1000)
    seen, stamp = _last_stamp  # the rows of a batch share one time
    if moment != seen:
        stamp = "".join([_SORTED_ALPHABET[(moment >> shift) & 31] for shift in _STAMP_SHIFTS])
        _last_stamp = (moment, stamp)
    return f"{prefix}_{stamp}{_random_characters()}"


_last_stamp = (-1, "")
