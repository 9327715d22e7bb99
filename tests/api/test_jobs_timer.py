"""The timer: windows that close award or expire their job, results that do not come expire it
or go to the runner-up, each job is acted on once however many timers tick at once, and every
ended job has settled or released its escrow (the ledger's sums say so)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from flow_memory.app import create_app
from flow_memory.jobs import repository
from flow_memory.jobs.models import JobEvent
from flow_memory.jobs.timer import TickReport
from flow_memory.kit.clock import FrozenClock
from flow_memory.ledger.models import LedgerTransfer
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    MODEL,
    SELLER_B,
    SELLER_C,
    Bidder,
    account,
    assert_ledger_sound,
    bidder,
    get_job,
    placed,
    post_job,
    quiet_settings,
    tick,
)
from tests.factories import BUYER, SELLER, Headers

RESULT = {
    "output": "An answer.",
    "model": MODEL,
    "usage": {"prompt_tokens": 9, "completion_tokens": 3},
}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture
def sellers(app: FastAPI, client: TestClient) -> list[Bidder]:
    return [bidder(client, app, owner) for owner in (SELLER, SELLER_B, SELLER_C)]


def statuses(job: dict[str, Any]) -> dict[str, str]:
    return {b["bidder_id"]: b["status"] for b in job["bids"]}


class TestWindows:
    def test_jobs_due_together_come_in_one_order_on_every_database(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        # Posted at three moments, all closing at one: by posting time, then by id.
        first = post_job(client, buyer, bid_window_seconds=60)["job_id"]
        clock.advance(1)
        pair = {post_job(client, buyer, bid_window_seconds=59)["job_id"] for _ in range(2)}
        clock.advance(1)
        last = post_job(client, buyer, bid_window_seconds=58)["job_id"]
        clock.advance(60)
        with app.state.session_factory() as session:
            due = repository.due_jobs(session, clock.now(), limit=10)
        assert [job_id for job_id, _ in due] == [first, *sorted(pair), last]

    def test_nothing_happens_before_the_window_closes(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        placed(client, sellers[0].headers, job_id, sellers[0].provider_id)
        clock.advance(59)
        assert tick(app) == TickReport()
        assert get_job(client, buyer, job_id)["status"] == "open"

    def test_the_close_awards_the_best_score_with_a_deadline(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        for who, price in zip(sellers, (0.3, 0.2, 0.4), strict=True):
            placed(client, who.headers, job_id, who.provider_id, price=price)
        clock.advance(60)
        assert tick(app).awarded == 1
        job = get_job(client, buyer, job_id)
        assert job["status"] == "awarded"
        assert job["award"]["bidder_id"] == SELLER_B
        assert job["award"]["result_due_at"] == "2026-06-17T00:06:00Z"
        assert tick(app) == TickReport()  # acted on once

    def test_a_window_without_an_eligible_bid_expires_unawarded(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        empty = post_job(client, buyer)["job_id"]
        dear = post_job(client, buyer)["job_id"]
        placed(client, sellers[0].headers, dear, sellers[0].provider_id, price=0.6)
        clock.advance(60)
        assert tick(app).expired_unawarded == 2
        for job_id in (empty, dear):
            assert get_job(client, buyer, job_id)["status"] == "expired_unawarded"
        assert get_job(client, buyer, dear)["bids"][0]["reason"] == "over_max_price"
        assert account(client, BUYER)["held"] == 0
        assert_ledger_sound(app)


class TestNoShows:
    def award(
        self,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
        **job: Any,
    ) -> str:
        job_id = post_job(client, buyer, **job)["job_id"]
        for who, price in zip(sellers, (0.2, 0.3, 0.6), strict=False):
            placed(client, who.headers, job_id, who.provider_id, price=price)
        clock.advance(60)
        tick(client.app)  # type: ignore[arg-type]
        return str(job_id)

    def test_no_result_by_the_deadline_expires_the_job_and_releases_the_escrow(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        job_id = self.award(client, clock, buyer, sellers)
        clock.advance(300)
        late = client.post(f"{JOBS}/{job_id}/result", json=RESULT, headers=sellers[0].headers)
        assert (late.status_code, late.json()["error"]["code"]) == (409, "result_deadline_passed")
        assert tick(app).expired_no_show == 1
        job = get_job(client, buyer, job_id)
        assert job["status"] == "expired_no_show"
        assert statuses(job)[SELLER] == "no_show"
        kinds = [e["kind"] for e in job["events"]]
        assert kinds[-2:] == ["job.no_show", "job.expired_no_show"]
        assert account(client, BUYER)["held"] == 0
        assert account(client, SELLER)["balance"] == 0
        assert_ledger_sound(app)

    def test_the_runner_up_is_awarded_with_a_fresh_deadline(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        job_id = self.award(client, clock, buyer, sellers, reaward_on_no_show=True)
        clock.advance(300)
        assert tick(app).reawarded == 1
        job = get_job(client, buyer, job_id)
        assert job["status"] == "awarded"
        assert job["award"]["bidder_id"] == SELLER_B
        assert job["award"]["award_count"] == 2
        assert job["award"]["result_due_at"] == "2026-06-17T00:11:00Z"
        assert statuses(job) == {SELLER: "no_show", SELLER_B: "won", SELLER_C: "lost"}
        missing = client.get(f"{JOBS}/{job_id}/assignment", headers=sellers[0].headers)
        assert missing.status_code == 404
        done = client.post(f"{JOBS}/{job_id}/result", json=RESULT, headers=sellers[1].headers)
        assert done.status_code == 201, done.text
        assert account(client, SELLER_B)["balance"] == Decimal("0.3")
        assert account(client, BUYER) == {
            "balance": Decimal("-0.3"),
            "held": Decimal(0),
            "available": Decimal("-0.3"),
        }
        assert_ledger_sound(app)

    def test_without_a_runner_up_the_job_expires(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        job_id = self.award(client, clock, buyer, sellers[:1], reaward_on_no_show=True)
        clock.advance(300)
        assert tick(app).expired_no_show == 1
        assert get_job(client, buyer, job_id)["status"] == "expired_no_show"
        assert account(client, BUYER)["held"] == 0

    def test_a_job_is_awarded_at_most_three_times(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        fourth = bidder(client, app, "provider-team-delta")
        job_id = post_job(client, buyer, reaward_on_no_show=True)["job_id"]
        for who, price in zip([*sellers, fourth], (0.1, 0.2, 0.3, 0.4), strict=True):
            placed(client, who.headers, job_id, who.provider_id, price=price)
        clock.advance(60)
        assert tick(app).awarded == 1
        for _ in range(2):
            clock.advance(300)
            assert tick(app).reawarded == 1
        clock.advance(300)
        assert tick(app).expired_no_show == 1
        job = get_job(client, buyer, job_id)
        assert statuses(job) == {
            SELLER: "no_show",
            SELLER_B: "no_show",
            SELLER_C: "no_show",
            "provider-team-delta": "lost",
        }
        assert account(client, BUYER)["held"] == 0
        assert_ledger_sound(app)


class TestOnce:
    def many_due(
        self,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
        count: int,
    ) -> list[str]:
        ids = []
        for _ in range(count):
            job_id = post_job(client, buyer)["job_id"]
            for who, price in zip(sellers, (0.3, 0.2, 0.4), strict=True):
                placed(client, who.headers, job_id, who.provider_id, price=price)
            ids.append(job_id)
        clock.advance(60)
        return ids

    def race(self, ticks: list[Callable[[], TickReport]]) -> list[TickReport]:
        start = threading.Barrier(len(ticks))
        reports: list[TickReport] = []

        def run(tick_once: Callable[[], TickReport]) -> None:
            start.wait()
            reports.append(tick_once())

        threads = [threading.Thread(target=run, args=(t,)) for t in ticks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return reports

    def assert_awarded_once(self, app: FastAPI, ids: list[str], reports: list[TickReport]) -> None:
        assert sum(r.awarded for r in reports) == len(ids)
        assert not any(r.failed for r in reports)
        with app.state.session_factory() as session:
            awards = session.execute(
                select(JobEvent.job_id, func.count())
                .where(JobEvent.kind == "job.awarded")
                .group_by(JobEvent.job_id)
            ).all()
        assert dict(awards) == dict.fromkeys(ids, 1)

    def test_two_timers_ticking_at_once_award_each_job_once(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
    ) -> None:
        ids = self.many_due(client, clock, buyer, sellers, 12)
        reports = self.race([app.state.job_timer.tick, app.state.job_timer.tick])
        self.assert_awarded_once(app, ids, reports)

    def test_servers_on_one_database_award_each_job_once(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        sellers: list[Bidder],
        settings: Settings,
    ) -> None:
        ids = self.many_due(client, clock, buyer, sellers, 12)
        others = [create_app(settings, clock=clock) for _ in range(2)]
        try:
            reports = self.race([a.state.job_timer.tick for a in (app, *others)])
        finally:
            for other in others:
                other.state.engine.dispose()
                other.state.read_engine.dispose()
        self.assert_awarded_once(app, ids, reports)
        for job_id in ids:
            done = client.post(f"{JOBS}/{job_id}/result", json=RESULT, headers=sellers[1].headers)
            assert done.status_code == 201, done.text
        with app.state.session_factory() as session:
            settled = session.scalars(
                select(LedgerTransfer.cause_id).where(
                    LedgerTransfer.idempotency_key.like("job:%:escrow:settle")
                )
            ).all()
        assert sorted(settled) == sorted(ids)  # each job paid once
        assert account(client, SELLER_B)["balance"] == Decimal("0.2") * len(ids)
        assert_ledger_sound(app)


@pytest.mark.parametrize("end", ["completed", "cancelled", "expired_unawarded", "expired_no_show"])
def test_every_end_leaves_nothing_held_and_the_ledger_sound(
    app: FastAPI,
    client: TestClient,
    clock: FrozenClock,
    buyer: Headers,
    sellers: list[Bidder],
    end: str,
) -> None:
    validation = {"mode": "random_validator", "validators": 1, "validator_fee": 0.02}
    job_id = post_job(client, buyer, validation=validation)["job_id"]
    assert account(client, BUYER)["held"] == Decimal("0.52")
    if end != "expired_unawarded":
        placed(client, sellers[0].headers, job_id, sellers[0].provider_id, price=0.25)
    if end == "cancelled":
        assert client.post(f"{JOBS}/{job_id}/cancel", headers=buyer).status_code == 200
    else:
        clock.advance(60)
        tick(app)
    if end == "completed":
        answer = client.post(f"{JOBS}/{job_id}/result", json=RESULT, headers=sellers[0].headers)
        assert answer.status_code == 201, answer.text
    if end == "expired_no_show":
        clock.advance(300)
        tick(app)
    job = get_job(client, buyer, job_id)
    assert job["status"] == end
    paid = Decimal("0.25") if end == "completed" else Decimal(0)
    assert account(client, BUYER) == {"balance": -paid, "held": Decimal(0), "available": -paid}
    assert account(client, SELLER)["balance"] == paid
    assert job["economics"]["paid"] == (0.25 if end == "completed" else None)
    assert job["ended_at"] is not None
    assert_ledger_sound(app)
