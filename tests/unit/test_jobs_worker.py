"""The provider agent's job board decisions: the price of a job, which jobs it skips and why,
how many it takes on at once, how fast it believes it is, the ``[jobs]`` configuration, and
the stream's events as it reads them. Pure: no network, no clock, no sleeping."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow_memory.agent import jobs_runner
from flow_memory.agent.clients import DiscoveredModel, ModelServerClient
from flow_memory.agent.config import (
    API_KEY_ENV,
    AgentConfig,
    ConfigError,
    JobsConfig,
    Offer,
    UnitTerms,
    load_config,
)
from flow_memory.agent.jobs_client import (
    JobBoardClient,
    StreamEvent,
    decode_event,
    error_code,
    messages_of,
    open_job_from_event,
    open_job_from_read,
    parse_events,
)
from flow_memory.agent.jobs_pricing import (
    AT_CAPACITY,
    CONTEXT_TOO_SMALL,
    DEADLINE_INFEASIBLE,
    MAX_PRICE_TOO_LOW,
    MODEL_NOT_SERVED,
    QUALITY_NOT_OFFERED,
    UNPRICED,
    BidPlan,
    Load,
    OpenJob,
    ServedModel,
    Skip,
    SpeedMeter,
    job_price,
    pick_model,
    plan_bid,
    seconds_needed,
    served_models,
)
from flow_memory.agent.jobs_worker import JobsWorker
from flow_memory.agent.runtime import Backoff

CHAT = "local-chat"
CODER = "local-coder"
SERVED = {
    CHAT: ServedModel(CHAT, Decimal("0.0000005"), context_window=2048),
    CODER: ServedModel(CODER, Decimal("0.000001"), context_window=8192),
}
TERMS = JobsConfig(enabled=True, max_concurrent=2, classes={"chat": CHAT, "codegen": CODER})


def job(**overrides: Any) -> OpenJob:
    fields: dict[str, Any] = {
        "job_id": "job_1",
        "model_hint": CHAT,
        "input_tokens": 24,
        "max_tokens": 100,
        "quality": "standard",
        "deadline_seconds": 60,
        "max_price": Decimal("0.01"),
    }
    fields.update(overrides)
    return OpenJob(**fields)


def plan(
    open_job: OpenJob,
    *,
    terms: JobsConfig = TERMS,
    load: Load = Load(),
    speed: float = 20.0,
) -> BidPlan | Skip:
    return plan_bid(open_job, terms=terms, served=SERVED, load=load, tokens_per_second=speed)


def skipped(decision: BidPlan | Skip) -> str:
    assert isinstance(decision, Skip), decision
    return decision.reason


class TestPrice:
    def test_the_price_is_the_token_price_times_prompt_and_output(self) -> None:
        decision = plan(job(input_tokens=24, max_tokens=100))
        assert isinstance(decision, BidPlan)
        assert decision.model == CHAT
        assert decision.price == Decimal("0.0000005") * 124 == Decimal("0.000062")

    def test_the_price_is_exact_for_any_size(self) -> None:
        assert job_price(3, Decimal("0.0000001"), Decimal(0)) == Decimal("0.0000003")
        assert job_price(10**6, Decimal("0.00000075"), Decimal(0)) == Decimal("0.75")

    def test_never_under_the_minimum(self) -> None:
        terms = replace(TERMS, min_price=Decimal("0.001"))
        decision = plan(job(), terms=terms)
        assert isinstance(decision, BidPlan) and decision.price == Decimal("0.001")

    def test_a_configured_token_price_overrides_the_ask(self) -> None:
        terms = replace(TERMS, token_price=Decimal("0.00001"))
        decision = plan(job(input_tokens=0, max_tokens=50), terms=terms)
        assert isinstance(decision, BidPlan) and decision.price == Decimal("0.0005")

    def test_never_over_the_jobs_maximum(self) -> None:
        exactly = plan(job(max_price=Decimal("0.000062")))
        assert isinstance(exactly, BidPlan) and exactly.price == Decimal("0.000062")
        assert skipped(plan(job(max_price=Decimal("0.000061")))) == MAX_PRICE_TOO_LOW

    def test_a_minimum_over_the_jobs_maximum_skips_it(self) -> None:
        terms = replace(TERMS, min_price=Decimal("0.02"))
        decision = plan(job(max_price=Decimal("0.01")), terms=terms)
        assert skipped(decision) == MAX_PRICE_TOO_LOW
        assert isinstance(decision, Skip) and "0.02" in decision.detail

    def test_a_model_without_a_token_price_is_not_bid(self) -> None:
        served = {CHAT: ServedModel(CHAT, None)}
        decision = plan_bid(job(), terms=TERMS, served=served, load=Load(), tokens_per_second=20)
        assert skipped(decision) == UNPRICED


class TestWhichJobs:
    def test_a_named_model_is_bid_only_when_served(self) -> None:
        assert pick_model(CODER, SERVED, {}) == CODER
        assert skipped(plan(job(model_hint="someone-elses-model"))) == MODEL_NOT_SERVED

    @pytest.mark.parametrize(
        ("hint", "model"), [("chat", CHAT), ("codegen", CODER), ("analysis", None), ("any", None)]
    )
    def test_a_class_is_bid_with_the_model_the_config_maps_it_to(
        self, hint: str, model: str | None
    ) -> None:
        assert pick_model(hint, SERVED, TERMS.classes) == model
        decision = plan(job(model_hint=hint))
        if model is None:
            assert skipped(decision) == MODEL_NOT_SERVED
        else:
            assert isinstance(decision, BidPlan) and decision.model == model

    def test_a_class_mapped_to_a_model_the_server_lost_is_skipped(self) -> None:
        terms = replace(TERMS, classes={"any": "gone-model"})
        assert skipped(plan(job(model_hint="any"), terms=terms)) == MODEL_NOT_SERVED

    def test_only_the_configured_qualities(self) -> None:
        terms = replace(TERMS, qualities=("standard",))
        assert isinstance(plan(job(quality="standard"), terms=terms), BidPlan)
        assert skipped(plan(job(quality="expert"), terms=terms)) == QUALITY_NOT_OFFERED

    def test_a_job_larger_than_the_context_window_is_skipped(self) -> None:
        fits = job(input_tokens=48, max_tokens=2000, deadline_seconds=600)
        assert isinstance(plan(fits), BidPlan)
        assert skipped(plan(replace(fits, input_tokens=49))) == CONTEXT_TOO_SMALL


class TestDeadline:
    def test_the_estimate_is_tokens_over_speed_with_the_safety_factor(self) -> None:
        assert seconds_needed(100, 20.0, 1.5) == 8  # 7.5, rounded up
        assert seconds_needed(1, 1000.0, 1.0) == 1  # never zero
        decision = plan(job(max_tokens=100))
        assert isinstance(decision, BidPlan) and decision.estimated_time_s == 8

    def test_a_deadline_too_close_at_this_speed_is_skipped(self) -> None:
        assert isinstance(plan(job(max_tokens=100, deadline_seconds=8)), BidPlan)
        assert skipped(plan(job(max_tokens=100, deadline_seconds=7))) == DEADLINE_INFEASIBLE
        # Faster, the same job fits.
        assert isinstance(plan(job(max_tokens=100, deadline_seconds=7), speed=40.0), BidPlan)

    def test_work_already_taken_on_comes_first(self) -> None:
        busy = Load(jobs=1, tokens=300)
        assert skipped(plan(job(max_tokens=100, deadline_seconds=20), load=busy)) == (
            DEADLINE_INFEASIBLE
        )
        decision = plan(job(max_tokens=100, deadline_seconds=30), load=busy)
        assert isinstance(decision, BidPlan) and decision.estimated_time_s == 30


class TestConcurrency:
    def test_at_most_max_concurrent_jobs(self) -> None:
        assert isinstance(plan(job(), load=Load(jobs=1, tokens=10)), BidPlan)
        assert skipped(plan(job(), load=Load(jobs=2, tokens=10))) == AT_CAPACITY

    def test_the_worker_holds_a_slot_per_live_bid_and_frees_it_when_the_bid_loses(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        board = FakeBoard()
        worker = make_worker(board, max_concurrent=2)
        for index in range(3):
            worker.consider(job(job_id=f"job_{index}"))
        assert board.bids == ["job_0", "job_1"]
        assert worker.status.skipped == {AT_CAPACITY: 1}

        # Another bidder wins job_0: its slot is free again for the next job.
        with caplog.at_level(logging.INFO, logger="flow_memory.agent.jobs"):
            worker.handle(event("job.awarded", "job_0", {"bid_id": "bid_someone_else"}))
        assert worker.status.lost == 1
        assert "job job_0 not won: another bid won (outbid)" in caplog.messages
        worker.consider(job(job_id="job_3"))
        assert board.bids == ["job_0", "job_1", "job_3"]

    def test_a_job_that_ends_unawarded_frees_its_slot(self) -> None:
        board = FakeBoard()
        worker = make_worker(board, max_concurrent=1)
        worker.consider(job(job_id="job_a"))
        worker.handle(event("job.expired_unawarded", "job_a", {"bids": 1}))
        worker.consider(job(job_id="job_b"))
        assert board.bids == ["job_a", "job_b"]

    def test_each_job_is_considered_once_even_when_its_event_comes_again(self) -> None:
        board = FakeBoard()
        worker = make_worker(board, max_concurrent=3)
        posted = event("job.posted", "job_x", posted_payload())
        worker.handle(posted)
        worker.handle(posted)  # a replay after a reconnect
        assert board.bids == ["job_x"]
        assert board.bodies[0]["price"] == Decimal("0.000062")
        assert board.bodies[0]["model"] == CHAT and board.bodies[0]["provider_id"] == "prov_1"

    def test_a_refused_bid_frees_its_slot(self) -> None:
        board = FakeBoard(refuse=True)
        worker = make_worker(board, max_concurrent=1)
        worker.consider(job(job_id="job_a"))
        worker.consider(job(job_id="job_b"))
        assert board.bids == ["job_a", "job_b"] and worker.status.bids == 0


class TestWinning:
    def test_a_bid_that_wins_at_once_is_run_and_its_result_uploaded(self) -> None:
        board = FakeBoard(wins=True)
        worker = make_worker(board, max_concurrent=1)
        worker.consider(job(job_id="job_w"))
        assert worker.wait_until(lambda s: s.completed + s.failed == 1, timeout=30)
        assert worker.status.won == worker.status.completed == 1
        assert worker.status.results == ["sha256:" + "ab" * 32]
        (upload,) = board.results
        assert upload["output"] == "Hello." and upload["model"] == CHAT
        assert upload["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        assert set(upload["timings"]) == {"queue_s", "total_s"}
        # Its slot is free again once the result is in.
        worker.consider(job(job_id="job_next"))
        assert board.bids == ["job_w", "job_next"]


class TestSpeed:
    def test_the_first_measurement_replaces_the_estimate_then_each_moves_it(self) -> None:
        meter = SpeedMeter(20.0, weight=0.5)
        assert meter.tokens_per_second == 20.0
        meter.record(100, 10.0)
        assert meter.tokens_per_second == 10.0
        meter.record(100, 5.0)
        assert meter.tokens_per_second == 15.0

    def test_runs_too_short_to_tell_are_not_counted(self) -> None:
        meter = SpeedMeter(20.0, min_tokens=8)
        meter.record(3, 0.1)
        meter.record(50, 0.0)
        assert meter.tokens_per_second == 20.0 and meter.measured == 0


class TestServedModels:
    def test_chat_models_the_server_lists_priced_by_their_token_ask(self) -> None:
        config = AgentConfig(
            offer=Offer(units={"token": UnitTerms(ask_unit_price=Decimal("0.0000005"))}),
            models={
                "embed": Offer(compatible_api="embeddings"),
                "off": Offer(enabled=False),
                "big": Offer(
                    context_window=32768, units={"request": UnitTerms(ask_unit_price=Decimal(1))}
                ),
            },
        )
        found = [DiscoveredModel(m, 2048) for m in (CHAT, "embed", "off", "big")]
        served = served_models(config, found)
        assert served == {
            CHAT: ServedModel(CHAT, Decimal("0.0000005"), 2048),
            "big": ServedModel("big", None, 32768),
        }
        narrowed = replace(config, jobs=JobsConfig(models=("big",)))
        assert list(served_models(narrowed, found)) == ["big"]


OFFER = '[offer.units.token]\nask_unit_price = "0.0000005"\n'


class TestConfig:
    def test_the_jobs_table(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.toml"
        path.write_text(
            OFFER
            + """
