"""GET /inference/analytics/export: NDJSON and JSON exports of usage records, their header,
footer, filters and redaction metadata, who may export, and that no secret ever reaches one."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import String, literal_column

from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import ADMIN
from flow_memory.settings import Settings
from flow_memory.usage import export as usage_export
from flow_memory.usage.service import UsageFilters
from tests.api.test_usage_analytics import (
    MODEL,
    TRADES,
    Ledger,
    Line,
    all_records,
    bid,
    long_lived_settings,
    publish,
    record_ledger,
    selling_provider,
)
from tests.assertions import assert_safety, error, ok
from tests.factories import (
    admin_headers,
    buyer_headers,
    create_credential_ref,
    enroll_provider,
    key_headers,
    seller_headers,
)

EXPORT = "/inference/analytics/export"
ADMIN_PRINCIPAL = Principal("test", "operator", frozenset({ADMIN}))
Headers = dict[str, str]
ALL = sorted(t.name for t in TRADES)
FILTER_NAMES = (
    "agent_id",
    "provider_id",
    "model",
    "workspace_id",
    "route_id",
    "task_id",
    "deployment_id",
    "unit_type",
    "since",
    "until",
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return long_lived_settings(database_url)


@pytest.fixture
def ledger(app: FastAPI, client: TestClient, clock: FrozenClock) -> Ledger:
    return record_ledger(app, client, clock)


@pytest.fixture
def auditor(app: FastAPI) -> Headers:
    return key_headers(app, "auditor-1", "inference:audit")


def exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def ndjson_lines(response: Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    *lines, last = response.text.split("\n")  # NDJSON lines end at \n alone (not at U+2028)
    assert last == ""
    return [exact(line) for line in lines]


def json_document(response: Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = exact(response.text)
    assert document["ok"] is True
    assert_safety(document)
    return document


def assert_plain_export_numbers(text: str) -> None:
    """Money is a JSON number in fixed-point notation (the database may put spaces around)."""
    assert not re.search(r"[:,\[]\s*-?\d+(?:\.\d+)?[eE][-+]?\d", text), text
    money = "unit_price|estimated_cost|actual_cost|reference_unit_price|reference_cost|savings"
    assert not re.search(rf'"({money})"\s*:\s*"', text), text


def split(
    lines: list[dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(header, records, footer) of an NDJSON export, checking each line's record_type."""
    header, *records, footer = lines
    assert header["record_type"] == "header"
    assert footer["record_type"] == "footer"
    for record in records:
        assert record.pop("record_type") == "usage_record"
    return header, records, footer


def oldest_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["created_at"], r["usage_id"]))


def assert_redaction(redaction: dict[str, Any]) -> None:
    assert redaction["applied"] is True
    assert "API keys" in redaction["policy"]
    assert {"api_key", "pairing_token", "credential_value"} <= set(redaction["omitted_fields"])
    assert redaction["masked_fields"] == []


