"""The safety guard over HTTP: forbidden material is refused with 422 before anything is stored
or logged, and bounds on size, strings, lists and depth hold."""

from __future__ import annotations

import json
import logging
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, func, select

from flow_memory.credentials.models import CredentialRef, CredentialRefRotation
from tests.factories import (
    Headers,
    admin_headers,
    create_credential_ref,
    credential_ref_body,
    enroll_body,
)
from tests.unit.test_safety import ALLOWED_CASES, FORBIDDEN_CASES, ForbiddenCase

CREDENTIAL_REFS = "/inference/credential-refs"
REDACTED_KEY = "<redacted>"
MAX_DEPTH = 16

# Written out rather than imported, so a change to the shared constant is caught here.
DRY_RUN_ENVELOPE = {
    "dry_run_only": True,
    "funds_moved": False,
    "broadcast_allowed": False,
    "private_key_required": False,
    "live_trading_enabled": False,
    "legal_review_required": True,
    "compliance_review_required": True,
}

# Loggers of the test's own HTTP client: httpx logs each request URL it sends, query string
# included. They run in the test, not in the server, so they are left out of the log search.
CLIENT_LOGGERS = ("httpx", "httpcore")

_RNG = random.Random(4242)

PLACEMENTS = ("metadata", "nested", "list", "top", "query", "key")


@dataclass(frozen=True)
class Attempt:
    """One forbidden case sent one way: the request and the field path the error must name."""

    case: ForbiddenCase
    placement: str
    marker: str  # an innocent value sent alongside, so a stored row would be found

    @property
    def expected_field(self) -> str:
        case = self.case
        by_value = case.by_value
        return {
            "metadata": f"metadata.{case.key}",
            "nested": f"metadata.nested.deeper.{case.key}",
            "list": "metadata.items[2]" if by_value else f"metadata.items[2].{case.key}",
            "top": "display_name" if by_value else case.key,
            "query": f"query.{case.key}",
            "key": f"metadata.{REDACTED_KEY}",
        }[self.placement]

    def send(self, client: TestClient, headers: Headers) -> httpx.Response:
        case = self.case
        if self.placement == "query":
            assert case.query_value is not None
            params = {"status": "active", case.key: case.query_value}
            response: httpx.Response = client.get(CREDENTIAL_REFS, params=params, headers=headers)
            return response
        metadata: dict[str, Any] = {"marker": self.marker}
        body = credential_ref_body(display_name=self.marker, metadata=metadata)
        if self.placement == "metadata":
            metadata[case.key] = case.value
        elif self.placement == "nested":
            metadata["nested"] = {"deeper": {case.key: case.value}}
        elif self.placement == "list":
            item = case.value if case.by_value else {case.key: case.value}
            metadata["items"] = ["plain words", {"step": 1}, item]
        elif self.placement == "top" and case.by_value:
            body["display_name"] = case.value
        elif self.placement == "top":
            body[case.key] = case.value
        else:
            metadata[case.value] = "x"
        response = client.post(CREDENTIAL_REFS, json=body, headers=headers)
        return response


def _placements(case: ForbiddenCase) -> list[str]:
    usable = []
    for placement in PLACEMENTS:
        if placement == "query" and case.query_value is None:
            continue
        if placement == "key" and not (case.by_value and isinstance(case.value, str)):
            continue
        usable.append(placement)
    return usable


def _marker() -> str:
    return "refused-marker-" + "".join(_RNG.choice(string.ascii_lowercase) for _ in range(20))


def _round_robin() -> list[Attempt]:
    """Each case once, the placements taken in turn so every way of sending is covered."""
    attempts = []
    for index, case in enumerate(FORBIDDEN_CASES):
        usable = _placements(case)
        attempts.append(Attempt(case, usable[index % len(usable)], _marker()))
    return attempts


def _every_placement() -> list[Attempt]:
    return [
        Attempt(case, placement, _marker())
        for case in FORBIDDEN_CASES
        for placement in _placements(case)
    ]


