"""Three `flow-memory serve` processes on one database (a SQLite file, or PostgreSQL with
FLOW_MEMORY_TEST_DATABASE_URL) under concurrent traffic, judged only through the HTTP API.

Every request goes to a node picked at random: crossing bids and asks in three markets (and a
few asks beyond published capacity, which must be refused), cancels sent to another node than
the one that placed the order (some of orders already filled, which must answer 409), one
reservation sent to every node at once under one idempotency key, and capacity republished
(also right after reservations). Afterwards every order is read back, and the depth each node
answers is compared with the others and with what the stored open orders imply. A second test
kills one node (server and market process) mid-run; a third revokes a credential reference
through one node and waits until the other two stop routing to its provider.

Orders are read back through the API alone: the feed (`GET /inference/market/feed`) holds every
placement and fill, and a final cancel of every order answers the stored record of each open
one (filled, expired and cancelled ones answer 409 naming their status). The API shows no order
sequence numbers, so their uniqueness is not checked directly: a duplicate shows as a refused
or failed request instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.integration.test_market_durability import _eligible_provider
from tests.integration.test_server import Deployment, IssuedKey, Server, _iso, _ok
from tests.processes import children, running

pytestmark = pytest.mark.integration

GUARD_SECONDS = 30  # a guard against a hung wait, not a performance claim
TRAFFIC_SECONDS = 10
AFTER_KILL_SECONDS = 5
BUYER_SCOPES = "inference:buy,inference:read"
SELLER_SCOPES = "inference:sell,inference:read"
ORDERS = "/inference/market/orders"
RESERVATIONS = "/inference/market/reservations"
SNAPSHOT_SOURCE = "provider_capacity_snapshot"
NOT_CANCELLABLE = re.compile(r"is (\w+) and cannot be cancelled")


@dataclass(frozen=True)
class Market:
    model: str
    unit_type: str
    base_price: Decimal  # manual orders trade around it; snapshots rest above it
    lot: int  # units are drawn as a multiple of it
    capacity: int  # what each seller publishes

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.unit_type)

    def price(self, percent: int) -> str:
        return format(self.base_price * percent / 100, "f")

    @property
    def depth_path(self) -> str:
        return f"/inference/market/depth?model={self.model}&unit_type={self.unit_type}&levels=200"


# The three markets the catalog of tests.factories offers.
MARKETS = (
    Market("flow-memory-orchestrator", "token", Decimal("0.000001"), 100, 1_000_000_000),
    Market("flow-memory-orchestrator", "request", Decimal("0.002"), 1, 10_000_000),
    Market("flow-memory-message-chat", "request", Decimal("0.003"), 1, 10_000_000),
)
TRADING_SNAPSHOT_PERCENT = 120  # ordinary sellers' snapshot asks; sweeping bids reach them
HOLDING_SNAPSHOT_PERCENT = 130  # the holding seller's, which only reservations take


# -- recording every request and its answer -----------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    kind: str
    node: int
    method: str
    path: str
    body: dict[str, Any] | None
    status: int | None  # None: no answer came back
    answer: dict[str, Any] | None
    error: str | None
    sent_at: float

    def describe(self) -> str:
        outcome = self.status if self.status is not None else f"no answer ({self.error})"
        detail = ""
        if self.answer is not None and isinstance(self.answer.get("error"), dict):
            detail = f" {self.answer['error'].get('code')}: {self.answer['error'].get('message')}"
        return f"{self.kind} {self.method} {self.path} on node {self.node} -> {outcome}{detail}"


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(
        self,
        client: httpx.Client,
        node: int,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None = None,
    ) -> Exchange:
        sent_at = time.monotonic()
        try:
            response = client.request(method, path, headers=headers, json=body)
        except httpx.HTTPError as error:
            exchange = Exchange(kind, node, method, path, body, None, None, repr(error), sent_at)
        else:
            exchange = Exchange(
                kind, node, method, path, body, response.status_code, _json(response), None, sent_at
            )
        with self.lock:
            self.exchanges.append(exchange)
        return exchange


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        parsed = json.loads(response.text, parse_float=Decimal)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# -- the cast -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seller:
    owner: str
    key: IssuedKey
    provider_id: str
    snapshot_percent: int


@dataclass
class Cast:
    sellers: list[Seller]  # they place manual asks
    holder: Seller  # its snapshot asks are what reservations hold
    buyers: list[tuple[str, IssuedKey]]
    admin: IssuedKey  # reads the feed and depth, and reads every order back


TRADING_SELLERS = ("seller-north", "seller-south")
HOLDING_SELLER = "seller-holding"
BUYERS = ("buyer-one", "buyer-two", "buyer-three")
CAST_KEYS = {
    **dict.fromkeys((*TRADING_SELLERS, HOLDING_SELLER), SELLER_SCOPES),
    **dict.fromkeys(BUYERS, BUYER_SCOPES),
    "operator": "inference:admin",
}


def _start_nodes(
    deployment: Deployment, keys: dict[str, str]
) -> tuple[list[Server], dict[str, IssuedKey]]:
    """Three servers on the deployment's database, and a key per owner made by the CLI."""
    first = deployment.start()  # it migrates the database before the CLI runs beside it
    with ThreadPoolExecutor(max_workers=4) as pool:
        made = {
            owner: pool.submit(deployment.create_key, owner, scopes)
            for owner, scopes in keys.items()
        }
        servers = [first, deployment.start(), deployment.start()]
        return servers, {owner: future.result() for owner, future in made.items()}