[jobs]
enabled = true
max_concurrent = 3
min_price = 0.1
token_price = "0.0000006"
tokens_per_second = 35
deadline_safety = 2
qualities = ["standard", "high"]
models = ["local-chat"]

[jobs.classes]
chat = "local-chat"
any = "local-chat"
"""
        )
        jobs = load_config(path, environ={API_KEY_ENV: "fm_x"}).check().jobs
        assert jobs.enabled and jobs.max_concurrent == 3
        assert jobs.min_price == Decimal("0.1") and jobs.token_price == Decimal("0.0000006")
        assert jobs.tokens_per_second == 35.0 and jobs.deadline_safety == 2.0
        assert jobs.qualities == ("standard", "high") and jobs.models == ("local-chat",)
        assert jobs.classes == {"chat": "local-chat", "any": "local-chat"}

    def test_flags_override_the_table(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.toml"
        path.write_text("[jobs]\nmax_concurrent = 3\n")
        config = load_config(
            path,
            overrides={"jobs": {"enabled": True, "min_price": "0.5"}},
            environ={API_KEY_ENV: "fm_x"},
        )
        assert config.jobs.enabled and config.jobs.max_concurrent == 3
        assert config.jobs.min_price == Decimal("0.5")

    def test_off_unless_asked(self) -> None:
        assert not load_config(None, environ={API_KEY_ENV: "fm_x"}).jobs.enabled

    @pytest.mark.parametrize(
        ("table", "message"),
        [
            ("max_concurrent = 0", "jobs.max_concurrent"),
            ("min_price = -1", "jobs.min_price"),
            ("token_price = 0", "jobs.token_price"),
            ("tokens_per_second = 0", "jobs.tokens_per_second"),
            ("deadline_safety = 0.5", "jobs.deadline_safety"),
            ('qualities = ["premium"]', "jobs.qualities"),
            ("classes = { poetry = 'x' }", "jobs.classes"),
            ("max_price = 1", "unknown setting max_price"),
        ],
    )
    def test_refuses_what_cannot_work(self, tmp_path: Path, table: str, message: str) -> None:
        path = tmp_path / "agent.toml"
        path.write_text(f"{OFFER}[jobs]\n{table}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path, environ={API_KEY_ENV: "fm_x"}).check()


class TestStreamReading:
    def test_a_job_event_and_an_error_event_are_read(self) -> None:
        posted = event("job.posted", "job_1", {"model_hint": CHAT})
        assert decode_event(posted) == ("job.posted", "job_1", {"model_hint": CHAT})
        with pytest.raises(ValueError):
            decode_event(StreamEvent("2", "job.posted", '{"payload": {}}'))
        assert error_code('{"ok": false, "error": {"code": "database_unavailable"}}') == (
            "database_unavailable"
        )
        assert error_code("not json") == "unreadable"

    def test_events_with_ids_names_and_data_comments_skipped(self) -> None:
        lines = [
            "retry: 2000",
            "",
            ": keep-alive",
            "",
            "id: 7",
            "event: job.posted",
            'data: {"job_id":"job_1",',
            'data: "payload":{}}',
            "",
            "data: no id here",
            "",
        ]
        assert list(parse_events(lines)) == [
            StreamEvent("7", "job.posted", '{"job_id":"job_1",\n"payload":{}}'),
            StreamEvent(None, None, "no id here"),
        ]

    def test_a_posted_event_and_a_listed_job_read_alike(self) -> None:
        from_event = open_job_from_event("job_1", posted_payload())
        listed = {
            "job_id": "job_1",
            "deadline_seconds": 60,
            "economics": {"max_price": 0.01},
            "request": {
                "model_hint": CHAT,
                "max_tokens": 100,
                "quality_threshold": "standard",
                "size": {"estimated_input_tokens": 24},
            },
        }
        assert from_event == open_job_from_read(listed) == job()

    def test_a_prompt_is_run_as_one_user_message(self) -> None:
        assert messages_of({"prompt": "hi", "messages": None}) == [
            {"role": "user", "content": "hi"}
        ]
        said = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        assert messages_of({"prompt": None, "messages": said}) == said


# -- doubles ----------------------------------------------------------------------------------


def posted_payload() -> dict[str, Any]:
    return {
        "model_hint": CHAT,
        "max_tokens": 100,
        "quality_threshold": "standard",
        "size": {"estimated_input_tokens": 24, "estimated_tokens": 124},
        "max_price": Decimal("0.01"),
        "deadline_seconds": 60,
    }


def event(kind: str, job_id: str, payload: dict[str, Any]) -> StreamEvent:
    data = {"event_id": 1, "kind": kind, "job_id": job_id, "payload": payload}
    return StreamEvent("1", kind, json.dumps(data, default=str))


class FakeBoard:
    """The job board's bid route in memory: every bid stays live (auction mode)."""

    def __init__(self, *, refuse: bool = False, wins: bool = False) -> None:
        self.refuse = refuse
        self.wins = wins
        self.bids: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        job_id = request.url.path.split("/")[3]
        if request.url.path.endswith("/assignment"):
            asked = {"prompt": "Say hello.", "messages": None, "max_tokens": 100}
            return httpx.Response(200, json={"ok": True, "assignment": {"request": asked}})
        if request.url.path.endswith("/result"):
            self.results.append(json.loads(request.content))
            result = {"result_hash": "sha256:" + "ab" * 32}
            return httpx.Response(201, json={"ok": True, "result": result, "replayed": False})
        if request.method == "GET":  # after the award, every bid shows why it lost
            bids = [{"bid_id": f"bid_{job_id}", "status": "lost", "reason": "outbid"}]
            return httpx.Response(200, json={"ok": True, "job": {"job_id": job_id, "bids": bids}})
        self.bids.append(job_id)
        self.bodies.append(json.loads(request.content, parse_float=Decimal))
        if self.refuse:
            error = {"code": "bid_window_closed", "message": "the job's bid window has closed"}
            return httpx.Response(409, json={"ok": False, "error": error})
        status = "won" if self.wins else "live"
        bid = {"bid_id": f"bid_{job_id}", "job_id": job_id, "status": status}
        return httpx.Response(201, json={"ok": True, "bid": bid})


