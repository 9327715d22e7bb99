"""The capacity rule (flow_memory/market/capacity.py): what a new snapshot does to a
provider's asks, and how published capacity bounds a manual ask."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flow_memory.kit.errors import Invalid
from flow_memory.market.capacity import (
    PublishedLine,
    RestingSnapshotAsk,
    check_ask_capacity,
    plan_snapshot,
)

MARKETS = [("m1", "token"), ("m2", "token"), ("m1", "request")]


@st.composite
def resting_asks(draw: st.DrawFn) -> list[RestingSnapshotAsk]:
    asks = []
    for index in range(draw(st.integers(0, 5))):
        remaining = draw(st.integers(1, 10_000))
        held = draw(st.integers(0, remaining))
        asks.append(
            RestingSnapshotAsk(f"ord_{index}", draw(st.sampled_from(MARKETS)), remaining, held)
        )
    return asks


LINES = st.lists(
    st.builds(PublishedLine, st.sampled_from(MARKETS), st.integers(0, 20_000)),
    max_size=3,
    unique_by=lambda line: line.market,
)
MANUAL = st.dictionaries(st.sampled_from(MARKETS), st.integers(1, 20_000), max_size=3)


@given(previous=resting_asks(), lines=LINES, manual=MANUAL)
def test_a_snapshot_offers_what_is_published_less_what_is_already_committed(
    previous: list[RestingSnapshotAsk],
    lines: list[PublishedLine],
    manual: dict[tuple[str, str], int],
) -> None:
    plan = plan_snapshot(previous, lines, manual)
    by_id = {ask.order_id: ask for ask in previous}
    retired = dict(plan.retire)
    # Every previous ask is cancelled or retired, never both; only held ones are retired.
    assert set(plan.cancel) | set(retired) == set(by_id)
    assert not set(plan.cancel) & set(retired)
    assert all(by_id[order_id].held == 0 for order_id in plan.cancel)
    for order_id, units in retired.items():
        ask = by_id[order_id]
        assert ask.held > 0 and units == ask.remaining - ask.held  # only the held units stay
    offered = {line.market: units for line, units in plan.offer}
    for line in lines:
        held = sum(a.held for a in previous if a.market == line.market)
        room = line.available_units - manual.get(line.market, 0) - held
        assert offered.get(line.market, 0) == max(0, room)
        # What the market offers afresh, beside the manual asks and the held units, is never
        # more than was published.
        assert offered.get(line.market, 0) + manual.get(line.market, 0) + held <= max(
            line.available_units, manual.get(line.market, 0) + held
        )
    assert all(units > 0 for _, units in plan.offer)


def test_a_retired_ask_held_in_full_is_kept_as_it_is() -> None:
    # The case that answered 500: a second replacement of an ask whose every unit is held.
    plan = plan_snapshot(
        [RestingSnapshotAsk("ord_1", MARKETS[0], remaining=10_000, held=10_000)],
        [PublishedLine(MARKETS[0], 50_000)],
        {},
    )
    assert plan.retire == (("ord_1", 0),)
    assert plan.cancel == ()
    assert plan.offer == ((PublishedLine(MARKETS[0], 50_000), 40_000),)


def test_a_manual_ask_is_bounded_by_what_other_manual_asks_leave() -> None:
    check_ask_capacity(available=1000, offered=400, units=600)
    with pytest.raises(Invalid) as refused:
        check_ask_capacity(available=1000, offered=400, units=601)
    assert refused.value.code == "capacity_exceeded"
    assert "600 of the published 1000" in refused.value.message
    with pytest.raises(Invalid) as unpublished:
        check_ask_capacity(available=None, offered=0, units=1)
    assert unpublished.value.code == "capacity_not_published"
