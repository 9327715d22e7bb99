"""Jobs the job writer has just posted, handed to its next transactions without reading them
again.

Most jobs are bid on moments after they are posted, in one of the writer's next batches: each
bid began by reading the job's row back into an object, and its (empty) list of bids, which
cost the writer more than any other step of a bid. The writer keeps the objects of the jobs it
posted (``FreshJobs``), and the first of its later transactions to ask for one takes it, after
one check that its row is still as the object says (its status and ``updated_at``, which every
change to a job moves): a job changed anywhere else since, by another process on the same
database file say, is read as before. A job is kept only when the transaction that posted it
committed and did nothing else to it, and it is taken once: from then on it is read as any other.
"""

from __future__ import annotations

from sqlalchemy import Table, bindparam, inspect, select
from sqlalchemy.orm import Session

from flow_memory.jobs.models import Job
from flow_memory.kit.db import transaction_memo
from flow_memory.kit.driver import DriverQuery

FRESH_KEY = "fresh_jobs"  # session.info: the writer's FreshJobs, in its transactions only
_POSTED = "posted_jobs"  # transaction memo: jobs posted in this transaction, by id
_CHANGED_KEY = "changed_jobs"  # session.info: jobs this transaction changed after posting
_BIDLESS_KEY = "bidless_jobs"  # session.info: taken jobs whose bids are known to be none
_STAGED_KEY = "staged_jobs"  # session.info: the jobs to keep once the transaction commits
LIMIT = 4_096  # jobs kept at most; the oldest goes first

_JOBS: Table = Job.__table__  # type: ignore[assignment]
_UNCHANGED = DriverQuery(
    select(_JOBS.c.job_id).where(
        _JOBS.c.job_id == bindparam("job_id", type_=_JOBS.c.job_id.type),
        _JOBS.c.status == bindparam("status", type_=_JOBS.c.status.type),
        _JOBS.c.updated_at == bindparam("updated_at", type_=_JOBS.c.updated_at.type),
    )
)


class FreshJobs:
    """The writer's jobs just posted, by id (used by the writer's thread alone)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._jobs: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def stage(self, session: Session) -> None:
        """At the end of the writer's transaction, before it commits: note the jobs it posted
        and left alone (its savepoints rolled back have taken theirs back)."""
        changed = session.info.get(_CHANGED_KEY, ())
        posted = transaction_memo(session, _POSTED)
        session.info[_STAGED_KEY] = [job for job_id, job in posted.items() if job_id not in changed]

    def keep(self, session: Session) -> None:
        """Once ``session``'s transaction has committed: keep the jobs it staged."""
        for job in session.info.pop(_STAGED_KEY, ()):
            self._jobs[job.job_id] = job
        while len(self._jobs) > self._limit:
            del self._jobs[next(iter(self._jobs))]

    def take(self, session: Session, job_id: str) -> Job | None:
        """The kept job, now held by ``session`` as if read, when its row is unchanged; None
        when it was not kept, the session holds the job already, or its row has changed."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return None
        key = inspect(job).key
        if key is None or session.identity_map.get(key) is not None:
            return None
        parameters = {"job_id": job_id, "status": job.status, "updated_at": job.updated_at}
        if not _UNCHANGED.rows(session.connection(), parameters):
            return None
        session.add(job)
        session.info.setdefault(_BIDLESS_KEY, set()).add(job_id)
        return job


def posted(session: Session, job: Job) -> None:
    """Note a job posted in the session's transaction (forgotten if its savepoint rolls back)."""
    transaction_memo(session, _POSTED)[job.job_id] = job


def changed(session: Session, job_id: str) -> None:
    """Note a change to a job after it was posted: a job changed by its posting transaction is
    not kept."""
    session.info.setdefault(_CHANGED_KEY, set()).add(job_id)


def has_no_bids(session: Session, job_id: str) -> bool:
    """Whether the job was taken fresh by this transaction and no bid has been read for it
    since: true once (the caller then holds the job's list of bids)."""
    bidless: set[str] | None = session.info.get(_BIDLESS_KEY)
    if bidless is None or job_id not in bidless:
        return False
    bidless.discard(job_id)
    return True


def take(session: Session, job_id: str) -> Job | None:
    """The job kept fresh by the writer whose transaction this is, if any (see ``FreshJobs``)."""
    fresh: FreshJobs | None = session.info.get(FRESH_KEY)
    return None if fresh is None else fresh.take(session, job_id)