def model_server(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/chat/completions"):
        asked = json.loads(request.content)
        assert asked["messages"] == [{"role": "user", "content": "Say hello."}]
        return httpx.Response(
            200,
            json={
                "model": CHAT,
                "choices": [{"message": {"content": "Hello."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2},
            },
        )
    return httpx.Response(200, json={"data": [{"id": CHAT, "context_window": 2048}]})


def make_worker(board: FakeBoard, *, max_concurrent: int) -> JobsWorker:
    config = AgentConfig(
        api_key="fm_x",
        offer=Offer(units={"token": UnitTerms(ask_unit_price=Decimal("0.0000005"))}),
        jobs=JobsConfig(enabled=True, max_concurrent=max_concurrent),
    )
    return JobsWorker(
        config,
        board=JobBoardClient(
            "http://flow-memory.test", "fm_x", transport=httpx.MockTransport(board.handle)
        ),
        model_server=ModelServerClient(
            "http://model-server.test/v1", transport=httpx.MockTransport(model_server)
        ),
        provider_id=lambda: "prov_1",
    )


class TestOpenJobs:
    def test_every_open_job_is_read_page_by_page(self) -> None:
        pages = {
            None: (["job_1", "job_2"], "c1"),
            "c1": (["job_3", "job_4"], "c2"),
            "c2": (["job_5"], None),
        }
        asked: list[dict[str, str]] = []

        def listing(request: httpx.Request) -> httpx.Response:
            params = dict(request.url.params)
            asked.append(params)
            ids, cursor = pages[params.get("cursor")]
            jobs = [{"job_id": job_id} for job_id in ids]
            body = {"ok": True, "jobs": jobs, "count": len(jobs), "next_cursor": cursor}
            return httpx.Response(200, json=body)

        board = JobBoardClient(
            "http://flow-memory.test", "fm_x", transport=httpx.MockTransport(listing)
        )
        found = board.open_jobs(page=2)
        assert [j["job_id"] for j in found] == ["job_1", "job_2", "job_3", "job_4", "job_5"]
        assert [a.get("cursor") for a in asked] == [None, "c1", "c2"]
        assert {a["status"] for a in asked} == {"open"} and {a["limit"] for a in asked} == {"2"}


class FailingModelServer:
    """A model server test double that fails its first ``failures`` answers with HTTP 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.asked = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        if self.asked <= self.failures:
            return httpx.Response(503, json={"error": "busy"})
        return model_server(request)


class TestModelServerFailure:
    @pytest.fixture(autouse=True)
    def no_pause(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(jobs_runner, "MODEL_RETRY_SECONDS", 0.0)

    def run(self, server: FailingModelServer, board: FakeBoard) -> Any:
        return jobs_runner.run_job(
            jobs_runner.JobRun(job_id="job_r", model=CHAT, deadline_seconds=300),
            board=JobBoardClient(
                "http://flow-memory.test", "fm_x", transport=httpx.MockTransport(board.handle)
            ),
            model_server=ModelServerClient(
                "http://model-server.test/v1", transport=httpx.MockTransport(server.handle)
            ),
            backoff=Backoff(0.01, 0.01),
            stop=threading.Event(),
        )

    def test_one_failure_is_tried_again_and_the_result_uploaded(self) -> None:
        server, board = FailingModelServer(failures=1), FakeBoard(wins=True)
        answered = self.run(server, board)
        assert server.asked == 2
        assert answered.result_hash == "sha256:" + "ab" * 32
        (upload,) = board.results
        assert upload["output"] == "Hello."

    def test_a_second_failure_gives_the_job_up(self) -> None:
        server, board = FailingModelServer(failures=2), FakeBoard(wins=True)
        with pytest.raises(jobs_runner.JobFailed, match="HTTP 503"):
            self.run(server, board)
        assert server.asked == 2
        assert board.results == []
