"""Who pays for a proxied call, and the hold an enforced payer's estimate takes before it runs.

The payer is the account of the identity the call is recorded for (``Plan.agent_id``: the
identity the call names, else the route's, else the key's owner); a bound agent's calls are paid
by its operator (``flow_memory.identities.payers.payer_of``). Its cost is charged after the call
by the usage writer (``flow_memory.ledger.charges``), in the transaction that writes the call's
usage record.

An enforced account (a free agent's, or an owner's an admin enforced) may never go below zero,
so before such a payer's call is sent anywhere its estimated cost is held: the call's estimated
units at the highest unit price among its route's providers. An account that cannot cover the
estimate is answered 402 ``insufficient_credit``, and no provider is called. Whether an account
is enforced is read at most once a second per payer (``ENFORCEMENT_SECONDS``): an admin's change
applies to calls within that, and a second more for a payer that was not enforced. Such a
payer's calls never wait for the read: the first call past the second starts one read in the
background and every call goes on as before until it lands. Calls that must wait share one
read, so steady traffic sends no burst of calls to the thread pool each second (a burst starts
threads, and starting one blocks the event loop).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from flow_memory.deployments.domain import royalty_lines
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
    """The call's estimated units at the highest unit price it may be routed at; through a
    deployment, with the royalties that cost would pay (each is paid from the same account)."""
    if not plan.targets:
        return Decimal(0)
    price = max(target.unit_price for target in plan.targets)
    cost = EXACT.multiply(Decimal(plan.estimated_units), price)
    if plan.deployment is None:
        return cost
    lines = royalty_lines(cost, plan.deployment.terms)
    return EXACT.add(cost, sum((line.amount for line in lines), Decimal(0)))


@dataclass(frozen=True, slots=True)
class _Known:
    account_id: str | None
    enforced: bool
    read_at: float


class Enforcement:
    """Whether payers' accounts are enforced, read at most once a second per payer."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()
        self._reading: dict[str, asyncio.Task[_Known]] = {}

    def cached(self, payer: str, *, within: float = ENFORCEMENT_SECONDS) -> _Known | None:
        """What was read of the payer's account less than ``within`` seconds ago, if anything."""
        known = self._known.get(payer)  # a dict read: atomic, no lock needed
        if known is not None and self._monotonic() - known.read_at < within:
            return known
        return None

    async def known(self, payer: str, read: Callable[[str], _Known]) -> _Known:
        """What is known of the payer's account, read (``read(payer)``, which stores what it
        reads, on the thread pool) if it is more than a second old. Calls that need the same
        payer read together share one read; a payer read unenforced one to two seconds ago is
        answered at once while that read runs."""
        fresh = self.cached(payer)
        if fresh is not None:
            return fresh
        loop = asyncio.get_running_loop()
        reading = self._reading.get(payer)
        if reading is None or reading.get_loop() is not loop:
            reading = loop.create_task(run_in_threadpool(read, payer))
            self._reading[payer] = reading
            reading.add_done_callback(lambda done: self._read_done(payer, done))
        recent = self.cached(payer, within=2 * ENFORCEMENT_SECONDS)
        if recent is not None and not recent.enforced:
            return recent
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    def _read_done(self, payer: str, done: asyncio.Task[_Known]) -> None:
        if self._reading.get(payer) is done:
            del self._reading[payer]
        if not done.cancelled():
            done.exception()  # retrieved: a failed read nobody awaited is not logged as lost

    def of(self, session: Session, payer: str) -> _Known:
        """``payer`` is the identity the call is recorded for; its paying account is read."""
        known = self.cached(payer)
        if known is not None:
            return known
        now = self._monotonic()
        account = account_of(session, payers(session, [payer])[payer])
        return self.remember(
            payer,
            account_id=None if account is None else account.account_id,
            enforced=account is not None and account.enforcement != "off",
            read_at=now,
        )

    def remember(
        self, payer: str, *, account_id: str | None, enforced: bool, read_at: float
    ) -> _Known:
        """Store what was read of the payer's account at ``read_at``."""
        known = _Known(account_id=account_id, enforced=enforced, read_at=read_at)
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known[payer] = known
        return known


async def needs_hold(
    enforcement: Enforcement, plan: Plan, read_factory: sessionmaker[Session]
) -> bool:
    """Whether the call must go to ``hold_estimate`` (its payer is enforced): most calls' payers
    are not, and skip it without a thread hop of their own."""

    def read(payer: str) -> _Known:
        with transaction(read_factory) as session:
            return enforcement.of(session, payer)

    known = await enforcement.known(identity_of(plan), read)
    return known.enforced


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
