"""Who may call what: every route of the app, called with no key, by each role the demo hands
out a key for and by a second owner of each role, at the first owners' records.

Each row names its route as the OpenAPI document does and expects one outcome per caller: an
answer (2xx), or a refusal with its status, code and field. A route the document lists without
a row here fails ``test_every_route_has_a_row``: a new endpoint gets a row before it ships.

The same routes, read from the document, are also checked for the order of refusals: the key
comes first (no key is 401, a missing scope 403, whatever else is wrong with the request), and
a method a path does not serve is 405 with an ``allow`` header naming those it does."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory import demo
from flow_memory.app import create_app
from flow_memory.kit.actors import ACTOR_EXTENSION
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import ADMIN, AUDIT, BUY, PLAN, PROXY, PUBLISH, READ, SELL, VALIDATE
from flow_memory.reputation import verdicts
from flow_memory.settings import Settings
from tests.api.test_deployments import matrix_deploy_body, matrix_deployment
from tests.api.test_proxy import ScriptedUpstream, public_resolver
from tests.api.test_registry import agent_body, model_body, published
from tests.conftest import clear_tables
from tests.factories import (
    BUYER,
    SELLER,
    Headers,
    capacity_body,
    catalog_body,
    create_credential_ref,
    credential_ref_body,
    eligible_provider,
    enroll_body,
    key_headers,
)

MODEL = "flow-memory-orchestrator"
# Every role the demo gives a key to, with its owner and scopes, and a second owner of each.
SECOND_OWNERS = {
    "operator": "operator-beta",
    "provider": "provider-team-beta",
    "buyer": "agent-research-2",
    "auditor": "auditor-beta",
}
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    **demo.ROLES,
    **{f"{role}-2": (SECOND_OWNERS[role], scopes) for role, (_, scopes) in demo.ROLES.items()},
}
CALLERS = ("anonymous", *ROLES)


@dataclass(frozen=True)
class Outcome:
    """What a caller gets: any 2xx answer (``status`` None), or a refusal."""

    status: int | None
    code: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        return "2xx" if self.status is None else f"{self.status} {self.code} ({self.field})"


OK = Outcome(None)
UNAUTHENTICATED = Outcome(401, "unauthenticated")
MISSING_SCOPE = Outcome(403, "missing_scope", "scope")
NOT_FOUND = Outcome(404, "not_found")


def not_yours(field: str) -> Outcome:
    return Outcome(403, "identity_not_yours", field)


def access(
    any_of: Iterable[str] | None, *, owner: str | None = None, others: Outcome = OK
) -> dict[str, Outcome]:
    """Each caller's outcome. ``any_of`` None: anyone may call. Otherwise no key is 401 and a
    role holding none of ``any_of`` is 403 (admins hold every scope); admins and the role
    ``owner`` (whose records the row's request names; None: every caller's) get an answer, and
    every other caller holding the scope gets ``others``."""
    if any_of is None:
        return dict.fromkeys(CALLERS, OK)
    needed = set(any_of)
    outcomes = {"anonymous": UNAUTHENTICATED}
    for role, (_, scopes) in ROLES.items():
        if ADMIN in scopes:
            outcomes[role] = OK
        elif not needed & set(scopes):
            outcomes[role] = MISSING_SCOPE
        elif owner is None or role == owner:
            outcomes[role] = OK
        else:
            outcomes[role] = others
    return outcomes


@dataclass(frozen=True)
class Call:
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class World:
    """An app whose first owners hold an eligible provider and a resting bid, with a key for
    every caller; its helpers make fresh records for the calls that change them."""

    app: FastAPI
    client: TestClient
    keys: dict[str, Headers]
    provider_id: str
    credential_ref_id: str
    order_id: str
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def resting_bid(self) -> str:
        """A new resting bid of the first buyer."""
        answer = self.client.post(ORDERS, json=_bid(), headers=self.keys["buyer"])
        assert answer.status_code == 201, answer.text
        return str(answer.json()["order"]["order_id"])

    def credential_ref(self) -> str:
        """A new credential reference of the first provider owner."""
        secret = f"secret://inference/{self.fresh('matrix')}"
        return str(
            create_credential_ref(self.client, self.keys["provider"], credential_ref=secret)[
                "credential_ref_id"
            ]
        )

    def agent(self, kind: str = "free") -> str:
        """A new agent identity registered by the first buyer (a free one holds no key yet, so
        the first buyer still acts as it)."""
        body = {"kind": kind, "display_name": self.fresh("agent")}
        answer = self.client.post(AGENTS, json=body, headers=self.keys["buyer"])
        assert answer.status_code == 201, answer.text
        return str(answer.json()["agent"]["agent_id"])

    def buyers_account(self) -> str:
        """The first buyer's ledger account, opened by a grant."""
        body = {"holder_id": BUYER, "amount": 1, "idempotency_key": self.fresh("grant")}
        answer = self.client.post(f"{LEDGER}/grants", json=body, headers=self.keys["operator"])
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["account"]["account_id"])

    def job(self, **economics: Any) -> str:
        """A new job of the first buyer (auction mode unless ``payment_mode`` says)."""
        body = {
            "request": {"model_hint": "chat", "prompt": "hi", "max_tokens": 5},
            "economics": {"max_price": 1, **economics},
        }
        answer = self.client.post(JOBS, json=body, headers=self.keys["buyer"])
        assert answer.status_code == 201, answer.text
        return str(answer.json()["job"]["job_id"])

    def job_bid(self, job_id: str) -> str:
        """The first provider owner's bid on ``job_id``."""
        answer = self.client.post(
            f"{JOBS}/{job_id}/bids", json=_job_bid(self), headers=self.keys["provider"]
        )
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["bid"]["bid_id"])

    def withdrawal(self) -> Call:
        """A bid of the first provider owner on a new job, and the call that withdraws it."""
        job_id = self.job()
        return Call(f"{JOBS}/{job_id}/bids/{self.job_bid(job_id)}/withdraw")

    def early_award(self) -> Call:
        """A new job of the first buyer with a bid on it, and the call that awards it."""
        job_id = self.job()
        self.job_bid(job_id)
        return Call(f"{JOBS}/{job_id}/award")

    def awarded_job(self) -> str:
        """A new fixed-price job of the first buyer, won at once by the first provider owner."""
        job_id = self.job(payment_mode="fixed")
        self.job_bid(job_id)
        return job_id

    def result_hash(self) -> str:
        """The hash of the result of a job the first provider owner won and completed."""
        job_id = self.awarded_job()
        answer = self.client.post(
            f"{JOBS}/{job_id}/result", json=_job_result(), headers=self.keys["provider"]
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["result"]["result_hash"])

    def list_price_removal(self) -> Call:
        """Set a list price, and the call that removes it."""
        answer = self.client.put(
            "/inference/list-prices",
            json={"model": MODEL, "unit_type": "token", "unit_price": 0.000001},
            headers=self.keys["operator"],
        )
        assert answer.status_code == 200, answer.text
        return Call("/inference/list-prices", params={"model": MODEL, "unit_type": "token"})


