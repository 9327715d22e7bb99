"""Reputation tables: every recorded outcome, each identity's decayed record per role, stakes
(bidders' and validators'), validators who opted in, and the slashes taken from stakes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, Money, UTCDateTime


class ReputationOutcome(Base):
    """One outcome of one identity's work (a completion, a no-show, a verdict …), never changed
    or deleted: an identity's history. ``operator_id`` names the operator a bound agent's
    outcome also counts for. One outcome of a kind per identity and job, so a replay records
    nothing twice."""

    __tablename__ = "reputation_outcomes"
    __table_args__ = (
        UniqueConstraint("job_id", "identity_id", "kind"),
        Index("ix_reputation_outcomes_identity", "identity_id", "role", "recorded_at"),
        Index("ix_reputation_outcomes_operator", "operator_id", "role", "recorded_at"),
    )

    outcome_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    identity_id: Mapped[str] = mapped_column(String(128))
    operator_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    role: Mapped[str] = mapped_column(String(16))  # bidder | validator
    kind: Mapped[str] = mapped_column(String(24))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    value: Mapped[Decimal] = mapped_column(Money())  # the job's value in credits
    good: Mapped[Decimal] = mapped_column(Money())  # what it added, undecayed
    bad: Mapped[Decimal] = mapped_column(Money())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReputationRecord(Base):
    """An identity's record in one role: the decayed sums of its outcomes as of the latest
    (``flow_memory.reputation.domain``), its earned-capacity points and its outcome counts.
    An operator's record holds its own outcomes and its bound agents'."""

    __tablename__ = "reputation_records"

    identity_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    good: Mapped[Decimal] = mapped_column(Money())
    bad: Mapped[Decimal] = mapped_column(Money())
    latest_at: Mapped[datetime] = mapped_column(UTCDateTime())
    points: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    outcomes: Mapped[int] = mapped_column(BigInteger)


class ReputationStake(Base):
    """Credits an identity stakes, as a ledger hold on its paying account: to bid (``bid``) or
    to validate (``validate``). Slashing pays part of it to a wronged requester and holds the
    rest again (``hold_id`` is the hold now in force)."""

    __tablename__ = "reputation_stakes"
    __table_args__ = (Index("ix_reputation_stakes_identity", "identity_id", "purpose", "status"),)

    stake_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    identity_id: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(8))  # bid | validate
    payer_id: Mapped[str] = mapped_column(String(128))  # whose account holds it
    placed_by: Mapped[str] = mapped_column(String(128))  # the owner of the key that staked
    hold_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Money())  # staked now
    slashed: Mapped[Decimal] = mapped_column(Money())  # taken from it so far
    slashes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # active | withdrawn
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReputationSlash(Base):
    """A share of a stake paid to a requester for a bad completion or a no-show: one per
    stake and job, so the job board may call twice without taking twice."""

    __tablename__ = "reputation_slashes"
    __table_args__ = (
        UniqueConstraint("stake_id", "job_id"),
        Index("ix_reputation_slashes_identity", "identity_id", "created_at"),
    )

    slash_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stake_id: Mapped[str] = mapped_column(String(40))
    identity_id: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str] = mapped_column(String(40))
    payee_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(24))
    amount: Mapped[Decimal] = mapped_column(Money())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Validator(Base):
    """An identity that opted in to judge results, with its ``validate`` stake. ``owner_id``
    is who stands behind it (a bound agent's operator, a free agent's creator), so a draw
    never picks a validator of the same owner as the requester or the winner."""

    __tablename__ = "reputation_validators"
    __table_args__ = (Index("ix_reputation_validators_status", "status", "joined_at"),)

    identity_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128))
    stake_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # active | withdrawn
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Validation(Base):
    """How a job's result is being judged: by its requester, one drawn validator or several,
    in rounds (0 first; a dispute is round 1), and what was decided. The job board opens it
    when a result arrives and acts on each decision."""

    __tablename__ = "validations"
    __table_args__ = (Index("ix_validations_due", "status", "due_at"),)

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(24))  # requester | random_validator | consensus
    requester_id: Mapped[str] = mapped_column(String(128))
    winner_id: Mapped[str] = mapped_column(String(128))
    value: Mapped[Decimal] = mapped_column(Money())  # the winning price
    validators: Mapped[int] = mapped_column(Integer)  # drawn a round
    fee: Mapped[Decimal] = mapped_column(Money())  # each validator's, from the job's escrow
    # open | accepted | rejected | disputed | overturned (dispute won) | upheld (dispute lost)
    status: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer)
    score: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())  # verdicts (or a dispute) by then
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ValidationDraw(Base):
    """A validator drawn to judge a job, in a round: pending until its verdict (``answered``)
    or its time runs out (``missed``). A validator is drawn at most once per job."""

    __tablename__ = "validation_draws"
    __table_args__ = (UniqueConstraint("job_id", "validator_id"),)

    draw_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40))
    validator_id: Mapped[str] = mapped_column(String(128))
    round: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending | answered | missed
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ValidationVerdict(Base):
    """One judge's verdict on a job's result: accept or reject, a score and a reason."""

    __tablename__ = "validation_verdicts"
    __table_args__ = (
        UniqueConstraint("job_id", "judge_id", "round"),
        Index("ix_validation_verdicts_job", "job_id", "created_at"),
    )

    verdict_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40))
    judge_id: Mapped[str] = mapped_column(String(128))
    judge_role: Mapped[str] = mapped_column(String(16))  # requester | validator
    round: Mapped[int] = mapped_column(Integer)
    accept: Mapped[bool] = mapped_column()
    score: Mapped[Decimal] = mapped_column(Money())
    reason: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ValidationDispute(Base):
    """The winner's dispute of a rejection (one per job), decided by fresh validators."""

    __tablename__ = "validation_disputes"

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    winner_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))  # open | won | lost
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class KnownAnswerProbe(Base):
    """A job whose answer is known, registered by an admin: the board posts it, as
    ``requester_id``, among ordinary jobs (``flow_memory.jobs.known_answers``), and judges
    the winner's result against ``expected`` (``match``: ``exact`` or ``contains``)."""

    __tablename__ = "known_answer_probes"
    __table_args__ = (Index("ix_known_answer_probes_status", "status", "probe_id"),)

    probe_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(128))
    job: Mapped[dict[str, Any]] = mapped_column(JSONDocument())  # the job's body, as posted
    match: Mapped[str] = mapped_column(String(16))
    expected: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))  # active | retired
    posted: Mapped[int] = mapped_column(Integer)
    passed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class KnownAnswerJob(Base):
    """A job the board posted from a probe, and how its winner did (None until judged)."""

    __tablename__ = "known_answer_jobs"
    __table_args__ = (Index("ix_known_answer_jobs_probe", "probe_id", "posted_at"),)

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    probe_id: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(8), nullable=True)  # pass | fail
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    judged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
