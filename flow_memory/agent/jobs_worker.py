"""The provider agent on the job board (``flow-memory provider-agent --jobs``): it follows the
jobs stream, bids on the jobs it can serve (``jobs_pricing`` decides), runs the jobs it wins on
its local model server and uploads their results.

The stream is followed from the last event seen: after a drop the agent reconnects with
``Last-Event-ID`` (after capped back-off with jitter), so the events it missed arrive then. On
its first connection it also reads the jobs already open. Each job it wins runs on a thread of
its own: the assignment (the full request) is read, the model server answers it, and the result
is uploaded, retried while Flow Memory is unreachable and the deadline has not passed. Logs say
what was bid, skipped and why, won, lost and answered; never a prompt or an output."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flow_memory.agent.clients import (
    FlowMemoryRefused,
    FlowMemoryUnavailable,
    ModelServerClient,
    ModelServerUnavailable,
)
from flow_memory.agent.config import AgentConfig
from flow_memory.agent.jobs_client import (
    JobBoardClient,
    StreamEvent,
    decode_event,
    error_code,
    open_job_from_event,
    open_job_from_read,
)
from flow_memory.agent.jobs_pricing import (
    BidPlan,
    Load,
    OpenJob,
    ServedModel,
    Skip,
    SpeedMeter,
    plan_bid,
    served_models,
)
from flow_memory.agent.jobs_runner import JobFailed, JobRun, run_job
from flow_memory.agent.jobs_stake import ensure_bid_stake
from flow_memory.agent.runtime import Backoff

log = logging.getLogger("flow_memory.agent.jobs")

MODEL_SERVER_UNAVAILABLE = "model_server_unavailable"
ENDINGS = frozenset(
    {"job.completed", "job.cancelled", "job.expired_unawarded", "job.expired_no_show"}
)
# The events the worker acts on; the stream sends it only these (bids are others' business).
HEARD = ENDINGS | {"job.posted", "job.awarded", "job.no_show"}
SERVED_REFRESH_SECONDS = 30.0
REMEMBERED = 4096  # job and bid ids remembered, so replayed events are not acted on twice
DRAIN_SECONDS = 30.0  # how long stopping waits for jobs being run


@dataclass
class Taken:
    """A job the agent bid on (``bid_id`` None until the bid is placed) or is running."""

    job_id: str
    model: str
    max_tokens: int
    deadline_seconds: int
    bid_id: str | None = None
    running: bool = False


@dataclass
class JobsStatus:
    """What the worker has done, for logs and tests."""

    connected: bool = False
    connections: int = 0
    last_event_id: str | None = None
    events: int = 0
    bids: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    won: int = 0
    lost: int = 0
    completed: int = 0
    failed: int = 0
    results: list[str] = field(default_factory=list)  # result hashes, oldest first


class JobsWorker:
    """Bids on the job board for one enrolled provider; ``run`` follows the stream until
    stopped. ``provider_id`` answers the enrolled, paired provider's id, or None until then."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        board: JobBoardClient,
        model_server: ModelServerClient,
        provider_id: Callable[[], str | None],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.terms = config.jobs
        self.board = board
        self.model_server = model_server
        self.provider_id = provider_id
        self.meter = SpeedMeter(self.terms.tokens_per_second)
        self.status = JobsStatus()
        self._changed = threading.Condition()
        self._taken: dict[str, Taken] = {}
        self._mine: OrderedDict[str, Taken] = OrderedDict()  # bid id -> what it bid on
        self._decided: OrderedDict[str, None] = OrderedDict()
        self._runs: list[threading.Thread] = []
        self._served: tuple[float, dict[str, ServedModel]] | None = None
        self._backoff = Backoff(config.backoff_base_seconds, config.backoff_cap_seconds, rng)
        self._stop = threading.Event()
        self._staked = False  # the bid stake is in place (or none is configured)
        self.stopped = threading.Event()  # set once ``run`` has returned

    # -- the stream ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow the jobs stream (reconnecting after a drop) until ``stop`` is set, then wait
        for the jobs being run; ``stopped`` is set once it returns."""
        self._stop = stop
        try:
            while self.provider_id() is None and not stop.wait(0.2):
                pass  # bids name the provider: wait until the agent has enrolled and paired it
            if not stop.is_set():
                log.info(
                    "bidding on jobs: at most %d at once, from %s",
                    self.terms.max_concurrent,
                    self.config.flow_memory_url,
                )
            while not stop.is_set():
                reason = self._follow_once()
                self._note(connected=False)
                if stop.is_set():
                    break
                delay = self._backoff.next_delay()
                log.warning(
                    "jobs stream dropped (%s); reconnecting in %.1fs after event %s",
                    reason,
                    delay,
                    self.status.last_event_id or "none",
                )
                stop.wait(delay)
            self._drain()
        finally:
            self.stopped.set()

    def _follow_once(self) -> str:
        """Follow the stream until it ends; why it ended."""
        try:
            self._follow()
        except FlowMemoryUnavailable as error:
            return str(error)
        except FlowMemoryRefused as error:
            if error.code in ("unknown_event_id", "invalid_event_id"):
                # Flow Memory does not know the event (its database was replaced): follow from
                # now on, reading the open jobs again.
                self._note(last_event_id=None)
            return str(error)
        except Exception as error:  # a daemon keeps bidding through what it did not foresee
            log.exception("the jobs worker failed")
            return type(error).__name__
        return "the stream ended"

    def interrupt(self) -> None:
        """Stop following the stream now (``run`` returns once its ``stop`` is set)."""
        self.board.interrupt()

    def wait_until(self, check: Callable[[JobsStatus], bool], timeout: float) -> bool:
        """Block until ``check(status)`` holds (True) or ``timeout`` passes (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: check(self.status), timeout=timeout)

    def _follow(self) -> None:
        resumed = self.status.last_event_id
        with self.board.stream(
            last_event_id=resumed, idle_seconds=self.terms.stream_idle_seconds, kinds=HEARD
        ) as events:
            self._note(connected=True, connections=self.status.connections + 1)
            if not self._staked:  # bids need a stake: placed once, retried on each connection
                self._staked = ensure_bid_stake(
                    self.board, amount=self.terms.stake, bidder_id=self.terms.bidder_id
                )
            if resumed is None:
                log.info("jobs stream connected; reading the jobs open now")
                for job in self.board.open_jobs():
                    try:
                        self.consider(open_job_from_read(job))
                    except (KeyError, TypeError, ValueError, ArithmeticError):
                        log.warning("ignoring an open job that was not understood")
            else:
                log.info("jobs stream resumed after event %s", resumed)
            for event in events:
                self._backoff.reset()
                self.handle(event)
                if self._stop.is_set():
                    return

    def handle(self, event: StreamEvent) -> None:
        """Act on one event of the stream: a job posted, awarded or ended."""
        if event.kind == "error":  # the server's last event before it ends the stream
            log.warning("the jobs stream reports an error: %s", error_code(event.data))
            return
        try:
            kind, job_id, payload = decode_event(event)
        except ValueError:
            log.warning("ignoring an unreadable jobs event %s", event.event_id)
            return
        try:
            if kind == "job.posted":
                self.consider(open_job_from_event(job_id, payload))
            elif kind == "job.awarded":
                self._awarded(job_id, payload)
            elif kind in ENDINGS:
                self._ended(job_id, kind)
            elif kind == "job.no_show" and payload.get("bid_id") in self._mine:
                log.warning("job %s: no result reached Flow Memory by the deadline", job_id)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            log.warning("ignoring jobs event %s: %s not understood", event.event_id, kind)
        self._note(
            events=self.status.events + 1,
            last_event_id=event.event_id or self.status.last_event_id,
        )

    # -- bidding -------------------------------------------------------------------------------

    def consider(self, job: OpenJob) -> None:
        """Bid on the job or skip it (once per job), and log which and why."""
        if job.job_id in self._decided:
            return
        _remember(self._decided, job.job_id, None)
        served = self.served_models()
        with self._changed:
            decision: BidPlan | Skip = Skip(
                job.job_id, MODEL_SERVER_UNAVAILABLE, "the model server lists no chat model"
            )
            if served:
                decision = plan_bid(
                    job,
                    terms=self.terms,
                    served=served,
                    load=self._load(),
                    tokens_per_second=self.meter.tokens_per_second,
                )
            if isinstance(decision, Skip):
                self.status.skipped[decision.reason] += 1
                self._changed.notify_all()
            else:  # the slot is held before bidding, so the limit is never passed
                taken = Taken(job.job_id, decision.model, job.max_tokens, job.deadline_seconds)
                self._taken[job.job_id] = taken
        if isinstance(decision, Skip):
            log.info("skipped job %s: %s (%s)", job.job_id, decision.reason, decision.detail)
            return
        self._bid(job, decision, taken)

    def _bid(self, job: OpenJob, plan: BidPlan, taken: Taken) -> None:
        provider_id = self.provider_id()
        body: dict[str, Any] = {
            "provider_id": provider_id,
            "model": plan.model,
            "price": plan.price,
            "estimated_time_s": plan.estimated_time_s,
        }
        if self.terms.bidder_id is not None:
            body["bidder_id"] = self.terms.bidder_id
        try:
            bid = self.board.place_bid(job.job_id, body)["bid"]
            bid_id = str(bid["bid_id"])
        except (FlowMemoryUnavailable, FlowMemoryRefused) as error:
            log.warning("bid on job %s not placed: %s", job.job_id, error)
            self._release(job.job_id)
            return
        except (KeyError, TypeError):
            log.warning("bid on job %s: Flow Memory's answer was not understood", job.job_id)
            self._release(job.job_id)
            return
        with self._changed:
            taken.bid_id = bid_id
            _remember(self._mine, taken.bid_id, taken)
            self.status.bids += 1
            self._changed.notify_all()
        log.info(
            "bid %s on job %s: %s for %s (%d tokens), about %ds",
            taken.bid_id,
            job.job_id,
            plan.model,
            format(plan.price, "f"),
            job.size,
            plan.estimated_time_s,
        )
        if bid.get("status") == "won":  # fixed mode: an eligible bid wins at once
            self._start(taken)
        elif bid.get("status") == "lost":
            self._lost(job.job_id, str(bid.get("reason")))

    def _awarded(self, job_id: str, payload: Mapping[str, Any]) -> None:
        bid_id = payload.get("bid_id")
        mine = self._mine.get(str(bid_id))
        if mine is not None:
            if mine.running:
                return  # already started when the bid itself won
            with self._changed:
                if job_id not in self._taken:
                    log.info("job %s awarded to this agent as the runner-up", job_id)
                    self._taken[job_id] = mine
            self._start(mine)
        elif (taken := self._taken.get(job_id)) is not None:
            reason = self.board.loss_reason(job_id, taken.bid_id)
            self._lost(job_id, f"another bid won ({reason or 'its reason unknown'})")

    def _ended(self, job_id: str, kind: str) -> None:
        taken = self._taken.get(job_id)
        if taken is not None and not taken.running:
            self._lost(job_id, kind.removeprefix("job.").replace("_", " "))

    def _lost(self, job_id: str, why: str) -> None:
        log.info("job %s not won: %s", job_id, why)
        self._release(job_id, lost=1)

    def _release(self, job_id: str, **counts: int) -> None:
        with self._changed:
            self._taken.pop(job_id, None)
            for name, count in counts.items():
                setattr(self.status, name, getattr(self.status, name) + count)
            self._changed.notify_all()

    def _load(self) -> Load:
        taken = list(self._taken.values())
        return Load(len(taken), sum(t.max_tokens for t in taken))

    def served_models(self) -> dict[str, ServedModel]:
        """The chat models the agent bids with, from the model server (kept for a while)."""
        now = time.monotonic()
        if self._served is not None and now - self._served[0] < SERVED_REFRESH_SECONDS:
            return self._served[1]
        try:
            found = self.model_server.list_models()
        except ModelServerUnavailable as error:
            log.warning("the model server cannot be asked for its models (%s)", error)
            self._served = None
            return {}
        served = served_models(self.config, found)
        self._served = (now, served)
        return served

    # -- running what was won ------------------------------------------------------------------

    def _start(self, taken: Taken) -> None:
        with self._changed:
            taken.running = True
            self.status.won += 1
            self._changed.notify_all()
        log.info(
            "won job %s with bid %s; running it on %s", taken.job_id, taken.bid_id, taken.model
        )
        thread = threading.Thread(
            target=self._run, args=(taken,), name=f"flow-memory-job-{taken.job_id}", daemon=True
        )
        self._runs = [t for t in self._runs if t.is_alive()] + [thread]
        thread.start()

    def _run(self, taken: Taken) -> None:
        outcome = {"failed": 1}
        backoff = Backoff(self.config.backoff_base_seconds, self.config.backoff_cap_seconds)
        try:
            answered = run_job(
                JobRun(taken.job_id, taken.model, taken.deadline_seconds),
                board=self.board,
                model_server=self.model_server,
                backoff=backoff,
                stop=self._stop,
            )
        except JobFailed as error:
            log.error("job %s failed: %s", taken.job_id, error)
        else:
            with self._changed:  # the stream thread reads the speed while it decides
                self.meter.record(answered.completion_tokens, answered.seconds)
                self.status.results.append(answered.result_hash)
            log.info(
                "answered job %s: %d tokens in %.1fs (%.1f tokens/s measured); result %s%s",
                taken.job_id,
                answered.completion_tokens,
                answered.seconds,
                self.meter.tokens_per_second,
                answered.result_hash,
                " (already archived)" if answered.replayed else "",
            )
            outcome = {"completed": 1}
        finally:
            self._release(taken.job_id, **outcome)

    def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        for thread in self._runs:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        log.info("stopped bidding on jobs")

    def _note(self, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(self.status, name, value)
            self._changed.notify_all()


def _remember(memory: OrderedDict[str, Any], key: str, value: Any) -> None:
    memory[key] = value
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)