def _capacity_body(percent: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        # Microseconds keep each republish newer than the one before it.
        "capacity_version": now.isoformat(),
        "inventory": [
            {
                "model": m.model,
                "unit_type": m.unit_type,
                "available_units": m.capacity,
                "ask_unit_price": m.price(percent),
                "min_order_units": 1,
                "expires_at": _iso(now + timedelta(days=30)),
            }
            for m in MARKETS
        ],
    }


def _seller(client: httpx.Client, owner: str, key: IssuedKey, percent: int) -> Seller:
    """An eligible provider of ``owner`` publishing capacity in every market."""
    provider_id = _eligible_provider(client, key.headers, datetime.now(UTC))
    _ok(
        client.post(
            f"/inference/providers/{provider_id}/capacity",
            headers=key.headers,
            json=_capacity_body(percent),
        )
    )
    return Seller(owner, key, provider_id, percent)


def _cast(deployment: Deployment) -> tuple[list[Server], Cast]:
    servers, keys = _start_nodes(deployment, CAST_KEYS)
    with servers[0].client() as client:
        sellers = [
            _seller(client, owner, keys[owner], TRADING_SNAPSHOT_PERCENT)
            for owner in TRADING_SELLERS
        ]
        holder = _seller(client, HOLDING_SELLER, keys[HOLDING_SELLER], HOLDING_SNAPSHOT_PERCENT)
    buyers = [(owner, keys[owner]) for owner in BUYERS]
    return servers, Cast(sellers, holder, buyers, keys["operator"])


# -- traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    order_id: str
    node: int
    headers: dict[str, str]
    answer: dict[str, Any]  # the 201 answer: the order and its fills


@dataclass
class Traffic:
    """Shared state of the traffic threads: who is alive, and the orders acknowledged so far."""

    servers: list[Server]
    cast: Cast
    recorder: Recorder
    deadline: float
    live: list[int]
    # Nodes left out of the reservation races: holds a killed node may have committed without
    # answering would be unknown to the depth check.
    no_reservations_on: frozenset[int] = frozenset()
    placed: list[Placed] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clients(self) -> list[httpx.Client]:
        return [server.client() for server in self.servers]

    def node(self, rng: random.Random, avoid: int | None = None) -> int:
        with self.lock:
            choices = [n for n in self.live if n != avoid] or list(self.live)
        return rng.choice(choices)

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def acknowledged(self, node: int | None = None) -> int:
        with self.lock:
            return sum(1 for p in self.placed if node is None or p.node == node)


def _order_body(rng: random.Random, traffic: Traffic) -> tuple[dict[str, str], dict[str, Any]]:
    market = rng.choice(MARKETS)
    units = rng.randint(1, 40) * market.lot
    roll = rng.random()
    if roll < 0.03:
        # Beyond what the seller published: refused, after the market was opened for it.
        seller = rng.choice(traffic.cast.sellers)
        body: dict[str, Any] = {
            "side": "ask",
            "provider_id": seller.provider_id,
            "limit_unit_price": market.price(110),
            "metadata": {"expect": "refused"},
        }
        units = market.capacity + market.lot
        headers = seller.key.headers
    elif roll < 0.5:
        seller = rng.choice(traffic.cast.sellers)
        body = {
            "side": "ask",
            "provider_id": seller.provider_id,
            "limit_unit_price": market.price(rng.randint(100, 112)),
        }
        headers = seller.key.headers
    else:
        _, buyer = rng.choice(traffic.cast.buyers)
        sweep = rng.random() < 0.05  # reaches the ordinary sellers' snapshot asks
        body = {
            "side": "bid",
            "limit_unit_price": market.price(125 if sweep else rng.randint(95, 107)),
            "time_in_force": "ioc" if sweep else rng.choice(("gtc",) * 8 + ("ioc", "fok")),
        }
        headers = buyer.headers
    body.update(model=market.model, unit_type=market.unit_type, units=units)
    return headers, body


