"""The capacity rule: how a provider's published capacity bounds its asks.

A provider publishes, per market, how many units it can sell. Its asks in that market share
them: the snapshot ask Flow Memory keeps for the published line, and any manual asks the
provider places itself. A manual ask may offer only what is published and not already offered
by its other manual asks, and it takes its units off the snapshot ask. A new snapshot replaces
the snapshot asks: one with units held by reservations is retired (it keeps exactly the held
units until the holds end), any other is cancelled, and the new ask offers what is published
less the manual asks and the retired asks' held units.

Pure functions: no database or web imports.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from flow_memory.kit.errors import Invalid
from flow_memory.market.books import MarketKey


def check_ask_capacity(*, available: int | None, offered: int, units: int) -> None:
    """Refuse a manual ask of ``units`` when the provider publishes no capacity for the
    market (``available`` None) or its manual asks there already offer ``offered``."""
    if available is None:
        raise Invalid(
            "the provider publishes no capacity for this model and unit",
            field="model",
            code="capacity_not_published",
            hint="publish capacity for this model and unit first",
        )
    if offered + units > available:
        raise Invalid(
            f"the ask offers {units} units but only {max(0, available - offered)} of the "
            f"published {available} are not already offered",
            field="units",
            code="capacity_exceeded",
            hint="lower units or publish more capacity",
        )


@dataclass(frozen=True, slots=True)
class RestingSnapshotAsk:
    """A snapshot ask of the provider as its book holds it."""

    order_id: str
    market: MarketKey
    remaining: int
    held: int


@dataclass(frozen=True, slots=True)
class PublishedLine:
    """One line of a capacity snapshot."""

    market: MarketKey
    available_units: int


@dataclass(frozen=True, slots=True)
class SnapshotPlan:
    """What a new snapshot does to the provider's asks."""

    cancel: tuple[str, ...]  # previous asks with nothing held
    retire: tuple[tuple[str, int], ...]  # (order id, units to take off: all but the held)
    offer: tuple[tuple[PublishedLine, int], ...]  # new asks: (line, units), units > 0


def plan_snapshot(
    previous: list[RestingSnapshotAsk],
    lines: list[PublishedLine],
    manual_units: dict[MarketKey, int],
) -> SnapshotPlan:
    """Replace ``previous`` snapshot asks with one ask per published line."""
    cancel: list[str] = []
    retire: list[tuple[str, int]] = []
    still_held: dict[MarketKey, int] = defaultdict(int)
    for ask in previous:
        if ask.held:
            retire.append((ask.order_id, max(0, ask.remaining - ask.held)))
            still_held[ask.market] += ask.held
        else:
            cancel.append(ask.order_id)
    offer = []
    for line in lines:
        units = line.available_units - manual_units.get(line.market, 0) - still_held[line.market]
        if units > 0:
            offer.append((line, units))
    return SnapshotPlan(tuple(cancel), tuple(retire), tuple(offer))
