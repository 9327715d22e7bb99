"""The proxy in a real server process in front of scripted upstreams on real sockets: timeouts
from settings, fallback, a client that disconnects, and usage records kept across a SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from flow_memory.kit.db import make_engine
from tests.conftest import clear_tables
from tests.doubles.scripted_upstream import Fault, ScriptedUpstream
from tests.integration.test_server import Deployment, IssuedKey, Server

pytestmark = pytest.mark.integration

MODEL = "double-chat"
SECRET = "planted-upstream-secret-91c2"


@dataclass
class ProxyDeployment(Deployment):
    """A deployment whose servers get proxy settings and the operator's planted secret."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(
            FLOW_MEMORY_PROXY_READ_TIMEOUT_SECONDS="1",
            FLOW_MEMORY_PROXY_CONNECT_TIMEOUT_SECONDS="1",
            FLOW_MEMORY_SECRET_INFERENCE_FIRST=SECRET,
        )
        return env


@pytest.fixture
def deployment(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ProxyDeployment]:
    if os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL"):
        url: str = request.getfixturevalue("database_url")
        clear_tables(url)
    else:
        url = f"sqlite:///{tmp_path / 'flow_memory.db'}"
    deployed = ProxyDeployment(url, tmp_path)
    try:
        yield deployed
    finally:
        deployed.stop_all()


@pytest.fixture
def upstreams() -> Iterator[tuple[ScriptedUpstream, ScriptedUpstream]]:
    with (
        ScriptedUpstream(models=[MODEL]) as first,
        ScriptedUpstream(models=[MODEL], reply="Second provider here.") as second,
    ):
        yield first, second


def _provider(client: httpx.Client, seller: IssuedKey, name: str, base_url: str, price: str) -> str:
    headers = seller.headers
    ref = client.post(
        "/inference/credential-refs",
        json={"credential_ref": f"secret://inference/{name}", "display_name": name},
        headers=headers,
    )
    assert ref.status_code == 201, ref.text
    enrolled = client.post(
        "/inference/providers/enroll",
        json={
            "provider_name": name,
            "base_url": base_url,
            "credential_ref_id": ref.json()["credential_ref"]["credential_ref_id"],
            "supported_units": ["token"],
        },
        headers=headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    pid = enrolled.json()["provider"]["provider_id"]
    token = client.post(f"/inference/providers/{pid}/pairing-token", headers=headers).json()
    beat = client.post(
        f"/inference/providers/{pid}/heartbeat",
        headers={**headers, "x-flow-memory-pairing-token": token["pairing_token"]},
    )
    assert beat.status_code == 200, beat.text
    catalog = {
        "catalog_version": "2026-01-01T00:00:00Z",
        "models": [
            {
                "model": MODEL,
                "compatible_api": "chat_completions",
                "unit_types": ["token"],
                "context_window": 4096,
            }
        ],
    }
    assert client.post(f"/inference/providers/{pid}/catalog", json=catalog, headers=headers)
    capacity = {
        "capacity_version": "2026-01-01T00:00:00Z",
        "inventory": [
            {
                "model": MODEL,
                "unit_type": "token",
                "available_units": 1_000_000,
                "ask_unit_price": price,
                "expires_at": "2099-01-01T00:00:00Z",
            }
        ],
    }
    answer = client.post(f"/inference/providers/{pid}/capacity", json=capacity, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(pid)


@dataclass
class Running:
    server: Server
    client: httpx.Client
    buyer: IssuedKey
    first: str
    second: str


@pytest.fixture
def running(
    deployment: ProxyDeployment, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> Iterator[Running]:
    seller = deployment.create_key("seller-one")
    buyer = deployment.create_key("buyer-one", "inference:proxy,inference:read")
    server = deployment.start()
    with server.client() as client:
        first = _provider(client, seller, "first", upstreams[0].base_url, "0.000001")
        second = _provider(client, seller, "second", upstreams[1].base_url, "0.000002")
        yield Running(server, client, buyer, first, second)


def _chat(running: Running, **extra: object) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], **extra}
    return running.client.post("/v1/chat/completions", json=body, headers=running.buyer.headers)


def test_an_upstream_that_never_answers_times_out_and_falls_back(
    running: Running, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    first, _ = upstreams
    first.script(Fault.HANG)
    answer = _chat(running)
    assert answer.status_code == 200, answer.text
    meta = answer.json()["flow_memory"]
    assert [a["outcome"] for a in meta["attempts"]] == ["timeout", "answered"]
    assert meta["provider_id"] == running.second
    assert answer.json()["choices"][0]["message"]["content"] == "Second provider here."
    # The first upstream got the operator's secret in its header, and nobody else saw it.
    assert first.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in answer.text


def test_a_stream_is_relayed_from_a_real_socket_and_a_cut_ends_in_an_error_event(
    running: Running, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    with running.client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers=running.buyer.headers,
    ) as answer:
        lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    closing = json.loads(lines[-2][6:])
    assert closing["flow_memory"]["provider_id"] == running.first
    assert closing["usage"]["total_tokens"] == closing["flow_memory"]["usage"]["units"] > 0
    upstreams[0].script(Fault.CUT_STREAM, times=1)
    cut = _chat(running, stream=True)
    assert '"upstream_stream_cut"' in cut.text and "[DONE]" not in cut.text


def _usage_rows(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT decision, provider_id FROM usage_records"))
            return [(str(r[0]), str(r[1])) for r in rows]
    finally:
        engine.dispose()


def test_a_client_that_disconnects_cancels_the_call_and_is_recorded(
    running: Running, deployment: ProxyDeployment, upstreams: tuple[ScriptedUpstream, ...]
) -> None:
    assert _chat(running).status_code == 200  # selects and caches the route first
    upstreams[0].script(Fault.SLOW, delay=0.8)
    with pytest.raises(httpx.ReadTimeout):
        running.client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers=running.buyer.headers,
            timeout=0.3,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ("client_disconnected", running.first) in _usage_rows(deployment.database_url):
            break
        time.sleep(0.1)
    else:
        pytest.fail("no usage record for the abandoned call")
    assert len(upstreams[0].requests) == 2  # cancelled, not retried elsewhere
    assert upstreams[1].requests == []


def test_every_usage_record_is_written_before_a_sigterm_exit(
    running: Running, deployment: ProxyDeployment
) -> None:
    answered = [_chat(running) for _ in range(12)]
    assert all(a.status_code == 200 for a in answered)
    running.server.process.send_signal(signal.SIGTERM)
    # A graceful exit: the server finishes its shutdown, then ends by the signal it was sent.
    assert running.server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in deployment.logs()
    rows = _usage_rows(deployment.database_url)
    ids = {a.json()["flow_memory"]["usage_id"] for a in answered}
    assert len(rows) == 12 and len(ids) == 12
