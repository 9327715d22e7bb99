"""Exact sums of usage records: ``Totals`` over any set of them, and the daily and all-time
rollups every record is folded into as it is written (one row per party, day, model, unit type
and provider), which summaries read instead of the records when the filters allow it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal
from operator import add, attrgetter, itemgetter
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    delete,
    insert,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from flow_memory.kit.driver import BulkWrite, dialect_inserts
from flow_memory.kit.money import EXACT, attos_parts, exact, from_parts, to_attos
from flow_memory.usage.models import (
    AMOUNTS,
    EVERYONE,
    RECORD_COLUMNS,
    UsageRecord,
    UsageRollup,
    UsageTotal,
)
from flow_memory.usage.outcomes import is_failed_attempt

ZERO = Decimal(0)
BPS = Decimal(10_000)


@dataclass
class Totals:
    """Exact sums over a set of usage records; ``failed_records`` counts the failed attempts
    among them (``flow_memory.usage.outcomes``)."""

    records: int = 0
    priced_records: int = 0
    estimated_units: int = 0
    actual_units: int = 0
    failed_records: int = 0
    actual_cost: Decimal = ZERO
    priced_cost: Decimal = ZERO
    reference_cost: Decimal = ZERO
    savings: Decimal = ZERO

    def add_record(
        self,
        estimated_units: int,
        actual_units: int,
        actual_cost: Decimal,
        reference_cost: Decimal | None,
        savings: Decimal | None,
        *,
        failed: bool = False,
    ) -> None:
        self.records += 1
        self.estimated_units += estimated_units
        self.actual_units += actual_units
        self.failed_records += failed
        self.actual_cost = EXACT.add(self.actual_cost, actual_cost)
        if reference_cost is not None:
            self.priced_records += 1
            self.priced_cost = EXACT.add(self.priced_cost, actual_cost)
            self.reference_cost = EXACT.add(self.reference_cost, reference_cost)
            self.savings = EXACT.add(self.savings, savings or ZERO)

    def add(self, other: Totals) -> None:
        self.records += other.records
        self.priced_records += other.priced_records
        self.estimated_units += other.estimated_units
        self.actual_units += other.actual_units
        self.failed_records += other.failed_records
        for name in AMOUNTS:
            setattr(self, name, EXACT.add(getattr(self, name), getattr(other, name)))

    def read(self) -> dict[str, Any]:
        savings_bps = (
            int(
                EXACT.divide(
                    EXACT.multiply(self.savings, BPS), self.reference_cost
                ).to_integral_value("ROUND_FLOOR")
            )
            if self.reference_cost > 0
            else None
        )
        return {
            "records": self.records,
            "billed_calls": self.records - self.failed_records,
            "failed_attempts": self.failed_records,
            "records_with_reference": self.priced_records,
            "records_without_reference": self.records - self.priced_records,
            "estimated_units": self.estimated_units,
            "actual_units": self.actual_units,
            "actual_cost": exact(self.actual_cost),
            "cost_with_reference": exact(self.priced_cost),
            "reference_cost": exact(self.reference_cost) if self.priced_records else None,
            "savings": exact(self.savings) if self.priced_records else None,
            "savings_bps": savings_bps,
        }


PairKey = tuple[date, str, str, str, str, str]  # day, buyer, seller, model, unit, provider
RollupKey = tuple[str, date, str, str, str]  # party, day, model, unit_type, provider_id
TotalKey = tuple[str, str, str, str]  # party, model, unit_type, provider_id
_DAILY_KEY = ("party", "day", "model", "unit_type", "provider_id")
_TOTAL_KEY = ("party", "model", "unit_type", "provider_id")


# A rollup delta: records, priced records, estimated units, actual units, failed records, then
# each of ``AMOUNTS`` in attos (exact, and integer sums cost far less than decimal ones).
Sums = list[int]
_COUNTS = 5  # the sums before the amounts


def _new_sums() -> Sums:
    return [0] * (_COUNTS + len(AMOUNTS))


def _add_record_sums(
    sums: Sums,
    decision: str,
    estimated_units: int,
    actual_units: int,
    actual_cost: Decimal,
    reference_cost: Decimal | None,
    savings: Decimal | None,
) -> None:
    """Count one record into ``sums`` (as ``Totals.add_record`` counts it)."""
    cost = to_attos(actual_cost)
    sums[0] += 1
    sums[2] += estimated_units
    sums[3] += actual_units
    sums[4] += is_failed_attempt(decision, actual_units)
    sums[5] += cost
    if reference_cost is not None:
        sums[1] += 1
        sums[6] += cost
        sums[7] += to_attos(reference_cost)
        sums[8] += to_attos(savings or ZERO)


def _fan_out(
    per_pair: dict[PairKey, Sums],
) -> tuple[dict[RollupKey, Sums], dict[TotalKey, Sums]]:
    """Sums per (day, buyer, seller, …) become the daily and all-time sums of each party: everyone,
    the buyer and the seller (once when buyer and seller are the same owner)."""
    daily: dict[RollupKey, Sums] = {}
    overall: dict[TotalKey, Sums] = {}
    for (day, owner, seller, model, unit_type, provider), sums in per_pair.items():
        for party in dict.fromkeys((EVERYONE, owner, seller)):
            _merge_sums(daily, (party, day, model, unit_type, provider), sums)
            _merge_sums(overall, (party, model, unit_type, provider), sums)
    return daily, overall


def _merge_sums(into: dict[Any, Sums], key: Any, sums: Sums) -> None:
    found = into.get(key)
    if found is None:
        into[key] = sums.copy()
    else:
        found[:] = map(add, found, sums)


def _rollup_sums(sums: Sums) -> tuple[int, ...]:
    """A rollup row's sums, in ``SUM_COLUMNS`` order."""
    return (
        *sums[:_COUNTS],
        *(part for amount in sums[_COUNTS:] for part in attos_parts(amount)),
    )


