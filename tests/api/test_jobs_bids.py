"""Bids: placed, revised, withdrawn, sealed from other bidders; fixed mode's award at once; the
requester's early award and cancel; every refusal, each naming its field."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flow_memory.jobs.standing import register_standing_source, unregister_standing_source
from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    SELLER_B,
    SELLER_C,
    Bidder,
    account,
    assert_ledger_sound,
    bid,
    bidder,
    get_job,
    placed,
    post_job,
    quiet_settings,
)
from tests.factories import BUYER, SELLER, Headers, key_headers


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture
def alpha(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER)


@pytest.fixture
def beta(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER_B)


@pytest.fixture
def standings() -> Iterator[dict[str, Decimal]]:
    """Bidders' standing, as reputation will record it (a test double)."""
    known: dict[str, Decimal] = {}

    def source(session: Session, bidder_ids: Any) -> Mapping[str, Decimal]:
        return {b: known[b] for b in bidder_ids if b in known}

    register_standing_source(source)
    yield known
    unregister_standing_source(source)


def refusal(answer: httpx.Response) -> tuple[int, str, str | None]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["field"]


def by_bidder(job: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {b["bidder_id"]: (b["status"], b["reason"]) for b in job["bids"]}


class TestBidding:
    def test_a_bid_is_placed_then_revised_in_place(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        job = post_job(client, buyer)
        first = bid(client, alpha.headers, job["job_id"], alpha.provider_id, price=0.4)
        assert first.status_code == 201, first.text
        revised = bid(client, alpha.headers, job["job_id"], alpha.provider_id, price=0.35)
        assert revised.status_code == 200, revised.text
        now = revised.json()["bid"]
        assert now["bid_id"] == first.json()["bid"]["bid_id"]
        assert (now["price"], now["revision"], now["status"]) == (0.35, 2, "live")
        assert revised.json()["job"]["bid_count"] == 1
        kinds = [e["kind"] for e in get_job(client, buyer, job["job_id"])["events"]]
        assert kinds == ["job.posted", "job.bid_placed", "job.bid_revised"]

    def test_bids_are_sealed_until_the_award(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        alpha: Bidder,
        beta: Bidder,
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        placed(client, alpha.headers, job_id, alpha.provider_id, price=0.3)
        placed(client, beta.headers, job_id, beta.provider_id, price=0.2)
        reader = key_headers(app, "someone", "inference:read")
        assert [b["bidder_id"] for b in get_job(client, alpha.headers, job_id)["bids"]] == [SELLER]
        assert [b["bidder_id"] for b in get_job(client, beta.headers, job_id)["bids"]] == [SELLER_B]
        assert get_job(client, reader, job_id)["bids"] == []
        assert len(get_job(client, buyer, job_id)["bids"]) == 2  # the requester sees its offers
        seen_by_alpha = client.get(f"{JOBS}/{job_id}", headers=alpha.headers).text
        assert '"price":0.2' not in seen_by_alpha
        for event in get_job(client, reader, job_id)["events"]:
            assert "price" not in event["payload"] or event["kind"] == "job.posted"
        clock.advance(60)
        client.app.state.job_timer.tick()  # type: ignore[attr-defined]
        after = get_job(client, reader, job_id)
        assert by_bidder(after) == {SELLER: ("lost", "outbid"), SELLER_B: ("won", None)}
        assert {b["price"] for b in after["bids"]} == {0.3, 0.2}

    def test_a_withdrawn_bid_loses_as_withdrawn_and_may_come_back(
        self, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        mine = placed(client, alpha.headers, job_id, alpha.provider_id, price=0.1)
        route = f"{JOBS}/{job_id}/bids/{mine['bid_id']}/withdraw"
        assert refusal(client.post(route, headers=beta.headers)) == (404, "not_found", "bid_id")
        withdrawn = client.post(route, headers=alpha.headers)
        assert withdrawn.status_code == 200, withdrawn.text
        assert (withdrawn.json()["bid"]["status"], withdrawn.json()["bid"]["reason"]) == (
            "withdrawn",
            "withdrawn",
        )
        assert client.post(route, headers=alpha.headers).status_code == 200  # again: no change
        assert withdrawn.json()["job"]["bid_count"] == 0
        back = bid(client, alpha.headers, job_id, alpha.provider_id, price=0.25)
        assert (back.status_code, back.json()["bid"]["status"]) == (200, "live")
        client.post(route, headers=alpha.headers)
        placed(client, beta.headers, job_id, beta.provider_id, price=0.3)
        clock.advance(60)
        client.app.state.job_timer.tick()  # type: ignore[attr-defined]
        assert by_bidder(get_job(client, buyer, job_id)) == {
            SELLER: ("withdrawn", "withdrawn"),
            SELLER_B: ("won", None),
        }
        after = client.post(route, headers=alpha.headers)
        assert (after.status_code, after.json()["bid"]["status"]) == (200, "withdrawn")


class TestBidRefusals:
    def test_each_refusal_names_its_field(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        named = post_job(
            client, buyer, request={"model_hint": "other-model", "prompt": "p", "max_tokens": 5}
        )["job_id"]
        me, them = alpha.headers, alpha.provider_id
        cases = [
            (bid(client, me, "job_nope", them), (404, "not_found", "job_id")),
            (bid(client, me, job_id, beta.provider_id), (404, "not_found", "provider_id")),
            (bid(client, me, named, them), (422, "model_mismatch", "model")),
            (
                bid(client, me, job_id, them, bidder_id=SELLER_B),
                (403, "identity_not_yours", "bidder_id"),
            ),
            (bid(client, me, job_id, them, price=0), (422, "invalid_request", "price")),
            (
                bid(client, me, job_id, them, estimated_time_s=0),
                (422, "invalid_request", "estimated_time_s"),
            ),
            (
                bid(client, me, job_id, them, bidder={"address": "0x..."}),
                (422, "forbidden_material", "bidder.address"),
            ),
            (bid(client, buyer, job_id, them), (403, "missing_scope", "scope")),
        ]
        wrong = [(got.text, want) for got, want in cases if refusal(got) != want]
        assert not wrong
        assert get_job(client, buyer, job_id)["bid_count"] == 0

    def test_a_requester_does_not_bid_on_its_own_job(
        self, app: FastAPI, client: TestClient
    ) -> None:
        both = key_headers(app, BUYER, "inference:buy", "inference:sell", "inference:read")
        job_id = post_job(client, both)["job_id"]
        own = bidder(client, app, BUYER)
        answer = bid(client, both, job_id, own.provider_id)
        assert refusal(answer) == (409, "own_job", "bidder_id")

    def test_no_bid_after_the_window_closes(
        self, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        clock.advance(60)  # closed, though the timer has not run yet
        answer = bid(client, alpha.headers, job_id, alpha.provider_id)
        assert refusal(answer) == (409, "bid_window_closed", "job_id")


class TestFixedMode:
    def test_the_first_eligible_bid_wins_at_once(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        job_id = post_job(client, buyer, economics={"max_price": 0.5, "payment_mode": "fixed"})[
            "job_id"
        ]
        over = placed(client, alpha.headers, job_id, alpha.provider_id, price=0.6)
        assert over["status"] == "live"
        won = bid(client, beta.headers, job_id, beta.provider_id, price=0.45)
        assert won.status_code == 201, won.text
        assert won.json()["job"]["status"] == "awarded"
        assert won.json()["job"]["award"]["price"] == 0.45
        late = bidder(client, app, SELLER_C)
        assert refusal(bid(client, late.headers, job_id, late.provider_id)) == (
            409,
            "job_not_open",
            "job_id",
        )
        assert by_bidder(get_job(client, buyer, job_id)) == {
            SELLER: ("lost", "over_max_price"),
            SELLER_B: ("won", None),
        }

    def test_two_bids_at_once_award_the_job_once(
        self, client: TestClient, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        job_id = post_job(client, buyer, economics={"max_price": 0.5, "payment_mode": "fixed"})[
            "job_id"
        ]
        start = threading.Barrier(2)
        answers: dict[str, httpx.Response] = {}

        def race(who: Bidder) -> None:
            start.wait()
            answers[who.owner_id] = bid(client, who.headers, job_id, who.provider_id)

        threads = [threading.Thread(target=race, args=(who,)) for who in (alpha, beta)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(a.status_code for a in answers.values())
        assert statuses == [201, 409], [a.text for a in answers.values()]
        job = get_job(client, buyer, job_id)
        assert [e["kind"] for e in job["events"]].count("job.awarded") == 1
        assert job["award"]["bidder_id"] in {SELLER, SELLER_B}


class TestRequesterActions:
    def test_an_early_award_goes_to_the_best_score_or_the_named_bid(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        by_score = post_job(client, buyer)["job_id"]
        named = post_job(client, buyer)["job_id"]
        for job_id in (by_score, named):
            placed(client, alpha.headers, job_id, alpha.provider_id, price=0.3)
            placed(client, beta.headers, job_id, beta.provider_id, price=0.2)
        first = client.post(f"{JOBS}/{by_score}/award", headers=buyer)
        assert first.status_code == 200, first.text
        assert first.json()["job"]["award"]["bidder_id"] == SELLER_B
        dearer = get_job(client, alpha.headers, named)["bids"][0]["bid_id"]
        second = client.post(f"{JOBS}/{named}/award", json={"bid_id": dearer}, headers=buyer)
        assert second.json()["job"]["award"]["bidder_id"] == SELLER, second.text
        assert by_bidder(second.json()["job"]) == {
            SELLER: ("won", None),
            SELLER_B: ("lost", "outbid"),
        }

    def test_early_award_refusals(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        route = f"{JOBS}/{job_id}/award"
        assert refusal(client.post(route, headers=buyer)) == (409, "no_eligible_bid", "job_id")
        over = placed(client, alpha.headers, job_id, alpha.provider_id, price=0.9)
        chosen = {"bid_id": over["bid_id"]}
        assert refusal(client.post(route, json=chosen, headers=buyer)) == (
            409,
            "bid_not_eligible",
            "bid_id",
        )
        unknown = client.post(route, json={"bid_id": "bid_nope"}, headers=buyer)
        assert refusal(unknown) == (404, "not_found", "bid_id")
        other = key_headers(app, "agent-research-2", "inference:buy")
        assert refusal(client.post(route, headers=other)) == (404, "not_found", "job_id")
        clock.advance(60)
        assert refusal(client.post(route, headers=buyer)) == (409, "bid_window_closed", "job_id")

    def test_a_cancel_releases_the_escrow_and_every_live_bid_loses(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        placed(client, alpha.headers, job_id, alpha.provider_id, price=0.3)
        placed(client, beta.headers, job_id, beta.provider_id, price=0.3, estimated_time_s=301)
        other = key_headers(app, "agent-research-2", "inference:buy")
        route = f"{JOBS}/{job_id}/cancel"
        assert refusal(client.post(route, headers=other)) == (404, "not_found", "job_id")
        assert account(client, BUYER)["held"] == Decimal("0.5")
        cancelled = client.post(route, json={"reason": "no longer needed"}, headers=buyer)
        assert cancelled.status_code == 200, cancelled.text
        job = cancelled.json()["job"]
        assert (job["status"], job["cancel_reason"]) == ("cancelled", "no longer needed")
        assert by_bidder(job) == {
            SELLER: ("lost", "window_closed"),
            SELLER_B: ("lost", "deadline_infeasible"),
        }
        assert job["events"][-1]["kind"] == "job.cancelled"
        assert account(client, BUYER) == {
            "balance": Decimal(0),
            "held": Decimal(0),
            "available": Decimal(0),
        }
        assert refusal(client.post(route, headers=buyer)) == (409, "job_not_open", "job_id")
        assert_ledger_sound(app)


class TestAuctionReasons:
    def test_every_losing_bid_says_why_and_standing_weighs_price(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        standings: dict[str, Decimal],
    ) -> None:
        job_id = post_job(client, buyer, min_reputation=0.4)["job_id"]
        names = ("s-cheap", "s-trusted", "s-over", "s-slow", "s-shunned", "s-gone")
        sellers = {name: bidder(client, app, name) for name in names}
        standings.update({"s-trusted": Decimal("1"), "s-shunned": Decimal("0.1")})
        prices = dict(zip(names, (0.22, 0.25, 0.51, 0.1, 0.05, 0.01), strict=True))
        bids = {}
        for name, who in sellers.items():
            seconds = 400 if name == "s-slow" else 5
            bids[name] = placed(
                client,
                who.headers,
                job_id,
                who.provider_id,
                price=prices[name],
                estimated_time_s=seconds,
            )
        gone = sellers["s-gone"].headers
        client.post(f"{JOBS}/{job_id}/bids/{bids['s-gone']['bid_id']}/withdraw", headers=gone)
        clock.advance(60)
        assert client.app.state.job_timer.tick().awarded == 1  # type: ignore[attr-defined]
        job = get_job(client, buyer, job_id)
        # s-trusted scores 0.25 * 0.75 = 0.1875, under s-cheap's 0.22.
        assert by_bidder(job) == {
            "s-trusted": ("won", None),
            "s-cheap": ("lost", "outbid"),
            "s-over": ("lost", "over_max_price"),
            "s-slow": ("lost", "deadline_infeasible"),
            "s-shunned": ("lost", "below_reputation_floor"),
            "s-gone": ("withdrawn", "withdrawn"),
        }
        scores = {b["bidder_id"]: b["score"] for b in job["bids"]}
        assert (scores["s-trusted"], scores["s-cheap"], scores["s-over"]) == (0.1875, 0.22, None)

    def test_equal_scores_break_by_time_then_the_earlier_revision(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        early, late, quick = (bidder(client, app, n) for n in ("s-early", "s-late", "s-quick"))
        placed(client, early.headers, job_id, early.provider_id, price=0.3, estimated_time_s=9)
        clock.advance(1)
        placed(client, late.headers, job_id, late.provider_id, price=0.3, estimated_time_s=9)
        clock.advance(58)
        assert get_job(client, buyer, job_id)["status"] == "open"
        clock.advance(1)
        client.app.state.job_timer.tick()  # type: ignore[attr-defined]
        assert get_job(client, buyer, job_id)["award"]["bidder_id"] == "s-early"
        second = post_job(client, buyer)["job_id"]
        placed(client, early.headers, second, early.provider_id, price=0.3, estimated_time_s=9)
        placed(client, quick.headers, second, quick.provider_id, price=0.3, estimated_time_s=8)
        clock.advance(60)
        client.app.state.job_timer.tick()  # type: ignore[attr-defined]
        assert get_job(client, buyer, second)["award"]["bidder_id"] == "s-quick"
        assert_ledger_sound(app)
