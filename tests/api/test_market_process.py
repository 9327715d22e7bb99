"""The market in a process of its own: what happens when it dies, and when the server stops it.

Everything else about the market is tested both ways by the modules that set
``BOTH_MARKETS``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from flow_memory.market.models import MarketOrder
from flow_memory.market.process import MarketProcess
from tests.api.test_market_orders import ORDERS, ask_body, bid_body, depth
from tests.assertions import assert_safety, ok
from tests.factories import eligible_provider
from tests.processes import running

Headers = dict[str, str]


@pytest.fixture
def market_process() -> bool:
    return True


@pytest.fixture
def market(app: FastAPI) -> MarketProcess:
    process: MarketProcess = app.state.market
    assert isinstance(process, MarketProcess)
    return process


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def running_pid(market: MarketProcess) -> int:
    pid = market.pid
    assert pid is not None
    return pid


def in_thread(call: Callable[[], Response]) -> tuple[threading.Thread, list[Response]]:
    answers: list[Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def pending(market: MarketProcess) -> int:
    child = market._child
    return 0 if child is None else len(child.pending)


@pytest.fixture
def stopped_market(market: MarketProcess, client: TestClient) -> Iterator[int]:
    """The market process, paused (SIGSTOP) for the test and let go at its end."""
    pid = running_pid(market)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_the_server_starts_a_market_process_and_orders_go_through_it(
    app: FastAPI, client: TestClient, market: MarketProcess, seller: Headers, buyer: Headers
) -> None:
    pid = running_pid(market)
    assert pid != os.getpid()
    provider_id = eligible_provider(client, seller)["provider_id"]
    resting = ok(
        client.post(ORDERS, json=ask_body(provider_id, 4000, 0.0000007), headers=seller), 201
    )
    taken = ok(client.post(ORDERS, json=bid_body(1000, 0.0000007), headers=buyer), 201)
    assert [f["ask_order_id"] for f in taken["fills"]] == [resting["order"]["order_id"]]
    # The server keeps no book of its own: the market process placed the capacity snapshot's
    # ask as well as the orders.
    assert not hasattr(app.state, "markets")
    assert market.pid == pid


def test_commands_waiting_on_a_market_process_that_dies_are_answered_503(
    client: TestClient, market: MarketProcess, buyer: Headers, stopped_market: int
) -> None:
    thread, answers = in_thread(
        lambda: client.post(ORDERS, json=bid_body(1000, 0.0000007), headers=buyer)
    )
    wait_for(lambda: pending(market) == 1, "the order to be sent")
    os.kill(stopped_market, signal.SIGKILL)
    thread.join(30)
    [answer] = answers
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error"]["code"] == "market_unavailable"
    assert "may or may not have been applied" in body["error"]["message"]
    assert_safety(body)


def test_the_next_command_starts_a_new_market_process_with_the_book_rebuilt(
    client: TestClient, market: MarketProcess, seller: Headers, buyer: Headers
) -> None:
    provider_id = eligible_provider(client, seller)["provider_id"]
    resting = ok(
        client.post(ORDERS, json=ask_body(provider_id, 4000, 0.0000007), headers=seller), 201
    )
    first = running_pid(market)
    # One that dies in its first second is not restarted for a second: this one is older.
    wait_for(
        lambda: market._child is not None and time.monotonic() - market._child.started > 1.1,
        "the market process to be a second old",
    )
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: market._child is not None and not market._child.alive, "the death noticed")
    taken = ok(client.post(ORDERS, json=bid_body(1000, 0.0000007), headers=buyer), 201)
    assert [f["ask_order_id"] for f in taken["fills"]] == [resting["order"]["order_id"]]
    assert running_pid(market) != first
    [level] = [a for a in depth(client, buyer)["asks"] if a["unit_price"] == 0.0000007]
    assert level["available_units"] == 3000


def test_stopping_finishes_every_command_already_sent(
    app: FastAPI,
    client: TestClient,
    market: MarketProcess,
    buyer: Headers,
    stopped_market: int,
) -> None:
    threads = [
        in_thread(lambda: client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=buyer))
        for _ in range(3)
    ]
    wait_for(lambda: pending(market) == 3, "three orders to be sent")
    stopping = threading.Thread(target=market.stop)
    stopping.start()
    os.kill(stopped_market, signal.SIGCONT)
    stopping.join(30)
    statuses = []
    for thread, answers in threads:
        thread.join(30)
        statuses += [a.status_code for a in answers]
    assert statuses == [201, 201, 201]
    with app.state.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(MarketOrder)) == 3
    wait_for(lambda: not running(stopped_market), "the market process to exit")


def test_a_refusal_in_the_market_process_reads_as_it_does_in_the_server(
    client: TestClient, seller: Headers
) -> None:
    provider_id = eligible_provider(client, seller)["provider_id"]
    too_many: dict[str, Any] = ask_body(provider_id, 10**12, 0.0000007)
    refused = client.post(ORDERS, json=too_many, headers=seller)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "capacity_exceeded"
    assert refused.json()["error"]["field"] == "units"
    assert refused.json()["error"]["hint"] == "lower units or publish more capacity"
    assert_safety(refused.json())


def test_a_market_process_slow_to_read_never_holds_up_the_server(
    client: TestClient, market: MarketProcess, buyer: Headers, stopped_market: int
) -> None:
    # About 240 KB an order (60 metadata values of 4,000 characters, within every limit):
    # two of them fill the socket's buffer while the market process is paused.
    big = {**bid_body(1000, 0.0000001), "metadata": {f"k{i}": "x" * 4000 for i in range(60)}}
    posts = [in_thread(lambda: client.post(ORDERS, json=big, headers=buyer)) for _ in range(2)]
    wait_for(lambda: pending(market) == 2, "both orders to be queued")
    probe, answers = in_thread(lambda: client.get("/readyz"))
    probe.join(20)
    assert not probe.is_alive(), "the server's event loop waited on the market process"
    assert [a.status_code for a in answers] == [200]
    os.kill(stopped_market, signal.SIGCONT)
    for thread, placed in posts:
        thread.join(30)
        assert [a.status_code for a in placed] == [201]


def ignored_signals(pid: int) -> int:
    """The mask of signals the process ignores (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


@pytest.mark.parametrize("signal_sent", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_market_process_outlives_signals_meant_for_the_server(
    client: TestClient, market: MarketProcess, buyer: Headers, signal_sent: signal.Signals
) -> None:
    # Ctrl-C reaches the whole process group, a service manager's stop every process of the
    # service: the server's graceful shutdown still has commands to send it, and stops it.
    pid = running_pid(market)
    # It ignores the signal from its first instruction: a signal the kernel sees ignored is
    # dropped when it is sent, so once kill returns, it has come and gone.
    wait_for(lambda: ignored_signals(pid) & (1 << (signal_sent - 1)) != 0, "the signal ignored")
    os.kill(pid, signal_sent)
    for _ in range(2):
        placed = ok(client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=buyer), 201)
        assert placed["order"]["status"] == "open"
    assert running_pid(market) == pid and running(pid)


def test_a_stopped_market_answers_503_until_started_again(
    client: TestClient, market: MarketProcess, buyer: Headers
) -> None:
    pid = running_pid(market)
    market.stop()
    wait_for(lambda: not running(pid), "the market process to exit")
    refused = client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=buyer)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "market_unavailable"
    market.start()
    ok(client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=buyer), 201)
    assert running_pid(market) != pid