class TestNdjson:
    def test_a_header_one_line_per_record_oldest_first_and_a_footer(
        self, ledger: Ledger, client: TestClient, auditor: Headers
    ) -> None:
        response = client.get(EXPORT, headers=auditor)
        header, records, footer = split(ndjson_lines(response))
        assert response.headers["content-disposition"] == (
            'attachment; filename="flow-memory-usage-20260619T120000Z.ndjson"'
        )
        assert response.headers["cache-control"] == "no-store"
        assert header["ok"] is True
        assert header["schema_version"] == "flow_memory.usage_export.v1"
        assert header["format"] == "ndjson"
        assert header["generated_at"] == "2026-06-19T12:00:00Z"
        assert header["filters"] == dict.fromkeys(FILTER_NAMES)
        assert_redaction(header["redaction"])
        assert_safety(header)
        # The same records, field for field, as the usage endpoint shows them, oldest first.
        assert records == oldest_first(all_records(client, ledger.admin))
        assert sorted(ledger.names(records)) == ALL
        assert [r["created_at"] for r in records] == sorted(r["created_at"] for r in records)
        for record in records:
            assert_safety(record)
        assert footer == {"record_type": "footer", "record_count": 6, "complete": True}
        assert_plain_export_numbers(response.text)

    def test_ndjson_is_the_default_and_the_contracts_example_filters(
        self, ledger: Ledger, client: TestClient, auditor: Headers
    ) -> None:
        response = client.get(
            EXPORT, params={"format": "ndjson", "workspace_id": "ws-1"}, headers=auditor
        )
        header, records, footer = split(ndjson_lines(response))
        assert header["filters"]["workspace_id"] == "ws-1"
        assert ledger.names(records) == ["t1", "t3", "t4"]
        assert footer["record_count"] == 3
        default = client.get(EXPORT, params={"workspace_id": "ws-1"}, headers=auditor)
        assert default.headers["content-type"] == "application/x-ndjson"
        assert ledger.names(split(ndjson_lines(default))[1]) == ["t1", "t3", "t4"]

    def test_a_record_line_is_exactly_what_the_savings_rule_gives(
        self, ledger: Ledger, client: TestClient, auditor: Headers
    ) -> None:
        response = client.get(EXPORT, params={"agent_id": "agent-b"}, headers=auditor)
        [t2] = split(ndjson_lines(response))[1]
        assert (t2["actual_units"], t2["unit_price"], t2["estimated_cost"], t2["actual_cost"]) == (
            40,
            Decimal("0.0005"),
            Decimal("0.024"),
            Decimal("0.02"),
        )
        names = ("reference_unit_price", "reference_cost", "savings", "discount_bps", "savings_bps")
        assert {n: t2[n] for n in names} == dict.fromkeys(names)
        assert (t2["route_id"], t2["task_id"], t2["workspace_id"]) == ("route_x1", "task-2", "ws-2")
        response = client.get(
            EXPORT, params={"agent_id": "agent-a", "model": MODEL}, headers=auditor
        )
        t1 = split(ndjson_lines(response))[1][0]
        assert (t1["reference_cost"], t1["savings"], t1["savings_bps"], t1["created_at"]) == (
            Decimal("0.25"),
            Decimal("0.0625"),
            2500,
            "2026-06-17T00:00:00Z",
        )


class TestJson:
    def test_one_document_with_the_records_and_the_safety_fields(
        self, ledger: Ledger, client: TestClient, auditor: Headers
    ) -> None:
        response = client.get(EXPORT, params={"format": "json"}, headers=auditor)
        document = json_document(response)
        assert response.headers["content-disposition"] == (
            'attachment; filename="flow-memory-usage-20260619T120000Z.json"'
        )
        assert document["schema_version"] == "flow_memory.usage_export.v1"
        assert document["format"] == "json"
        assert document["generated_at"] == "2026-06-19T12:00:00Z"
        assert document["filters"] == dict.fromkeys(FILTER_NAMES)
        assert_redaction(document["redaction"])
        assert document["record_count"] == 6
        assert document["complete"] is True
        assert "error" not in document
        assert document["records"] == oldest_first(all_records(client, ledger.admin))
        assert_plain_export_numbers(response.text)

    def test_filters_apply_and_are_echoed(
        self, ledger: Ledger, client: TestClient, auditor: Headers
    ) -> None:
        params = {
            "format": "json",
            "since": "2026-06-17T09:30:00Z",
            "until": "2026-06-19T12:00:00Z",
            "unit_type": "request",
        }
        document = json_document(client.get(EXPORT, params=params, headers=auditor))
        assert ledger.names(document["records"]) == ["t2", "t3"]
        assert document["record_count"] == 2
        assert document["filters"]["since"] == "2026-06-17T09:30:00Z"
        assert document["filters"]["until"] == "2026-06-19T12:00:00Z"
        assert document["filters"]["unit_type"] == "request"


