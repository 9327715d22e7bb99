"""The job board on three `flow-memory serve` processes sharing one PostgreSQL database, judged
through the HTTP API and the ledger's own records.

The first test has many bidders (requesters among them) bid on the same jobs through all three
servers at once: auction jobs, whose windows the servers' timers close, and fixed-mode jobs,
whose first eligible bid wins. Beside them, two racers revise their bids on jobs of their own
as fast as they can, alternating servers, while some server's timer closes the window, and the
requesters win one another's jobs in a ring (each pays the next, so settlements cross). Every
job is awarded exactly once, at the price its winner sent in its last acknowledged bid, every
losing bid says why, and once the winners have uploaded their results (all at once, through
any server) every job is paid exactly once and no credit stays held.

The second kills a server (kill -9) while the timers are awarding, then kills another while
winners' results are being uploaded through it: between award and payment. Every job is then
either completed and paid once, or still awarded with its escrow held whole, the ledger
reconciles, and every job completes, once, when its result is uploaded through the survivor.

PostgreSQL only: several servers share one job board through its row locks (a timer claims a
due job with SKIP LOCKED) and its notification channel.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from flow_memory.jobs.domain import LOSS_REASONS
from flow_memory.keys.service import create_key
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.ledger.models import LedgerHold
from flow_memory.ledger.reconcile import check_ledger
from tests.factories import credential_ref_body, enroll_body
from tests.integration.test_server import Deployment, IssuedKey, Server, _ok

pytestmark = pytest.mark.integration

GUARD_SECONDS = 60  # a guard against a hung wait, not a performance claim
JOBS = "/inference/jobs"
LEDGER = "/inference/ledger"
MODEL = "flow-memory-orchestrator"
MAX_PRICE = Decimal("0.5")
DEADLINE_SECONDS = 300
BUYER_SCOPES = "inference:buy,inference:read"
SELLER_SCOPES = "inference:sell,inference:read"
TAKEN = (200, 201)
NOT_OPEN = ("bid_window_closed", "job_not_open")  # why a bid sent too late is refused


@pytest.fixture(autouse=True)
def _postgresql_only(deployment: Deployment) -> None:
    if not deployment.database_url.startswith("postgresql"):
        pytest.skip("servers share a job board on PostgreSQL (row locks, NOTIFY)")


# -- the cast -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """An owner with a key and, when it bids, a provider to run what it wins."""

    owner: str
    key: IssuedKey
    provider_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return self.key.headers


@dataclass
class Board:
    servers: list[Server]
    admin: IssuedKey
    members: dict[str, Member]

    def clients(self) -> list[httpx.Client]:
        return [server.client() for server in self.servers]


def _issue_keys(database_url: str, scopes: dict[str, str]) -> dict[str, IssuedKey]:
    """A key per owner, made in this process rather than by the CLI (a process a key): the same
    rows, without seconds of start-up each."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            made = {
                owner: create_key(
                    session,
                    owner_id=owner,
                    scopes=wanted.split(","),
                    label="jobs on three nodes",
                    now=datetime.now(UTC),
                )
                for owner, wanted in scopes.items()
            }
    finally:
        engine.dispose()
    return {owner: IssuedKey(k.record.key_id, k.secret) for owner, k in made.items()}


def _provider(client: httpx.Client, key: IssuedKey) -> str:
    reference = _ok(
        client.post("/inference/credential-refs", headers=key.headers, json=credential_ref_body()),
        201,
    )["credential_ref"]
    enrolled = _ok(
        client.post(
            "/inference/providers/enroll",
            headers=key.headers,
            json=enroll_body(reference["credential_ref_id"]),
        ),
        201,
    )
    provider_id: str = enrolled["provider"]["provider_id"]
    return provider_id


