"""The job timer: in every server, a thread that closes bid windows (awarding by score, or
expiring the job), handles results that did not come by their deadline, and acts on results
whose judging ran out of time (``judging.expire_claimed``: a review window ended in silence, a
validator did not answer, a dispute window closed), without waiting for a request to arrive.

Each due job is claimed in a transaction of its own (``repository.claim``: a row lock taken
with ``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) that checks it is still due, so
several servers on one database never act on a job twice: the first to claim it acts, the
others find it locked or no longer due. Time is the app's clock; the thread sleeps until the
next job falls due, until a change of this server's makes a job due sooner than that, until
another server's job event is heard (PostgreSQL), or until ``job_timer_seconds`` pass. Due
validations are claimed the same way, each in a transaction of its own
(``claim_validation``). Tests call ``tick`` themselves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from flow_memory.jobs import awards, domain, events, judging, repository
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.signal import JobSignal
from flow_memory.jobs.writer import JobWriter
from flow_memory.kit.broadcast import Listener
from flow_memory.kit.clock import Clock
from flow_memory.kit.deps import on_session_end, read_session, transaction
from flow_memory.kit.errors import DatabaseUnavailable
from flow_memory.reputation import repository as validations

log = logging.getLogger("flow_memory.jobs.timer")
T = TypeVar("T")

BATCH = 200  # due jobs taken per look; a tick looks again while it finds a full batch
RETRY_SECONDS = 1.0
MIN_WAIT_SECONDS = 0.001


@dataclass
class TickReport:
    """What one tick did."""

    awarded: int = 0
    expired_unawarded: int = 0
    reawarded: int = 0
    expired_no_show: int = 0
    skipped: int = 0  # due when looked up, then claimed elsewhere or no longer due
    validations: int = 0  # validations whose time ran out, claimed and acted on
    judged: int = 0  # of them, decided (accepted, or a rejection made final)
    failed: list[str] = field(default_factory=list)

    @property
    def acted(self) -> int:
        return self.awarded + self.expired_unawarded + self.reawarded + self.expired_no_show


class JobTimer:
    """Acts on due jobs: ``tick`` once, or ``start`` the thread that ticks when they fall due."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        read_factory: sessionmaker[Session],
        clock: Clock,
        *,
        database_url: str,
        idle_seconds: float,
        rules: JobRules,
    ) -> None:
        self._factory = factory
        self._read_factory = read_factory
        self._clock = clock
        self._database_url = database_url
        self._idle_seconds = idle_seconds
        self._rules = rules
        self.signal = JobSignal()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        # On SQLite, the job writer: due jobs are then acted on in its batches.
        self.writer: JobWriter | None = None

    def start(self) -> None:
        """Hear other servers' job events (PostgreSQL) and, unless ``job_timer_seconds`` is 0,
        start the thread."""
        if make_url(self._database_url).get_backend_name() == "postgresql":
            self._listener = Listener(
                self._database_url,
                {events.JOBS_TOPIC: lambda _: self.signal.wake()},
                channel=events.JOBS_CHANNEL,
            )
            self._listener.start()
        if self._idle_seconds > 0:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="flow-memory-job-timer", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a tick under way finishes first) and the listener."""
        self._stopping.set()
        self.signal.timer.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def tick(self, now: datetime | None = None) -> TickReport:
        """Act on every job and every validation due at ``now`` (the app's clock when None)."""
        now = now or self._clock.now()
        report = TickReport()
        self._act_on_jobs(now, report)
        self._act_on_validations(now, report)
        return report

    def _act_on_jobs(self, now: datetime, report: TickReport) -> None:
        while True:
            with read_session(self._read_factory) as session:
                due = repository.due_jobs(session, now, limit=BATCH)
            acted = report.acted
            # Every due job is handed over before any answer is awaited: with the job writer
            # they are claimed and acted on in one batch (one commit).
            pending = [(job_id, self._submit(job_id, status, now)) for job_id, status in due]
            for job_id, outcome in pending:
                acted_on = self._outcome(job_id, outcome, report, "job")
                if acted_on is not None:
                    setattr(report, acted_on, getattr(report, acted_on) + 1)
            # A full batch may hide more due jobs; a batch others hold (or that fails) is left
            # to the next tick rather than read again at once.
            if len(due) < BATCH or report.acted == acted:
                return

    def _act_on_validations(self, now: datetime, report: TickReport) -> None:
        """Act on every validation whose time ran out, each claimed in a transaction of its
        own (or a savepoint of the job writer's batch): one that fails is logged and tried
        again next tick, and stops no other."""
        rules = self._rules
        while True:
            with read_session(self._read_factory) as session:
                due = validations.due_validation_ids(session, now, limit=BATCH)
            pending = []
            for job_id in due:

                def command(session: Session, job_id: str = job_id) -> str | None:
                    return judging.expire_claimed(session, job_id, now=now, rules=rules)

                pending.append((job_id, self._apply(command)))
            acted = report.validations
            for job_id, outcome in pending:
                found = self._outcome(job_id, outcome, report, "the validation of job")
                if found is not None:
                    report.validations += 1
                    report.judged += 1 if found == "decided" else 0
            if len(due) < BATCH or report.validations == acted:
                return

    def _submit(self, job_id: str, status: str, now: datetime) -> Future[str | None]:
        """Act on the job in a transaction of its own, or in the job writer's next batch."""

        def command(session: Session) -> str | None:
            return self._act(session, job_id, status, now, self._rules)

        return self._apply(command)

    def _apply(self, command: Callable[[Session], T]) -> Future[T]:
        """Run ``command`` in a transaction of its own, or in the job writer's next batch."""
        if self.writer is not None:
            return self.writer.submit(command)
        outcome: Future[T] = Future()
        try:
            with transaction(self._factory) as session:
                on_session_end(session, self._wake_if_committed)
                acted = command(session)
        except DatabaseUnavailable:
            raise  # the jobs after it would meet the outage too: the next tick tries them
        except Exception as error:
            outcome.set_exception(error)
        else:
            outcome.set_result(acted)
        return outcome

    @staticmethod
    def _act(
        session: Session, job_id: str, status: str, now: datetime, rules: JobRules
    ) -> str | None:
        """Claim the job and act on it: what became of it (a ``TickReport`` count's name), or
        None when it was claimed elsewhere or is no longer due."""
        job = repository.claim(session, job_id, status=status, now=now)
        if job is None:
            return None
        if status == domain.OPEN:
            if awards.close_window(session, job, now=now, rules=rules) == domain.AWARDED:
                return "awarded"
            return "expired_unawarded"
        if awards.no_show(session, job, now=now, rules=rules) == domain.AWARDED:
            return "reawarded"
        return "expired_no_show"

    @staticmethod
    def _outcome(
        job_id: str, outcome: Future[str | None], report: TickReport, what: str
    ) -> str | None:
        """What acting on ``job_id`` came to, or None, counted as skipped (claimed elsewhere,
        no longer due) or failed. One that cannot be acted on must not stop the others: it is
        tried again next tick, and logged each time (without its contents)."""
        try:
            acted = outcome.result()
        except DatabaseUnavailable:
            raise
        except Exception:
            log.exception("the timer could not act on %s %s", what, job_id)
            report.failed.append(job_id)
            return None
        if acted is None:
            report.skipped += 1
        return acted

    def committed(self, session: Session) -> None:
        """A transaction of job changes committed: the streams wake, and the timer if a job of
        it now falls due before the timer meant to look."""
        self.signal.wake_streams()
        due = events.due_of(session)
        if due is not None:
            self.signal.due(due)

    def _wake_if_committed(self, committed: bool) -> None:
        if committed:
            self.signal.wake_streams()  # the timer itself looks for the next due job next

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            self.signal.timer_plan = None  # while it looks, any job falling due wakes it again
            self.signal.timer.clear()
            try:
                report = self.tick()
                wait = RETRY_SECONDS if report.failed else self._until_next_due()
                if failing:
                    log.warning("the job timer runs again")
                    failing = False
            except DatabaseUnavailable:
                wait = RETRY_SECONDS  # flow_memory.kit.outage logs the outage, once
            except Exception as error:
                if not failing:
                    log.error("the job timer cannot run: %s", type(error).__name__)
                    failing = True
                wait = RETRY_SECONDS
            self.signal.timer_plan = self._clock.now() + timedelta(seconds=wait)
            self.signal.timer.wait(wait)

    def _until_next_due(self) -> float:
        with read_session(self._read_factory) as session:
            moments = [repository.next_due(session), validations.next_validation_due(session)]
        due = min((m for m in moments if m is not None), default=None)
        if due is None:
            return self._idle_seconds
        seconds = (due - self._clock.now()).total_seconds()
        return min(self._idle_seconds, max(seconds, MIN_WAIT_SECONDS))
