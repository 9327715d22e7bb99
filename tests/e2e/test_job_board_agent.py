"""The job board end to end with the real local model: a Flow Memory server, a provider agent
process started with ``--jobs`` in front of the local model server, and a requester. The agent
stakes to bid when it starts (bids need a stake); a job is posted; the agent bids on it, wins,
answers it with the local model and uploads the result; the result is archived, the job
completes and the ledger shows the payment. The requester follows the job stream to know when,
and the agent's log never holds the prompt or the answer."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow_memory.agent import local_model
from flow_memory.agent.jobs_client import JobBoardClient
from tests.conftest import clear_tables
from tests.e2e.conftest import CHAT_PRICE, LocalModelServer
from tests.integration.test_provider_agent import AgentProcess, start_agent, wait_for
from tests.integration.test_server import Deployment, IssuedKey, Server

pytestmark = pytest.mark.e2e

# Long enough for an agent to start and a small model on two shared cores to answer; a guard
# against a hang, not a performance claim.
WAIT_SECONDS = 300.0
PROMPT = "Name three colours of the rainbow. Reply in one short line."
JOBS_TABLE = local_model.jobs_config_toml()


@dataclass
class JobBoard:
    server: Server
    buyer: IssuedKey
    seller: IssuedKey
    agent: AgentProcess
    provider_id: str


@pytest.fixture
def job_board(
    local_model_server: LocalModelServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[JobBoard]:
    if os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL"):
        url: str = request.getfixturevalue("database_url")
        clear_tables(url)
    else:
        url = f"sqlite:///{tmp_path / 'flow_memory.db'}"
    deployment = Deployment(url, tmp_path)
    agent: AgentProcess | None = None
    try:
        seller = deployment.create_key("local-gpu-owner", "inference:sell,inference:read")
        buyer = deployment.create_key("agent-research-1", "inference:buy,inference:read")
        server = deployment.start()
        config = tmp_path / "agent.toml"
        config.write_text(local_model.agent_config_toml(chat_price=CHAT_PRICE) + JOBS_TABLE)
        agent = start_agent(
            deployment,
            flow_memory_url=server.base_url,
            model_server_url=local_model_server.base_url,
            key=seller,
            name="local-gemma",
            price_flags=False,
            extra=("--config", str(config), "--jobs", "--heartbeat-interval", "5"),
        )
        running = agent
        provider_id: str = wait_for("an enrollment", running.provider_id, running)
        yield JobBoard(server, buyer, seller, running, provider_id)
    finally:
        if agent is not None:
            agent.stop()
        deployment.stop_all()


def follow_until_completed(board: JobBoard, posted: threading.Event) -> list[str]:
    """Follow the job stream as the requester, from before the job is posted, until a job
    completes, accepting its result when its judging opens; the kinds of the events seen. A
    watchdog ends the stream after WAIT_SECONDS."""
    kinds: list[str] = []
    with JobBoardClient(board.server.base_url, board.buyer.secret) as client:
        watchdog = threading.Timer(WAIT_SECONDS, client.interrupt)
        watchdog.start()
        try:
            with client.stream(last_event_id=None, idle_seconds=WAIT_SECONDS) as events:
                posted.set()
                for event in events:
                    kinds.append(str(event.kind))
                    if event.kind == "job.validation_opened":
                        accept(board, json.loads(event.data)["job_id"])
                    if event.kind == "job.completed":
                        return kinds
        except Exception as error:
            pytest.fail(f"no completed job ({error}); events {kinds}\n{board.agent.log()}")
        finally:
            watchdog.cancel()
    pytest.fail(f"the stream ended; events {kinds}\n{board.agent.log()}")


def accept(board: JobBoard, job_id: str) -> None:
    """The requester accepts the job's result (requester mode: the job then pays)."""
    response = httpx.post(
        f"{board.server.base_url}/inference/jobs/{job_id}/verdicts",
        headers=board.buyer.headers,
        json={"decision": "accept", "score": 0.9, "reason": "answers the prompt"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def get(board: JobBoard, path: str) -> dict[str, Any]:
    response = httpx.get(f"{board.server.base_url}{path}", headers=board.buyer.headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_job_is_bid_won_answered_by_the_local_model_archived_and_paid(
    job_board: JobBoard,
) -> None:
    board = job_board
    posted = threading.Event()
    job: dict[str, Any] = {}

    def post() -> None:
        assert posted.wait(WAIT_SECONDS)
        response = httpx.post(
            f"{board.server.base_url}/inference/jobs",
            headers=board.buyer.headers,
            json={
                "request": {
                    "model_hint": "chat",
                    "messages": [{"role": "user", "content": PROMPT}],
                    "max_tokens": 16,
                },
                "economics": {"max_price": "0.01", "payment_mode": "fixed"},
                "bid_window_seconds": 600,
                "deadline_seconds": 600,
            },
            timeout=30,
        )
        assert response.status_code == 201, response.text
        job.update(response.json()["job"])

    poster = threading.Thread(target=post)
    poster.start()
    kinds = follow_until_completed(board, posted)
    poster.join(timeout=60)
    assert kinds[0] == "job.posted" and "job.awarded" in kinds, kinds

    done = get(board, f"/inference/jobs/{job['job_id']}")["job"]
    assert done["status"] == "completed", done
    award = done["award"]
    assert award["provider_id"] == board.provider_id
    assert award["model"] == local_model.CHAT_MODEL
    # The agent's price: its token price times the job's size, above its minimum.
    price = Decimal(CHAT_PRICE) * done["request"]["size"]["estimated_tokens"]
    assert price > Decimal("0.00001")
    assert Decimal(str(award["price"])) == Decimal(str(done["economics"]["paid"])) == price

    # The ledger: the seller's account was paid the price out of the requester's escrow.
    accounts = httpx.get(
        f"{board.server.base_url}/inference/ledger/accounts",
        params={"holder_id": "local-gpu-owner"},
        headers=board.seller.headers,
        timeout=30,
    )
    assert accounts.status_code == 200, accounts.text
    (account,) = accounts.json()["accounts"]
    assert Decimal(str(account["balance"])) == price
    # Bids need a stake (the server's default): the agent staked its configured 1 credit when
    # it started, held on its account (a hold, not a payment) and still in place.
    stakes = httpx.get(
        f"{board.server.base_url}/inference/stakes", headers=board.seller.headers, timeout=30
    )
    assert stakes.status_code == 200, stakes.text
    assert [(s["purpose"], s["amount"], s["status"]) for s in stakes.json()["stakes"]] == [
        ("bid", 1, "active")
    ]
    assert Decimal(str(account["held"])) == 1

    # The agent said what it did, without the prompt or the answer.
    def answered() -> str | None:
        text = board.agent.log()
        return text if f"answered job {job['job_id']}" in text else None

    log: str = wait_for("the agent's account of the job", answered, board.agent)
    assert f"won job {job['job_id']}" in log
    assert PROMPT not in log and "rainbow" not in log

    # The archive holds the local model's answer under its hash.
    result = get(board, f"/inference/results/{done['result_hash']}")["result"]
    assert result["job_id"] == job["job_id"] and result["model"] == local_model.CHAT_MODEL
    assert result["output"].strip() and result["usage"]["completion_tokens"] > 0
    assert result["output"].strip() not in log
