"""A free agent with a granted balance calls the real local model through the proxy with its
own key until its credits run out: then it is answered 402 before any provider is called, its
balance never went below zero, and its metabolism shows what it spent."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalMarket

pytestmark = pytest.mark.e2e

GRANT = Decimal("0.00004")  # a handful of short calls at the local model's price


def _ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_free_agent_pays_its_own_inference_until_its_credits_run_out(
    local_market: LocalMarket,
) -> None:
    market = local_market
    admin = market.deployment.create_key("e2e-ledger-operator", "inference:admin")
    admin_headers = {"authorization": f"Bearer {admin.secret}"}
    creator = {"authorization": f"Bearer {market.buyer.secret}"}
    with market.server.client() as client:
        agent = _ok(
            client.post(
                "/inference/agents",
                json={"kind": "free", "display_name": "E2E free agent", "values": ["thrift"]},
                headers=creator,
            ),
            201,
        )["agent"]
        agent_id = agent["agent_id"]
        issued = _ok(
            client.post(
                f"/inference/agents/{agent_id}/keys",
                json={"scopes": ["inference:proxy", "inference:read"]},
                headers=creator,
            ),
            201,
        )["key"]
        _ok(
            client.post(
                "/inference/ledger/grants",
                json={"holder_id": agent_id, "amount": str(GRANT), "idempotency_key": "e2e-agent"},
                headers=admin_headers,
            ),
            201,
        )
        own = {"authorization": f"Bearer {issued['secret']}"}
        body = {
            "model": market.model,
            "messages": [{"role": "user", "content": "Name one colour."}],
            "max_tokens": 8,
        }
        answered = 0
        refused: httpx.Response | None = None
        for _ in range(40):
            answer = client.post("/v1/chat/completions", json=body, headers=own, timeout=300)
            if answer.status_code == 402:
                refused = answer
                break
            assert answer.status_code == 200, answer.text
            assert answer.json()["flow_memory"]["usage_id"]
            answered += 1
        assert refused is not None, "the agent's credits never ran out"
        assert answered >= 1
        error = refused.json()["error"]
        assert error["code"] == "insufficient_credit"
        assert refused.json()["funds_moved"] is False

        # The usage writer writes a moment after each call: the last call is settled once its
        # record is in, which the metabolism's units show.
        def metabolism() -> dict[str, Any]:
            found: dict[str, Any] = _ok(
                client.get(f"/inference/agents/{agent_id}/metabolism", headers=own)
            )["metabolism"]
            return found

        seen = metabolism()
        give_up = time.monotonic() + 60  # only a broken usage writer takes this long
        while Decimal(str(seen["held"])) != 0 and time.monotonic() < give_up:
            time.sleep(0.05)  # polling interval
            seen = metabolism()
        assert Decimal(str(seen["held"])) == 0
        spent = Decimal(str(seen["spent"]))
        balance = Decimal(str(seen["balance"]))
        assert spent > 0 and seen["units_consumed"] > 0
        assert balance >= 0, "an enforced account went below zero"
        assert balance + spent == GRANT