def _trader(traffic: Traffic, seed: int) -> None:
    """Places orders, and cancels acknowledged ones through another node than their own."""
    rng = random.Random(seed)
    clients = traffic.clients()
    try:
        while traffic.running():
            with traffic.lock:
                placed = list(traffic.placed[-200:])
            if placed and rng.random() < 0.2:
                filled = [p for p in placed if p.answer["order"]["status"] == "filled"]
                resting = [
                    p for p in placed if p.answer["order"]["status"] in ("open", "partially_filled")
                ]
                pool = filled if filled and (rng.random() < 0.3 or not resting) else resting
                if pool:
                    target = rng.choice(pool)
                    node = traffic.node(rng, avoid=target.node)
                    traffic.recorder.send(
                        clients[node],
                        node,
                        "cancel",
                        "POST",
                        f"{ORDERS}/{target.order_id}/cancel",
                        target.headers,
                        {"cancel_reason": "trader_repriced"},
                    )
                    continue
            headers, body = _order_body(rng, traffic)
            node = traffic.node(rng)
            sent = traffic.recorder.send(
                clients[node], node, body["side"], "POST", ORDERS, headers, body
            )
            if sent.status == 201 and sent.answer is not None:
                with traffic.lock:
                    traffic.placed.append(
                        Placed(sent.answer["order"]["order_id"], node, headers, sent.answer)
                    )
    finally:
        for client in clients:
            client.close()


def _reservation_racer(traffic: Traffic, seed: int) -> None:
    """Sends one reservation to every live node at the same instant under one key, then
    republishes the holding seller's capacity (a republish right after a reservation)."""
    rng = random.Random(seed)
    clients = traffic.clients()
    holder = traffic.cast.holder
    round_number = 0
    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            while traffic.running():
                round_number += 1
                market = rng.choice(MARKETS)
                _, buyer = rng.choice(traffic.cast.buyers)
                body = {
                    "provider_id": holder.provider_id,
                    "model": market.model,
                    "unit_type": market.unit_type,
                    "requested_units": rng.randint(1, 20) * market.lot,
                    "max_unit_price": market.price(HOLDING_SNAPSHOT_PERCENT),
                    "hold_seconds": 3600,  # no hold ends while the test looks
                    "allow_partial": True,
                    "idempotency_key": f"race-{seed}-{round_number}",
                }
                with traffic.lock:
                    nodes = [n for n in traffic.live if n not in traffic.no_reservations_on]
                start = threading.Barrier(len(nodes))

                def reserve(
                    node: int,
                    body: dict[str, Any] = body,
                    start: threading.Barrier = start,
                    headers: dict[str, str] = buyer.headers,
                ) -> Exchange:
                    start.wait(timeout=GUARD_SECONDS)
                    return traffic.recorder.send(
                        clients[node], node, "reserve", "POST", RESERVATIONS, headers, body
                    )

                list(pool.map(reserve, nodes))
                if round_number % 2 == 0:
                    node = traffic.node(rng)
                    traffic.recorder.send(
                        clients[node],
                        node,
                        "republish",
                        "POST",
                        f"/inference/providers/{holder.provider_id}/capacity",
                        holder.key.headers,
                        _capacity_body(holder.snapshot_percent),
                    )
    finally:
        for client in clients:
            client.close()


def _republisher(traffic: Traffic, seed: int) -> None:
    """Republishes the trading sellers' capacity now and then, through any node."""
    rng = random.Random(seed)
    clients = traffic.clients()
    try:
        while traffic.running():
            seller = rng.choice(traffic.cast.sellers)
            node = traffic.node(rng)
            traffic.recorder.send(
                clients[node],
                node,
                "republish",
                "POST",
                f"/inference/providers/{seller.provider_id}/capacity",
                seller.key.headers,
                _capacity_body(seller.snapshot_percent),
            )
            time.sleep(0.3)  # pacing only
    finally:
        for client in clients:
            client.close()


