"""The local model server with a provider agent in front of it, in one call: the server as a
process of its own, the agent on a thread that starts once the server answers. ``flow-memory
demo`` runs it so the first SDK call through Flow Memory gets a real answer."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from flow_memory.agent import local_model
from flow_memory.agent.config import AgentConfig, config_from_mapping
from flow_memory.agent.daemon import run_daemon

log = logging.getLogger("flow_memory.agent")

READY_SECONDS = 600.0  # a guard against a server that never answers, not a claim


@dataclass
class LocalProvider:
    """The model server process and the provider agent thread that publishes it."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop: threading.Event
    thread: threading.Thread

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        local_model.stop_model_server(self.process)


def start_local_provider(
    flow_memory_url: str,
    api_key: str,
    *,
    provider_name: str,
    credential_ref: str,
    log_path: Path,
) -> LocalProvider:
    """Start the model server on a free loopback port (its output in ``log_path``), then, on a
    thread once it answers, a provider agent that enrolls and publishes both model names and
    bids on the job board's chat jobs with the chat model."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = local_model.start_model_server(port, log_path.with_suffix(""), log_file)
    config = config_from_mapping(
        tomllib.loads(local_model.agent_config_toml() + local_model.jobs_config_toml()),
        base=AgentConfig(
            flow_memory_url=flow_memory_url,
            model_server_url=base_url,
            api_key=api_key,
            provider_name=provider_name,
            credential_ref=credential_ref,
            heartbeat_interval_seconds=20,
            capacity_ttl_seconds=600,
            backoff_base_seconds=0.5,
            backoff_cap_seconds=10,
            withdraw_on_stop=False,  # Flow Memory stops with the caller anyway
        ),
    ).check()
    stop = threading.Event()
    # The agent logs what it does; the client library's line per request would drown it.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def serve_when_ready() -> None:
        if not local_model.wait_until_serving(base_url, process, timeout=READY_SECONDS):
            log.error("the local model server did not start; see %s", log_path)
            return
        log.info("the local model server answers at %s", base_url)
        run_daemon(config, stop=stop)  # the agent, and its job board bidder beside it

    thread = threading.Thread(target=serve_when_ready, daemon=True, name="local-provider-agent")
    thread.start()
    return LocalProvider(base_url, process, log_path, stop, thread)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
