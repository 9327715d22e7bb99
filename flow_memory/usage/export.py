"""Streamed usage exports (JSON or NDJSON) in constant memory.

The database renders each record as JSON and rows are read through one read-only connection in
batches, so memory stays flat and money columns never pass through a float."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, String, literal_column
from sqlalchemy.exc import SQLAlchemyError

from flow_memory.kit.deps import Principal
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.usage.service import UsageFilters, records_query

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

# The record's fields in export order, each with how it is rendered: a column as it is, a
# money column as an exact JSON number, or a derived value.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("usage_id", "column"),
    ("created_at", "time"),
    ("source", "column"),
    ("decision", "column"),
    ("owner_id", "column"),
    ("seller_owner_id", "column"),
    ("workspace_id", "column"),
    ("agent_id", "column"),
    ("goal_id", "column"),
    ("task_id", "column"),
    ("model", "column"),
    ("unit_type", "column"),
    ("provider_id", "column"),
    ("route_id", "column"),
    ("order_id", "column"),
    ("reservation_id", "column"),
    ("fill_id", "column"),
    ("estimated_units", "column"),
    ("actual_units", "column"),
    ("unit_price", "money"),
    ("estimated_cost", "money"),
    ("actual_cost", "money"),
    ("reference_unit_price", "money"),
    ("reference_cost", "money"),
    ("savings", "money"),
    ("discount_bps", "column"),
    ("savings_bps", "savings_bps"),
    ("latency_ms", "column"),
    ("quality_score", "column"),
    ("currency", "currency"),  # last: see record_json
)

_SQLITE = {
    "column": "{0}",
    "money": "json({0})",
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'; rendered like the API: Z, no zero fraction.
    "time": "substr({0}, 1, 10) || 'T' || substr({0}, 12, 8) || CASE WHEN substr({0}, 21) "
    "IN ('', '000000') THEN '' ELSE '.' || substr({0}, 21, 6) END || 'Z'",
    "savings_bps": "CASE WHEN reference_cost IS NULL THEN NULL ELSE discount_bps END",
    "currency": "'USD_CREDIT'",
}
_POSTGRESQL = {
    "column": "{0}",
    "money": "trim_scale({0})",
    "time": "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
    "extract(microseconds FROM {0})::bigint % 1000000 = 0 THEN '' ELSE "
    "to_char({0} AT TIME ZONE 'UTC', '.US') END || 'Z'",
    "savings_bps": "CASE WHEN reference_cost IS NULL THEN NULL ELSE discount_bps END",
    "currency": "'USD_CREDIT'",
}


def record_json(dialect: str) -> Any:
    """A SQL expression rendering one usage record as a JSON object (without the safety
    fields, which are the same on every record and appended by ``export_chunks``).

    The database encodes the records (SQLite ``json_object``, PostgreSQL ``json_build_object``)
    so an export runs at the speed rows are read; money never passes through a float. On SQLite
    money is stored as canonical decimal text and spliced in as is, which is cheaper than
    parsing it back with ``json()``."""
    if dialect != "sqlite":
        pairs = [f"'{name}', {_POSTGRESQL[kind].format(name)}" for name, kind in _FIELDS]
        return literal_column(f"json_build_object({', '.join(pairs)})::text", String)
    plain = [(name, kind) for name, kind in _FIELDS if kind != "money"]
    obj = ", ".join(f"'{name}', {_SQLITE[kind].format(name)}" for name, kind in plain)
    money = " || ".join(
        f"',\"{name}\":' || coalesce({name}, 'null')" for name, kind in _FIELDS if kind == "money"
    )
    # The object's last field is a string, so rtrim removes only its closing brace.
    return literal_column(f"rtrim(json_object({obj}), '}}') || {money} || '}}'", String)


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
    else:
        yield orjson.dumps({"ok": True, **meta}, option=options)[:-1] + b',"records":['
    prefix = '{"record_type":"usage_record",'
    safety = orjson.dumps(dict(SAFETY_ENVELOPE)).decode().replace("{", ",", 1)
    count = 0
    failure: str | None = None
    query = records_query(principal, filters, record_json(engine.dialect.name))
    try:
        with engine.connect() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=BATCH_ROWS
            ).execute(query)
            for rows in result.partitions():
                text = [row[0] for row in rows]
                if ndjson:
                    lines = [prefix + line[1:-1] + safety for line in text]
                    chunk = ("\n".join(lines) + "\n").encode()
                else:
                    lines = [line[:-1] + safety for line in text]
                    chunk = (("," if count else "") + ",".join(lines)).encode()
                count += len(text)
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