def _run_traffic(traffic: Traffic, *, traders: int, while_running: Callable[[], None]) -> None:
    workers = [
        threading.Thread(target=_trader, args=(traffic, seed), daemon=True)
        for seed in range(traders)
    ]
    workers.append(threading.Thread(target=_reservation_racer, args=(traffic, 100), daemon=True))
    workers.append(threading.Thread(target=_republisher, args=(traffic, 200), daemon=True))
    for worker in workers:
        worker.start()
    try:
        while_running()
    except BaseException:
        traffic.deadline = time.monotonic()  # stop the traffic at once
        raise
    finally:
        for worker in workers:
            # A request may take up to the client's timeout after the deadline.
            worker.join(timeout=max(0.0, traffic.deadline - time.monotonic()) + 2 * GUARD_SECONDS)
    assert not any(w.is_alive() for w in workers), "a traffic thread never finished"


# -- reading everything back ----------------------------------------------------------------


@dataclass(frozen=True)
class PlacedEvent:
    order_id: str
    key: tuple[str, str]
    side: str
    units: int
    price: Decimal
    source: str
    status: str


@dataclass
class Ledger:
    """What the feed says happened, order by order."""

    orders: dict[str, PlacedEvent] = field(default_factory=dict)
    fills: dict[str, dict[str, Any]] = field(default_factory=dict)
    filled: Counter[str] = field(default_factory=Counter)
    reservations: set[str] = field(default_factory=set)
    duplicate_events: list[str] = field(default_factory=list)


def _read_feed(client: httpx.Client, headers: dict[str, str]) -> Ledger:
    ledger = Ledger()
    after = 0
    while True:
        page = _ok(client.get(f"/inference/market/feed?after={after}&limit=500", headers=headers))
        for event in page["events"]:
            payload = event["payload"]
            subject = event["subject_id"]
            if event["kind"] == "order_placed":
                if subject in ledger.orders:
                    ledger.duplicate_events.append(f"order {subject} placed twice in the feed")
                ledger.orders[subject] = PlacedEvent(
                    subject,
                    (event["model"], event["unit_type"]),
                    payload["side"],
                    payload["units"],
                    Decimal(str(payload["limit_unit_price"])),
                    payload["source"],
                    payload["status"],
                )
            elif event["kind"] == "fill":
                if subject in ledger.fills:
                    ledger.duplicate_events.append(f"fill {subject} twice in the feed")
                ledger.fills[subject] = payload
                ledger.filled[payload["bid_order_id"]] += payload["units"]
                ledger.filled[payload["ask_order_id"]] += payload["units"]
            elif event["kind"] == "reservation_held":
                ledger.reservations.add(subject)
        if page["next_cursor"] is None:
            return ledger
        after = page["next_cursor"]


def _read_depths(
    recorder: Recorder, servers: list[Server], live: Iterable[int], headers: dict[str, str]
) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    depths: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for node in live:
        with servers[node].client() as client:
            for market in MARKETS:
                sent = recorder.send(client, node, "depth", "GET", market.depth_path, headers)
                if sent.status == 200 and sent.answer is not None:
                    depths[market.key][node] = sent.answer
    return depths


def _read_back_orders(
    recorder: Recorder,
    servers: list[Server],
    live: list[int],
    headers: dict[str, str],
    order_ids: Iterable[str],
) -> dict[str, Exchange]:
    """Cancel every order as the operator: an open one answers its stored record, an ended
    one 409 naming its status. Run only once traffic and depth reads are over."""
    clients = {node: servers[node].client() for node in live}  # httpx clients are thread-safe

    def read_back(item: tuple[int, str]) -> tuple[str, Exchange]:
        index, order_id = item
        node = live[index % len(live)]
        sent = recorder.send(
            clients[node],
            node,
            "read_back",
            "POST",
            f"{ORDERS}/{order_id}/cancel",
            headers,
            {"cancel_reason": "read_back"},
        )
        return order_id, sent

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return dict(pool.map(read_back, enumerate(sorted(order_ids))))
    finally:
        for client in clients.values():
            client.close()


def _levels(answer: dict[str, Any], side: str) -> list[tuple[Decimal, int, int]]:
    return [
        (Decimal(str(level["unit_price"])), level["available_units"], level["order_count"])
        for level in answer[side]
    ]


def _differing(
    levels: list[tuple[Decimal, int, int]], other: list[tuple[Decimal, int, int]]
) -> list[tuple[str, int, int]]:
    """The levels not in ``other``, prices written plainly."""
    return [(format(p, "f"), u, n) for p, u, n in levels if (p, u, n) not in other][:6]