@dataclass(frozen=True)
class Row:
    method: str
    template: str
    call: Callable[[World], Call]  # called once per caller: a fresh request
    expected: Mapping[str, Outcome]
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}" + (f" ({self.variant})" if self.variant else "")


def _bid(**extra: Any) -> dict[str, Any]:
    return {
        "side": "bid",
        "model": MODEL,
        "unit_type": "token",
        "units": 1000,
        "limit_unit_price": 0.0000001,
        **extra,
    }


def _policy(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "unit_type": "token", "estimated_units": 1000, **extra}


def _reservation(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "unit_type": "token",
        "requested_units": 1000,
        "max_unit_price": 0.000001,
        "idempotency_key": world.fresh("hold"),
        **extra,
    }


def _preview(world: World, **extra: Any) -> dict[str, Any]:
    return {"order_id": world.order_id, "acknowledge_disabled_execution": True, **extra}


def _job(**extra: Any) -> dict[str, Any]:
    return {
        "request": {"model_hint": "chat", "prompt": "hi", "max_tokens": 5},
        "economics": {"max_price": 1},
        **extra,
    }


def _job_bid(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "provider_id": world.provider_id,
        "model": MODEL,
        "price": 0.5,
        "estimated_time_s": 5,
        **extra,
    }


def _job_result() -> dict[str, Any]:
    return {
        "output": "hello",
        "model": MODEL,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }


def _chat(**options: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **options}


REFS = "/inference/credential-refs"
AGENTS = "/inference/agents"
LEDGER = "/inference/ledger"
JOBS = "/inference/jobs"
PROVIDER = "/inference/providers/{provider_id}"
ORDERS = "/inference/market/orders"
AS_BUYER = {"owner": "buyer"}
SELLERS_RECORD: dict[str, Any] = {"owner": "provider", "others": NOT_FOUND}
# What the first buyer holds (its account, its agent's metabolism): its holder, admins and
# auditors see it; anyone else is answered as if it did not exist.
BUYERS_BOOKS = {
    **access([READ], owner="buyer", others=NOT_FOUND),
    "auditor": OK,
    "auditor-2": OK,
}
# A job's result: its requester (the first buyer), its winner (the first provider owner), admins
# and auditors read it; anyone else is answered as if it did not exist.
JOB_RESULT = {**BUYERS_BOOKS, "provider": OK}


REG = "/inference/registry"
# Publishing: the first provider owner under its own namespace, or an admin acting as it (the
# one actor rule); no other key writes under it.
NOT_YOUR_NAMESPACE = Outcome(403, "namespace_not_yours", "slug")
PUBLISHING = access([PUBLISH], owner="provider", others=NOT_YOUR_NAMESPACE)


def _registered(world: World, kind: str) -> str:
    """A new entry of ``kind`` (models, agents, solutions) of the first provider owner."""
    slug = f"{SELLER}/{world.fresh(kind[:1])}"
    return published(world.client, world.keys["provider"], kind, slug)


def _solution_body(world: World) -> dict[str, Any]:
    model = published(
        world.client, world.keys["provider"], "models", f"{SELLER}/{world.fresh('m')}"
    )
    agent = published(
        world.client, world.keys["provider"], "agents", f"{SELLER}/{world.fresh('a')}"
    )
    return {
        "slug": f"{SELLER}/{world.fresh('s')}",
        "display_name": "Kit",
        "license": "mit",
        "solution": {
            "agent": {"slug": agent, "version": "1.0.0"},
            "model": {"slug": model, "version": "1.0.0"},
        },
    }


def _version_body(world: World, kind: str) -> dict[str, Any]:
    if kind == "solutions":
        return {"version": "2.0.0", "solution": _solution_body(world)["solution"]}
    body = model_body() if kind == "models" else agent_body()
    for name in ("slug", "display_name", "description", "tags", "license"):
        del body[name]
    return {**body, "version": "2.0.0"}


def _on_provider(world: World, suffix: str) -> str:
    return f"/inference/providers/{world.provider_id}/{suffix}"


def _stake_of_first_seller(world: World) -> Call:
    """A new bid stake of the first provider owner, and the call that withdraws it."""
    answer = world.client.post(
        "/inference/stakes", json={"amount": 1}, headers=world.keys["provider"]
    )
    assert answer.status_code == 201, answer.text
    return Call(f"/inference/stakes/{answer.json()['stake']['stake_id']}")


def _known_answer_body() -> dict[str, Any]:
    job = {
        "request": {"model_hint": "chat", "prompt": "Name the capital of France.", "max_tokens": 8},
        "economics": {"max_price": 0.5, "payment_mode": "auction"},
    }
    return {"job": job, "answer": {"match": "contains", "expected": "paris"}}


