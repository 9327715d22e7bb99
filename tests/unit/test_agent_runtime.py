"""The provider agent's loop against in-memory doubles of Flow Memory and a model server."""

from __future__ import annotations

import logging
import random
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from flow_memory.agent import (
    AgentConfig,
    Backoff,
    FlowMemoryClient,
    ModelServerClient,
    Offer,
    ProviderAgent,
    UnitTerms,
)
from tests.doubles.flow_memory_mock import MockFlowMemory, MockModelServer

API_KEY = "fm_test_key_Zq9Xw8Vu7Ts6Rp5On4"
START = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_config(tmp_path: Path, **overrides: object) -> AgentConfig:
    config = AgentConfig(
        flow_memory_url="http://flow-memory.test",
        model_server_url="http://127.0.0.1:8080/v1",
        api_key=API_KEY,
        provider_name="gpu-box",
        credential_ref="secret://inference/gpu-box",
        state_file=tmp_path / "agent-state.json",
        heartbeat_interval_seconds=30,
        capacity_ttl_seconds=600,
        backoff_base_seconds=1,
        backoff_cap_seconds=60,
        offer=Offer(
            concurrency=2,
            units={
                "token": UnitTerms(
                    ask_unit_price=Decimal("0.00000075"),
                    min_order_units=1000,
                    units_per_second=Decimal(25),
                    reference_unit_price=Decimal("0.000001"),
                )
            },
        ),
    )
    return replace(config, **overrides).check()  # type: ignore[arg-type]


class Rig:
    """An agent wired to the doubles, with a clock the test moves."""

    def __init__(self, tmp_path: Path, **overrides: object) -> None:
        self.flow = MockFlowMemory(API_KEY)
        self.models = MockModelServer()
        self.clock = ManualClock()
        self.config = make_config(tmp_path, **overrides)
        self.agent = self.new_agent()

    def new_agent(self) -> ProviderAgent:
        return ProviderAgent(
            self.config,
            flow=FlowMemoryClient(
                self.config.flow_memory_url, API_KEY, transport=self.flow.transport()
            ),
            model_server=ModelServerClient(
                self.config.model_server_url, transport=self.models.transport()
            ),
            clock=self.clock,
            rng=random.Random(7),
        )

    @property
    def provider(self):  # type: ignore[no-untyped-def]
        (provider,) = self.flow.providers.values()
        return provider


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


class TestFirstRun:
    def test_enrolls_pairs_and_publishes_catalog_and_capacity(self, rig: Rig) -> None:
        delay = rig.agent.step()

        assert rig.flow.paths() == [
            "/inference/credential-refs",
            "/inference/credential-refs",
            "/inference/providers/enroll",
            "/inference/providers/prov_1/pairing-token",
            "/inference/providers/prov_1/heartbeat",
            "/inference/providers/prov_1/catalog",
            "/inference/providers/prov_1/capacity",
        ]
        (ref,) = rig.flow.credential_refs.values()
        assert ref["credential_ref"] == "secret://inference/gpu-box"
        (enroll,) = rig.flow.bodies("/enroll")
        assert enroll["base_url"] == "http://127.0.0.1:8080/v1"
        assert enroll["credential_ref_id"] == ref["credential_ref_id"]
        assert enroll["supported_units"] == ["token"]
        assert rig.provider.paired and rig.provider.last_status == "ready"
        assert rig.provider.catalog == [
            {
                "model": "tiny-chat",
                "compatible_api": "chat_completions",
                "unit_types": ["token"],
                "context_window": 4096,
                "tool_calling": "none",
                "reference_unit_prices": {"token": Decimal("0.000001")},
            }
        ]
        (line,) = rig.provider.capacity
        # Two slots x 25 tokens a second x a 600-second window, at the exact configured price.
        assert line["available_units"] == 30_000
        assert line["ask_unit_price"] == Decimal("0.00000075")
        assert line["min_order_units"] == 1000
        assert line["expires_at"] == "2026-06-17T12:10:00.000000Z"
        assert rig.agent.status.phase == "serving"
        assert rig.agent.status.capacity_live
        assert 0 < delay <= 30

    def test_prices_travel_as_exact_json_numbers(self, rig: Rig) -> None:
        rig.agent.step()
        capacity = next(c for c in rig.flow.calls if c.path.endswith("/capacity"))
        assert capacity.headers["content-type"] == "application/json"
        assert isinstance(capacity.body["inventory"][0]["ask_unit_price"], Decimal)

    def test_state_file_remembers_the_enrollment_and_holds_no_key(self, rig: Rig) -> None:
        rig.agent.step()
        path = rig.config.state_file
        assert path is not None
        text = path.read_text()
        assert '"provider_id": "prov_1"' in text
        assert '"credential_ref_id": "credref_1"' in text
        assert API_KEY not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_uses_the_context_window_the_server_reports(self, rig: Rig) -> None:
        rig.models.models = [{"id": "tiny-chat", "max_model_len": 8192}]
        rig.agent.step()
        assert rig.provider.catalog[0]["context_window"] == 8192

    def test_skips_model_ids_flow_memory_cannot_hold(self, rig: Rig) -> None:
        rig.models.models = [{"id": "/models/gemma.gguf"}, {"id": "tiny-chat"}]
        rig.agent.step()
        assert [m["model"] for m in rig.provider.catalog] == ["tiny-chat"]

    def test_a_model_can_be_left_out_or_priced_on_its_own(self, tmp_path: Path) -> None:
        rig = Rig(
            tmp_path,
            models={
                "hidden": Offer(enabled=False),
                "embedder": Offer(
                    compatible_api="embeddings",
                    context_window=512,
                    units={"token": UnitTerms(ask_unit_price=Decimal("0.00000002"))},
                ),
            },
        )
        rig.models.models = [{"id": "hidden"}, {"id": "embedder"}, {"id": "tiny-chat"}]
        rig.agent.step()
        catalog = {m["model"]: m for m in rig.provider.catalog}
        assert set(catalog) == {"embedder", "tiny-chat"}
        assert catalog["embedder"]["compatible_api"] == "embeddings"
        assert catalog["embedder"]["context_window"] == 512
        prices = {line["model"]: line["ask_unit_price"] for line in rig.provider.capacity}
        assert prices == {"embedder": Decimal("0.00000002"), "tiny-chat": Decimal("0.00000075")}

    def test_a_key_that_cannot_list_references_creates_one(self, rig: Rig) -> None:
        rig.flow.can_list_refs = False
        rig.agent.step()
        assert len(rig.flow.credential_refs) == 1
        assert rig.agent.status.capacity_live