def _verify(
    deployment: Deployment,
    traffic: Traffic,
    *,
    problems: list[str],
    expect_answer: Callable[[Exchange], bool] = lambda _: True,
) -> None:
    """Read everything back through the surviving nodes and list what does not hold."""
    servers, cast, recorder, live = traffic.servers, traffic.cast, traffic.recorder, traffic.live
    traffic_exchanges = list(recorder.exchanges)

    # Every request was answered, and no answer was a server error.
    for sent in traffic_exchanges:
        if sent.status is None and expect_answer(sent):
            problems.append(f"no answer: {sent.describe()}")
        elif sent.status is not None and sent.status >= 500:
            problems.append(f"server error: {sent.describe()}")

    # An ask beyond published capacity is refused (and must not be acknowledged).
    for sent in traffic_exchanges:
        beyond = sent.body is not None and sent.body.get("metadata") == {"expect": "refused"}
        if beyond and sent.status is not None and not 400 <= sent.status < 500:
            problems.append(f"an ask beyond published capacity: {sent.describe()}")

    # A cancel of an order acknowledged as filled must be refused, whichever node gets it.
    filled_at_ack = {p.order_id for p in traffic.placed if p.answer["order"]["status"] == "filled"}
    cancelled_at: dict[str, dict[str, Any]] = {}
    for sent in traffic_exchanges:
        if sent.kind != "cancel" or sent.status is None:
            continue
        order_id = sent.path.split("/")[-2]
        if order_id in filled_at_ack and sent.status != 409:
            problems.append(f"a filled order was not refused: {sent.describe()}")
        if sent.status == 200 and sent.answer is not None:
            cancelled_at[order_id] = sent.answer["order"]

    # What each acknowledgement said is consistent with itself.
    for placed in traffic.placed:
        order, fills = placed.answer["order"], placed.answer["fills"]
        if order["filled_units"] + order["remaining_units"] != order["units"]:
            problems.append(f"acknowledged order {placed.order_id} does not add up: {order}")
        if sum(f["units"] for f in fills) != order["filled_units"]:
            problems.append(f"acknowledged order {placed.order_id}: fills != filled_units")

    with servers[live[0]].client() as client:
        ledger = _read_feed(client, cast.admin.headers)
    problems.extend(ledger.duplicate_events)
    depths = _read_depths(recorder, servers, live, cast.admin.headers)

    # Every acknowledged order and fill is stored.
    for placed in traffic.placed:
        order = placed.answer["order"]
        stored = ledger.orders.get(placed.order_id)
        if stored is None:
            problems.append(f"order {placed.order_id} acknowledged by node {placed.node} is lost")
        elif (stored.units, stored.side) != (order["units"], order["side"]):
            problems.append(f"order {placed.order_id} is stored otherwise than acknowledged")
        for fill in placed.answer["fills"]:
            kept = ledger.fills.get(fill["fill_id"])
            if kept is None or kept["units"] != fill["units"]:
                problems.append(
                    f"fill {fill['fill_id']} acknowledged by node {placed.node} is lost"
                )
    for fill_id, fill in ledger.fills.items():
        for side in ("bid_order_id", "ask_order_id"):
            if fill[side] not in ledger.orders:
                problems.append(f"fill {fill_id} trades an order the feed never placed")

    # No order filled beyond its units.
    for order_id, event in ledger.orders.items():
        if ledger.filled[order_id] > event.units:
            problems.append(
                f"order {order_id} ({event.side}, {event.source}) of "
                f"{event.units} units has {ledger.filled[order_id]} filled"
            )

    # Every node answers the same depth.
    for market in MARKETS:
        by_node = depths.get(market.key, {})
        if set(by_node) != set(live):
            problems.append(f"depth of {market.key} not answered by every node: {sorted(by_node)}")
        views = {
            node: {k: a[k] for k in ("bids", "asks", "active_reservations")}
            for node, a in by_node.items()
        }
        for node, view in views.items():
            if view != views[live[0]]:
                problems.append(f"node {node} answers another depth of {market.key} than {live[0]}")

    # Read every order back, then check its units and the depth its stored state implies.
    read_back = _read_back_orders(
        recorder, servers, live, cast.admin.headers, set(ledger.orders) | filled_at_ack
    )
    acked = {p.order_id: p for p in traffic.placed}
    resting: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for order_id, sent in read_back.items():
        placed_event = ledger.orders.get(order_id)
        manual = placed_event is not None and placed_event.source != SNAPSHOT_SOURCE
        fills = ledger.filled[order_id]
        if sent.status == 200 and sent.answer is not None:
            record = sent.answer["order"]
            if record["filled_units"] + record["remaining_units"] != record["units"]:
                problems.append(f"order {order_id} does not add up: {record}")
            if record["filled_units"] > record["units"] or record["remaining_units"] <= 0:
                problems.append(f"order {order_id} rests with impossible units: {record}")
            # A snapshot ask also shrinks when manual asks draw on the same capacity.
            if (fills != record["filled_units"]) if manual else (fills > record["filled_units"]):
                problems.append(
                    f"open order {order_id}: fills sum to {fills}, "
                    f"filled_units is {record['filled_units']}"
                )
            resting[(record["model"], record["unit_type"])].append(record)
            continue
        if sent.status != 409 or sent.answer is None:
            problems.append(f"reading back {order_id}: {sent.describe()}")
            continue
        match = NOT_CANCELLABLE.search(sent.answer["error"]["message"])
        status = match.group(1) if match else "?"
        if not manual or placed_event is None:
            continue
        if status == "filled" and fills != placed_event.units:
            problems.append(f"filled order {order_id} of {placed_event.units} has {fills} in fills")
        elif status == "cancelled" and order_id in cancelled_at:
            if fills != cancelled_at[order_id]["filled_units"]:
                problems.append(f"order {order_id} traded after it was cancelled")
        elif status == "expired" and order_id in acked:
            if fills != acked[order_id].answer["order"]["filled_units"]:
                problems.append(f"order {order_id} traded after it expired")
        elif status not in ("filled", "cancelled", "expired"):
            problems.append(f"reading back {order_id}: {sent.describe()}")

    # One reservation per (owner, idempotency_key), and the holds the depth must account for.
    # (Each key is used by one buyer only, so the key alone names the pair.)
    by_key: dict[str, list[Exchange]] = defaultdict(list)
    for sent in traffic_exchanges:
        if sent.kind == "reserve" and sent.body is not None:
            by_key[sent.body["idempotency_key"]].append(sent)
    reservations: dict[str, dict[str, Any]] = {}
    for key, answers in by_key.items():
        made = [a for a in answers if a.status in (200, 201) and a.answer is not None]
        ids = {a.answer["reservation_id"] for a in made if a.answer is not None}
        if len(ids) > 1 or sum(a.status == 201 for a in made) > 1:
            problems.append(
                f"idempotency key {key} made {len(ids)} reservations: "
                + "; ".join(a.describe() for a in answers)
            )
        for a in made:
            if a.answer is not None:
                reservations[a.answer["reservation_id"]] = a.answer["reservation"]
    if ledger.reservations != set(reservations):
        problems.append(
            f"the feed holds {len(ledger.reservations)} reservations, the answers "
            f"{len(reservations)}: {sorted(ledger.reservations ^ set(reservations))[:5]}"
        )
    held: Counter[str] = Counter()
    for reservation in reservations.values():
        for matched in reservation["matched_orders"]:
            held[matched["order_id"]] += matched["units"]

    for market in MARKETS:
        answer = depths.get(market.key, {}).get(live[0])
        if answer is None:
            continue
        expected: dict[str, list[tuple[Decimal, int, int]]] = {}
        for side, best_first in (("bids", True), ("asks", False)):
            levels: dict[Decimal, list[int]] = defaultdict(lambda: [0, 0])
            for record in resting[market.key]:
                if record["side"] == side[:-1]:
                    level = levels[Decimal(str(record["limit_unit_price"]))]
                    level[0] += record["remaining_units"] - held[record["order_id"]]
                    level[1] += 1
            expected[side] = [
                (price, units, count)
                for price, (units, count) in sorted(levels.items(), reverse=best_first)
            ]
            answered = _levels(answer, side)
            if answered != expected[side]:
                problems.append(
                    f"{market.key} {side}: depth answers {_differing(answered, expected[side])} "
                    f"where the stored open orders imply {_differing(expected[side], answered)} "
                    "(price, available units, orders)"
                )
        mine = [r for r in reservations.values() if (r["model"], r["unit_type"]) == market.key]
        summary = {"count": len(mine), "held_units": sum(r["held_units"] for r in mine)}
        if answer["active_reservations"] != summary:
            problems.append(
                f"{market.key} active reservations {answer['active_reservations']}, "
                f"answered reservations {summary}"
            )

    # No deadlock or unhandled error in any node's log.
    problems.extend(_log_problems(deployment.logs()))


