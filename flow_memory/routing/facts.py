"""Each market's provider offers (facts and derived health, without asks), kept for a second.

A quote judges every provider serving the model, and reading and judging them costs more than
the rest of the quote. Their facts move with heartbeats as well as with changes people make,
so they have no version to key a cache on; instead an app keeps each market's offers for at
most ``FRESH_SECONDS`` (of its clock and of real time), far under the health thresholds (90 s
and more). Changes in this process that gate routing forget them at once, after their commit:
credential revokes and rotations, enrollments, catalog and capacity publishes, and a heartbeat
of a provider that is not eligible yet. Changes made by another process show within the second.
One instance per app (``app.state.route_facts``), never shared between apps.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.kit.broadcast import ROUTES, announce
from flow_memory.kit.deps import on_session_end
from flow_memory.routing.policy import Offer

FRESH_SECONDS = 1.0
MARKETS_KEPT = 64  # markets whose offers an app keeps, least recently quoted dropped first


@dataclass(frozen=True)
class _Entry:
    offers: tuple[Offer, ...]
    listed: Decimal | None  # the list price the offers' reference prices were taken from
    derived_at: datetime  # the app's clock when health was derived
    read_at: float  # monotonic seconds when the facts were read
    unsettled: frozenset[str]  # providers whose route gate was not eligible


class RouteFacts:
    """Recently read offers per (model, unit_type), for one app."""

    def __init__(
        self,
        fresh_seconds: float = FRESH_SECONDS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh = timedelta(seconds=fresh_seconds)
        self._fresh_seconds = fresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._generation = 0  # moves whenever offers are forgotten
        self._cleared_at = 0  # the generation of the last clear
        self._beats: dict[str, int] = {}  # provider -> generation when it was last forgotten

    @property
    def generation(self) -> int:
        """Where forgetting stands: offers read from here on are kept unless forgotten since."""
        return self._generation

    def get(
        self, market: tuple[str, str], *, now: datetime, listed: Decimal | None
    ) -> tuple[Offer, ...] | None:
        """The market's kept offers if still fresh at ``now`` and taken with the same list
        price; None otherwise."""
        with self._lock:
            entry = self._entries.get(market)
            if entry is None:
                return None
            age = now - entry.derived_at
            if (
                entry.listed != listed
                or age < timedelta(0)
                or age > self.fresh
                or self._monotonic() - entry.read_at > self._fresh_seconds
            ):
                del self._entries[market]
                return None
            self._entries.move_to_end(market)
            return entry.offers

    def put(
        self,
        market: tuple[str, str],
        offers: tuple[Offer, ...],
        *,
        listed: Decimal | None,
        now: datetime,
        generation: int,
    ) -> None:
        """Keep offers read from ``generation`` on, unless what they show was forgotten since
        (a commit between the read and now may have changed it)."""
        unsettled = frozenset(o.provider_id for o in offers if o.route_gate != "eligible")
        entry = _Entry(offers, listed, now, self._monotonic(), unsettled)
        with self._lock:
            if self._cleared_at > generation or any(
                self._beats.get(p, -1) > generation for p in unsettled
            ):
                return
            self._entries[market] = entry
            self._entries.move_to_end(market)
            while len(self._entries) > MARKETS_KEPT:
                self._entries.popitem(last=False)

    def stamp(self) -> tuple[int, float]:
        """The generation and monotonic time to keep something read from now on under."""
        return self._generation, self._monotonic()

    def still_fresh(self, stamp: tuple[int, float], *, derived_at: datetime, now: datetime) -> bool:
        """Whether something read at ``stamp`` (health derived at ``derived_at``) may still be
        used at ``now``: nothing was forgotten since, and it is under the age limit."""
        generation, read_at = stamp
        age = now - derived_at
        return (
            generation == self._generation
            and timedelta(0) <= age <= self.fresh
            and self._monotonic() - read_at <= self._fresh_seconds
        )

    def clear(self) -> None:
        """Forget every market's offers."""
        with self._lock:
            self._generation += 1
            self._cleared_at = self._generation
            self._beats.clear()
            self._entries.clear()

    def forget_unsettled(self, provider_id: str) -> None:
        """Forget the markets where the provider was not eligible (a heartbeat may make it so);
        where it was, its next heartbeat changes nothing a quote shows."""
        with self._lock:
            self._generation += 1
            self._beats[provider_id] = self._generation
            for market in [m for m, e in self._entries.items() if provider_id in e.unsettled]:
                del self._entries[market]


def clear_after_commit(facts: RouteFacts, session: Session) -> None:
    """Forget every market's offers once the session's transaction commits, here and in every
    other server on the same PostgreSQL database."""

    def forget(committed: bool) -> None:
        if committed:
            facts.clear()

    on_session_end(session, forget)
    announce(session, ROUTES)
