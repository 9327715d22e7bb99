"""Plain functions the job board tests share: bodies, a job posted, a bid placed, a provider
per seller, credits granted, a timer tick, the ledger checked, the stream read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.jobs.timer import JobTimer, TickReport
from flow_memory.ledger.reconcile import check_ledger
from flow_memory.settings import Settings
from tests.factories import Headers, admin_headers, enroll_provider, key_headers

JOBS = "/inference/jobs"
LEDGER = "/inference/ledger"
MODEL = "flow-memory-orchestrator"
PROMPT = "Explain the concept of a sealed-bid auction in two sentences."
SELLER_B = "provider-team-beta"
SELLER_C = "provider-team-gamma"


def quiet_settings(
    database_url: str, *, review_seconds: int = 0, bid_rules: bool = False
) -> Settings:
    """Settings whose app runs no timer thread (the tests tick it themselves) and whose
    requesters review results for ``review_seconds``: 0, a submitted result is accepted as it
    arrives (what tests of everything but judging want); tests of judging give a window.
    ``bid_rules``: bids need a bid stake and each bidder holds only the jobs it has earned, as
    in the product (tests of other things leave both off and post no known-answer jobs)."""
    quiet = Settings(
        database_url=database_url, job_timer_seconds=0, validation_review_seconds=review_seconds
    )
    if bid_rules:
        return quiet
    return replace(
        quiet, stake_per_job_slot=0.0, earned_capacity_enforced=False, known_answer_share=0.0
    )


def stake(client: TestClient, headers: Headers, amount: str = "1", **body: Any) -> dict[str, Any]:
    """Stake ``amount`` to bid (for the key's owner, or ``identity_id``); the stake."""
    answer = client.post("/inference/stakes", json={"amount": amount, **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["stake"])


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request": {
            "model_hint": "chat",
            "prompt": PROMPT,
            "max_tokens": 500,
            "quality_threshold": "standard",
        },
        "economics": {"max_price": 0.5, "payment_mode": "auction"},
        "bid_window_seconds": 60,
        "deadline_seconds": 300,
    }
    body.update(overrides)
    return body


def post_job(client: TestClient, headers: Headers, **overrides: Any) -> dict[str, Any]:
    answer = client.post(JOBS, json=job_body(**overrides), headers=headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["job"])


def bid_body(provider_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider_id": provider_id,
        "model": MODEL,
        "price": 0.3,
        "estimated_time_s": 5,
    }
    body.update(overrides)
    return body


def bid(
    client: TestClient, headers: Headers, job_id: str, provider_id: str, **overrides: Any
) -> httpx.Response:
    return client.post(
        f"{JOBS}/{job_id}/bids", json=bid_body(provider_id, **overrides), headers=headers
    )


def placed(
    client: TestClient, headers: Headers, job_id: str, provider_id: str, **overrides: Any
) -> dict[str, Any]:
    """Bid and expect it taken; the answer's ``bid``."""
    answer = bid(client, headers, job_id, provider_id, **overrides)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json()["bid"])


@dataclass
class Bidder:
    owner_id: str
    headers: Headers
    provider_id: str


def bidder(client: TestClient, app: FastAPI, owner_id: str) -> Bidder:
    """A seller with a key (sell, read) and an enrolled provider."""
    headers = key_headers(app, owner_id, "inference:sell", "inference:read")
    provider = enroll_provider(client, headers, provider_name=f"{owner_id} runtime")
    return Bidder(owner_id, headers, str(provider["provider_id"]))


def get_job(client: TestClient, headers: Headers, job_id: str) -> dict[str, Any]:
    answer = client.get(f"{JOBS}/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["job"])


def grant(client: TestClient, holder_id: str, amount: str, *, key: str) -> None:
    admin = admin_headers(client.app)  # type: ignore[arg-type]
    body = {"holder_id": holder_id, "amount": amount, "idempotency_key": key}
    answer = client.post(f"{LEDGER}/grants", json=body, headers=admin)
    assert answer.status_code in (200, 201), answer.text


def enforce(client: TestClient, holder_id: str) -> None:
    admin = admin_headers(client.app)  # type: ignore[arg-type]
    answer = client.post(
        f"{LEDGER}/enforcement", json={"holder_id": holder_id, "enforced": True}, headers=admin
    )
    assert answer.status_code == 200, answer.text


def account(client: TestClient, holder_id: str) -> dict[str, Decimal]:
    """The holder's balance, held and available credits (zeros when it has no account)."""
    admin = admin_headers(client.app)  # type: ignore[arg-type]
    answer = client.get(f"{LEDGER}/accounts", params={"holder_id": holder_id}, headers=admin)
    assert answer.status_code == 200, answer.text
    found = answer.json(parse_float=Decimal)["accounts"]
    if not found:
        return {"balance": Decimal(0), "held": Decimal(0), "available": Decimal(0)}
    return {name: Decimal(str(found[0][name])) for name in ("balance", "held", "available")}


def tick(app: FastAPI) -> TickReport:
    timer: JobTimer = app.state.job_timer
    return timer.tick()


def assert_ledger_sound(app: FastAPI) -> None:
    """Every transfer sums to zero, every balance row is the sum of its postings."""
    with app.state.session_factory() as session:
        found = check_ledger(session)
    assert found.ok, found.report()


def assert_nothing_held(client: TestClient, *holders: str) -> None:
    for holder in holders:
        assert account(client, holder)["held"] == 0, holder


@dataclass(frozen=True)
class Event:
    event_id: str | None
    kind: str | None
    data: dict[str, Any]


def parse_stream(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a stream's lines; comments and the retry line are skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield Event(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


def caught_up(client: TestClient, headers: Headers, **params: Any) -> list[Event]:
    """The stream's settled events now (``follow=false``)."""
    with client.stream(
        "GET", f"{JOBS}/stream", params={"follow": "false", **params}, headers=headers
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_stream(response.iter_lines()))
