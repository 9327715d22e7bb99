"""Routes for usage analytics and the streamed export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator

from flow_memory.kit.clock import isoformat_z
from flow_memory.kit.cursors import CURSOR_PATTERN
from flow_memory.kit.deps import ClockDep, Principal, ReadSessionDep, require_scopes
from flow_memory.kit.errors import Invalid
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, Identifier, date_time_text
from flow_memory.kit.scopes import AUDIT, READ
from flow_memory.providers.schemas import UnitType
from flow_memory.usage import service
from flow_memory.usage.export import export_chunks
from flow_memory.usage.schemas import UsageExportDocument, UsageResponse

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/analytics",
    tags=["analytics"],
    responses=ERROR_RESPONSES,
)

QueryId = Annotated[Identifier | None, Query()]


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise Invalid(
            f"{name} must carry a timezone",
            field=name,
            code="timezone_required",
            hint="write times like 2026-06-17T00:00:00Z",
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Invalid(
            f"{name} is outside the representable range in UTC",
            field=name,
            code="datetime_out_of_range",
        ) from None


def usage_filters(
    agent_id: QueryId = None,
    provider_id: QueryId = None,
    model: QueryId = None,
    workspace_id: QueryId = None,
    route_id: QueryId = None,
    task_id: QueryId = None,
    deployment_id: QueryId = None,
    unit_type: Annotated[UnitType | None, Query()] = None,
    since: Annotated[
        datetime | None,
        BeforeValidator(date_time_text),
        Query(
            description="Records at or after this date-time (RFC 3339, with a timezone: "
            "2026-06-17T00:00:00Z); it must be earlier than until (422 invalid_time_range)"
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        BeforeValidator(date_time_text),
        Query(
            description="Records before this date-time (RFC 3339, with a timezone); it must be "
            "later than since"
        ),
    ] = None,
) -> service.UsageFilters:
    return service.UsageFilters(
        agent_id=agent_id,
        provider_id=provider_id,
        model=model,
        workspace_id=workspace_id,
        route_id=route_id,
        task_id=task_id,
        deployment_id=deployment_id,
        unit_type=unit_type,
        since=_aware(since, "since"),
        until=_aware(until, "until"),
    )


Filters = Annotated[service.UsageFilters, Depends(usage_filters)]


@router.get(
    "/usage",
    response_model=UsageResponse,
    name="analyticsUsage",
    summary="Usage records with a summary of units, cost and savings by model and provider",
)
def usage(
    session: ReadSessionDep,
    filters: Filters,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="next_cursor of the previous page, unchanged (base64url text); any "
            "other is refused (422 invalid_cursor)",
            # Documented, not enforced by the schema: page_records refuses any other cursor
            # with its own code, invalid_cursor.
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
) -> FlowJSONResponse:
    summary = service.summarize(session, principal, filters)
    page = service.page_records(session, principal, filters, limit=limit, cursor=cursor)
    return respond(
        {
            "filters": filters.read(),
            "summary": summary.read(),
            "records": [service.record_read(r) for r in page.records],
            "count": len(page.records),
            "next_cursor": page.next_cursor,
            "savings_rule": service.SAVINGS_RULE,
        }
    )


_MEDIA = {"json": "application/json", "ndjson": "application/x-ndjson"}


@router.get(
    "/export",
    name="analyticsExport",
    summary="Stream usage records as JSON or NDJSON for agents, auditors and notebooks",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": UsageExportDocument,
            "description": "The export, streamed; NDJSON has a header line, one line per "
            "record and a footer line with record_count and complete",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
def export(
    request: Request,
    filters: Filters,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(AUDIT))],
    format: Annotated[Literal["json", "ndjson"], Query()] = "ndjson",
) -> StreamingResponse:
    now = clock.now()
    stamp = isoformat_z(now).replace(":", "").replace("-", "")
    return StreamingResponse(
        export_chunks(
            request.app.state.read_engine, principal, filters, fmt=format, generated_at=now
        ),
        media_type=_MEDIA[format],
        headers={
            "content-disposition": f'attachment; filename="flow-memory-usage-{stamp}.{format}"',
            "cache-control": "no-store",
        },
    )
