"""Streamed usage exports (JSON or NDJSON) in constant memory.

Rows are read through one read-only connection in batches and encoded straight to bytes; money
columns are read as their stored decimal text, so no value passes through a float."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, String, Text, cast, select, type_coerce
from sqlalchemy.exc import SQLAlchemyError

from flow_memory.kit.deps import Principal
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.usage.models import UsageRecord
from flow_memory.usage.service import UsageFilters, record_conditions

SCHEMA_VERSION = "flow_memory.usage_export.v1"
BATCH_ROWS = 5_000

REDACTION = {
    "applied": True,
    "policy": (
        "usage records never hold API keys, pairing tokens, credential values, prompts, "
        "completions or upstream request headers, so an export cannot contain them"
    ),
    "omitted_fields": [
        "api_key",
        "pairing_token",
        "credential_value",
        "prompt",
        "completion",
        "upstream_request_headers",
    ],
    "masked_fields": [],
}

_TEXT_COLUMNS = (
    "usage_id",
    "source",
    "decision",
    "owner_id",
    "seller_owner_id",
    "workspace_id",
    "agent_id",
    "goal_id",
    "task_id",
    "model",
    "unit_type",
    "provider_id",
    "route_id",
    "order_id",
    "reservation_id",
    "fill_id",
)
_MONEY_COLUMNS = (
    "unit_price",
    "estimated_cost",
    "actual_cost",
    "reference_unit_price",
    "reference_cost",
    "savings",
)
_SAFETY_BYTES = orjson.dumps(dict(SAFETY_ENVELOPE))[1:-1]  # the fields without braces


def _number(text: str | None) -> orjson.Fragment | None:
    if text is None:
        return None
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return orjson.Fragment(text)


def _columns(dialect: str) -> list[Any]:
    table = UsageRecord.__table__.c
    money = [
        (type_coerce(table[name], String) if dialect == "sqlite" else cast(table[name], Text))
        for name in _MONEY_COLUMNS
    ]
    return [
        *(table[name] for name in _TEXT_COLUMNS),
        table.created_at,
        table.estimated_units,
        table.actual_units,
        table.discount_bps,
        table.latency_ms,
        table.quality_score,
        *money,
    ]


def _encode_record(row: Any, prefix: bytes) -> bytes:
    (
        usage_id,
        source,
        decision,
        owner_id,
        seller_owner_id,
        workspace_id,
        agent_id,
        goal_id,
        task_id,
        model,
        unit_type,
        provider_id,
        route_id,
        order_id,
        reservation_id,
        fill_id,
        created_at,
        estimated_units,
        actual_units,
        discount,
        latency_ms,
        quality_score,
        unit_price,
        estimated_cost,
        actual_cost,
        reference_unit_price,
        reference_cost,
        savings,
    ) = row
    body = orjson.dumps(
        {
            "usage_id": usage_id,
            "created_at": created_at,
            "source": source,
            "decision": decision,
            "owner_id": owner_id,
            "seller_owner_id": seller_owner_id,
            "workspace_id": workspace_id,
            "agent_id": agent_id,
            "goal_id": goal_id,
            "task_id": task_id,
            "model": model,
            "unit_type": unit_type,
            "provider_id": provider_id,
            "route_id": route_id,
            "order_id": order_id,
            "reservation_id": reservation_id,
            "fill_id": fill_id,
            "estimated_units": estimated_units,
            "actual_units": actual_units,
            "unit_price": _number(unit_price),
            "estimated_cost": _number(estimated_cost),
            "actual_cost": _number(actual_cost),
            "reference_unit_price": _number(reference_unit_price),
            "reference_cost": _number(reference_cost),
            "savings": _number(savings),
            "discount_bps": discount,
            "savings_bps": discount if reference_cost is not None else None,
            "latency_ms": latency_ms,
            "quality_score": quality_score,
            "currency": "USD_CREDIT",
        },
        option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )
    return prefix + body[1:-1] + b"," + _SAFETY_BYTES + b"}"


def export_chunks(
    engine: Engine,
    principal: Principal,
    filters: UsageFilters,
    *,
    fmt: str,
    generated_at: datetime,
) -> Iterator[bytes]:
    """The export as byte chunks of about ``BATCH_ROWS`` records each."""
    meta = {
        "schema_version": SCHEMA_VERSION,
        "format": fmt,
        "generated_at": generated_at,
        "filters": filters.read(),
        "redaction": REDACTION,
    }
    options = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
    ndjson = fmt == "ndjson"
    if ndjson:
        header = {"record_type": "header", "ok": True, **meta, **SAFETY_ENVELOPE}
        yield orjson.dumps(header, option=options) + b"\n"
        prefix = b'{"record_type":"usage_record",'
    else:
        yield orjson.dumps({"ok": True, **meta}, option=options)[:-1] + b',"records":['
        prefix = b"{"
    count = 0
    failure: str | None = None
    query = (
        select(*_columns(engine.dialect.name))
        .where(*record_conditions(principal, filters, filters.since, filters.until))
        .order_by(UsageRecord.created_at, UsageRecord.usage_id)
    )
    try:
        with engine.connect() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=BATCH_ROWS
            ).execute(query)
            for rows in result.partitions():
                lines = [_encode_record(row, prefix) for row in rows]
                if ndjson:
                    chunk = b"\n".join(lines) + b"\n"
                else:
                    chunk = (b"," if count else b"") + b",".join(lines)
                count += len(lines)
                yield chunk
    except SQLAlchemyError:
        failure = "the database stopped answering during the export; it is incomplete"
    error = None if failure is None else {"code": "export_interrupted", "message": failure}
    if ndjson:
        footer: dict[str, Any] = {
            "record_type": "footer",
            "record_count": count,
            "complete": failure is None,
        }
        if error is not None:
            footer["error"] = error
        yield orjson.dumps(footer) + b"\n"
    else:
        tail: dict[str, Any] = {"record_count": count, "complete": failure is None}
        if error is not None:
            tail["error"] = error
        tail.update(SAFETY_ENVELOPE)
        yield b"]," + orjson.dumps(tail)[1:]
