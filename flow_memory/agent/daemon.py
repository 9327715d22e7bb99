"""The provider agent as a long-running process: signals, logging, clients built from config."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from flow_memory.agent.clients import FlowMemoryClient, ModelServerClient
from flow_memory.agent.config import AgentConfig
from flow_memory.agent.runtime import ProviderAgent

log = logging.getLogger("flow_memory.agent")


def build_agent(config: AgentConfig) -> ProviderAgent:
    """An agent with real HTTP clients for the configured addresses."""
    flow = FlowMemoryClient(
        config.flow_memory_url, config.api_key, timeout=config.request_timeout_seconds
    )
    model_server = ModelServerClient(
        config.model_server_url, timeout=config.request_timeout_seconds
    )
    return ProviderAgent(config, flow=flow, model_server=model_server)


def run_daemon(
    config: AgentConfig, *, once: bool = False, stop: threading.Event | None = None
) -> int:
    """Run until SIGTERM or SIGINT (or one round with `once`), then stop cleanly."""
    agent = build_agent(config.check())
    stop = stop or threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        if once:
            agent.step()
            return 1 if agent.status.last_error is not None else 0
        agent.run(stop)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        agent.flow.close()
        agent.model_server.close()