def _known_answer_as_keyed_agent(world: World) -> Call:
    """Registering a known-answer job posted as a free agent that holds a key of its own: not
    even an admin acts as it."""
    agent_id = world.agent("free")
    keyed = world.client.post(
        f"{AGENTS}/{agent_id}/keys",
        json={"scopes": ["inference:read"]},
        headers=world.keys["buyer"],
    )
    assert keyed.status_code == 201, keyed.text
    body = _known_answer_body()
    body["job"]["requester_id"] = agent_id
    return Call("/inference/known-answers", body)


def _known_answer(world: World, action: str) -> Call:
    """A known-answer job an admin registered, and the call that posts or retires it."""
    answer = world.client.post(
        "/inference/known-answers", json=_known_answer_body(), headers=world.keys["operator"]
    )
    assert answer.status_code == 201, answer.text
    return Call(f"/inference/known-answers/{answer.json()['known_answer']['probe_id']}/{action}")


def _validator_of_first_seller(world: World) -> Call:
    """The first provider owner as a validator (joined unless it is), and the call that
    withdraws it."""
    answer = world.client.post(
        "/inference/validators", json={"stake": 1}, headers=world.keys["provider"]
    )
    assert answer.status_code in (201, 409), answer.text
    return Call(f"/inference/validators/{SELLER}/withdraw")


def _judged_job(world: World, *, rejected: bool) -> str:
    """A job of the first buyer won by the first provider owner whose result is being judged
    by its requester (as the job board opens it), rejected by it if ``rejected``."""
    job_id = world.fresh("job_judged")
    now = world.app.state.clock.now()
    with world.app.state.session_factory.begin() as session:
        verdicts.open_validation(
            session,
            job_id=job_id,
            mode="requester",
            requester_id=BUYER,
            winner_id=SELLER,
            value=Decimal(1),
            validators_wanted=0,
            fee=Decimal(0),
            now=now,
            review_seconds=600,
            exclusion_threshold=0.2,
        )
        if rejected:
            verdicts.record_verdict(
                session,
                principal=Principal(key_id="matrix", owner_id=BUYER, scopes=frozenset({BUY})),
                job_id=job_id,
                judge_id=None,
                accept=False,
                score=Decimal(0),
                reason="wrong",
                now=now,
                half_life_days=30,
                dispute_seconds=600,
            )
    return job_id


def _verdict_call(world: World) -> Call:
    body = {"decision": "accept", "score": 1, "reason": "fine", "judge_id": BUYER}
    return Call(f"{JOBS}/{_judged_job(world, rejected=False)}/verdicts", body)


def _dispute_call(world: World) -> Call:
    """A rejected result of the first provider owner, with a validator to draw (the operator,
    who is neither party), and the call that disputes it."""
    answer = world.client.post(
        "/inference/validators", json={"stake": 1}, headers=world.keys["operator"]
    )
    assert answer.status_code in (201, 409), answer.text
    return Call(f"{JOBS}/{_judged_job(world, rejected=True)}/disputes", {"reason": "it is right"})


