"""POST /inference/market/payment-challenge/preview: disabled, audited, never executing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from flow_memory.payments.models import PaymentChallengePreview
from tests.assertions import error, ok
from tests.factories import eligible_provider, key_headers, seller_headers

PREVIEW = "/inference/market/payment-challenge/preview"
Headers = dict[str, str]


@pytest.fixture
def records(app: FastAPI, client: TestClient, buyer: Headers) -> dict[str, str]:
    """A filled bid and a reservation owned by the buyer."""
    eligible_provider(client, seller_headers(app))
    order = ok(
        client.post(
            "/inference/market/orders",
            json={
                "side": "bid",
                "model": "flow-memory-orchestrator",
                "unit_type": "token",
                "units": 250000,
                "limit_unit_price": 0.0000008,
                "time_in_force": "ioc",
            },
            headers=buyer,
        ),
        201,
    )
    reservation = ok(
        client.post(
            "/inference/market/reservations",
            json={
                "model": "flow-memory-orchestrator",
                "unit_type": "token",
                "requested_units": 250000,
                "max_unit_price": 0.0000008,
                "idempotency_key": "task-42",
            },
            headers=buyer,
        ),
        201,
    )
    return {"order_id": order["order"]["order_id"], "reservation_id": reservation["reservation_id"]}


def seed_body(records: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        **records,
        "buyer_id": "agent-research-1",
        "provider_id": "provider_alpha",
        "estimated_total_cost": 0.1875,
        "currency": "USD_CREDIT",
        "acknowledge_disabled_execution": True,
    }
    body.update(overrides)
    return body


def test_the_seed_request_returns_the_disabled_envelope_and_is_audited(
    app: FastAPI, client: TestClient, buyer: Headers, records: dict[str, str]
) -> None:
    body = ok(client.post(PREVIEW, json=seed_body(records), headers=buyer), 201)
    preview = body["payment_challenge_preview"]
    assert preview["challenge_id"].startswith("payprev_")
    assert preview["status"] == "disabled_preview_only"
    assert preview["execution_enabled"] is False
    assert preview["requires_signature"] is False
    assert preview["requires_sensitive_signing_material"] is False
    assert preview["broadcast_allowed"] is False
    assert preview["next_safe_actions"] == [
        "record audit preview",
        "continue with dry-run accounting only",
    ]
    with app.state.session_factory() as session:
        audit = session.scalars(select(PaymentChallengePreview)).one()
    assert audit.challenge_id == preview["challenge_id"]
    assert audit.order_id == records["order_id"]
    assert audit.request["estimated_total_cost"] == "0.1875"


def test_the_acknowledgement_is_required(
    client: TestClient, buyer: Headers, records: dict[str, str]
) -> None:
    error(
        client.post(
            PREVIEW, json=seed_body(records, acknowledge_disabled_execution=False), headers=buyer
        ),
        422,
        "acknowledgement_required",
        "acknowledge_disabled_execution",
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"signature": "0x" + "ab" * 65},
        {"signing_material": {"kind": "wallet"}},
        {"execution_enabled": True},
        {"broadcast_enabled": True},
        {"requires_signature": True},
    ],
)
def test_signing_material_and_execution_requests_are_refused(
    app: FastAPI,
    client: TestClient,
    buyer: Headers,
    records: dict[str, str],
    extra: dict[str, Any],
) -> None:
    detail = error(
        client.post(PREVIEW, json=seed_body(records, **extra), headers=buyer),
        422,
        "forbidden_material",
    )
    assert detail["field"] == next(iter(extra))
    with app.state.session_factory() as session:
        assert session.scalars(select(PaymentChallengePreview)).all() == []


def test_account_payloads_are_unknown_fields(
    client: TestClient, buyer: Headers, records: dict[str, str]
) -> None:
    error(
        client.post(PREVIEW, json=seed_body(records, account={"iban": "x"}), headers=buyer),
        422,
        "unknown_field",
        "account",
    )


def test_records_must_exist_and_be_the_callers(
    app: FastAPI, client: TestClient, buyer: Headers, records: dict[str, str]
) -> None:
    error(
        client.post(PREVIEW, json=seed_body(records, order_id="ord_missing"), headers=buyer),
        404,
        "not_found",
        "order_id",
    )
    stranger = key_headers(app, "someone-else", "inference:buy")
    error(
        client.post(PREVIEW, json=seed_body(records, buyer_id=None), headers=stranger),
        404,
        "not_found",
        "order_id",
    )
    # Naming the buyer it is not is refused before its records are looked up.
    answer = client.post(PREVIEW, json=seed_body(records), headers=stranger)
    error(answer, 403, "identity_not_yours", "buyer_id")
    assert "agent-research-1" not in answer.text
    error(client.post(PREVIEW, json=seed_body({}), headers=buyer), 422, "invalid_request")


def test_the_preview_needs_inference_buy(
    app: FastAPI, client: TestClient, records: dict[str, str]
) -> None:
    error(client.post(PREVIEW, json=seed_body(records)), 401, "unauthenticated")
    reader = key_headers(app, "agent-research-1", "inference:read")
    detail = error(
        client.post(PREVIEW, json=seed_body(records), headers=reader), 403, "missing_scope"
    )
    assert "inference:buy" in detail["message"]
