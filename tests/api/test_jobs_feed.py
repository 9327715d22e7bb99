"""The server's one reader of job events (``feed.JobFeed``) and what streams ask of it: several
followers served from it, a follower further back than it keeps catching up from the database
first, streams that ask for some kinds or model hints only; and the signal that wakes the timer
only for a job due sooner than it meant to look."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.jobs import feed, stream
from flow_memory.jobs.signal import JobSignal
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    Event,
    caught_up,
    job_body,
    parse_stream,
    post_job,
    quiet_settings,
)
from tests.factories import Headers


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture(autouse=True)
def no_keepalives(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing but a commit's wake-up can deliver an event before a keep-alive.
    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 30.0)


def events_of(lines: Iterator[str], count: int) -> list[Event]:
    found = parse_stream(lines)
    return [next(found) for _ in range(count)]


def hinted(client: TestClient, buyer: Headers, model_hint: str) -> str:
    body = job_body()
    body["request"]["model_hint"] = model_hint
    answer = client.post(JOBS, json=body, headers=buyer)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job"]["job_id"])


class TestFollowers:
    def test_two_streams_get_the_same_events_from_one_reader(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        with (
            client.stream("GET", f"{JOBS}/stream", headers=buyer) as first,
            client.stream("GET", f"{JOBS}/stream", headers=buyer) as second,
        ):
            one, two = first.iter_lines(), second.iter_lines()
            assert next(one).startswith("retry:") and next(two).startswith("retry:")
            posted = [post_job(client, buyer)["job_id"] for _ in range(3)]
            seen_first = events_of(one, 3)
            seen_second = events_of(two, 3)
        assert [e.data["job_id"] for e in seen_first] == posted
        assert [e.event_id for e in seen_second] == [e.event_id for e in seen_first]
        assert app.state.job_feed.reads >= 1

    def test_a_follower_further_back_than_the_feed_keeps_reads_the_database_first(
        self,
        app: FastAPI,
        client: TestClient,
        buyer: Headers,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(feed, "KEEP", 1)  # the feed keeps 2 events at most
        start = caught_up(client, buyer, after=0)
        after = int(start[-1].event_id or 0) if start else 0
        with client.stream("GET", f"{JOBS}/stream", headers=buyer) as live:
            lines = live.iter_lines()
            assert next(lines).startswith("retry:")
            posted = [post_job(client, buyer)["job_id"] for _ in range(5)]
            assert [e.data["job_id"] for e in events_of(lines, 5)] == posted
            assert app.state.job_feed.after((0, after)) is None  # it keeps fewer
            params = {"after": after}
            with client.stream("GET", f"{JOBS}/stream", params=params, headers=buyer) as late:
                late_lines = late.iter_lines()
                assert next(late_lines).startswith("retry:")
                backlog = events_of(late_lines, 5)
                later = post_job(client, buyer)["job_id"]
                (next_one,) = events_of(late_lines, 1)
        ids = [int(e.event_id or 0) for e in backlog]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert [e.data["job_id"] for e in backlog] == posted
        assert next_one.data["job_id"] == later


def until_end_or_keepalive(lines: Iterator[str]) -> tuple[list[str], bool]:
    """The lines a stream sends until it ends (False) or sends a keep-alive (True: it is
    still following)."""
    seen: list[str] = []
    for line in lines:
        if line.startswith(": keep-alive"):
            return seen, True
        if line:
            seen.append(line)
    return seen, False


class TestStopping:
    def test_streams_end_when_the_server_stops_and_one_that_joins_after_ends_at_once(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        # A stream that goes on following shows it by its first keep-alive (after 30 s here,
        # no_keepalives): one that ends as it should never gets that far, however slow.
        retry = f"retry: {stream.RETRY_MILLISECONDS}"
        with client.stream("GET", f"{JOBS}/stream", headers=buyer) as open_before:
            lines = open_before.iter_lines()
            assert next(lines) == retry
            for hook in app.state.on_stopping:  # as kit.server.run_server calls them
                hook()
            assert until_end_or_keepalive(lines) == ([], False)
        # A stream whose request was still on its way when the server began to stop.
        with client.stream("GET", f"{JOBS}/stream", headers=buyer) as joined_after:
            assert until_end_or_keepalive(joined_after.iter_lines()) == ([retry], False)


class TestFilters:
    def test_a_stream_gets_only_the_kinds_and_model_hints_it_asks_for(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        params = {"kind": ["job.posted", "job.cancelled"], "model_hint": ["codegen"]}
        with client.stream("GET", f"{JOBS}/stream", params=params, headers=buyer) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")
            hinted(client, buyer, "chat")
            wanted = hinted(client, buyer, "codegen")
            cancelled = client.post(f"{JOBS}/{wanted}/cancel", headers=buyer)
            assert cancelled.status_code == 200, cancelled.text
            seen = events_of(lines, 2)
        assert [(e.kind, e.data["job_id"]) for e in seen] == [
            ("job.posted", wanted),
            ("job.cancelled", wanted),
        ]

    def test_catching_up_filters_alike(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        chat = hinted(client, buyer, "chat")
        hinted(client, buyer, "analysis")
        found = caught_up(client, buyer, after=0, model_hint="chat", kind="job.posted")
        assert chat in [e.data["job_id"] for e in found]
        assert {e.kind for e in found} == {"job.posted"}
        assert {e.data["payload"]["model_hint"] for e in found} == {"chat"}

    def test_an_unknown_kind_is_refused(self, client: TestClient, buyer: Headers) -> None:
        answer = client.get(
            f"{JOBS}/stream", params={"kind": "job.teleported", "follow": "false"}, headers=buyer
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("unknown_event_kind", "kind")


class TestTimerWakes:
    NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def test_a_job_due_sooner_than_planned_wakes_the_timer(self) -> None:
        signal = JobSignal()
        signal.timer_plan = self.NOW + timedelta(seconds=5)
        signal.due(self.NOW + timedelta(seconds=2))
        assert signal.timer.is_set()

    def test_a_job_due_later_than_planned_does_not(self) -> None:
        signal = JobSignal()
        signal.timer_plan = self.NOW + timedelta(seconds=5)
        signal.due(self.NOW + timedelta(seconds=60))
        assert not signal.timer.is_set()

    def test_while_the_timer_looks_any_due_job_wakes_it_again(self) -> None:
        signal = JobSignal()
        signal.timer_plan = None
        signal.due(self.NOW + timedelta(days=1))
        assert signal.timer.is_set()

    def test_a_posted_job_tells_the_timer_when_its_window_closes(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        signal: JobSignal = app.state.job_timer.signal
        signal.timer_plan = datetime(2999, 1, 1, tzinfo=UTC)
        signal.timer.clear()
        woke = threading.Event()
        original = signal.due

        def due(moment: datetime) -> None:
            woke.set()
            original(moment)

        signal.due = due  # type: ignore[method-assign]
        post_job(client, buyer, bid_window_seconds=30)
        assert woke.is_set() and signal.timer.is_set()
