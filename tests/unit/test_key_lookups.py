"""Requests that miss the key cache together share one database lookup (kit/deps)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from flow_memory.keys.service import KEY_CACHE, KeyGrant
from flow_memory.kit import deps

GRANT = KeyGrant(key_id="key_1", owner_id="owner", scopes=frozenset({"inference:buy"}))
# Only against a hang: every wait below ends on its event long before.
GUARD_SECONDS = 30.0


@dataclass
class Lookups:
    """Test double for the database lookup: records each call and holds it until released.

    A call made once ``revoked`` is set finds the key gone and answers None."""

    calls: list[str] = field(default_factory=list)
    began: threading.Event = field(default_factory=threading.Event)
    revoked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def lookup(self, _factory: Any, token: str) -> KeyGrant | None:
        self.calls.append(token)
        grant = None if self.revoked.is_set() else GRANT
        self.began.set()
        if not self.release.wait(GUARD_SECONDS):
            raise AssertionError("the test never released the lookup")
        return grant


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lookups]:
    double = Lookups()
    monkeypatch.setattr(deps, "_lookup_grant", double.lookup)
    KEY_CACHE.clear()
    yield double
    double.release.set()  # a failed test leaves no thread waiting
    KEY_CACHE.clear()


def look_up() -> asyncio.Task[KeyGrant | None]:
    return asyncio.ensure_future(deps._look_up_once(None, "fm_token", "hash-1"))  # type: ignore[arg-type]


async def parked(*callers: asyncio.Task[Any]) -> None:
    """Returns once each caller waits on a lookup: it began one or joined the one in flight."""
    async with asyncio.timeout(GUARD_SECONDS):
        # _look_up_once has a single await, on the lookup: suspended there is parked.
        while any(
            inspect.getcoroutinestate(caller.get_coro()) != inspect.CORO_SUSPENDED
            for caller in callers
        ):
            assert not any(caller.done() for caller in callers), "a caller did not wait"
            await asyncio.sleep(0)  # lets the callers run up to their await


def test_concurrent_misses_share_one_lookup(lookups: Lookups) -> None:
    async def scenario() -> list[KeyGrant | None]:
        waiting = [look_up() for _ in range(16)]
        await parked(*waiting)  # all of them miss while the first lookup is held
        lookups.release.set()
        return await asyncio.gather(*waiting)

    assert asyncio.run(scenario()) == [GRANT] * 16
    assert lookups.calls == ["fm_token"]
    assert KEY_CACHE.get("hash-1") == GRANT


def test_a_request_after_a_revoke_does_not_join_an_earlier_lookup(lookups: Lookups) -> None:
    async def scenario() -> list[KeyGrant | None]:
        first = look_up()
        await parked(first)
        assert await asyncio.to_thread(lookups.began.wait, GUARD_SECONDS)  # it read the key
        KEY_CACHE.forget("key_1")  # a revoke lands while the first lookup is in flight
        lookups.revoked.set()
        second = look_up()
        await parked(second)
        lookups.release.set()
        return await asyncio.gather(first, second)

    # The second lookup found the key revoked; the first read it before the revoke.
    assert asyncio.run(scenario()) == [GRANT, None]
    assert lookups.calls == ["fm_token", "fm_token"]
    assert KEY_CACHE.get("hash-1") is None  # what the lookup begun before the revoke found


def test_a_caller_that_goes_away_does_not_cancel_the_shared_lookup(lookups: Lookups) -> None:
    async def scenario() -> KeyGrant | None:
        leaving = look_up()
        staying = look_up()
        await parked(leaving, staying)
        leaving.cancel()
        lookups.release.set()
        return await staying

    assert asyncio.run(scenario()) == GRANT
    assert lookups.calls == ["fm_token"]
