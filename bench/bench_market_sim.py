"""A market simulation of the job board's quality control: honest, lazy, late and cheating
agents, colluding validators, over thousands of jobs, through the real services.

    python bench/bench_market_sim.py [--jobs 10000] [--seed 7] [--wave 64]
                                     [--exclusion-threshold 0.35] [--half-life-days 30]
                                     [--slash-share 0.25] [--database-url URL]

The app is built in process on a fresh SQLite file (its real database, job writer, timer and
dry-run ledger) with a frozen clock the simulation moves. Every step is a call of the services
the routes call (``jobs.writes``, ``jobs.archive``, ``jobs.judging``, ``reputation.disputes``,
``reputation.stakes``, ``reputation.validators``), handed to the job writer as the routes do;
the timer's ``tick`` closes bid windows, ends no-shows, replaces silent validators and makes
undisputed rejections final. HTTP is not involved past the set-up (keys and providers).

Jobs are posted in waves of ``--wave``. Each job is bid on by ``BIDS_PER_JOB`` bidders drawn at
random; the award is the board's own (price and standing). The simulation alone knows whether a
result is good; judges see it through their accuracy:

- honest bidders err on ``HONEST_ERROR`` of their results; lazy ones answer at random (right
  ``LAZY_RIGHT`` of the time) and bid low; late ones deliver good results after the time they
  promised, and send nothing ``LATE_NO_SHOW`` of the time; persistent cheaters are always wrong,
  bid low and dispute every rejection; colluders are cheaters whose accomplices are validators:
  a colluding validator accepts its ring's results whatever they are (and judges others honestly),
  and stakes more to be drawn more often.
- a requester (requester mode) catches a bad result ``REQUESTER_CATCH`` of the time, rejects a
  good one ``FALSE_REJECT`` of the time and stays silent (which accepts) ``REQUESTER_SILENT``;
  an honest validator catches ``VALIDATOR_CATCH`` and does not answer ``VALIDATOR_SILENT`` of
  its draws (the timer replaces it). Honest winners dispute every wrongful rejection.

Printed: the share of accepted results that were bad (and of bad results, the share accepted),
the jobs each persistent cheater won before its standing fell below the exclusion threshold,
honest bidders' mean standing once each has had 100 jobs, and validator fees (paid out of
escrows and by losers of disputes) as a share of the value of the jobs judged. The same
``--seed`` gives the same figures: agents' choices come from it, and so do the identifiers the
server makes (the validator draw is seeded by the job's id)."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.market_agents import population
from bench.market_board import (
    ANSWER_S,
    DISPUTE_S,
    REVIEW_S,
    Market,
    SimJob,
    enroll,
    seeded_identifiers,
)
from flow_memory.app import create_app
from flow_memory.jobs.models import Job, JobBid, JobEvent
from flow_memory.kit.clock import FrozenClock
from flow_memory.ledger.reconcile import check_ledger
from flow_memory.migrations import upgrade
from flow_memory.reputation import service as reputation
from flow_memory.settings import Settings

START = datetime(2026, 6, 1, tzinfo=UTC)
BIDDER_KINDS = ("honest", "lazy", "late", "cheater", "colluder")
FOLLOWED = ("cheater", "colluder", "lazy", "late")  # bidders whose exclusion is followed


@dataclass
class Watch:
    """What is read between waves: when each bidder first stood below the exclusion
    threshold (its jobs won by then), and each honest bidder's standing at its 100th job."""

    excluded_after: dict[str, int] = field(default_factory=dict)
    at_100: dict[str, Decimal] = field(default_factory=dict)

    def look(self, market: Market) -> None:
        bidders = market.people.bidders
        names = [a.name for a in bidders]
        found = market.read(lambda s: reputation.standings(s, names))
        threshold = market.rules.exclusion_threshold
        for agent in bidders:
            if agent.name not in self.excluded_after and found[agent.name] < threshold:
                self.excluded_after[agent.name] = agent.won
            if agent.kind == "honest" and agent.won >= 100 and agent.name not in self.at_100:
                self.at_100[agent.name] = found[agent.name]


