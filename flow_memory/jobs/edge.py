"""Posting a job and bidding at the edge (``flow_memory.kit.edge``): with bidding agents
following the stream, each job is a post and a bid or more within milliseconds, and the
generic request machinery cost as much as the job board's work. The edge runs the same commands
as the routes (``jobs.writes``) through the same job work (the job writer on SQLite); the full
stack answers every other request to these paths."""

from __future__ import annotations

import re

from starlette.datastructures import State

from flow_memory.jobs import writes
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import BidCreate, JobCreate
from flow_memory.jobs.work import JobWork
from flow_memory.kit.deps import Principal
from flow_memory.kit.edge import Answer, EdgeRoute
from flow_memory.kit.scopes import BUY, SELL


async def _post(state: State, principal: Principal, body: JobCreate, _: dict[str, str]) -> Answer:
    command = writes.post_job(principal, body, state.clock.now(), JobRules.of(state.settings))
    return await JobWork.of(state).apply(command)


async def _bid(
    state: State, principal: Principal, body: BidCreate, params: dict[str, str]
) -> Answer:
    command = writes.place_bid(
        principal, params["job_id"], body, state.clock.now(), JobRules.of(state.settings)
    )
    return await JobWork.of(state).apply(command)


POST_JOB_ROUTE = EdgeRoute(
    template="/inference/jobs",
    pattern=re.compile(r"/inference/jobs"),
    scopes=(BUY,),
    schema=JobCreate,
    answer=_post,
)
# A job id with NUL is refused by the full stack (refuse_unstorable_path_parameters).
BID_ROUTE = EdgeRoute(
    template="/inference/jobs/{job_id}/bids",
    pattern=re.compile(r"/inference/jobs/(?P<job_id>[^/\x00]+)/bids"),
    scopes=(SELL,),
    schema=BidCreate,
    answer=_bid,
)
