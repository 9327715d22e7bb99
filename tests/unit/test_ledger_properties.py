"""The ledger's invariants under any sequence of grants, transfers and holds, replays
included: every transfer sums to zero, balances equal the sum of postings, an enforced account
never goes below zero, and replaying any action moves nothing. Each example runs in a
transaction that is rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.kit.errors import Conflict, InsufficientCredit
from flow_memory.ledger import holds, service
from flow_memory.ledger.domain import Cause, Posting, check_transfer
from flow_memory.ledger.models import LedgerBalance, LedgerPosting
from flow_memory.ledger.reconcile import check_ledger
from tests.conftest import clear_tables

NOW = datetime(2026, 6, 17, tzinfo=UTC)
HOLDERS = ("free-a", "free-b", "owner-c", "owner-d")  # the first two are enforced
amounts = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal(50), places=6, allow_nan=False
)


@dataclass(frozen=True)
class Step:
    kind: str  # grant | transfer | hold | settle | release | replay
    payer: int
    payee: int
    amount: Decimal
    pick: int


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(
            ["grant", "transfer", "transfer", "hold", "settle", "release", "replay"]
        ),
        payer=st.integers(0, len(HOLDERS) - 1),
        payee=st.integers(0, len(HOLDERS) - 1),
        amount=amounts,
        pick=st.integers(0, 1000),
    ),
    max_size=25,
)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    clear_tables(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as opened:
        yield opened
        opened.rollback()
    engine.dispose()


def _balances(session: Session) -> dict[str, Decimal]:
    return {row.account_id: row.amount for row in session.scalars(select(LedgerBalance))}


def _sums(session: Session) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for account_id, amount in session.execute(
        select(LedgerPosting.account_id, LedgerPosting.amount)
    ):
        totals[account_id] = totals.get(account_id, Decimal(0)) + amount
    return totals


def _run(
    session: Session,
    step: Step,
    index: int,
    done: list[tuple[Step, int, tuple[str, ...]]],
    open_holds: list[str],
) -> None:
    accounts = [service.open_account(session, holder_id=h, now=NOW) for h in HOLDERS]
    payer, payee = accounts[step.payer], accounts[step.payee]
    key = f"action-{index}"
    if step.kind == "grant":
        service.grant(
            session,
            holder_id=HOLDERS[step.payee],
            amount=step.amount,
            key=key,
            actor_id="operator",
            memo="",
            now=NOW,
        )
    elif step.kind == "transfer" and payer.account_id != payee.account_id:
        service.transfer(
            session,
            key=key,
            postings=[
                Posting(payer.account_id, -step.amount),
                Posting(payee.account_id, step.amount),
            ],
            cause=Cause("proxy_charge", key),
            now=NOW,
        )
    elif step.kind == "hold":
        held = holds.hold(
            session,
            key=key,
            account_id=payer.account_id,
            amount=step.amount,
            cause=Cause("job", key),
            expires_at=NOW + timedelta(hours=1),
            now=NOW,
        )
        open_holds.append(held.hold.hold_id)
    elif step.kind == "settle" and open_holds:
        hold_id = open_holds[step.pick % len(open_holds)]
        holds.settle(
            session,
            hold_id=hold_id,
            credits=[Posting(payee.account_id, step.amount)],
            cause=Cause("job_paid", key),
            now=NOW,
        )
    elif step.kind == "release" and open_holds:
        holds.release(
            session,
            hold_id=open_holds[step.pick % len(open_holds)],
            cause=Cause("job_cancelled", key),
            now=NOW,
        )
    elif step.kind == "replay" and done:
        # The very same action again: its step, its key and the holds it chose among.
        earlier, at, holds_then = done[step.pick % len(done)]
        before = _balances(session)
        _run(session, earlier, at, [], list(holds_then))
        assert _balances(session) == before, "a replay moved credits"
        return
    done.append((step, index, tuple(open_holds)))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
def test_the_ledger_keeps_its_invariants(session: Session, steps: list[Step]) -> None:
    try:
        service.set_enforcement(session, holder_id=HOLDERS[1], enforced=True, now=NOW)
        enforced = {
            service.open_account(session, holder_id=h, enforcement="always", now=NOW).account_id
            for h in HOLDERS[:1]
        } | {service.open_account(session, holder_id=HOLDERS[1], now=NOW).account_id}
        done: list[tuple[Step, int, tuple[str, ...]]] = []
        open_holds: list[str] = []
        for index, step in enumerate(steps):
            try:
                _run(session, step, index, done, open_holds)
            except InsufficientCredit:
                pass  # refused, and nothing was written: the checks below hold regardless
            except Conflict as refused:
                assert refused.code == "hold_overdrawn"
            found = check_ledger(session)
            assert found.ok, found.report()
            sums = _sums(session)
            for account_id, amount in _balances(session).items():
                assert amount == sums.get(account_id, Decimal(0)), account_id
            for account_id in enforced:
                assert service.available(session, account_id=account_id) >= 0
    finally:
        session.rollback()


def test_a_transfer_that_does_not_sum_to_zero_is_refused() -> None:
    from flow_memory.kit.errors import Invalid

    for postings in (
        [Posting("a", Decimal(1))],
        [Posting("a", Decimal(1)), Posting("b", Decimal("-0.999999999999999999"))],
        [Posting("a", Decimal(0)), Posting("b", Decimal(0))],
        [Posting("a", Decimal("1e-19")), Posting("b", Decimal("-1e-19"))],
    ):
        with pytest.raises(Invalid):
            check_transfer(postings)
    check_transfer(
        [Posting("a", Decimal("0.1")), Posting("b", Decimal("0.2")), Posting("c", Decimal("-0.3"))]
    )


def test_replaying_a_key_with_other_postings_is_refused(session: Session) -> None:
    a = service.open_account(session, holder_id="owner-a", now=NOW)
    b = service.open_account(session, holder_id="owner-b", now=NOW)
    move = [Posting(a.account_id, Decimal(-1)), Posting(b.account_id, Decimal(1))]
    first = service.transfer(
        session, key="k", postings=move, cause=Cause("proxy_charge", "u1"), now=NOW
    )
    again = service.transfer(
        session, key="k", postings=move, cause=Cause("proxy_charge", "u1"), now=NOW
    )
    assert again.replayed and again.transfer.transfer_id == first.transfer.transfer_id
    other = [Posting(a.account_id, Decimal(-2)), Posting(b.account_id, Decimal(2))]
    with pytest.raises(Conflict) as refused:
        service.transfer(
            session, key="k", postings=other, cause=Cause("proxy_charge", "u1"), now=NOW
        )
    assert refused.value.code == "idempotency_key_reused"
    assert session.scalar(select(func.count()).select_from(LedgerPosting)) == 2
    session.rollback()
