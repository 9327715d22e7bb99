"""The job writer (SQLite): commands applied together in one transaction, each in a savepoint;
one that refuses leaves nothing and is answered with its refusal, the others commit and are
answered after the commit; a batch that fails beyond one command is applied command by command.
The batches are handed to the writer directly, so which commands share one is fixed."""

from __future__ import annotations

from concurrent.futures import Future
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from flow_memory.jobs import service, writes
from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import BidCreate, JobCreate
from flow_memory.jobs.writer import JobWriter
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    MODEL,
    SELLER_B,
    Bidder,
    assert_ledger_sound,
    bid,
    bidder,
    job_body,
    placed,
    post_job,
    quiet_settings,
)
from tests.factories import BUYER, key_headers

REQUESTER = Principal(
    key_id="key_writer_test_double",
    owner_id=BUYER,
    scopes=frozenset({"inference:buy", "inference:read"}),
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture
def writer(app: FastAPI, client: TestClient) -> JobWriter:
    found: JobWriter | None = app.state.job_writer
    if found is None:
        pytest.skip("the job writer batches SQLite's writes only")
    return found


def posting(
    app: FastAPI, memo: str, *, then_refuse: bool = False, principal: Principal = REQUESTER
) -> Any:
    """A command posting a job (its prompt ``memo``) for ``principal``, then refusing if
    asked."""
    request = {**job_body()["request"], "prompt": memo}

    def command(session: Session) -> str:
        body = JobCreate.model_validate(job_body(request=request))
        posted = service.post_job(
            session,
            principal=principal,
            body=body,
            now=app.state.clock.now(),
            rules=JobRules.of(app.state.settings),
        )
        if then_refuse:
            raise Conflict("refused after writing", code="test_refusal")
        return posted.job.job_id

    return command


def jobs_with_prompt(app: FastAPI, memo: str) -> list[str]:
    with app.state.session_factory() as session:
        rows = session.scalars(select(Job)).all()
        return [j.job_id for j in rows if j.request.get("prompt") == memo]


class TestBatches:
    def test_a_refusal_leaves_nothing_and_the_others_commit(
        self, app: FastAPI, writer: JobWriter
    ) -> None:
        batch: list[tuple[Any, Future[Any]]] = [
            (posting(app, "writer first"), Future()),
            (posting(app, "writer refused", then_refuse=True), Future()),
            (posting(app, "writer third"), Future()),
        ]
        writer._apply(batch)
        first, refused, third = (future for _, future in batch)
        assert jobs_with_prompt(app, "writer first") == [first.result()]
        assert jobs_with_prompt(app, "writer third") == [third.result()]
        assert isinstance(refused.exception(), Conflict)
        assert jobs_with_prompt(app, "writer refused") == []
        assert_ledger_sound(app)

    def test_a_batch_that_fails_beyond_one_command_is_applied_command_by_command(
        self, app: FastAPI, writer: JobWriter, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(batch: Any) -> Any:
            raise RuntimeError("a batch failing as a whole (test double)")

        monkeypatch.setattr(writer, "_together", broken)
        batch: list[tuple[Any, Future[Any]]] = [
            (posting(app, "writer alone one"), Future()),
            (posting(app, "writer alone refused", then_refuse=True), Future()),
        ]
        writer._apply(batch)
        one, refused = (future for _, future in batch)
        assert jobs_with_prompt(app, "writer alone one") == [one.result()]
        assert isinstance(refused.exception(), Conflict)
        assert jobs_with_prompt(app, "writer alone refused") == []

    def test_run_answers_once_its_batch_committed(self, app: FastAPI, writer: JobWriter) -> None:
        job_id = writer.run(posting(app, "writer run"))
        assert jobs_with_prompt(app, "writer run") == [job_id]
        with pytest.raises(Conflict):
            writer.run(posting(app, "writer run refused", then_refuse=True))
        assert jobs_with_prompt(app, "writer run refused") == []

    def test_a_command_whose_caller_withdrew_it_is_not_applied(
        self, app: FastAPI, writer: JobWriter
    ) -> None:
        withdrawn: Future[Any] = Future()
        withdrawn.cancel()  # its caller went away before the writer took it
        writer._queue.put((posting(app, "writer withdrawn"), withdrawn))
        job_id = writer.run(posting(app, "writer after the withdrawn"))  # queued behind it
        assert jobs_with_prompt(app, "writer after the withdrawn") == [job_id]
        assert jobs_with_prompt(app, "writer withdrawn") == []

    def test_what_a_refused_command_read_is_not_trusted_by_the_next(
        self, app: FastAPI, writer: JobWriter
    ) -> None:
        # The first command opens a new requester's ledger accounts, then refuses: its
        # accounts are rolled back, and the second must not use what the first remembered.
        newcomer = Principal(
            key_id="key_writer_newcomer_double",
            owner_id="writer-newcomer",
            scopes=frozenset({"inference:buy"}),
        )

        batch: list[tuple[Any, Future[Any]]] = [
            (posting(app, "newcomer refused", then_refuse=True, principal=newcomer), Future()),
            (posting(app, "newcomer kept", principal=newcomer), Future()),
        ]
        writer._apply(batch)
        refused, kept = (future for _, future in batch)
        assert isinstance(refused.exception(), Conflict)
        assert jobs_with_prompt(app, "newcomer kept") == [kept.result()]
        assert_ledger_sound(app)


def job_reads(app: FastAPI) -> list[str]:
    """Every statement SQLAlchemy runs that reads a job's row, from now on."""
    seen: list[str] = []

    @event.listens_for(app.state.engine, "before_cursor_execute")
    def noted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM jobs" in statement:
            seen.append(statement)

    return seen


class TestJobsJustPosted:
    """The writer hands a job it has just posted to the next batch that bids on it, without
    reading it again, and only when its row is unchanged since."""

    @pytest.fixture
    def seller(self, app: FastAPI, client: TestClient, writer: JobWriter) -> Bidder:
        return bidder(client, app, SELLER_B)

    @pytest.fixture
    def buyer(self, app: FastAPI) -> dict[str, str]:
        return key_headers(app, BUYER, "inference:buy", "inference:read")

    def test_a_bid_on_a_job_just_posted_does_not_read_it_again(
        self, app: FastAPI, client: TestClient, seller: Bidder, buyer: dict[str, str]
    ) -> None:
        job = post_job(client, buyer)
        reads = job_reads(app)
        taken = placed(client, seller.headers, job["job_id"], seller.provider_id)
        assert reads == []
        # The bid is the job's one bid, as the database has it.
        with app.state.session_factory() as session:
            bids = session.scalars(select(JobBid).where(JobBid.job_id == job["job_id"])).all()
        assert [(b.bid_id, b.status) for b in bids] == [(taken["bid_id"], "live")]

    def test_a_job_changed_behind_the_writer_is_read_again(
        self, app: FastAPI, client: TestClient, seller: Bidder, buyer: dict[str, str]
    ) -> None:
        # Another process on the same database file cancels the job: the object the writer
        # kept says open, the row says cancelled, and the row wins.
        job = post_job(client, buyer)
        with app.state.session_factory.begin() as session:
            session.execute(
                update(Job)
                .where(Job.job_id == job["job_id"])
                .values(status="cancelled", updated_at=app.state.clock.now())
            )
        refused = bid(client, seller.headers, job["job_id"], seller.provider_id)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "job_not_open"

    def test_a_job_taken_once_is_read_as_any_other_after(
        self, app: FastAPI, client: TestClient, seller: Bidder, buyer: dict[str, str]
    ) -> None:
        job = post_job(client, buyer)
        first = placed(client, seller.headers, job["job_id"], seller.provider_id, price=0.4)
        again = placed(client, seller.headers, job["job_id"], seller.provider_id, price=0.3)
        assert again["bid_id"] == first["bid_id"]
        assert again["revision"] == 2

    def test_a_job_bid_on_in_the_batch_that_posted_it_is_not_kept(
        self, app: FastAPI, writer: JobWriter, seller: Bidder
    ) -> None:
        # Posted and bid on in one batch, then bid on again by the same bidder: a revision of
        # the bid the batch placed, not a second bid from a job believed to have none.
        posted: list[str] = []
        post = posting(app, "writer posted and bid")
        principal = Principal("key_fresh_seller_double", SELLER_B, frozenset({"inference:sell"}))
        body = BidCreate(
            provider_id=seller.provider_id, model=MODEL, price=Decimal("0.4"), estimated_time_s=5
        )
        rules = JobRules.of(app.state.settings)

        def post_then_note(session: Session) -> str:
            job_id: str = post(session)
            posted.append(job_id)
            return job_id

        def bid_on_it(session: Session) -> Any:
            now = app.state.clock.now()
            return writes.place_bid(principal, posted[0], body, now, rules)(session)

        batch: list[tuple[Any, Future[Any]]] = [(post_then_note, Future()), (bid_on_it, Future())]
        writer._apply(batch)
        assert batch[1][1].exception() is None
        now = app.state.clock.now()
        _, answer = writer.run(writes.place_bid(principal, posted[0], body, now, rules))
        assert answer["bid"]["revision"] == 2

    def test_a_post_rolled_back_is_not_kept(self, app: FastAPI, writer: JobWriter) -> None:
        batch: list[tuple[Any, Future[Any]]] = [
            (posting(app, "writer fresh refused", then_refuse=True), Future()),
            (posting(app, "writer fresh kept"), Future()),
        ]
        before = len(writer.fresh)
        writer._apply(batch)
        assert len(writer.fresh) == before + 1
