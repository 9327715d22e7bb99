"""Routes of the job board: post and list jobs, bid, award, cancel, the winner's assignment and
result, the archive of results, and the live stream of job events."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from flow_memory.jobs import archive, bidding, service, stream, views, writes
from flow_memory.jobs.schemas import (
    ArchivedResultResponse,
    AssignmentResponse,
    BidCreate,
    BidResponse,
    JobAward,
    JobCancel,
    JobCreate,
    JobListResponse,
    JobResponse,
    JobStatus,
    JobStreamEvent,
    ResultCreate,
    ResultResponse,
)
from flow_memory.jobs.work import JobRulesDep, JobWorkDep
from flow_memory.kit.cursors import CURSOR_PATTERN
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, ErrorEnvelope, Identifier
from flow_memory.kit.scopes import BUY, READ, SELL

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference",
    tags=["jobs"],
    responses=ERROR_RESPONSES,
)

Buyer = Annotated[Principal, Depends(require_scopes(BUY))]
Seller = Annotated[Principal, Depends(require_scopes(SELL))]
Reader = Annotated[Principal, Depends(require_scopes(READ))]
ResultHashPath = Annotated[
    str,
    Path(
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="sha256: and the SHA-256 of the result's canonical encoding, in hex",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="next_cursor of the previous page, unchanged; any other is refused (422 "
        "invalid_cursor)",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]
QueryPrice = Annotated[
    Decimal | None,
    Query(ge=0, le=10**12, max_digits=38, decimal_places=18, allow_inf_nan=False),
]


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobResponse,
    name="jobs",
    summary="Post a job with its maximum price; its escrow is held on the requester's account",
    responses={
        402: {
            "model": ErrorEnvelope,
            "description": "The requester's enforced account cannot cover the escrow "
            "(insufficient_credit)",
        }
    },
)
def post_job(
    body: JobCreate, work: JobWorkDep, clock: ClockDep, principal: Buyer, rules: JobRulesDep
) -> FlowJSONResponse:
    status, answer = work.run(writes.post_job(principal, body, clock.now(), rules))
    return respond(answer, status_code=status)


@router.get(
    "/jobs",
    response_model=JobListResponse,
    name="jobs",
    summary="List jobs, newest first, with a cursor (sealed jobs without their prompt)",
)
def list_jobs(
    session: ReadSessionDep,
    _principal: Reader,
    status: Annotated[JobStatus | None, Query()] = None,
    model_hint: Annotated[Identifier | None, Query()] = None,
    requester_id: Annotated[Identifier | None, Query()] = None,
    price_min: Annotated[
        QueryPrice, Query(description="Jobs whose max_price is at least this")
    ] = None,
    price_max: Annotated[
        QueryPrice, Query(description="Jobs whose max_price is at most this")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> FlowJSONResponse:
    filters = {
        "status": status,
        "model_hint": model_hint,
        "requester_id": requester_id,
        "price_min": price_min,
        "price_max": price_max,
    }
    jobs, next_cursor = service.page(session, filters=filters, limit=limit, cursor=cursor)
    reads = views.summaries(session, jobs)
    return respond({"jobs": reads, "count": len(reads), "next_cursor": next_cursor})


@router.get(
    "/jobs/stream",
    name="jobStream",
    summary="Job events as server-sent events, resumable with Last-Event-ID",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": JobStreamEvent,
            "description": "text/event-stream: one event per job event (id: event_id, event: "
            "kind, data: this object); comment lines keep the connection alive",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
def job_stream(
    request: Request,
    session: ReadSessionDep,
    _principal: Reader,
    last_event_id: Annotated[
        str | None,
        Header(description="The id of the last event received: the stream resumes after it"),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="Start after this event id (0: the first event)"),
    ] = None,
    follow: Annotated[
        bool,
        Query(description="false: send the events there are now, then end"),
    ] = True,
    kind: Annotated[
        list[str] | None,
        Query(
            max_length=32,
            description="Send only events of these kinds (repeat the parameter for several: "
            "job.posted, job.awarded, ...); resuming skips the others the same way",
        ),
    ] = None,
    model_hint: Annotated[
        list[Identifier] | None,
        Query(
            max_length=64,
            description="Send only events of jobs with one of these model hints (repeat the "
            "parameter for several)",
        ),
    ] = None,
) -> StreamingResponse:
    position = stream.start_position(session, last_event_id=last_event_id, after=after)
    return StreamingResponse(
        stream.job_events(
            request.app.state.job_feed,
            request.app.state.read_session_factory,
            position,
            follow=follow,
            accepts=stream.filter_of(stream.known_kinds(kind), model_hint),
        ),
        media_type="text/event-stream",
        headers=stream.HEADERS,
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobResponse,
    name="job",
    summary="A job: its terms, state, the bids the caller may see and its timeline",
)
def get_job(job_id: str, session: ReadSessionDep, principal: Reader) -> FlowJSONResponse:
    job = service.find(session, job_id)
    return respond({"job": views.detail(session, principal, job)})


@router.post(
    "/jobs/{job_id}/bids",
    status_code=201,
    response_model=BidResponse,
    name="jobBids",
    summary="Bid on an open job, or revise your bid by bidding again (sealed: no bidder sees "
    "another's price before the award)",
    responses={200: {"model": BidResponse, "description": "The bidder's bid, revised"}},
)
def place_bid(
    job_id: str,
    body: BidCreate,
    work: JobWorkDep,
    clock: ClockDep,
    principal: Seller,
    rules: JobRulesDep,
) -> FlowJSONResponse:
    status, answer = work.run(writes.place_bid(principal, job_id, body, clock.now(), rules))
    return respond(answer, status_code=status)


@router.post(
    "/jobs/{job_id}/bids/{bid_id}/withdraw",
    response_model=BidResponse,
    name="jobBidWithdraw",
    summary="Withdraw your bid while the bid window is open",
)
def withdraw_bid(
    job_id: str, bid_id: str, work: JobWorkDep, clock: ClockDep, principal: Seller
) -> FlowJSONResponse:
    def command(session: Session) -> FlowJSONResponse:
        placed = bidding.withdraw_bid(
            session, principal=principal, job_id=job_id, bid_id=bid_id, now=clock.now()
        )
        return respond(
            {"bid": views.bid_read(placed.bid), "job": views.summary(session, placed.job)}
        )

    return work.run(command)


@router.post(
    "/jobs/{job_id}/award",
    response_model=JobResponse,
    name="jobAward",
    summary="Award your job before its window closes: a bid you name, or the best score",
)
def award_job(
    job_id: str,
    work: JobWorkDep,
    clock: ClockDep,
    principal: Buyer,
    rules: JobRulesDep,
    body: JobAward | None = None,
) -> FlowJSONResponse:
    bid_id = None if body is None else body.bid_id

    def command(session: Session) -> FlowJSONResponse:
        service.award_early(
            session,
            principal=principal,
            job_id=job_id,
            bid_id=bid_id,
            now=clock.now(),
            rules=rules,
        )
        return respond({"job": views.detail(session, principal, service.find(session, job_id))})

    return work.run(command)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobResponse,
    name="jobCancel",
    summary="Cancel your open job: every bid loses and its escrow is released",
)
def cancel_job(
    job_id: str,
    work: JobWorkDep,
    clock: ClockDep,
    principal: Buyer,
    rules: JobRulesDep,
    body: JobCancel | None = None,
) -> FlowJSONResponse:
    reason = "" if body is None else body.reason

    def command(session: Session) -> FlowJSONResponse:
        job = service.cancel(
            session,
            principal=principal,
            job_id=job_id,
            reason=reason,
            now=clock.now(),
            rules=rules,
        )
        return respond({"job": views.detail(session, principal, job)})

    return work.run(command)


@router.get(
    "/jobs/{job_id}/assignment",
    response_model=AssignmentResponse,
    name="jobAssignment",
    summary="The winner's assignment: the full request, the price and the result deadline",
)
def get_assignment(job_id: str, session: ReadSessionDep, principal: Seller) -> FlowJSONResponse:
    job, winner = archive.winners_job(session, principal, job_id)
    return respond({"assignment": archive.assignment_read(job, winner)})


@router.post(
    "/jobs/{job_id}/result",
    status_code=201,
    response_model=ResultResponse,
    name="jobResult",
    summary="Upload the winner's result: archived by its SHA-256, the job completes and the "
    "winner is paid",
    responses={200: {"model": ResultResponse, "description": "The same result again: a replay"}},
)
def submit_result(
    job_id: str,
    body: ResultCreate,
    work: JobWorkDep,
    clock: ClockDep,
    principal: Seller,
    rules: JobRulesDep,
) -> FlowJSONResponse:
    def command(session: Session) -> FlowJSONResponse:
        archived = archive.submit_result(
            session, principal=principal, job_id=job_id, body=body, now=clock.now(), rules=rules
        )
        return respond(
            {
                "result": archive.result_read(session, archived.result),
                "replayed": archived.replayed,
                "job": views.summary(session, archived.job),
            },
            status_code=200 if archived.replayed else 201,
        )

    return work.run(command)


@router.get(
    "/results/{result_hash}",
    response_model=ArchivedResultResponse,
    name="jobResultArchive",
    summary="An archived result by its hash (its job's requester, its winner, auditors)",
)
def get_result(
    result_hash: ResultHashPath, session: ReadSessionDep, principal: Reader
) -> FlowJSONResponse:
    result = archive.visible_result(session, principal, result_hash)
    return respond({"result": archive.result_read(session, result)})