SUM_COLUMNS = (
    "records",
    "priced_records",
    "estimated_units",
    "actual_units",
    "failed_records",
    *(f"{amount}_{part}" for amount in AMOUNTS for part in ("whole", "nanos", "attos")),
)


def rollup_totals(values: Sequence[Any]) -> Totals:
    """Totals from the ``SUM_COLUMNS`` of a rollup row (or their SQL sums), in that order."""
    n = [int(v) for v in values]
    return Totals(
        records=n[0],
        priced_records=n[1],
        estimated_units=n[2],
        actual_units=n[3],
        failed_records=n[4],
        actual_cost=from_parts(n[5], n[6], n[7]),
        priced_cost=from_parts(n[8], n[9], n[10]),
        reference_cost=from_parts(n[11], n[12], n[13]),
        savings=from_parts(n[14], n[15], n[16]),
    )


_PAIR_FIELDS = ("created_at", "owner_id", "seller_owner_id", "model", "unit_type", "provider_id")
_ADDED_FIELDS = (
    "decision",
    "estimated_units",
    "actual_units",
    "actual_cost",
    "reference_cost",
    "savings",
)


_PAIR_OF_ROW = itemgetter(*(RECORD_COLUMNS.index(name) for name in _PAIR_FIELDS))
_ADDED_OF_ROW = itemgetter(*(RECORD_COLUMNS.index(name) for name in _ADDED_FIELDS))