@dataclass(frozen=True)
class Figures:
    """What a run came to (the same for the same seed and options)."""

    jobs: int
    unawarded: int  # no bid was eligible when the window closed (capacity, standing)
    judged: int
    accepted: int
    bad: int
    bad_accepted: int
    bad_accepted_by_mode: dict[str, int]
    bad_accepted_by_kind: dict[str, int]
    excluded_after: dict[str, list[int]]  # per kind: jobs won when each fell below the threshold
    never_excluded: dict[str, list[int]]  # per kind: jobs won by those that never did
    honest_at_100: list[Decimal]
    honest_bidders: int
    honest_excluded: int  # honest bidders that ever stood below the exclusion threshold
    fees: Decimal
    value: Decimal
    refusals: dict[str, int]
    other_refusals: dict[str, int]
    stakes_again: int
    no_shows: int
    ledger_sound: bool


def figures(market: Market, jobs: list[SimJob], watch: Watch) -> Figures:
    """The figures of a finished run, read from the board's database."""
    judged_jobs = {j.job_id: j for j in jobs if j.bad is not None}

    def query(session: Session) -> tuple[dict[str, str], dict[str, Decimal], Decimal]:
        states: dict[str, str] = {}
        prices: dict[str, Decimal] = {}
        ids_ = list(judged_jobs)
        for start in range(0, len(ids_), 500):
            rows = session.execute(
                select(Job.job_id, Job.status, JobBid.price)
                .join(JobBid, JobBid.bid_id == Job.winning_bid_id)
                .where(Job.job_id.in_(ids_[start : start + 500]))
            )
            for job_id, status, price in rows:
                states[job_id], prices[job_id] = status, price
        fees = Decimal(0)
        kinds = ("job.completed", "job.rejection_final")
        for (payload,) in session.execute(select(JobEvent.payload).where(JobEvent.kind.in_(kinds))):
            fees += Decimal(str(payload.get("fees_paid") or 0))
            fees += Decimal(str(payload.get("dispute_fees_paid") or 0))
        return states, prices, fees

    states, prices, fees = market.read(query)
    accepted = [j for j in judged_jobs.values() if states[j.job_id] == "completed"]
    bad_accepted = [j for j in accepted if j.bad]
    bidders = market.people.bidders
    with market.app.state.session_factory() as session:
        sound = check_ledger(session).ok
    tally = market.tally
    return Figures(
        jobs=len(jobs),
        unawarded=sum(1 for j in jobs if j.winner is None),
        judged=len(judged_jobs),
        accepted=len(accepted),
        bad=sum(1 for j in judged_jobs.values() if j.bad),
        bad_accepted=len(bad_accepted),
        bad_accepted_by_mode=dict(Counter(j.mode for j in bad_accepted)),
        bad_accepted_by_kind=dict(Counter(j.winner.kind for j in bad_accepted if j.winner)),
        excluded_after={
            kind: sorted(
                watch.excluded_after[a.name]
                for a in bidders
                if a.kind == kind and a.name in watch.excluded_after
            )
            for kind in FOLLOWED
        },
        never_excluded={
            kind: sorted(
                a.won for a in bidders if a.kind == kind and a.name not in watch.excluded_after
            )
            for kind in FOLLOWED
        },
        honest_at_100=sorted(watch.at_100.values()),
        honest_bidders=sum(a.kind == "honest" for a in bidders),
        honest_excluded=sum(
            1 for a in bidders if a.kind == "honest" and a.name in watch.excluded_after
        ),
        fees=fees,
        value=sum(prices.values(), Decimal(0)),
        refusals=dict(tally.refusals),
        other_refusals=dict(tally.errors - tally.refusals),
        stakes_again=tally.topped_up,
        no_shows=tally.no_shows,
        ledger_sound=sound,
    )


