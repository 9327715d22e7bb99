"""Royalties of calls through deployments: written by the proxy's usage writer in the
transaction of the calls' usage records, and read back as a report and an export.

For each call, each pinned version (the agent's, then the model's) earns
``royalty_of(cost, royalty_bps)`` (``flow_memory.deployments.domain``). Its line is added to the
version's day (``RoyaltyDay``), and, when the ledger is charged, moved from the caller's paying
account to the publisher's in a transfer keyed ``royalty:<usage_id>:<agent|model>``: a replayed
batch moves nothing twice. A line of zero, or one whose payer is its publisher, moves nothing.
An enforced payer is never taken below zero: a line its available credit cannot cover is left
uncollected (counted, as the proxy counts an uncovered cost)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from flow_memory.deployments import repository
from flow_memory.deployments.domain import RoyaltyTerm, exact_royalty, royalty_of
from flow_memory.deployments.models import RoyaltyDay
from flow_memory.kit.deps import Principal
from flow_memory.kit.driver import bulk_insert
from flow_memory.kit.errors import NotFound
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.jsonenc import render
from flow_memory.kit.money import EXACT, attos_parts, from_parts, to_attos
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.scopes import AUDIT
from flow_memory.ledger import repository as ledger_repository
from flow_memory.ledger import service as ledger
from flow_memory.ledger.domain import CURRENCY, Cause, Posting
from flow_memory.ledger.models import LedgerAccount, LedgerPosting, LedgerTransfer
from flow_memory.registry.models import RegistryEntry, RegistryVersion

CAUSE = "royalty"
# A version's terms never change once published: read once a process.
_TERMS: dict[str, RoyaltyTerm] = {}
_INSERT_TRANSFERS = bulk_insert(LedgerTransfer.__table__)  # type: ignore[arg-type]
_INSERT_POSTINGS = bulk_insert(LedgerPosting.__table__)  # type: ignore[arg-type]


@dataclass
class Paid:
    """What a batch's royalties did."""

    transfers: int = 0
    uncollected: Decimal = Decimal(0)


def terms(session: Session, version_ids: Iterable[str]) -> dict[str, RoyaltyTerm]:
    """Each version's royalty term (its entry's kind, slug and publisher, and its bps)."""
    wanted = set(version_ids)
    missing = sorted(wanted - set(_TERMS))
    if missing:
        rows = session.execute(
            select(
                RegistryVersion.version_id,
                RegistryVersion.version,
                RegistryVersion.royalty_bps,
                RegistryEntry.kind,
                RegistryEntry.slug,
                RegistryEntry.publisher_id,
            )
            .join(RegistryEntry, RegistryEntry.entry_id == RegistryVersion.entry_id)
            .where(RegistryVersion.version_id.in_(missing))
        )
        for row in rows:
            _TERMS[row.version_id] = RoyaltyTerm(
                kind=row.kind,
                publisher_id=row.publisher_id,
                slug=row.slug,
                version=row.version,
                version_id=row.version_id,
                royalty_bps=row.royalty_bps,
            )
    return {version_id: _TERMS[version_id] for version_id in wanted}


def record(
    session: Session,
    rows: Sequence[Mapping[str, Any]],
    *,
    payers: Mapping[str, str],
    transfers: bool,
    now: datetime,
) -> Paid:
    """Add the royalty lines of ``rows`` (usage records of calls through deployments) to their
    days and, if ``transfers``, move them in the ledger (see the module)."""
    paid = Paid()
    found = terms(
        session, {row[c] for row in rows for c in ("agent_version_id", "model_version_id")}
    )
    days: dict[tuple[str, Any, str], list[int]] = {}
    described: dict[str, RoyaltyTerm] = {}
    moves: list[tuple[str, str, RoyaltyTerm, Decimal]] = []
    for row in rows:
        cost: Decimal = row["actual_cost"]
        cost_attos = to_attos(cost)
        for term in (found[row["agent_version_id"]], found[row["model_version_id"]]):
            amount = royalty_of(cost, term.royalty_bps)
            key = (term.publisher_id, row["created_at"].date(), term.version_id)
            sums = days.setdefault(key, [0, 0, 0])
            sums[0] += 1
            sums[1] += cost_attos
            sums[2] += to_attos(amount)
            described[term.version_id] = term
            if transfers and amount > 0:
                payer = payers[row["agent_id"] or row["owner_id"]]
                if payer != term.publisher_id:
                    moves.append((row["usage_id"], payer, term, amount))
    repository.add_royalty_days(
        session,
        [
            _day_row(publisher_id, day, described[version_id], sums)
            for (publisher_id, day, version_id), sums in days.items()
        ],
    )
    if moves:
        _pay(session, moves, paid, now)
    return paid