def _board(deployment: Deployment, scopes: dict[str, str]) -> Board:
    """Three servers, a key per owner and a provider for every owner that may sell. Results
    are accepted as they arrive (a review window of 0): these tests are about paying once, so
    bids need no stake and a bidder may hold any number of jobs (tests/api/test_jobs_capacity.py
    covers those rules)."""
    deployment.settings["FLOW_MEMORY_VALIDATION_REVIEW_SECONDS"] = "0"
    deployment.settings["FLOW_MEMORY_STAKE_PER_JOB_SLOT"] = "0"
    deployment.settings["FLOW_MEMORY_EARNED_CAPACITY_ENFORCED"] = "false"
    keys = _issue_keys(deployment.database_url, {**scopes, "operator": "inference:admin"})
    servers = [deployment.start() for _ in range(3)]
    members: dict[str, Member] = {}
    with servers[0].client() as client:
        for owner, wanted in scopes.items():
            sells = "inference:sell" in wanted
            provider_id = _provider(client, keys[owner]) if sells else ""
            members[owner] = Member(owner, keys[owner], provider_id)
    return Board(servers, keys["operator"], members)


# -- requests and what they answered ----------------------------------------------------------


def _answer(response: httpx.Response) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response.text, parse_float=Decimal)
    return parsed


def _post_job(client: httpx.Client, requester: Member, *, mode: str, window: int) -> str:
    body = {
        "request": {
            "model_hint": "chat",
            "prompt": "Summarise the rules of a sealed-bid auction in one sentence.",
            "max_tokens": 200,
        },
        "economics": {"max_price": float(MAX_PRICE), "payment_mode": mode},
        "bid_window_seconds": window,
        "deadline_seconds": DEADLINE_SECONDS,
    }
    answer = client.post(JOBS, json=body, headers=requester.headers)
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["job"]["job_id"]
    return job_id


@dataclass(frozen=True)
class Sent:
    """One bid or withdrawal sent, and its answer (status None: no answer came back)."""

    job_id: str
    bidder: str
    action: str  # bid | withdraw
    node: int
    price: Decimal | None
    estimated_time_s: int | None
    status: int | None
    code: str | None
    bid_id: str | None

    @property
    def taken(self) -> bool:
        return self.status in TAKEN


@dataclass
class Sends:
    """Every bid request of a test, in the order each bidder sent its own."""

    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bid(
        self,
        client: httpx.Client,
        node: int,
        bidder: Member,
        job_id: str,
        price: Decimal,
        estimated_time_s: int = 5,
    ) -> Sent:
        body = {
            "provider_id": bidder.provider_id,
            "model": MODEL,
            "price": float(price),
            "estimated_time_s": estimated_time_s,
        }
        path = f"{JOBS}/{job_id}/bids"
        return self._send(client, node, bidder, job_id, "bid", path, body, price, estimated_time_s)

    def withdraw(
        self, client: httpx.Client, node: int, bidder: Member, job_id: str, bid_id: str
    ) -> Sent:
        path = f"{JOBS}/{job_id}/bids/{bid_id}/withdraw"
        return self._send(client, node, bidder, job_id, "withdraw", path, None, None, None)

    def _send(
        self,
        client: httpx.Client,
        node: int,
        bidder: Member,
        job_id: str,
        action: str,
        path: str,
        body: dict[str, Any] | None,
        price: Decimal | None,
        estimated_time_s: int | None,
    ) -> Sent:
        try:
            response = client.post(path, json=body, headers=bidder.headers)
        except httpx.TransportError:
            status = code = bid_id = None
        else:
            status, answer = response.status_code, _answer(response)
            assert status in (*TAKEN, 409), response.text  # taken, or refused as too late
            code = answer["error"]["code"] if status == 409 else None
            bid_id = answer["bid"]["bid_id"] if status in TAKEN else None
        sent = Sent(
            job_id, bidder.owner, action, node, price, estimated_time_s, status, code, bid_id
        )
        with self.lock:
            self.sent.append(sent)
        return sent

    def of_job(self, job_id: str) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if s.job_id == job_id]


