"""derive_health: route gate and status from recorded facts and the time (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow_memory.providers.health import HealthThresholds, RuntimeFacts, derive_health

NOW = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)
LIMITS = HealthThresholds(
    heartbeat_stale=timedelta(seconds=90),
    catalog_stale=timedelta(seconds=86_400),
    capacity_stale=timedelta(seconds=900),
)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


HEALTHY = RuntimeFacts(
    paired=True,
    routes_disabled=False,
    credential_status="active",
    credential_pointer_current=True,
    last_heartbeat_at=ago(10),
    catalog_published_at=ago(3600),
    capacity_published_at=ago(60),
    capacity_latest_expiry=NOW + timedelta(days=30),
)


def facts(**changes: object) -> RuntimeFacts:
    return dataclasses.replace(HEALTHY, **changes)  # type: ignore[arg-type]


class TestEligible:
    def test_fresh_facts_are_healthy_and_eligible(self) -> None:
        health = derive_health(HEALTHY, NOW, LIMITS)
        assert health.status == "healthy"
        assert health.route_gate == "eligible"
        assert health.credential_ref_status == "active"
        assert (health.heartbeat_status, health.catalog_status, health.capacity_status) == (
            "current",
            "current",
            "current",
        )
        assert health.reasons == ()


class TestReportedStatus:
    @pytest.mark.parametrize("reported", [None, "ready", "busy"])
    def test_a_runtime_at_work_is_healthy(self, reported: str | None) -> None:
        health = derive_health(facts(reported_status=reported), NOW, LIMITS)
        assert (health.status, health.route_gate, health.reasons) == ("healthy", "eligible", ())

    def test_a_draining_runtime_takes_no_new_routes(self) -> None:
        health = derive_health(facts(reported_status="draining"), NOW, LIMITS)
        assert (health.status, health.route_gate) == ("degraded", "pending")
        assert health.reasons == ("runtime_draining",)

    def test_a_degraded_runtime_stays_routable_but_is_not_called_healthy(self) -> None:
        health = derive_health(facts(reported_status="degraded"), NOW, LIMITS)
        assert (health.status, health.route_gate) == ("degraded", "eligible")
        assert health.reasons == ("runtime_degraded",)

    def test_a_stale_heartbeats_report_no_longer_counts(self) -> None:
        health = derive_health(
            facts(reported_status="draining", last_heartbeat_at=ago(91)), NOW, LIMITS
        )
        assert health.route_gate == "stale"
        assert "runtime_draining" not in health.reasons

    def test_revocation_outranks_a_report(self) -> None:
        health = derive_health(
            facts(reported_status="draining", credential_status="revoked"), NOW, LIMITS
        )
        assert (health.status, health.route_gate) == ("unhealthy", "blocked")


class TestHeartbeat:
    def test_a_heartbeat_exactly_at_the_limit_is_current(self) -> None:
        health = derive_health(facts(last_heartbeat_at=ago(90)), NOW, LIMITS)
        assert health.heartbeat_status == "current"
        assert health.route_gate == "eligible"

    def test_a_heartbeat_past_the_limit_is_stale_and_unhealthy(self) -> None:
        health = derive_health(facts(last_heartbeat_at=ago(91)), NOW, LIMITS)
        assert health.heartbeat_status == "stale"
        assert health.route_gate == "stale"
        assert health.status == "unhealthy"
        assert "heartbeat_stale" in health.reasons

    def test_no_heartbeat_yet_is_pending(self) -> None:
        health = derive_health(facts(last_heartbeat_at=None), NOW, LIMITS)
        assert health.heartbeat_status == "missing"
        assert health.route_gate == "pending"
        assert health.status == "pending"
        assert "heartbeat_missing" in health.reasons


class TestCatalogAndCapacity:
    def test_a_catalog_older_than_a_day_is_stale_and_degraded(self) -> None:
        health = derive_health(facts(catalog_published_at=ago(86_401)), NOW, LIMITS)
        assert health.catalog_status == "stale"
        assert health.route_gate == "stale"
        assert health.status == "degraded"
        assert health.reasons == ("catalog_stale",)

    def test_capacity_older_than_fifteen_minutes_is_stale(self) -> None:
        health = derive_health(facts(capacity_published_at=ago(901)), NOW, LIMITS)
        assert health.capacity_status == "stale"
        assert health.route_gate == "stale"
        assert health.status == "degraded"

    @pytest.mark.parametrize("expiry", [NOW, NOW - timedelta(seconds=1), None])
    def test_capacity_whose_last_entry_expired_is_expired(self, expiry: datetime | None) -> None:
        health = derive_health(facts(capacity_latest_expiry=expiry), NOW, LIMITS)
        assert health.capacity_status == "expired"
        assert health.route_gate == "stale"
        assert health.status == "degraded"
        assert "capacity_expired" in health.reasons

    def test_capacity_expiring_later_is_current(self) -> None:
        health = derive_health(
            facts(capacity_latest_expiry=NOW + timedelta(seconds=1)), NOW, LIMITS
        )
        assert health.capacity_status == "current"

    @pytest.mark.parametrize("field", ["catalog_published_at", "capacity_published_at"])
    def test_nothing_published_is_pending(self, field: str) -> None:
        health = derive_health(facts(**{field: None}), NOW, LIMITS)
        assert health.route_gate == "pending"
        assert health.status == "pending"


class TestCredential:
    def test_a_rotated_pointer_is_stale_and_degraded(self) -> None:
        health = derive_health(facts(credential_pointer_current=False), NOW, LIMITS)
        assert health.credential_ref_status == "rotated"
        assert health.route_gate == "stale"
        assert health.status == "degraded"
        assert health.reasons == ("credential_ref_rotated",)

    def test_a_revoked_reference_blocks(self) -> None:
        health = derive_health(facts(credential_status="revoked"), NOW, LIMITS)
        assert health.credential_ref_status == "revoked"
        assert health.route_gate == "blocked"
        assert health.status == "unhealthy"
        assert health.reasons == ("credential_ref_revoked",)

    def test_revoked_wins_over_rotated(self) -> None:
        health = derive_health(
            facts(credential_status="revoked", credential_pointer_current=False), NOW, LIMITS
        )
        assert health.credential_ref_status == "revoked"

    def test_disabled_routes_block_even_with_an_active_reference(self) -> None:
        health = derive_health(facts(routes_disabled=True), NOW, LIMITS)
        assert health.route_gate == "blocked"
        assert health.status == "unhealthy"
        assert health.reasons == ("provider_routes_disabled",)

    def test_blocked_wins_over_pending(self) -> None:
        health = derive_health(
            facts(paired=False, credential_status="revoked", last_heartbeat_at=None), NOW, LIMITS
        )
        assert health.route_gate == "blocked"


class TestPairing:
    def test_an_unpaired_runtime_is_pending(self) -> None:
        health = derive_health(facts(paired=False), NOW, LIMITS)
        assert health.route_gate == "pending"
        assert health.status == "pending"
        assert health.reasons == ("pairing_pending",)


class TestReasons:
    def test_reasons_accumulate_in_a_stable_order(self) -> None:
        health = derive_health(
            facts(
                credential_pointer_current=False,
                routes_disabled=True,
                last_heartbeat_at=ago(1000),
                catalog_published_at=None,
                capacity_published_at=ago(5000),
            ),
            NOW,
            LIMITS,
        )
        assert health.reasons == (
            "credential_ref_rotated",
            "provider_routes_disabled",
            "heartbeat_stale",
            "catalog_missing",
            "capacity_stale",
        )


moments = st.one_of(st.none(), st.integers(min_value=-100_000, max_value=200_000).map(ago))


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        paired=st.booleans(),
        routes_disabled=st.booleans(),
        credential_status=st.sampled_from(["active", "revoked"]),
        pointer_current=st.booleans(),
        heartbeat=moments,
        catalog=moments,
        capacity=moments,
        expiry=moments,
    )
    def test_eligible_exactly_when_every_fact_is_good(
        self,
        paired: bool,
        routes_disabled: bool,
        credential_status: str,
        pointer_current: bool,
        heartbeat: datetime | None,
        catalog: datetime | None,
        capacity: datetime | None,
        expiry: datetime | None,
    ) -> None:
        record = RuntimeFacts(
            paired,
            routes_disabled,
            credential_status,
            pointer_current,
            heartbeat,
            catalog,
            capacity,
            expiry,
        )
        health = derive_health(record, NOW, LIMITS)
        all_good = (
            paired
            and not routes_disabled
            and credential_status == "active"
            and pointer_current
            and heartbeat is not None
            and NOW - heartbeat <= LIMITS.heartbeat_stale
            and catalog is not None
            and NOW - catalog <= LIMITS.catalog_stale
            and capacity is not None
            and NOW - capacity <= LIMITS.capacity_stale
            and expiry is not None
            and expiry > NOW
        )
        assert (health.route_gate == "eligible") == all_good
        assert (health.status == "healthy") == all_good
        assert (health.reasons == ()) == all_good
        if credential_status == "revoked" or routes_disabled:
            assert health.route_gate == "blocked"
            assert health.status == "unhealthy"
