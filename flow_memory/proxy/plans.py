"""The proxy's cache of selected default routes (``PlanCache``)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from flow_memory.proxy.service import Plan


class PlanCache:
    """Recently selected default routes, so steady SDK traffic does not select one per call.

    A cached plan is fresh for ``seconds``. Once it is part of the way there (a share drawn
    for each plan from ``REFRESH_AT``), one call starts a new selection in the background and
    every call keeps the cached plan until the new one is in: steady traffic never waits for a
    selection, and plans cached together (a client using many models) are not refreshed
    together. A plan past its seconds (its client paused) is still used, up to ``STALE_LIMIT``
    times its seconds and never past its route's expiry, while its refresh runs: a client
    that comes back to many models does not wait for a selection of each. At most
    ``REFRESHES_AT_ONCE`` background selections run together, so a burst of them neither
    starts a thread per model (starting one blocks the event loop) nor crowds out the calls.
    ``clear`` forgets every plan, and a selection begun before it is not kept."""

    REFRESH_AT = (0.5, 0.9)
    STALE_LIMIT = 3
    REFRESHES_AT_ONCE = 4

    def __init__(
        self,
        seconds: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        share: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._seconds = seconds
        self._monotonic = monotonic
        self._share = share
        # key -> (when stored, age at which it is due for a refresh, the plan)
        self._plans: dict[tuple[Any, ...], tuple[float, float, Plan]] = {}
        self._lock = threading.Lock()
        self._selecting: dict[tuple[Any, ...], asyncio.Lock] = {}
        self._refreshing: dict[tuple[Any, ...], asyncio.Task[None]] = {}
        self._refresh_slots = asyncio.Semaphore(self.REFRESHES_AT_ONCE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0

    def selecting(self, key: tuple[Any, ...]) -> asyncio.Lock:
        """One selection at a time per key: concurrent calls that miss wait for its plan
        instead of each selecting and recording a route of their own."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._selecting, self._refreshing = loop, {}, {}
            self._refresh_slots = asyncio.Semaphore(self.REFRESHES_AT_ONCE)
        if len(self._selecting) > 10_000:
            self._selecting = {k: v for k, v in self._selecting.items() if v.locked()}
        return self._selecting.setdefault(key, asyncio.Lock())

    def get(self, key: tuple[Any, ...], now: datetime) -> Plan | None:
        return self.lookup(key, now)[0]

    def lookup(self, key: tuple[Any, ...], now: datetime) -> tuple[Plan | None, bool]:
        """The cached plan, if still usable, and whether it is due for a refresh (always, past
        its seconds)."""
        with self._lock:
            found = self._plans.get(key)
        if found is None:
            return None, False
        stored_at, due_at, plan = found
        age = self._monotonic() - stored_at
        if age > self._seconds * self.STALE_LIMIT or plan.expires_at <= now:
            with self._lock:
                self._plans.pop(key, None)
            return None, False
        return plan, age > due_at

    def refresh(self, key: tuple[Any, ...], select: Callable[[], Awaitable[Plan]]) -> None:
        """Select a new plan for ``key`` in the background, unless one is being selected."""
        lock = self.selecting(key)
        if lock.locked() or key in self._refreshing:
            return

        async def run() -> None:
            try:
                async with self._refresh_slots, lock:
                    if self._fresh(key):
                        return  # selected meanwhile (in the foreground) while this waited
                    generation = self.generation
                    try:
                        plan = await select()
                    except Exception:
                        # The next call selects in the foreground and meets the error itself.
                        self.forget(key)
                        return
                    self.put(key, plan, generation=generation)
            finally:
                self._refreshing.pop(key, None)

        self._refreshing[key] = asyncio.get_running_loop().create_task(run())

    def _fresh(self, key: tuple[Any, ...]) -> bool:
        """Whether ``key`` holds a plan that is not yet due for a refresh."""
        with self._lock:
            found = self._plans.get(key)
        return found is not None and self._monotonic() - found[0] <= found[1]

    def put(self, key: tuple[Any, ...], plan: Plan, *, generation: int) -> None:
        """Keep ``plan`` unless the cache was cleared since its selection began."""
        if self._seconds <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._plans) > 10_000:
                self._plans.clear()
            due_at = self._seconds * self._share(*self.REFRESH_AT)
            self._plans[key] = (self._monotonic(), due_at, plan)

    def forget(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._plans.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._plans.clear()