def add_to_rollup(
    session: Session,
    rows: Sequence[UsageRecord] | Sequence[Mapping[str, Any]] | Sequence[tuple[Any, ...]],
) -> None:
    """Fold records (objects, column values by name, or ``record_row`` tuples) into their daily
    and all-time rollup rows."""
    if not rows:
        return
    pair_of: Callable[[Any], Any] = _PAIR_OF_ROW
    added_of: Callable[[Any], Any] = _ADDED_OF_ROW
    if isinstance(rows[0], Mapping):
        pair_of, added_of = itemgetter(*_PAIR_FIELDS), itemgetter(*_ADDED_FIELDS)
    elif not isinstance(rows[0], tuple):
        pair_of, added_of = attrgetter(*_PAIR_FIELDS), attrgetter(*_ADDED_FIELDS)
    per_pair: dict[PairKey, Sums] = {}
    for row in rows:
        created_at, *parties = pair_of(row)
        pair: PairKey = (created_at.astimezone(UTC).date(), *parties)
        sums = per_pair.get(pair)
        if sums is None:
            sums = per_pair[pair] = _new_sums()
        _add_record_sums(sums, *added_of(row))
    daily, overall = _fan_out(per_pair)
    # One lock order for every writer: all daily rows by key, then all totals by key.
    _add_sums(session, _DAILY, _DAILY_KEY, daily)
    _add_sums(session, _TOTAL, _TOTAL_KEY, overall)


def _adding_upserts(model: type[UsageRollup | UsageTotal]) -> BulkWrite:
    """Insert a row of sums, or add them to the row already there. The money parts are added
    as they are, unnormalised, like SQL sums of them (``from_parts`` reads either)."""
    table = cast(Table, model.__table__)
    statements = {
        dialect: statement.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={name: table.c[name] + statement.excluded[name] for name in SUM_COLUMNS},
        )
        for dialect, statement in dialect_inserts(table).items()
    }
    return BulkWrite(statements["sqlite"], statements)


_DAILY = _adding_upserts(UsageRollup)
_TOTAL = _adding_upserts(UsageTotal)


def _add_sums(
    session: Session,
    upsert: BulkWrite,
    key: tuple[str, ...],
    deltas: Mapping[Any, Sums],
) -> None:
    """Add ``deltas`` to their rows with one statement, in key order (each row is locked as
    it is written)."""
    rows = [row_key + _rollup_sums(deltas[row_key]) for row_key in sorted(deltas)]
    upsert.execute_rows(session.connection(), key + SUM_COLUMNS, rows)


def rebuild_rollups(session: Session) -> int:
    """Recompute every rollup row from the records (a repair tool); returns the daily rows."""
    u = UsageRecord
    money = [type_coerce(c, String) for c in (u.actual_cost, u.reference_cost, u.savings)]
    rows = session.execute(
        select(
            u.created_at,
            u.owner_id,
            u.seller_owner_id,
            u.model,
            u.unit_type,
            u.provider_id,
            u.decision,
            u.estimated_units,
            u.actual_units,
            *money,
        ).execution_options(yield_per=20_000)
    )
    # Sum per (day, buyer, seller, model, unit, provider) first, then fan out to the parties.
    per_pair: dict[PairKey, Sums] = {}
    for created_at, *dimensions, decision, est, actual, cost, ref, saved in rows:
        pair: PairKey = (created_at.date(), *dimensions)
        pair_sums = per_pair.get(pair)
        if pair_sums is None:
            pair_sums = per_pair[pair] = _new_sums()
        _add_record_sums(
            pair_sums,
            decision,
            est,
            actual,
            Decimal(cost),
            None if ref is None else Decimal(ref),
            None if saved is None else Decimal(saved),
        )
    daily, overall = _fan_out(per_pair)
    session.execute(delete(UsageRollup))
    session.execute(delete(UsageTotal))
    for table, names, sums in (
        (UsageRollup, _DAILY_KEY, daily.items()),
        (UsageTotal, _TOTAL_KEY, overall.items()),
    ):
        batch: list[dict[str, Any]] = []
        for key, delta in sums:
            batch.append(dict(zip(names + SUM_COLUMNS, key + _rollup_sums(delta), strict=True)))
            if len(batch) == 10_000:
                session.execute(insert(table), batch)
                batch = []
        if batch:
            session.execute(insert(table), batch)
    return len(daily)