def assert_refused(
    response: httpx.Response, *, field: str, code: str = "forbidden_material", status: int = 422
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    for name, value in DRY_RUN_ENVELOPE.items():
        assert body[name] is value, name
    return body


def assert_not_echoed(response: httpx.Response, *secrets: str | None) -> None:
    for secret in secrets:
        if secret:
            assert secret not in response.text
            assert json.dumps(secret)[1:-1] not in response.text


def credential_ref_count(app: FastAPI) -> int:
    with app.state.session_factory() as session:
        refs = session.scalar(select(func.count()).select_from(CredentialRef))
        rotations = session.scalar(select(func.count()).select_from(CredentialRefRotation))
    return int(refs or 0) + int(rotations or 0)


def stored_bytes(app: FastAPI, database_file: Path | None) -> bytes:
    """Everything the database holds: the SQLite file with its WAL, and every row as text."""
    chunks: list[bytes] = []
    if database_file is not None:
        for suffix in ("", "-wal", "-journal"):
            path = Path(f"{database_file}{suffix}")
            if path.exists():
                chunks.append(path.read_bytes())
    engine = app.state.engine
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        for table in tables.sorted_tables:
            if table.name == "registry_fts_tokenize":
                continue  # SQLite's Porter stemmer as a table: it stores nothing
            for row in connection.execute(select(table)):
                chunks.append(repr(tuple(row)).encode())
                chunks.append(json.dumps(list(row), default=str).encode())
    return b"\n".join(chunks)


def server_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(CLIENT_LOGGERS)
    )


