"""The provider agent as a real process (`flow-memory provider-agent`) in front of the scripted
upstream, against a real Flow Memory server: enrollment, catalog and capacity, a quote that finds
the provider, recovery when Flow Memory or the model server restarts, and a clean SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import (
    Deployment,
    IssuedKey,
    Server,
    _free_port,
    _wait_until_ready,
)

pytestmark = pytest.mark.integration

WAIT_SECONDS = 60  # a guard against a hang, not a performance claim
MODEL = "double-chat"
PRICE_FLAGS = ("--price", "0.00000075", "--min-order-units", "100", "--concurrency", "2")


@dataclass
class AgentProcess:
    """A running `flow-memory provider-agent` and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    state_file: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def provider_id(self) -> str | None:
        if not self.state_file.exists():
            return None
        value: str | None = json.loads(self.state_file.read_text()).get("provider_id")
        return value

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.log_file.close()
        return self.process.returncode


def start_server_at(deployment: Deployment, port: int) -> Server:
    """A Flow Memory server on a chosen port (a restart must come back where the agent looks)."""
    index = len(deployment.servers)
    log_path = deployment.workdir / f"server-{index}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flow_memory.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            f"{port}",
        ],
        env=deployment.env,
        cwd=deployment.workdir,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, log_file)
    deployment.servers.append(server)
    _wait_until_ready(server)
    return server


def start_agent(
    deployment: Deployment,
    *,
    flow_memory_url: str,
    model_server_url: str,
    key: IssuedKey,
    name: str = "scripted-box",
    price_flags: bool = True,
    extra: tuple[str, ...] = (),
) -> AgentProcess:
    """`flow-memory provider-agent` with a fast rhythm, logging into the deployment's folder;
    without `price_flags` the offer comes from a config file given in `extra`."""
    workdir = deployment.workdir
    index = len(list(workdir.glob("agent-*.log")))
    log_path = workdir / f"agent-{index}.log"
    log_file = log_path.open("wb")
    state_file = workdir / "agent-state.json"
    env = {**deployment.env, "FLOW_MEMORY_AGENT_API_KEY": key.secret}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flow_memory.cli",
            "provider-agent",
            "--flow-memory-url",
            flow_memory_url,
            "--model-server-url",
            model_server_url,
            "--provider-name",
            name,
            "--credential-ref",
            f"secret://inference/{name}",
            "--state-file",
            str(state_file),
            "--heartbeat-interval",
            "0.5",
            "--capacity-ttl",
            "60",
            *PRICE_FLAGS[: len(PRICE_FLAGS) if price_flags else 0],
            "--log-level",
            "debug",
            *extra,
        ],
        env=env,
        cwd=workdir,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    return AgentProcess(process, log_path, log_file, state_file)


