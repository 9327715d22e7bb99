"""An agent's metabolism: credits earned and spent a day, units consumed, and its runway.

What the seed calls resource awareness, in numbers an agent can act on: how fast it burns
credits and how many days its available credits last at that rate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.identities import repository as identities
from flow_memory.identities.models import AgentIdentity
from flow_memory.kit.money import EXACT
from flow_memory.ledger import repository as ledger_rows
from flow_memory.ledger import service as ledger
from flow_memory.ledger.domain import runway_days

BURN_WINDOW_DAYS = 7  # the recent burn rate is the spend of the last week, a day


def metabolism(
    session: Session, agent: AgentIdentity, *, days: int, now: datetime
) -> dict[str, Any]:
    """Per day over the last ``days`` days (today included): earned, spent, net and units."""
    today = now.astimezone(UTC).date()
    window = max(days, BURN_WINDOW_DAYS)
    first = today - timedelta(days=window - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    account = ledger.account_of(session, agent.agent_id)
    flows = _daily_flows(session, account.account_id, since) if account is not None else {}
    units = identities.units_by_day(session, agent.agent_id, since)
    shown = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    rows: list[dict[str, Any]] = []
    earned_total = spent_total = Decimal(0)
    for day in shown:
        earned, spent = flows.get(day, (Decimal(0), Decimal(0)))
        earned_total, spent_total = EXACT.add(earned_total, earned), EXACT.add(spent_total, spent)
        rows.append(
            {
                "day": day.isoformat(),
                "earned": earned,
                "spent": spent,
                "net": EXACT.subtract(earned, spent),
                "units_consumed": units.get(day, 0),
            }
        )
    recent = [today - timedelta(days=n) for n in range(BURN_WINDOW_DAYS)]
    burnt = sum((flows.get(day, (Decimal(0), Decimal(0)))[1] for day in recent), Decimal(0))
    burn = EXACT.divide(burnt, Decimal(BURN_WINDOW_DAYS))
    if account is not None:
        held = ledger.balance(session, account_id=account.account_id)
        amounts = (held.balance, held.held, held.available)
    else:
        amounts = (Decimal(0), Decimal(0), Decimal(0))
    return {
        "agent_id": agent.agent_id,
        "account_id": account.account_id if account is not None else None,
        "currency": "USD_CREDIT",
        "days": rows,
        "earned": earned_total,
        "spent": spent_total,
        "net": EXACT.subtract(earned_total, spent_total),
        "units_consumed": sum(r["units_consumed"] for r in rows),
        "balance": amounts[0],
        "held": amounts[1],
        "available": amounts[2],
        "burn_rate_per_day": burn.quantize(Decimal(1).scaleb(-18), context=EXACT).normalize(EXACT),
        "burn_window_days": BURN_WINDOW_DAYS,
        "runway_days": runway_days(amounts[2], burn),
    }


def _daily_flows(
    session: Session, account_id: str, since: datetime
) -> dict[date, tuple[Decimal, Decimal]]:
    """(earned, spent) a day: each transfer's net effect on the account and its hold account
    together, so setting credits aside and releasing them is neither earning nor spending."""
    hold = ledger_rows.hold_account(session, account_id)
    ids = [account_id] + ([hold.account_id] if hold is not None else [])
    net: dict[str, tuple[datetime, Decimal]] = {}
    for transfer_id, when, amount in ledger_rows.postings_since(session, ids, since):
        _, before = net.get(transfer_id, (when, Decimal(0)))
        net[transfer_id] = (when, EXACT.add(before, amount))
    flows: dict[date, tuple[Decimal, Decimal]] = {}
    for when, amount in net.values():
        day = when.astimezone(UTC).date()
        earned, spent = flows.get(day, (Decimal(0), Decimal(0)))
        if amount > 0:
            earned = EXACT.add(earned, amount)
        elif amount < 0:
            spent = EXACT.subtract(spent, amount)
        flows[day] = (earned, spent)
    return flows
