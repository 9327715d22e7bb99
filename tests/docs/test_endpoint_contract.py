"""docs/INFERENCE_MARKET_ENDPOINTS.json and the agent index are generated from the app's routes;
these tests fail when either drifts (fix: `python -m flow_memory.contract --write`)."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI

from flow_memory import contract
from flow_memory.app import create_app
from flow_memory.settings import Settings

REGENERATE = "run `python -m flow_memory.contract --write` and commit the result"

# The contract's route-template table: key, method, literal template.
SEED_ROUTES = [
    ("marketList", "GET", "/inference/market/list"),
    ("modelDetail", "GET", "/inference/market/models/{model}"),
    ("feed", "GET", "/inference/market/feed"),
    ("buyerProfile", "GET", "/inference/buyers/{buyer_id}/profile"),
    ("sellerProfile", "GET", "/inference/sellers/{seller_id}/profile"),
    ("providerAgentManifest", "GET", "/inference/providers/agent/manifest"),
    ("credentialRefs", "POST", "/inference/credential-refs"),
    ("credentialRefs", "GET", "/inference/credential-refs"),
    ("credentialRefRotate", "PATCH", "/inference/credential-refs/{credential_ref_id}/rotate"),
    ("credentialRefRevoke", "POST", "/inference/credential-refs/{credential_ref_id}/revoke"),
    ("providerEnroll", "POST", "/inference/providers/enroll"),
    ("providerPairingToken", "POST", "/inference/providers/{provider_id}/pairing-token"),
    ("providerHeartbeat", "POST", "/inference/providers/{provider_id}/heartbeat"),
    ("providerCatalog", "POST", "/inference/providers/{provider_id}/catalog"),
    ("providerCapacity", "POST", "/inference/providers/{provider_id}/capacity"),
    ("providerHealth", "GET", "/inference/providers/{provider_id}/health"),
    ("marketOrders", "POST", "/inference/market/orders"),
    ("marketOrderCancel", "POST", "/inference/market/orders/{order_id}/cancel"),
    ("marketDepth", "GET", "/inference/market/depth"),
    ("marketReservations", "POST", "/inference/market/reservations"),
    ("paymentChallengePreview", "POST", "/inference/market/payment-challenge/preview"),
    ("analyticsUsage", "GET", "/inference/analytics/usage"),
    ("analyticsExport", "GET", "/inference/analytics/export"),
]
SEED_SCOPES = {
    "/inference/credential-refs POST": {"inference:sell", "inference:admin"},
    "/inference/market/orders POST": {"inference:buy", "inference:sell"},
    "/inference/analytics/export GET": {"inference:audit"},
    "/inference/quote POST": {"inference:plan"},
    "/v1/chat/completions POST": {"inference:proxy"},
}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(database_url="sqlite://"))


def test_the_endpoints_file_is_what_the_routes_generate(app: FastAPI) -> None:
    assert contract.ENDPOINTS_FILE.read_text() == contract.render_endpoints(app), REGENERATE


def test_the_agent_index_tables_are_what_the_routes_generate(app: FastAPI) -> None:
    text = contract.INDEX_FILE.read_text()
    assert contract.fill_index(text, app) == text, REGENERATE


def test_every_contract_route_key_is_published_with_its_template(app: FastAPI) -> None:
    document = json.loads(contract.ENDPOINTS_FILE.read_text())
    published = {(e["key"], e["method"], e["template"]) for e in document["endpoints"]}
    assert set(SEED_ROUTES) <= published
    for entry in document["endpoints"]:
        names = [p for p in entry["template"].split("/") if p.startswith("{")]
        assert entry["placeholders"] == [n.strip("{}") for n in names]
        assert entry["purpose"], entry
        if entry["template"].startswith(("/inference/", "/v1/")):
            assert entry["scopes"], entry


def test_scopes_are_read_from_each_routes_auth(app: FastAPI) -> None:
    document = contract.endpoint_contract(app)
    scopes = {f"{e['template']} {e['method']}": set(e["scopes"]) for e in document["endpoints"]}
    for route, expected in SEED_SCOPES.items():
        assert scopes[route] == expected, route
    assert scopes["/healthz GET"] == set()


def test_a_missing_marker_is_reported_not_ignored(app: FastAPI) -> None:
    with pytest.raises(ValueError, match="endpoints:begin"):
        contract.fill_index("# an index without markers\n", app)