def wait_for(what: str, check: Callable[[], Any], agent: AgentProcess | None = None) -> Any:
    """Poll until `check` returns something truthy; fail with the agent's log otherwise."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n" + (agent.log() if agent else ""))


def health(client: httpx.Client, key: IssuedKey, provider_id: str) -> dict[str, Any]:
    response = client.get(f"/inference/providers/{provider_id}/health", headers=key.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def quote(client: httpx.Client, key: IssuedKey, model: str = MODEL) -> dict[str, Any]:
    response = client.post(
        "/inference/quote",
        headers=key.headers,
        json={"model": model, "unit_type": "token", "estimated_units": 1000},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(models=[MODEL]) as running:
        yield running


def test_agent_enrolls_is_quoted_and_recovers_when_flow_memory_restarts(
    deployment: Deployment, upstream: ScriptedUpstream
) -> None:
    seller = deployment.create_key("provider-team-alpha", "inference:sell,inference:read")
    planner = deployment.create_key("agent-research-1", "inference:plan,inference:read")
    port = _free_port()
    server = start_server_at(deployment, port)
    agent = start_agent(
        deployment, flow_memory_url=server.base_url, model_server_url=upstream.base_url, key=seller
    )
    try:
        with server.client() as client:
            provider_id = wait_for("an enrollment", agent.provider_id, agent)
            wait_for(
                "an eligible route gate",
                lambda: health(client, seller, provider_id)["route_gate"] == "eligible",
                agent,
            )
            quoted = quote(client, planner)
            (offer,) = quoted["quotes"]
            assert offer["provider_id"] == provider_id
            assert offer["provider_name"] == "scripted-box"
            assert offer["unit_price"] == 0.00000075
            # Two slots x 20 tokens a second (the default rate) x a 60-second window.
            assert offer["available_units"] == 2400

        server.process.kill()
        server.process.wait(timeout=15)
        wait_for("the agent to notice", lambda: "Flow Memory unavailable" in agent.log(), agent)
        restarted_at = datetime.now(UTC)
        server = start_server_at(deployment, port)

        with server.client() as client:

            def heartbeat_after_restart() -> bool:
                seen = health(client, seller, provider_id)["last_heartbeat_at"]
                return datetime.fromisoformat(seen.replace("Z", "+00:00")) > restarted_at

            wait_for("a heartbeat after the restart", heartbeat_after_restart, agent)
            wait_for("the recovery log line", lambda: "recovered" in agent.log(), agent)
            assert health(client, seller, provider_id)["route_gate"] == "eligible"
            assert quote(client, planner)["quotes"][0]["provider_id"] == provider_id
            assert agent.provider_id() == provider_id  # the same enrollment, not a new one
    finally:
        code = agent.stop()
    assert code == 0, agent.log()
    log = agent.log()
    assert "enrollment created" in log and "paired provider" in log
    assert "catalog published: double-chat" in log
    assert seller.secret not in log


def test_model_server_outage_withdraws_capacity_and_sigterm_stops_cleanly(
    deployment: Deployment, upstream: ScriptedUpstream
) -> None:
    seller = deployment.create_key("provider-team-alpha", "inference:sell,inference:read")
    server = deployment.start()
    agent = start_agent(
        deployment, flow_memory_url=server.base_url, model_server_url=upstream.base_url, key=seller
    )
    upstream_port = upstream.port
    try:
        with server.client() as client:
            provider_id = wait_for("an enrollment", agent.provider_id, agent)

            def gate() -> str:
                value: str = health(client, seller, provider_id)["route_gate"]
                return value

            wait_for("an eligible route gate", lambda: gate() == "eligible", agent)

            upstream.stop()
            wait_for("capacity withdrawn", lambda: gate() == "stale", agent)
            current = health(client, seller, provider_id)
            assert current["capacity_status"] == "expired"
            assert current["heartbeat_status"] == "current"  # still alive, just not selling
            assert "model server unavailable" in agent.log()

            with ScriptedUpstream(models=[MODEL], port=upstream_port):
                wait_for("capacity back", lambda: gate() == "eligible", agent)
                assert "model server is back" in agent.log()

                agent.process.send_signal(signal.SIGTERM)
                assert agent.process.wait(timeout=WAIT_SECONDS) == 0, agent.log()
                assert gate() == "stale"  # capacity withdrawn on the way out

            # A second run reuses the enrollment and the credential reference.
            again = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "flow_memory.cli",
                    "provider-agent",
                    "--flow-memory-url",
                    server.base_url,
                    "--model-server-url",
                    f"http://127.0.0.1:{upstream_port}/v1",
                    "--provider-name",
                    "scripted-box",
                    "--credential-ref",
                    "secret://inference/scripted-box",
                    "--state-file",
                    str(agent.state_file),
                    "--price",
                    "0.00000075",
                    "--once",
                ],
                env={**deployment.env, "FLOW_MEMORY_AGENT_API_KEY": seller.secret},
                capture_output=True,
                text=True,
                timeout=WAIT_SECONDS,
                check=False,
            )
            assert again.returncode == 0, again.stderr
            assert f"enrollment updated: provider {provider_id}" in again.stderr
            refs = client.get("/inference/credential-refs", headers=seller.headers).json()
            assert refs["count"] == 1
    finally:
        agent.stop()
    log = agent.log()
    assert "received SIGTERM; stopping" in log
    assert "capacity withdrawn" in log
    assert seller.secret not in log
