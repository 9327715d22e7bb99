"""End-to-end fixtures: a real local model server (``flow_memory.agent.local_server`` over the
small chat and embeddings models that packages ship), a real Flow Memory server, and a provider
agent in front of the model server.

`local_model_server` (session) is the model server; `local_market` (module) is Flow Memory with
the agent's capacity eligible and quoted, and yields the Flow Memory base URL, a buyer key with
inference:proxy, buy, plan and read, and the model names. Without the `local-model` extra the
tests skip, unless FLOW_MEMORY_REQUIRE_LOCAL_MODEL=1 (scripts/check sets it), where they fail."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from flow_memory.agent import local_model
from tests.conftest import clear_tables
from tests.integration.test_provider_agent import (
    AgentProcess,
    health,
    start_agent,
    wait_for,
)
from tests.integration.test_server import Deployment, IssuedKey, Server, _free_port

# The model server loads the model on start; on two shared cores this can take a while.
MODEL_SERVER_READY_SECONDS = 300
CHAT_PRICE = "0.0000005"


@dataclass
class LocalModelServer:
    """The local model server process, its SDK base URL and the model names it answers to."""

    process: subprocess.Popen[bytes]
    base_url: str
    model: str
    embedding_model: str
    log_path: Path
    log_file: IO[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class LocalMarket:
    """Flow Memory with an agent-published provider in front of the local model server."""

    base_url: str  # Flow Memory, e.g. http://127.0.0.1:PORT
    buyer: IssuedKey  # inference:proxy, buy, plan, read
    seller: IssuedKey  # inference:sell, read (the agent's key)
    model: str  # the chat model (compatible_api chat_completions)
    embedding_model: str  # the sentence-embedding model (compatible_api embeddings)
    provider_id: str
    model_server: LocalModelServer
    server: Server
    agent: AgentProcess
    deployment: Deployment

    @property
    def sdk_base_url(self) -> str:
        """What an SDK client takes as its base URL."""
        return f"{self.base_url}/v1"


@pytest.fixture(scope="session")
def local_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    """The local model server for the whole run."""
    missing = local_model.local_model_missing()
    if missing is not None:
        if os.environ.get("FLOW_MEMORY_REQUIRE_LOCAL_MODEL") == "1":
            pytest.fail(f"the local model server is required here: {missing}")
        pytest.skip(missing)
    workdir = tmp_path_factory.mktemp("model-server")
    port = _free_port()
    log_path = workdir / "model-server.log"
    with log_path.open("wb") as log_file:
        process = local_model.start_model_server(port, workdir, log_file)
        server = LocalModelServer(
            process,
            f"http://127.0.0.1:{port}/v1",
            local_model.CHAT_MODEL,
            local_model.EMBEDDING_MODEL,
            log_path,
            log_file,
        )
        try:
            if not local_model.wait_until_serving(
                server.base_url, process, timeout=MODEL_SERVER_READY_SECONDS
            ):
                pytest.fail("the model server did not start:\n" + server.log())
            yield server
        finally:
            local_model.stop_model_server(process)


@pytest.fixture(scope="module")
def local_market(
    local_model_server: LocalModelServer,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[LocalMarket]:
    """Flow Memory and a provider agent in front of the model server, eligible and quoted."""
    workdir = tmp_path_factory.mktemp("market")
    if os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL"):
        url: str = request.getfixturevalue("database_url")
        clear_tables(url)
    else:
        url = f"sqlite:///{workdir / 'flow_memory.db'}"
    deployment = Deployment(url, workdir)
    agent: AgentProcess | None = None
    try:
        seller = deployment.create_key("local-gpu-owner", "inference:sell,inference:read")
        buyer = deployment.create_key(
            "agent-research-1", "inference:proxy,inference:buy,inference:plan,inference:read"
        )
        server = deployment.start()
        config = workdir / "agent.toml"
        config.write_text(local_model.agent_config_toml(chat_price=CHAT_PRICE))
        agent = start_agent(
            deployment,
            flow_memory_url=server.base_url,
            model_server_url=local_model_server.base_url,
            key=seller,
            name="local-gemma",
            price_flags=False,  # the config file prices both model names
            extra=("--config", str(config), "--heartbeat-interval", "5", "--capacity-ttl", "600"),
        )
        running = agent
        provider_id: str = wait_for("an enrollment", running.provider_id, running)
        with server.client() as client:
            wait_for(
                "an eligible route gate",
                lambda: health(client, seller, provider_id)["route_gate"] == "eligible",
                running,
            )
        yield LocalMarket(
            base_url=server.base_url,
            buyer=buyer,
            seller=seller,
            model=local_model_server.model,
            embedding_model=local_model_server.embedding_model,
            provider_id=provider_id,
            model_server=local_model_server,
            server=server,
            agent=running,
            deployment=deployment,
        )
    finally:
        if agent is not None:
            agent.stop()
        deployment.stop_all()
