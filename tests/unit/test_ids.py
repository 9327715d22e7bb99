"""Identifiers: a prefix and 20 base-32 characters, each five bits of one random byte;
ordered ones put nine characters of their time first."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from flow_memory.kit import ids


def test_an_id_is_the_prefix_and_twenty_base32_characters() -> None:
    made = {ids.new_id("ord") for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"ord_[a-z2-7]{20}", i) for i in made)


def test_each_character_is_the_low_five_bits_of_one_random_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for raw in (bytes(20), bytes(range(20)), b"\xff" * 20, bytes(range(200, 220))):
        monkeypatch.setattr(ids.os, "urandom", lambda n, raw=raw: (raw * n)[:n])
        ids._POOL.forget()  # the next identifier draws a fresh block
        assert ids.new_id("x") == "x_" + "".join(alphabet[b % 32] for b in raw)
    monkeypatch.setattr(ids.os, "urandom", lambda n: (bytes([31, 32, 63, 64, 255]) * n)[:n])
    ids._POOL.forget()
    assert ids.new_id("x") == "x_" + "7a7a7" * 4
    ids._POOL.forget()  # later tests draw real randomness


def test_random_characters_come_in_blocks_each_used_once(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []
    urandom = ids.os.urandom

    def counted(n: int) -> bytes:
        draws.append(n)
        return urandom(n)

    monkeypatch.setattr(ids.os, "urandom", counted)
    ids._POOL.forget()
    made = [ids.new_id("x") for _ in range(600)]
    assert len(set(made)) == 600
    assert all(re.fullmatch(r"x_[a-z2-7]{20}", i) for i in made)
    assert draws == [20 * 256] * 3  # 600 identifiers: two whole blocks and part of a third
    ids._POOL.forget()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # newer Pythons warn of forks
def test_threads_and_forked_processes_draw_their_own_characters() -> None:
    ids.new_id("x")  # this thread's block is drawn
    from_thread: list[str] = []
    worker = threading.Thread(target=lambda: from_thread.append(ids._POOL.text))
    worker.start()
    worker.join()
    assert from_thread == [""]  # another thread starts with no block of its own
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child: what is left of the parent's block must not be used again
        os.write(writing, str(ids._POOL.used).encode() + b" " + ids._POOL.text.encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        assert pipe.read() == "0 "


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