Move = tuple[str, str, RoyaltyTerm, Decimal]  # usage id, payer, the version's term, the line


def _pay(session: Session, moves: Sequence[Move], paid: Paid, now: datetime) -> None:
    """Move each line not moved before (a replayed batch moves nothing twice). An enforced
    payer's lines go one at a time, each checked against its available credit; every other
    line is written with the batch's others in a few statements, as the calls' charges are
    (``flow_memory.ledger.charges``): at two lines a call, a transfer at a time cost more than
    the rest of the call's recording."""
    keyed = {
        _key(usage_id, term): (usage_id, payer, term, amount)
        for usage_id, payer, term, amount in moves
    }
    written = set(
        session.scalars(
            select(LedgerTransfer.idempotency_key).where(
                LedgerTransfer.idempotency_key.in_(list(keyed))
            )
        )
    )
    fresh = {key: move for key, move in keyed.items() if key not in written}
    if not fresh:
        return
    holders = {move[1] for move in fresh.values()} | {
        move[2].publisher_id for move in fresh.values()
    }
    accounts = _main_accounts(session, holders, now)
    plain: dict[str, Move] = {}
    for key, move in fresh.items():
        if accounts[move[1]].enforcement != "off":
            _move(session, *move, paid, now)
        else:
            plain[key] = move
    if plain:
        _transfer_plain(session, plain, accounts, now)
        paid.transfers += len(plain)


def _key(usage_id: str, term: RoyaltyTerm) -> str:
    return f"royalty:{usage_id}:{term.kind}"


def _main_accounts(session: Session, holders: set[str], now: datetime) -> dict[str, LedgerAccount]:
    """The main account of every holder, opened where it has none yet."""
    found = {
        account.holder_id: account
        for account in ledger_repository.main_accounts_of(session, sorted(holders), CURRENCY)
    }
    for holder in sorted(holders - set(found)):
        found[holder] = ledger.open_account(session, holder_id=holder, now=now)
    return found


def _transfer_plain(
    session: Session,
    moves: Mapping[str, Move],
    accounts: Mapping[str, LedgerAccount],
    now: datetime,
) -> None:
    transfers: list[dict[str, object]] = []
    postings: list[dict[str, object]] = []
    net: dict[str, Decimal] = defaultdict(Decimal)
    counts: dict[str, int] = defaultdict(int)
    for key, (usage_id, payer, term, amount) in moves.items():
        transfer_id = new_ordered_id("xfer", now)
        transfers.append(
            {
                "transfer_id": transfer_id,
                "idempotency_key": key,
                "cause_kind": CAUSE,
                "cause_id": usage_id,
                "actor_id": None,
                "memo": f"royalty of {term.slug}@{term.version}",
                "created_at": now,
            }
        )
        for index, (holder, signed) in enumerate(((payer, -amount), (term.publisher_id, amount))):
            account_id = accounts[holder].account_id
            postings.append(
                {
                    "posting_id": f"{transfer_id}.{index}",
                    "transfer_id": transfer_id,
                    "account_id": account_id,
                    "amount": signed,
                    "created_at": now,
                }
            )
            net[account_id] = EXACT.add(net[account_id], signed)
            counts[account_id] += 1
    connection = session.connection()
    _INSERT_TRANSFERS.execute(connection, transfers)
    _INSERT_POSTINGS.execute(connection, postings)
    rows = ledger_repository.balances(session, net, for_update=True)
    for account_id, delta in net.items():
        row = rows[account_id]
        row.amount = EXACT.add(row.amount, delta)
        row.postings += counts[account_id]
        row.updated_at = now
    session.flush()


def _day_row(publisher_id: str, day: Any, term: RoyaltyTerm, sums: list[int]) -> dict[str, Any]:
    cost = attos_parts(sums[1])
    royalty = attos_parts(sums[2])
    return {
        "publisher_id": publisher_id,
        "day": day,
        "version_id": term.version_id,
        "kind": term.kind,
        "slug": term.slug,
        "version": term.version,
        "royalty_bps": term.royalty_bps,
        "usage_records": sums[0],
        "cost_whole": cost[0],
        "cost_nanos": cost[1],
        "cost_attos": cost[2],
        "royalty_whole": royalty[0],
        "royalty_nanos": royalty[1],
        "royalty_attos": royalty[2],
    }


