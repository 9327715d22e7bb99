"""Waking whoever waits for job events: the streams (coroutines on the server's event loop)
and the timer (a thread), from any thread that saw a job change commit or heard of one."""

from __future__ import annotations

import asyncio
import threading


class JobSignal:
    """``wake`` sets every subscribed stream's event and the timer's: cheap, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.timer = threading.Event()

    def subscribe(self) -> asyncio.Event:
        """An event the running loop's stream waits on; ``unsubscribe`` it when done."""
        event = asyncio.Event()
        with self._lock:
            self._streams.add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._streams = {(loop, e) for loop, e in self._streams if e is not event}

    def wake(self) -> None:
        self.timer.set()
        with self._lock:
            streams = list(self._streams)
        for loop, event in streams:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop has closed: the stream is gone
                self.unsubscribe(event)
