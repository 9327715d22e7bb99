"""Calls through a deployment on two servers sharing one database, one server killed -9 while
they are under way, leave usage, royalties and the ledger consistent: each usage record of a
call through the deployment has exactly its cost charge and its two royalty transfers (each of
``cost * royalty_bps / 10,000``), every transfer has its record, the royalty days sum exactly
the records behind them, and `flow-memory db check-ledger` finds every balance equal to its
postings."""

from __future__ import annotations

import signal
import threading
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from flow_memory.deployments.domain import royalty_of
from flow_memory.deployments.models import RoyaltyDay
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.kit.money import from_parts
from flow_memory.ledger.models import LedgerPosting, LedgerTransfer
from flow_memory.usage.models import UsageRecord
from tests.browser.dashboard import seed_provider
from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import Deployment

MODEL = "sigkill-deployed-chat"
PUBLISHER = "sigpub"
BUYER = "sigkill-deployer"
AGENT_BPS = 500
MODEL_BPS = 250


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def _publish_serve_and_deploy(
    client: httpx.Client, seller: str, publisher: str, buyer: str, upstream: str
) -> str:
    """sigpub publishes a model and an agent, the seller's provider serves the model version,
    and the buyer deploys them; returns the deployment's model name."""
    as_publisher = {"authorization": f"Bearer {publisher}"}
    model = {
        "slug": f"{PUBLISHER}/kill-model",
        "display_name": "Kill model",
        "description": "A chat model",
        "license": "apache-2.0",
        "pricing": {"model": "per_token", "price": 0.000001},
        "royalty_bps": MODEL_BPS,
        "model": {
            "modality": "chat",
            "compatible_api": ["chat_completions"],
            "context_window": 4096,
            "family": "kill",
        },
    }
    agent = {
        "slug": f"{PUBLISHER}/kill-agent",
        "display_name": "Kill agent",
        "description": "An agent",
        "license": "mit",
        "pricing": {"model": "per_request", "price": 0.01},
        "royalty_bps": AGENT_BPS,
        "agent": {
            "requirements": {"apis": ["chat_completions"]},
            "config_template": {"system_prompt": "Answer briefly.", "parameters": {}},
        },
    }
    _ok(client.post("/inference/registry/models", json=model, headers=as_publisher), 201)
    _ok(client.post("/inference/registry/agents", json=agent, headers=as_publisher), 201)
    as_seller = {"authorization": f"Bearer {seller}"}
    provider = seed_provider(
        client,
        as_seller,
        name="Sigkill deployed provider",
        base_url=upstream,
        model=MODEL,
        ask_unit_price="0.0000013",
        available_units=10**9,
    )
    entry = {
        "model": MODEL,
        "compatible_api": "chat_completions",
        "unit_types": ["token"],
        "context_window": 4096,
        "reference_unit_prices": {"token": "0.000002"},
        "registry_model": {"slug": model["slug"], "version": "1.0.0"},
    }
    catalog = {"catalog_version": "2026-01-02T00:00:00Z", "models": [entry]}
    _ok(
        client.post(
            f"/inference/providers/{provider.provider_id}/catalog", json=catalog, headers=as_seller
        )
    )
    deployed = _ok(
        client.post(
            "/inference/deployments",
            json={
                "name": "kill-bot",
                "agent": {"slug": agent["slug"]},
                "model": {"slug": model["slug"]},
            },
            headers={"authorization": f"Bearer {buyer}"},
        ),
        201,
    )
    return str(deployed["deployment"]["model"])


def test_a_killed_server_leaves_each_deployed_calls_usage_charge_and_royalties_together(
    deployment: Deployment,
) -> None:
    seller = deployment.create_key("sigkill-seller", "inference:sell,inference:read")
    publisher = deployment.create_key(PUBLISHER, "inference:publish,inference:read")
    buyer = deployment.create_key(BUYER, "inference:proxy,inference:buy,inference:read")
    with ScriptedUpstream(models=[MODEL]) as upstream:
        server = deployment.start()
        other = deployment.start()  # a second server on the same database, left running
        with server.client() as client:
            model = _publish_serve_and_deploy(
                client, seller.secret, publisher.secret, buyer.secret, upstream.base_url
            )
        answered: dict[str, list[str]] = {server.base_url: [], other.base_url: []}
        enough = threading.Event()
        stop = threading.Event()

        def calls(base_url: str) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            headers = {"authorization": f"Bearer {buyer.secret}"}
            with httpx.Client(base_url=base_url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        answer = client.post("/v1/chat/completions", json=body, headers=headers)
                    except httpx.TransportError:
                        return  # the server is gone
                    if answer.status_code == 200:
                        answered[base_url].append(answer.json()["flow_memory"]["usage_id"])
                        if sum(map(len, answered.values())) >= 80:
                            enough.set()

        bases = (server.base_url, other.base_url)
        workers = [threading.Thread(target=calls, args=(bases[n % 2],)) for n in range(4)]
        for worker in workers:
            worker.start()
        try:
            assert enough.wait(timeout=300), "the deployment answered too few calls"
            server.process.send_signal(signal.SIGKILL)  # calls still in flight on both
            assert server.process.wait(timeout=30) == -signal.SIGKILL
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
        deployment.stop_all()  # the other server writes what it queued, as it stops

    engine = make_engine(deployment.database_url)
    try:
        with make_session_factory(engine)() as session:
            records = session.scalars(
                select(UsageRecord).where(UsageRecord.deployment_id.is_not(None))
            ).all()
            transfers = {
                t.idempotency_key: t.transfer_id
                for t in session.scalars(
                    select(LedgerTransfer).where(
                        LedgerTransfer.cause_kind.in_(("royalty", "proxy_charge"))
                    )
                )
            }
            received = {
                posting.transfer_id: posting.amount
                for posting in session.scalars(
                    select(LedgerPosting).where(
                        LedgerPosting.transfer_id.in_(list(transfers.values())),
                        LedgerPosting.amount > 0,
                    )
                )
            }
            days = session.scalars(select(RoyaltyDay)).all()
    finally:
        engine.dispose()

    assert len(records) >= 40, "too few usage records were written"
    # Every call the surviving server answered has its record (the killed server's last ones
    # may be lost, but never in part: see below).
    assert set(answered[other.base_url]) <= {r.usage_id for r in records}
    expected: dict[str, Decimal] = {}
    day_sums: dict[tuple[str, Any], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for record in records:
        assert record.actual_cost > 0
        expected[f"proxy:{record.usage_id}"] = record.actual_cost
        for kind, bps, version_id in (
            ("agent", AGENT_BPS, record.agent_version_id),
            ("model", MODEL_BPS, record.model_version_id),
        ):
            line = royalty_of(record.actual_cost, bps)
            expected[f"royalty:{record.usage_id}:{kind}"] = line
            sums = day_sums[(version_id, record.created_at.date())]
            sums[0] += 1
            sums[1] += record.actual_cost
            sums[2] += line
    # Each record's charge and royalties exactly once, each with its record, to the last digit.
    assert set(transfers) == set(expected)
    assert {key: received[transfers[key]] for key in transfers} == expected
    # The royalty days are the sums of the records behind them.
    assert {
        (day.version_id, day.day): [
            day.usage_records,
            from_parts(day.cost_whole, day.cost_nanos, day.cost_attos),
            from_parts(day.royalty_whole, day.royalty_nanos, day.royalty_attos),
        ]
        for day in days
    } == dict(day_sums)
    assert all(day.publisher_id == PUBLISHER for day in days)
    check = deployment.cli("db", "check-ledger")
    assert check.returncode == 0, check.stdout + check.stderr