ROWS = [
    # -- credential references
    Row(
        "POST",
        REFS,
        lambda w: Call(REFS, credential_ref_body(owner_id=SELLER)),
        access([SELL], owner="provider", others=not_yours("owner_id")),
        "owner_id names the first provider owner",
    ),
    Row("POST", REFS, lambda w: Call(REFS, credential_ref_body()), access([SELL]), "no owner_id"),
    Row("GET", REFS, lambda w: Call(REFS), access([READ])),
    Row(
        "PATCH",
        f"{REFS}/{{credential_ref_id}}/rotate",
        lambda w: Call(
            f"{REFS}/{w.credential_ref()}/rotate",
            {"rotation_reason": "scheduled", "new_credential_ref": "secret://inference/next"},
        ),
        access([ADMIN]),
    ),
    Row(
        "POST",
        f"{REFS}/{{credential_ref_id}}/revoke",
        lambda w: Call(f"{REFS}/{w.credential_ref()}/revoke", {"revoke_reason": "retired"}),
        access([ADMIN]),
    ),
    # -- discovery
    Row("GET", "/inference/market/list", lambda w: Call("/inference/market/list"), access([READ])),
    Row(
        "GET",
        "/inference/market/models/{model}",
        lambda w: Call(f"/inference/market/models/{MODEL}"),
        access([READ]),
    ),
    Row("GET", "/inference/market/feed", lambda w: Call("/inference/market/feed"), access([READ])),
    Row(
        "GET",
        "/inference/buyers/{buyer_id}/profile",
        lambda w: Call(f"/inference/buyers/{BUYER}/profile"),
        access([READ]),
    ),
    Row(
        "GET",
        "/inference/sellers/{seller_id}/profile",
        lambda w: Call(f"/inference/sellers/{SELLER}/profile"),
        access([READ]),
    ),
    Row(
        "GET",
        "/inference/providers/agent/manifest",
        lambda w: Call("/inference/providers/agent/manifest"),
        access([READ]),
    ),
    # -- provider runtime
    Row(
        "POST",
        "/inference/providers/enroll",
        lambda w: Call(
            "/inference/providers/enroll", enroll_body(w.credential_ref_id, owner_id=SELLER)
        ),
        access([SELL], owner="provider", others=not_yours("owner_id")),
    ),
    Row(
        "POST",
        f"{PROVIDER}/pairing-token",
        lambda w: Call(_on_provider(w, "pairing-token")),
        access([SELL], **SELLERS_RECORD),
    ),
    Row(
        "POST",
        f"{PROVIDER}/heartbeat",
        lambda w: Call(_on_provider(w, "heartbeat"), {"runtime_status": "ready"}),
        access([SELL], **SELLERS_RECORD),
    ),
    Row(
        "POST",
        f"{PROVIDER}/catalog",
        lambda w: Call(_on_provider(w, "catalog"), catalog_body()),
        access([SELL], **SELLERS_RECORD),
    ),
    Row(
        "POST",
        f"{PROVIDER}/capacity",
        lambda w: Call(_on_provider(w, "capacity"), capacity_body()),
        access([SELL], **SELLERS_RECORD),
    ),
    Row(
        "GET",
        f"{PROVIDER}/health",
        lambda w: Call(_on_provider(w, "health")),
        access([READ], **SELLERS_RECORD),
    ),
    # -- orders, cancels, depth, reservations
    Row(
        "POST",
        ORDERS,
        lambda w: Call(ORDERS, _bid(buyer_id=BUYER)),
        access([BUY], **AS_BUYER, others=not_yours("buyer_id")),
        "a bid naming the first buyer",
    ),
    Row("POST", ORDERS, lambda w: Call(ORDERS, _bid()), access([BUY]), "a bid naming no buyer"),
    Row(
        "POST",
        ORDERS,
        lambda w: Call(
            ORDERS,
            {
                "side": "ask",
                "provider_id": w.provider_id,
                "model": MODEL,
                "unit_type": "token",
                "units": 1000,
                "limit_unit_price": 0.000002,
            },
        ),
        access([SELL], **SELLERS_RECORD),
        "an ask of the first provider owner's provider",
    ),
    Row(
        "POST",
        f"{ORDERS}/{{order_id}}/cancel",
        lambda w: Call(
            f"{ORDERS}/{w.resting_bid()}/cancel",
            {"cancel_reason": "repriced", "requested_by": BUYER},
        ),
        access([BUY, SELL], **AS_BUYER, others=not_yours("requested_by")),
        "requested_by names the first buyer",
    ),
    Row(
        "POST",
        f"{ORDERS}/{{order_id}}/cancel",
        lambda w: Call(f"{ORDERS}/{w.resting_bid()}/cancel", {"cancel_reason": "repriced"}),
        access([BUY, SELL], **AS_BUYER, others=NOT_FOUND),
        "no requested_by",
    ),
    Row(
        "GET",
        "/inference/market/depth",
        lambda w: Call("/inference/market/depth", params={"model": MODEL, "unit_type": "token"}),
        access([READ]),
    ),
    Row(
        "POST",
        "/inference/market/reservations",
        lambda w: Call("/inference/market/reservations", _reservation(w, buyer_id=BUYER)),
        access([BUY], **AS_BUYER, others=not_yours("buyer_id")),
        "buyer_id names the first buyer",
    ),
    Row(
        "POST",
        "/inference/market/reservations",
        lambda w: Call("/inference/market/reservations", _reservation(w)),
        access([BUY]),
        "no buyer_id",
    ),
    # -- quote and route
    Row(
        "POST",
        "/inference/quote",
        lambda w: Call("/inference/quote", _policy(agent_id=BUYER)),
        access([PLAN], **AS_BUYER, others=not_yours("agent_id")),
    ),
    Row(
        "POST",
        "/inference/route",
        lambda w: Call("/inference/route", _policy(agent_id=BUYER)),
        access([PLAN], **AS_BUYER, others=not_yours("agent_id")),
        "agent_id names the first buyer",
    ),
    Row(
        "POST",
        "/inference/route",
        lambda w: Call("/inference/route", _policy()),
        access([PLAN]),
        "no agent_id",
    ),
    # -- payment preview
    Row(
        "POST",
        "/inference/market/payment-challenge/preview",
        lambda w: Call("/inference/market/payment-challenge/preview", _preview(w, buyer_id=BUYER)),
        access([BUY], **AS_BUYER, others=not_yours("buyer_id")),
        "buyer_id names the first buyer",
    ),
    Row(
        "POST",
        "/inference/market/payment-challenge/preview",
        lambda w: Call("/inference/market/payment-challenge/preview", _preview(w)),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's order, no buyer_id",
    ),
    # -- list prices
    Row("GET", "/inference/list-prices", lambda w: Call("/inference/list-prices"), access([READ])),
    Row(
        "PUT",
        "/inference/list-prices",
        lambda w: Call(
            "/inference/list-prices", {"model": MODEL, "unit_type": "token", "unit_price": 1e-6}
        ),
        access([ADMIN]),
    ),
    Row("DELETE", "/inference/list-prices", lambda w: w.list_price_removal(), access([ADMIN])),
    # -- usage
    Row(
        "GET",
        "/inference/analytics/usage",
        lambda w: Call("/inference/analytics/usage"),
        access([READ]),
    ),
    Row(
        "GET",
        "/inference/analytics/export",
        lambda w: Call("/inference/analytics/export"),
        access([AUDIT]),
    ),
    # -- agent identities
    Row(
        "POST",
        AGENTS,
        lambda w: Call(AGENTS, {"kind": "bound", "display_name": "a", "owner_id": BUYER}),
        access([BUY, SELL], **AS_BUYER, others=not_yours("owner_id")),
        "owner_id names the first buyer",
    ),
    Row(
        "POST",
        AGENTS,
        lambda w: Call(AGENTS, {"kind": "free", "display_name": "a"}),
        access([BUY, SELL]),
        "no owner_id",
    ),
    Row("GET", AGENTS, lambda w: Call(AGENTS), access([READ])),
    Row(
        "GET",
        f"{AGENTS}/{{agent_id}}",
        lambda w: Call(f"{AGENTS}/{w.agent()}"),
        access([READ]),
    ),
    Row(
        "POST",
        f"{AGENTS}/{{agent_id}}/keys",
        lambda w: Call(f"{AGENTS}/{w.agent()}/keys", {"scopes": ["inference:read"]}),
        access([BUY, SELL], **AS_BUYER, others=not_yours("agent_id")),
        "a free agent of the first buyer",
    ),
    Row(
        "POST",
        f"{AGENTS}/{{agent_id}}/suspend",
        lambda w: Call(f"{AGENTS}/{w.agent()}/suspend", {"reason": "matrix"}),
        access([ADMIN]),
    ),
    Row(
        "GET",
        f"{AGENTS}/{{agent_id}}/metabolism",
        lambda w: Call(f"{AGENTS}/{w.agent()}/metabolism"),
        BUYERS_BOOKS,
        "a free agent of the first buyer",
    ),
    # -- the ledger
    Row(
        "POST",
        f"{LEDGER}/grants",
        lambda w: Call(
            f"{LEDGER}/grants",
            {"holder_id": BUYER, "amount": 2, "idempotency_key": w.fresh("grant")},
        ),
        access([ADMIN]),
    ),
    Row(
        "POST",
        f"{LEDGER}/enforcement",
        lambda w: Call(f"{LEDGER}/enforcement", {"holder_id": BUYER, "enforced": False}),
        access([ADMIN]),
    ),
    Row("GET", f"{LEDGER}/accounts", lambda w: Call(f"{LEDGER}/accounts"), access([READ])),
    Row(
        "GET",
        f"{LEDGER}/accounts/{{account_id}}",
        lambda w: Call(f"{LEDGER}/accounts/{w.buyers_account()}"),
        BUYERS_BOOKS,
    ),
    Row(
        "GET",
        f"{LEDGER}/accounts/{{account_id}}/entries",
        lambda w: Call(f"{LEDGER}/accounts/{w.buyers_account()}/entries"),
        BUYERS_BOOKS,
    ),
    Row("GET", f"{LEDGER}/export", lambda w: Call(f"{LEDGER}/export"), access([AUDIT])),
    # -- the job board
    Row(
        "POST",
        JOBS,
        lambda w: Call(JOBS, _job(requester_id=BUYER)),
        access([BUY], **AS_BUYER, others=not_yours("requester_id")),
        "requester_id names the first buyer",
    ),
    Row("POST", JOBS, lambda w: Call(JOBS, _job()), access([BUY]), "no requester_id"),
    Row("GET", JOBS, lambda w: Call(JOBS), access([READ])),
    Row(
        "GET",
        f"{JOBS}/stream",
        lambda w: Call(f"{JOBS}/stream", params={"after": "0", "follow": "false"}),
        access([READ]),
    ),
    Row("GET", f"{JOBS}/{{job_id}}", lambda w: Call(f"{JOBS}/{w.job()}"), access([READ])),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/bids",
        lambda w: Call(f"{JOBS}/{w.job()}/bids", _job_bid(w, bidder_id=SELLER)),
        access([SELL], owner="provider", others=not_yours("bidder_id")),
        "bidder_id names the first provider owner",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/bids",
        lambda w: Call(f"{JOBS}/{w.job()}/bids", _job_bid(w)),
        access([SELL], owner="provider", others=NOT_FOUND),
        "no bidder_id, the first provider owner's provider",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/bids/{{bid_id}}/withdraw",
        lambda w: w.withdrawal(),
        access([SELL], owner="provider", others=NOT_FOUND),
        "the first provider owner's bid",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/award",
        lambda w: w.early_award(),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's job",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/cancel",
        lambda w: Call(f"{JOBS}/{w.job()}/cancel", {"reason": "matrix"}),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's job",
    ),
    Row(
        "GET",
        f"{JOBS}/{{job_id}}/assignment",
        lambda w: Call(f"{JOBS}/{w.awarded_job()}/assignment"),
        access([SELL], owner="provider", others=NOT_FOUND),
        "a job the first provider owner won",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/result",
        lambda w: Call(f"{JOBS}/{w.awarded_job()}/result", _job_result()),
        access([SELL], owner="provider", others=NOT_FOUND),
        "a job the first provider owner won",
    ),
    Row(
        "GET",
        "/inference/results/{result_hash}",
        lambda w: Call(f"/inference/results/{w.result_hash()}"),
        JOB_RESULT,
        "the result of the first buyer's job, won by the first provider owner",
    ),
    # -- reputation, stakes and validators
    Row(
        "GET",
        "/inference/reputation/{identity_id}",
        lambda w: Call(f"/inference/reputation/{SELLER}"),
        access([READ]),
        "public: every bidder's record is published",
    ),
    Row(
        "POST",
        "/inference/stakes",
        lambda w: Call("/inference/stakes", {"amount": 1, "identity_id": SELLER}),
        access([SELL], owner="provider", others=not_yours("identity_id")),
        "identity_id names the first provider owner",
    ),
    Row(
        "POST",
        "/inference/stakes",
        lambda w: Call("/inference/stakes", {"amount": 1}),
        access([SELL]),
        "no identity_id",
    ),
    Row("GET", "/inference/stakes", lambda w: Call("/inference/stakes"), access([READ])),
    Row(
        "POST",
        "/inference/known-answers",
        lambda w: Call("/inference/known-answers", _known_answer_body()),
        access([ADMIN]),
    ),
    Row(
        "POST",
        "/inference/known-answers",
        _known_answer_as_keyed_agent,
        {
            **access([ADMIN]),
            **dict.fromkeys(("operator", "operator-2"), not_yours("job.requester_id")),
        },
        "job.requester_id names a free agent with a key of its own",
    ),
    Row(
        "GET",
        "/inference/known-answers",
        lambda w: Call("/inference/known-answers"),
        access([ADMIN]),
    ),
    Row(
        "POST",
        "/inference/known-answers/{probe_id}/post",
        lambda w: _known_answer(w, "post"),
        access([ADMIN]),
    ),
    Row(
        "POST",
        "/inference/known-answers/{probe_id}/retire",
        lambda w: _known_answer(w, "retire"),
        access([ADMIN]),
    ),
    Row(
        "DELETE",
        "/inference/stakes/{stake_id}",
        _stake_of_first_seller,
        access([SELL], owner="provider", others=NOT_FOUND),
        "the first provider owner's stake",
    ),
    Row(
        "POST",
        "/inference/validators",
        lambda w: Call("/inference/validators", {"stake": 1, "identity_id": w.agent("bound")}),
        access([VALIDATE], owner="buyer", others=not_yours("identity_id")),
        "identity_id names a bound agent of the first buyer",
    ),
    Row(
        "POST",
        "/inference/validators",
        lambda w: Call("/inference/validators", {"stake": 1}),
        access([VALIDATE]),
        "no identity_id: each caller joins as itself",
    ),
    Row("GET", "/inference/validators", lambda w: Call("/inference/validators"), access([READ])),
    Row(
        "POST",
        "/inference/validators/{identity_id}/withdraw",
        _validator_of_first_seller,
        access([VALIDATE], owner="provider", others=NOT_FOUND),
        "the first provider owner's validator",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/verdicts",
        _verdict_call,
        access([BUY, VALIDATE], owner="buyer", others=not_yours("judge_id")),
        "judge_id names the first buyer, the requester",
    ),
    Row(
        "POST",
        f"{JOBS}/{{job_id}}/disputes",
        _dispute_call,
        access([SELL], owner="provider", others=NOT_FOUND),
        "a rejected result of the first provider owner",
    ),
    Row(
        "GET",
        f"{JOBS}/{{job_id}}/validation",
        lambda w: Call(f"{JOBS}/{_judged_job(w, rejected=False)}/validation"),
        JOB_RESULT,
        "a result of the first provider owner judged by the first buyer (no validator drawn)",
    ),
    # -- the registry: the first provider owner publishes under its own namespace
    Row(
        "POST",
        REG + "/models",
        lambda w: Call(f"{REG}/models", model_body(f"{SELLER}/{w.fresh('m')}")),
        PUBLISHING,
        "a slug under the first provider owner's namespace",
    ),
    Row(
        "POST",
        REG + "/agents",
        lambda w: Call(f"{REG}/agents", agent_body(f"{SELLER}/{w.fresh('a')}")),
        PUBLISHING,
        "a slug under the first provider owner's namespace",
    ),
    Row(
        "POST",
        REG + "/solutions",
        lambda w: Call(f"{REG}/solutions", _solution_body(w)),
        PUBLISHING,
        "a slug under the first provider owner's namespace",
    ),
    *(
        Row(
            "POST",
            f"{REG}/{kind}/{{publisher_id}}/{{name}}/versions",
            lambda w, kind=kind: Call(
                f"{REG}/{kind}/{_registered(w, kind)}/versions", _version_body(w, kind)
            ),
            PUBLISHING,
            "an entry of the first provider owner",
        )
        for kind in ("models", "agents", "solutions")
    ),
    *(
        Row(
            "POST",
            f"{REG}/{kind}/{{publisher_id}}/{{name}}/versions/{{version}}/status",
            lambda w, kind=kind: Call(
                f"{REG}/{kind}/{_registered(w, kind)}/versions/1.0.0/status",
                {"status": "deprecated", "reason": "matrix"},
            ),
            PUBLISHING,
            "an entry of the first provider owner",
        )
        for kind in ("models", "agents", "solutions")
    ),
    *(
        Row(
            "GET",
            f"{REG}/{kind}/{{publisher_id}}/{{name}}",
            lambda w, kind=kind: Call(f"{REG}/{kind}/{_registered(w, kind)}"),
            access([READ]),
        )
        for kind in ("models", "agents", "solutions")
    ),
    Row(
        "GET",
        REG + "/agents/{publisher_id}/{name}/compatible-models",
        lambda w: Call(f"{REG}/agents/{_registered(w, 'agents')}/compatible-models"),
        access([READ]),
    ),
    Row(
        "GET",
        REG + "/models/{publisher_id}/{name}/compatible-agents",
        lambda w: Call(f"{REG}/models/{_registered(w, 'models')}/compatible-agents"),
        access([READ]),
    ),
    Row("GET", REG + "/solutions", lambda w: Call(f"{REG}/solutions"), access([READ])),
    Row(
        "GET",
        REG + "/search",
        lambda w: Call(f"{REG}/search", params={"q": "chat"}),
        access([READ]),
    ),
    Row(
        "GET",
        "/inference/publishers/{publisher_id}",
        lambda w: Call(f"/inference/publishers/{SELLER}"),
        access([READ]),
    ),
    # -- the SDK-compatible proxy
    Row("GET", "/v1/models", lambda w: Call("/v1/models"), access([PROXY])),
    Row(
        "POST",
        "/v1/chat/completions",
        lambda w: Call("/v1/chat/completions", _chat(flow_memory={"agent_id": BUYER})),
        access([PROXY], **AS_BUYER, others=not_yours("flow_memory.agent_id")),
        "flow_memory.agent_id names the first buyer",
    ),
    Row(
        "POST",
        "/v1/chat/completions",
        lambda w: Call("/v1/chat/completions", _chat(), headers={"x-flow-memory-agent-id": BUYER}),
        access([PROXY], **AS_BUYER, others=not_yours("x-flow-memory-agent-id")),
        "the agent header names the first buyer",
    ),
    Row(
        "POST",
        "/v1/chat/completions",
        lambda w: Call("/v1/chat/completions", _chat()),
        access([PROXY]),
        "no agent",
    ),
    Row(
        "POST",
        "/v1/responses",
        lambda w: Call(
            "/v1/responses", {"model": MODEL, "input": "hi", "flow_memory": {"agent_id": BUYER}}
        ),
        access([PROXY], **AS_BUYER, others=not_yours("flow_memory.agent_id")),
    ),
    Row(
        "POST",
        "/v1/embeddings",
        lambda w: Call(
            "/v1/embeddings", {"model": MODEL, "input": "hi", "flow_memory": {"agent_id": BUYER}}
        ),
        access([PROXY], **AS_BUYER, others=not_yours("flow_memory.agent_id")),
    ),
    # -- service
    Row("GET", "/healthz", lambda w: Call("/healthz"), access(None)),
    Row("GET", "/readyz", lambda w: Call("/readyz"), access(None)),
    # -- deployments and royalties (issue 25): the first buyer's deployment of entries the first
    # provider owner publishes; admins change anyone's, auditors read all, others see nothing
    Row(
        "POST",
        "/inference/deployments",
        lambda w: Call("/inference/deployments", matrix_deploy_body(w)),
        access([BUY]),
        "each caller deploys under its own namespace",
    ),
    Row(
        "GET",
        "/inference/deployments",
        lambda w: Call("/inference/deployments"),
        access([READ, BUY]),
    ),
    Row(
        "GET",
        "/inference/deployments/{deployment_id}",
        lambda w: Call(f"/inference/deployments/{matrix_deployment(w)}"),
        {
            **access([READ, BUY], owner="buyer", others=NOT_FOUND),
            "auditor": OK,
            "auditor-2": OK,
        },
        "the first buyer's deployment",
    ),
    Row(
        "POST",
        "/inference/deployments/{deployment_id}/revisions",
        lambda w: Call(
            f"/inference/deployments/{matrix_deployment(w)}/revisions",
            {"wait_for_capacity": True},
        ),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's deployment",
    ),
    Row(
        "POST",
        "/inference/deployments/{deployment_id}/pause",
        lambda w: Call(f"/inference/deployments/{matrix_deployment(w)}/pause"),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's deployment",
    ),
    Row(
        "POST",
        "/inference/deployments/{deployment_id}/resume",
        lambda w: Call(f"/inference/deployments/{matrix_deployment(w, state='paused')}/resume"),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's paused deployment",
    ),
    Row(
        "DELETE",
        "/inference/deployments/{deployment_id}",
        lambda w: Call(f"/inference/deployments/{matrix_deployment(w)}"),
        access([BUY], **AS_BUYER, others=NOT_FOUND),
        "the first buyer's deployment",
    ),
    Row(
        "GET",
        "/inference/royalties",
        lambda w: Call("/inference/royalties"),
        access([READ, PUBLISH]),
        "each publisher its own",
    ),
    Row(
        "GET",
        "/inference/royalties/export",
        lambda w: Call("/inference/royalties/export"),
        access([READ, PUBLISH]),
        "each publisher its own",
    ),
]


