"""Usage records: written for every fill (and, later, every proxied call), summarised exactly.

Savings follow the contract's rule: with a reference unit price, ``reference_cost = actual_units
* reference_unit_price`` and ``savings = max(0, reference_cost - actual_cost)``; without one,
only the actual cost and discount are recorded and no savings are invented.

Summaries read the daily rollup when the filters allow it (model, provider, unit type and time
range) and the records themselves otherwise; both sum exact decimals."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from operator import add, attrgetter, itemgetter
from typing import Any, cast

from sqlalchemy import (
    Select,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from flow_memory.kit.cursors import decode_cursor, encode_cursor
from flow_memory.kit.deps import Principal
from flow_memory.kit.driver import BulkWrite, bulk_insert, dialect_inserts
from flow_memory.kit.errors import Invalid
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import EXACT, attos_parts, exact, from_parts, to_attos
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.scopes import AUDIT
from flow_memory.routing.policy import discount_bps
from flow_memory.usage.models import (
    AMOUNTS,
    DEPLOYMENT_COLUMNS,
    EVERYONE,
    UsageRecord,
    UsageRollup,
    UsageTotal,
)
from flow_memory.usage.outcomes import is_failed_attempt

ZERO = Decimal(0)
BPS = Decimal(10_000)


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each of its 21 fields the slow way
class UsageInput:
    """What a caller knows about one use; costs and savings are derived here."""

    source: str
    decision: str
    owner_id: str
    seller_owner_id: str
    model: str
    unit_type: str
    provider_id: str
    estimated_units: int
    actual_units: int
    unit_price: Decimal
    reference_unit_price: Decimal | None
    estimated_unit_price: Decimal | None = None  # defaults to unit_price
    workspace_id: str | None = None
    agent_id: str | None = None
    goal_id: str | None = None
    task_id: str | None = None
    route_id: str | None = None
    order_id: str | None = None
    reservation_id: str | None = None
    fill_id: str | None = None
    latency_ms: float | None = None
    quality_score: float | None = None


def record_row(item: UsageInput, *, now: datetime) -> tuple[Any, ...]:
    """A usage record's column values in ``RECORD_COLUMNS`` order (cost, reference cost and
    savings worked out)."""
    actual_cost = exact(EXACT.multiply(item.actual_units, item.unit_price))
    estimated_price = item.estimated_unit_price or item.unit_price
    reference_cost: Decimal | None = None
    savings: Decimal | None = None
    if item.reference_unit_price is not None and item.reference_unit_price > 0:
        reference_cost = exact(EXACT.multiply(item.actual_units, item.reference_unit_price))
        savings = exact(max(ZERO, EXACT.subtract(reference_cost, actual_cost)))
    return (
        new_ordered_id("use", now),
        item.source,
        item.decision,
        item.owner_id,
        item.seller_owner_id,
        item.workspace_id,
        item.agent_id,
        item.goal_id,
        item.task_id,
        item.model,
        item.unit_type,
        item.provider_id,
        item.route_id,
        item.order_id,
        item.reservation_id,
        item.fill_id,
        item.estimated_units,
        item.actual_units,
        exact(item.unit_price),
        exact(EXACT.multiply(item.estimated_units, estimated_price)),
        actual_cost,
        item.reference_unit_price if reference_cost is not None else None,
        reference_cost,
        savings,
        discount_bps(item.unit_price, item.reference_unit_price),
        item.latency_ms,
        item.quality_score,
        now,
    )


# A usage record's columns, in the table's order (``record_row`` gives its values so).
RECORD_COLUMNS: tuple[str, ...] = tuple(
    column.key for column in UsageRecord.__table__.columns if column.key not in DEPLOYMENT_COLUMNS
)


def record_values(item: UsageInput, *, now: datetime) -> dict[str, Any]:
    """A usage record's column values by name."""
    return dict(zip(RECORD_COLUMNS, record_row(item, now=now), strict=True))


def build_record(item: UsageInput, *, now: datetime) -> UsageRecord:
    return UsageRecord(**record_values(item, now=now))


def record_usage(session: Session, items: Iterable[UsageInput], *, now: datetime) -> None:
    """Write usage records and fold them into the daily rollup, in the caller's transaction."""
    rows = [record_row(item, now=now) for item in items]
    if rows:
        # One executemany, no ORM object or mapping per record: fills write many at a time.
        _INSERT_RECORDS.execute_rows(session.connection(), RECORD_COLUMNS, rows)
        add_to_rollup(session, rows)