class TestReuse:
    def test_a_restarted_agent_reuses_its_enrollment_and_reference(self, rig: Rig) -> None:
        rig.agent.step()
        calls_before = len(rig.flow.calls)

        again = rig.new_agent()
        again.step()

        later = rig.flow.calls[calls_before:]
        paths = [c.path for c in later]
        assert "/inference/credential-refs" not in paths
        assert "/inference/providers/prov_1/pairing-token" not in paths
        assert len(rig.flow.providers) == 1 and len(rig.flow.credential_refs) == 1
        assert later[0].body["credential_ref_id"] == "credref_1"
        assert again.status.provider_id == "prov_1" and again.status.capacity_live

    def test_without_a_state_file_an_existing_reference_is_found(self, tmp_path: Path) -> None:
        rig = Rig(tmp_path, state_file=None)
        rig.agent.step()
        rig.new_agent().step()
        assert len(rig.flow.credential_refs) == 1
        assert len(rig.flow.providers) == 1

    def test_a_configured_reference_id_is_used_as_is(self, tmp_path: Path) -> None:
        rig = Rig(tmp_path, credential_ref_id="credref_9")
        rig.flow.credential_refs["credref_9"] = {
            "credential_ref_id": "credref_9",
            "credential_ref": "secret://elsewhere",
            "status": "active",
        }
        rig.agent.step()
        assert rig.flow.bodies("/enroll")[0]["credential_ref_id"] == "credref_9"
        assert "/inference/credential-refs" not in rig.flow.paths()


class TestRhythm:
    def test_heartbeats_on_the_interval_and_renews_capacity_before_it_expires(
        self, rig: Rig
    ) -> None:
        rig.agent.step()
        assert len(rig.flow.bodies("/heartbeat")) == 1

        rig.clock.advance(10)
        rig.agent.step()
        assert len(rig.flow.bodies("/heartbeat")) == 1

        rig.clock.advance(25)
        rig.agent.step()
        assert len(rig.flow.bodies("/heartbeat")) == 2
        assert len(rig.flow.bodies("/capacity")) == 1

        rig.clock.advance(300 - 35)  # half the capacity window
        rig.agent.step()
        capacities = rig.flow.bodies("/capacity")
        assert len(capacities) == 2
        assert capacities[1]["inventory"][0]["expires_at"] == "2026-06-17T12:15:00.000000Z"
        assert capacities[1]["capacity_version"] > capacities[0]["capacity_version"]
        assert len(rig.flow.bodies("/catalog")) == 1

    def test_a_long_capacity_window_is_still_renewed_every_few_minutes(
        self, tmp_path: Path
    ) -> None:
        rig = Rig(tmp_path, capacity_ttl_seconds=7200, heartbeat_interval_seconds=600)
        rig.agent.step()
        rig.clock.advance(299)
        rig.agent.step()
        assert len(rig.flow.bodies("/capacity")) == 1
        rig.clock.advance(1)
        rig.agent.step()
        assert len(rig.flow.bodies("/capacity")) == 2

    def test_the_delay_points_at_the_next_thing_due(self, rig: Rig) -> None:
        assert rig.agent.step() == pytest.approx(30)
        rig.clock.advance(29)
        assert rig.agent.step() == pytest.approx(1)

    def test_a_new_model_republishes_the_catalog(self, rig: Rig) -> None:
        rig.agent.step()
        rig.models.models.append({"id": "tiny-chat-2"})
        rig.clock.advance(1)
        rig.agent.step()
        assert [m["model"] for m in rig.provider.catalog] == ["tiny-chat", "tiny-chat-2"]
        assert len(rig.provider.capacity) == 2


