"""Routes of the ledger: grants and enforcement (admins), accounts, entries and the export.

No route takes a transfer instruction: credits enter only by an admin's grant and otherwise
move only as the recorded consequence of a market action."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from flow_memory.kit.clock import isoformat_z
from flow_memory.kit.cursors import CURSOR_PATTERN
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    require_scopes,
)
from flow_memory.kit.errors import Invalid
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, DateTime, Identifier
from flow_memory.kit.scopes import ADMIN, AUDIT, READ
from flow_memory.ledger import entries, service
from flow_memory.ledger.export import export_lines
from flow_memory.ledger.schemas import (
    AccountListResponse,
    AccountResponse,
    EnforcementResponse,
    EnforcementUpdate,
    EntriesResponse,
    GrantCreate,
    GrantResponse,
    LedgerExportHeader,
)

log = logging.getLogger("flow_memory.ledger")

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/ledger",
    tags=["ledger"],
    responses=ERROR_RESPONSES,
)

Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="next_cursor of the previous page, unchanged; any other is refused (422 "
        "invalid_cursor)",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]
Moment = Annotated[DateTime | None, Query(description="A date-time with its timezone")]


@router.post(
    "/grants",
    status_code=201,
    response_model=GrantResponse,
    name="ledgerGrants",
    summary="Grant dry-run credits from the issuance account (admins; audited, idempotent)",
    responses={
        200: {
            "model": GrantResponse,
            "description": "A replay: this idempotency key had already granted; nothing moved",
        }
    },
)
def grant(
    body: GrantCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
) -> FlowJSONResponse:
    moved = service.grant(
        session,
        holder_id=body.holder_id,
        amount=body.amount,
        key=body.idempotency_key,
        actor_id=principal.owner_id,
        memo=body.memo,
        now=clock.now(),
    )
    account = service.account_of(session, body.holder_id)
    assert account is not None
    if not moved.replayed:
        log.info("ledger grant %s by %s", moved.transfer.transfer_id, principal.owner_id)
    return respond(
        {
            "transfer": entries.transfer_read(moved.transfer),
            "replayed": moved.replayed,
            "account": entries.account_read(session, account),
        },
        status_code=200 if moved.replayed else 201,
    )


@router.post(
    "/enforcement",
    response_model=EnforcementResponse,
    name="ledgerEnforcement",
    summary="Turn enforcement of a holder's account on or off (admins)",
)
def enforcement(
    body: EnforcementUpdate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
) -> FlowJSONResponse:
    account = service.set_enforcement(
        session, holder_id=body.holder_id, enforced=body.enforced, now=clock.now()
    )
    log.info("ledger enforcement of %s set by %s", account.account_id, principal.owner_id)
    return respond({"account": entries.account_read(session, account)})


@router.get(
    "/accounts",
    response_model=AccountListResponse,
    name="ledgerAccounts",
    summary="Find accounts: a holder's, or the caller's own and its identities'",
)
def list_accounts(
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
    holder_id: Annotated[Identifier | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FlowJSONResponse:
    found = entries.visible_accounts(session, principal, holder_id, limit=limit)
    reads = [entries.account_read(session, a) for a in found]
    return respond({"accounts": reads, "count": len(reads)})


@router.get(
    "/accounts/{account_id}",
    response_model=AccountResponse,
    name="ledgerAccount",
    summary="An account's balance, held and available credits (its holder, admins, auditors)",
)
def get_account(
    account_id: str,
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
) -> FlowJSONResponse:
    account = entries.visible_account(session, principal, account_id)
    return respond({"account": entries.account_read(session, account)})


@router.get(
    "/accounts/{account_id}/entries",
    response_model=EntriesResponse,
    name="ledgerAccountEntries",
    summary="An account's entries, newest first, each naming the action that caused it",
)
def account_entries(
    account_id: str,
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> FlowJSONResponse:
    account = entries.visible_account(session, principal, account_id)
    page = entries.page_entries(session, account, limit=limit, cursor=cursor)
    return respond(
        {
            "account_id": account.account_id,
            "entries": page.entries,
            "count": len(page.entries),
            "next_cursor": page.next_cursor,
        }
    )


@router.get(
    "/export",
    name="ledgerExport",
    summary="Stream every ledger entry as NDJSON for auditors",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": LedgerExportHeader,
            "description": "NDJSON: a header line, one line per entry, a footer line with "
            "record_count and complete",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
def export(
    request: Request,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(AUDIT))],
    account_id: Annotated[Identifier | None, Query()] = None,
    since: Moment = None,
    until: Moment = None,
) -> StreamingResponse:
    since, until = _utc(since, "since"), _utc(until, "until")
    now = clock.now()
    stamp = isoformat_z(now).replace(":", "").replace("-", "")
    return StreamingResponse(
        export_lines(
            request.app.state.read_session_factory,
            account_id=account_id,
            since=since,
            until=until,
            generated_at=now,
        ),
        media_type="application/x-ndjson",
        headers={
            "content-disposition": f'attachment; filename="flow-memory-ledger-{stamp}.ndjson"',
            "cache-control": "no-store",
        },
    )


def _utc(value: datetime | None, name: str) -> datetime | None:
    """A query's date-time in UTC; one that leaves the calendar once converted is refused."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Invalid(
            f"{name} is outside the representable range in UTC",
            field=name,
            code="datetime_out_of_range",
        ) from None
