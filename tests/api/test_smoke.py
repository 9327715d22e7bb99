from fastapi.testclient import TestClient

from tests.factories import eligible_provider, seller_headers


def test_an_enrolled_paired_published_provider_is_eligible(client: TestClient) -> None:
    headers = seller_headers(client.app)  # type: ignore[arg-type]
    provider = eligible_provider(client, headers)
    health = client.get(f"/inference/providers/{provider['provider_id']}/health", headers=headers)
    assert health.status_code == 200
    assert health.json()["route_gate"] == "eligible"
    assert health.json()["status"] == "healthy"
