"""``GET /inference/ledger/export``: every ledger entry as NDJSON, for auditors.

The usage export's sibling: a header line (schema version, filters, redaction, safety fields),
one line per entry with the transfer and cause it belongs to, and a footer with the count.
Entries are read in batches from one read-only session, so memory stays flat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from flow_memory.kit import jsonenc
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.ledger.domain import CURRENCY
from flow_memory.ledger.models import LedgerAccount, LedgerPosting, LedgerTransfer

SCHEMA_VERSION = "flow_memory.ledger_export.v1"
BATCH_ROWS = 2_000

REDACTION = {
    "applied": True,
    "policy": (
        "ledger entries hold dry-run credit amounts, account and holder ids and the action "
        "that caused each movement; never API keys, credential values, wallet addresses, "
        "prompts or completions"
    ),
    "omitted_fields": ["api_key", "credential_value", "wallet_address", "prompt", "completion"],
    "masked_fields": [],
}


def export_lines(
    factory: Callable[[], Session],
    *,
    account_id: str | None,
    since: datetime | None,
    until: datetime | None,
    generated_at: datetime,
) -> Iterator[bytes]:
    """The export's NDJSON lines, oldest entry first."""
    filters = {"account_id": account_id, "since": since, "until": until}
    header = {
        "record_type": "header",
        "ok": True,
        "schema_version": SCHEMA_VERSION,
        "format": "ndjson",
        "generated_at": generated_at,
        "currency": CURRENCY,
        "filters": filters,
        "redaction": REDACTION,
        **SAFETY_ENVELOPE,
    }
    yield jsonenc.render(header) + b"\n"
    p, t, a = LedgerPosting, LedgerTransfer, LedgerAccount
    query = (
        select(p, t, a.holder_id, a.role)
        .join(t, t.transfer_id == p.transfer_id)
        .join(a, a.account_id == p.account_id)
        .order_by(p.created_at, p.posting_id)
    )
    if account_id is not None:
        query = query.where(p.account_id == account_id)
    if since is not None:
        query = query.where(p.created_at >= since)
    if until is not None:
        query = query.where(p.created_at < until)
    count = 0
    failure = None
    session = factory()
    try:
        rows = session.execute(query.execution_options(yield_per=BATCH_ROWS))
        for posting, transfer, holder_id, role in rows:
            yield jsonenc.render(_line(posting, transfer, holder_id, role)) + b"\n"
            count += 1
    except SQLAlchemyError:
        failure = "the database stopped answering during the export; it is incomplete"
    finally:
        session.close()
    footer: dict[str, Any] = {"record_type": "footer", "record_count": count}
    footer["complete"] = failure is None
    if failure is not None:
        footer["error"] = {"code": "export_interrupted", "message": failure}
    yield jsonenc.render(footer) + b"\n"


def _line(
    posting: LedgerPosting, transfer: LedgerTransfer, holder_id: str, role: str
) -> dict[str, Any]:
    return {
        "record_type": "ledger_entry",
        "entry_id": posting.posting_id,
        "created_at": posting.created_at,
        "transfer_id": transfer.transfer_id,
        "idempotency_key": transfer.idempotency_key,
        "account_id": posting.account_id,
        "account_role": role,
        "holder_id": holder_id,
        "amount": posting.amount,
        "currency": CURRENCY,
        "cause_kind": transfer.cause_kind,
        "cause_id": transfer.cause_id,
        "actor_id": transfer.actor_id,
        "memo": transfer.memo,
        **SAFETY_ENVELOPE,
    }
