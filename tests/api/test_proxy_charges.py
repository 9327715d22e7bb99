"""Every proxied call's cost is a ledger transfer from its payer to the provider's owner,
written with its usage record; an enforced payer's estimate is held before the call (402 when it
cannot be covered, with no provider called) and settled after it, never below zero."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from flow_memory.kit.clock import FrozenClock
from flow_memory.ledger import service as ledger
from flow_memory.ledger.charges import Charge, charge_many
from flow_memory.ledger.models import LedgerHold, LedgerTransfer
from flow_memory.ledger.reconcile import check_ledger
from tests.api.test_proxy import SECRET, Market, chat, scripted_market
from tests.factories import SELLER, admin_headers, key_headers

BUYER = "buyer-one"  # the owner of market.buyer's key


@pytest.fixture
def market(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Market]:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    with scripted_market(database_url, clock, proxy_route_cache_seconds=0) as scripted:
        yield scripted


def balances(market: Market, *holders: str) -> dict[str, ledger.Balance | None]:
    with market.app.state.session_factory() as session:
        found: dict[str, ledger.Balance | None] = {}
        for holder in holders:
            account = ledger.account_of(session, holder)
            found[holder] = (
                None if account is None else ledger.balance(session, account_id=account.account_id)
            )
        return found


def cost_of(answer: Any) -> tuple[Decimal, str]:
    meta = answer.json()["flow_memory"]
    return Decimal(str(meta["cost"])), meta["usage_id"]


def ledger_is_clean(market: Market) -> None:
    with market.app.state.session_factory() as session:
        check = check_ledger(session)
        assert check.ok, check.report()


def admin_post(market: Market, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = market.client.post(path, json=body, headers=admin_headers(market.app))
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_a_call_moves_its_cost_from_the_payer_to_the_providers_owner(market: Market) -> None:
    market.provider("alpha.example")
    answer = chat(market)
    assert answer.status_code == 200, answer.text
    cost, usage_id = cost_of(answer)
    assert cost > 0
    assert market.app.state.usage_recorder.flush()
    found = balances(market, BUYER, SELLER)
    buyer, seller = found[BUYER], found[SELLER]
    assert buyer is not None and seller is not None
    assert (buyer.balance, seller.balance) == (-cost, cost)  # the buyer is not enforced
    with market.app.state.session_factory() as session:
        transfer = session.scalars(
            select(LedgerTransfer).where(LedgerTransfer.idempotency_key == f"proxy:{usage_id}")
        ).one()
        assert (transfer.cause_kind, transfer.cause_id) == ("proxy_charge", usage_id)
    ledger_is_clean(market)


def test_an_enforced_payer_without_credit_is_refused_before_any_provider(market: Market) -> None:
    market.provider("alpha.example")
    admin_post(market, "/inference/ledger/enforcement", {"holder_id": BUYER, "enforced": True})
    answer = chat(market)
    assert answer.status_code == 402, answer.text
    error = answer.json()["error"]
    assert error["code"] == "insufficient_credit" and answer.json()["funds_moved"] is False
    assert market.upstream.requests == []


def test_an_enforced_payer_pays_out_of_its_hold_and_never_below_zero(market: Market) -> None:
    market.provider("alpha.example")
    admin_post(market, "/inference/ledger/enforcement", {"holder_id": BUYER, "enforced": True})
    admin_post(
        market,
        "/inference/ledger/grants",
        {"holder_id": BUYER, "amount": "1", "idempotency_key": "grant-buyer-1"},
    )
    answer = chat(market)
    assert answer.status_code == 200, answer.text
    cost, _ = cost_of(answer)
    assert market.app.state.usage_recorder.flush()
    buyer = balances(market, BUYER)[BUYER]
    assert buyer is not None
    assert (buyer.balance, buyer.held, buyer.available) == (1 - cost, 0, 1 - cost)
    with market.app.state.session_factory() as session:
        statuses = session.scalars(select(LedgerHold.status)).all()
        assert statuses == ["settled"]
    # A balance below the call's estimate is refused; nothing is taken.
    admin_post(
        market,
        "/inference/ledger/grants",
        {"holder_id": "buyer-poor", "amount": "0.000001", "idempotency_key": "grant-poor"},
    )
    admin_post(
        market, "/inference/ledger/enforcement", {"holder_id": "buyer-poor", "enforced": True}
    )
    poor = key_headers(market.app, "buyer-poor", "inference:proxy")
    refused = chat(market, headers=poor)
    assert refused.status_code == 402, refused.text
    assert market.app.state.usage_recorder.flush()
    poor_balance = balances(market, "buyer-poor")["buyer-poor"]
    assert poor_balance is not None and poor_balance.balance == Decimal("0.000001")
    ledger_is_clean(market)


def test_a_replayed_batch_of_charges_moves_nothing_twice(market: Market) -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    charges = [
        Charge(usage_id=f"use_replay{n}", payer="payer-a", payee="payee-b", amount=Decimal("0.5"))
        for n in range(3)
    ]
    factory = market.app.state.session_factory
    for expected_transfers in (3, 0):
        with factory.begin() as session:
            done = charge_many(session, charges, now=now)
            assert done.transfers == expected_transfers
    found = balances(market, "payer-a", "payee-b")
    payer, payee = found["payer-a"], found["payee-b"]
    assert payer is not None and payee is not None
    assert (payer.balance, payee.balance) == (Decimal("-1.5"), Decimal("1.5"))
    ledger_is_clean(market)


def test_charging_can_be_turned_off(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    with scripted_market(
        database_url, clock, proxy_route_cache_seconds=0, ledger_charges=False
    ) as market:
        market.provider("alpha.example")
        assert chat(market).status_code == 200
        assert market.app.state.usage_recorder.flush()
        assert balances(market, BUYER) == {BUYER: None}


def test_a_bound_agents_calls_are_paid_by_its_operator(market: Market) -> None:
    market.provider("alpha.example")
    operator = key_headers(market.app, BUYER, "inference:buy", "inference:proxy")
    registered = market.client.post(
        "/inference/agents", json={"kind": "bound", "display_name": "Bound"}, headers=operator
    )
    assert registered.status_code == 201, registered.text
    agent_id = registered.json()["agent"]["agent_id"]
    answer = chat(market, headers=operator, flow_memory={"agent_id": agent_id})
    assert answer.status_code == 200, answer.text
    cost, _ = cost_of(answer)
    assert market.app.state.usage_recorder.flush()
    found = balances(market, BUYER, agent_id)
    paid = found[BUYER]
    assert paid is not None and paid.balance == -cost
    agent_account = found[agent_id]
    assert agent_account is None or agent_account.balance == 0
    ledger_is_clean(market)