class TestBackoff:
    def test_delays_double_with_jitter_up_to_the_cap(self) -> None:
        backoff = Backoff(1, 60, random.Random(3))
        delays = [backoff.next_delay() for _ in range(10)]
        ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
        for delay, ceiling in zip(delays, ceilings, strict=True):
            assert ceiling / 2 <= delay <= ceiling
        assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
        backoff.reset()
        assert backoff.next_delay() <= 1

    def test_flow_memory_down_backs_off_then_recovers(self, rig: Rig) -> None:
        rig.agent.step()
        rig.flow.down = True
        delays = []
        for _ in range(8):
            rig.clock.advance(31)
            delays.append(rig.agent.step())
        assert delays[0] <= 1 and delays[-1] > 16 and max(delays) <= 60
        assert rig.agent.status.last_error is not None

        rig.flow.down = False
        before = len(rig.flow.calls)
        rig.clock.advance(1)
        rig.agent.step()
        recovered = [c.path.rsplit("/", 1)[-1] for c in rig.flow.calls[before:]]
        # Heartbeat and capacity at once; the enrollment is kept.
        assert recovered == ["heartbeat", "capacity"]
        assert rig.agent.status.last_error is None
        rig.clock.advance(31)
        rig.flow.down = True
        assert rig.agent.step() <= 1  # the ladder starts again after a success

    def test_server_errors_count_as_unavailable(self, rig: Rig) -> None:
        rig.flow.fail_with = 503
        delay = rig.agent.step()
        assert 0.5 <= delay <= 1
        assert rig.agent.status.provider_id is None
        rig.flow.fail_with = None
        rig.agent.step()
        assert rig.agent.status.capacity_live

    def test_a_wrong_key_is_reported_without_the_key(
        self, rig: Rig, caplog: pytest.LogCaptureFixture
    ) -> None:
        rig.flow.api_key = "fm_another_key"
        with caplog.at_level(logging.DEBUG):
            rig.agent.step()
            rig.agent.step()
        assert "401 unauthenticated" in caplog.text
        assert API_KEY not in caplog.text
        assert rig.agent._flow_backoff.attempts == 2


class TestModelServerOutage:
    def test_down_reports_degraded_and_withdraws_then_republishes(self, rig: Rig) -> None:
        rig.agent.step()
        rig.models.down = True
        rig.clock.advance(1)
        delay = rig.agent.step()

        assert rig.provider.last_status == "degraded"
        assert rig.provider.capacity == []
        assert rig.agent.status.phase == "degraded"
        assert not rig.agent.status.capacity_live
        assert delay <= 1  # probes the model server again soon

        rig.clock.advance(delay)
        rig.agent.step()  # still down: nothing more to withdraw
        assert len(rig.flow.bodies("/capacity")) == 2

        rig.models.down = False
        rig.clock.advance(2)
        rig.agent.step()
        assert rig.provider.last_status == "ready"
        assert rig.provider.capacity[0]["available_units"] == 30_000
        assert rig.agent.status.phase == "serving"

    def test_a_server_that_starts_down_is_withdrawn_and_still_heartbeats(self, rig: Rig) -> None:
        rig.models.down = True
        rig.agent.step()
        assert rig.provider.paired
        assert rig.provider.last_status == "degraded"
        assert rig.provider.catalog == []  # nothing known yet, nothing published

    def test_an_error_answer_counts_as_down(self, rig: Rig) -> None:
        rig.agent.step()
        rig.models.status = 500
        rig.clock.advance(1)
        rig.agent.step()
        assert rig.provider.capacity == []


class TestLostEnrollment:
    def test_an_emptied_flow_memory_gets_a_fresh_enrollment(self, rig: Rig) -> None:
        rig.agent.step()
        rig.flow.forget_everything()
        rig.clock.advance(31)
        rig.agent.step()  # heartbeat: 404; the agent forgets the provider
        assert rig.agent.status.provider_id is None
        rig.agent.step()  # the reference id is unknown too
        rig.agent.step()
        rig.agent.step()
        assert rig.agent.status.provider_id == "prov_1"
        assert rig.provider.paired and rig.provider.capacity

    def test_an_unpaired_provider_is_paired_again(self, rig: Rig) -> None:
        rig.agent.step()
        rig.provider.paired = False
        rig.clock.advance(31)
        rig.agent.step()
        assert rig.provider.paired
        assert len(rig.flow.bodies("/heartbeat")) == 3


class TestShutdown:
    def test_shutdown_says_draining_and_withdraws_capacity(self, rig: Rig) -> None:
        rig.agent.step()
        rig.agent.shutdown()
        assert rig.provider.last_status == "draining"
        assert rig.provider.capacity == []

    def test_shutdown_can_leave_capacity(self, tmp_path: Path) -> None:
        rig = Rig(tmp_path, withdraw_on_stop=False)
        rig.agent.step()
        rig.agent.shutdown()
        assert rig.provider.capacity

    def test_shutdown_while_flow_memory_is_down_does_not_raise(self, rig: Rig) -> None:
        rig.agent.step()
        rig.flow.down = True
        rig.agent.shutdown()
        assert rig.agent.status.phase == "stopping"
