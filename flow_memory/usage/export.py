"""Streamed usage exports (JSON or NDJSON) in constant memory.

The database renders each record's whole line (JSON, safety fields included) and a reader thread
fetches them in batches through one read-only connection, a few batches ahead of the sender,
so memory stays flat and money columns never pass through a float."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, String, literal, literal_column
from sqlalchemy.exc import SQLAlchemyError

from flow_memory.kit.deps import Principal
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.usage.service import UsageFilters, records_query

log = logging.getLogger("flow_memory.usage.export")

SCHEMA_VERSION = "flow_memory.usage_export.v1"
BATCH_ROWS = 2_000  # about 2 MB of rendered records
QUEUED_BATCHES = 3  # rendered batches waiting to be sent: with BATCH_ROWS, the memory bound

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
    # Calls through a deployment (null for every other record): fields added within v1, which
    # only ever gains fields (docs/DEPLOYMENTS.md).
    ("deployment_id", "column"),
    ("agent_version_id", "column"),
    ("model_version_id", "column"),
    ("currency", "currency"),  # last: see record_fields
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


def record_fields(dialect: str) -> Any:
    """A SQL expression rendering one usage record's fields as JSON object members, without
    the braces (``"usage_id":"use_…",…,"currency":"USD_CREDIT"``).

    The database encodes the records (SQLite ``json_object``, PostgreSQL ``json_build_object``),
    so every string is escaped by the database's JSON encoder and money never passes through a
    float. On SQLite money is stored as canonical decimal text and spliced in as is, which is
    cheaper than parsing it back with ``json()``. The object's first member is a key and its
    last a string, so trimming braces removes only the object's own."""
    if dialect != "sqlite":
        pairs = [f"'{name}', {_POSTGRESQL[kind].format(name)}" for name, kind in _FIELDS]
        return literal_column(f"btrim(json_build_object({', '.join(pairs)})::text, '{{}}')", String)
    plain = [(name, kind) for name, kind in _FIELDS if kind != "money"]
    obj = ", ".join(f"'{name}', {_SQLITE[kind].format(name)}" for name, kind in plain)
    money = " || ".join(
        f"',\"{name}\":' || coalesce({name}, 'null')" for name, kind in _FIELDS if kind == "money"
    )
    return literal_column(f"trim(json_object({obj}), '{{}}') || {money}", String)


def record_line(dialect: str, fmt: str) -> Any:
    """A SQL expression rendering one whole record of the export: its JSON object with the
    safety fields last and, in NDJSON, ``record_type`` first. Python only joins the lines."""
    head = '{"record_type":"usage_record",' if fmt == "ndjson" else "{"
    safety = orjson.dumps(dict(SAFETY_ENVELOPE)).decode().replace("{", ",", 1)
    return (literal(head, String) + record_fields(dialect) + literal(safety, String)).label("line")


class _Batch(NamedTuple):
    records: int
    data: bytes


_DONE = _Batch(0, b"")


def _read_batches(
    engine: Engine,
    query: Any,
    ndjson: bool,
    out: queue.Queue[_Batch | BaseException],
    stop: threading.Event,
) -> None:
    """Render the records in batches on one read-only connection, into ``out``.

    It runs in its own thread so the database renders the next batch (SQLite and the
    PostgreSQL driver release the GIL while they work) while the server sends this one; the
    bounded queue keeps memory constant when the client reads slowly."""
    separator = "\n" if ndjson else ","

    def put(item: _Batch | BaseException) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    first = True
    try:
        with (
            engine.connect() as connection,
            connection.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                query
            ) as result,
        ):
            for rows in result.partitions():
                text = separator.join([row[0] for row in rows])
                # NDJSON lines end with a newline; JSON records after the first batch
                # follow a comma.
                text = text + "\n" if ndjson else (text if first else "," + text)
                first = False
                if not put(_Batch(len(rows), text.encode())):
                    return
        put(_DONE)
    except Exception as error:
        if not isinstance(error, SQLAlchemyError):
            log.exception("usage export failed")
        put(error)


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
    count = 0
    failure: str | None = None
    query = records_query(principal, filters, record_line(engine.dialect.name, fmt))
    batches: queue.Queue[_Batch | BaseException] = queue.Queue(maxsize=QUEUED_BATCHES)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_batches,
        args=(engine, query, ndjson, batches, stop),
        name="flow-memory-usage-export",
        daemon=True,
    )
    reader.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, BaseException):
                failure = (
                    "the database stopped answering during the export; it is incomplete"
                    if isinstance(batch, SQLAlchemyError)
                    else "the export failed part way; it is incomplete"
                )
                break
            if batch is _DONE:
                break
            yield batch.data
            count += batch.records
    finally:
        # The client may leave mid-export: the reader stops at its next batch.
        stop.set()
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
