"""The provider agent as a long-running process: signals, logging, clients built from config."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from flow_memory.agent.clients import FlowMemoryClient, ModelServerClient
from flow_memory.agent.config import AgentConfig
from flow_memory.agent.jobs_client import JobBoardClient
from flow_memory.agent.jobs_worker import DRAIN_SECONDS, JobsWorker
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


def build_jobs_worker(config: AgentConfig, agent: ProviderAgent) -> JobsWorker:
    """A job board bidder for the agent's provider, once it is enrolled and paired."""
    board = JobBoardClient(
        config.flow_memory_url, config.api_key, timeout=config.request_timeout_seconds
    )
    model_server = ModelServerClient(
        config.model_server_url, timeout=config.request_timeout_seconds
    )

    def provider_id() -> str | None:
        return agent.status.provider_id if agent.status.paired else None

    return JobsWorker(config, board=board, model_server=model_server, provider_id=provider_id)


def run_daemon(
    config: AgentConfig, *, once: bool = False, stop: threading.Event | None = None
) -> int:
    """Run until SIGTERM or SIGINT (or one round with `once`), then stop cleanly; with
    ``[jobs] enabled`` the agent also bids on the job board (not with `once`)."""
    agent = build_agent(config.check())
    stop = stop or threading.Event()
    worker = build_jobs_worker(config, agent) if config.jobs.enabled and not once else None

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
        if worker is not None:
            threading.Thread(
                target=worker.run, args=(stop,), name="flow-memory-jobs", daemon=True
            ).start()
        agent.run(stop)
        return 0
    finally:
        stop.set()
        if worker is not None:
            _stop_bidding(worker)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        agent.flow.close()
        agent.model_server.close()


def _stop_bidding(worker: JobsWorker) -> None:
    """End the worker's stream and wait for the jobs it is running (up to DRAIN_SECONDS)."""
    until = time.monotonic() + DRAIN_SECONDS + 5
    # Again and again: a stream being connected right now is not yet interruptible.
    while time.monotonic() < until:
        worker.interrupt()
        if worker.stopped.wait(0.5):
            break
    worker.board.close()
    worker.model_server.close()