def _upstream_answer(request: httpx.Request) -> httpx.Response:
    """Test double for the provider's model server: a short answer to any SDK call."""
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    if request.url.path.endswith("/embeddings"):
        data = [{"object": "embedding", "index": 0, "embedding": [0.1]}]
        return httpx.Response(
            200, json={"object": "list", "data": data, "model": MODEL, "usage": usage}
        )
    if request.url.path.endswith("/responses"):
        return httpx.Response(
            200,
            json={
                "id": "resp_1",
                "object": "response",
                "model": MODEL,
                "output": [],
                "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
            },
        )
    message = {"role": "assistant", "content": "hello"}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return httpx.Response(
        200,
        json={"id": "c1", "object": "chat.completion", "created": 1, "model": MODEL,
              "choices": [choice], "usage": usage},
    )  # fmt: skip


@pytest.fixture
def world(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_PROVIDER_ALPHA", "matrix-provider-secret")
    clear_tables(database_url)
    upstream = ScriptedUpstream(handlers={"provider-alpha.example": _upstream_answer})
    app = create_app(
        # Who may bid is this matrix's question; stakes and earned capacity have tests of their
        # own (tests/api/test_jobs_capacity.py).
        Settings(
            database_url=database_url,
            proxy_route_cache_seconds=0,
            stake_per_job_slot=0.0,
            earned_capacity_enforced=False,
        ),
        clock=clock,
        upstream_transport=httpx.MockTransport(upstream),
        host_resolver=public_resolver,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        keys: dict[str, Headers] = {"anonymous": {}} | {
            role: key_headers(app, owner, *scopes) for role, (owner, scopes) in ROLES.items()
        }
        provider = eligible_provider(client, keys["provider"])
        world = World(app, client, keys, provider["provider_id"], provider["credential_ref_id"], "")
        world.order_id = world.resting_bid()
        yield world
    app.state.engine.dispose()
    app.state.read_engine.dispose()


def _outcome_of(response: httpx.Response, expected: Outcome) -> Outcome:
    """What the response was, told in the terms of ``expected``."""
    if 200 <= response.status_code < 300:
        return OK
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return Outcome(response.status_code, "(not an error body)")
    return Outcome(
        response.status_code,
        error.get("code"),
        error.get("field") if expected.field is not None else None,
    )


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_each_caller_gets_what_its_role_and_ownership_allow(world: World, row: Row) -> None:
    assert set(row.expected) == set(CALLERS), row.id
    wrong = []
    for caller in CALLERS:
        call = row.call(world)
        response = world.client.request(
            row.method,
            call.path,
            json=call.json,
            params=call.params,
            headers={**world.keys[caller], **call.headers},
        )
        expected = row.expected[caller]
        got = _outcome_of(response, expected)
        if got != expected:
            wrong.append(f"{caller}: expected {expected}, got {got}: {response.text[:300]}")
        if expected.code == "identity_not_yours":
            # The refusal names the field, never the identity it holds.
            assert BUYER not in response.text and SELLER not in response.text, response.text
    assert not wrong, "\n".join([row.id, *wrong])


def _operations(app: FastAPI) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    }


@pytest.fixture(scope="module")
def document_app() -> FastAPI:
    """An app used only for its routes and OpenAPI document (it never opens its database)."""
    return create_app(Settings(database_url="sqlite://"))


def test_every_route_has_a_row(document_app: FastAPI) -> None:
    routes = set(_operations(document_app))
    rows = {(row.method, row.template) for row in ROWS}
    assert routes - rows == set(), "routes without a row: add one to ROWS"
    assert rows - routes == set(), "rows for routes the app no longer has"


def test_the_first_owners_are_the_demos_roles() -> None:
    for role, (owner, scopes) in demo.ROLES.items():
        assert ROLES[role] == (owner, scopes)
        assert ROLES[f"{role}-2"][1] == scopes and ROLES[f"{role}-2"][0] != owner
    assert (demo.ROLES["buyer"][0], demo.ROLES["provider"][0]) == (BUYER, SELLER)


# -- the key comes first --------------------------------------------------------------------


def _bad_query(operation: dict[str, Any]) -> dict[str, str]:
    """A value for each query parameter that its schema refuses (no identifier, integer, enum,
    date-time or cursor accepts it)."""
    return {p["name"]: "!" for p in operation.get("parameters", []) if p["in"] == "query"}


def _path(template: str) -> str:
    return template.replace("{", "").replace("}", "")  # a placeholder's name stands for its value


def _keyed(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for (method, path), operation in sorted(_operations(app).items())
        if operation.get("security")
    ]


def test_every_route_but_the_service_probes_declares_the_key(document_app: FastAPI) -> None:
    keyed = {(method, path) for method, path, _ in _keyed(document_app)}
    assert set(_operations(document_app)) - keyed == {("GET", "/healthz"), ("GET", "/readyz")}


@pytest.mark.parametrize("caller", ["no key", "a key without the scope"])
def test_the_key_and_its_scope_are_checked_before_anything_else(
    app: FastAPI, client: TestClient, caller: str
) -> None:
    """No key is 401, and a key without the route's scope 403, whatever else is wrong: bad
    query values, a body that is not JSON, a malformed path id."""
    # inference:audit is the scope of no route but the exports, which a reader's key lacks.
    auditor = key_headers(app, "nobody", "inference:audit")
    exports = {"/inference/analytics/export", "/inference/ledger/export"}
    reader = key_headers(app, "nobody", "inference:read")
    wrong = []
    for method, template, operation in _keyed(app):
        headers: dict[str, str] = {}
        if caller != "no key":
            headers = reader if template in exports else auditor
        body = b"{not json" if "requestBody" in operation else None
        response = client.request(
            method,
            _path(template),
            params=_bad_query(operation),
            content=body,
            headers={**headers, "content-type": "application/json"},
        )
        expected = (401, "unauthenticated") if caller == "no key" else (403, "missing_scope")
        got = (response.status_code, response.json().get("error", {}).get("code"))
        if got != expected:
            wrong.append(f"{method} {template}: {got}")
    assert not wrong, wrong


def test_a_bad_request_with_the_right_key_is_still_refused_as_before(
    app: FastAPI, client: TestClient
) -> None:
    headers = key_headers(app, "operator", "inference:admin")
    bad = client.get("/inference/analytics/export", params={"format": "xml"}, headers=headers)
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
    naive = client.get(
        "/inference/analytics/export", params={"until": "2026-06-18T00:00:00"}, headers=headers
    )
    assert (naive.status_code, naive.json()["error"]["code"]) == (422, "timezone_required")
    not_json = client.post(
        "/inference/quote",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (422, "invalid_json")


def test_the_key_is_looked_up_once_a_request(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow_memory.kit import deps

    headers = key_headers(app, "operator", "inference:admin")
    looked_up = []
    authenticate = deps.authenticate

    async def counting(*args: Any) -> Any:
        looked_up.append(1)
        return await authenticate(*args)

    monkeypatch.setattr(deps, "authenticate", counting)
    assert client.get("/inference/analytics/usage", headers=headers).status_code == 200
    assert len(looked_up) == 1


# -- 405 names the methods a path serves -----------------------------------------------------


def test_a_method_a_path_does_not_serve_is_405_with_allow(app: FastAPI, client: TestClient) -> None:
    served: dict[str, set[str]] = {}
    for method, path in _operations(app):
        served.setdefault(path, set()).add(method)
    wrong = []
    for template, methods in sorted(served.items()):
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - methods):
            response = client.request(method, _path(template))
            allow = response.headers.get("allow")
            if response.status_code != 405 or allow is None:
                wrong.append(f"{method} {template}: {response.status_code}, allow {allow}")
                continue
            if {m.strip() for m in allow.split(",")} != methods:
                wrong.append(f"{method} {template}: allow {allow}, serves {sorted(methods)}")
            assert response.json()["error"]["code"] == "method_not_allowed"
    assert not wrong, "\n".join(wrong)


# -- every field that names who acts is checked ---------------------------------------------


def _actor_fields(schema: dict[str, Any], components: dict[str, Any], prefix: str = "") -> set[str]:
    """The paths of the fields the schema marks as naming who acts (``x-flow-memory-actor``)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    found: set[str] = set()
    for member in schema.get("anyOf", []):
        found |= _actor_fields(member, components, prefix)
    for name, prop in schema.get("properties", {}).items():
        if prop.get(ACTOR_EXTENSION):
            found.add(prefix + name)
        else:
            found |= _actor_fields(prop, components, f"{prefix}{name}.")
    return found


def test_every_field_naming_who_acts_has_a_row_refusing_another_owner(
    document_app: FastAPI,
) -> None:
    document = document_app.openapi()
    components = document["components"]["schemas"]
    marked = {
        (method, path, field)
        for (method, path), operation in _operations(document_app).items()
        for media in operation.get("requestBody", {}).get("content", {}).values()
        for field in _actor_fields(media["schema"], components)
    }
    assert {field for _, _, field in marked} >= {
        "buyer_id",
        "agent_id",
        "requested_by",
        "owner_id",
        "flow_memory.agent_id",
    }
    refused = {
        (row.method, row.template, outcome.field)
        for row in ROWS
        for outcome in row.expected.values()
        if outcome.code == "identity_not_yours"
    }
    assert marked - refused == set(), "add a row naming the first owner in these fields"
