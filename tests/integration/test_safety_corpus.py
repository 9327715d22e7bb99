"""The adversarial safety corpus against a real server process (SQLite, or PostgreSQL with
FLOW_MEMORY_TEST_DATABASE_URL).

Every forbidden case is placed into every write endpoint, through each kind of field the
endpoint has (free text, identifiers, free-form objects, references, URLs, path segments, proxy
headers and the proxy body's top level), and must be refused: 422 ``forbidden_material`` in a
body, any 4xx in a path, and never with the value echoed. Once the server has stopped, no
forbidden value (nor its decoded form) may be found in the database, the server log or what the
exports and listings returned. Every harmless case must be accepted where it fits.

Decisions the corpus alone does not make:
- A path segment must be answered 4xx without the value in the answer or the access log (the log
  writes the route, not the raw path); its code is not prescribed, a 404 is as good as a 422.
- Message content in a proxy body is the buyer's and may quote anything: for it only "nothing
  stored, logged or exported, and no 5xx" is checked.
- Each placement is first shown to be a valid request with a harmless control value (2xx), so a
  refusal proves the detector refused, not that the request was malformed.
- A value goes only where the schema would let it through (an identifier field gets only values
  an identifier may hold, a name only values of its length): refused there for another reason,
  it would prove nothing.

The corpus is tests/safety_corpus (forbidden.py, harmless.py). One server serves the whole
corpus, some 9,000 requests: about two minutes on SQLite, three on PostgreSQL.

    .venv/bin/python -m pytest tests/integration/test_safety_corpus.py
    FLOW_MEMORY_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/flow_memory_test \
        .venv/bin/python -m pytest tests/integration/test_safety_corpus.py
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import sqlite3
import urllib.parse
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text

from flow_memory.kit.db import make_engine
from tests.conftest import clear_tables
from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import Deployment, IssuedKey, _ok
from tests.safety_corpus.case import Case
from tests.safety_corpus.forbidden import FORBIDDEN
from tests.safety_corpus.harmless import HARMLESS

pytestmark = pytest.mark.integration

MODEL = "corpus-chat"
TARGET_MODEL = "corpus-target-model"
VERSION = "2026-01-01T00:00:00Z"
FAR_FUTURE = "2099-01-01T00:00:00Z"
PRIMARY_REF = "secret://inference/corpus-primary"
PLANTED_SECRET = "planted-operator-secret-" + "7d41c09e"
ALL_SCOPES = ",".join(
    f"inference:{s}" for s in ["read", "sell", "buy", "plan", "audit", "admin", "proxy"]
)

# The request schemas' own shapes (flow_memory.kit.schemas): a value that cannot pass them is
# refused for another reason, so it is only placed where it would be stored if let through.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*")
POINTER = re.compile(r"secret://[A-Za-z0-9][A-Za-z0-9._~/-]*")
PATH_VALUE_LIMIT = 512


@dataclass
class CorpusDeployment(Deployment):
    """A deployment whose operator resolves the primary reference to a planted secret."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["FLOW_MEMORY_SECRET_INFERENCE_CORPUS_PRIMARY"] = PLANTED_SECRET
        return env


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    role: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


# -- the records the placements point at -----------------------------------------------------


@dataclass
class World:
    """Keys and records the requests refer to; renewed when a request changed them."""

    client: httpx.Client
    keys: dict[str, IssuedKey]
    target_provider: str = ""
    rotate_ref: str = ""
    revoke_ref: str = ""
    enroll_ref: str = ""
    enroll_pointer: str = "secret://inference/corpus-enroll"
    open_bid: str = ""
    preview_order: str = ""
    counter: Iterator[int] = field(default_factory=itertools.count)

    def send(self, request: Request) -> httpx.Response:
        headers = {**self.keys[request.role].headers, **request.headers}
        return self.client.request(request.method, request.path, json=request.json, headers=headers)

    def fresh(self, prefix: str) -> str:
        """``prefix`` and a new suffix of letters (a digit-free name keeps setup independent of
        how the detector judges numbered names; the harmless corpus tests those itself)."""
        number, suffix = next(self.counter), ""
        while True:
            number, letter = divmod(number, 26)
            suffix = chr(ord("a") + letter) + suffix
            if not number:
                return f"{prefix}-{suffix}"

    def credential_ref(self, role: str, pointer: str) -> str:
        body = {"credential_ref": pointer, "display_name": self.fresh("corpus ref")}
        answer = self.send(Request("POST", "/inference/credential-refs", role, body))
        return str(_ok(answer, 201)["credential_ref"]["credential_ref_id"])

    def bid(self) -> str:
        body = {
            "side": "bid",
            "model": MODEL,
            "unit_type": "token",
            "units": 1000,
            "limit_unit_price": "0.0000001",
        }
        answer = self.send(Request("POST", "/inference/market/orders", "buyer", body))
        return str(_ok(answer, 201)["order"]["order_id"])

    def renew(self, what: str) -> None:
        if what == "revoke_ref":
            self.revoke_ref = self.credential_ref(
                "operator", self.fresh("secret://inference/corpus-revoke-target")
            )
        elif what == "open_bid":
            self.open_bid = self.bid()


