"""A job's prompt and its result are long texts: those two routes take strings up to the job
board's bound (job_max_text_length) where every other body keeps max_string_length, and a
long text is scanned for forbidden material all the same."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.api.jobs_helpers import JOBS, MODEL, bidder, placed, post_job, quiet_settings, tick
from tests.factories import SELLER, Headers

LONG = "Summarise the following notes. " + "The sealed bid closes at noon. " * 600  # ~18,600


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


def result(output: str) -> dict[str, object]:
    return {"output": output, "model": MODEL, "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


def test_a_long_prompt_and_a_long_result_are_taken(
    app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
) -> None:
    assert len(LONG) > app.state.settings.max_string_length
    job = post_job(client, buyer, request={"model_hint": MODEL, "prompt": LONG, "max_tokens": 64})
    winner = bidder(client, app, SELLER)
    placed(client, winner.headers, job["job_id"], winner.provider_id, price=0.2)
    clock.advance(60)
    tick(app)
    assignment = client.get(f"{JOBS}/{job['job_id']}/assignment", headers=winner.headers)
    assert assignment.json()["assignment"]["request"]["prompt"] == LONG
    answer = client.post(
        f"{JOBS}/{job['job_id']}/result", json=result(LONG), headers=winner.headers
    )
    assert answer.status_code == 201, answer.text
    stored = client.get(
        f"/inference/results/{answer.json()['result']['result_hash']}", headers=buyer
    )
    assert stored.json()["result"]["output"] == LONG


def test_a_secret_inside_a_long_result_is_refused_and_nothing_is_stored(
    app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
) -> None:
    job = post_job(client, buyer)
    winner = bidder(client, app, SELLER)
    placed(client, winner.headers, job["job_id"], winner.provider_id, price=0.2)
    clock.advance(60)
    tick(app)
    leaked = (
        LONG
        + " -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
        + "-----END PRIVATE KEY-----"
    )
    answer = client.post(
        f"{JOBS}/{job['job_id']}/result", json=result(leaked), headers=winner.headers
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "forbidden_material"
    assert client.get(f"{JOBS}/{job['job_id']}", headers=buyer).json()["job"]["status"] == "awarded"


def test_a_string_past_the_job_bound_is_refused_with_the_bound_named(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    bound = app.state.settings.job_max_text_length
    request = {"model_hint": MODEL, "prompt": "x" * (bound + 1), "max_tokens": 64}
    answer = client.post(JOBS, json=_job(request), headers=buyer)
    assert answer.status_code in (400, 413, 422)
    assert str(bound) in answer.text


def test_other_routes_keep_the_ordinary_string_bound(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    long_reason = {"reason": "x" * (app.state.settings.max_string_length + 1)}
    job = post_job(client, buyer)
    answer = client.post(f"{JOBS}/{job['job_id']}/cancel", json=long_reason, headers=buyer)
    assert answer.status_code in (400, 413, 422)
    assert str(app.state.settings.max_string_length) in answer.text


def _job(request: dict[str, object]) -> dict[str, object]:
    return {"request": request, "economics": {"max_price": "1", "payment_mode": "auction"}}
