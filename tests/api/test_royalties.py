"""The royalty report and export: each pinned version's day, with the usage and cost behind
it, equal to the calls' royalty lines and to the ledger's royalty transfers, to the last digit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from flow_memory.deployments import royalties
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.scopes import AUDIT, PUBLISH, READ
from flow_memory.ledger.models import LedgerPosting, LedgerTransfer
from flow_memory.ledger.reconcile import check_ledger
from flow_memory.ledger.service import account_of
from flow_memory.usage.models import UsageRecord
from tests.api.test_deployment_calls import AGENT_BPS, MODEL_BPS, call, deployed
from tests.api.test_proxy import SECRET, Market, _events, scripted_market
from tests.factories import admin_headers, key_headers

ROYALTIES = "/inference/royalties"


@pytest.fixture
def market(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Market]:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    with scripted_market(database_url, clock, proxy_route_cache_seconds=0) as scripted:
        yield scripted


def calls(market: Market) -> list[dict[str, Any]]:
    """Three whole calls and a stream through the deployment: their flow_memory objects."""
    model = deployed(market)["model"]
    found = []
    for _ in range(3):
        answer = call(market, model)
        assert answer.status_code == 200, answer.text
        found.append(answer.json()["flow_memory"])
    answer = call(market, model, stream=True)
    assert answer.status_code == 200, answer.text
    found.append(_events(answer.text)[-1]["flow_memory"])
    market.flushed()
    return found


def report(market: Market, headers: dict[str, str], **query: str) -> Any:
    answer = market.client.get(ROYALTIES, params=query, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def publisher(market: Market) -> dict[str, str]:
    return key_headers(market.app, "acme", PUBLISH, READ)


def test_the_report_sums_the_calls_lines_and_the_ledgers_transfers_exactly(
    market: Market,
) -> None:
    metas = calls(market)
    body = report(market, publisher(market))
    rows = {row["kind"]: row for row in body["rows"]}
    assert set(rows) == {"agent", "model"}
    cost = sum((Decimal(str(m["cost"])) for m in metas), Decimal(0))
    for kind, bps in (("agent", AGENT_BPS), ("model", MODEL_BPS)):
        row = rows[kind]
        assert (row["publisher_id"], row["version"], row["royalty_bps"]) == ("acme", "1.0.0", bps)
        assert row["day"] == "2026-06-17"
        assert row["usage_records"] == len(metas)
        assert Decimal(str(row["cost"])) == cost
        lines = sum(
            (
                Decimal(str(line["amount"]))
                for m in metas
                for line in m["royalties"]
                if line["kind"] == kind
            ),
            Decimal(0),
        )
        assert Decimal(str(row["royalty"])) == lines == cost * bps / 10_000
        assert Decimal(str(row["royalty_of_cost"])) == lines  # no rounding at these prices
    total = Decimal(str(body["totals"]["royalty"]))
    assert total == sum((Decimal(str(m["royalty_total"])) for m in metas), Decimal(0))
    with market.app.state.session_factory() as session:
        account = account_of(session, "acme")
        assert account is not None
        credited = session.scalars(
            select(LedgerPosting.amount)
            .join(LedgerTransfer, LedgerTransfer.transfer_id == LedgerPosting.transfer_id)
            .where(
                LedgerTransfer.cause_kind == "royalty",
                LedgerPosting.account_id == account.account_id,
            )
        ).all()
        assert len(credited) == 2 * len(metas)
        assert sum(credited, Decimal(0)) == total
        check = check_ledger(session)
        assert check.ok, check.report()


def test_filters_narrow_the_report(market: Market) -> None:
    calls(market)
    headers = publisher(market)
    (row,) = report(market, headers, kind="agent")["rows"]
    assert row["slug"] == "acme/reviewer"
    (row,) = report(market, headers, slug="acme/swift-7b")["rows"]
    assert row["kind"] == "model"
    assert report(market, headers, day_from="2026-06-18")["rows"] == []
    assert len(report(market, headers, day_to="2026-06-17")["rows"]) == 2
    assert len(report(market, headers, limit="1")["rows"]) == 1


def test_publishers_see_their_own_admins_and_auditors_see_all(market: Market) -> None:
    calls(market)
    other = key_headers(market.app, "globex", PUBLISH, READ)
    assert report(market, other)["rows"] == []
    answer = market.client.get(ROYALTIES, params={"publisher_id": "acme"}, headers=other)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    for headers in (admin_headers(market.app), key_headers(market.app, "auditor", READ, AUDIT)):
        assert len(report(market, headers)["rows"]) == 2
        assert len(report(market, headers, publisher_id="acme")["rows"]) == 2
    assert market.client.get(ROYALTIES).status_code == 401
    proxy_only = key_headers(market.app, "acme", "inference:proxy")
    assert market.client.get(ROYALTIES, headers=proxy_only).status_code == 403


def test_the_export_is_ndjson_with_schema_version_redaction_and_safety_fields(
    market: Market,
) -> None:
    calls(market)
    answer = market.client.get(f"{ROYALTIES}/export", headers=publisher(market))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in answer.text.splitlines()]
    header, *rows, footer = lines
    assert header["record_type"] == "header"
    assert header["schema_version"] == "flow_memory.royalty_export.v1"
    assert header["redaction"]["applied"] is True
    assert header["filters"]["publisher_id"] == "acme"
    assert [r["record_type"] for r in rows] == ["royalty_day", "royalty_day"]
    assert footer == {"record_type": "footer", "record_count": 2, "complete": True}
    for line in (header, *rows):
        for name, value in SAFETY_ENVELOPE.items():
            assert line[name] == value
    listed = report(market, publisher(market))["rows"]
    assert [{k: r[k] for k in listed[0]} for r in rows] == listed


def test_the_export_as_one_json_document(market: Market) -> None:
    calls(market)
    answer = market.client.get(
        f"{ROYALTIES}/export", params={"format": "json"}, headers=publisher(market)
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert (document["ok"], document["format"], document["record_count"]) == (True, "json", 2)
    assert document["schema_version"] == "flow_memory.royalty_export.v1"
    assert document["complete"] is True and document["funds_moved"] is False
    assert {r["kind"] for r in document["records"]} == {"agent", "model"}


def test_lines_moved_before_are_not_moved_again(market: Market, clock: FrozenClock) -> None:
    """The batch path skips a line whose transfer key is written, as a retried batch would
    find it, and moves the others with the exact amounts."""
    found = calls(market)
    ids = [meta["usage_id"] for meta in found]
    with market.app.state.session_factory() as session:
        records = session.scalars(select(UsageRecord).where(UsageRecord.usage_id.in_(ids))).all()
        rows = [
            {name: getattr(r, name) for name in ROW_FIELDS} | {"usage_id": f"{r.usage_id}x"}
            for r in records[:2]
        ] + [{name: getattr(r, name) for name in ROW_FIELDS} for r in records[2:]]
        before = _royalty_keys(session)
        paid = royalties.record(
            session, rows, payers={"buyer-one": "buyer-one"}, transfers=True, now=clock.now()
        )
        after = _royalty_keys(session)
        # Only the two renamed calls' lines are new: the others were moved already.
        assert paid.transfers == 4
        assert after - before == {f"{r['usage_id']}:{kind}" for r in rows[:2] for kind in KINDS}
        amounts = dict(
            session.execute(
                select(LedgerTransfer.idempotency_key, LedgerPosting.amount)
                .join(LedgerPosting, LedgerPosting.transfer_id == LedgerTransfer.transfer_id)
                .where(LedgerTransfer.cause_kind == "royalty", LedgerPosting.amount > 0)
            ).all()
        )
        for row in rows[:2]:
            cost = row["actual_cost"]
            assert amounts[f"royalty:{row['usage_id']}:agent"] == cost * AGENT_BPS / 10_000
            assert amounts[f"royalty:{row['usage_id']}:model"] == cost * MODEL_BPS / 10_000
        check = check_ledger(session)
        assert check.ok, check.report()
        session.rollback()


ROW_FIELDS = (
    "usage_id",
    "actual_cost",
    "created_at",
    "agent_id",
    "owner_id",
    "agent_version_id",
    "model_version_id",
)
KINDS = ("agent", "model")


def _royalty_keys(session: Any) -> set[str]:
    keys = session.scalars(
        select(LedgerTransfer.idempotency_key).where(LedgerTransfer.cause_kind == "royalty")
    )
    return {key.removeprefix("royalty:") for key in keys}