def _provider(
    world: World, pointer: str, name: str, base_url: str, models: list[dict[str, Any]]
) -> str:
    ref = world.credential_ref("seller", pointer)
    body = {"provider_name": name, "base_url": base_url, "credential_ref_id": ref}
    enrolled = _ok(world.send(Request("POST", "/inference/providers/enroll", "seller", body)), 201)
    provider_id = str(enrolled["provider"]["provider_id"])
    base = f"/inference/providers/{provider_id}"
    token = _ok(world.send(Request("POST", f"{base}/pairing-token", "seller")), 201)
    pairing = {token["pairing_header"]: token["pairing_token"]}
    _ok(world.send(Request("POST", f"{base}/heartbeat", "seller", headers=pairing)))
    catalog = {"catalog_version": VERSION, "models": models}
    _ok(world.send(Request("POST", f"{base}/catalog", "seller", catalog)))
    return provider_id


def _capacity(model: str, units: int = 1_000_000_000) -> dict[str, Any]:
    return {
        "capacity_version": VERSION,
        "inventory": [
            {
                "model": model,
                "unit_type": "token",
                "available_units": units,
                "ask_unit_price": "0.000001",
                "expires_at": FAR_FUTURE,
            }
        ],
    }


def _catalog_entry(model: str, api: str = "chat_completions") -> dict[str, Any]:
    return {"model": model, "compatible_api": api, "unit_types": ["token"], "context_window": 8192}


def build_world(client: httpx.Client, keys: dict[str, IssuedKey], upstream_url: str) -> World:
    world = World(client, keys)
    primary = _provider(world, PRIMARY_REF, "corpus-primary", upstream_url, [_catalog_entry(MODEL)])
    _ok(
        world.send(
            Request("POST", f"/inference/providers/{primary}/capacity", "seller", _capacity(MODEL))
        )
    )
    world.target_provider = _provider(
        world,
        "secret://inference/corpus-target",
        "corpus-target",
        "https://provider-target.example/v1",
        [_catalog_entry(TARGET_MODEL)],
    )
    world.rotate_ref = world.credential_ref("operator", "secret://inference/corpus-rotate")
    world.enroll_ref = world.credential_ref("seller", world.enroll_pointer)
    world.renew("revoke_ref")
    world.renew("open_bid")
    world.preview_order = world.bid()
    return world


