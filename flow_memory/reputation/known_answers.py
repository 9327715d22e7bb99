"""Known-answer jobs: an admin registers a job whose answer is known (a *probe*); the job board
posts it among ordinary jobs (``flow_memory.jobs.known_answers``) and judges its winner's
result against the answer (``flow_memory.jobs.judging``). A result that matches counts as a
``known_answer_pass``; one that does not as a ``known_answer_fail``, a bad completion (the
winner's bid stake slashed as for any). Bidders cannot tell a probe from another job before
the award: it is posted through the same route with the body the admin registered (same
shape, same visibility, the same events), as a requester identity the admin chooses, which
should be one that posts ordinary jobs too. Here: registering, reading and retiring probes,
the check, and which jobs are probes."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.reputation.models import KnownAnswerJob, KnownAnswerProbe
from flow_memory.reputation.schemas import KnownAnswerCreate

ACTIVE = "active"
RETIRED = "retired"
PASS = "pass"
FAIL = "fail"


def normalized(text: str) -> str:
    """Text as the check compares it: runs of whitespace as one space, case ignored."""
    return " ".join(text.split()).casefold()


def matches(output: str, *, match: str, expected: str) -> bool:
    """Whether ``output`` meets the known answer: is it (``exact``) or holds it (``contains``)."""
    got, want = normalized(output), normalized(expected)
    return got == want if match == "exact" else want in got


def register(
    session: Session, *, principal: Principal, body: KnownAnswerCreate, now: datetime
) -> KnownAnswerProbe:
    """Register a probe (admins): the job is posted as its ``requester_id`` (the key's owner
    when left out), whose account holds each posting's escrow."""
    ensure_may_act_as(principal, body.job.requester_id, field="job.requester_id")
    if body.job.expires_at is not None:
        raise Invalid(
            "a known-answer job is posted again and again: it cannot name a moment to expire",
            field="job.expires_at",
            hint="leave expires_at out: each posting expires when its bid window closes",
        )
    probe = KnownAnswerProbe(
        probe_id=new_id("probe"),
        requester_id=body.job.requester_id or principal.owner_id,
        job=body.job.model_dump(mode="json", exclude={"requester_id", "expires_at"}),
        match=body.answer.match,
        expected=body.answer.expected,
        status=ACTIVE,
        posted=0,
        passed=0,
        failed=0,
        created_by=principal.owner_id,
        created_at=now,
        retired_at=None,
    )
    session.add(probe)
    session.flush()
    return probe


def probe(session: Session, probe_id: str, *, for_update: bool = False) -> KnownAnswerProbe:
    query = select(KnownAnswerProbe).where(KnownAnswerProbe.probe_id == probe_id)
    found = session.scalars(query.with_for_update() if for_update else query).first()
    if found is None:
        raise NotFound("known-answer job not found", field="probe_id")
    return found


def page(session: Session, *, status: str | None, limit: int) -> list[KnownAnswerProbe]:
    """Probes, newest first."""
    query = select(KnownAnswerProbe)
    if status is not None:
        query = query.where(KnownAnswerProbe.status == status)
    order = (KnownAnswerProbe.created_at.desc(), KnownAnswerProbe.probe_id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def retire(session: Session, probe_id: str, *, now: datetime) -> KnownAnswerProbe:
    """Post a probe no more (its jobs under way are judged as before); twice changes nothing."""
    found = probe(session, probe_id, for_update=True)
    if found.status == ACTIVE:
        found.status = RETIRED
        found.retired_at = now
        session.flush()
    return found


def draw(session: Session, rng: random.Random) -> KnownAnswerProbe | None:
    """An active probe drawn uniformly at random (None: none is registered)."""
    count = session.scalar(
        select(func.count()).select_from(KnownAnswerProbe).where(KnownAnswerProbe.status == ACTIVE)
    )
    if not count:
        return None
    query = (
        select(KnownAnswerProbe)
        .where(KnownAnswerProbe.status == ACTIVE)
        .order_by(KnownAnswerProbe.probe_id)
        .offset(rng.randrange(int(count)))
        .limit(1)
    )
    return session.scalars(query).first()


def note_posted(session: Session, found: KnownAnswerProbe, *, job_id: str, now: datetime) -> None:
    """The board posted ``job_id`` from ``found``."""
    session.add(KnownAnswerJob(job_id=job_id, probe_id=found.probe_id, posted_at=now))
    found.posted += 1
    session.flush()


def of_job(session: Session, job_id: str) -> KnownAnswerProbe | None:
    """The probe the job was posted from (None: an ordinary job)."""
    query = (
        select(KnownAnswerProbe)
        .join(KnownAnswerJob, KnownAnswerJob.probe_id == KnownAnswerProbe.probe_id)
        .where(KnownAnswerJob.job_id == job_id)
    )
    return session.scalars(query).first()


def is_probe_job(session: Session, job_id: str) -> bool:
    return session.get(KnownAnswerJob, job_id) is not None


def note_judged(session: Session, job_id: str, *, passed: bool, now: datetime) -> None:
    """The job's result was checked against its answer (once: a replay changes nothing)."""
    posted = session.get(KnownAnswerJob, job_id, with_for_update=True)
    if posted is None or posted.outcome is not None:
        return
    posted.outcome = PASS if passed else FAIL
    posted.judged_at = now
    found = probe(session, posted.probe_id, for_update=True)
    if passed:
        found.passed += 1
    else:
        found.failed += 1
    session.flush()


def probe_read(found: KnownAnswerProbe) -> dict[str, Any]:
    return {
        "probe_id": found.probe_id,
        "requester_id": found.requester_id,
        "job": found.job,
        "answer": {"match": found.match, "expected": found.expected},
        "status": found.status,
        "posted": found.posted,
        "passed": found.passed,
        "failed": found.failed,
        "created_by": found.created_by,
        "created_at": found.created_at,
        "retired_at": found.retired_at,
    }
