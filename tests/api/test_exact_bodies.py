"""JSON numbers in request bodies reach the money fields exactly: a price with 18 decimal
places, or 38 digits in all, is stored and answered with every digit (a float keeps ~17)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tests.factories import Headers, admin_headers, eligible_provider, seller_headers

PRICES = ["0.000000750000000001", "0.123456789012345678", "1234567.123456789012345678"]


@pytest.mark.parametrize("text", PRICES)
def test_an_ask_price_written_as_a_json_number_keeps_every_digit(
    client: TestClient, text: str
) -> None:
    app = client.app
    seller: Headers = seller_headers(app)  # type: ignore[arg-type]
    provider = eligible_provider(client, seller)
    body = (
        '{"side": "ask", "model": "flow-memory-orchestrator", "unit_type": "token", '
        f'"units": 1, "limit_unit_price": {text}, "provider_id": "{provider["provider_id"]}"}}'
    )
    answer = client.post(
        "/inference/market/orders",
        content=body,
        headers={**seller, "content-type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    assert f'"limit_unit_price":{text}' in answer.text.replace(" ", "")
    depth = client.get(
        "/inference/market/depth",
        params={"model": "flow-memory-orchestrator", "unit_type": "token"},
        headers=admin_headers(app),  # type: ignore[arg-type]
    )
    assert text in depth.text
    assert Decimal(text) in {
        Decimal(str(level["unit_price"])) for level in depth.json(parse_float=Decimal)["asks"]
    }


def test_a_price_with_more_than_18_decimals_is_refused_not_rounded(client: TestClient) -> None:
    seller: Headers = seller_headers(client.app)  # type: ignore[arg-type]
    provider = eligible_provider(client, seller)
    body = (
        '{"side": "ask", "model": "flow-memory-orchestrator", "unit_type": "token", '
        f'"units": 1, "limit_unit_price": 0.0000007500000000001, '
        f'"provider_id": "{provider["provider_id"]}"}}'
    )
    answer = client.post(
        "/inference/market/orders",
        content=body,
        headers={**seller, "content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
