"""The provider agent bidding on the job board (``JobsWorker``) against the real app, served on a
loopback socket in this process, with the scripted upstream as its model server: it bids on
what it serves at its price, wins, answers and is paid; it skips what it cannot serve or price;
it loses to a better bid; and after its stream drops it resumes with ``Last-Event-ID`` and gets
the job posted meanwhile. Every wait is on an event, never a sleep."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn

from flow_memory.agent.clients import FlowMemoryClient, ModelServerClient
from flow_memory.agent.config import AgentConfig, JobsConfig, Offer, UnitTerms
from flow_memory.agent.jobs_client import JobBoardClient, StreamEvent
from flow_memory.agent.jobs_pricing import MAX_PRICE_TOO_LOW, MODEL_NOT_SERVED
from flow_memory.agent.jobs_worker import JobsStatus, JobsWorker
from flow_memory.agent.runtime import ProviderAgent
from flow_memory.app import create_app
from flow_memory.settings import Settings
from tests.conftest import clear_tables
from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.factories import Headers, key_headers

MODEL = "double-chat"
TOKEN_PRICE = Decimal("0.00000075")
WAIT_SECONDS = 60.0  # a guard against a hang, not a performance claim
MESSAGES = [{"role": "user", "content": "Say hello to the job board."}]  # 27 characters


@dataclass
class Board:
    """The app on a socket, a buyer's and a seller's keys, and the agent's model server."""

    base_url: str
    buyer: Headers
    seller: Headers
    rival: Headers  # another seller, bidding by hand
    upstream: ScriptedUpstream

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


class GatedBoard(JobBoardClient):
    """The job board client, able to hold back a reconnection until the test lets it go."""

    def __init__(self, base_url: str, api_key: str) -> None:
        super().__init__(base_url, api_key)
        self.resumed_from: list[str | None] = []
        self.gate = threading.Event()
        self.gate.set()
        self.reconnecting = threading.Event()

    @contextmanager
    def stream(
        self, *, last_event_id: str | None, idle_seconds: float, kinds: Collection[str] = ()
    ) -> Iterator[Iterator[StreamEvent]]:
        self.resumed_from.append(last_event_id)
        if len(self.resumed_from) > 1:
            self.reconnecting.set()
            assert self.gate.wait(WAIT_SECONDS)
        with super().stream(
            last_event_id=last_event_id, idle_seconds=idle_seconds, kinds=kinds
        ) as events:
            yield events


@pytest.fixture
def board(settings: Settings) -> Iterator[Board]:
    # Results are accepted as they arrive (a review window of 0): these tests are the agent's.
    settings = replace(settings, validation_review_seconds=0)
    clear_tables(settings.database_url)
    app = create_app(settings)  # the wall clock: the job timer closes windows as a server does
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # requests wait in the backlog until the server takes them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        with ScriptedUpstream(models=[MODEL]) as upstream:
            yield Board(
                base_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
                buyer=key_headers(app, "agent-research-1", "inference:buy", "inference:read"),
                seller=key_headers(app, "provider-team-alpha", "inference:sell", "inference:read"),
                rival=key_headers(app, "provider-team-beta", "inference:sell", "inference:read"),
                upstream=upstream,
            )
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_SECONDS)
        listener.close()
        app.state.engine.dispose()
        app.state.read_engine.dispose()


@dataclass
class Running:
    worker: JobsWorker
    gated: GatedBoard
    provider_id: str

    def wait(self, what: str, check: Any) -> JobsStatus:
        assert self.worker.wait_until(check, WAIT_SECONDS), f"{what}: {self.worker.status}"
        return self.worker.status


