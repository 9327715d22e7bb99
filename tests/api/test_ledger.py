"""The ledger over HTTP: grants, enforcement, accounts, entries and the export; no route takes
a transfer instruction; ``flow-memory db check-ledger`` finds a tampered balance row."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from flow_memory import cli
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.errors import InsufficientCredit
from flow_memory.ledger import service
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.models import LedgerBalance
from tests.assertions import SAFETY, error, ok
from tests.factories import Headers, admin_headers, key_headers

LEDGER = "/inference/ledger"
OWNER = "agent-research-1"
OTHER = "agent-research-2"


def grant(
    client: TestClient, headers: Headers, holder: str, amount: Any, key: str, **extra: Any
) -> Any:
    body = {"holder_id": holder, "amount": amount, "idempotency_key": key, **extra}
    return client.post(f"{LEDGER}/grants", json=body, headers=headers)


def reader(app: FastAPI, owner: str = OWNER) -> Headers:
    return key_headers(app, owner, "inference:read")


class TestGrants:
    def test_a_grant_credits_the_holder_from_issuance_once(
        self, app: FastAPI, client: TestClient
    ) -> None:
        admin = admin_headers(app)
        first = ok(grant(client, admin, OWNER, "12.5", "welcome", memo="trial credits"), 201)
        assert first["replayed"] is False
        assert first["transfer"]["cause"] == {
            "kind": "grant",
            "id": "welcome",
            "actor_id": "operator",
            "memo": "trial credits",
        }
        account = first["account"]
        assert (account["holder_id"], account["balance"], account["available"]) == (
            OWNER,
            12.5,
            12.5,
        )
        again = ok(grant(client, admin, OWNER, "12.5", "welcome", memo="trial credits"))
        assert again["replayed"] is True
        assert again["transfer"]["transfer_id"] == first["transfer"]["transfer_id"]
        assert again["account"]["balance"] == 12.5
        reused = grant(client, admin, OWNER, "99", "welcome")
        error(reused, 409, "idempotency_key_reused", "idempotency_key")

    def test_only_admins_grant_and_amounts_are_positive_exact_decimals(
        self, app: FastAPI, client: TestClient
    ) -> None:
        error(grant(client, reader(app), OWNER, 1, "k"), 403, "missing_scope", "scope")
        admin = admin_headers(app)
        for amount in (0, -1, "0.0000000000000000001", "1000000000000.5"):
            answer = grant(client, admin, OWNER, amount, "k")
            assert answer.status_code == 422, answer.text
        precise = ok(grant(client, admin, OWNER, "0.000000000000000001", "tiny"), 201)
        assert precise["account"]["balance"] == 0.000000000000000001

    @pytest.mark.parametrize(
        "field", ["to_account", "address", "wallet", "destination", "from_account"]
    )
    def test_no_route_takes_a_transfer_instruction(
        self, app: FastAPI, client: TestClient, field: str
    ) -> None:
        admin = admin_headers(app)
        answer = grant(client, admin, OWNER, 1, "k", **{field: "acct_somewhere"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"] == field
        enforcement = client.post(
            f"{LEDGER}/enforcement",
            json={"holder_id": OWNER, "enforced": True, field: "x"},
            headers=admin,
        )
        assert enforcement.status_code == 422
        assert ok(client.get(f"{LEDGER}/accounts", headers=admin))["count"] == 0

    def test_a_wallet_address_in_any_field_is_refused_unechoed(
        self, app: FastAPI, client: TestClient
    ) -> None:
        evm = "0x52908400098527886E0F7030069857D2E4169EE7"
        answer = grant(client, admin_headers(app), OWNER, 1, "k", memo=f"pay out to {evm}")
        error(answer, 422, "forbidden_material")
        assert evm not in answer.text


class TestEnforcement:
    def test_an_enforced_owner_never_goes_below_zero(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        admin = admin_headers(app)
        ok(grant(client, admin, OWNER, 1, "g"), 201)
        set_on = client.post(
            f"{LEDGER}/enforcement", json={"holder_id": OWNER, "enforced": True}, headers=admin
        )
        assert ok(set_on)["account"]["enforcement"] == "on"
        with app.state.session_factory() as session:
            payer = service.account_of(session, OWNER)
            payee = service.open_account(session, holder_id="provider-x", now=clock.now())
            assert payer is not None and service.is_enforced(session, account_id=payer.account_id)
            charge = [
                Posting(payer.account_id, Decimal("-1.5")),
                Posting(payee.account_id, Decimal("1.5")),
            ]
            with pytest.raises(InsufficientCredit) as refused:
                service.transfer(
                    session, key="c1", postings=charge, cause=Cause("proxy_charge", "u1"),
                    now=clock.now(),
                )  # fmt: skip
            assert (refused.value.status_code, refused.value.code) == (402, "insufficient_credit")
            assert service.available(session, account_id=payer.account_id) == 1
            session.rollback()
        set_off = client.post(
            f"{LEDGER}/enforcement", json={"holder_id": OWNER, "enforced": False}, headers=admin
        )
        assert ok(set_off)["account"]["enforced"] is False

    def test_a_free_agents_enforcement_cannot_be_turned_off(
        self, app: FastAPI, client: TestClient
    ) -> None:
        creator = key_headers(app, OWNER, "inference:buy", "inference:read")
        agent = ok(
            client.post(
                "/inference/agents", json={"kind": "free", "display_name": "f"}, headers=creator
            ),
            201,
        )["agent"]
        answer = client.post(
            f"{LEDGER}/enforcement",
            json={"holder_id": agent["agent_id"], "enforced": False},
            headers=admin_headers(app),
        )
        error(answer, 409, "enforcement_fixed", "enforced")


class TestAccounts:
    def test_the_holder_admins_and_auditors_see_an_account_and_others_do_not(
        self, app: FastAPI, client: TestClient
    ) -> None:
        account_id = ok(grant(client, admin_headers(app), OWNER, 3, "g"), 201)["account"][
            "account_id"
        ]
        auditor = key_headers(app, "auditor", "inference:read", "inference:audit")
        for headers in (reader(app), admin_headers(app), auditor):
            body = ok(client.get(f"{LEDGER}/accounts/{account_id}", headers=headers))
            assert (body["account"]["balance"], body["account"]["held"]) == (3, 0)
        for path in (f"{LEDGER}/accounts/{account_id}", f"{LEDGER}/accounts/{account_id}/entries"):
            answer = client.get(path, headers=reader(app, OTHER))
            error(answer, 404, "not_found", "account_id")
            assert account_id not in answer.text
        mine = ok(client.get(f"{LEDGER}/accounts", headers=reader(app)))["accounts"]
        assert [a["account_id"] for a in mine] == [account_id]
        assert ok(client.get(f"{LEDGER}/accounts", headers=reader(app, OTHER)))["count"] == 0
        named = client.get(f"{LEDGER}/accounts", params={"holder_id": OWNER}, headers=reader(app))
        assert ok(named)["count"] == 1

    def test_entries_are_paged_newest_first_and_name_their_cause(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        admin = admin_headers(app)
        account_id = ""
        for index in range(5):
            body = ok(grant(client, admin, OWNER, index + 1, f"g{index}"), 201)
            account_id = body["account"]["account_id"]
            clock.advance(1)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = ok(
                client.get(
                    f"{LEDGER}/accounts/{account_id}/entries", params=params, headers=reader(app)
                )
            )
            seen += [e["cause"]["id"] for e in page["entries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["g4", "g3", "g2", "g1", "g0"]
        bad = client.get(
            f"{LEDGER}/accounts/{account_id}/entries",
            params={"cursor": "nope"},
            headers=reader(app),
        )
        error(bad, 422, "invalid_cursor", "cursor")


class TestExport:
    def test_the_export_is_ndjson_with_a_header_entries_and_a_footer(
        self, app: FastAPI, client: TestClient
    ) -> None:
        admin = admin_headers(app)
        ok(grant(client, admin, OWNER, "2.25", "g"), 201)
        auditor = key_headers(app, "auditor", "inference:read", "inference:audit")
        answer = client.get(f"{LEDGER}/export", headers=auditor)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in answer.text.splitlines()]
        header, entries, footer = lines[0], lines[1:-1], lines[-1]
        assert header["schema_version"] == "flow_memory.ledger_export.v1"
        assert header["redaction"]["applied"] is True
        assert {k: header[k] for k in SAFETY} == SAFETY
        assert sorted(e["amount"] for e in entries) == [-2.25, 2.25]
        assert all({k: e[k] for k in SAFETY} == SAFETY for e in entries)
        assert {e["cause_kind"] for e in entries} == {"grant"}
        assert footer == {"record_type": "footer", "record_count": 2, "complete": True}
        error(client.get(f"{LEDGER}/export", headers=reader(app)), 403, "missing_scope")


class TestCheckLedger:
    def test_check_ledger_is_clean_then_finds_a_tampered_balance_row(
        self,
        app: FastAPI,
        client: TestClient,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("FLOW_MEMORY_DATABASE_URL", database_url)
        account_id = ok(grant(client, admin_headers(app), OWNER, 5, "g"), 201)["account"][
            "account_id"
        ]
        assert cli.main(["db", "check-ledger"]) == 0
        assert "ledger clean" in capsys.readouterr().out
        with app.state.session_factory.begin() as session:
            session.execute(
                update(LedgerBalance)
                .where(LedgerBalance.account_id == account_id)
                .values(amount=Decimal("5.01"))
            )
        assert cli.main(["db", "check-ledger"]) == 1
        report = capsys.readouterr().err
        assert f"account {account_id}: balance row 5.01, postings sum 5" in report
