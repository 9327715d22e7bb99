"""The job board's side of known-answer jobs (``flow_memory.reputation.known_answers``): posting
a probe as a job, at the share of posted jobs ``JobRules.known_answer_share`` sets, and judging
its winner's result against the answer.

**Posting.** After an ordinary job is posted, the board draws: with chance ``share`` it posts
one more job, from an active probe drawn at random, in the same transaction, through
``service.post_job`` like any other (escrow held on the probe's requester's account; an
enforced account short of it posts nothing). Over many posts, probes are that share of the
ordinary jobs. An admin may also post a probe at once (``POST
/inference/known-answers/{probe_id}/post``).

**Judging.** When its result arrives the board, as the requester, gives its verdict at once:
accept when the output meets the answer, reject otherwise (``judging.open_judging``). From
there the job runs as any requester-judged job: accepted, the winner is paid and a
``known_answer_pass`` recorded; rejected, the winner may dispute within the dispute window, and
a rejection that stands records a ``known_answer_fail`` and slashes its bid stake."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.jobs import events, judging, repository, service
from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import JobCreate
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import InsufficientCredit
from flow_memory.kit.scopes import BUY
from flow_memory.reputation import known_answers, verdicts
from flow_memory.reputation.models import KnownAnswerProbe, Validation
from flow_memory.reputation.schemas import VerdictCreate

log = logging.getLogger("flow_memory.jobs.known_answers")

_POSTING = "known_answer_posting"  # session.info: a probe is being posted (no probe follows it)
_DRAWS = random.SystemRandom()
# What the board's verdict says: the same words whatever the job, so they tell nothing.
PASSED_REASON = "the result meets the request"
FAILED_REASON = "the result does not meet the request"


def follow_post(
    session: Session,
    *,
    job: Job,
    now: datetime,
    rules: JobRules,
    rng: random.Random | None = None,
) -> Job | None:
    """After ``job`` (an ordinary one) was posted: with chance ``rules.known_answer_share``,
    post a known-answer job drawn from the active probes. The job posted, or None."""
    if rules.known_answer_share <= 0 or session.info.get(_POSTING):
        return None
    draws = rng or _DRAWS
    if draws.random() >= rules.known_answer_share:
        return None
    probe = known_answers.draw(session, draws)
    if probe is None:
        return None
    return post(session, probe, now=now, rules=rules)


def post(
    session: Session,
    probe: KnownAnswerProbe,
    *,
    now: datetime,
    rules: JobRules,
    strict: bool = False,
) -> Job | None:
    """Post a job from ``probe``, as its requester; when the requester's enforced account
    cannot cover its escrow, None (logged; nothing is posted), or 402 when ``strict``."""
    body = JobCreate.model_validate(probe.job)
    as_requester = Principal(
        key_id="known-answers", owner_id=probe.requester_id, scopes=frozenset({BUY})
    )
    session.info[_POSTING] = True
    try:
        with session.begin_nested():
            posted = service.post_job(
                session, principal=as_requester, body=body, now=now, rules=rules
            )
    except InsufficientCredit:
        if strict:
            raise
        log.warning(
            "known-answer job %s not posted: its requester's credit is short", probe.probe_id
        )
        return None
    finally:
        session.info.pop(_POSTING, None)
    known_answers.note_posted(session, probe, job_id=posted.job.job_id, now=now)
    return posted.job


def output_of(content: str) -> str:
    """The output of an archived result (its canonical JSON document)."""
    document = json.loads(content)
    return str(document.get("output", ""))


def judge(
    session: Session,
    job: Job,
    winner: JobBid,
    probe: KnownAnswerProbe,
    *,
    now: datetime,
    rules: JobRules,
) -> Validation:
    """Judge a known-answer job's result as its requester would: a requester-mode validation
    and the board's verdict in it at once, accept when the output meets the known answer."""
    record = verdicts.open_validation(
        session,
        job_id=job.job_id,
        mode=verdicts.REQUESTER,
        requester_id=job.requester_id,
        winner_id=winner.bidder_id,
        value=winner.price,
        validators_wanted=0,
        fee=Decimal(job.validation["validator_fee"]),
        now=now,
        # The verdict comes now; a window of 0 would refuse it as late.
        review_seconds=max(rules.review_seconds, 1),
        exclusion_threshold=rules.exclusion_threshold,
    )
    payload = {"mode": record.mode, "validators": 0, "due_at": record.due_at}
    events.record(session, job, events.VALIDATION_OPENED, payload, now=now)
    result = repository.result_of_job(session, job.job_id)
    assert result is not None
    output = output_of(result.content)
    passed = known_answers.matches(output, match=probe.match, expected=probe.expected)
    known_answers.note_judged(session, job.job_id, passed=passed, now=now)
    body = VerdictCreate(
        decision="accept" if passed else "reject",
        score=Decimal(1) if passed else Decimal(0),
        reason=PASSED_REASON if passed else FAILED_REASON,
    )
    as_requester = Principal(
        key_id="known-answers", owner_id=job.requester_id, scopes=frozenset({BUY})
    )
    judging.record_verdict(
        session, principal=as_requester, job_id=job.job_id, body=body, now=now, rules=rules
    )
    return record
