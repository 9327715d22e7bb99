"""The live stream of job events: every event once, in order, resumable with Last-Event-ID,
woken by a commit (this server's, or on PostgreSQL another's), sealed as the board is, and the
same events in the market feed."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from flow_memory.app import create_app
from flow_memory.jobs import stream
from flow_memory.jobs.models import JobEvent
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.db import make_engine
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    PROMPT,
    SELLER_B,
    caught_up,
    parse_stream,
    placed,
    post_job,
    quiet_settings,
    tick,
)
from tests.api.jobs_helpers import bidder as make_bidder
from tests.factories import SELLER, Headers, key_headers


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


def history(app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers) -> str:
    """A job posted, bid on twice and awarded: five events."""
    job_id = post_job(client, buyer)["job_id"]
    for owner, price in ((SELLER, 0.3), (SELLER_B, 0.2)):
        who = make_bidder(client, app, owner)
        placed(client, who.headers, job_id, who.provider_id, price=price)
    clock.advance(60)
    tick(app)
    return str(job_id)


class TestCatchingUp:
    def test_every_event_in_order_with_its_id_and_the_safety_fields(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        job_id = history(app, client, clock, buyer)
        events = caught_up(client, buyer, after=0)
        kinds = ["job.posted", "job.bid_placed", "job.bid_placed", "job.awarded"]
        assert [e.kind for e in events] == kinds
        ids = [int(e.event_id or 0) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for event in events:
            assert event.data["event_id"] == int(event.event_id or 0)
            assert event.data["job_id"] == job_id
            assert {k: event.data[k] for k in SAFETY_ENVELOPE} == dict(SAFETY_ENVELOPE)
        assert events[-1].data["payload"]["price"] == 0.2
        assert events[-1].data["payload"]["bidder_id"] == SELLER_B

    def test_last_event_id_resumes_after_it_and_wins_over_after(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        history(app, client, clock, buyer)
        every = caught_up(client, buyer, after=0)
        resumed = caught_up(
            client, {**buyer, "last-event-id": str(every[1].event_id)}, after=every[0].event_id
        )
        assert [e.event_id for e in resumed] == [e.event_id for e in every[2:]]
        assert caught_up(client, buyer, after=every[-1].event_id) == []

    def test_without_a_cursor_only_what_happens_next(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        history(app, client, clock, buyer)
        assert caught_up(client, buyer) == []

    @pytest.mark.parametrize(
        ("headers", "params", "code", "field"),
        [
            ({"last-event-id": "9999"}, {}, "unknown_event_id", "last-event-id"),
            ({"last-event-id": "job.posted"}, {}, "invalid_event_id", "last-event-id"),
            ({}, {"after": 9999}, "unknown_event_id", "after"),
            ({}, {"after": -1}, "invalid_request", "query.after"),
        ],
    )
    def test_a_cursor_that_names_no_event_is_refused(
        self,
        client: TestClient,
        buyer: Headers,
        headers: dict[str, str],
        params: dict[str, object],
        code: str,
        field: str,
    ) -> None:
        answer = client.get(f"{JOBS}/stream", params=params, headers={**buyer, **headers})
        assert answer.status_code == 422, answer.text
        assert (answer.json()["error"]["code"], answer.json()["error"]["field"]) == (code, field)

    def test_the_stream_needs_a_key_that_reads(self, app: FastAPI, client: TestClient) -> None:
        assert client.get(f"{JOBS}/stream").status_code == 401
        audit_only = key_headers(app, "auditor", "inference:audit")
        assert client.get(f"{JOBS}/stream", headers=audit_only).status_code == 403


class TestSealed:
    def test_no_event_carries_a_prompt_or_a_price_before_the_award(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        history(app, client, clock, buyer)
        for event in caught_up(client, buyer, after=0):
            assert PROMPT not in str(event.data)
            if event.kind != "job.awarded":
                assert "price" not in event.data["payload"] or event.kind == "job.posted"

    def test_the_market_feed_shows_the_same_events(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        job_id = history(app, client, clock, buyer)
        feed = client.get("/inference/market/feed", params={"kind": "job.awarded"}, headers=buyer)
        assert feed.status_code == 200, feed.text
        (event,) = feed.json()["events"]
        assert (event["subject_id"], event["model"]) == (job_id, "chat")
        assert event["payload"]["price"] == 0.2


def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("announcements and transaction ids are PostgreSQL's")


class TestLive:
    def test_a_commit_wakes_a_waiting_stream(
        self, app: FastAPI, client: TestClient, buyer: Headers, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Nothing but the commit's wake-up can deliver the event before a keep-alive.
        monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 30.0)
        with client.stream("GET", f"{JOBS}/stream", headers=buyer) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")
            job_id = post_job(client, buyer)["job_id"]
            event = next(parse_stream(lines))
        assert (event.kind, event.data["job_id"]) == ("job.posted", job_id)

    def test_another_servers_commit_wakes_it_on_postgresql(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        postgresql_only(settings.database_url)
        monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 30.0)
        other = create_app(settings, clock=clock)
        with TestClient(other) as elsewhere:
            listener = other.state.job_timer._listener
            assert listener is not None and listener.listening.wait(10)
            with elsewhere.stream("GET", f"{JOBS}/stream", headers=buyer) as response:
                lines = response.iter_lines()
                assert next(lines).startswith("retry:")
                job_id = post_job(client, buyer)["job_id"]  # through the first server
                event = next(parse_stream(lines))
        other.state.engine.dispose()
        assert (event.kind, event.data["job_id"]) == ("job.posted", job_id)

    def test_an_event_waits_for_the_older_transactions_so_none_is_skipped(
        self, app: FastAPI, client: TestClient, buyer: Headers, database_url: str
    ) -> None:
        postgresql_only(database_url)
        engine = make_engine(database_url)
        try:
            with engine.connect() as slow:
                slow.execute(
                    JobEvent.__table__.insert().values(  # type: ignore[attr-defined]
                        tx=text("pg_current_xact_id()::text::bigint"),
                        job_id="job_slow",
                        kind="job.posted",
                        payload={},
                        created_at=app.state.clock.now(),
                    )
                )
                post_job(client, buyer)  # commits after the slow one took its id, before it ends
                assert caught_up(client, buyer, after=0) == []
                slow.commit()
            kinds = [(e.data["job_id"] == "job_slow") for e in caught_up(client, buyer, after=0)]
            assert kinds == [True, False]
        finally:
            engine.dispose()