def report(found: Figures, market: Market, seconds: float) -> None:
    people = market.people
    print(
        f"\nmarket simulation: {found.jobs} jobs posted in {seconds:.0f} s "
        f"({found.jobs / seconds:.1f} jobs/s in process): {found.unawarded} not awarded (no "
        f"eligible bid), {found.no_shows} no-shows, {found.judged} results judged"
    )
    print(
        f"  agents: {len(people.requesters)} requesters; bidders "
        + ", ".join(f"{k} {sum(a.kind == k for a in people.bidders)}" for k in BIDDER_KINDS)
        + f"; validators honest {sum(a.kind == 'validator' for a in people.validators)}, "
        f"colluding {sum(a.kind == 'accomplice' for a in people.validators)}"
    )
    print(
        f"bad results accepted: {found.bad_accepted} of {found.accepted} accepted results "
        f"({_pct(found.bad_accepted, found.accepted)}; aim <= 1 %); of the {found.bad} bad "
        f"results sent, {_pct(found.bad_accepted, found.bad)} were accepted"
    )
    print(
        f"  bad accepted by validation mode: {found.bad_accepted_by_mode}; by winner: "
        f"{found.bad_accepted_by_kind}"
    )
    threshold = market.rules.exclusion_threshold
    for kind in FOLLOWED:
        after, left = found.excluded_after[kind], found.never_excluded[kind]
        line = f"{kind} bidders below {threshold} (excluded) after jobs won: {after}"
        if after:
            line += f" (median {statistics.median(after):g}, max {max(after)})"
        if left:
            line += f"; {len(left)} never excluded, having won {left}"
        if kind == "cheater":
            line += "  [aim <= 20]"
        print(line)
    honest = found.honest_at_100
    if honest:
        print(
            f"honest bidders' standing at their 100th job: mean {statistics.mean(honest):.4f}, "
            f"min {min(honest)} ({len(honest)} of {found.honest_bidders} reached 100 jobs; "
            "aim >= 0.9)"
        )
    else:
        print("honest bidders' standing at their 100th job: none reached 100 jobs (run longer)")
    print(f"honest bidders ever below {threshold} (excluded): {found.honest_excluded}")
    print(
        f"validation cost: {found.fees} credits of validator fees for {found.value} credits of "
        f"judged jobs' value ({_pct(found.fees, found.value)})"
    )
    print(
        f"refused bids: {found.refusals}; other refusals: {found.other_refusals}; stakes "
        f"placed again after slashes: {found.stakes_again}"
    )
    print(f"ledger: {'sound' if found.ledger_sound else 'NOT SOUND'}")


def _pct(part: float | Decimal, whole: float | Decimal) -> str:
    return "n/a" if not whole else f"{100 * float(part) / float(whole):.2f} %"


def simulate(
    *,
    jobs: int,
    seed: int,
    wave: int,
    database_url: str,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[Figures, Market, float]:
    """Run the simulation on ``database_url`` (migrated here; its job and reputation tables
    should be empty): its figures, the market, and the seconds it took."""
    rng = random.Random(seed)
    upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        job_timer_seconds=0,
        validation_review_seconds=REVIEW_S,
        validator_answer_seconds=ANSWER_S,
        dispute_window_seconds=DISPUTE_S,
    )
    settings = replace(settings, **(overrides or {}))
    clock = FrozenClock(START)
    with seeded_identifiers(seed):
        app = create_app(settings, clock=clock)
        with TestClient(app) as client:
            market = Market(app, clock, population(), rng)
            enroll(app, client, market)
            posted: list[SimJob] = []
            watch = Watch()
            started = last = time.perf_counter()
            while len(posted) < jobs:
                posted.extend(market.wave(min(wave, jobs - len(posted))))
                watch.look(market)
                if progress and (time.perf_counter() - last >= 10 or len(posted) == jobs):
                    last = time.perf_counter()
                    hours = (clock.now() - START).total_seconds() / 3600
                    print(
                        f"  {len(posted)}/{jobs} jobs, {last - started:.0f} s, simulated "
                        f"{hours:.1f} h, {len(watch.excluded_after)} bidders excluded",
                        flush=True,
                    )
            seconds = time.perf_counter() - started
            found = figures(market, posted, watch)
    app.state.read_engine.dispose()
    app.state.engine.dispose()
    return found, market, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--wave", type=int, default=64, help="jobs posted at once")
    parser.add_argument("--exclusion-threshold", type=float, default=None)
    parser.add_argument("--half-life-days", type=float, default=None)
    parser.add_argument("--slash-share", type=float, default=None)
    parser.add_argument(
        "--database-url", default=None, help="an empty database (default: a fresh SQLite file)"
    )
    args = parser.parse_args()
    overrides = {
        "reputation_exclusion_threshold": args.exclusion_threshold,
        "reputation_half_life_days": args.half_life_days,
        "stake_slash_share": args.slash_share,
    }
    with tempfile.TemporaryDirectory() as tmp:
        found, market, seconds = simulate(
            jobs=args.jobs,
            seed=args.seed,
            wave=args.wave,
            database_url=args.database_url or f"sqlite:///{Path(tmp) / 'market-sim.db'}",
            overrides={k: v for k, v in overrides.items() if v is not None},
        )
        report(found, market, seconds)


if __name__ == "__main__":
    main()
