"""The proxy's usage recorder waits out a database outage: records queued while the database
cannot be used are written once it can, none lost (a SQLite file made unopenable here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.kit.outage import DATABASE
from flow_memory.migrations import upgrade
from flow_memory.proxy.recorder import UsageRecorder
from flow_memory.routing.models import RouteRecord
from flow_memory.usage.models import UsageRecord
from flow_memory.usage.service import UsageInput, record_values
from tests.integration.test_database_outage import UnopenableFile

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def record() -> dict[str, object]:
    return record_values(
        UsageInput(
            source="proxy",
            decision="routed",
            owner_id="agent-research-1",
            seller_owner_id="provider-team-alpha",
            model="flow-memory-orchestrator",
            unit_type="token",
            provider_id="prov_test",
            estimated_units=1000,
            actual_units=900,
            unit_price=Decimal("0.00000075"),
            reference_unit_price=Decimal("0.000001"),
        ),
        now=NOW,
    )


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "recorder.db"
    upgrade(f"sqlite:///{path}")
    yield path
    DATABASE.recovered()  # the outage this test made is over: the process forgets it


def test_records_queued_during_an_outage_are_written_once_it_ends(database: Path) -> None:
    engine = make_engine(f"sqlite:///{database}")
    factory = make_session_factory(engine)
    recorder = UsageRecorder(factory)
    try:
        recorder.add(record())
        assert recorder.flush(timeout=60)
        file = UnopenableFile(database)
        file.take_away()
        try:
            for _ in range(3):
                recorder.add(record())
            # The writer meets the outage and waits: nothing is written, nothing lost.
            assert not recorder.flush(timeout=2)
            assert (recorder.written, recorder.lost) == (1, 0)
        finally:
            file.restore()
        assert recorder.flush(timeout=60)
        assert (recorder.written, recorder.lost) == (4, 0)
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(UsageRecord)) == 4
    finally:
        recorder.stop()
        engine.dispose()


def route(route_id: str) -> RouteRecord:
    return RouteRecord(
        route_id=route_id,
        owner_id="agent-research-1",
        agent_id=None,
        workspace_id="workspace-default",
        task_id=None,
        goal_id=None,
        model="flow-memory-orchestrator",
        unit_type="token",
        estimated_units=1000,
        provider_id="prov_test",
        order_id=None,
        unit_price=Decimal("0.00000075"),
        estimated_cost=Decimal("0.00075"),
        reference_unit_price=None,
        discount_bps=None,
        selected_quote={},
        fallbacks=[],
        warnings=[],
        policy={},
        created_at=NOW,
        expires_at=NOW,
    )


def test_routes_are_written_once_with_or_without_records_and_across_an_outage(
    database: Path,
) -> None:
    engine = make_engine(f"sqlite:///{database}")
    factory = make_session_factory(engine)
    recorder = UsageRecorder(factory)
    try:
        recorder.add_route(route("route_alone"))  # a route with no record after it yet
        assert recorder.flush(timeout=60)
        file = UnopenableFile(database)
        file.take_away()
        try:
            recorder.add_route(route("route_in_outage"))
            recorder.add(record())
            assert not recorder.flush(timeout=2)  # met the outage: retried, not lost
        finally:
            file.restore()
        assert recorder.flush(timeout=60)
        with factory() as session:
            stored = session.scalars(select(RouteRecord.route_id)).all()
        assert sorted(stored) == ["route_alone", "route_in_outage"]
        assert (recorder.written, recorder.lost) == (1, 0)
    finally:
        recorder.stop()
        engine.dispose()
