"""Two servers on one database, one killed -9 while proxied calls and grants are under way on
both, leave a consistent ledger: every usage record with a cost has exactly one charge and every
charge its usage record (they commit together), no grant is applied twice when it is sent again
after the restart, and `flow-memory db check-ledger` finds every balance equal to its postings."""

from __future__ import annotations

import signal
import threading
from decimal import Decimal

import httpx
from sqlalchemy import select

from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.ledger.models import LedgerTransfer
from flow_memory.usage.models import UsageRecord
from tests.browser.dashboard import seed_provider
from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import Deployment

MODEL = "sigkill-chat"


def test_a_killed_server_beside_another_leaves_every_charge_with_its_usage_record(
    deployment: Deployment,
) -> None:
    seller = deployment.create_key("sigkill-seller", "inference:sell,inference:read")
    buyer = deployment.create_key("sigkill-buyer", "inference:proxy")
    admin = deployment.create_key("sigkill-operator", "inference:admin")
    admin_headers = {"authorization": f"Bearer {admin.secret}"}
    with ScriptedUpstream(models=[MODEL]) as upstream:
        server = deployment.start()
        other = deployment.start()  # a second server on the same database, left running
        with server.client() as client:
            seed_provider(
                client,
                {"authorization": f"Bearer {seller.secret}"},
                name="Sigkill provider",
                base_url=upstream.base_url,
                model=MODEL,
                ask_unit_price="0.000001",
            )
        answered: list[str] = []
        granted: list[str] = []
        enough = threading.Event()
        stop = threading.Event()

        def calls(base_url: str) -> None:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
            headers = {"authorization": f"Bearer {buyer.secret}"}
            with httpx.Client(base_url=base_url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        answer = client.post("/v1/chat/completions", json=body, headers=headers)
                    except httpx.TransportError:
                        return  # the server is gone
                    if answer.status_code == 200:
                        answered.append(answer.json()["flow_memory"]["usage_id"])
                        if len(answered) >= 60:
                            enough.set()

        def grants(base_url: str) -> None:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    key = f"sigkill-grant-{base_url.rsplit(':', 1)[1]}-{n}"
                    try:
                        answer = client.post(
                            "/inference/ledger/grants",
                            json={
                                "holder_id": "sigkill-buyer",
                                "amount": "1",
                                "idempotency_key": key,
                            },
                            headers=admin_headers,
                        )
                    except httpx.TransportError:
                        return
                    if answer.status_code == 201:
                        granted.append(key)
                    n += 1

        bases = (server.base_url, other.base_url)
        workers = [threading.Thread(target=calls, args=(bases[n % 2],)) for n in range(4)]
        workers += [threading.Thread(target=grants, args=(base,)) for base in bases]
        for worker in workers:
            worker.start()
        try:
            assert enough.wait(timeout=300), "the proxy answered too few calls"
            server.process.send_signal(signal.SIGKILL)  # calls and grants still in flight
            assert server.process.wait(timeout=30) == -signal.SIGKILL
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)

        restarted = deployment.start()
        with restarted.client() as client:
            # Every grant acknowledged before the kill, sent again, moves nothing more.
            for key in granted:
                again = client.post(
                    "/inference/ledger/grants",
                    json={"holder_id": "sigkill-buyer", "amount": "1", "idempotency_key": key},
                    headers=admin_headers,
                )
                assert again.status_code in (200, 201), again.text
        deployment.stop_all()

    engine = make_engine(deployment.database_url)
    try:
        with make_session_factory(engine)() as session:
            costly = set(
                session.scalars(
                    select(UsageRecord.usage_id).where(
                        UsageRecord.source == "proxy", UsageRecord.actual_cost > Decimal(0)
                    )
                )
            )
            charged = [
                key.removeprefix("proxy:")
                for key in session.scalars(
                    select(LedgerTransfer.idempotency_key).where(
                        LedgerTransfer.cause_kind == "proxy_charge"
                    )
                )
            ]
            grant_transfers = session.scalars(
                select(LedgerTransfer.idempotency_key).where(LedgerTransfer.cause_kind == "grant")
            ).all()
    finally:
        engine.dispose()
    assert costly, "no usage record was written before the kill"
    assert sorted(charged) == sorted(costly)  # each charge once, each with its record
    assert len(grant_transfers) == len(set(grant_transfers))
    assert {f"grant:{key}" for key in granted} <= set(grant_transfers)
    check = deployment.cli("db", "check-ledger")
    assert check.returncode == 0, check.stdout + check.stderr
