"""Changes announced to every server on one PostgreSQL database (flow_memory/kit/broadcast.py):
delivered when their transaction commits, never for a rollback, and acted on by another app at
once. SQLite has no such channel: these tests run on PostgreSQL only."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.app import create_app
from flow_memory.kit.broadcast import KEY_REVOKED, ROUTES, Listener, announce
from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.factories import admin_headers, eligible_provider, seller_headers

GUARD_SECONDS = 30  # a guard against a hung wait, not a performance claim


@pytest.fixture(autouse=True)
def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("NOTIFY is PostgreSQL's: SQLite servers see changes when what they kept ends")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def heard(database_url: str) -> Iterator[queue.Queue[tuple[str, str]]]:
    """What a listener of its own hears, as (topic, subject)."""
    found: queue.Queue[tuple[str, str]] = queue.Queue()
    listener = Listener(
        database_url,
        {
            ROUTES: lambda subject: found.put((ROUTES, subject)),
            KEY_REVOKED: lambda subject: found.put((KEY_REVOKED, subject)),
        },
    )
    listener.start()
    try:
        assert listener.listening.wait(GUARD_SECONDS)
        # On listening it forgets everything once (it may have missed announcements).
        assert {found.get(timeout=GUARD_SECONDS) for _ in range(2)} == {
            (ROUTES, ""),
            (KEY_REVOKED, ""),
        }
        yield found
    finally:
        listener.stop()


def test_an_announcement_arrives_when_its_transaction_commits_and_never_for_a_rollback(
    app: FastAPI, heard: queue.Queue[tuple[str, str]]
) -> None:
    with app.state.session_factory() as session:
        announce(session, KEY_REVOKED, "key_rolled_back")
        session.rollback()
    with app.state.session_factory.begin() as session:
        announce(session, KEY_REVOKED, "key_committed")
    assert heard.get(timeout=GUARD_SECONDS) == (KEY_REVOKED, "key_committed")
    assert heard.empty()


def test_a_revoke_through_one_server_drops_what_another_kept(
    app: FastAPI, client: TestClient, settings: Settings, clock: FrozenClock
) -> None:
    seller = seller_headers(app)
    provider = eligible_provider(client, seller)
    other = create_app(settings, clock=clock)
    try:
        with TestClient(other):
            listener = other.state.changes_listener
            assert listener is not None and listener.listening.wait(GUARD_SECONDS)
            # Listening, it forgot everything once (it may have missed something before).
            wait_for(lambda: other.state.route_facts.generation > 0, "the first forgetting")
            before = other.state.route_facts.generation
            revoked = client.post(
                f"/inference/credential-refs/{provider['credential_ref_id']}/revoke",
                json={"revoke_reason": "operator_rotation"},
                headers=admin_headers(app),
            )
            assert revoked.status_code == 200, revoked.text
            wait_for(
                lambda: other.state.route_facts.generation > before,
                "the other server to forget the offers it kept",
            )
            assert listener.heard >= 1
    finally:
        other.state.engine.dispose()
