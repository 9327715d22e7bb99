"""The market book survives SIGKILL: every acknowledged order, fill and hold is rebuilt from the
database by a restarted server process (SQLite file, or PostgreSQL with
FLOW_MEMORY_TEST_DATABASE_URL)."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import catalog_body, credential_ref_body, enroll_body
from tests.integration.test_server import Deployment, _iso, _ok
from tests.processes import children, running

pytestmark = pytest.mark.integration

MODEL = "flow-memory-orchestrator"
DEPTH = f"/inference/market/depth?model={MODEL}&unit_type=token"
SNAPSHOT_UNITS = 2_500_000


def _eligible_provider(client: httpx.Client, headers: dict[str, str], now: datetime) -> str:
    reference = _ok(
        client.post("/inference/credential-refs", headers=headers, json=credential_ref_body()),
        201,
    )["credential_ref"]
    provider_id: str = _ok(
        client.post(
            "/inference/providers/enroll",
            headers=headers,
            json=enroll_body(reference["credential_ref_id"]),
        ),
        201,
    )["provider"]["provider_id"]
    base = f"/inference/providers/{provider_id}"
    token = _ok(client.post(f"{base}/pairing-token", headers=headers), 201)
    _ok(
        client.post(
            f"{base}/heartbeat",
            headers={**headers, token["pairing_header"]: token["pairing_token"]},
        )
    )
    _ok(client.post(f"{base}/catalog", headers=headers, json=catalog_body(version=_iso(now))))
    capacity = {
        "capacity_version": _iso(now),
        "inventory": [
            {
                "model": MODEL,
                "unit_type": "token",
                "available_units": SNAPSHOT_UNITS,
                "ask_unit_price": 0.00000075,
                "min_order_units": 1000,
                "expires_at": _iso(now + timedelta(days=30)),
            }
        ],
    }
    _ok(client.post(f"{base}/capacity", headers=headers, json=capacity))
    health = _ok(client.get(f"{base}/health", headers=headers))
    assert health["route_gate"] == "eligible", health["reasons"]
    return provider_id


def _order(
    client: httpx.Client, headers: dict[str, str], side: str, units: int, price: float, **extra: Any
) -> dict[str, Any]:
    body = {
        "side": side,
        "model": MODEL,
        "unit_type": "token",
        "units": units,
        "limit_unit_price": price,
        **extra,
    }
    return _ok(client.post("/inference/market/orders", headers=headers, json=body), 201)


def _book(view: dict[str, Any]) -> dict[str, Any]:
    return {
        key: view[key]
        for key in ("bids", "asks", "spread", "last_fill", "recent_fills", "active_reservations")
    }


def test_acknowledged_orders_and_holds_survive_sigkill(
    deployment: Deployment,
) -> None:
    seller = deployment.create_key("provider-team-alpha").headers
    buyer = deployment.create_key("agent-research-1", "inference:buy,inference:read").headers
    server = deployment.start()
    now = datetime.now(UTC)
    reservation_body = {
        "buyer_id": "agent-research-1",
        "model": MODEL,
        "unit_type": "token",
        "requested_units": 100_000,
        "max_unit_price": 0.00000075,
        "hold_seconds": 3600,
        "allow_partial": False,
        "idempotency_key": "durability-1",
    }

    with server.client() as client:
        provider_id = _eligible_provider(client, seller, now)
        partial = _order(client, buyer, "bid", 10_000, 0.0000006)["order"]
        low_bid = _order(client, buyer, "bid", 5000, 0.0000005)["order"]
        high_ask = _order(client, seller, "ask", 20_000, 0.0000009, provider_id=provider_id)
        _order(client, seller, "ask", 4000, 0.00000085, provider_id=provider_id)
        seller_hit = _order(client, seller, "ask", 8000, 0.00000055, provider_id=provider_id)
        assert seller_hit["order"]["status"] == "filled"
        assert [(f["bid_order_id"], f["units"]) for f in seller_hit["fills"]] == [
            (partial["order_id"], 8000)
        ]
        taken = _order(client, buyer, "bid", 30_000, 0.00000075, time_in_force="ioc")
        assert taken["order"]["status"] == "filled"
        reservation = _ok(
            client.post("/inference/market/reservations", headers=buyer, json=reservation_body),
            201,
        )
        assert reservation["held_units"] == 100_000
        before = _book(_ok(client.get(DEPTH, headers=buyer)))

    # The acknowledgements are in; kill the process without letting it shut down.
    market = children(server.process.pid)
    assert len(market) == 1, "the server runs its market in a process of its own"
    server.process.send_signal(signal.SIGKILL)
    assert server.process.wait(timeout=30) == -signal.SIGKILL
    # Its market process reads the end of their socket and exits too.
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in market):
        assert time.monotonic() < deadline, "the market process outlived its server"
        time.sleep(0.05)

    assert before["bids"] == [
        {"unit_price": 0.0000006, "available_units": 2000, "order_count": 1},
        {"unit_price": 0.0000005, "available_units": 5000, "order_count": 1},
    ]
    assert before["asks"] == [
        # Manual asks (20,000 + 4,000 + 8,000) shrank the snapshot ask by 32,000.
        {
            "unit_price": 0.00000075,
            "available_units": SNAPSHOT_UNITS - 32_000 - 130_000,
            "order_count": 1,
        },
        {"unit_price": 0.00000085, "available_units": 4000, "order_count": 1},
        {"unit_price": 0.0000009, "available_units": 20_000, "order_count": 1},
    ]
    assert before["active_reservations"] == {"count": 1, "held_units": 100_000}

    restarted = deployment.start()
    with restarted.client() as client:
        after = _book(_ok(client.get(DEPTH, headers=buyer)))
        assert after == before

        # The reservation is the same one and its units are still held.
        replay = _ok(
            client.post("/inference/market/reservations", headers=buyer, json=reservation_body)
        )
        assert replay["idempotent_replay"] is True
        assert replay["reservation_id"] == reservation["reservation_id"]
        all_unheld = SNAPSHOT_UNITS - 130_000
        refused = _order(client, buyer, "bid", all_unheld + 1, 0.00000075, time_in_force="fok")
        assert refused["order"]["status"] == "expired" and refused["fills"] == []

        # A resting order acknowledged before the kill can be cancelled.
        cancelled = _ok(
            client.post(
                f"/inference/market/orders/{low_bid['order_id']}/cancel",
                headers=buyer,
                json={"cancel_reason": "buyer_repriced", "requested_by": "agent-research-1"},
            )
        )
        assert cancelled["order"]["status"] == "cancelled"
        assert cancelled["order"]["remaining_units"] == 5000

        # A crossing order matches the partly filled bid acknowledged before the kill.
        crossing = _order(client, seller, "ask", 2000, 0.0000006, provider_id=provider_id)
        assert crossing["order"]["status"] == "filled"
        [fill] = crossing["fills"]
        assert (fill["bid_order_id"], fill["units"], fill["unit_price"]) == (
            partial["order_id"],
            2000,
            0.0000006,
        )
        again = _ok(
            client.post(
                f"/inference/market/orders/{high_ask['order']['order_id']}/cancel",
                headers=seller,
                json={"cancel_reason": "seller_repriced"},
            )
        )
        assert again["order"]["status"] == "cancelled"
        filled_bid = client.post(
            f"/inference/market/orders/{partial['order_id']}/cancel",
            headers=buyer,
            json={"cancel_reason": "buyer_repriced"},
        )
        assert filled_bid.status_code == 409, filled_bid.text
        assert filled_bid.json()["error"]["code"] == "order_not_cancellable"

        final = _ok(client.get(DEPTH, headers=buyer))
        assert final["bids"] == []
        shrunk = {**before["asks"][0]}
        shrunk["available_units"] -= 2000  # the crossing manual ask drew on the snapshot too
        assert final["asks"] == [
            shrunk,
            {"unit_price": 0.00000085, "available_units": 4000, "order_count": 1},
        ]
        assert final["active_reservations"] == {"count": 1, "held_units": 100_000}
        assert final["last_fill"]["fill_id"] == fill["fill_id"]