def _log_problems(logs: str) -> list[str]:
    """Unhandled errors and deadlocks in the servers' logs, one entry per distinct error."""
    found: dict[str, str] = {}
    lines = logs.splitlines()
    for at, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = at + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
                end += 1
            error = lines[end] if end < len(lines) else "?"
            found.setdefault(error, "\n".join(lines[max(at, end - 12) : end + 1]))
    problems = [
        f"a server log holds a Traceback (distinct error {n}): {error}\n{tail}"
        for n, (error, tail) in enumerate(found.items(), 1)
    ]
    deadlocks = logs.count("deadlock detected")
    if deadlocks:
        at = logs.index("deadlock detected")
        problems.append(
            f"server logs report {deadlocks} deadlocks:\n{logs[max(0, at - 300) : at + 300]}"
        )
    return problems


def _summary(recorder: Recorder) -> str:
    counts = Counter((e.kind, e.node, e.status) for e in recorder.exchanges)
    return "\n".join(
        f"  {kind:<10} node {node} -> {status}: {n}"
        for (kind, node, status), n in sorted(counts.items(), key=str)
    )


def _report(problems: list[str], recorder: Recorder) -> None:
    print("requests and answers:\n" + _summary(recorder))
    if problems:
        kinds = Counter(p.split(":")[0].split(" ")[0] for p in problems)
        pytest.fail(
            f"{len(problems)} problems ({dict(kinds)}):\n" + "\n".join(problems[:60]),
            pytrace=False,
        )