def insert_records(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write usage records given as column values by name (``record_values``)."""
    _INSERT_RECORDS.execute(session.connection(), rows)


_INSERT_RECORDS = bulk_insert(UsageRecord.__table__)  # type: ignore[arg-type]


# -- totals and the rollup ----------------------------------------------------------------


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
    """A rollup row's sums, in ``_SUM_COLUMNS`` order."""
    return (
        *sums[:_COUNTS],
        *(part for amount in sums[_COUNTS:] for part in attos_parts(amount)),
    )


_SUM_COLUMNS = (
    "records",
    "priced_records",
    "estimated_units",
    "actual_units",
    "failed_records",
    *(f"{amount}_{part}" for amount in AMOUNTS for part in ("whole", "nanos", "attos")),
)


def _rollup_totals(values: Sequence[Any]) -> Totals:
    """Totals from the ``_SUM_COLUMNS`` of a rollup row (or their SQL sums), in that order."""
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
            set_={name: table.c[name] + statement.excluded[name] for name in _SUM_COLUMNS},
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
    upsert.execute_rows(session.connection(), key + _SUM_COLUMNS, rows)


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
            batch.append(dict(zip(names + _SUM_COLUMNS, key + _rollup_sums(delta), strict=True)))
            if len(batch) == 10_000:
                session.execute(insert(table), batch)
                batch = []
        if batch:
            session.execute(insert(table), batch)
    return len(daily)


# -- filters, visibility, pages ---------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilters:
    agent_id: str | None = None
    provider_id: str | None = None
    model: str | None = None
    workspace_id: str | None = None
    route_id: str | None = None
    task_id: str | None = None
    # Calls through one deployment (``flow_memory.deployments``).
    deployment_id: str | None = None
    unit_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise Invalid(
                "since must be earlier than until",
                field="since",
                code="invalid_time_range",
                hint="since is inclusive and until exclusive",
            )

    def read(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "provider_id": self.provider_id,
            "model": self.model,
            "workspace_id": self.workspace_id,
            "route_id": self.route_id,
            "task_id": self.task_id,
            "deployment_id": self.deployment_id,
            "unit_type": self.unit_type,
            "since": self.since,
            "until": self.until,
        }

    @property
    def needs_records(self) -> bool:
        """True when a filter names something the daily rollup does not keep."""
        named = (self.agent_id, self.workspace_id, self.route_id, self.task_id, self.deployment_id)
        return any(named)


def sees_all(principal: Principal) -> bool:
    """Admins and auditors see every record; others see what they bought or sold."""
    return principal.is_admin or AUDIT in principal.scopes


def _visible(principal: Principal, owner: Any, seller: Any) -> Any:
    if sees_all(principal):
        return None
    return or_(owner == principal.owner_id, seller == principal.owner_id)


def record_conditions(
    principal: Principal, filters: UsageFilters, since: datetime | None, until: datetime | None
) -> list[Any]:
    u = UsageRecord
    conditions: list[Any] = []
    visible = _visible(principal, u.owner_id, u.seller_owner_id)
    if visible is not None:
        conditions.append(visible)
    for column, value in (
        (u.agent_id, filters.agent_id),
        (u.provider_id, filters.provider_id),
        (u.model, filters.model),
        (u.workspace_id, filters.workspace_id),
        (u.route_id, filters.route_id),
        (u.task_id, filters.task_id),
        (u.deployment_id, filters.deployment_id),
        (u.unit_type, filters.unit_type),
    ):
        if value is not None:
            conditions.append(column == value)
    if since is not None:
        conditions.append(u.created_at >= since)
    if until is not None:
        conditions.append(u.created_at < until)
    return conditions


def records_query(principal: Principal, filters: UsageFilters, *columns: Any) -> Select[Any]:
    """The visible records matching ``filters`` (or just ``columns`` of them), oldest first,
    the export's order."""
    return (
        select(*(columns or (UsageRecord,)))
        .select_from(UsageRecord)
        .where(*record_conditions(principal, filters, filters.since, filters.until))
        .order_by(UsageRecord.created_at, UsageRecord.usage_id)
    )


@dataclass(frozen=True)
class Page:
    records: list[UsageRecord]
    next_cursor: str | None


def _encode_cursor(row: UsageRecord) -> str:
    return encode_cursor(row.created_at, row.usage_id)


_decode_cursor = decode_cursor


def page_records(
    session: Session,
    principal: Principal,
    filters: UsageFilters,
    *,
    limit: int,
    cursor: str | None,
) -> Page:
    """Newest first, ``limit`` at a time; ``next_cursor`` resumes after the last one."""
    u = UsageRecord
    query = select(u).where(*record_conditions(principal, filters, filters.since, filters.until))
    if cursor is not None:
        when, usage_id = _decode_cursor(cursor)
        query = query.where(
            or_(u.created_at < when, and_(u.created_at == when, u.usage_id < usage_id))
        )
    rows = list(
        session.scalars(query.order_by(u.created_at.desc(), u.usage_id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, _encode_cursor(rows[-1]) if more and rows else None)


# -- the summary ------------------------------------------------------------------------------


@dataclass
class Summary:
    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)
    by_provider: dict[str, Totals] = field(default_factory=dict)
    by_day: dict[date, Totals] = field(default_factory=dict)
    computed_from: str = "rollup"

    def fold(self, model: str, provider_id: str, day: date, totals: Totals) -> None:
        self.total.add(totals)
        self.by_model.setdefault(model, Totals()).add(totals)
        self.by_provider.setdefault(provider_id, Totals()).add(totals)
        self.by_day.setdefault(day, Totals()).add(totals)

    def read(self) -> dict[str, Any]:
        return {
            **self.total.read(),
            "currency": "USD_CREDIT",
            "computed_from": self.computed_from,
            "by_model": [{"model": k, **v.read()} for k, v in sorted(self.by_model.items())],
            "by_provider": [
                {"provider_id": k, **v.read()} for k, v in sorted(self.by_provider.items())
            ],
            "by_day": [{"day": k.isoformat(), **v.read()} for k, v in sorted(self.by_day.items())],
        }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _whole_days(since: datetime | None, until: datetime | None) -> tuple[date | None, date | None]:
    """The first and last+1 whole UTC days inside [since, until) (None: unbounded)."""
    since = since.astimezone(UTC) if since is not None else None
    until = until.astimezone(UTC) if until is not None else None
    first = None
    if since is not None:
        first = since.date() if since == _day_start(since.date()) else since.date() + timedelta(1)
    end = until.date() if until is not None else None
    return first, end


def summarize(session: Session, principal: Principal, filters: UsageFilters) -> Summary:
    summary = Summary()
    first, end = _whole_days(filters.since, filters.until)
    if filters.needs_records or (first is not None and end is not None and first >= end):
        # A filter the rollup does not keep, or a range inside about one day: read records.
        summary.computed_from = "records"
        _fold_records(session, principal, filters, filters.since, filters.until, summary)
        return summary
    if filters.since is None and filters.until is None:
        _fold_all_time(session, principal, filters, summary)
        return summary
    _fold_rollup(session, principal, filters, first, end, summary)
    # The partial days at either edge come from the records themselves.
    if filters.since is not None and first is not None and filters.since < _day_start(first):
        summary.computed_from = "rollup+records"
        _fold_records(session, principal, filters, filters.since, _day_start(first), summary)
    if filters.until is not None and end is not None and _day_start(end) < filters.until:
        summary.computed_from = "rollup+records"
        _fold_records(session, principal, filters, _day_start(end), filters.until, summary)
    return summary


def _summed(table: type[UsageRollup | UsageTotal]) -> list[Any]:
    c = table.__table__.c
    return [func.sum(c[name]).label(name) for name in _SUM_COLUMNS]


def _rollup_conditions(
    table: type[UsageRollup | UsageTotal], principal: Principal, filters: UsageFilters
) -> list[Any]:
    party = EVERYONE if sees_all(principal) else principal.owner_id
    conditions: list[Any] = [table.party == party]
    for column, value in (
        (table.provider_id, filters.provider_id),
        (table.model, filters.model),
        (table.unit_type, filters.unit_type),
    ):
        if value is not None:
            conditions.append(column == value)
    return conditions


def _group_into(
    session: Session, column: Any, conditions: list[Any], into: dict[Any, Totals]
) -> None:
    table = UsageTotal if column.table is UsageTotal.__table__ else UsageRollup
    query = select(column, *_summed(table)).where(*conditions).group_by(column)
    for row in session.execute(query):
        into.setdefault(row[0], Totals()).add(_rollup_totals(row[1:]))


def _fold_all_time(
    session: Session, principal: Principal, filters: UsageFilters, summary: Summary
) -> None:
    """No time range: models and providers from the all-time sums, days from the daily ones."""
    conditions = _rollup_conditions(UsageTotal, principal, filters)
    _group_into(session, UsageTotal.model, conditions, summary.by_model)
    _group_into(session, UsageTotal.provider_id, conditions, summary.by_provider)
    daily = _rollup_conditions(UsageRollup, principal, filters)
    _group_into(session, UsageRollup.day, daily, summary.by_day)
    for totals in summary.by_model.values():
        summary.total.add(totals)


def _fold_rollup(
    session: Session,
    principal: Principal,
    filters: UsageFilters,
    first: date | None,
    end: date | None,
    summary: Summary,
) -> None:
    """Whole days of a time range, from the daily sums grouped three ways in SQL."""
    r = UsageRollup
    conditions = _rollup_conditions(r, principal, filters)
    if first is not None:
        conditions.append(r.day >= first)
    if end is not None:
        conditions.append(r.day < end)
    _group_into(session, r.model, conditions, summary.by_model)
    _group_into(session, r.provider_id, conditions, summary.by_provider)
    _group_into(session, r.day, conditions, summary.by_day)
    for totals in summary.by_day.values():
        summary.total.add(totals)


def _fold_records(
    session: Session,
    principal: Principal,
    filters: UsageFilters,
    since: datetime | None,
    until: datetime | None,
    summary: Summary,
) -> None:
    u = UsageRecord
    rows = session.execute(
        select(
            u.model,
            u.provider_id,
            u.created_at,
            u.decision,
            u.estimated_units,
            u.actual_units,
            u.actual_cost,
            u.reference_cost,
            u.savings,
        ).where(*record_conditions(principal, filters, since, until))
    )
    groups: dict[tuple[str, str, date], Totals] = {}
    for model, provider_id, created_at, decision, est, actual, cost, ref, saved in rows:
        key = (model, provider_id, created_at.date())
        totals = groups.get(key)
        if totals is None:
            totals = groups[key] = Totals()
        totals.add_record(est, actual, cost, ref, saved, failed=is_failed_attempt(decision, actual))
    for (model, provider_id, day), totals in groups.items():
        summary.fold(model, provider_id, day, totals)


SAVINGS_RULE = (
    "With a reference unit price, reference_cost = actual_units * reference_unit_price and "
    "savings = max(0, reference_cost - actual_cost); without one, only actual_cost and "
    "discount_bps are recorded and no savings are invented."
)


def record_read(row: UsageRecord) -> dict[str, Any]:
    return {
        "usage_id": row.usage_id,
        "created_at": row.created_at,
        "source": row.source,
        "decision": row.decision,
        "owner_id": row.owner_id,
        "seller_owner_id": row.seller_owner_id,
        "workspace_id": row.workspace_id,
        "agent_id": row.agent_id,
        "goal_id": row.goal_id,
        "task_id": row.task_id,
        "model": row.model,
        "unit_type": row.unit_type,
        "provider_id": row.provider_id,
        "route_id": row.route_id,
        "order_id": row.order_id,
        "reservation_id": row.reservation_id,
        "fill_id": row.fill_id,
        "estimated_units": row.estimated_units,
        "actual_units": row.actual_units,
        "unit_price": row.unit_price,
        "estimated_cost": row.estimated_cost,
        "actual_cost": row.actual_cost,
        "reference_unit_price": row.reference_unit_price,
        "reference_cost": row.reference_cost,
        "savings": row.savings,
        "discount_bps": row.discount_bps,
        "savings_bps": row.discount_bps if row.reference_cost is not None else None,
        "latency_ms": row.latency_ms,
        "quality_score": row.quality_score,
        "deployment_id": row.deployment_id,
        "agent_version_id": row.agent_version_id,
        "model_version_id": row.model_version_id,
        "currency": "USD_CREDIT",
        **SAFETY_ENVELOPE,
    }
