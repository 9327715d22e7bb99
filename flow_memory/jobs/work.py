"""The job board's write path as the routes take it: ``JobWork`` runs a command whole (in the
job writer's next batch on SQLite), and ``JobRules`` carries the settings the board applies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.timer import JobTimer
from flow_memory.jobs.writer import JobWriter
from flow_memory.kit.deps import SettingsDep, on_session_end, transaction

T = TypeVar("T")


async def job_timer(request: Request) -> JobTimer:
    timer: JobTimer = request.app.state.job_timer
    return timer


class JobWork:
    """A write request's unit of work (a command: the use case and its answer). On SQLite the
    job writer applies it in its next batch (``writer.JobWriter``); elsewhere it runs whole in
    the endpoint's thread, in a transaction of its own. Either way it has committed when
    ``run`` returns, and the streams (and the timer, when a job falls due sooner) are woken."""

    def __init__(
        self, factory: Callable[[], Session], timer: JobTimer, writer: JobWriter | None
    ) -> None:
        self._factory = factory
        self._timer = timer
        self._writer = writer

    def run(self, command: Callable[[Session], T]) -> T:
        if self._writer is not None:
            return self._writer.run(command)
        with transaction(self._factory) as session:
            on_session_end(
                session, lambda committed: self._timer.committed(session) if committed else None
            )
            return command(session)

    async def apply(self, command: Callable[[Session], T]) -> T:
        """``run`` from an event loop: on SQLite it waits for the writer's batch without taking
        a thread of its own; elsewhere the command runs in the thread pool. A caller that goes
        away does not withdraw a command already queued: it is applied all the same."""
        if self._writer is not None:
            return await asyncio.shield(asyncio.wrap_future(self._writer.submit(command)))
        return await run_in_threadpool(self.run, command)

    @classmethod
    def of(cls, state: State) -> JobWork:
        return cls(state.session_factory, state.job_timer, state.job_writer)


async def job_work(request: Request, timer: Annotated[JobTimer, Depends(job_timer)]) -> JobWork:
    return JobWork(request.app.state.session_factory, timer, request.app.state.job_writer)


JobWorkDep = Annotated[JobWork, Depends(job_work)]


async def job_rules(settings: SettingsDep) -> JobRules:
    return JobRules.of(settings)


JobRulesDep = Annotated[JobRules, Depends(job_rules)]