# -- the tests ------------------------------------------------------------------------------


def test_three_nodes_under_concurrent_traffic_keep_every_order_whole(
    deployment: Deployment,
) -> None:
    servers, cast = _cast(deployment)
    traffic = Traffic(servers, cast, Recorder(), time.monotonic() + TRAFFIC_SECONDS, live=[0, 1, 2])

    _run_traffic(traffic, traders=6, while_running=lambda: None)

    problems: list[str] = []
    placed_by_node = Counter(p.node for p in traffic.placed)
    assert len(placed_by_node) == 3, f"every node acknowledged orders: {placed_by_node}"
    _verify(deployment, traffic, problems=problems)
    _report(problems, traffic.recorder)


def test_a_node_killed_mid_run_loses_no_acknowledged_order(deployment: Deployment) -> None:
    servers, cast = _cast(deployment)
    victim = 2
    # Traffic runs until AFTER_KILL_SECONDS after the kill (the guard only bounds a hung run).
    traffic = Traffic(
        servers,
        cast,
        Recorder(),
        time.monotonic() + 2 * GUARD_SECONDS,
        live=[0, 1, 2],
        no_reservations_on=frozenset({victim}),
    )
    killed_at: list[float] = []

    def kill_once_the_victim_has_acknowledged_orders() -> None:
        deadline = time.monotonic() + GUARD_SECONDS
        while traffic.acknowledged(victim) < 10:
            assert time.monotonic() < deadline, "the victim node acknowledged too few orders"
            time.sleep(0.05)
        market = children(servers[victim].process.pid)
        with traffic.lock:
            traffic.live.remove(victim)
        killed_at.append(time.monotonic())
        servers[victim].process.send_signal(signal.SIGKILL)
        for pid in market:  # as if the machine died: its market process goes too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        traffic.deadline = time.monotonic() + AFTER_KILL_SECONDS
        assert servers[victim].process.wait(timeout=GUARD_SECONDS) == -signal.SIGKILL
        deadline = time.monotonic() + GUARD_SECONDS
        while any(running(pid) for pid in market):
            assert time.monotonic() < deadline, "the market process outlived the kill"
            time.sleep(0.05)

    _run_traffic(traffic, traders=6, while_running=kill_once_the_victim_has_acknowledged_orders)
    [kill] = killed_at
    survivors_after = [
        e
        for e in traffic.recorder.exchanges
        if e.node != victim and e.sent_at > kill and e.kind in ("bid", "ask") and e.status == 201
    ]
    print(
        f"acknowledged by node: {dict(Counter(p.node for p in traffic.placed))}; "
        f"{len(survivors_after)} by the survivors after node {victim} was killed"
    )

    def answered_unless_sent_to_the_victim(sent: Exchange) -> bool:
        return sent.node != victim  # a request in flight to the killed node may go unanswered

    problems: list[str] = []
    if not survivors_after:
        problems.append("the surviving nodes acknowledged no order after the kill")
    _verify(
        deployment, traffic, problems=problems, expect_answer=answered_unless_sent_to_the_victim
    )
    _report(problems, traffic.recorder)