@contextmanager
def bidding_agent(board: Board, **jobs: Any) -> Iterator[Running]:
    """The provider agent enrolled, paired and published in front of the scripted upstream,
    and its job board worker following the stream on a thread."""
    secret = board.seller["authorization"].removeprefix("Bearer ")
    config = AgentConfig(
        flow_memory_url=board.base_url,
        model_server_url=board.upstream.base_url,
        api_key=secret,
        provider_name="scripted-gpu",
        credential_ref="secret://inference/scripted-gpu",
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.2,
        offer=Offer(units={"token": UnitTerms(ask_unit_price=TOKEN_PRICE)}),
        # Bids need a stake (the server's default): the agent places it when it starts.
        jobs=JobsConfig(enabled=True, classes={"chat": MODEL}, **{"stake": Decimal(1), **jobs}),
    ).check()
    flow = FlowMemoryClient(board.base_url, secret)
    agent = ProviderAgent(
        config, flow=flow, model_server=ModelServerClient(board.upstream.base_url)
    )
    agent.step()
    provider_id = agent.status.provider_id
    assert provider_id is not None and agent.status.paired, agent.status
    gated = GatedBoard(board.base_url, secret)
    worker = JobsWorker(
        config,
        board=gated,
        model_server=ModelServerClient(board.upstream.base_url),
        provider_id=lambda: provider_id,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        running = Running(worker, gated, provider_id)
        running.wait("the stream connected", lambda s: s.connected)
        yield running
    finally:
        stop.set()
        gated.gate.set()
        while thread.is_alive():
            worker.interrupt()
            thread.join(timeout=0.5)
        gated.close()
        worker.model_server.close()
        flow.close()
        agent.model_server.close()


def post_job(board: Board, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request": {"model_hint": "chat", "messages": MESSAGES, "max_tokens": 16},
        "economics": {"max_price": "0.01", "payment_mode": "fixed"},
        "bid_window_seconds": 600,
        "deadline_seconds": 60,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    with board.http() as http:
        response = http.post("/inference/jobs", json=body, headers=board.buyer)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


def get(board: Board, path: str, headers: Headers) -> dict[str, Any]:
    with board.http() as http:
        response = http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def balance(board: Board, holder_id: str, headers: Headers) -> Decimal:
    accounts = get(board, f"/inference/ledger/accounts?holder_id={holder_id}", headers)
    (account,) = accounts["accounts"]
    return Decimal(str(account["balance"]))


class TestBidWinAnswer:
    def test_a_fixed_job_is_bid_won_answered_archived_and_paid(
        self, board: Board, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="flow_memory")
        with bidding_agent(board) as running:
            job = post_job(board)
            status = running.wait("the job answered", lambda s: s.completed == 1)
            assert status.bids == status.won == 1 and status.failed == 0

        # The price is the token price times the job's size: its prompt's estimate and output.
        size = job["request"]["size"]
        assert size["estimated_tokens"] == 7 + 16
        price = TOKEN_PRICE * size["estimated_tokens"]

        done = get(board, f"/inference/jobs/{job['job_id']}", board.buyer)["job"]
        assert done["status"] == "completed"
        assert done["award"]["provider_id"] == running.provider_id
        assert done["award"]["model"] == MODEL
        assert Decimal(str(done["award"]["price"])) == price
        assert Decimal(str(done["economics"]["paid"])) == price
        assert done["result_hash"] == status.results[0]

        # The model server was asked the job's own messages, at its size.
        (asked,) = [r.body for r in board.upstream.requests if r.path == "/v1/chat/completions"]
        assert asked["messages"] == MESSAGES and asked["max_tokens"] == 16

        # What it did is logged; the prompt and the answer are not.
        said = [r.getMessage() for r in caplog.records if r.name == "flow_memory.agent.jobs"]
        assert any(line.startswith(f"answered job {job['job_id']}") for line in said), said
        assert MESSAGES[0]["content"] not in caplog.text
        assert board.upstream.reply not in caplog.text

        # The ledger: the winner's owner was paid the price, out of the requester's escrow.
        assert balance(board, "provider-team-alpha", board.seller) == price
        assert balance(board, "agent-research-1", board.buyer) == -price

        # The agent staked to bid when it started, once: the stake stays until withdrawn.
        stakes = get(board, "/inference/stakes", board.seller)["stakes"]
        assert [(s["purpose"], s["amount"], s["status"]) for s in stakes] == [("bid", 1, "active")]
        assert any(line.startswith("staked 1 credits to bid") for line in said), said

        # The archive holds the answer under its hash.
        archived = get(board, f"/inference/results/{done['result_hash']}", board.buyer)["result"]
        assert archived["job_id"] == job["job_id"]
        assert archived["output"] == board.upstream.reply
        assert archived["model"] == MODEL
        assert archived["usage"]["completion_tokens"] == len(board.upstream.reply.split())

    def test_jobs_it_cannot_serve_or_price_are_skipped(self, board: Board) -> None:
        with bidding_agent(board) as running:
            post_job(board, request={"model_hint": "someone-elses-model"})
            post_job(board, economics={"max_price": "0.00000001"})
            status = running.wait("two skips", lambda s: sum(s.skipped.values()) == 2)
            assert status.skipped == {MODEL_NOT_SERVED: 1, MAX_PRICE_TOO_LOW: 1}
            assert status.bids == 0

    def test_an_auction_it_loses_frees_its_slot_for_the_next_job(self, board: Board) -> None:
        with bidding_agent(board, max_concurrent=1) as running:
            first = post_job(board, economics={"payment_mode": "auction"})
            running.wait("a bid", lambda s: s.bids == 1)
            # A rival bids lower; the requester awards the best score early.
            rival = rival_provider(board)
            with board.http() as http:
                bid = http.post(
                    f"/inference/jobs/{first['job_id']}/bids",
                    json={
                        "provider_id": rival,
                        "model": MODEL,
                        "price": "0.000001",
                        "estimated_time_s": 5,
                    },
                    headers=board.rival,
                )
                assert bid.status_code == 201, bid.text
                award = http.post(
                    f"/inference/jobs/{first['job_id']}/award", json={}, headers=board.buyer
                )
                assert award.status_code == 200, award.text
            running.wait("the loss", lambda s: s.lost == 1)

            # With its one slot free again, it wins the next auction when awarded.
            second = post_job(board, economics={"payment_mode": "auction"})
            running.wait("a second bid", lambda s: s.bids == 2)
            with board.http() as http:
                award = http.post(
                    f"/inference/jobs/{second['job_id']}/award", json={}, headers=board.buyer
                )
                assert award.status_code == 200, award.text
            running.wait("the second job answered", lambda s: s.completed == 1)
        assert get(board, f"/inference/jobs/{second['job_id']}", board.buyer)["job"]["status"] == (
            "completed"
        )


class TestReconnect:
    def test_after_a_drop_it_resumes_from_the_last_event_and_gets_what_it_missed(
        self, board: Board
    ) -> None:
        with bidding_agent(board) as running:
            first = post_job(board)
            running.wait("the first job answered", lambda s: s.completed == 1)
            timeline = get(board, f"/inference/jobs/{first['job_id']}", board.buyer)["job"]
            assert timeline["events"][-1]["kind"] == "job.completed"
            last_seen = str(timeline["events"][-1]["event_id"])
            running.wait("the completion event", lambda s: s.last_event_id == last_seen)

            running.gated.gate.clear()
            running.worker.interrupt()
            assert running.gated.reconnecting.wait(WAIT_SECONDS)
            missed = post_job(board)  # posted while the agent is not listening
            running.gated.gate.set()

            status = running.wait("the missed job answered", lambda s: s.completed == 2)
            assert running.gated.resumed_from == [None, last_seen]
            assert status.connections == 2
        done = get(board, f"/inference/jobs/{missed['job_id']}", board.buyer)["job"]
        assert done["status"] == "completed"


def rival_provider(board: Board) -> str:
    """Another seller's provider, enrolled and paired through the agent as well, and the
    seller's bid stake."""
    secret = board.rival["authorization"].removeprefix("Bearer ")
    config = AgentConfig(
        flow_memory_url=board.base_url,
        model_server_url=board.upstream.base_url,
        api_key=secret,
        provider_name="rival-gpu",
        credential_ref="secret://inference/rival-gpu",
        offer=Offer(units={"token": UnitTerms(ask_unit_price=TOKEN_PRICE)}),
    ).check()
    with (
        FlowMemoryClient(board.base_url, secret) as flow,
        ModelServerClient(board.upstream.base_url) as models,
    ):
        agent = ProviderAgent(config, flow=flow, model_server=models)
        agent.step()
    with board.http() as http:
        staked = http.post("/inference/stakes", json={"amount": 1}, headers=board.rival)
        assert staked.status_code == 201, staked.text
    assert agent.status.provider_id is not None
    return agent.status.provider_id
