"""The job writer alone, in process: its CPU per job (a fixed-mode post, the bid that wins it
and one bid refused after it) and the statements each command runs.

Run: python bench/bench_job_writer.py [--jobs 600] [--batch 8]

Builds the app on a fresh SQLite file (WAL, synchronous=FULL), enrolls two sellers' providers
and stakes for them through the API (each seller wins hundreds of jobs and runs none, so the cap
on jobs held at once is lifted: ``earned_capacity_enforced=False``), then hands the job writer
its commands directly (no HTTP), ``--batch`` jobs at a time: their posts in one batch, then
their bids in the next (two per job, the first wins at once, the second is refused: the job is
awarded). Prints the writer thread's CPU time per job (``time.thread_time`` around each batch)
and statements per command, after a warm-up of 100 jobs: the steady figure for the writer's
share of ``bench_jobs.py``'s throughput."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flow_memory.app import create_app
from flow_memory.jobs import writes
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import BidCreate, JobCreate
from flow_memory.jobs.work import JobWork
from flow_memory.jobs.writer import JobWriter
from flow_memory.keys import service as keys
from flow_memory.kit.deps import Principal
from flow_memory.migrations import upgrade
from flow_memory.settings import Settings

REQUESTER = Principal("bench-requester-key", "bench-requester", frozenset({"inference:buy"}))
MODEL = "bench-writer-model"
WARM_UP = 100


def _seller(app: Any, client: TestClient, owner: str) -> tuple[Principal, str]:
    with app.state.session_factory.begin() as session:
        secret = keys.create_key(
            session,
            owner_id=owner,
            scopes=["inference:sell", "inference:read"],
            label="bench",
            now=app.state.clock.now(),
        ).secret
    headers = {"authorization": f"Bearer {secret}"}
    ref = client.post(
        "/inference/credential-refs",
        json={"credential_ref": "secret://inference/bench", "display_name": owner},
        headers=headers,
    )
    enrolled = client.post(
        "/inference/providers/enroll",
        json={
            "provider_name": owner,
            "base_url": "https://bench-writer.example.net",
            "credential_ref_id": ref.json()["credential_ref"]["credential_ref_id"],
            "supported_units": ["token"],
        },
        headers=headers,
    )
    enrolled.raise_for_status()
    staked = client.post("/inference/stakes", json={"amount": "1"}, headers=headers)
    staked.raise_for_status()
    principal = Principal(f"{owner}-key", owner, frozenset({"inference:sell"}))
    return principal, str(enrolled.json()["provider"]["provider_id"])


class Meter:
    """The writer thread's CPU time and the statements it ran, by command kind."""

    def __init__(self, writer: JobWriter) -> None:
        self.cpu = 0.0
        apply = writer._apply

        def timed(batch: list[Any]) -> None:
            started = time.thread_time()
            apply(batch)
            self.cpu += time.thread_time() - started

        writer._apply = timed  # type: ignore[method-assign]


def run_jobs(app: Any, sellers: list[tuple[Principal, str]], jobs: int, batch: int) -> None:
    work = JobWork.of(app.state)
    writer = app.state.job_writer
    rules = JobRules.of(app.state.settings)
    body = JobCreate.model_validate(
        {
            "request": {"model_hint": MODEL, "prompt": "One line on auctions.", "max_tokens": 64},
            "economics": {"max_price": "0.05", "payment_mode": "fixed"},
            "bid_window_seconds": 60,
            "deadline_seconds": 300,
        }
    )
    for start in range(0, jobs, batch):
        size = min(batch, jobs - start)
        now = app.state.clock.now()
        posts = [writer.submit(writes.post_job(REQUESTER, body, now, rules)) for _ in range(size)]
        ids = [future.result()[1]["job"]["job_id"] for future in posts]
        bids = [
            writer.submit(
                writes.place_bid(
                    principal,
                    job_id,
                    BidCreate(
                        provider_id=provider_id,
                        model=MODEL,
                        price=Decimal("0.01"),
                        estimated_time_s=5,
                    ),
                    now,
                    rules,
                )
            )
            for job_id in ids
            for principal, provider_id in sellers
        ]
        won = 0
        for future in bids:
            if future.exception() is None:  # the second bid is refused: the job is awarded
                won += future.result()[1]["bid"]["status"] == "won"
        assert won == size, (won, size)
    del work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'jobs.db'}"
        upgrade(url)
        # Each seller wins hundreds of jobs and runs none: the cap on jobs held at once that an
        # identity earns by completing them is lifted (its check still runs).
        app = create_app(Settings(database_url=url, earned_capacity_enforced=False))
        with TestClient(app) as client:
            sellers = [_seller(app, client, f"bench-seller-{n}") for n in range(2)]
            writer = app.state.job_writer
            statements = [0]

            @event.listens_for(app.state.engine, "before_cursor_execute")
            def counted(*_: Any) -> None:
                statements[0] += 1

            run_jobs(app, sellers, WARM_UP, args.batch)
            meter = Meter(writer)
            statements[0] = 0
            started = time.perf_counter()
            run_jobs(app, sellers, args.jobs, args.batch)
            wall = time.perf_counter() - started
            print(
                f"job writer, {args.jobs} jobs in batches of {args.batch} (a post, a winning bid "
                f"and a refused one each): {meter.cpu / args.jobs * 1000:.2f} ms of the writer's "
                f"CPU a job, {statements[0] / args.jobs:.1f} statements a job, "
                f"{args.jobs / wall:.0f} jobs/s in process"
            )


if __name__ == "__main__":
    main()
