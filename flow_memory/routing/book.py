"""One market's resting asks as price levels per provider, kept between quotes.

A market's version moves with every committed change to its book (orders placed, cancelled,
filled or expired, capacity asks synced, reservations made): the market engine relies on that to
reuse its own in-memory book, and quotes rely on it the same way, so the asks of a deep book are
read once and serve every quote until the version moves. Reservation holds end with time rather
than with a version, so they are read on every quote and taken off the levels then.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from flow_memory.routing import repository
from flow_memory.routing.policy import Level

MARKETS_KEPT = 64  # markets whose levels each engine keeps, least recently quoted dropped first


@dataclass(frozen=True)
class AskLevels:
    by_provider: dict[str, tuple[Level, ...]]  # cheapest first, holds not taken off
    where: dict[str, tuple[str, int]]  # order id -> (provider id, index of its level)


def read_levels(session: Session, *, model: str, unit_type: str) -> AskLevels:
    """Collapse the book's resting asks into levels: a provider's asks at one price are one
    level with their units summed, named after its first ask in time priority."""
    # (provider, price) -> [first order id, remaining units, ask count, order ids]
    found: dict[tuple[str, Decimal], list[Any]] = {}
    for provider_id, order_id, price, remaining in repository.resting_asks(
        session, model=model, unit_type=unit_type
    ):
        level = found.get((provider_id, price))
        if level is None:
            found[(provider_id, price)] = [order_id, remaining, 1, [order_id]]
        else:
            level[1] += remaining
            level[2] += 1
            level[3].append(order_id)
    grouped: dict[str, list[tuple[Level, list[str]]]] = {}
    for (provider_id, price), (first, remaining, count, orders) in found.items():
        grouped.setdefault(provider_id, []).append((Level(price, remaining, first, count), orders))
    by_provider: dict[str, tuple[Level, ...]] = {}
    where: dict[str, tuple[str, int]] = {}
    for provider_id, levels in grouped.items():
        levels.sort(key=lambda pair: pair[0].unit_price)
        by_provider[provider_id] = tuple(level for level, _ in levels)
        for index, (_, orders) in enumerate(levels):
            for order_id in orders:
                where[order_id] = (provider_id, index)
    return AskLevels(by_provider, where)


class _Kept:
    """The levels of recently quoted markets of one database, with the version they match."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.markets: OrderedDict[tuple[str, str], tuple[Any, AskLevels]] = OrderedDict()

    def get(self, market: tuple[str, str], version: Any) -> AskLevels | None:
        with self.lock:
            entry = self.markets.get(market)
            if entry is None or entry[0] != version:
                return None
            self.markets.move_to_end(market)
            return entry[1]

    def put(self, market: tuple[str, str], version: Any, levels: AskLevels) -> None:
        with self.lock:
            self.markets[market] = (version, levels)
            self.markets.move_to_end(market)
            while len(self.markets) > MARKETS_KEPT:
                self.markets.popitem(last=False)


_kept: WeakKeyDictionary[Engine, _Kept] = WeakKeyDictionary()
_kept_lock = threading.Lock()


def _kept_for(session: Session) -> _Kept:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _kept_lock:
        kept = _kept.get(engine)
        if kept is None:
            kept = _kept[engine] = _Kept()
        return kept


def ask_levels(
    session: Session, *, model: str, unit_type: str, now: datetime
) -> dict[str, tuple[Level, ...]]:
    """Each provider's levels in the book, cheapest first, less the units live holds keep."""
    market = (model, unit_type)
    version = repository.market_version(session, model=model, unit_type=unit_type)
    kept = _kept_for(session)
    levels = None if version is None else kept.get(market, version)
    if levels is None:
        levels = read_levels(session, model=model, unit_type=unit_type)
        if version is not None:
            kept.put(market, version, levels)
    held = repository.held_units(session, model=model, unit_type=unit_type, now=now)
    if not held:
        return levels.by_provider
    adjusted = dict(levels.by_provider)
    for order_id, units in held.items():
        place = levels.where.get(order_id)
        if place is None:
            continue
        provider_id, index = place
        provider_levels = list(adjusted[provider_id])
        level = provider_levels[index]
        provider_levels[index] = level._replace(available_units=level.available_units - units)
        adjusted[provider_id] = tuple(provider_levels)
    return adjusted