def _job(client: httpx.Client, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    answer = client.get(f"{JOBS}/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = _answer(answer)["job"]
    return job


def _job_ids(client: httpx.Client, headers: dict[str, str], status: str) -> set[str]:
    answer = client.get(JOBS, params={"status": status, "limit": 200}, headers=headers)
    assert answer.status_code == 200, answer.text
    return {job["job_id"] for job in answer.json()["jobs"]}


def _wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _result_body(job_id: str) -> dict[str, Any]:
    """The winner's result: the same content whenever it is sent again."""
    return {
        "output": f"A sealed-bid auction: one secret bid each, best bid wins ({job_id}).",
        "model": MODEL,
        "usage": {"prompt_tokens": 14, "completion_tokens": 17},
    }


def _upload(client: httpx.Client, winner: Member, job_id: str) -> httpx.Response:
    """The winner reads its assignment and uploads its result."""
    assignment = client.get(f"{JOBS}/{job_id}/assignment", headers=winner.headers)
    assert assignment.status_code == 200, assignment.text
    assert assignment.json()["assignment"]["request"]["prompt"]  # the sealed prompt, in full
    return client.post(f"{JOBS}/{job_id}/result", json=_result_body(job_id), headers=winner.headers)


# -- what must hold ---------------------------------------------------------------------------


def _assert_awarded_once(job: dict[str, Any], sent: Sequence[Sent]) -> dict[str, Any]:
    """One award, to a price its winner sent; every bid as its bidder last sent it, every
    losing bid with its reason. The winning bid."""
    (awarded,) = [event for event in job["events"] if event["kind"] == "job.awarded"]
    assert job["award"] is not None and job["award"]["award_count"] == 1
    (won,) = [bid for bid in job["bids"] if bid["status"] == "won"]
    assert won["bid_id"] == job["award"]["bid_id"] == awarded["payload"]["bid_id"]
    assert won["price"] == job["award"]["price"] == awarded["payload"]["price"]
    taken: dict[str, list[Sent]] = defaultdict(list)
    for one in sent:
        if one.taken:
            taken[one.bidder].append(one)
    assert {bid["bidder_id"] for bid in job["bids"]} == set(taken)
    for bid in job["bids"]:
        placed = [s for s in taken[bid["bidder_id"]] if s.action == "bid"]
        # The bid stands as the bidder's last acknowledged revision: none was lost, none was
        # applied after the award (it would have made the bid live again).
        assert (bid["price"], bid["estimated_time_s"]) == (
            placed[-1].price,
            placed[-1].estimated_time_s,
        ), bid
        assert bid["revision"] == len(placed), bid
        if bid is won:
            assert taken[bid["bidder_id"]][-1].action == "bid"
            assert bid["price"] <= MAX_PRICE and bid["estimated_time_s"] <= DEADLINE_SECONDS
            continue
        assert bid["reason"] in LOSS_REASONS, bid
        withdrawn = taken[bid["bidder_id"]][-1].action == "withdraw"
        assert (bid["status"], bid["reason"] == "withdrawn") == (
            ("withdrawn", True) if withdrawn else ("lost", False)
        ), bid
        if bid["reason"] == "over_max_price":
            assert bid["price"] > MAX_PRICE
        elif bid["reason"] == "deadline_infeasible":
            assert bid["price"] <= MAX_PRICE and bid["estimated_time_s"] > DEADLINE_SECONDS
        elif bid["reason"] == "outbid":
            # Neutral standings: the score is the price, so no outbid bid asked less.
            assert job["economics"]["payment_mode"] == "auction", bid
            assert bid["estimated_time_s"] <= DEADLINE_SECONDS
            assert won["price"] <= bid["price"] <= MAX_PRICE, (won, bid)
        else:
            assert bid["reason"] == "withdrawn", bid
    return dict(won)


def _entries(client: httpx.Client, admin: IssuedKey, account_id: str) -> list[dict[str, Any]]:
    """Every entry of a main account and its hold account."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get(
            f"{LEDGER}/accounts/{account_id}/entries", params=params, headers=admin.headers
        )
        assert page.status_code == 200, page.text
        answer = _answer(page)
        entries += answer["entries"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return entries


def _account(client: httpx.Client, admin: IssuedKey, owner: str) -> dict[str, Any] | None:
    """The owner's account (None: it has none, as it never paid nor earned)."""
    answer = client.get(f"{LEDGER}/accounts", params={"holder_id": owner}, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    accounts = _answer(answer)["accounts"]
    assert len(accounts) <= 1, accounts
    return dict(accounts[0]) if accounts else None


def _held(client: httpx.Client, admin: IssuedKey, owner: str) -> Decimal:
    account = _account(client, admin, owner)
    return Decimal(0) if account is None else Decimal(account["held"])


def _assert_paid_once(
    client: httpx.Client,
    admin: IssuedKey,
    owners: Iterable[str],
    requested: dict[str, str],
    paid: dict[str, tuple[str, Decimal]],
) -> None:
    """``paid``: job -> (winner, price) for every completed job; ``requested``: job ->
    requester. Each owner's account holds exactly one payment of the price for each job it
    won and no other, and its balance is what it earned less what it paid (nobody was granted
    anything)."""
    for owner in owners:
        won = {job_id: price for job_id, (winner, price) in paid.items() if winner == owner}
        account = _account(client, admin, owner)
        if account is None:
            assert not won and owner not in requested.values(), owner
            continue
        payments = [
            entry
            for entry in _entries(client, admin, account["account_id"])
            # A requester's own side of a settlement (the rest given back) has the same cause.
            if entry["cause"]["kind"] == "job_payment" and requested[entry["cause"]["id"]] != owner
        ]
        assert Counter(e["cause"]["id"] for e in payments) == Counter(list(won)), owner
        for entry in payments:
            assert (entry["account_role"], entry["amount"]) == ("main", won[entry["cause"]["id"]])
        spent = sum(
            (price for job_id, (_, price) in paid.items() if requested[job_id] == owner),
            Decimal(0),
        )
        assert account["balance"] == sum(won.values(), Decimal(0)) - spent, (owner, account)


def _holds(database_url: str) -> dict[str, LedgerHold]:
    """Every job's escrow hold by job id, after check_ledger found the ledger sound."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            check = check_ledger(session)
            assert check.ok, check.report()
            found = session.scalars(select(LedgerHold).where(LedgerHold.cause_kind == "job_escrow"))
            holds = {hold.cause_id: hold for hold in found}
            session.expunge_all()
    finally:
        engine.dispose()
    return holds


def _assert_settled(hold: LedgerHold, price: Decimal) -> None:
    assert (hold.status, hold.amount, hold.settled, hold.released) == (
        "settled",
        MAX_PRICE,
        price,
        MAX_PRICE - price,
    )


# -- many bidders, three servers ------------------------------------------------------------

REQUESTERS = ("requester-north", "requester-south", "requester-east")
BIDDERS = tuple(f"bidder-{n:02d}" for n in range(12))
RACERS = ("racer-fast", "racer-faster")
ANCHOR = "bidder-anchor"  # bids once on each auction job as it is posted
AUCTIONS_EACH = 4
FIXED_EACH = 2
AUCTION_WINDOW_SECONDS = 8
FIXED_WINDOW_SECONDS = 60  # the first eligible bid ends it long before
RACE_WINDOW_SECONDS = 5
CROSSED_PRICE = Decimal("0.3")  # under the maximum: each settlement gives the rest back too
RACE_JOBS = 2
RACE_START = Decimal("0.45")
RACE_STEP = Decimal("0.001")  # each revision asks a price no revision asked before


def _bidder(board: Board, sends: Sends, owner: str, jobs: Sequence[str], seed: int) -> None:
    """Bids on every job (not its own) through a server picked at random, at a price drawn
    around the maximum; revises some bids and withdraws some, each through another server."""
    rng = random.Random(seed)
    me = board.members[owner]
    clients = board.clients()
    try:
        for job_id in rng.sample(list(jobs), len(jobs)):
            node = rng.randrange(3)
            price = Decimal(rng.randint(5, 65)) / 100  # about one in five over the maximum
            late = rng.random() < 0.1  # cannot meet the deadline
            first = sends.bid(clients[node], node, me, job_id, price, 400 if late else 5)
            if not first.taken:
                continue  # its own job, or the window had closed
            if rng.random() < 0.3:
                node = (node + rng.randint(1, 2)) % 3
                again = Decimal(rng.randint(5, 65)) / 100
                sends.bid(clients[node], node, me, job_id, again, 400 if late else 5)
            if rng.random() < 0.1:
                node = (node + rng.randint(1, 2)) % 3
                assert first.bid_id is not None
                sends.withdraw(clients[node], node, me, job_id, first.bid_id)
    finally:
        for client in clients:
            client.close()


def _racer(board: Board, sends: Sends, owner: str, job_id: str, offset: int) -> None:
    """Revises its bid as fast as answers come, through the servers in turn, until refused."""
    me = board.members[owner]
    clients = board.clients()
    try:
        price = RACE_START
        for revision in range(400):
            node = (revision + offset) % 3
            if not sends.bid(clients[node], node, me, job_id, price).taken:
                return
            price -= RACE_STEP
    finally:
        for client in clients:
            client.close()


def test_many_bidders_through_three_servers_award_and_pay_each_job_once(
    deployment: Deployment,
) -> None:
    scopes = {
        # Requesters bid on each other's jobs too: settlements whose payers and payees cross.
        **dict.fromkeys(REQUESTERS, "inference:buy,inference:sell,inference:read"),
        **dict.fromkeys((*BIDDERS, *RACERS, ANCHOR), SELLER_SCOPES),
    }
    board = _board(deployment, scopes)
    members = board.members
    clients = board.clients()
    sends = Sends()
    requested: dict[str, str] = {}
    auctions: list[str] = []
    fixed: list[str] = []
    races: list[str] = []
    crossed: list[str] = []
    try:
        for n, owner in enumerate(REQUESTERS):
            node = n % 3
            for _ in range(AUCTIONS_EACH):
                job_id = _post_job(
                    clients[node], members[owner], mode="auction", window=AUCTION_WINDOW_SECONDS
                )
                # One eligible bid as soon as the job is posted, whatever the machine's pace.
                anchor = sends.bid(clients[node], node, members[ANCHOR], job_id, MAX_PRICE)
                assert anchor.taken, anchor
                requested[job_id] = owner
                auctions.append(job_id)
            for _ in range(FIXED_EACH):
                job_id = _post_job(
                    clients[node], members[owner], mode="fixed", window=FIXED_WINDOW_SECONDS
                )
                requested[job_id] = owner
                fixed.append(job_id)
        for n, owner in enumerate(REQUESTERS):
            job_id = _post_job(
                clients[n], members[owner], mode="fixed", window=FIXED_WINDOW_SECONDS
            )
            requested[job_id] = owner
            crossed.append(job_id)
        # Each requester wins the next one's crossed job at once: payers and payees in a ring.
        for n, job_id in enumerate(crossed):
            winner = members[REQUESTERS[n - 1]]
            assert sends.bid(clients[n], n, winner, job_id, CROSSED_PRICE).taken
        for n in range(RACE_JOBS):
            owner = REQUESTERS[n % len(REQUESTERS)]
            job_id = _post_job(
                clients[n], members[owner], mode="auction", window=RACE_WINDOW_SECONDS
            )
            requested[job_id] = owner
            races.append(job_id)

        workers = [
            threading.Thread(target=_racer, args=(board, sends, racer, job_id, offset))
            for job_id in races
            for offset, racer in enumerate(RACERS)
        ]
        workers += [
            threading.Thread(target=_bidder, args=(board, sends, owner, [*auctions, *fixed], seed))
            for seed, owner in enumerate((*BIDDERS, *REQUESTERS))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=GUARD_SECONDS)
        assert not any(worker.is_alive() for worker in workers)
        # Every bid got an answer: taken, or refused as too late or on the bidder's own job.
        for one in sends.sent:
            own = requested[one.job_id] == one.bidder
            assert one.code in ((*NOT_OPEN, "own_job") if own else (None, *NOT_OPEN)), one
        assert {one.node for one in sends.sent if one.taken} == {0, 1, 2}

        admin = board.admin.headers
        _wait_for("every bid window to close", lambda: not _job_ids(clients[1], admin, "open"))
        winners: dict[str, dict[str, Any]] = {}
        for n, job_id in enumerate(requested):
            job = _job(clients[n % 3], admin, job_id)
            assert job["status"] == "awarded", (job_id, job["status"])
            winners[job_id] = _assert_awarded_once(job, sends.of_job(job_id))
            if job_id in fixed:  # the first eligible bid won at once: no bid was outbid
                assert "outbid" not in {bid["reason"] for bid in job["bids"]}, job["bids"]
        for job_id in races:
            # Each racer's every revision until refused was taken: the winner is the one whose
            # last acknowledged price was lower, and its first refusal says the window closed.
            refused = [s for s in sends.of_job(job_id) if not s.taken]
            assert sorted(s.bidder for s in refused) == sorted(RACERS)
            assert {s.code for s in refused} <= set(NOT_OPEN)
            assert winners[job_id]["bidder_id"] in RACERS

        def complete(job_id: str) -> dict[str, Any]:
            winner = members[winners[job_id]["bidder_id"]]
            with board.servers[random.randrange(3)].client() as client:
                uploaded = _upload(client, winner, job_id)
            assert uploaded.status_code == 201, uploaded.text
            return dict(_answer(uploaded)["job"])

        # Every winner uploads at once, the ring first: many settlements together, some whose
        # payers and payees cross.
        with ThreadPoolExecutor(max_workers=8) as pool:
            completed = list(
                pool.map(complete, [*crossed, *(j for j in requested if j not in crossed)])
            )
        assert {job["status"] for job in completed} == {"completed"}
    finally:
        for client in clients:
            client.close()

    paid = {job_id: (bid["bidder_id"], bid["price"]) for job_id, bid in winners.items()}
    with board.servers[2].client() as client:
        for job_id, (_, price) in paid.items():
            job = _job(client, board.admin.headers, job_id)
            kinds = Counter(event["kind"] for event in job["events"])
            once = (kinds["job.awarded"], kinds["job.submitted"], kinds["job.completed"])
            assert once == (1, 1, 1), kinds
            assert (job["status"], job["economics"]["paid"]) == ("completed", price)
        _assert_paid_once(client, board.admin, scopes, requested, paid)
        for owner in scopes:
            assert _held(client, board.admin, owner) == 0
    holds = _holds(deployment.database_url)
    assert set(holds) == set(requested)
    for job_id, (_, price) in paid.items():
        _assert_settled(holds[job_id], price)


# -- kill -9 between award and payment --------------------------------------------------------

KILL_REQUESTERS = ("requester-west", "requester-up")
KILL_BIDDERS = tuple(f"seller-{n}" for n in range(6))
KILL_JOBS = 12
KILL_WINDOW_SECONDS = 6
BIDS_EACH = 3
ACKNOWLEDGED_BEFORE_KILL = 4


def _kill(server: Server) -> None:
    server.process.send_signal(signal.SIGKILL)
    assert server.process.wait(timeout=30) == -signal.SIGKILL


def test_kill_9_between_award_and_payment_leaves_every_job_paid_once_or_still_held(
    deployment: Deployment,
) -> None:
    scopes = {
        **dict.fromkeys(KILL_REQUESTERS, BUYER_SCOPES),
        **dict.fromkeys(KILL_BIDDERS, SELLER_SCOPES),
    }
    board = _board(deployment, scopes)
    members = board.members
    admin_key = board.admin
    admin = admin_key.headers
    rng = random.Random(9)
    sends = Sends()
    requested: dict[str, str] = {}
    clients = board.clients()
    try:
        # Jobs posted and bid on through every server; no request is under way once this ends.
        for n in range(KILL_JOBS):
            owner = KILL_REQUESTERS[n % len(KILL_REQUESTERS)]
            job_id = _post_job(
                clients[n % 3], members[owner], mode="auction", window=KILL_WINDOW_SECONDS
            )
            requested[job_id] = owner
            for node, bidder in enumerate(rng.sample(KILL_BIDDERS, BIDS_EACH)):
                price = Decimal(rng.randint(10, 45)) / 100
                sends.bid(clients[node], node, members[bidder], job_id, price)

        # The first server dies as the windows close, its timer perhaps in the middle of an
        # award: another server's timer awards what it had claimed.
        _wait_for("a first award", lambda: bool(_job_ids(clients[1], admin, "awarded")))
        _kill(board.servers[0])
        _wait_for("every bid window to close", lambda: not _job_ids(clients[1], admin, "open"))
        winners: dict[str, dict[str, Any]] = {}
        for job_id in requested:
            job = _job(clients[1], admin, job_id)
            assert job["status"] == "awarded", (job_id, job["status"])
            winners[job_id] = _assert_awarded_once(job, sends.of_job(job_id))
        holds = _holds(deployment.database_url)
        assert {holds[j].status for j in requested} == {"open"}

        # The winners upload through the second server, which dies once a few were answered:
        # some payments committed, some rolled back with the process, some never sent.
        acknowledged: set[str] = set()
        lock = threading.Lock()
        victim = board.servers[1]

        def upload_to_victim(job_id: str) -> None:
            with victim.client() as client:
                try:
                    uploaded = _upload(client, members[winners[job_id]["bidder_id"]], job_id)
                except httpx.TransportError:
                    return  # the server is gone
            assert uploaded.status_code == 201, uploaded.text
            with lock:
                acknowledged.add(job_id)
                if len(acknowledged) == ACKNOWLEDGED_BEFORE_KILL:
                    victim.process.send_signal(signal.SIGKILL)

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(upload_to_victim, requested))
        if victim.process.poll() is None:  # every upload was answered before the kill
            victim.process.send_signal(signal.SIGKILL)
        assert victim.process.wait(timeout=30) == -signal.SIGKILL
        assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

        # Each job is completed and paid once, or still awarded with its escrow whole.
        survivor = clients[2]
        holds = _holds(deployment.database_url)
        completed: dict[str, tuple[str, Decimal]] = {}
        for job_id in requested:
            job = _job(survivor, admin, job_id)
            price = winners[job_id]["price"]
            if job["status"] == "completed":
                _assert_settled(holds[job_id], price)
                completed[job_id] = (winners[job_id]["bidder_id"], price)
            else:
                assert job_id not in acknowledged
                assert (job["status"], job["result_hash"]) == ("awarded", None)
                hold = holds[job_id]
                assert (hold.status, hold.amount, hold.settled + hold.released) == (
                    "open",
                    MAX_PRICE,
                    Decimal(0),
                )
        assert acknowledged <= set(completed)
        _assert_paid_once(survivor, board.admin, scopes, requested, completed)
        for owner in KILL_REQUESTERS:  # what is held is exactly the escrow of the unpaid jobs
            unpaid = sum(1 for j, r in requested.items() if r == owner and j not in completed)
            assert _held(survivor, admin_key, owner) == MAX_PRICE * unpaid

        # Every winner sends its result again through the survivor: what committed is a
        # replay, the rest completes now.
        for job_id in requested:
            again = survivor.post(
                f"{JOBS}/{job_id}/result",
                json=_result_body(job_id),
                headers=members[winners[job_id]["bidder_id"]].headers,
            )
            assert again.status_code == (200 if job_id in completed else 201), again.text
            assert again.json()["replayed"] is (job_id in completed)
            assert again.json()["job"]["status"] == "completed"

        paid = {job_id: (bid["bidder_id"], bid["price"]) for job_id, bid in winners.items()}
        for job_id, (_, price) in paid.items():
            job = _job(survivor, admin, job_id)
            kinds = Counter(event["kind"] for event in job["events"])
            assert (kinds["job.awarded"], kinds["job.completed"]) == (1, 1), kinds
            assert job["economics"]["paid"] == price
        _assert_paid_once(survivor, board.admin, scopes, requested, paid)
        for owner in scopes:
            assert _held(survivor, admin_key, owner) == 0
        holds = _holds(deployment.database_url)
        for job_id, (_, price) in paid.items():
            _assert_settled(holds[job_id], price)
    finally:
        for client in clients:
            client.close()
