"""Two holds settled at once whose payers and payees cross (A's hold pays B while B's hold pays
A, each giving the rest back to its own payer) both commit on PostgreSQL. A settlement moves
credits twice, the payment and then the rest back; were the balances of each movement locked
separately, each settlement would hold the other's payer between the two and wait for it: a
deadlock, which PostgreSQL breaks by failing one of them (two jobs completing at once whose
requesters won each other's jobs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.ledger import holds
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.models import LedgerHold
from flow_memory.ledger.reconcile import check_ledger
from flow_memory.ledger.service import balance, open_account
from tests.conftest import clear_tables

NOW = datetime(2026, 6, 17, tzinfo=UTC)
GUARD_SECONDS = 30  # a guard against a hung wait, not a performance claim
HELD = Decimal(1)
PRICE = Decimal("0.4")  # under what is held: each settlement also gives the rest back


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: its settlements never cross")
    clear_tables(database_url)
    opened = make_engine(database_url)
    yield opened
    opened.dispose()


def _held(factory: sessionmaker[Session], payer: str) -> str:
    with factory.begin() as session:
        account = open_account(session, holder_id=payer, now=NOW)
        taken = holds.hold(
            session,
            key=f"crossed:{payer}",
            account_id=account.account_id,
            amount=HELD,
            cause=Cause("test_hold", payer),
            expires_at=NOW + timedelta(days=1),
            now=NOW,
        )
        return taken.hold.hold_id


def test_crossed_settlements_at_once_both_commit(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_session_factory(engine)
    holders = ("crossed-a", "crossed-b")
    hold_ids = {holder: _held(factory, holder) for holder in holders}
    with factory() as session:
        accounts = {h: open_account(session, holder_id=h, now=NOW).account_id for h in holders}
    backends: dict[str, int] = {}
    between = {holder: threading.Event() for holder in holders}
    errors: dict[str, BaseException] = {}
    ready = threading.Barrier(2)  # both settlements know each other's backend

    def waiting_for_a_lock(pid: int) -> bool:
        with engine.connect() as connection:
            state = connection.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            ).scalar()
        return state == "Lock"

    give_back = holds._give_back

    def meet_between_the_movements(
        session: Session, record: LedgerHold, cause: Cause, now: datetime
    ) -> None:
        # Each settlement paid, and waits here until the other has paid too (the order that
        # deadlocks when each movement locks its own balances) or waits for a lock this one
        # holds (the settlements are serialised before either moved anything).
        me = record.cause_id
        other = next(h for h in holders if h != me)
        between[me].set()
        deadline = time.monotonic() + GUARD_SECONDS
        while not (between[other].is_set() or waiting_for_a_lock(backends[other])):
            assert time.monotonic() < deadline, "the other settlement neither paid nor waited"
            time.sleep(0.01)
        give_back(session, record, cause, now)

    monkeypatch.setattr(holds, "_give_back", meet_between_the_movements)

    def settle(payer: str, payee: str) -> Callable[[], None]:
        def run() -> None:
            try:
                with factory.begin() as session:
                    backends[payer] = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                    ready.wait(timeout=GUARD_SECONDS)
                    holds.settle(
                        session,
                        hold_id=hold_ids[payer],
                        credits=[Posting(accounts[payee], PRICE)],
                        cause=Cause("test_payment", payer),
                        now=NOW,
                    )
            except BaseException as error:  # reported below, with the other thread's
                errors[payer] = error

        return run

    threads = [
        threading.Thread(target=settle("crossed-a", "crossed-b")),
        threading.Thread(target=settle("crossed-b", "crossed-a")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=GUARD_SECONDS * 2)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == {}

    with factory() as session:
        for holder in holders:
            settled = session.get(LedgerHold, hold_ids[holder])
            assert settled is not None
            assert (settled.status, settled.settled, settled.released) == (
                "settled",
                PRICE,
                HELD - PRICE,
            )
            # Each paid the other PRICE: the balances are back where they started.
            found = balance(session, account_id=accounts[holder])
            assert (found.balance, found.held) == (Decimal(0), Decimal(0))
        check = check_ledger(session)
        assert check.ok, check.report()
