"""The job board as ``bench_market_sim.py`` drives it: the app's own services, handed to its
job writer as the routes hand them (each command a use case in the writer's next batch), and
its timer ticked on a clock the simulation moves. ``Market`` posts a wave of jobs, has the
agents bid, lets the timer award, has the winners deliver and the judges judge until every job
of the wave has ended."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.market_agents import Agent, Population, decide_result, judge, validator_stake
from flow_memory.jobs import archive, judging, writes
from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import BidCreate, JobCreate, ResultCreate
from flow_memory.jobs.writer import JobWriter
from flow_memory.keys import service as keys
from flow_memory.kit import ids
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.deps import transaction
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.reputation import disputes, stakes, validators
from flow_memory.reputation import repository as judged
from flow_memory.reputation.schemas import VerdictCreate

MODEL = "sim-chat"
PROMPT = "Answer the question in the attachment in one sentence."
BIDS_PER_JOB = 4
BID_STAKE = Decimal(5)
VALIDATOR_FEE = Decimal("0.01")
ESTIMATED_S = 30
BID_WINDOW_S, DEADLINE_S = 60, 300
REVIEW_S, ANSWER_S, DISPUTE_S = 600, 600, 900
MODES = (("requester", 0.5), ("random_validator", 0.3), ("consensus", 0.2))


@contextmanager
def seeded_identifiers(seed: int) -> Iterator[None]:
    """Make the server's identifiers come from ``seed`` while the block runs (the validator
    draw is seeded by the job's id): reproducible runs. The simulation applies its commands one
    batch at a time, so identifiers are made in the same order on every run."""
    rng = random.Random(f"ids:{seed}")
    system = ids._Pool.refill

    def refill(pool: ids._Pool) -> None:
        pool.text = rng.randbytes(20 * 256).translate(ids._CHARACTERS).decode()
        pool.used = 0

    ids._Pool.refill = refill  # type: ignore[method-assign,assignment]
    ids._POOL.forget()
    try:
        yield
    finally:
        ids._Pool.refill = system  # type: ignore[method-assign]
        ids._POOL.forget()


@dataclass
class SimJob:
    job_id: str
    requester: Agent
    value: Decimal
    mode: str
    winner: Agent | None = None
    bad: bool | None = None  # the result's truth, once sent
    asked: set[str] = field(default_factory=set)  # draws (and the requester) already asked


@dataclass
class Tally:
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    topped_up: int = 0
    no_shows: int = 0


class Market:
    """The app, its writer and timer, the agents, and the simulation's choices (one rng)."""

    def __init__(self, app: Any, clock: FrozenClock, people: Population, rng: random.Random):
        self.app, self.clock, self.people, self.rng = app, clock, people, rng
        self.writer: JobWriter | None = app.state.job_writer
        self.timer = app.state.job_timer
        self.rules = JobRules.of(app.state.settings)
        self.tally = Tally()

    # -- commands -------------------------------------------------------------------------

    def submit(self, command: Callable[[Session], Any]) -> Future[Any]:
        """Hand ``command`` to the job writer (SQLite), or run it in a transaction of its own."""
        if self.writer is not None:
            return self.writer.submit(command)
        done: Future[Any] = Future()
        try:
            with transaction(self.app.state.session_factory) as session:
                done.set_result(command(session))
        except Exception as error:  # answered like the writer does
            done.set_exception(error)
        return done

    def settle(self, futures: list[Future[Any]]) -> list[Any]:
        """Each command's answer, or the refusal it raised (counted by code)."""
        answers = []
        for future in futures:
            error = future.exception()
            if error is None:
                answers.append(future.result())
            elif isinstance(error, FlowMemoryError):
                self.tally.errors[error.code] += 1
                answers.append(error)
            else:
                raise error
        return answers

    def read(self, query: Callable[[Session], Any]) -> Any:
        with self.app.state.read_session_factory() as session:
            return query(session)

    # -- a wave ---------------------------------------------------------------------------

    def wave(self, count: int) -> list[SimJob]:
        """Post ``count`` jobs and take each to its end; the clock then moves on a minute."""
        jobs = self.post(count)
        self.bid(jobs)
        self.award(jobs)
        self.deliver(jobs)
        self.judge(jobs)
        self.clock.advance(60)
        return jobs

    def post(self, count: int) -> list[SimJob]:
        now = self.clock.now()
        jobs, futures = [], []
        # Each job of the wave closes its window, and falls due, a second after the one before:
        # the timer takes due jobs in that order, so awards (and the jobs a bidder's capacity
        # lets it win) are the same on every run and database.
        for index in range(count):
            requester = self.rng.choice(self.people.requesters)
            value = Decimal(self.rng.randint(20, 100)) / 100
            mode = self.rng.choices([m for m, _ in MODES], [w for _, w in MODES])[0]
            validation: dict[str, Any] = {"mode": mode}
            if mode != "requester":
                validation["validators"] = 1 if mode == "random_validator" else 3
                validation["validator_fee"] = str(VALIDATOR_FEE)
            body = JobCreate.model_validate(
                {
                    "request": {"model_hint": MODEL, "prompt": PROMPT, "max_tokens": 200},
                    "economics": {"max_price": str(value), "payment_mode": "auction"},
                    "bid_window_seconds": BID_WINDOW_S + index,
                    "deadline_seconds": DEADLINE_S + index,
                    "validation": validation,
                }
            )
            futures.append(self.submit(writes.post_job(requester.principal, body, now, self.rules)))
            jobs.append(SimJob("", requester, value, mode))
        for job, answer in zip(jobs, self.settle(futures), strict=True):
            job.job_id = answer[1]["job"]["job_id"]
        return jobs

    def bid(self, jobs: list[SimJob]) -> None:
        now = self.clock.now()
        placed: list[tuple[Agent, Future[Any]]] = []
        for job in jobs:
            for agent in self.rng.sample(self.people.bidders, BIDS_PER_JOB):
                share = Decimal(f"{agent.price_share(self.rng):.4f}")
                price = (job.value * share).quantize(Decimal("0.0001"))
                body = BidCreate(
                    provider_id=agent.provider_id,
                    model=MODEL,
                    price=price,
                    estimated_time_s=ESTIMATED_S,
                )
                command = writes.place_bid(agent.principal, job.job_id, body, now, self.rules)
                placed.append((agent, self.submit(command)))
        for (agent, _), answer in zip(placed, self.settle([f for _, f in placed]), strict=True):
            if isinstance(answer, FlowMemoryError):
                self.tally.refusals[answer.code] += 1
                if answer.code == "stake_required":
                    self.top_up(agent)

    def top_up(self, agent: Agent) -> None:
        """A bidder whose stake was slashed away stakes again (what it costs is counted)."""

        def command(session: Session) -> None:
            stakes.place_stake(
                session,
                principal=agent.principal,
                identity_id=None,
                amount=BID_STAKE,
                purpose=stakes.BID,
                now=self.clock.now(),
            )

        self.settle([self.submit(command)])
        self.tally.topped_up += 1

    def award(self, jobs: list[SimJob]) -> None:
        self.clock.advance(BID_WINDOW_S + len(jobs))
        self.timer.tick()
        by_name = {a.name: a for a in self.people.bidders}

        def winners(session: Session) -> dict[str, str]:
            rows = session.execute(
                select(Job.job_id, JobBid.bidder_id)
                .join(JobBid, JobBid.bid_id == Job.winning_bid_id)
                .where(Job.job_id.in_([j.job_id for j in jobs]))
            )
            return {job_id: bidder for job_id, bidder in rows}

        found = self.read(winners)
        for job in jobs:
            if job.job_id in found:
                job.winner = by_name[found[job.job_id]]
                job.winner.won += 1

    def deliver(self, jobs: list[SimJob]) -> None:
        """On-time winners send their results 10 s after the award, late ones 90 s after
        (the bid promised 30); some late ones send nothing (the timer ends them no-shows)."""
        for late in (False, True):
            self.clock.advance(10 if not late else 80)
            now = self.clock.now()
            sent = []
            for job in jobs:
                winner = job.winner
                if winner is None or winner.is_late != late:
                    continue
                if late and self.rng.random() < winner.no_show_rate:
                    self.tally.no_shows += 1
                    continue
                job.bad = decide_result(winner, self.rng)
                body = ResultCreate.model_validate(
                    {
                        "output": "A wrong answer." if job.bad else "The right answer.",
                        "model": MODEL,
                        "usage": {"prompt_tokens": 12, "completion_tokens": 4},
                    }
                )
                sent.append(self.submit(self._result(winner, job.job_id, body, now)))
            self.settle(sent)

    def _result(
        self, winner: Agent, job_id: str, body: ResultCreate, now: datetime
    ) -> Callable[[Session], Any]:
        def command(session: Session) -> Any:
            return archive.submit_result(
                session,
                principal=winner.principal,
                job_id=job_id,
                body=body,
                now=now,
                rules=self.rules,
            )

        return command

    def judge(self, jobs: list[SimJob]) -> None:
        """Until every job of the wave has ended: judges answer what is asked of them, winners
        dispute, and when nobody has anything to do the clock moves to the next due time and
        the timer acts."""
        live = [j for j in jobs if j.winner is not None]
        for _ in range(60):
            states = self.read(partial(_states, [j.job_id for j in live]))
            live = [j for j in live if not states[j.job_id]["ended"]]
            if not live:
                return
            commands = []
            for job in live:
                commands.extend(self._acts(job, states[job.job_id]))
            if commands:
                self.settle([self.submit(c) for c in commands])
                continue
            due = [s["due_at"] for s in states.values() if s["due_at"] is not None]
            self.clock.advance(
                max(1.0, (min(due) - self.clock.now()).total_seconds() + 1) if due else 300
            )
            self.timer.tick()
        raise RuntimeError(f"{len(live)} jobs still judged after 60 rounds")

    def _acts(self, job: SimJob, state: dict[str, Any]) -> list[Callable[[Session], Any]]:
        acts = []
        now = self.clock.now()
        if state["status"] in ("open", "disputed"):
            if state["mode"] == "requester" and state["round"] == 0:
                asked = [("requester", job.requester)]
            else:
                asked = [(d, self.people.by_name[d]) for d in state["pending"]]
            for draw_key, agent in asked:
                if draw_key in job.asked:
                    continue
                job.asked.add(draw_key)
                said = judge(agent, job.winner, bool(job.bad), state["round"], self.rng)
                if said is not None:
                    acts.append(self._verdict(agent, job.job_id, *said, now=now))
        if state["status"] == "rejected" and not state["disputed"] and "dispute" not in job.asked:
            job.asked.add("dispute")
            assert job.winner is not None
            if job.winner.disputes(bool(job.bad), self.rng):
                acts.append(self._dispute(job.winner, job.job_id, now=now))
        return acts

    def _verdict(
        self, agent: Agent, job_id: str, accept: bool, score: str, *, now: datetime
    ) -> Callable[[Session], Any]:
        body = VerdictCreate(
            decision="accept" if accept else "reject",
            score=Decimal(score),
            reason="checked against the request",
        )

        def command(session: Session) -> Any:
            return judging.record_verdict(
                session,
                principal=agent.principal,
                job_id=job_id,
                body=body,
                now=now,
                rules=self.rules,
            )

        return command

    def _dispute(self, winner: Agent, job_id: str, *, now: datetime) -> Callable[[Session], Any]:
        def command(session: Session) -> Any:
            _, record = disputes.open_dispute(
                session,
                principal=winner.principal,
                job_id=job_id,
                reason="the answer meets the request",
                now=now,
                review_seconds=self.rules.validator_seconds,
                exclusion_threshold=self.rules.exclusion_threshold,
            )
            judging.noted_dispute(session, record, now=now)

        return command


