"""The job edge (flow_memory/jobs/edge.py) posts jobs and places bids itself when a request is
well formed, and hands every other request to those paths, byte for byte, to the full stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from flow_memory.jobs.api import router
from flow_memory.jobs.edge import BID_ROUTE, POST_JOB_ROUTE
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    Bidder,
    bid_body,
    bidder,
    get_job,
    job_body,
    post_job,
    quiet_settings,
)
from tests.api.test_order_edge import _dependencies, call_edge
from tests.assertions import assert_safety
from tests.factories import SELLER, Headers


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture
def alpha(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER)


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _without_ids(answer: Any, key: str = "") -> Any:
    """The answer with generated ids and times replaced by their kind."""
    if isinstance(answer, dict):
        return {k: _without_ids(v, k) for k, v in answer.items()}
    if isinstance(answer, list):
        return [_without_ids(v, key) for v in answer]
    if key.endswith(("_id", "_at")) and answer is not None:
        return key
    return answer


def test_a_well_formed_job_is_posted_by_the_edge_as_the_route_posts_it(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    status, edge_answer, stack = call_edge(
        app, encoded(job_body()), buyer, route=POST_JOB_ROUTE, path=JOBS
    )
    assert (status, stack.bodies) == (201, [])
    assert edge_answer is not None and edge_answer["job"]["status"] == "open"
    assert_safety(edge_answer)
    # A query string sends it to the full stack, which posts the same job the same way.
    full = client.post(f"{JOBS}?via=stack", json=job_body(), headers=buyer)
    assert full.status_code == 201, full.text
    assert _without_ids(edge_answer) == _without_ids(full.json())
    # The edge's job is as real as the route's.
    assert get_job(client, buyer, edge_answer["job"]["job_id"])["status"] == "open"


def test_a_bid_is_placed_by_the_edge_and_the_route_alike(
    app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder
) -> None:
    first, second = post_job(client, buyer), post_job(client, buyer)
    path = f"{JOBS}/{first['job_id']}/bids"
    status, edge_answer, stack = call_edge(
        app, encoded(bid_body(alpha.provider_id)), alpha.headers, route=BID_ROUTE, path=path
    )
    assert (status, stack.bodies) == (201, [])
    assert edge_answer is not None
    full = client.post(
        f"{JOBS}/{second['job_id']}/bids?via=stack",
        json=bid_body(alpha.provider_id),
        headers=alpha.headers,
    )
    assert full.status_code == 201, full.text
    assert _without_ids(edge_answer) == _without_ids(full.json())


def test_a_refusal_from_the_edge_is_the_routes_refusal(
    app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder
) -> None:
    job = post_job(client, buyer)
    # A provider the bidder does not have: the use case refuses it, at the edge as on the route.
    over = bid_body("prov_missing")
    path = f"{JOBS}/{job['job_id']}/bids"
    status, edge_answer, _ = call_edge(
        app, encoded(over), alpha.headers, route=BID_ROUTE, path=path
    )
    full = client.post(f"{path}?via=stack", json=over, headers=alpha.headers)
    assert status == full.status_code and status >= 400
    assert edge_answer == full.json()
    # A job that does not exist.
    missing = f"{JOBS}/job_missing/bids"
    status, edge_answer, _ = call_edge(
        app, encoded(bid_body(alpha.provider_id)), alpha.headers, route=BID_ROUTE, path=missing
    )
    assert status == 404 and edge_answer is not None
    assert edge_answer["error"]["field"] == "job_id"


@pytest.mark.parametrize(
    "case",
    ["query", "not_json", "a_list", "unknown_field", "no_key", "wrong_scope", "nul_in_path"],
)
def test_what_the_edge_does_not_take_reaches_the_full_stack_unchanged(
    app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder, case: str
) -> None:
    body = encoded(bid_body(alpha.provider_id))
    headers: Headers = alpha.headers
    path, query, content_type = f"{JOBS}/job_x/bids", b"", b"application/json"
    if case == "query":
        query = b"a=1"
    elif case == "not_json":
        body = b"provider_id=1"
    elif case == "a_list":
        body = b"[]"
    elif case == "unknown_field":
        body = encoded({**bid_body(alpha.provider_id), "wallet_address": "0xabc"})
    elif case == "no_key":
        headers = {}
    elif case == "wrong_scope":
        headers = buyer  # a buyer's key cannot bid
    elif case == "nul_in_path":
        path = f"{JOBS}/job\x00x/bids"
    status, answer, stack = call_edge(
        app, body, headers, route=BID_ROUTE, path=path, query=query, content_type=content_type
    )
    assert status == 299 and stack.bodies == [body]  # the recording double answered
    del answer


def test_the_full_stack_refuses_what_the_edge_handed_on(
    client: TestClient, buyer: Headers, alpha: Bidder
) -> None:
    job = post_job(client, buyer)
    path = f"{JOBS}/{job['job_id']}/bids"
    answer = client.post(path, json=bid_body(alpha.provider_id), headers=buyer)
    assert answer.status_code == 403
    answer = client.post(
        f"{JOBS}/job%00x/bids", json=bid_body(alpha.provider_id), headers=alpha.headers
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_character"
    secret = job_body()
    secret["request"]["prompt"] = "my key is -----BEGIN PRIVATE KEY----- MIIEvQ"
    answer = client.post(JOBS, json=secret, headers=buyer)
    assert answer.status_code in (400, 422) and answer.json()["ok"] is False


def test_a_long_prompt_within_the_job_bounds_is_posted_at_the_edge(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    settings = app.state.settings
    long_prompt = "".join(
        f"Line {n}: compare sealed bids by price. " for n in range(settings.max_string_length // 30)
    )
    assert len(long_prompt) > settings.max_string_length  # past the bound of other bodies
    body = job_body()
    body["request"]["prompt"] = long_prompt
    answer = client.post(JOBS, json=body, headers=buyer)
    assert answer.status_code == 201, answer.text
    # The app's edge checks a job with the job board's bounds, as the full stack's guard does.
    [edge] = [m for m in app.user_middleware if m.cls.__name__ == "Edge"]  # type: ignore[attr-defined]
    guards = {route.template: guard for route, guard in edge.kwargs["routes"]}
    assert guards[JOBS].max_string_length >= settings.job_max_text_length
    assert guards[JOBS].max_body_bytes >= settings.job_max_body_bytes
    assert guards[BID_ROUTE.template].max_string_length == settings.max_string_length


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            JOBS,
            [
                "job_work",
                "job_timer",
                "get_clock",
                "require_buy",
                "HTTPBearer",
                "job_rules",
                "get_settings",
            ],
        ),
        (
            JOBS + "/{job_id}/bids",
            [
                "job_work",
                "job_timer",
                "get_clock",
                "require_sell",
                "HTTPBearer",
                "job_rules",
                "get_settings",
            ],
        ),
    ],
)
def test_the_routes_run_no_dependency_the_edge_does_not(path: str, expected: list[str]) -> None:
    [route] = [
        r
        for r in router.routes
        if isinstance(r, APIRoute)
        and r.path == "/inference" + path.removeprefix("/inference")
        and "POST" in r.methods
    ]
    # What the edge does for each: job_work/job_timer are JobWork.of(app.state); get_clock and
    # get_settings read app.state; require_* authenticates and checks the route's scopes;
    # HTTPBearer only documents the scheme; job_rules is JobRules.of(settings).
    assert _dependencies(route.dependant) == expected, (
        "a job route gained a dependency: make the job edge (flow_memory/jobs/edge.py) do what "
        "it does, then list it here"
    )
