"""The pure parts of the usage service: a record's costs and savings (the contract's rule),
exact totals, the whole days inside a time range, filters and cursors."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from flow_memory.kit.errors import Invalid
from flow_memory.usage.models import UsageRecord
from flow_memory.usage.rollup import Totals
from flow_memory.usage.service import (
    UsageFilters,
    UsageInput,
    _decode_cursor,
    _encode_cursor,
    _whole_days,
    build_record,
    record_values,
)

D = Decimal
NOW = datetime(2026, 6, 17, 12, 30, tzinfo=UTC)
ATTO = 10**18
PLUS_TWO = timezone(timedelta(hours=2))


def usage_input(**overrides: object) -> UsageInput:
    fields: dict[str, object] = {
        "source": "market_fill",
        "decision": "market_fill",
        "owner_id": "agent-research-1",
        "seller_owner_id": "provider-team-alpha",
        "model": "flow-memory-orchestrator",
        "unit_type": "token",
        "provider_id": "prov_alpha",
        "estimated_units": 250_000,
        "actual_units": 250_000,
        "unit_price": D("0.00000075"),
        "reference_unit_price": D("0.000001"),
    }
    fields.update(overrides)
    return UsageInput(**fields)  # type: ignore[arg-type]


def fold(records: list[UsageRecord]) -> Totals:
    totals = Totals()
    for r in records:
        totals.add_record(
            r.estimated_units, r.actual_units, r.actual_cost, r.reference_cost, r.savings
        )
    return totals


class TestBuildRecord:
    def test_the_contracts_example(self) -> None:
        record = build_record(usage_input(estimated_unit_price=D("0.0000008")), now=NOW)
        assert record.usage_id.startswith("use_")
        assert record.created_at == NOW
        assert (record.estimated_cost, record.actual_cost) == (D("0.2"), D("0.1875"))
        assert (record.reference_unit_price, record.reference_cost) == (D("0.000001"), D("0.25"))
        assert record.savings == D("0.0625")
        assert record.discount_bps == 2500

    def test_the_estimate_defaults_to_the_unit_price_and_uses_estimated_units(self) -> None:
        record = build_record(usage_input(estimated_units=300_000), now=NOW)
        assert record.estimated_cost == D("0.225")  # 300000 x 0.00000075
        assert record.actual_cost == D("0.1875")  # 250000 x 0.00000075
        assert record.reference_cost == D("0.25")  # actual units, not estimated ones

    def test_without_a_reference_nothing_is_invented(self) -> None:
        record = build_record(usage_input(reference_unit_price=None), now=NOW)
        assert record.actual_cost == D("0.1875")
        assert (
            record.reference_unit_price,
            record.reference_cost,
            record.savings,
            record.discount_bps,
        ) == (None, None, None, None)

    @pytest.mark.parametrize("reference", [D(0), D("-0.000001")])
    def test_a_reference_that_is_not_positive_counts_as_none(self, reference: Decimal) -> None:
        record = build_record(usage_input(reference_unit_price=reference), now=NOW)
        assert (
            record.reference_unit_price,
            record.reference_cost,
            record.savings,
            record.discount_bps,
        ) == (None, None, None, None)

    def test_above_the_reference_saves_nothing_and_the_discount_is_negative(self) -> None:
        record = build_record(usage_input(reference_unit_price=D("0.0000005")), now=NOW)
        assert (record.reference_cost, record.actual_cost) == (D("0.125"), D("0.1875"))
        assert record.savings == 0
        assert record.discount_bps == -5000

    def test_at_the_reference_saves_nothing(self) -> None:
        record = build_record(usage_input(reference_unit_price=D("0.00000075")), now=NOW)
        assert (record.savings, record.discount_bps) == (D(0), 0)

    def test_discount_bps_rounds_down(self) -> None:
        record = build_record(usage_input(reference_unit_price=D("0.0000009")), now=NOW)
        assert record.discount_bps == 1666  # 1666.67
        assert record.savings == D("0.0375")
        dearer = build_record(usage_input(reference_unit_price=D("0.0000007")), now=NOW)
        assert dearer.discount_bps == -715  # -714.29 rounds toward minus infinity

    def test_attribution_is_copied(self) -> None:
        item = usage_input(
            workspace_id="ws-1",
            agent_id="agent-7",
            goal_id="goal-1",
            task_id="task-42",
            route_id="route_1",
            order_id="ord_1",
            reservation_id="res_1",
            fill_id="fill_1",
            latency_ms=12.5,
            quality_score=0.9,
        )
        record = build_record(item, now=NOW)
        assert (
            record.workspace_id,
            record.agent_id,
            record.goal_id,
            record.task_id,
            record.route_id,
            record.order_id,
            record.reservation_id,
            record.fill_id,
            record.latency_ms,
            record.quality_score,
        ) == (
            "ws-1",
            "agent-7",
            "goal-1",
            "task-42",
            "route_1",
            "ord_1",
            "res_1",
            "fill_1",
            12.5,
            0.9,
        )
        assert (record.owner_id, record.seller_owner_id, record.provider_id) == (
            "agent-research-1",
            "provider-team-alpha",
            "prov_alpha",
        )

    def test_every_record_gets_its_own_id(self) -> None:
        ids = {build_record(usage_input(), now=NOW).usage_id for _ in range(50)}
        assert len(ids) == 50

    def test_the_smallest_price_is_exact(self) -> None:
        tiny = D("0.000000000000000001")
        record = build_record(
            usage_input(
                actual_units=3, estimated_units=3, unit_price=tiny, reference_unit_price=tiny * 2
            ),
            now=NOW,
        )
        assert (record.actual_cost, record.reference_cost, record.savings) == (
            D("0.000000000000000003"),
            D("0.000000000000000006"),
            D("0.000000000000000003"),
        )

    def test_an_order_sized_cost_keeps_all_eighteen_decimals(self) -> None:
        # 999999999999999 units at 0.000999999999999999 are worth just under 1e12 credits.
        units = 10**15 - 1
        item = usage_input(
            estimated_units=units,
            actual_units=units,
            unit_price=D("0.000999999999999999"),
            reference_unit_price=D("0.001"),
        )
        record = build_record(item, now=NOW)
        assert record.actual_cost == D("999999999999.998000000000000001")
        assert record.savings == D("0.000999999999999999")


class TestTotals:
    def test_an_empty_total_has_no_reference_and_no_savings(self) -> None:
        assert Totals().read() == {
            "records": 0,
            "billed_calls": 0,
            "failed_attempts": 0,
            "records_with_reference": 0,
            "records_without_reference": 0,
            "estimated_units": 0,
            "actual_units": 0,
            "actual_cost": 0,
            "cost_with_reference": 0,
            "reference_cost": None,
            "savings": None,
            "savings_bps": None,
        }

    def test_records_with_and_without_a_reference(self) -> None:
        totals = Totals()
        totals.add_record(300_000, 250_000, D("0.1875"), D("0.25"), D("0.0625"))
        totals.add_record(40, 40, D("0.02"), None, None)
        totals.add_record(10, 10, D("0.02"), D("0.025"), D("0.005"))
        assert totals.read() == {
            "records": 3,
            "billed_calls": 3,
            "failed_attempts": 0,
            "records_with_reference": 2,
            "records_without_reference": 1,
            "estimated_units": 300_050,
            "actual_units": 250_050,
            "actual_cost": D("0.2275"),
            "cost_with_reference": D("0.2075"),
            "reference_cost": D("0.275"),
            "savings": D("0.0675"),
            "savings_bps": 2454,  # floor(0.0675 / 0.275 x 10000) = floor(2454.5)
        }

    def test_only_records_without_a_reference_have_null_savings(self) -> None:
        totals = Totals()
        totals.add_record(40, 40, D("0.02"), None, None)
        read = totals.read()
        assert (read["reference_cost"], read["savings"], read["savings_bps"]) == (None, None, None)
        assert (read["actual_cost"], read["cost_with_reference"]) == (D("0.02"), 0)

    def test_savings_of_zero_against_a_reference(self) -> None:
        totals = Totals()
        totals.add_record(1000, 1000, D("0.0009"), D("0.0005"), D(0))
        read = totals.read()
        assert (read["reference_cost"], read["savings"], read["savings_bps"]) == (D("0.0005"), 0, 0)

    def test_adding_totals_is_adding_their_records(self) -> None:
        left, right, both = Totals(), Totals(), Totals()
        rows = [
            (300_000, 250_000, D("0.1875"), D("0.25"), D("0.0625")),
            (40, 40, D("0.02"), None, None),
            (10, 10, D("0.02"), D("0.025"), D("0.005")),
        ]
        left.add_record(*rows[0])
        right.add_record(*rows[1])
        right.add_record(*rows[2])
        for row in rows:
            both.add_record(*row)
        left.add(right)
        assert left == both
        assert left.read() == both.read()

    def test_a_tenth_ten_times_is_exactly_one(self) -> None:
        totals = Totals()
        for _ in range(10):
            totals.add_record(1, 1, D("0.1"), D("0.1"), D(0))
        assert totals.actual_cost == 1
        assert totals.read()["reference_cost"] == 1

    def test_a_large_total_keeps_its_smallest_part(self) -> None:
        tiny = D("0.000000000000000001")
        totals = Totals()
        totals.add_record(10**11, 10**11, D(10**11), D(2 * 10**11), D(10**11))
        totals.add_record(1, 1, tiny, tiny * 3, tiny * 2)
        read = totals.read()
        assert read["actual_cost"] == D("100000000000.000000000000000001")
        assert read["cost_with_reference"] == D("100000000000.000000000000000001")
        assert read["reference_cost"] == D("200000000000.000000000000000003")
        assert read["savings"] == D("100000000000.000000000000000002")
        assert read["savings_bps"] == 5000
        # Adding totals is exact too.
        doubled = Totals()
        doubled.add(totals)
        doubled.add(totals)
        assert doubled.read()["reference_cost"] == D("400000000000.000000000000000006")


# Prices with up to 18 decimals, units up to a million, references sometimes missing: the
# amounts stay well inside 28 significant digits, where decimal arithmetic is exact.
prices = st.integers(1, 10**13).map(lambda n: D(n).scaleb(-18))
rows = st.lists(
    st.tuples(st.integers(1, 10**6), st.integers(0, 10**6), prices, st.none() | prices),
    max_size=30,
)


def records_of(items: list[tuple[int, int, Decimal, Decimal | None]]) -> list[UsageRecord]:
    return [
        build_record(
            usage_input(
                estimated_units=estimated,
                actual_units=actual,
                unit_price=price,
                reference_unit_price=reference,
            ),
            now=NOW,
        )
        for actual, estimated, price, reference in items
    ]


class TestTotalsProperties:
    @hypothesis.settings(max_examples=300)
    @hypothesis.given(items=rows, data=st.data())
    def test_any_grouping_of_the_records_gives_the_same_exact_totals(
        self, items: list[tuple[int, int, Decimal, Decimal | None]], data: st.DataObject
    ) -> None:
        records = records_of(items)
        one_by_one = fold(records)
        # Cut the records into random consecutive groups, total each, then add the totals.
        cuts = sorted(data.draw(st.sets(st.integers(0, len(records)), max_size=6)))
        bounds = [0, *cuts, len(records)]
        grouped = Totals()
        for start, stop in itertools.pairwise(bounds):
            grouped.add(fold(records[start:stop]))
        assert grouped == one_by_one
        assert grouped.read() == one_by_one.read()
        # And both equal the sums worked out in integers of 1e-18 credits.
        assert one_by_one.actual_cost * ATTO == sum(a * int(p * ATTO) for a, _, p, _ in items)
        priced = [(a, p, r) for a, _, p, r in items if r is not None]
        assert one_by_one.reference_cost * ATTO == sum(a * int(r * ATTO) for a, _, r in priced)
        assert one_by_one.savings * ATTO == sum(
            max(0, a * int(r * ATTO) - a * int(p * ATTO)) for a, p, r in priced
        )
        assert one_by_one.priced_cost * ATTO == sum(a * int(p * ATTO) for a, p, _ in priced)
        assert (one_by_one.records, one_by_one.priced_records) == (len(items), len(priced))

    @hypothesis.settings(max_examples=300)
    @hypothesis.given(items=rows)
    def test_savings_never_exceed_the_reference_cost(
        self, items: list[tuple[int, int, Decimal, Decimal | None]]
    ) -> None:
        read = fold(records_of(items)).read()
        if read["records_with_reference"] == 0:
            assert (read["reference_cost"], read["savings"], read["savings_bps"]) == (
                None,
                None,
                None,
            )
            return
        assert 0 <= read["savings"] <= read["reference_cost"]
        assert read["cost_with_reference"] <= read["actual_cost"]
        assert read["records"] == read["records_with_reference"] + read["records_without_reference"]
        if read["savings_bps"] is not None:
            assert 0 <= read["savings_bps"] <= 10_000
            assert read["savings_bps"] == int(read["savings"] * 10_000 // read["reference_cost"])


class TestWholeDays:
    @pytest.mark.parametrize(
        ("since", "until", "expected"),
        [
            (None, None, (None, None)),
            (datetime(2026, 6, 17, tzinfo=UTC), None, (date(2026, 6, 17), None)),
            (datetime(2026, 6, 17, 0, 0, 1, tzinfo=UTC), None, (date(2026, 6, 18), None)),
            (datetime(2026, 6, 17, 23, 59, 59, 9, tzinfo=UTC), None, (date(2026, 6, 18), None)),
            (None, datetime(2026, 6, 19, tzinfo=UTC), (None, date(2026, 6, 19))),
            (None, datetime(2026, 6, 19, 0, 0, 1, tzinfo=UTC), (None, date(2026, 6, 19))),
            (None, datetime(2026, 6, 19, 23, 59, tzinfo=UTC), (None, date(2026, 6, 19))),
            (
                datetime(2026, 6, 17, 9, 30, tzinfo=UTC),
                datetime(2026, 6, 19, 12, tzinfo=UTC),
                (date(2026, 6, 18), date(2026, 6, 19)),
            ),
            # Inside one day, or across one midnight: no whole day at all.
            (
                datetime(2026, 6, 17, 9, tzinfo=UTC),
                datetime(2026, 6, 17, 10, tzinfo=UTC),
                (date(2026, 6, 18), date(2026, 6, 17)),
            ),
            (
                datetime(2026, 6, 17, 12, tzinfo=UTC),
                datetime(2026, 6, 18, 12, tzinfo=UTC),
                (date(2026, 6, 18), date(2026, 6, 18)),
            ),
        ],
    )  # fmt: skip
    def test_the_first_and_the_end_of_the_whole_days(
        self,
        since: datetime | None,
        until: datetime | None,
        expected: tuple[date | None, date | None],
    ) -> None:
        assert _whole_days(since, until) == expected

    @hypothesis.given(
        since=st.datetimes(
            min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
        ),
        hours=st.integers(1, 24 * 10),
    )
    def test_the_whole_days_lie_inside_the_range_and_leave_less_than_a_day_at_each_edge(
        self, since: datetime, hours: int
    ) -> None:
        until = since + timedelta(hours=hours)
        first, end = _whole_days(since, until)
        assert first is not None and end is not None
        start_of_first = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        start_of_end = datetime.combine(end, datetime.min.time(), tzinfo=UTC)
        assert since <= start_of_first < since + timedelta(days=1)
        assert until - timedelta(days=1) < start_of_end <= until

    def test_days_are_utc_days_whatever_the_timezone(self) -> None:
        since = datetime(2026, 6, 17, 0, 0, tzinfo=PLUS_TWO)  # 22:00Z on the 16th
        until = datetime(2026, 6, 18, 1, 0, tzinfo=PLUS_TWO)  # 23:00Z on the 17th
        assert _whole_days(since, until) == (date(2026, 6, 17), date(2026, 6, 17))


class TestUsageFilters:
    @pytest.mark.parametrize("gap", [timedelta(0), timedelta(seconds=-1), timedelta(days=-3)])
    def test_since_must_come_before_until(self, gap: timedelta) -> None:
        with pytest.raises(Invalid) as raised:
            UsageFilters(since=NOW, until=NOW + gap)
        assert (raised.value.code, raised.value.field, raised.value.status_code) == (
            "invalid_time_range",
            "since",
            422,
        )

    def test_open_ranges_and_a_microsecond_are_fine(self) -> None:
        UsageFilters(since=NOW)
        UsageFilters(until=NOW)
        UsageFilters(since=NOW, until=NOW + timedelta(microseconds=1))

    @pytest.mark.parametrize(
        "name", ["agent_id", "workspace_id", "route_id", "task_id", "deployment_id"]
    )
    def test_filters_the_rollup_does_not_keep_need_records(self, name: str) -> None:
        named: dict[str, Any] = {name: "x"}
        assert UsageFilters(**named).needs_records

    @pytest.mark.parametrize(
        "filters",
        [
            UsageFilters(),
            UsageFilters(provider_id="prov_a", model="m", unit_type="token"),
            UsageFilters(since=NOW, until=NOW + timedelta(days=3)),
        ],
    )
    def test_filters_the_rollup_keeps_do_not(self, filters: UsageFilters) -> None:
        assert not filters.needs_records

    def test_read_names_every_filter(self) -> None:
        filters = UsageFilters(agent_id="agent-a", model="m", since=NOW)
        assert filters.read() == {
            "agent_id": "agent-a",
            "provider_id": None,
            "model": "m",
            "workspace_id": None,
            "route_id": None,
            "task_id": None,
            "deployment_id": None,
            "unit_type": None,
            "since": NOW,
            "until": None,
        }


class TestCursors:
    @hypothesis.given(
        moment=st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
    )
    def test_a_cursor_names_its_records_time_and_id(self, moment: datetime) -> None:
        record = build_record(usage_input(), now=moment)
        cursor = _encode_cursor(record)
        assert "=" not in cursor
        assert _decode_cursor(cursor) == (moment, record.usage_id)

    def test_a_cursor_from_another_timezone_names_the_same_instant(self) -> None:
        record = build_record(usage_input(), now=datetime(2026, 6, 17, 14, 30, tzinfo=PLUS_TWO))
        when, usage_id = _decode_cursor(_encode_cursor(record))
        assert when == datetime(2026, 6, 17, 12, 30, tzinfo=UTC)
        assert usage_id == record.usage_id

    @pytest.mark.parametrize("cursor", ["", "x", "not a cursor", "MjAyNi0wNi0xNw"])
    def test_anything_else_is_invalid(self, cursor: str) -> None:
        with pytest.raises(Invalid) as raised:
            _decode_cursor(cursor)
        assert raised.value.code == "invalid_cursor"


def test_a_record_row_holds_each_value_in_its_own_column() -> None:
    # Every field distinct, so a value written into another column's place shows.
    item = usage_input(
        decision="selected",
        owner_id="buyer",
        seller_owner_id="seller",
        model="m",
        provider_id="prov_1",
        estimated_units=10,
        actual_units=8,
        unit_price=Decimal("0.5"),
        estimated_unit_price=Decimal("0.625"),
        reference_unit_price=Decimal("0.75"),
        workspace_id="ws-1",
        agent_id="agent-1",
        goal_id="goal-1",
        task_id="task-1",
        route_id="route-1",
        order_id="ord_1",
        reservation_id="res_1",
        fill_id="fill_1",
        latency_ms=12.5,
        quality_score=0.9,
    )
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    values = record_values(item, now=now)
    assert values.pop("usage_id").startswith("use_")
    assert values == {
        "source": "market_fill",
        "decision": "selected",
        "owner_id": "buyer",
        "seller_owner_id": "seller",
        "workspace_id": "ws-1",
        "agent_id": "agent-1",
        "goal_id": "goal-1",
        "task_id": "task-1",
        "model": "m",
        "unit_type": "token",
        "provider_id": "prov_1",
        "route_id": "route-1",
        "order_id": "ord_1",
        "reservation_id": "res_1",
        "fill_id": "fill_1",
        "estimated_units": 10,
        "actual_units": 8,
        "unit_price": Decimal("0.5"),
        "estimated_cost": Decimal("6.25"),
        "actual_cost": Decimal("4"),
        "reference_unit_price": Decimal("0.75"),
        "reference_cost": Decimal("6"),
        "savings": Decimal("2"),
        "discount_bps": 3333,
        "latency_ms": 12.5,
        "quality_score": 0.9,
        "created_at": now,
    }
    stored = build_record(item, now=now)  # the same values on the table's own columns
    assert {name: getattr(stored, name) for name in values} == values