def _states(job_ids: list[str], session: Session) -> dict[str, dict[str, Any]]:
    return {job_id: _state(session, job_id) for job_id in job_ids}


def _state(session: Session, job_id: str) -> dict[str, Any]:
    job = session.get(Job, job_id)
    assert job is not None
    record = judged.validation(session, job_id)
    if record is None:  # awarded, no result yet: due at its deadline
        return {"ended": job.ended_at is not None, "status": None, "due_at": job.result_due_at}
    draws = judged.draws(session, job_id, record.round)
    return {
        "ended": job.ended_at is not None,
        "status": record.status,
        "mode": record.mode,
        "round": record.round,
        "due_at": record.due_at,
        "pending": [d.validator_id for d in draws if d.status == "pending"],
        "disputed": record.round > 0,
    }


# -- set-up -----------------------------------------------------------------------------------


def enroll(app: Any, client: TestClient, market: Market) -> None:
    """Keys and providers for the bidders (through the API), their bid stakes, and the
    validators opted in with theirs (through the services)."""
    now = market.clock.now()
    for agent in market.people.bidders:
        with app.state.session_factory.begin() as session:
            secret = keys.create_key(
                session,
                owner_id=agent.name,
                scopes=["inference:sell", "inference:read"],
                label="market simulation",
                now=now,
            ).secret
        headers = {"authorization": f"Bearer {secret}"}
        ref = client.post(
            "/inference/credential-refs",
            json={"credential_ref": "secret://inference/sim", "display_name": agent.name},
            headers=headers,
        )
        ref.raise_for_status()
        enrolled = client.post(
            "/inference/providers/enroll",
            json={
                "provider_name": f"{agent.name} runtime",
                "base_url": "https://market-sim.example.net",
                "credential_ref_id": ref.json()["credential_ref"]["credential_ref_id"],
                "supported_units": ["token"],
            },
            headers=headers,
        )
        enrolled.raise_for_status()
        agent.provider_id = str(enrolled.json()["provider"]["provider_id"])
    futures = []
    for agent in market.people.bidders:

        def stake(session: Session, agent: Agent = agent) -> None:
            stakes.place_stake(
                session,
                principal=agent.principal,
                identity_id=None,
                amount=BID_STAKE,
                purpose=stakes.BID,
                now=now,
            )

        futures.append(market.submit(stake))
    for agent in market.people.validators:

        def join(session: Session, agent: Agent = agent) -> None:
            validators.join(
                session,
                principal=agent.principal,
                identity_id=None,
                stake=Decimal(validator_stake(agent)),
                exclusion_threshold=market.rules.exclusion_threshold,
                now=now,
            )

        futures.append(market.submit(join))
    for answer in market.settle(futures):
        if isinstance(answer, Exception):
            raise answer
