"""The proxy's cache of selected routes: use limits, refresh ahead of expiry, and clearing."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from flow_memory.proxy.plans import PlanCache
from flow_memory.proxy.service import Plan

NOW = datetime(2026, 6, 17, tzinfo=UTC)
KEY = ("owner", "chat", "model", "{}")


def eight_tenths(low: float, high: float) -> float:
    """Test double for the drawn refresh share: always 0.8, inside the cache's range."""
    assert low <= 0.8 <= high
    return 0.8


def plan(route_id: str, expires_in: timedelta = timedelta(minutes=5)) -> Plan:
    return Plan(
        route_id=route_id,
        owner_id="owner",
        model="model",
        unit_type="token",
        estimated_units=1000,
        agent_id=None,
        workspace_id="workspace-default",
        task_id=None,
        goal_id=None,
        targets=(),
        allow_fallback=True,
        warnings=(),
        expires_at=NOW + expires_in,
    )


class Clock:
    """Test double for the monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_plan_is_used_while_fresh_then_while_refreshed_until_its_stale_limit() -> None:
    clock = Clock()
    cache = PlanCache(10, monotonic=clock, share=eight_tenths)
    cache.put(KEY, plan("route_a"), generation=cache.generation)
    assert cache.lookup(KEY, NOW) == (plan("route_a"), False)
    clock.now += 8.5
    assert cache.lookup(KEY, NOW) == (plan("route_a"), True)  # due for a refresh
    clock.now += 2  # past its seconds (the client paused): still used while it is refreshed
    assert cache.lookup(KEY, NOW) == (plan("route_a"), True)
    clock.now = 100.0 + 10 * PlanCache.STALE_LIMIT + 0.1
    assert cache.lookup(KEY, NOW) == (None, False)


def test_a_plan_is_never_used_past_its_route_expiry() -> None:
    cache = PlanCache(10, monotonic=Clock(), share=eight_tenths)
    short = replace(plan("route_b"), expires_at=NOW + timedelta(seconds=1))
    cache.put(KEY, short, generation=cache.generation)
    assert cache.get(KEY, NOW + timedelta(seconds=1)) is None


def test_plans_stored_together_come_due_apart_within_the_range() -> None:
    clock = Clock()
    cache = PlanCache(10, monotonic=clock, share=random.Random(7).uniform)
    keys = [("owner", "chat", f"model-{n}", "{}") for n in range(50)]
    for key in keys:
        cache.put(key, plan("route_a"), generation=cache.generation)
    due_after: dict[tuple[str, ...], float] = {}
    for tenth in range(0, 101):
        clock.now = 100.0 + tenth / 10
        for key in keys:
            if key not in due_after and cache.lookup(key, NOW)[1]:
                due_after[key] = tenth / 10
    low, high = PlanCache.REFRESH_AT
    assert set(due_after) == set(keys)
    assert all(10 * low <= seconds <= 10 * high + 0.1 for seconds in due_after.values())
    # Not all at once: a many-model client's refreshes spread over the range.
    assert len(set(due_after.values())) >= 20


def test_a_refresh_replaces_the_plan_in_the_background_once() -> None:
    async def test() -> None:
        clock = Clock()
        cache = PlanCache(10, monotonic=clock, share=eight_tenths)
        cache.put(KEY, plan("route_a"), generation=cache.generation)
        clock.now += 9
        release = asyncio.Event()
        selections = 0

        async def select() -> Plan:
            nonlocal selections
            selections += 1
            await release.wait()
            return plan("route_b")

        for _ in range(3):
            cached, due = cache.lookup(KEY, NOW)
            assert cached == plan("route_a") and due
            cache.refresh(KEY, select)
        await asyncio.sleep(0)
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert selections == 1
        assert cache.lookup(KEY, NOW) == (plan("route_b"), False)

    asyncio.run(test())


def test_a_failed_refresh_forgets_the_plan() -> None:
    async def test() -> None:
        clock = Clock()
        cache = PlanCache(10, monotonic=clock, share=eight_tenths)
        cache.put(KEY, plan("route_a"), generation=cache.generation)
        clock.now += 9  # due for a refresh

        async def no_route() -> Plan:
            raise RuntimeError("no provider can serve the model")

        cache.refresh(KEY, no_route)
        for _ in range(5):
            await asyncio.sleep(0)
        assert cache.get(KEY, NOW) is None

    asyncio.run(test())


def test_a_selection_begun_before_a_clear_is_not_kept() -> None:
    async def test() -> None:
        clock = Clock()
        cache = PlanCache(10, monotonic=clock, share=eight_tenths)
        cache.put(KEY, plan("route_a"), generation=cache.generation)
        clock.now += 9  # due for a refresh
        cleared = asyncio.Event()
        selected = asyncio.Event()

        async def slow_select() -> Plan:
            selected.set()
            await cleared.wait()
            return plan("route_stale")

        cache.refresh(KEY, slow_select)
        await selected.wait()  # the selection is under way
        cache.clear()  # e.g. a provider's credential reference was revoked
        cleared.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert cache.get(KEY, NOW) is None

    asyncio.run(test())


def test_a_refresh_that_waited_for_its_turn_skips_a_plan_selected_meanwhile() -> None:
    async def test() -> None:
        clock = Clock()
        cache = PlanCache(10, monotonic=clock, share=eight_tenths)
        busy = [("owner", "chat", f"busy-{n}", "{}") for n in range(PlanCache.REFRESHES_AT_ONCE)]
        for key in [*busy, KEY]:
            cache.put(key, plan("route_a"), generation=cache.generation)
        clock.now += 9
        release = asyncio.Event()
        selected: list[str] = []

        async def blocked() -> Plan:
            await release.wait()
            return plan("route_b")

        async def select() -> Plan:
            selected.append("again")
            return plan("route_b")

        for key in busy:  # every refresh slot taken
            cache.refresh(key, blocked)
        cache.refresh(KEY, select)  # waits for a slot
        for _ in range(10):
            await asyncio.sleep(0)
        # Meanwhile a call selected KEY in the foreground.
        cache.put(KEY, plan("route_fg"), generation=cache.generation)
        release.set()
        for _ in range(50):
            await asyncio.sleep(0)
        assert selected == []
        assert cache.lookup(KEY, NOW) == (plan("route_fg"), False)

    asyncio.run(test())


def test_background_refreshes_run_a_few_at_a_time() -> None:
    async def test() -> None:
        clock = Clock()
        cache = PlanCache(10, monotonic=clock, share=eight_tenths)
        keys = [("owner", "chat", f"model-{n}", "{}") for n in range(12)]
        for key in keys:
            cache.put(key, plan("route_a"), generation=cache.generation)
        clock.now += 9
        release = asyncio.Event()
        running = 0
        most = 0

        async def select() -> Plan:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1
            return plan("route_b")

        for key in keys:
            assert cache.lookup(key, NOW)[1]
            cache.refresh(key, select)
        for _ in range(10):
            await asyncio.sleep(0)
        assert most == PlanCache.REFRESHES_AT_ONCE
        release.set()
        for _ in range(50):
            await asyncio.sleep(0)
        assert all(cache.lookup(key, NOW) == (plan("route_b"), False) for key in keys)

    asyncio.run(test())
