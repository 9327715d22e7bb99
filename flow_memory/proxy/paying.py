"""Who pays for a proxied call, and the hold an enforced payer's estimate takes before it runs.

The payer is the account of the identity the call is recorded for (``Plan.agent_id``: the
identity the call names, else the route's, else the key's owner); a bound agent's calls are paid
by its operator (``flow_memory.identities.service.payer_of``). Its cost is charged after the call
by the usage writer (``flow_memory.ledger.charges``), in the transaction that writes the call's
usage record.

An enforced account (a free agent's, or an owner's an admin enforced) may never go below zero,
so before such a payer's call is sent anywhere its estimated cost is held: the call's estimated
units at the highest unit price among its route's providers. An account that cannot cover the
estimate is answered 402 ``insufficient_credit``, and no provider is called. Whether an account
is enforced is read at most once a second per payer (``ENFORCEMENT_SECONDS``): an admin's change
applies to calls within that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from flow_memory.identities.models import AgentIdentity
from flow_memory.kit.deps import transaction
from flow_memory.kit.ids import new_id
from flow_memory.kit.money import EXACT
from flow_memory.ledger import holds
from flow_memory.ledger.domain import Cause
from flow_memory.ledger.service import account_of
from flow_memory.proxy.service import Plan

ENFORCEMENT_SECONDS = 1.0
# How long a call's hold lives if its usage record never settles it (the server died): past
# every proxy timeout, after which the usage writer releases it.
HOLD_SECONDS = 3600


def identity_of(plan: Plan) -> str:
    """Whom the call is recorded for."""
    return plan.agent_id or plan.owner_id


def payers(session: Session, identities: Iterable[str]) -> dict[str, str]:
    """Whose account pays for each identity's calls: a bound agent's operator, anyone else
    itself (one query for them all)."""
    wanted = set(identities)
    bound = session.execute(
        select(AgentIdentity.agent_id, AgentIdentity.creator_id).where(
            AgentIdentity.agent_id.in_(sorted(wanted)), AgentIdentity.kind == "bound"
        )
    )
    found = {identity: identity for identity in wanted}
    found.update({agent_id: operator for agent_id, operator in bound})
    return found


def estimated_cost(plan: Plan) -> Decimal:
    """The call's estimated units at the highest unit price it may be routed at."""
    if not plan.targets:
        return Decimal(0)
    price = max(target.unit_price for target in plan.targets)
    return EXACT.multiply(Decimal(plan.estimated_units), price)


@dataclass(frozen=True, slots=True)
class _Known:
    account_id: str | None
    enforced: bool
    read_at: float


class Enforcement:
    """Whether payers' accounts are enforced, read at most once a second per payer."""

    def __init__(self) -> None:
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()

    def cached(self, payer: str) -> _Known | None:
        """What was read of the payer's account less than a second ago, if anything."""
        known = self._known.get(payer)  # a dict read: atomic, no lock needed
        if known is not None and time.monotonic() - known.read_at < ENFORCEMENT_SECONDS:
            return known
        return None

    def of(self, session: Session, payer: str) -> _Known:
        """``payer`` is the identity the call is recorded for; its paying account is read."""
        known = self.cached(payer)
        if known is not None:
            return known
        now = time.monotonic()
        account = account_of(session, payers(session, [payer])[payer])
        known = _Known(
            account_id=None if account is None else account.account_id,
            enforced=account is not None and account.enforcement != "off",
            read_at=now,
        )
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known[payer] = known
        return known


def needs_hold(enforcement: Enforcement, plan: Plan) -> bool:
    """Whether the call must go to ``hold_estimate`` (the payer is enforced, or not known to be
    unenforced this second): most calls' payers are not, and skip it without a thread hop."""
    known = enforcement.cached(identity_of(plan))
    return known is None or known.enforced


def hold_estimate(
    read_factory: sessionmaker[Session],
    write_factory: sessionmaker[Session],
    enforcement: Enforcement,
    plan: Plan,
    *,
    now: datetime,
) -> str | None:
    """Hold an enforced payer's estimated cost (402 when it cannot be covered); the hold's id,
    or None when the payer is not enforced or the call is estimated to cost nothing."""
    payer = identity_of(plan)
    with transaction(read_factory) as session:
        known = enforcement.of(session, payer)
    amount = estimated_cost(plan)
    if not known.enforced or known.account_id is None or amount <= 0:
        return None
    call_id = new_id("call")
    with transaction(write_factory) as session:
        held = holds.hold(
            session,
            key=f"proxy-call:{call_id}",
            account_id=known.account_id,
            amount=amount,
            cause=Cause("proxy_call", call_id, actor_id=payer, memo="a proxied call's estimate"),
            expires_at=now + timedelta(seconds=HOLD_SECONDS),
            now=now,
        )
    return held.hold.hold_id
