"""A whole Flow Memory flow against a running server, printing what happened at each step.

    python examples/inference_market_demo.py --seller-key fm_… --buyer-key fm_…
        [--base-url http://127.0.0.1:8765] [--model-server-url http://127.0.0.1:8080/v1]

`flow-memory demo` prints the keys: use the `provider` key as the seller key and the `buyer`
key as the buyer key. The seller key needs inference:sell and inference:read; the buyer key
needs inference:buy, inference:plan, inference:read and inference:proxy. The script:

1. creates a credential reference and enrolls a provider;
2. pairs the provider and sends a heartbeat, then publishes its catalog and capacity;
3. reads the market depth;
4. quotes and routes under a policy;
5. places a bid that fills, then reserves capacity;
6. previews the disabled payment challenge;
7. sends one SDK-compatible chat call through the proxy;
8. reads the usage, cost and savings.

With `--model-server-url` the provider points at that SDK-compatible model server and the
proxy call gets a real answer. Without it, the proxy call shows how a failing provider is
reported. Everything is a dry-run record: no funds move.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from typing import Any

import httpx

SAFETY = (
    "dry_run_only",
    "funds_moved",
    "broadcast_allowed",
    "private_key_required",
    "live_trading_enabled",
    "legal_review_required",
    "compliance_review_required",
)


class Step:
    """Calls one endpoint and prints what came back; stops the script on an unexpected answer."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.number = 0

    def __call__(
        self, title: str, method: str, path: str, key: str, *, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        self.number += 1
        headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        answer = self.client.request(method, path, headers=headers, **kwargs)
        print(f"\n{self.number:>2}. {title}\n    {method} {path} -> {answer.status_code}")
        body: dict[str, Any] = json.loads(answer.text, parse_float=Decimal)
        if answer.status_code != expect:
            error = body.get("error", {})
            print(f"    unexpected answer: {error.get('code')}: {error.get('message')}")
            print(f"    hint: {error.get('hint')}")
            raise SystemExit(1)
        return body


def show(label: str, value: Any) -> None:
    print(f"    {label}: {format(value, 'f') if isinstance(value, Decimal) else value}")


def show_safety(body: dict[str, Any]) -> None:
    fields = body.get("flow_memory", body)
    show("safety", ", ".join(f"{name}={str(fields.get(name)).lower()}" for name in SAFETY))


def run(base_url: str, seller: str, buyer: str, model_server_url: str | None) -> None:
    model = "flow-memory-demo-chat"
    suffix = str(int(time.time()))
    with httpx.Client(base_url=base_url, timeout=120) as client:
        step = Step(client)
        ref = step(
            "Create a credential reference (an opaque pointer; the secret stays with the operator)",
            "POST",
            "/inference/credential-refs",
            seller,
            expect=201,
            json={
                "credential_ref": f"secret://inference/example-{suffix}",
                "display_name": "Example provider reference",
                "allowed_models": [model],
            },
        )["credential_ref"]
        show("credential_ref_id", ref["credential_ref_id"])
        provider = step(
            "Enroll a provider agent runtime",
            "POST",
            "/inference/providers/enroll",
            seller,
            expect=201,
            json={
                "provider_name": f"Example Provider {suffix}",
                "base_url": model_server_url or "http://127.0.0.1:9/v1",
                "credential_ref_id": ref["credential_ref_id"],
                "supported_units": ["token"],
            },
        )["provider"]
        provider_id = provider["provider_id"]
        show("provider_id", provider_id)
        token = step(
            "Create a pairing token",
            "POST",
            f"/inference/providers/{provider_id}/pairing-token",
            seller,
            expect=201,
        )
        step(
            "Pair with the first heartbeat",
            "POST",
            f"/inference/providers/{provider_id}/heartbeat",
            seller,
            headers={"x-flow-memory-pairing-token": token["pairing_token"]},
        )
        step(
            "Publish the catalog",
            "POST",
            f"/inference/providers/{provider_id}/catalog",
            seller,
            json={
                "catalog_version": "2026-01-01T00:00:00Z",
                "models": [
                    {
                        "model": model,
                        "compatible_api": "chat_completions",
                        "unit_types": ["token"],
                        "context_window": 8192,
                        "reference_unit_prices": {"token": "0.000001"},
                    }
                ],
            },
        )
        step(
            "Publish capacity (it becomes resting asks)",
            "POST",
            f"/inference/providers/{provider_id}/capacity",
            seller,
            json={
                "capacity_version": "2026-01-01T00:00:00Z",
                "inventory": [
                    {
                        "model": model,
                        "unit_type": "token",
                        "available_units": 5_000_000,
                        "ask_unit_price": "0.00000075",
                        "min_order_units": 1,
                        "expires_at": "2099-01-01T00:00:00Z",
                    }
                ],
            },
        )
        health = step(
            "Read the provider's health",
            "GET",
            f"/inference/providers/{provider_id}/health",
            seller,
        )
        show("route_gate", health["route_gate"])
        depth = step(
            "Read the market depth",
            "GET",
            "/inference/market/depth",
            buyer,
            params={"model": model, "unit_type": "token"},
        )
        show("best ask", depth["spread"]["best_ask"])
        show_safety(depth)
        policy = {
            "model": model,
            "unit_type": "token",
            "estimated_units": 250_000,
            "market_policy": {"max_unit_price": "0.0000008", "min_discount_bps": 500},
        }
        quote = step("Quote under a policy", "POST", "/inference/quote", buyer, json=policy)
        for q in quote["quotes"][:3]:
            show(f"quote #{q['rank']}", f"{q['provider_name']} at {format(q['unit_price'], 'f')}")
        route = step("Select and record a route", "POST", "/inference/route", buyer, json=policy)
        show("decision", route["decision"])
        route_id = route["route"]["route_id"] if route["route"] else None
        show("route_id", route_id)
        order = step(
            "Place a bid that fills against the provider's ask",
            "POST",
            "/inference/market/orders",
            buyer,
            expect=201,
            json={
                "side": "bid",
                "model": model,
                "unit_type": "token",
                "units": 10_000,
                "limit_unit_price": "0.0000008",
                "currency": "USD_CREDIT",
                "time_in_force": "ioc",
                "metadata": {"route_id": route_id} if route_id else {},
            },
        )["order"]
        show(
            "order", f"{order['order_id']} {order['status']}, {order['filled_units']} units filled"
        )
        reservation = step(
            "Reserve capacity for five minutes",
            "POST",
            "/inference/market/reservations",
            buyer,
            expect=201,
            json={
                "model": model,
                "unit_type": "token",
                "requested_units": 20_000,
                "max_unit_price": "0.0000008",
                "hold_seconds": 300,
                "idempotency_key": f"example-{suffix}",
            },
        )
        show("reservation", f"{reservation['reservation_id']} holds {reservation['held_units']}")
        answer = step(
            "Preview the payment challenge (disabled: nothing executes)",
            "POST",
            "/inference/market/payment-challenge/preview",
            buyer,
            expect=201,
            json={
                "order_id": order["order_id"],
                "acknowledge_disabled_execution": True,
            },
        )
        preview = answer["payment_challenge_preview"]
        show("status", f"{preview['status']}, execution_enabled={preview['execution_enabled']}")
        show("next safe actions", "; ".join(preview["next_safe_actions"]))
        show_safety(answer)
        step.number += 1
        print(f"\n{step.number:>2}. Send an SDK-compatible chat call through the proxy")
        answer = client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {buyer}", "x-flow-memory-route-id": route_id or ""},
            json={"model": model, "messages": [{"role": "user", "content": "Say hello."}]},
        )
        print(f"    POST /v1/chat/completions -> {answer.status_code}")
        body = json.loads(answer.text, parse_float=Decimal)
        if answer.status_code == 200:
            show("answer", (body["choices"][0]["message"]["content"] or "").strip()[:80])
            meta = body["flow_memory"]
            show("provider", meta["provider_id"])
            show("units", meta["usage"]["units"])
            show("cost", meta["cost"])
            show("savings", meta["savings"])
            show_safety(body)
        else:
            show("error", f"{body['error']['code']}: {body['error']['message']}")
        time.sleep(0.3)  # proxy usage records are written in batches
        usage = step(
            "Read usage, cost and savings",
            "GET",
            "/inference/analytics/usage",
            buyer,
            params={"model": model},
        )
        summary = usage["summary"]
        show("records", summary["records"])
        show("actual cost", summary["actual_cost"])
        show("savings", summary["savings"])
        print("\nDone. Every record above is a dry-run record: no funds moved.")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a whole Flow Memory flow and print it.")
    parser.add_argument(
        "--base-url", default=os.environ.get("FLOW_MEMORY_URL", "http://127.0.0.1:8765")
    )
    parser.add_argument("--seller-key", default=os.environ.get("FLOW_MEMORY_SELLER_KEY"))
    parser.add_argument("--buyer-key", default=os.environ.get("FLOW_MEMORY_BUYER_KEY"))
    parser.add_argument(
        "--model-server-url", help="an SDK-compatible model server the provider points at"
    )
    args = parser.parse_args()
    if not args.seller_key or not args.buyer_key:
        parser.error("--seller-key and --buyer-key are required (the demo prints them)")
    try:
        run(args.base_url, args.seller_key, args.buyer_key, args.model_server_url)
    except httpx.HTTPError as error:
        print(f"could not reach Flow Memory at {args.base_url}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
