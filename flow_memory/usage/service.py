"""Usage records: written for every fill (and, later, every proxied call), summarised exactly.

Savings follow the contract's rule: with a reference unit price, ``reference_cost = actual_units
* reference_unit_price`` and ``savings = max(0, reference_cost - actual_cost)``; without one,
only the actual cost and discount are recorded and no savings are invented.

Summaries read the daily rollup when the filters allow it (model, provider, unit type and time
range) and the records themselves otherwise; both sum exact decimals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from flow_memory.kit.cursors import decode_cursor, encode_cursor
from flow_memory.kit.deps import Principal
from flow_memory.kit.driver import bulk_insert
from flow_memory.kit.errors import Invalid
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import EXACT, exact
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.scopes import AUDIT
from flow_memory.routing.policy import discount_bps
from flow_memory.usage.models import (
    EVERYONE,
    RECORD_COLUMNS,
    UsageRecord,
    UsageRollup,
    UsageTotal,
)
from flow_memory.usage.outcomes import is_failed_attempt
from flow_memory.usage.rollup import SUM_COLUMNS, Totals, add_to_rollup, rollup_totals

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
    return [func.sum(c[name]).label(name) for name in SUM_COLUMNS]


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
        into.setdefault(row[0], Totals()).add(rollup_totals(row[1:]))


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
