"""Waking whoever waits for job events: the server's event feed (a task on its event loop, which
wakes the streams) and the timer (a thread), from any thread that saw a job change commit or
heard of one."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime


class JobSignal:
    """``wake`` sets every subscribed waiter's event and the timer's: cheap, from any thread.

    A change committed by this server wakes the waiters (``wake_streams``) and wakes the timer
    only when it made a job due before the timer means to look again (``due``): most changes
    (a bid, an award in fixed mode) move nothing earlier, and waking the timer for each cost
    it a look at the database per commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.timer = threading.Event()
        # When the timer means to look next (the app's clock); None while it looks, when any
        # new due moment must wake it again.
        self.timer_plan: datetime | None = None

    def subscribe(self) -> asyncio.Event:
        """An event the running loop's waiter waits on; ``unsubscribe`` it when done."""
        event = asyncio.Event()
        with self._lock:
            self._streams.add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._streams = {(loop, e) for loop, e in self._streams if e is not event}

    def wake(self) -> None:
        """Wake the timer and every waiter (a change whose due moments are not known)."""
        self.timer.set()
        self.wake_streams()

    def wake_streams(self) -> None:
        with self._lock:
            streams = list(self._streams)
        for loop, event in streams:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop has closed: the waiter is gone
                self.unsubscribe(event)

    def due(self, moment: datetime) -> None:
        """A committed change made a job due at ``moment``: wake the timer if it means to
        look later than that (or is looking now, and may have missed it)."""
        plan = self.timer_plan
        if plan is None or moment < plan:
            self.timer.set()
