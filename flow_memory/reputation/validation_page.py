"""A job's validation as those concerned read it (``GET /inference/jobs/{job_id}/validation``):
its mode and state, the validators drawn, every verdict with its score and reason, the
decision, the dispute, and the fees paid once it ended. The requester, the winner, the drawn
validators, admins and auditors may read it; to anyone else it is absent. Also the shorter
reads the verdict and dispute routes answer with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import NotFound
from flow_memory.kit.scopes import AUDIT
from flow_memory.reputation import repository, settlement
from flow_memory.reputation.models import Validation, ValidationDispute, ValidationVerdict


def visible_validation(session: Session, principal: Principal, job_id: str) -> Validation:
    """The job's validation, if the caller may read it; 404 otherwise (or when none is open)."""
    record = repository.validation(session, job_id)
    if record is None or not (
        principal.is_admin
        or AUDIT in principal.scopes
        or principal.may_act_as(record.requester_id)
        or principal.may_act_as(record.winner_id)
        or any(
            principal.may_act_as(d.validator_id) for d in repository.draws(session, job_id, None)
        )
    ):
        raise NotFound("no validation of this job for this key", field="job_id")
    return record


def validation_detail(session: Session, record: Validation) -> dict[str, Any]:
    draws = repository.draws(session, record.job_id, None)
    answered = [d for d in draws if d.status == "answered"]
    ended = record.status in settlement.ENDED
    paid = settlement.split(
        record.status,
        winner_id=record.winner_id,
        price=record.value,
        fee=record.fee,
        judged_result=[d.validator_id for d in answered if d.round == 0],
        judged_dispute=[d.validator_id for d in answered if d.round == 1],
    )
    dispute = session.get(ValidationDispute, record.job_id)
    return {
        "job_id": record.job_id,
        "mode": record.mode,
        "status": record.status,
        "round": record.round,
        "requester_id": record.requester_id,
        "winner_id": record.winner_id,
        "price": record.value,
        "validator_fee": record.fee,
        "opened_at": record.opened_at,
        "due_at": record.due_at,
        "decision": None if record.status == "open" else _decision(record),
        "drawn": [
            {
                "validator_id": d.validator_id,
                "round": d.round,
                "status": d.status,
                "drawn_at": d.drawn_at,
                "due_at": d.due_at,
            }
            for d in draws
        ],
        "verdicts": [
            verdict_read(v)
            for round_ in range(record.round + 1)
            for v in repository.verdicts(session, record.job_id, round_)
        ],
        "dispute": None if dispute is None else dispute_read(dispute),
        "fees": _fee_lines(paid, answered) if ended else [],
        "settled": ended,
    }


def _decision(record: Validation) -> dict[str, Any]:
    # While a dispute runs, the decision shown is the rejection it contests.
    status = "rejected" if record.status == "disputed" else record.status
    return {"status": status, "score": record.score, "decided_at": record.decided_at}


def _fee_lines(paid: settlement.Settlement, answered: list[Any]) -> list[dict[str, Any]]:
    rounds = {d.validator_id: d.round for d in answered}
    lines: list[dict[str, Any]] = []
    for side, found in (("escrow", paid.from_escrow), ("winner", paid.winner_pays)):
        for payee_id, amount in sorted(found.items()):
            if payee_id not in rounds:
                continue  # the winner's price, not a fee
            lines.append(_line(payee_id, amount, rounds[payee_id], side))
    return lines


def _line(payee_id: str, amount: Decimal, round_: int, side: str) -> dict[str, Any]:
    return {"payee_id": payee_id, "amount": amount, "round": round_, "paid_by": side}


def validation_read(session: Session, record: Validation) -> dict[str, Any]:
    return {
        "job_id": record.job_id,
        "mode": record.mode,
        "status": record.status,
        "round": record.round,
        "score": record.score,
        "due_at": record.due_at,
        "decided_at": record.decided_at,
        "drawn": [
            {"validator_id": d.validator_id, "round": d.round, "status": d.status}
            for d in repository.draws(session, record.job_id, None)
        ],
    }


def verdict_read(verdict: ValidationVerdict) -> dict[str, Any]:
    return {
        "verdict_id": verdict.verdict_id,
        "job_id": verdict.job_id,
        "judge_id": verdict.judge_id,
        "judge_role": verdict.judge_role,
        "round": verdict.round,
        "decision": "accept" if verdict.accept else "reject",
        "score": verdict.score,
        "reason": verdict.reason,
        "created_at": verdict.created_at,
    }


def dispute_read(dispute: ValidationDispute) -> dict[str, Any]:
    return {
        "job_id": dispute.job_id,
        "winner_id": dispute.winner_id,
        "reason": dispute.reason,
        "status": dispute.status,
        "opened_at": dispute.opened_at,
        "decided_at": dispute.decided_at,
    }