# -- where material is placed -----------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One way into the server: an endpoint and one field of it (or its path, or a header).

    ``accepts`` says what a case must be to go here: text, identifier, object (fields merged, a
    value under a neutral name), pointer, url, path, header, top (fields merged into a proxy
    body), policy (fields merged into a routing policy) or content (proxy message text)."""

    name: str
    accepts: str
    build: Callable[[World, Any], Request]
    control: Callable[[World], Any]
    limit: int = 4096
    renews: str | None = None
    harmless: bool = True


def _credref(world: World, **fields: Any) -> Request:
    body = {
        "credential_ref": "secret://inference/corpus-create",
        "display_name": "corpus reference",
        "metadata": {"rotation_policy": "operator-managed"},
        **fields,
    }
    return Request("POST", "/inference/credential-refs", "seller", body)


def _rotate(world: World, **fields: Any) -> Request:
    body = {
        "rotation_reason": "scheduled rotation",
        "new_credential_ref": world.fresh("secret://inference/corpus-rotated"),
        **fields,
    }
    return Request(
        "PATCH", f"/inference/credential-refs/{world.rotate_ref}/rotate", "operator", body
    )


def _enroll(world: World, **fields: Any) -> Request:
    body = {
        "provider_name": "corpus-enroll-target",
        "base_url": "https://provider-enroll.example/v1",
        "credential_ref_id": world.enroll_ref,
        "contact": {"routing_email": "ops@example.invalid"},
        **fields,
    }
    return Request("POST", "/inference/providers/enroll", "seller", body)


def _heartbeat(world: World, **fields: Any) -> Request:
    body = {"runtime_status": "ready", **fields}
    path = f"/inference/providers/{world.target_provider}/heartbeat"
    return Request("POST", path, "seller", body)


def _catalog(world: World, model: str) -> Request:
    body = {
        "catalog_version": VERSION,
        "models": [_catalog_entry(TARGET_MODEL), _catalog_entry(model, "embeddings")],
    }
    return Request("POST", f"/inference/providers/{world.target_provider}/catalog", "seller", body)


def _capacity_request(world: World, model: str) -> Request:
    path = f"/inference/providers/{world.target_provider}/capacity"
    return Request("POST", path, "seller", _capacity(model, 1000))


def _order(world: World, **fields: Any) -> Request:
    body = {
        "side": "bid",
        "model": MODEL,
        "unit_type": "token",
        "units": 1000,
        "limit_unit_price": "0.0000001",
        **fields,
    }
    return Request("POST", "/inference/market/orders", "buyer", body)


def _cancel(world: World, **fields: Any) -> Request:
    body = {"cancel_reason": "buyer repriced", **fields}
    return Request("POST", f"/inference/market/orders/{world.open_bid}/cancel", "buyer", body)


def _reservation(world: World, **fields: Any) -> Request:
    body = {
        "model": MODEL,
        "unit_type": "token",
        "requested_units": 1000,
        "max_unit_price": "0.000001",
        "hold_seconds": 1,
        "idempotency_key": world.fresh("corpus-hold"),
        **fields,
    }
    return Request("POST", "/inference/market/reservations", "buyer", body)


def _policy_request(path: str) -> Callable[..., Request]:
    def build(world: World, **fields: Any) -> Request:
        body = {"model": MODEL, "estimated_units": 1000, **fields}
        return Request("POST", path, "buyer", body)

    return build


_quote = _policy_request("/inference/quote")
_route = _policy_request("/inference/route")


def _preview(world: World, **fields: Any) -> Request:
    body = {"order_id": world.preview_order, "acknowledge_disabled_execution": True, **fields}
    return Request("POST", "/inference/market/payment-challenge/preview", "buyer", body)


def _list_price(world: World, **fields: Any) -> Request:
    body = {"model": MODEL, "unit_type": "token", "unit_price": "0.000002", **fields}
    return Request("PUT", "/inference/list-prices", "operator", body)


def _chat(world: World, http_headers: Mapping[str, str] | None = None, **fields: Any) -> Request:
    # The HTTP headers are not named "headers": a shape may put a field of that name in the body.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], **fields}
    return Request("POST", "/v1/chat/completions", "buyer", body, http_headers or {})


def _text(name: str, build: Callable[..., Request], key: str, limit: int, **kw: Any) -> Slot:
    return Slot(
        name,
        "text",
        lambda w, v: build(w, **{key: v}),
        lambda w: "corpus control " + w.fresh("text"),
        limit,
        **kw,
    )


def _ident(
    name: str, build: Callable[..., Request], key: str, *, role: str | None = None, **kw: Any
) -> Slot:
    """An identifier field; ``role`` sends it with another key (naming another identity than
    the key's owner takes an admin key)."""

    def place(world: World, value: str) -> Request:
        request = build(world, **{key: value})
        return replace(request, role=role) if role else request

    return Slot(name, "identifier", place, lambda w: w.fresh("corpus-control"), 128, **kw)


def _object(
    name: str, build: Callable[..., Request], key: str, base: Mapping[str, Any], **kw: Any
) -> Slot:
    return Slot(
        name,
        "object",
        lambda w, fields: build(w, **{key: {**base, **fields}}),
        lambda w: {"memo": "corpus control"},
        **kw,
    )


def _policy(name: str, build: Callable[..., Request], key: str) -> Slot:
    return Slot(
        name,
        "policy",
        lambda w, fields: build(w, **{key: {"min_discount_bps": 0, **fields}}),
        lambda w: {"allow_fallback": True},
        harmless=False,
    )


def _path(
    method: str,
    template: str,
    role: str,
    body: Callable[[World], Any],
    live: Callable[[World], str],
    **kw: Any,
) -> Slot:
    def build(world: World, value: str) -> Request:
        segment = urllib.parse.quote(value, safe="")
        return Request(method, template.format(segment), role, body(world))

    return Slot(f"path {method} {template.format('{id}')}", "path", build, live, **kw)


def _no_body(world: World) -> Any:
    return None


SLOTS: tuple[Slot, ...] = (
    # credential references
    _text("credential_refs.create display_name", _credref, "display_name", 128),
    _object(
        "credential_refs.create metadata",
        _credref,
        "metadata",
        {"rotation_policy": "operator-managed"},
    ),
    _ident(
        "credential_refs.create allowed_models[]",
        lambda w, allowed_models: _credref(w, allowed_models=[allowed_models]),
        "allowed_models",
        harmless=False,
    ),
    Slot(
        "credential_refs.create credential_ref",
        "pointer",
        lambda w, v: _credref(w, credential_ref=v),
        lambda w: w.fresh("secret://inference/corpus-created"),
        256,
    ),
    _text(
        "credential_refs.rotate rotation_reason", _rotate, "rotation_reason", 128, harmless=False
    ),
    _text(
        "credential_refs.rotate operator_ticket", _rotate, "operator_ticket", 128, harmless=False
    ),
    Slot(
        "credential_refs.rotate new_credential_ref",
        "pointer",
        lambda w, v: _rotate(w, new_credential_ref=v),
        lambda w: w.fresh("secret://inference/corpus-rotated"),
        256,
        harmless=False,
    ),
    _text(
        "credential_refs.revoke revoke_reason",
        lambda w, revoke_reason: Request(
            "POST",
            f"/inference/credential-refs/{w.revoke_ref}/revoke",
            "operator",
            {"revoke_reason": revoke_reason},
        ),
        "revoke_reason",
        128,
        renews="revoke_ref",
        harmless=False,
    ),
    # providers
    _text("providers.enroll provider_name", _enroll, "provider_name", 128, harmless=False),
    _object(
        "providers.enroll contact", _enroll, "contact", {"routing_email": "ops@example.invalid"}
    ),
    _ident("providers.enroll workspace_id", _enroll, "workspace_id", harmless=False),
    Slot(
        "providers.enroll base_url",
        "url",
        lambda w, v: _enroll(w, base_url=v),
        lambda w: "https://provider-enroll.example/v1",
        512,
        harmless=False,  # a base URL has rules of its own (no query, no fragment, no user)
    ),
    Slot(
        "providers.enroll credential_ref",
        "pointer",
        lambda w, v: _enroll(w, credential_ref=v),
        lambda w: w.enroll_pointer,
        256,
        harmless=False,
    ),
    _text("providers.heartbeat agent_version", _heartbeat, "agent_version", 64, harmless=False),
    _object("providers.heartbeat metadata", _heartbeat, "metadata", {}),
    Slot(
        "providers.catalog models[].model",
        "identifier",
        _catalog,
        lambda w: w.fresh("corpus-control-model"),
        128,
    ),
    Slot(
        "providers.capacity inventory[].model",
        "identifier",
        _capacity_request,
        lambda w: TARGET_MODEL,
        128,
        harmless=False,
    ),
    # market
    _object("market.orders metadata", _order, "metadata", {}),
    _ident("market.orders buyer_id", _order, "buyer_id", role="operator"),
    _ident("market.orders model", _order, "model"),
    _policy("market.orders routing_policy", _order, "routing_policy"),
    _text("market.orders.cancel cancel_reason", _cancel, "cancel_reason", 128, renews="open_bid"),
    _ident(
        "market.orders.cancel requested_by",
        _cancel,
        "requested_by",
        role="operator",
        renews="open_bid",
        harmless=False,
    ),
    _text("market.reservations idempotency_key", _reservation, "idempotency_key", 128),
    _ident(
        "market.reservations buyer_id", _reservation, "buyer_id", role="operator", harmless=False
    ),
    # routing
    _ident("quote task_id", _quote, "task_id"),
    _ident("quote goal_id", _quote, "goal_id", harmless=False),
    _policy("quote market_policy", _quote, "market_policy"),
    _ident("route agent_id", _route, "agent_id", role="operator", harmless=False),
    _ident("route task_id", _route, "task_id", harmless=False),
    # payment preview
    _ident("payment_preview buyer_id", _preview, "buyer_id", role="operator", harmless=False),
    _ident("payment_preview provider_id", _preview, "provider_id", harmless=False),
    Slot(
        "payment_preview order_id",
        "identifier",
        lambda w, v: _preview(w, order_id=v),
        lambda w: w.preview_order,
        128,
        harmless=False,
    ),
    # list prices
    _text("list_prices.set note", _list_price, "note", 512),
    _ident("list_prices.set model", _list_price, "model"),
    # the proxy: unsafe top-level fields, attribution, headers; message content is the buyer's
    Slot(
        "proxy.chat top level",
        "top",
        lambda w, fields: _chat(w, **fields),
        lambda w: {"temperature": 0.2},
        harmless=False,
    ),
    _ident(
        "proxy.chat flow_memory.task_id",
        lambda w, task_id: _chat(w, flow_memory={"task_id": task_id}),
        "task_id",
        harmless=False,
    ),
    Slot(
        "proxy.chat x-flow-memory-task-id header",
        "header",
        lambda w, v: _chat(w, http_headers={"x-flow-memory-task-id": v}),
        lambda w: w.fresh("corpus-task"),
        128,
        harmless=False,
    ),
    Slot(
        "proxy.chat message content",
        "content",
        lambda w, v: _chat(w, messages=[{"role": "user", "content": f"Is this valid? {v}"}]),
        lambda w: "hello",
        harmless=False,
    ),
    # path segments: a value where an id belongs
    _path(
        "PATCH",
        "/inference/credential-refs/{}/rotate",
        "operator",
        lambda w: {
            "rotation_reason": "path probe",
            "new_credential_ref": w.fresh("secret://inference/corpus-path-probe"),
        },
        lambda w: w.rotate_ref,
    ),
    _path(
        "POST",
        "/inference/credential-refs/{}/revoke",
        "operator",
        lambda w: {"revoke_reason": "path probe"},
        lambda w: w.revoke_ref,
        renews="revoke_ref",
    ),
    _path(
        "POST",
        "/inference/providers/{}/heartbeat",
        "seller",
        lambda w: {},
        lambda w: w.target_provider,
    ),
    _path(
        "POST",
        "/inference/providers/{}/catalog",
        "seller",
        lambda w: _catalog(w, TARGET_MODEL + "-b").json,
        lambda w: w.target_provider,
    ),
    _path(
        "POST",
        "/inference/providers/{}/capacity",
        "seller",
        lambda w: _capacity(TARGET_MODEL, 1000),
        lambda w: w.target_provider,
    ),
    _path("GET", "/inference/providers/{}/health", "seller", _no_body, lambda w: w.target_provider),
    _path("GET", "/inference/market/models/{}", "buyer", _no_body, lambda w: MODEL),
    _path("GET", "/inference/buyers/{}/profile", "buyer", _no_body, lambda w: "corpus-buyer"),
    _path("GET", "/inference/sellers/{}/profile", "buyer", _no_body, lambda w: "corpus-seller"),
    _path(
        "POST",
        "/inference/market/orders/{}/cancel",
        "buyer",
        lambda w: {"cancel_reason": "path probe"},
        lambda w: w.open_bid,
        renews="open_bid",
    ),
)
PATH_SLOTS = tuple(s for s in SLOTS if s.accepts == "path")
NEUTRAL_NAMES = ("memo", "notes", "detail", "comment")


def _printable_ascii(value: str) -> bool:
    return value == value.strip() and all(" " <= c <= "~" for c in value)


def placements(case: Case, *, harmless: bool) -> Iterator[tuple[Slot, Any]]:
    """Every (slot, material) a case goes to: where it fits and would be kept if let through."""
    if case.fields is not None:
        for slot in SLOTS:
            if harmless and not slot.harmless:
                continue
            flag = case.kind in ("unsafe_flag", "safety_field")
            if (
                slot.accepts == "object"
                or (slot.accepts == "top" and not harmless)
                or (slot.accepts == "policy" and flag)
            ):
                yield slot, dict(case.fields)
        return
    value = case.value
    assert value is not None
    objects = itertools.cycle(NEUTRAL_NAMES)
    for slot in SLOTS:
        if harmless and not slot.harmless:
            continue
        fits = {
            "text": bool(value.strip()) and len(value.strip()) <= slot.limit,
            "identifier": bool(IDENTIFIER.fullmatch(value)) and len(value) <= 128,
            "object": True,
            "pointer": bool(POINTER.fullmatch(value)) and len(value) <= 256,
            "url": value.lower().startswith(("http://", "https://")) and len(value) <= 512,
            # The header sets flow_memory.task_id, an identifier.
            "header": _printable_ascii(value)
            and bool(IDENTIFIER.fullmatch(value))
            and len(value) <= 128,
            "content": True,
        }.get(slot.accepts, False)
        if not fits:
            continue
        yield slot, ({next(objects): value} if slot.accepts == "object" else value)
    if not harmless and len(value) <= PATH_VALUE_LIMIT:
        yield PATH_SLOTS[zlib.crc32(case.id.encode()) % len(PATH_SLOTS)], value


# -- what must not be found afterwards -----------------------------------------------------------


def spellings(needle: str) -> set[str]:
    """The ways a stored or logged copy of ``needle`` may be written."""
    forms = {
        needle,
        json.dumps(needle)[1:-1],
        json.dumps(needle, ensure_ascii=False)[1:-1],
        urllib.parse.quote(needle, safe=""),
        urllib.parse.quote(needle),
    }
    return {form for form in forms if form}


def pairs_in(document: Any, found: set[tuple[str, str]]) -> None:
    """Every (key, value) of every object inside ``document``, parsing JSON held in strings."""
    if isinstance(document, dict):
        for key, value in document.items():
            found.add((str(key), json.dumps(value, sort_keys=True, default=str)))
            pairs_in(value, found)
    elif isinstance(document, list):
        for item in document:
            pairs_in(item, found)
    elif isinstance(document, str) and document[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            pairs_in(json.loads(document), found)


@dataclass
class Traces:
    """Everything the server kept or said, gathered once it has stopped."""

    texts: dict[str, str]  # place -> text to search
    raw: dict[str, bytes]  # place -> bytes to search (the SQLite files)
    pairs: dict[str, set[tuple[str, str]]]  # place -> every stored (key, value)

    def places(self, needle: str) -> set[str]:
        forms = spellings(needle)
        found = {place for place, body in self.texts.items() if any(f in body for f in forms)}
        encoded = [f.encode() for f in forms]
        found |= {place for place, body in self.raw.items() if any(f in body for f in encoded)}
        return found

    def places_of_pair(self, key: str, value: Any) -> set[str]:
        pair = (key, json.dumps(value, sort_keys=True, default=str))
        return {place for place, found in self.pairs.items() if pair in found}


def _database_traces(url: str) -> tuple[str, dict[str, bytes], set[tuple[str, str]]]:
    """Every row as text, the raw SQLite files (old row versions live on in them), and every
    stored (key, value) pair."""
    rows: list[str] = []
    raw: dict[str, bytes] = {}
    pairs: set[tuple[str, str]] = set()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-journal"):
            candidate = Path(f"{path}{suffix}")
            if candidate.exists():
                raw[f"database file{suffix}"] = candidate.read_bytes()
        database = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            # Not the stemmer of migration 0015, a table that stores nothing (fts3tokenize).
            tables = [
                name
                for name, sql in database.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type='table'"
                )
                if "fts3tokenize" not in (sql or "")
            ]
            for table in tables:
                for row in database.execute(f'SELECT * FROM "{table}"'):
                    cells = [c.decode(errors="replace") if isinstance(c, bytes) else c for c in row]
                    rows.append(json.dumps(cells, ensure_ascii=False, default=str))
                    pairs_in(cells, pairs)
        finally:
            database.close()
    else:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                for table in inspect(engine).get_table_names():
                    query = text(f'SELECT row_to_json(t)::text FROM "{table}" t')
                    for (row,) in connection.execute(query):
                        rows.append(row)
                        pairs_in(json.loads(row), pairs)
        finally:
            engine.dispose()
    return "\n".join(rows), raw, pairs


# -- the campaign ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    case: Case
    slot: Slot
    status: int
    code: str | None
    echoed: bool

    @property
    def outcome(self) -> str:
        """``refused`` when the answer is what the boundary promises; otherwise what it was."""
        if 200 <= self.status < 300 and self.slot.accepts != "content":
            return "accepted"
        if self.echoed:
            return "echoed"
        if 200 <= self.status < 300:
            return "refused"  # message content passed to the provider, and kept nowhere
        if self.status >= 500:
            return f"server_error_{self.status}"
        if self.slot.accepts in ("path", "content"):
            return "refused"
        if self.status == 422 and self.code == "forbidden_material":
            return "refused"
        return f"other_refusal_{self.status}_{self.code}"


@dataclass
class Campaign:
    controls: list[tuple[str, int, str]]
    forbidden: list[Answer]
    harmless: list[Answer]
    traces: Traces
    cases_accepted_somewhere: set[str]
    request_count: int

    def failures(self) -> list[Answer]:
        return [a for a in self.forbidden if a.outcome != "refused"]


def _answer(world: World, case: Case, slot: Slot, material: Any) -> Answer:
    response = world.send(slot.build(world, material))
    if 200 <= response.status_code < 300 and slot.renews:
        world.renew(slot.renews)
    try:
        code = response.json().get("error", {}).get("code")
    except ValueError:
        code = None
    body = response.text
    echoed = any(form in body for needle in case.needles for form in spellings(needle))
    return Answer(case, slot, response.status_code, code, echoed)


def _controls(world: World) -> list[tuple[str, int, str]]:
    answers = []
    for slot in SLOTS:
        response = world.send(slot.build(world, slot.control(world)))
        if 200 <= response.status_code < 300 and slot.renews:
            world.renew(slot.renews)
        answers.append((slot.name, response.status_code, response.text[:300]))
    return answers


def _read_everything(world: World) -> dict[str, str]:
    """What the exports and listings hand out, fetched before the server stops."""
    reads: dict[str, str] = {}
    for fmt in ("ndjson", "json"):
        answer = world.send(Request("GET", f"/inference/analytics/export?format={fmt}", "operator"))
        assert answer.status_code == 200, answer.text
        reads[f"usage export ({fmt})"] = answer.text
    pages, cursor = [], None
    while True:
        query = "?limit=500" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = _ok(world.send(Request("GET", f"/inference/analytics/usage{query}", "operator")))
        pages.append(json.dumps(page, ensure_ascii=False))
        cursor = page["next_cursor"]
        if not cursor:
            break
    reads["usage analytics"] = "\n".join(pages)
    events, after = [], 0
    while True:
        page = _ok(
            world.send(
                Request("GET", f"/inference/market/feed?limit=500&after={after}", "operator")
            )
        )
        events.append(json.dumps(page, ensure_ascii=False))
        if not page["events"]:
            break
        after = page["events"][-1]["event_id"]
    reads["market feed"] = "\n".join(events)
    for name, path in [
        ("credential refs", "/inference/credential-refs"),
        ("list prices", "/inference/list-prices"),
        ("market list", "/inference/market/list"),
        ("depth", f"/inference/market/depth?model={MODEL}&unit_type=token"),
        ("buyer profile", "/inference/buyers/corpus-buyer/profile"),
    ]:
        reads[name] = world.send(Request("GET", path, "operator")).text
    return reads


@pytest.fixture(scope="module")
def campaign(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Campaign]:
    workdir = tmp_path_factory.mktemp("safety-corpus")
    if os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL"):
        url: str = request.getfixturevalue("database_url")
        clear_tables(url)
    else:
        url = f"sqlite:///{workdir / 'flow_memory.db'}"
    deployment = CorpusDeployment(url, workdir)
    try:
        keys = {
            "seller": deployment.create_key("corpus-seller"),
            "buyer": deployment.create_key(
                "corpus-buyer", "inference:buy,inference:plan,inference:read,inference:proxy"
            ),
            "operator": deployment.create_key("corpus-operator", ALL_SCOPES),
        }
        with ScriptedUpstream(models=[MODEL]) as upstream:
            server = deployment.start()
            with server.client() as client:
                world = build_world(client, keys, upstream.base_url)
                controls = _controls(world)
                harmless = [
                    _answer(world, case, slot, material)
                    for case in HARMLESS
                    for slot, material in placements(case, harmless=True)
                ]
                forbidden = [
                    _answer(world, case, slot, material)
                    for case in FORBIDDEN
                    for slot, material in placements(case, harmless=False)
                ]
                controls += _controls(world)
                reads = _read_everything(world)
            deployment.stop_all()
        database_text, raw, stored_pairs = _database_traces(url)
        read_pairs: set[tuple[str, str]] = set()
        for body in reads.values():
            for line in body.splitlines() or [body]:
                with contextlib.suppress(ValueError):
                    pairs_in(json.loads(line), read_pairs)
        traces = Traces(
            texts={"database rows": database_text, "server log": deployment.logs(), **reads},
            raw=raw,
            pairs={"database rows": stored_pairs, "exports and listings": read_pairs},
        )
        accepted = {a.case.id for a in forbidden if a.outcome == "accepted"}
        count = len(controls) + len(harmless) + len(forbidden)
        yield Campaign(controls, forbidden, harmless, traces, accepted, count)
    finally:
        deployment.stop_all()


# -- reporting -------------------------------------------------------------------------------------


def _table(counter: Mapping[str, int], total: Mapping[str, int]) -> str:
    return "\n".join(
        f"  {key:<28} {counter.get(key, 0):>5} of {total[key]}" for key in sorted(total)
    )


def _by_case(answers: Sequence[Answer], per_kind: int = 3) -> str:
    """A line per failing case (a few per kind): where it got through and how."""
    slots: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for answer in answers:
        slots[answer.case.id].append(f"{answer.slot.name} ({answer.outcome})")
        kinds[answer.case.id] = answer.case.kind
    shown: Counter[str] = Counter()
    lines = []
    for case_id, places in slots.items():
        shown[kinds[case_id]] += 1
        if shown[kinds[case_id]] <= per_kind:
            lines.append(f"  {case_id}: {len(places)} placements, e.g. {'; '.join(places[:3])}")
    return "\n".join(lines)


def _leaks(campaign: Campaign) -> dict[str, dict[str, set[str]]]:
    """case id -> place -> what of it was found there (a needle, or a key=value pair)."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for case in FORBIDDEN:
        for needle in case.needles:
            for place in campaign.traces.places(needle):
                found[case.id][place].add(repr(needle[:32]))
        for key, value in (case.fields or {}).items():
            for place in campaign.traces.places_of_pair(key, value):
                found[case.id][place].add(f"{key}={value!r}")
    return found


def _explained_by_others(case_id: str, leaks: Mapping[str, set[str]], campaign: Campaign) -> bool:
    """True when each thing found is a key=value pair that an accepted case sent as well."""
    owners: dict[str, set[str]] = defaultdict(set)
    for case in FORBIDDEN:
        for key, value in (case.fields or {}).items():
            owners[f"{key}={value!r}"].add(case.id)
    return all(
        owners.get(what, set()) & (campaign.cases_accepted_somewhere - {case_id})
        for things in leaks.values()
        for what in things
    )


# -- the tests ----------------------------------------------------------------------------------


def test_every_placement_is_a_valid_request(campaign: Campaign) -> None:
    """A harmless control value is accepted in every slot, before and after the corpus ran:
    a refusal in that slot is then the boundary's doing, not a malformed request."""
    bad = [(n, status, body) for n, status, body in campaign.controls if not 200 <= status < 300]
    assert not bad, "\n".join(f"{name}: {status} {body}" for name, status, body in bad)


def test_every_forbidden_case_is_refused_on_every_endpoint(campaign: Campaign) -> None:
    failures = campaign.failures()
    total = Counter(c.kind for c in FORBIDDEN)
    failed = {a.case.id: a.case.kind for a in failures}
    accepted = {a.case.id: a.case.kind for a in failures if a.outcome == "accepted"}
    assert not failures, (
        f"{len(failures)} of {len(campaign.forbidden)} placements were not refused; "
        f"{len(failed)} of {len(FORBIDDEN)} cases got through somewhere "
        f"({len(accepted)} were accepted with a 2xx somewhere).\n"
        "cases not refused everywhere, by kind:\n"
        + _table(Counter(failed.values()), total)
        + "\ncases accepted (2xx) somewhere, by kind:\n"
        + _table(Counter(accepted.values()), total)
        + "\nplacements not refused, by outcome:\n"
        + "\n".join(f"  {k}: {v}" for k, v in Counter(a.outcome for a in failures).most_common())
        + "\nplacements not refused, by slot:\n"
        + "\n".join(f"  {k}: {v}" for k, v in Counter(a.slot.name for a in failures).most_common())
        + "\nexamples:\n"
        + _by_case(failures)
    )


def test_no_forbidden_value_is_kept_logged_or_exported(campaign: Campaign) -> None:
    leaks = _leaks(campaign)
    operator_secret = campaign.traces.places(PLANTED_SECRET)
    unexplained = {
        case_id: places
        for case_id, places in leaks.items()
        if case_id not in campaign.cases_accepted_somewhere
        and not _explained_by_others(case_id, places, campaign)
    }
    kinds = {c.id: c.kind for c in FORBIDDEN}
    by_place = Counter(place for places in leaks.values() for place in places)
    assert not leaks and not operator_secret, (
        f"{len(leaks)} of {len(FORBIDDEN)} forbidden cases left a trace; "
        f"{len(unexplained)} of them were refused on every placement, yet are found.\n"
        "by kind:\n"
        + _table(Counter(kinds[k] for k in leaks), Counter(c.kind for c in FORBIDDEN))
        + "\nby place:\n"
        + "\n".join(f"  {k}: {v}" for k, v in by_place.most_common())
        + "\nfound although every placement was refused:\n"
        + "\n".join(
            f"  {case_id}: " + "; ".join(f"{p}: {sorted(w)}" for p, w in places.items())
            for case_id, places in sorted(unexplained.items())[:40]
        )
        + f"\nthe operator's resolved secret found in: {sorted(operator_secret)}"
    )


def test_a_value_in_a_path_is_neither_echoed_nor_logged(campaign: Campaign) -> None:
    """The access log writes the route, never the raw path; an error never repeats an id."""
    log = campaign.traces.texts["server log"]
    bad = []
    for answer in campaign.forbidden:
        if answer.slot.accepts != "path":
            continue
        logged = any(form in log for n in answer.case.needles for form in spellings(n))
        if answer.outcome != "refused" or logged:
            bad.append(
                f"  {answer.case.id} -> {answer.slot.name}: {answer.outcome}, logged={logged}"
            )
    paths = [a for a in campaign.forbidden if a.slot.accepts == "path"]
    outcomes = Counter(a.outcome for a in paths)
    written = sum(1 for line in bad if line.endswith("logged=True"))
    assert not bad, (
        f"{len(bad)} of {len(paths)} path placements leaked ({written} written to the log; "
        f"answers: {dict(outcomes)}):\n" + "\n".join(bad[:40])
    )


def test_every_harmless_case_is_accepted(campaign: Campaign) -> None:
    refused = [a for a in campaign.harmless if not 200 <= a.status < 300]
    by_case: dict[str, list[Answer]] = defaultdict(list)
    for answer in refused:
        by_case[answer.case.id].append(answer)
    assert not refused, (
        f"{len(refused)} of {len(campaign.harmless)} harmless placements were refused "
        f"({len(by_case)} of {len(HARMLESS)} cases).\n"
        + _table(
            Counter(answers[0].case.kind for answers in by_case.values()),
            Counter(c.kind for c in HARMLESS),
        )
        + "\n"
        + "\n".join(
            f"  {case_id}: refused in {len(answers)} placements "
            f"({', '.join(sorted({f'{a.status} {a.code}' for a in answers}))}), "
            f"e.g. {answers[0].slot.name}"
            for case_id, answers in by_case.items()
        )
    )