class TestForbiddenMaterialIsRefused:
    @pytest.mark.parametrize(
        "attempt",
        [pytest.param(a, id=f"{a.case.id}@{a.placement}") for a in _round_robin()],
    )
    def test_case_is_refused_with_its_field_path(
        self, client: TestClient, app: FastAPI, seller: Headers, attempt: Attempt
    ) -> None:
        response = attempt.send(client, seller)
        body = assert_refused(response, field=attempt.expected_field)
        assert attempt.case.kind.replace("_", " ") in body["error"]["message"]
        assert_not_echoed(response, attempt.case.needle)
        if attempt.case.by_value and isinstance(attempt.case.value, str):
            assert_not_echoed(response, attempt.case.value)
        assert credential_ref_count(app) == 0

    @pytest.mark.parametrize(
        ("metadata", "field"),
        [
            ({"nested": {"api_key": "plainvalue"}}, "metadata.nested.api_key"),
            ({"items": ["a", "b", "sk-" + "Q7" * 24]}, "metadata.items[2]"),
            ({"a": {"b": [{"c": {"d": {"e": {"broadcast_enabled": True}}}}]}},
             "metadata.a.b[0].c.d.e.broadcast_enabled"),
            ({"policy": {"dryRunRequired": "false"}}, "metadata.policy.dryRunRequired"),
        ],
    )  # fmt: skip
    def test_paths_name_the_place_of_the_material(
        self, client: TestClient, seller: Headers, metadata: dict[str, Any], field: str
    ) -> None:
        response = client.post(
            CREDENTIAL_REFS, json=credential_ref_body(metadata=metadata), headers=seller
        )
        assert_refused(response, field=field)

    def test_a_secret_field_in_the_query_string_is_refused(
        self, client: TestClient, seller: Headers
    ) -> None:
        response = client.get(f"{CREDENTIAL_REFS}?status=active&api_key=plainvalue", headers=seller)
        assert_refused(response, field="query.api_key")
        assert "plainvalue" not in response.text

    @pytest.mark.parametrize(
        "case",
        [
            pytest.param(case, id=case.id)
            for case in FORBIDDEN_CASES
            if case.kind in ("provider_api_key", "jwt") and " " not in case.value
        ],
    )
    def test_a_secret_in_the_url_path_is_refused(
        self, client: TestClient, seller: Headers, case: ForbiddenCase
    ) -> None:
        for url in (
            f"/inference/providers/{case.value}/health",
            f"/inference/credential-refs/{case.value}/rotate",
            f"/no/such/route/{case.value}",
        ):
            response = client.get(url, headers=seller)
            assert_refused(response, field="path")
            assert_not_echoed(response, case.value)

    def test_a_percent_encoded_secret_in_the_path_is_refused(
        self, client: TestClient, seller: Headers
    ) -> None:
        secret = "sk-" + "Zx9" * 16
        encoded = "".join(f"%{ord(c):02X}" for c in secret)
        response = client.get(f"/inference/providers/{encoded}/health", headers=seller)
        assert_refused(response, field="path")
        assert_not_echoed(response, secret)

    def test_material_is_refused_before_authentication(self, client: TestClient) -> None:
        body = credential_ref_body(metadata={"password": "plainvalue"})
        response = client.post(CREDENTIAL_REFS, json=body)
        assert_refused(response, field="metadata.password")

    def test_a_raw_key_as_the_new_reference_leaves_the_reference_unchanged(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        created = create_credential_ref(client, seller)
        secret = "sk-proj-" + "Rk4" * 20
        response = client.patch(
            f"{CREDENTIAL_REFS}/{created['credential_ref_id']}/rotate",
            json={"rotation_reason": "scheduled", "new_credential_ref": secret},
            headers=admin_headers(app),
        )
        assert_refused(response, field="new_credential_ref")
        assert_not_echoed(response, secret)
        listed = client.get(CREDENTIAL_REFS, headers=seller).json()["credential_refs"]
        assert [ref["credential_ref"] for ref in listed] == [created["credential_ref"]]
        assert listed[0]["rotated_at"] is None

    def test_a_bearer_token_in_a_provider_contact_is_refused(
        self, client: TestClient, seller: Headers
    ) -> None:
        token = "Bearer " + "tK8" * 12
        body = enroll_body("credref_unused", contact={"escalation": {"header": token}})
        response = client.post("/inference/providers/enroll", json=body, headers=seller)
        assert_refused(response, field="contact.escalation.header")
        assert_not_echoed(response, token)


class TestNothingIsStoredOrLogged:
    def test_the_refused_corpus_leaves_no_trace(
        self,
        client: TestClient,
        app: FastAPI,
        seller: Headers,
        database_file: Path | None,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        # Named loggers too: SQLAlchemy pins its own at WARNING, and statement logging would
        # show any refused value that reached an INSERT.
        for name in ("flow_memory", "sqlalchemy.engine", "uvicorn", "fastapi"):
            caplog.set_level(logging.DEBUG, logger=name)
        attempts = _every_placement()
        for attempt in attempts:
            response = attempt.send(client, seller)
            assert response.status_code == 422, (attempt.case.id, attempt.placement)
            assert response.json()["error"]["code"] == "forbidden_material"
        # An accepted request, so the log search below is known to see the server's lines.
        assert client.get(CREDENTIAL_REFS, headers=seller).status_code == 200

        assert credential_ref_count(app) == 0
        needles = {a.case.needle for a in attempts if a.case.needle} | {a.marker for a in attempts}
        assert len(needles) > len(FORBIDDEN_CASES)

        stored = stored_bytes(app, database_file)
        assert b"provider-team-alpha" in stored  # the seller's key row: the search sees data
        leaked = sorted(needle for needle in needles if needle.encode() in stored)
        assert leaked == []

        logged = server_log_text(caplog)
        assert f"GET {CREDENTIAL_REFS} 200" in logged  # the access log line was captured
        leaked = sorted(needle for needle in needles if needle in logged)
        assert leaked == []


class TestAllowedLookAlikes:
    @pytest.mark.parametrize(
        "document", [pytest.param(document, id=case_id) for case_id, document in ALLOWED_CASES]
    )
    def test_look_alike_in_metadata_is_stored(
        self, client: TestClient, seller: Headers, document: dict[str, Any]
    ) -> None:
        response = client.post(
            CREDENTIAL_REFS, json=credential_ref_body(metadata=document), headers=seller
        )
        assert response.status_code == 201, response.text
        assert set(response.json()["credential_ref"]["metadata"]) == set(document)

    def test_look_alikes_in_the_query_string_are_accepted(
        self, client: TestClient, seller: Headers
    ) -> None:
        params = {
            "status": "active",
            "dry_run_required": "true",
            "broadcast_enabled": "false",
            "raw_credentials_allowed": "false",
            "credential_ref": "secret://inference/provider-alpha",
            "unit_type": "token",
            "max_tokens": "4096",
            "q": "The provider team keeps a spare machine ready for the evening peak",
        }
        response = client.get(CREDENTIAL_REFS, params=params, headers=seller)
        assert response.status_code == 200, response.text

    def test_the_contract_examples_are_accepted(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        created = create_credential_ref(client, seller)
        response = client.patch(
            f"{CREDENTIAL_REFS}/{created['credential_ref_id']}/rotate",
            json={
                "rotation_reason": "scheduled_rotation",
                "new_credential_ref": "secret://inference/provider-alpha-2026-07",
                "operator_ticket": "SEC-1024",
            },
            headers=admin_headers(app),
        )
        assert response.status_code == 200, response.text
        assert response.json()["rotation"]["secret_value_redacted"] is True


def _nested(levels: int) -> Any:
    document: Any = 1
    for _ in range(levels):
        document = {"a": document}
    return document


def _body_of_exactly(size: int) -> bytes:
    """A valid credential-ref body of ``size`` bytes, made of strings within the bounds."""
    chunk = "c" * 4000
    body = credential_ref_body(metadata={"chunks": [], "pad": ""})
    items = (size - len(json.dumps(body))) // (len(chunk) + 4)
    body["metadata"]["chunks"] = [chunk] * items
    body["metadata"]["pad"] = "p" * (size - len(json.dumps(body)))
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


class TestBounds:
    def test_unknown_top_level_fields_are_refused(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        body = credential_ref_body(surprise_field="hello")
        response = client.post(CREDENTIAL_REFS, json=body, headers=seller)
        assert_refused(response, field="surprise_field", code="unknown_field")
        assert credential_ref_count(app) == 0

    def test_a_body_over_the_limit_is_refused_with_413(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        limit = app.state.settings.max_body_bytes
        assert limit == 1_048_576
        body = _body_of_exactly(limit + 1)
        response = client.post(
            CREDENTIAL_REFS, content=body, headers={**seller, "content-type": "application/json"}
        )
        assert_refused(response, field="body", code="payload_too_large", status=413)
        assert credential_ref_count(app) == 0

    def test_a_streamed_body_over_the_limit_is_refused_without_a_declared_length(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        body = _body_of_exactly(app.state.settings.max_body_bytes + 1)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 65_536):
                yield body[start : start + 65_536]

        response = client.post(
            CREDENTIAL_REFS,
            content=chunks(),
            headers={**seller, "content-type": "application/json"},
        )
        assert response.request.headers.get("content-length") is None
        assert_refused(response, field="body", code="payload_too_large", status=413)

    def test_a_body_at_the_limit_is_accepted(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        body = _body_of_exactly(app.state.settings.max_body_bytes)
        response = client.post(
            CREDENTIAL_REFS, content=body, headers={**seller, "content-type": "application/json"}
        )
        assert response.status_code == 201, response.text[:500]

    @pytest.mark.parametrize(("length", "refused"), [(4096, False), (4097, True)])
    def test_strings_longer_than_4096_characters_are_refused(
        self, client: TestClient, seller: Headers, length: int, refused: bool
    ) -> None:
        body = credential_ref_body(metadata={"note": "n" * length})
        response = client.post(CREDENTIAL_REFS, json=body, headers=seller)
        if refused:
            assert_refused(response, field="metadata.note", code="value_too_long")
        else:
            assert response.status_code == 201, response.text[:500]

    def test_a_field_name_longer_than_4096_characters_is_refused(
        self, client: TestClient, seller: Headers
    ) -> None:
        body = credential_ref_body(metadata={"k" * 4097: 1})
        response = client.post(CREDENTIAL_REFS, json=body, headers=seller)
        assert_refused(response, field="metadata", code="value_too_long")
        assert "k" * 200 not in response.text

    @pytest.mark.parametrize(("length", "refused"), [(1000, False), (1001, True)])
    def test_lists_longer_than_1000_items_are_refused(
        self, client: TestClient, seller: Headers, length: int, refused: bool
    ) -> None:
        body = credential_ref_body(metadata={"items": list(range(length))})
        response = client.post(CREDENTIAL_REFS, json=body, headers=seller)
        if refused:
            assert_refused(response, field="metadata.items", code="list_too_long")
        else:
            assert response.status_code == 201, response.text[:500]

    def test_objects_with_more_than_1000_fields_are_refused(
        self, client: TestClient, seller: Headers
    ) -> None:
        body = credential_ref_body(metadata={"wide": {f"f{i}": i for i in range(1001)}})
        response = client.post(CREDENTIAL_REFS, json=body, headers=seller)
        assert_refused(response, field="metadata.wide", code="object_too_large")

    @pytest.mark.parametrize(("levels", "refused"), [(MAX_DEPTH - 1, False), (MAX_DEPTH, True)])
    def test_nesting_deeper_than_16_levels_is_refused(
        self, client: TestClient, seller: Headers, levels: int, refused: bool
    ) -> None:
        # metadata is level 1 of the body, so its innermost value sits at level levels + 1.
        body = credential_ref_body(metadata=_nested(levels))
        response = client.post(CREDENTIAL_REFS, json=body, headers=seller)
        if refused:
            assert_refused(response, field="metadata" + ".a" * levels, code="too_deep")
        else:
            assert response.status_code == 201, response.text[:500]

    def test_nesting_too_deep_for_the_json_parser_is_refused_not_a_crash(
        self, client: TestClient, seller: Headers
    ) -> None:
        body = b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        response = client.post(
            CREDENTIAL_REFS, content=body, headers={**seller, "content-type": "application/json"}
        )
        assert_refused(response, field="body", code="too_deep")

    def test_a_number_of_thousands_of_digits_is_refused(
        self, client: TestClient, seller: Headers
    ) -> None:
        body = json.dumps(credential_ref_body(metadata={"n": 0})).replace(
            '"n": 0', '"n": ' + "7" * 5000
        )
        response = client.post(
            CREDENTIAL_REFS, content=body, headers={**seller, "content-type": "application/json"}
        )
        assert_refused(response, field="body", code="value_too_long")

    def test_a_bounds_error_never_names_a_secret_key(
        self, client: TestClient, seller: Headers
    ) -> None:
        secret = "ghp_" + "Hb5" * 12
        for metadata, code in (
            ({secret: "v" * 5000}, "value_too_long"),
            ({secret: list(range(1001))}, "list_too_long"),
            ({secret: _nested(MAX_DEPTH)}, "too_deep"),
        ):
            response = client.post(
                CREDENTIAL_REFS, json=credential_ref_body(metadata=metadata), headers=seller
            )
            assert response.status_code == 422, response.text[:500]
            assert response.json()["error"]["code"] == code
            assert response.json()["error"]["field"].startswith(f"metadata.{REDACTED_KEY}")
            assert_not_echoed(response, secret)

    def test_invalid_json_holding_a_secret_is_refused_without_echo(
        self, client: TestClient, seller: Headers
    ) -> None:
        secret = "sk-" + "Jp3" * 16
        body = '{"metadata": {"note": "' + secret + '"'
        response = client.post(
            CREDENTIAL_REFS, content=body, headers={**seller, "content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_json"
        assert_not_echoed(response, secret)


class TestValuesInThePath:
    """What a caller writes in a path reaches neither the access log nor an error message."""

    SECRET = "sk-live-" + "Q7wE9rT2yU4iO6pA8sD0fG3h"
    UNKNOWN = "ord_no_such_order_zz9"

    def test_the_access_log_writes_the_route_template(
        self, client: TestClient, seller: Headers, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="flow_memory")
        answers = [
            client.post(
                f"/inference/market/orders/{value}/cancel",
                json={"cancel_reason": "test"},
                headers=seller,
            )
            for value in (self.SECRET, self.UNKNOWN)
        ]
        assert [a.status_code for a in answers] == [422, 404], [a.text for a in answers]
        answers.append(client.get(f"/inference/{self.UNKNOWN}", headers=seller))
        assert answers[-1].status_code == 404
        logged = server_log_text(caplog)
        # The refused one is answered by the guard, ahead of the access log.
        assert logged.count("POST /inference/market/orders/{order_id}/cancel 404") == 1
        assert "GET (no route) 404" in logged
        for value in (self.SECRET, self.UNKNOWN):
            assert value not in logged
            assert all(value not in answer.text for answer in answers)
