"""The job writer (SQLite): commands applied together in one transaction, each in a savepoint;
one that refuses leaves nothing and is answered with its refusal, the others commit and are
answered after the commit; a batch that fails beyond one command is applied command by command.
The batches are handed to the writer directly, so which commands share one is fixed."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.jobs import service
from flow_memory.jobs.models import Job
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import JobCreate
from flow_memory.jobs.writer import JobWriter
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict
from flow_memory.settings import Settings
from tests.api.jobs_helpers import assert_ledger_sound, job_body, quiet_settings
from tests.factories import BUYER

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
