"""Deploy an agent and a model from the Flow Memory registry, call the deployment with the
official SDK client, and read the royalties its publisher earned. Prints every step.

    python examples/deployment_royalties_demo.py --publisher-id acme --publisher-key fm_… \\
        --seller-key fm_… --buyer-key fm_… --model-server-url http://127.0.0.1:8080/v1 \\
        [--base-url http://127.0.0.1:8765] [--served-model NAME]

With `--sdk-client PACKAGE:CLASS` the calls go through that SDK client class, constructed with
`base_url` (Flow Memory's `/v1`) and `api_key` (a Flow Memory key): the official SDK client, which
the `test` extra installs (`pip install -e '.[test]'`), or any client with its interface.
Without it, the same calls are sent as plain HTTP, exactly what such a client sends.

Keys (make them with `flow-memory keys create --owner NAME --scopes …`):
- the publisher's: inference:publish and inference:read (its owner is --publisher-id, the
  namespace the model and the agent are published under);
- the seller's: inference:sell and inference:read;
- the buyer's: inference:buy, inference:read and inference:proxy.

The script:
1. publishes a model and an agent that fits it, each with a royalty, under the publisher's
   namespace (a version never changes: its price and royalty are fixed once published);
2. enrolls a provider pointing at the SDK-compatible model server, whose catalog names the
   registry model version, and publishes its capacity;
3. deploys the agent and the model: the answer gives the model name to call, `dep/<slug>`;
4. calls the deployment (whole and streamed) with the SDK client, printing each call's cost
   and royalty lines;
5. reads the royalty report as the publisher, once the calls' usage is written.

Everything is a dry-run USD_CREDIT ledger record: no funds move.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

FLUSH_SECONDS = 30  # how long to wait for the calls' usage batch before giving up
ASK_UNIT_PRICE = "0.0000005"


class Step:
    """Calls one endpoint and prints what came back; stops the script on an unexpected answer."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.number = 0

    def title(self, text: str) -> None:
        self.number += 1
        print(f"\n{self.number:>2}. {text}")

    def __call__(
        self, title: str, method: str, path: str, key: str, *, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        self.title(title)
        return self.quiet(method, path, key, expect=expect, **kwargs)

    def quiet(
        self, method: str, path: str, key: str, *, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        answer = self.client.request(method, path, headers=headers, **kwargs)
        print(f"    {method} {path} -> {answer.status_code}")
        body: dict[str, Any] = json.loads(answer.text, parse_float=Decimal)
        if answer.status_code != expect:
            error = body.get("error", {})
            print(f"    unexpected answer: {error.get('code')}: {error.get('message')}")
            print(f"    hint: {error.get('hint')}")
            raise SystemExit(1)
        return body


def show(label: str, value: Any) -> None:
    print(f"    {label}: {format(value, 'f') if isinstance(value, Decimal) else value}")


def exact(value: Any) -> Decimal:
    """An amount from the SDK client (a float it parsed) as the exact decimal the API sent."""
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def publish(step: Step, publisher: str, owner: str) -> tuple[str, str]:
    model_slug, agent_slug = f"{owner}/example-chat", f"{owner}/example-helper"
    model = step(
        "Publish a model with a 2.5% royalty (250 bps)",
        "POST",
        "/inference/registry/models",
        publisher,
        expect=201,
        json={
            "slug": model_slug,
            "display_name": "Example chat model",
            "description": "A chat model served by the example's provider",
            "tags": ["chat"],
            "license": "apache-2.0",
            "version": "1.0.0",
            "pricing": {"model": "per_token", "price": ASK_UNIT_PRICE},
            "royalty_bps": 250,
            "model": {
                "modality": "chat",
                "compatible_api": ["chat_completions", "responses"],
                "context_window": 8192,
                "family": "example",
            },
        },
    )
    show("model", f"{model['entry']['slug']}@{model['version']['version']}")
    agent = step(
        "Publish an agent that fits it, with a 5% royalty (500 bps)",
        "POST",
        "/inference/registry/agents",
        publisher,
        expect=201,
        json={
            "slug": agent_slug,
            "display_name": "Example helper",
            "description": "Answers in one sentence",
            "tags": ["chat"],
            "license": "mit",
            "version": "1.0.0",
            "pricing": {"model": "per_request", "price": "0.001"},
            "royalty_bps": 500,
            "agent": {
                "requirements": {"apis": ["chat_completions"], "min_context_window": 4096},
                "config_template": {
                    "system_prompt": "Answer in one sentence.",
                    "parameters": {"temperature": 0.7},
                },
            },
        },
    )
    show("agent", f"{agent['entry']['slug']}@{agent['version']['version']}")
    return model_slug, agent_slug


def serve(step: Step, seller: str, model_server_url: str, served: str, model_slug: str) -> None:
    suffix = str(int(time.time()))
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    ref = step(
        "Create a credential reference (an opaque pointer; the secret stays with the operator)",
        "POST",
        "/inference/credential-refs",
        seller,
        expect=201,
        json={
            "credential_ref": f"secret://inference/example-{suffix}",
            "display_name": "Example provider reference",
        },
    )["credential_ref"]
    provider = step(
        "Enroll a provider in front of the model server",
        "POST",
        "/inference/providers/enroll",
        seller,
        expect=201,
        json={
            "provider_name": f"Example Provider {suffix}",
            "base_url": model_server_url,
            "credential_ref_id": ref["credential_ref_id"],
            "supported_units": ["token"],
        },
    )["provider"]
    provider_id = provider["provider_id"]
    show("provider_id", provider_id)
    token = step.quiet(
        "POST", f"/inference/providers/{provider_id}/pairing-token", seller, expect=201
    )
    step.quiet(
        "POST",
        f"/inference/providers/{provider_id}/heartbeat",
        seller,
        headers={"x-flow-memory-pairing-token": token["pairing_token"]},
    )
    step(
        "Publish the catalog: the served model names the registry version",
        "POST",
        f"/inference/providers/{provider_id}/catalog",
        seller,
        json={
            "catalog_version": now,
            "models": [
                {
                    "model": served,
                    "compatible_api": "chat_completions",
                    "unit_types": ["token"],
                    "context_window": 8192,
                    "registry_model": {"slug": model_slug, "version": "1.0.0"},
                }
            ],
        },
    )
    step(
        "Publish capacity (a resting ask)",
        "POST",
        f"/inference/providers/{provider_id}/capacity",
        seller,
        json={
            "capacity_version": now,
            "inventory": [
                {
                    "model": served,
                    "unit_type": "token",
                    "available_units": 5_000_000,
                    "ask_unit_price": ASK_UNIT_PRICE,
                    "min_order_units": 1,
                    "expires_at": "2099-01-01T00:00:00Z",
                }
            ],
        },
    )


def deploy(step: Step, buyer: str, model_slug: str, agent_slug: str) -> dict[str, Any]:
    answer = step(
        "Deploy the agent and the model (pinning their versions, configuration and terms)",
        "POST",
        "/inference/deployments",
        buyer,
        expect=201,
        json={
            "name": f"example-{int(time.time())}",
            "agent": {"slug": agent_slug},
            "model": {"slug": model_slug, "version": "1.0.0"},
            "configuration": {"parameters": {"temperature": 0.2}},
            "requirements": {"min_context_window": 4096},
            "policy": {"max_unit_price": "0.000001", "allow_fallback": True},
        },
    )
    deployment: dict[str, Any] = answer["deployment"]
    show("deployment_id", deployment["deployment_id"])
    show("call it as", deployment["model"])
    show("serving now", answer["capacity"]["serving_now"])
    for pin in ("agent", "model"):
        p = deployment["pins"][pin]
        show(f"pinned {pin}", f"{p['slug']}@{p['version']}, royalty {p['royalty_bps']} bps")
    return deployment


def show_arithmetic(meta: dict[str, Any]) -> None:
    show("units", meta["usage"]["units"])
    show("cost", exact(meta["cost"]))
    for line in meta["royalties"]:
        amount = exact(line["amount"])
        show(f"royalty to {line['slug']}", f"{line['royalty_bps']} bps = {format(amount, 'f')}")
    show("royalty total", exact(meta["royalty_total"]))
    show("total", exact(meta["total"]))


def sdk_client(spec: str, base_url: str, key: str) -> Any:
    """The SDK client named ``package:Class``, pointed at Flow Memory's /v1 with a Flow Memory
    key: the official SDK client, or any client with the same interface."""
    package, _, name = spec.partition(":")
    client_class = getattr(importlib.import_module(package), name)
    return client_class(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


def call_with_sdk(step: Step, sdk: Any, model: str) -> None:
    step.title(f"Call {model} with the SDK client")
    show("listed in /v1/models", model in [m.id for m in sdk.models.list()])
    chat = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16
    )
    show("answer", (chat.choices[0].message.content or "").strip()[:80])
    show_arithmetic((chat.model_extra or {})["flow_memory"])
    step.title(f"Stream a call to {model} with the SDK client")
    chunks = list(
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Count to three."}],
            max_tokens=16,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    show("answer", text.strip()[:80])
    show_arithmetic((chunks[-1].model_extra or {})["flow_memory"])


def call_over_http(step: Step, buyer: str, model: str) -> None:
    """The same two calls as plain HTTP, the requests any SDK-compatible client sends."""
    listed = step("List the models", "GET", "/v1/models", buyer)
    show("listed in /v1/models", model in [m["id"] for m in listed["data"]])
    ask = {"model": model, "messages": [{"role": "user", "content": "Say hello."}]}
    chat = step(f"Call {model}", "POST", "/v1/chat/completions", buyer, json=ask)
    show("answer", (chat["choices"][0]["message"]["content"] or "").strip()[:80])
    show_arithmetic(chat["flow_memory"])
    step.title(f"Stream a call to {model}")
    events = []
    headers = {"authorization": f"Bearer {buyer}"}
    body = {**ask, "messages": [{"role": "user", "content": "Count to three."}], "stream": True}
    with step.client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
        for line in answer.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line.removeprefix("data: "), parse_float=Decimal))
    text = "".join(
        (e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices")
    )
    show("answer", text.strip()[:80])
    show_arithmetic(events[-1]["flow_memory"])


def royalties(step: Step, publisher: str, calls: int) -> None:
    step.title("Read the publisher's royalties (once the calls' usage batch is written)")
    deadline = time.monotonic() + FLUSH_SECONDS
    while True:
        report = step.quiet("GET", "/inference/royalties", publisher)
        counted = sum(r["usage_records"] for r in report["rows"] if r["kind"] == "agent")
        if counted >= calls or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for row in report["rows"]:
        show(
            f"{row['day']} {row['kind']} {row['slug']}@{row['version']}",
            f"{row['usage_records']} calls, cost {format(row['cost'], 'f')}, "
            f"royalty {format(row['royalty'], 'f')} ({row['royalty_bps']} bps)",
        )
    show("royalty total", report["totals"]["royalty"])
    show("funds_moved", str(report["funds_moved"]).lower())


def run(
    base_url: str,
    owner: str,
    keys: tuple[str, str, str],
    model_server_url: str,
    served: str,
    sdk: str | None,
) -> None:
    publisher, seller, buyer = keys
    with httpx.Client(base_url=base_url, timeout=120) as client:
        step = Step(client)
        model_slug, agent_slug = publish(step, publisher, owner)
        serve(step, seller, model_server_url, served, model_slug)
        deployment = deploy(step, buyer, model_slug, agent_slug)
        if sdk is None:
            call_over_http(step, buyer, deployment["model"])
        else:
            with sdk_client(sdk, base_url, buyer) as client:
                call_with_sdk(step, client, deployment["model"])
        royalties(step, publisher, calls=2)
        print("\nDone. Every amount above is a dry-run USD_CREDIT ledger record: no funds moved.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", default=os.environ.get("FLOW_MEMORY_URL", "http://127.0.0.1:8765")
    )
    parser.add_argument(
        "--publisher-id",
        default=os.environ.get("FLOW_MEMORY_PUBLISHER_ID"),
        help="the publisher key's owner",
    )
    parser.add_argument("--publisher-key", default=os.environ.get("FLOW_MEMORY_PUBLISHER_KEY"))
    parser.add_argument("--seller-key", default=os.environ.get("FLOW_MEMORY_SELLER_KEY"))
    parser.add_argument("--buyer-key", default=os.environ.get("FLOW_MEMORY_BUYER_KEY"))
    parser.add_argument(
        "--model-server-url", required=True, help="the SDK-compatible model server to serve"
    )
    parser.add_argument(
        "--sdk-client",
        default=os.environ.get("FLOW_MEMORY_SDK_CLIENT"),
        metavar="PACKAGE:CLASS",
        help="call through this SDK client class (the official SDK client's package and class); "
        "left out, the same calls are sent as plain HTTP",
    )
    parser.add_argument(
        "--served-model",
        default="flow-memory-example-chat",
        help="the name the model server answers to",
    )
    args = parser.parse_args()
    if not (args.publisher_id and args.publisher_key and args.seller_key and args.buyer_key):
        parser.error("--publisher-id, --publisher-key, --seller-key and --buyer-key are required")
    try:
        run(
            args.base_url,
            args.publisher_id,
            (args.publisher_key, args.seller_key, args.buyer_key),
            args.model_server_url,
            args.served_model,
            args.sdk_client,
        )
    except httpx.HTTPError as error:
        print(f"could not reach Flow Memory at {args.base_url}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
