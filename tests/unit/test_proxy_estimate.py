"""What an enforced payer's hold covers before a call (flow_memory.proxy.paying.estimated_cost):
the estimated units at the dearest target's price, and through a deployment the royalties that
cost would pay, so that a payer who can cover the cost but not its royalties is refused before
any provider is called rather than left owing them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flow_memory.deployments.domain import DeployedCall, RoyaltyTerm
from flow_memory.proxy.paying import estimated_cost
from flow_memory.proxy.service import Plan, Target

NOW = datetime(2026, 6, 17, tzinfo=UTC)


def target(price: str) -> Target:
    return Target(
        provider_id="prov_test",
        seller_owner_id="seller",
        base_url="https://provider.example.net/v1",
        credential_ref="secret://inference/test",
        compatible_api="chat_completions",
        translation=None,
        unit_type="token",
        unit_price=Decimal(price),
        reference_unit_price=None,
        order_id=None,
        quality_score=None,
    )


def plan(*, deployment: DeployedCall | None = None) -> Plan:
    return Plan(
        route_id="route_test",
        owner_id="owner",
        model="model",
        unit_type="token",
        estimated_units=1000,
        agent_id=None,
        workspace_id="workspace-default",
        task_id=None,
        goal_id=None,
        targets=(target("0.000002"), target("0.000003")),
        allow_fallback=True,
        warnings=(),
        expires_at=NOW,
        deployment=deployment,
    )


def term(kind: str, bps: int) -> RoyaltyTerm:
    return RoyaltyTerm(
        kind=kind,
        publisher_id=f"{kind}-publisher",
        slug=f"{kind}-publisher/{kind}",
        version="1.0.0",
        version_id=f"rv_{kind}",
        royalty_bps=bps,
    )


def test_a_plain_call_holds_its_cost_at_the_dearest_price() -> None:
    assert estimated_cost(plan()) == Decimal("0.003")


def test_a_call_through_a_deployment_holds_its_royalties_too() -> None:
    deployment = DeployedCall(
        deployment_id="dep_test",
        slug="owner/reviewer",
        revision=1,
        agent_version_id="rv_agent",
        model_version_id="rv_model",
        terms=(term("agent", 500), term("model", 250)),
    )
    # 0.003 of cost, 5 % and 2.5 % of it in royalties.
    assert estimated_cost(plan(deployment=deployment)) == Decimal("0.003225")
