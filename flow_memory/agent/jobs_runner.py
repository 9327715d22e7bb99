"""Running a job the agent won: read the assignment (the full request), have the local model
server answer it (asking once more if it fails and the deadline leaves time), and upload the
result, retrying the Flow Memory calls while it cannot be reached and the job's deadline has not
passed. Nothing here logs the prompt or the output."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flow_memory.agent.clients import (
    ChatAnswer,
    FlowMemoryRefused,
    FlowMemoryUnavailable,
    ModelServerClient,
    ModelServerUnavailable,
)
from flow_memory.agent.jobs_client import JobBoardClient, messages_of
from flow_memory.agent.runtime import Backoff

log = logging.getLogger("flow_memory.agent.jobs")

MODEL_RETRY_SECONDS = 1.0  # the pause before a failed answer is asked for once more


class JobFailed(Exception):
    """The job could not be answered or its result not uploaded; the message says why."""


@dataclass(frozen=True)
class Answered:
    """A job answered and its result archived."""

    result_hash: str
    replayed: bool  # the same result had been archived before (an upload retried)
    completion_tokens: int
    seconds: float  # the model server's time for the answer


@dataclass(frozen=True)
class JobRun:
    """One won job to run: on which model, within how many seconds of starting."""

    job_id: str
    model: str
    deadline_seconds: int


def run_job(
    run: JobRun,
    *,
    board: JobBoardClient,
    model_server: ModelServerClient,
    backoff: Backoff,
    stop: threading.Event,
) -> Answered:
    """Answer the job on the model server and archive the result (``JobFailed`` if not)."""
    began = time.monotonic()
    until = began + run.deadline_seconds
    try:
        assignment = _retry(lambda: board.assignment(run.job_id), until, backoff, stop)
        request = assignment["request"]
        started = time.monotonic()
        answer = _answer(run, request, model_server=model_server, until=until, stop=stop)
        took = time.monotonic() - started
        if not answer.text:
            raise JobFailed("the model wrote nothing; there is no result to upload")
        body = {
            "output": answer.text,
            "model": run.model,
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
            "timings": {"queue_s": _seconds(started - began), "total_s": _seconds(took)},
        }
        uploaded = _retry(lambda: board.submit_result(run.job_id, body), until, backoff, stop)
        return Answered(
            result_hash=str(uploaded["result"]["result_hash"]),
            replayed=bool(uploaded.get("replayed")),
            completion_tokens=answer.completion_tokens,
            seconds=took,
        )
    except (FlowMemoryUnavailable, FlowMemoryRefused, ModelServerUnavailable) as error:
        raise JobFailed(str(error)) from None
    except (KeyError, TypeError, ValueError):
        raise JobFailed("Flow Memory's answer was not understood") from None


def _answer(
    run: JobRun,
    request: dict[str, Any],
    *,
    model_server: ModelServerClient,
    until: float,
    stop: threading.Event,
) -> ChatAnswer:
    """The model server's answer; a failure is tried once more (after ``MODEL_RETRY_SECONDS``)
    when the deadline leaves time for it, then the job is given up."""

    def ask() -> ChatAnswer:
        return model_server.complete_chat(
            model=run.model,
            messages=messages_of(request),
            max_tokens=int(request["max_tokens"]),
            timeout=max(1.0, until - time.monotonic()),
        )

    try:
        return ask()
    except ModelServerUnavailable:
        if until - time.monotonic() < 2 * MODEL_RETRY_SECONDS or stop.is_set():
            raise
        log.warning("the model server failed on a job; asking it once more")
    if stop.wait(MODEL_RETRY_SECONDS):
        raise ModelServerUnavailable("the agent is stopping")
    return ask()


def _retry(
    call: Callable[[], dict[str, Any]], until: float, backoff: Backoff, stop: threading.Event
) -> dict[str, Any]:
    """``call``, again after a pause while Flow Memory is unreachable and time is left."""
    backoff.reset()
    while True:
        try:
            return call()
        except FlowMemoryUnavailable:
            delay = backoff.next_delay()
            if time.monotonic() + delay >= until or stop.is_set():
                raise
            stop.wait(delay)


def _seconds(value: float) -> Decimal:
    return Decimal(f"{max(value, 0.0):.3f}")