class TestBothFormats:
    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"agent_id": "agent-a"},
            {"provider_id": "beta"},
            {"model": MODEL, "since": "2026-06-18T00:00:00Z"},
            {"task_id": "task-1"},
            {"route_id": "route_x1"},
            {"until": "2026-06-17T23:59:00Z"},
        ],
    )
    def test_each_filter_selects_the_usage_endpoints_records(
        self, ledger: Ledger, client: TestClient, auditor: Headers, params: dict[str, str]
    ) -> None:
        if "provider_id" in params:
            params = {**params, "provider_id": ledger.providers[params["provider_id"]]}
        expected = oldest_first(all_records(client, ledger.admin, **params))
        assert expected
        lines = ndjson_lines(client.get(EXPORT, params=params, headers=auditor))
        assert split(lines)[1] == expected
        document = json_document(
            client.get(EXPORT, params={**params, "format": "json"}, headers=auditor)
        )
        assert document["records"] == expected
        assert document["record_count"] == len(expected)

    def test_many_batches_make_one_valid_export(
        self,
        ledger: Ledger,
        client: TestClient,
        auditor: Headers,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(usage_export, "BATCH_ROWS", 4)
        expected = oldest_first(all_records(client, ledger.admin))
        for batch in (1, 2, 4):
            monkeypatch.setattr(usage_export, "BATCH_ROWS", batch)
            document = json_document(client.get(EXPORT, params={"format": "json"}, headers=auditor))
            assert document["records"] == expected, batch
            assert document["record_count"] == 6
            _header, records, footer = split(ndjson_lines(client.get(EXPORT, headers=auditor)))
            assert records == expected, batch
            assert footer["record_count"] == 6

    @pytest.mark.parametrize("batch", [1, 2])
    def test_a_failure_mid_stream_ends_with_complete_false_and_an_error(
        self,
        ledger: Ledger,
        client: TestClient,
        auditor: Headers,
        monkeypatch: pytest.MonkeyPatch,
        batch: int,
    ) -> None:
        expected = oldest_first(all_records(client, ledger.admin))
        fourth = expected[3]["usage_id"]
        real_line = usage_export.record_line

        def failing_line(dialect: str, fmt: str) -> Any:
            # The fourth record makes the database fail while it is being read (malformed
            # JSON on SQLite, a division by zero on PostgreSQL), after earlier batches left.
            zero = "(length(usage_id) - length(usage_id))"
            boom = "json('x')" if dialect == "sqlite" else f"(1 / {zero})::text"
            failing = literal_column(
                f"CASE WHEN usage_id = '{fourth}' THEN {boom} ELSE '' END", String
            )
            return (real_line(dialect, fmt) + failing).label("line")

        monkeypatch.setattr(usage_export, "record_line", failing_line)
        monkeypatch.setattr(usage_export, "BATCH_ROWS", batch)
        _header, records, footer = split(ndjson_lines(client.get(EXPORT, headers=auditor)))
        assert footer["complete"] is False
        assert footer["error"]["code"] == "export_interrupted"
        assert footer["record_count"] == len(records) < 4
        assert records == expected[: len(records)]
        document = json_document(client.get(EXPORT, params={"format": "json"}, headers=auditor))
        assert document["complete"] is False
        assert document["error"]["code"] == "export_interrupted"
        assert document["records"] == expected[: document["record_count"]]
        assert document["record_count"] < 4

    def test_a_client_that_leaves_mid_export_stops_the_reader(
        self,
        ledger: Ledger,
        app: FastAPI,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(usage_export, "BATCH_ROWS", 1)
        monkeypatch.setattr(usage_export, "QUEUED_BATCHES", 1)
        before = {t.name for t in threading.enumerate()}
        chunks = usage_export.export_chunks(
            app.state.read_engine,
            ADMIN_PRINCIPAL,
            UsageFilters(),
            fmt="ndjson",
            generated_at=datetime(2026, 6, 17, tzinfo=UTC),
        )
        assert next(chunks).startswith(b'{"record_type":"header"')
        assert next(chunks).startswith(b'{"record_type":"usage_record"')
        chunks.close()
        deadline = time.monotonic() + 10
        while "flow-memory-usage-export" in {t.name for t in threading.enumerate()} - before:
            assert time.monotonic() < deadline, "the export reader kept running"
            time.sleep(0.05)

    def test_an_export_that_matches_nothing(
        self, ledger: Ledger, client: TestClient, auditor: Headers
    ) -> None:
        lines = ndjson_lines(client.get(EXPORT, params={"agent_id": "nobody"}, headers=auditor))
        assert [line["record_type"] for line in lines] == ["header", "footer"]
        assert lines[1] == {"record_type": "footer", "record_count": 0, "complete": True}
        document = json_document(
            client.get(EXPORT, params={"agent_id": "nobody", "format": "json"}, headers=auditor)
        )
        assert (document["records"], document["record_count"], document["complete"]) == (
            [],
            0,
            True,
        )

    def test_awkward_text_and_fractions_of_a_second_export_as_the_api_shows_them(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, auditor: Headers
    ) -> None:
        seller = seller_headers(app)
        selling_provider(client, seller, clock, Line(MODEL, "token", 0.00000075, 0.000001))
        buyer = buyer_headers(app)
        workspaces = ['ws "quoted" \\ back', "tab\there é ✓ \u2028 end", "</script>&<"]
        for index, workspace in enumerate(workspaces):
            clock.advance(0.25 + index * 0.000001)
            bid(client, buyer, 1000 + index, 0.0000008, metadata={"workspace_id": workspace})
        expected = oldest_first(all_records(client, buyer))
        assert [r["workspace_id"] for r in expected] == workspaces
        assert [r["created_at"] for r in expected] == [
            "2026-06-17T00:00:00.250000Z",
            "2026-06-17T00:00:00.500001Z",
            "2026-06-17T00:00:00.750003Z",
        ]
        assert split(ndjson_lines(client.get(EXPORT, headers=auditor)))[1] == expected
        document = json_document(client.get(EXPORT, params={"format": "json"}, headers=auditor))
        assert document["records"] == expected


class TestAccess:
    def test_exports_need_inference_audit(
        self, app: FastAPI, ledger: Ledger, client: TestClient
    ) -> None:
        error(client.get(EXPORT), 401, "unauthenticated")
        for scopes in (
            ("inference:read",),
            ("inference:buy", "inference:read"),
            ("inference:sell",),
        ):
            detail = error(
                client.get(EXPORT, headers=key_headers(app, "agent-research-1", *scopes)),
                403,
                "missing_scope",
            )
            assert "inference:audit" in detail["message"]
        narrowed = {
            **key_headers(app, "auditor-2", "inference:audit", "inference:read"),
            "x-flow-memory-scopes": "inference:read",
        }
        error(client.get(EXPORT, headers=narrowed), 403, "missing_scope")
        for headers in (ledger.admin, key_headers(app, "auditor-3", "inference:audit")):
            assert split(ndjson_lines(client.get(EXPORT, headers=headers)))[2]["record_count"] == 6

    @pytest.mark.parametrize(
        ("params", "code"),
        [
            ({"format": "csv"}, "invalid_request"),
            ({"format": "NDJSON"}, "invalid_request"),
            (
                {"since": "2026-06-18T00:00:00Z", "until": "2026-06-17T00:00:00Z"},
                "invalid_time_range",
            ),
            ({"since": "2026-06-18T00:00:00"}, "timezone_required"),
            ({"unit_type": "gpu_hour"}, "invalid_request"),
        ],
    )
    def test_bad_queries_are_422(
        self, client: TestClient, auditor: Headers, params: dict[str, str], code: str
    ) -> None:
        error(client.get(EXPORT, params=params, headers=auditor), 422, code)


class TestNoSecretsInExports:
    def test_keys_pairing_tokens_and_credential_pointers_never_appear(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = key_headers(app, "planted-seller", "inference:sell", "inference:read")
        pointer = "secret://vault/planted-zq9x-credential"
        ref = create_credential_ref(
            client, seller, credential_ref=pointer, display_name="Planted zq9x reference"
        )
        provider_id = str(
            enroll_provider(
                client,
                seller,
                ref["credential_ref_id"],
                provider_name="Planted zq9x provider",
                base_url="https://planted-zq9x.example/v1",
            )["provider_id"]
        )
        token = ok(
            client.post(f"/inference/providers/{provider_id}/pairing-token", headers=seller), 201
        )["pairing_token"]
        ok(
            client.post(
                f"/inference/providers/{provider_id}/heartbeat",
                headers={**seller, "x-flow-memory-pairing-token": token},
            )
        )
        publish(client, seller, clock, provider_id, Line(MODEL, "token", 0.00000075, 0.000001))
        buyer = buyer_headers(app, "planted-buyer")
        bid(client, buyer, 250_000, 0.0000008, metadata={"workspace_id": "ws-planted"})
        auditor = key_headers(app, "planted-auditor", "inference:audit", "inference:read")
        admin = admin_headers(app)
        secrets = [
            h["authorization"].removeprefix("Bearer ") for h in (seller, buyer, auditor, admin)
        ]
        secrets += [token, pointer, "secret://", "planted-zq9x-credential"]
        assert all(s.startswith("fm_") for s in secrets[:4])
        assert token.startswith("fmpair_")
        for headers in (auditor, admin):
            for params in ({}, {"format": "json"}, {"workspace_id": "ws-planted"}):
                response = client.get(EXPORT, params=params, headers=headers)
                assert response.status_code == 200
                assert "ws-planted" in response.text  # the record is there
                for secret in secrets:
                    assert secret not in response.text, secret
        body = client.get("/inference/analytics/usage", headers=auditor).text
        assert "ws-planted" in body
        for secret in secrets:
            assert secret not in body, secret
