"""The winner's side of a job: its assignment (the full request), and the result it uploads,
archived under the SHA-256 of its canonical encoding (``digest``), never changed after.

Uploading opens the result's judging by the job's validation mode (``judging``): the job
waits, ``submitted``, for the requester's verdict or the drawn validators' (with a review
window of 0 the requester's silence accepts at once, and the job completes in the same
transaction); the bidder is recorded ``late`` past the time its bid promised. Results never
enter logs, events or usage exports: events carry only their hash."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.jobs import (
    checks,
    digest,
    domain,
    events,
    judging,
    outcomes,
    repository,
    service,
    views,
)
from flow_memory.jobs.models import Job, JobBid, JobResult
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import ResultCreate
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, NotFound
from flow_memory.kit.scopes import AUDIT

ENCODING = "flow_memory.canonical_json.v1"


@dataclass(frozen=True)
class Archived:
    result: JobResult
    job: Job
    replayed: bool


def winners_job(
    session: Session, principal: Principal, job_id: str, *, for_update: bool = False
) -> tuple[Job, JobBid]:
    """The job and its winning bid, when the caller acts for the winner. A job not yet
    awarded is 409; the assignment of anyone else's award is absent (404)."""
    job = service.find(session, job_id, for_update=for_update)
    if job.winning_bid_id is None:
        raise Conflict(
            f"the job is {job.status} and has not been awarded",
            code="job_not_awarded",
            field="job_id",
            hint="the winner learns of its award from the job.awarded event or GET the job",
        )
    winner = repository.bid(session, job.winning_bid_id)
    assert winner is not None
    if not principal.may_act_as(winner.bidder_id):
        raise NotFound("no assignment of this job for this key", field="job_id")
    return job, winner


def assignment_read(job: Job, winner: JobBid) -> dict[str, Any]:
    """What the winner needs to run the job: the request in full, the price and deadline."""
    award = views.award_read(job, winner)
    request = views.request_read(job, reveal=True)
    request.pop("size")
    return {
        "job_id": job.job_id,
        "status": job.status,
        "bid_id": winner.bid_id,
        "bidder_id": winner.bidder_id,
        "provider_id": winner.provider_id,
        "model": winner.model,
        "price": winner.price,
        "awarded_at": award["awarded_at"],
        "result_due_at": award["result_due_at"],
        "request": request,
    }


def submit_result(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    body: ResultCreate,
    now: datetime,
    rules: JobRules,
) -> Archived:
    """Archive the winner's result and open its judging. The same content again is answered
    as it was (a replay); other content for a job that has a result is 409."""
    job, winner = winners_job(session, principal, job_id, for_update=True)
    document = result_document(job.job_id, body)
    content = digest.canonical_bytes(document)
    result_hash = digest.result_hash(document)
    if job.result_hash is not None:
        archived = repository.result_of_job(session, job.job_id)
        assert archived is not None
        if archived.result_hash != result_hash:
            raise Conflict(
                "a different result was archived for this job; results never change",
                code="result_conflict",
                field="output",
                hint=f"the archived result is GET /inference/results/{archived.result_hash}",
            )
        return Archived(archived, job, replayed=True)
    if job.status != domain.AWARDED:
        raise Conflict(
            f"the job is {job.status}: it takes no result", code="job_not_awarded", field="job_id"
        )
    assert job.result_due_at is not None
    if now >= job.result_due_at:
        raise Conflict(
            "the result's deadline has passed",
            code="result_deadline_passed",
            field="job_id",
            hint="the job ends expired_no_show (or goes to the runner-up)",
        )
    result = JobResult(
        result_hash=result_hash,
        job_id=job.job_id,
        bid_id=winner.bid_id,
        bidder_id=winner.bidder_id,
        content=content.decode("utf-8"),
        size_bytes=len(content),
        created_at=now,
    )
    session.add(result)
    domain.check_transition(job.status, domain.SUBMITTED)
    job.status = domain.SUBMITTED
    job.result_hash = result_hash
    job.submitted_at = job.updated_at = now
    session.flush()
    events.record(
        session,
        job,
        events.SUBMITTED,
        {"bid_id": winner.bid_id, "bidder_id": winner.bidder_id, "result_hash": result_hash},
        now=now,
    )
    judging.open_judging(session, job, winner, now=now, rules=rules)
    # After the escrow's ledger rows: records are locked after ledger rows everywhere.
    outcomes.delivered(session, job, winner, now=now, rules=rules)
    return Archived(result, job, replayed=False)


def result_document(job_id: str, body: ResultCreate) -> dict[str, Any]:
    """What a result's hash covers (see ``digest``)."""
    return {
        "job_id": job_id,
        "model": body.model,
        "output": body.output,
        "usage": body.usage.model_dump(exclude_none=True),
        "timings": body.timings.model_dump(exclude_none=True),
    }


def visible_result(session: Session, principal: Principal, result_hash: str) -> JobResult:
    """A result its job's requester, its winner, admins and auditors may read; absent to
    anyone else."""
    result = repository.result(session, result_hash)
    job = None if result is None else repository.job(session, result.job_id)
    if result is None or job is None:
        raise NotFound("result not found", field="result_hash")
    if not (
        views.acts_for_requester(principal, job)
        or principal.may_act_as(result.bidder_id)
        or principal.is_admin
        or AUDIT in principal.scopes
    ):
        raise NotFound("result not found", field="result_hash")
    return result


def result_read(session: Session, result: JobResult) -> dict[str, Any]:
    """A result as answered, with its automatic checks (``flow_memory.jobs.checks``)."""
    document = json.loads(result.content, parse_float=Decimal)
    job = session.get(Job, result.job_id)
    winner = session.get(JobBid, result.bid_id)
    assert job is not None and winner is not None
    return {
        "result_hash": result.result_hash,
        "encoding": ENCODING,
        "job_id": result.job_id,
        "bid_id": result.bid_id,
        "bidder_id": result.bidder_id,
        "model": document["model"],
        "output": document["output"],
        "usage": document["usage"],
        "timings": document["timings"],
        "size_bytes": result.size_bytes,
        "created_at": result.created_at,
        "checks": checks.result_checks(job, winner, document, arrived_at=result.created_at),
    }
