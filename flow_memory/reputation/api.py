"""Routes of reputation: an identity's page (score, components, earned capacity, history),
bidders' stakes, validators who opt in with a stake, the verdicts and disputes that judge
a job's result, and the known-answer jobs admins register."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from flow_memory.jobs import judging
from flow_memory.jobs import known_answers as board_known_answers
from flow_memory.jobs.work import JobRulesDep, JobWorkDep
from flow_memory.kit.cursors import CURSOR_PATTERN
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_scopes,
)
from flow_memory.kit.errors import Conflict
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, ErrorEnvelope, Identifier
from flow_memory.kit.scopes import ADMIN, BUY, READ, SELL, VALIDATE
from flow_memory.reputation import (
    disputes,
    known_answers,
    repository,
    service,
    stakes,
    validation_page,
    validators,
)
from flow_memory.reputation.schemas import (
    DisputeCreate,
    DisputeResponse,
    KnownAnswerCreate,
    KnownAnswerListResponse,
    KnownAnswerPosted,
    KnownAnswerResponse,
    ReputationResponse,
    StakeCreate,
    StakeListResponse,
    StakeResponse,
    ValidationResponse,
    ValidatorCreate,
    ValidatorListResponse,
    ValidatorResponse,
    VerdictCreate,
    VerdictResponse,
)

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference",
    tags=["reputation"],
    responses=ERROR_RESPONSES,
)

Reader = Annotated[Principal, Depends(require_scopes(READ))]
Seller = Annotated[Principal, Depends(require_scopes(SELL))]
Judge = Annotated[Principal, Depends(require_scopes(VALIDATE))]
VerdictJudge = Annotated[Principal, Depends(require_scopes(BUY, VALIDATE))]
Admin = Annotated[Principal, Depends(require_scopes(ADMIN))]
INSUFFICIENT: dict[int | str, dict[str, Any]] = {
    402: {
        "model": ErrorEnvelope,
        "description": "The paying account is enforced and cannot cover the stake "
        "(insufficient_credit)",
    }
}
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="next_cursor of the previous page, unchanged; any other is refused (422 "
        "invalid_cursor)",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]


@router.get(
    "/reputation/{identity_id}",
    response_model=ReputationResponse,
    name="reputation",
    summary="An identity's reputation: score and components as bidder and as validator, the "
    "jobs it has earned to hold at once, and its outcomes newest first (public: every bidder's "
    "record is published)",
)
def get_reputation(
    identity_id: Identifier,
    session: ReadSessionDep,
    settings: SettingsDep,
    _principal: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> FlowJSONResponse:
    read = service.reputation_read(
        session,
        identity_id=identity_id,
        stake_per_slot=settings.stake_per_job_slot,
        half_life_days=settings.reputation_half_life_days,
        limit=limit,
        cursor=cursor,
    )
    return respond({"reputation": read})


# -- stakes -----------------------------------------------------------------------------------


@router.post(
    "/stakes",
    status_code=201,
    response_model=StakeResponse,
    name="stakes",
    summary="Stake credits to bid: a ledger hold on the identity's paying account (each job "
    "held at once needs its share); slashed to the requester after a bad completion or a no-show",
    responses=INSUFFICIENT,
)
def place_stake(
    body: StakeCreate, session: SessionDep, clock: ClockDep, principal: Seller
) -> FlowJSONResponse:
    stake = stakes.place_stake(
        session,
        principal=principal,
        identity_id=body.identity_id,
        amount=body.amount,
        purpose=stakes.BID,
        now=clock.now(),
    )
    return respond({"stake": stakes.stake_read(stake)}, status_code=201)


@router.get(
    "/stakes",
    response_model=StakeListResponse,
    name="stakes",
    summary="The stakes of an identity you act as (auditors: anyone's), newest first",
)
def list_stakes(
    session: ReadSessionDep,
    principal: Reader,
    identity_id: Annotated[
        Identifier | None, Query(description="Whose stakes (default: the key's owner)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FlowJSONResponse:
    rows = stakes.stakes_page(session, principal=principal, identity_id=identity_id, limit=limit)
    return respond({"stakes": [stakes.stake_read(s) for s in rows], "count": len(rows)})


@router.delete(
    "/stakes/{stake_id}",
    response_model=StakeResponse,
    name="stake",
    summary="Withdraw a bid stake: its hold is released (refused while the jobs held need it)",
)
def withdraw_stake(
    stake_id: Identifier,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Seller,
) -> FlowJSONResponse:
    stake = stakes.withdraw_stake(
        session,
        principal=principal,
        stake_id=stake_id,
        stake_per_slot=settings.stake_per_job_slot,
        now=clock.now(),
    )
    return respond({"stake": stakes.stake_read(stake)})


# -- validators -------------------------------------------------------------------------------


@router.post(
    "/validators",
    status_code=201,
    response_model=ValidatorResponse,
    name="validators",
    summary="Opt in as a validator with a stake (a ledger hold on the identity's paying "
    "account): drawn at random, weighted by validator standing and stake, to judge results",
    responses=INSUFFICIENT,
)
def join_validators(
    body: ValidatorCreate,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Judge,
) -> FlowJSONResponse:
    joined = validators.join(
        session,
        principal=principal,
        identity_id=body.identity_id,
        stake=body.stake,
        exclusion_threshold=settings.reputation_exclusion_threshold,
        now=clock.now(),
    )
    read = validators.validator_reads(session, [joined])[0]
    return respond({"validator": read}, status_code=201)


@router.get(
    "/validators",
    response_model=ValidatorListResponse,
    name="validators",
    summary="Validators who opted in, with their standing and stake (public)",
)
def list_validators(
    session: ReadSessionDep,
    _principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FlowJSONResponse:
    rows = repository.active_validators(session, limit=limit)
    reads = validators.validator_reads(session, rows)
    return respond({"validators": reads, "count": len(reads)})


@router.post(
    "/validators/{identity_id}/withdraw",
    response_model=ValidatorResponse,
    name="validatorWithdraw",
    summary="Stop validating: the validator's stake is released",
)
def withdraw_validator(
    identity_id: Identifier, session: SessionDep, clock: ClockDep, principal: Judge
) -> FlowJSONResponse:
    found = validators.withdraw(
        session, principal=principal, identity_id=identity_id, now=clock.now()
    )
    return respond({"validator": validators.validator_reads(session, [found])[0]})


# -- verdicts and disputes --------------------------------------------------------------------


@router.post(
    "/jobs/{job_id}/verdicts",
    status_code=201,
    response_model=VerdictResponse,
    name="jobVerdicts",
    summary="Judge a job's result: accept or reject, a score from 0 to 1 and a reason (the "
    "requester in requester mode, otherwise a validator drawn for the job, before the due time)",
)
def post_verdict(
    job_id: Identifier,
    body: VerdictCreate,
    session: SessionDep,
    clock: ClockDep,
    rules: JobRulesDep,
    principal: VerdictJudge,
) -> FlowJSONResponse:
    recorded = judging.record_verdict(
        session, principal=principal, job_id=job_id, body=body, now=clock.now(), rules=rules
    )
    return respond(
        {
            "verdict": validation_page.verdict_read(recorded.verdict),
            "validation": validation_page.validation_read(session, recorded.validation),
        },
        status_code=201,
    )


@router.post(
    "/jobs/{job_id}/disputes",
    status_code=201,
    response_model=DisputeResponse,
    name="jobDisputes",
    summary="Dispute the rejection of your result within the dispute window: fresh validators "
    "decide by consensus, and the side that loses bears their fees",
)
def post_dispute(
    job_id: Identifier,
    body: DisputeCreate,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Seller,
) -> FlowJSONResponse:
    now = clock.now()
    dispute, record = disputes.open_dispute(
        session,
        principal=principal,
        job_id=job_id,
        reason=body.reason,
        now=now,
        review_seconds=settings.validator_answer_seconds,
        exclusion_threshold=settings.reputation_exclusion_threshold,
    )
    judging.noted_dispute(session, record, now=now)
    return respond(
        {
            "dispute": validation_page.dispute_read(dispute),
            "validation": validation_page.validation_read(session, record),
        },
        status_code=201,
    )


@router.get(
    "/jobs/{job_id}/validation",
    response_model=ValidationResponse,
    name="jobValidation",
    summary="How a job's result is being judged: the mode and state, the validators drawn, "
    "every verdict with its score and reason, the decision, the dispute and the fees paid (the "
    "requester, the winner, the drawn validators, admins and auditors; absent to others)",
)
def get_validation(
    job_id: Identifier, session: ReadSessionDep, principal: Reader
) -> FlowJSONResponse:
    record = validation_page.visible_validation(session, principal, job_id)
    return respond({"validation": validation_page.validation_detail(session, record)})


# -- known-answer jobs ------------------------------------------------------------------------


@router.post(
    "/known-answers",
    status_code=201,
    response_model=KnownAnswerResponse,
    name="knownAnswers",
    summary="Register a known-answer job (admins): the board posts it among ordinary jobs, at "
    "the share known_answer_share sets, and a result that misses the answer is a bad completion",
)
def register_known_answer(
    body: KnownAnswerCreate, session: SessionDep, clock: ClockDep, principal: Admin
) -> FlowJSONResponse:
    probe = known_answers.register(session, principal=principal, body=body, now=clock.now())
    return respond({"known_answer": known_answers.probe_read(probe)}, status_code=201)


@router.get(
    "/known-answers",
    response_model=KnownAnswerListResponse,
    name="knownAnswers",
    summary="The known-answer jobs registered (admins), newest first, with how often each was "
    "posted, passed and failed",
)
def list_known_answers(
    session: ReadSessionDep,
    _principal: Admin,
    status: Annotated[Literal["active", "retired"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FlowJSONResponse:
    rows = known_answers.page(session, status=status, limit=limit)
    reads = [known_answers.probe_read(p) for p in rows]
    return respond({"known_answers": reads, "count": len(reads)})


@router.post(
    "/known-answers/{probe_id}/post",
    status_code=201,
    response_model=KnownAnswerPosted,
    name="knownAnswerPost",
    summary="Post a job from a known-answer job now (admins), as the board does at its share",
    responses=INSUFFICIENT,
)
def post_known_answer(
    probe_id: Identifier, work: JobWorkDep, clock: ClockDep, rules: JobRulesDep, _principal: Admin
) -> FlowJSONResponse:
    def command(session: Session) -> FlowJSONResponse:
        probe = known_answers.probe(session, probe_id, for_update=True)
        if probe.status != known_answers.ACTIVE:
            raise Conflict(
                "a retired known-answer job is posted no more",
                code="known_answer_retired",
                field="probe_id",
            )
        job = board_known_answers.post(session, probe, now=clock.now(), rules=rules, strict=True)
        assert job is not None
        read = known_answers.probe_read(probe)
        return respond({"known_answer": read, "job_id": job.job_id}, status_code=201)

    return work.run(command)


@router.post(
    "/known-answers/{probe_id}/retire",
    response_model=KnownAnswerResponse,
    name="knownAnswerRetire",
    summary="Retire a known-answer job (admins): the board posts it no more",
)
def retire_known_answer(
    probe_id: Identifier, session: SessionDep, clock: ClockDep, _principal: Admin
) -> FlowJSONResponse:
    probe = known_answers.retire(session, probe_id, now=clock.now())
    return respond({"known_answer": known_answers.probe_read(probe)})