def _move(
    session: Session,
    usage_id: str,
    payer: str,
    term: RoyaltyTerm,
    amount: Decimal,
    paid: Paid,
    now: datetime,
) -> None:
    source = ledger.open_account(session, holder_id=payer, now=now)
    target = ledger.open_account(session, holder_id=term.publisher_id, now=now)
    enforced = source.enforcement != "off"
    if enforced and ledger.available(session, account_id=source.account_id) < amount:
        paid.uncollected = EXACT.add(paid.uncollected, amount)
        return
    ledger.transfer(
        session,
        key=_key(usage_id, term),
        postings=(Posting(source.account_id, -amount), Posting(target.account_id, amount)),
        cause=Cause(CAUSE, usage_id, memo=f"royalty of {term.slug}@{term.version}"),
        now=now,
        accounts=(source, target),
    )
    paid.transfers += 1


# -- the report -------------------------------------------------------------------------------

EXPORT_SCHEMA_VERSION = "flow_memory.royalty_export.v1"
REDACTION = {
    "applied": True,
    "policy": (
        "royalty days are sums over calls: they never hold API keys, credential values, "
        "prompts, completions or callers' identities, so an export cannot contain them"
    ),
    "omitted_fields": ["api_key", "credential_value", "prompt", "completion", "caller_id"],
    "masked_fields": [],
}


@dataclass(frozen=True)
class ReportFilters:
    publisher_id: str | None = None
    kind: str | None = None
    slug: str | None = None
    day_from: date | None = None
    day_to: date | None = None

    def read(self) -> dict[str, Any]:
        return {
            "publisher_id": self.publisher_id,
            "kind": self.kind,
            "slug": self.slug,
            "day_from": None if self.day_from is None else self.day_from.isoformat(),
            "day_to": None if self.day_to is None else self.day_to.isoformat(),
        }


def visible(principal: Principal, filters: ReportFilters) -> ReportFilters:
    """The filters narrowed to what the caller reads: any publisher (or the one asked for) for
    admins and auditors; a publisher only its own (its key's owner, or the identity it names
    that the key may act as); another publisher's days are not found."""
    wanted = filters.publisher_id
    if principal.is_admin or AUDIT in principal.scopes:
        return filters
    if wanted is not None and not principal.may_act_as(wanted):
        raise NotFound("publisher not found", field="publisher_id")
    return replace(filters, publisher_id=wanted or principal.owner_id)


def row_read(day: Row[Any] | RoyaltyDay) -> dict[str, Any]:
    cost = from_parts(day.cost_whole, day.cost_nanos, day.cost_attos)
    return {
        "publisher_id": day.publisher_id,
        "kind": day.kind,
        "slug": day.slug,
        "version": day.version,
        "version_id": day.version_id,
        "day": day.day.isoformat(),
        "royalty_bps": day.royalty_bps,
        "usage_records": day.usage_records,
        "cost": cost,
        "royalty": from_parts(day.royalty_whole, day.royalty_nanos, day.royalty_attos),
        "royalty_of_cost": exact_royalty(cost, day.royalty_bps),
    }


def report_rows(
    session: Session, filters: ReportFilters, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Royalty days, newest first (``filters.publisher_id`` already narrowed to the caller)."""
    days = repository.royalty_days(session, **vars(filters), limit=limit, offset=offset)
    return [row_read(day) for day in days]


def all_rows(session: Session, filters: ReportFilters) -> Iterator[dict[str, Any]]:
    """Every royalty day the filters select, in the report's order, read in one query."""
    for day in repository.royalty_days(session, **vars(filters), limit=None, offset=0):
        yield row_read(day)


def export_lines(
    session: Session, filters: ReportFilters, *, fmt: str, generated_at: datetime
) -> list[bytes]:
    """The export: NDJSON (a header line, one line per royalty day, a footer line), or one
    JSON document with the same parts."""
    meta = {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "format": fmt,
        "generated_at": generated_at,
        "filters": filters.read(),
        "redaction": REDACTION,
    }
    records = [
        {"record_type": "royalty_day", **row, "currency": CURRENCY}
        for row in all_rows(session, filters)
    ]
    if fmt == "json":
        document = {"ok": True, **meta, "records": records, "record_count": len(records)}
        return [render({**document, "complete": True, **SAFETY_ENVELOPE})]
    lines = [render({"record_type": "header", "ok": True, **meta, **SAFETY_ENVELOPE}) + b"\n"]
    lines += [render({**record, **SAFETY_ENVELOPE}) + b"\n" for record in records]
    footer = {"record_type": "footer", "record_count": len(records), "complete": True}
    return [*lines, render(footer) + b"\n"]
