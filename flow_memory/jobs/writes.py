"""The job board's hottest writes, posting a job and bidding, as the commands both their routes
(``jobs.api``) and the edge (``jobs.edge``) run: each gives the status and the payload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from flow_memory.jobs import bidding, service, views
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import BidCreate, JobCreate
from flow_memory.kit.deps import Principal
from flow_memory.kit.edge import Answer


def post_job(
    principal: Principal, body: JobCreate, now: datetime, rules: JobRules
) -> Callable[[Session], Answer]:
    def command(session: Session) -> Answer:
        posted = service.post_job(session, principal=principal, body=body, now=now, rules=rules)
        answer = views.detail(session, principal, posted.job, bids=[], timeline=[posted.event])
        return 201, {"job": answer}

    return command


def place_bid(
    principal: Principal, job_id: str, body: BidCreate, now: datetime, rules: JobRules
) -> Callable[[Session], Answer]:
    def command(session: Session) -> Answer:
        placed = bidding.place_bid(
            session, principal=principal, job_id=job_id, body=body, now=now, rules=rules
        )
        answer = {
            "bid": views.bid_read(placed.bid),
            "job": views.summary(session, placed.job, placed.bids),
        }
        return (201 if placed.created else 200), answer

    return command