def test_a_revoke_on_one_node_gates_routes_on_the_others(deployment: Deployment) -> None:
    servers, keys = _start_nodes(
        deployment,
        {
            "seller-revoked": SELLER_SCOPES,
            "seller-other": SELLER_SCOPES,
            "buyer-one": BUYER_SCOPES,
            "planner": "inference:plan,inference:read",
            "operator": "inference:admin",
        },
    )
    market = MARKETS[0]
    now = datetime.now(UTC)
    revoked_seller, other_seller = keys["seller-revoked"], keys["seller-other"]
    buyer, planner = keys["buyer-one"].headers, keys["planner"].headers
    admin = keys["operator"].headers

    with servers[0].client() as client:
        gated = _eligible_provider(client, revoked_seller.headers, now)
        other = _eligible_provider(client, other_seller.headers, now)
        # The provider to be revoked is the cheaper: every node routes to it first.
        for provider_id, key, percent in ((gated, revoked_seller, 70), (other, other_seller, 90)):
            _ok(
                client.post(
                    f"/inference/providers/{provider_id}/capacity",
                    headers=key.headers,
                    json=_capacity_body(percent),
                )
            )
        reference_id = next(
            r["credential_ref_id"]
            for r in _ok(client.get("/inference/credential-refs", headers=admin))["credential_refs"]
            if r["owner_id"] == "seller-revoked"
        )

    quote_body = {"model": market.model, "unit_type": market.unit_type, "estimated_units": 1000}
    bid_body = {
        "side": "bid",
        "model": market.model,
        "unit_type": market.unit_type,
        "units": 1000,
        "limit_unit_price": market.price(100),
        "time_in_force": "ioc",
    }

    def quoted(client: httpx.Client) -> list[str]:
        answer = _ok(client.post("/inference/quote", headers=planner, json=quote_body))
        return [q["provider_id"] for q in answer["quotes"]]

    def sellers_of_a_bid(client: httpx.Client) -> set[str | None]:
        answer = _ok(client.post(ORDERS, headers=buyer, json=bid_body), 201)
        return {f["provider_id"] for f in answer["fills"]}

    def gate(client: httpx.Client) -> str:
        health = _ok(client.get(f"/inference/providers/{gated}/health", headers=admin))
        return str(health["route_gate"])

    others = [s.client() for s in servers[1:]]
    try:
        for client in others:  # every node routes to it, and trades with it, before the revoke
            assert quoted(client)[0] == gated
            assert sellers_of_a_bid(client) == {gated}
            assert gate(client) == "eligible"

        with servers[0].client() as client:
            revoked = _ok(
                client.post(
                    f"/inference/credential-refs/{reference_id}/revoke",
                    headers=admin,
                    json={"revoke_reason": "key_compromised", "disable_provider_routes": True},
                )
            )
        revoked_at = time.monotonic()
        assert gated in revoked["gated_provider_ids"]

        conditions: dict[str, Callable[[httpx.Client], bool]] = {
            "health blocked": lambda c: gate(c) == "blocked",
            "quote skips it": lambda c: gated not in quoted(c),
            "bids skip it": lambda c: gated not in sellers_of_a_bid(c),
        }
        took: dict[tuple[int, str], float] = {}
        pending = {(node, name) for node in (1, 2) for name in conditions}
        while pending:
            assert time.monotonic() - revoked_at < GUARD_SECONDS, (
                f"still routable after {GUARD_SECONDS} s: {sorted(pending)}"
            )
            for node, name in sorted(pending):
                if conditions[name](others[node - 1]):
                    took[(node, name)] = time.monotonic() - revoked_at
                    pending.discard((node, name))
            time.sleep(0.02)
        for (node, name), seconds in sorted(took.items()):
            print(f"node {node}: {name} {seconds * 1000:.0f} ms after the revoke was answered")

        # Once gated, it stays gated on every node, and the market still trades with the other.
        for client in others:
            for _ in range(3):
                assert sellers_of_a_bid(client) == {other}
            assert gated not in quoted(client)
            assert gate(client) == "blocked"
    finally:
        for client in others:
            client.close()

    problems = _log_problems(deployment.logs())
    assert not problems, "\n".join(problems)
