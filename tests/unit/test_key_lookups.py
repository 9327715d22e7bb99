"""Requests that miss the key cache together share one database lookup (kit/deps)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flow_memory.keys.service import KEY_CACHE, KeyGrant
from flow_memory.kit import deps

GRANT = KeyGrant(key_id="key_1", owner_id="owner", scopes=frozenset({"inference:buy"}))


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], threading.Event]:
    """A test double for the database lookup: counts calls and waits until released."""
    calls: list[str] = []
    release = threading.Event()

    def lookup(_factory: Any, token: str) -> KeyGrant:
        calls.append(token)
        release.wait(5)
        return GRANT

    monkeypatch.setattr(deps, "_lookup_grant", lookup)
    KEY_CACHE.clear()
    yield calls, release
    KEY_CACHE.clear()


def test_concurrent_misses_share_one_lookup(lookups: tuple[list[str], threading.Event]) -> None:
    calls, release = lookups

    async def scenario() -> list[KeyGrant | None]:
        waiting = [
            asyncio.ensure_future(deps._look_up_once(None, "fm_token", "hash-1"))  # type: ignore[arg-type]
            for _ in range(16)
        ]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(*waiting)

    assert asyncio.run(scenario()) == [GRANT] * 16
    assert calls == ["fm_token"]
    assert KEY_CACHE.get("hash-1") == GRANT


def test_a_request_after_a_revoke_does_not_join_an_earlier_lookup(
    lookups: tuple[list[str], threading.Event],
) -> None:
    calls, release = lookups

    async def scenario() -> None:
        first = asyncio.ensure_future(deps._look_up_once(None, "fm_token", "hash-1"))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        KEY_CACHE.forget("key_1")  # a revoke lands while the first lookup is in flight
        second = asyncio.ensure_future(deps._look_up_once(None, "fm_token", "hash-1"))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())
    assert calls == ["fm_token", "fm_token"]
    # The lookup begun before the revoke is not cached; the later one is.
    assert KEY_CACHE.get("hash-1") == GRANT


def test_a_caller_that_goes_away_does_not_cancel_the_shared_lookup(
    lookups: tuple[list[str], threading.Event],
) -> None:
    calls, release = lookups

    async def scenario() -> KeyGrant | None:
        leaving = asyncio.ensure_future(deps._look_up_once(None, "fm_token", "hash-1"))  # type: ignore[arg-type]
        staying = asyncio.ensure_future(deps._look_up_once(None, "fm_token", "hash-1"))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        leaving.cancel()
        release.set()
        return await staying

    assert asyncio.run(scenario()) == GRANT
    assert calls == ["fm_token"]
