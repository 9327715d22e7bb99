"""Batched usage writes for proxied calls: one writer thread commits records in groups, so a
busy proxy pays one commit per batch instead of one per call. The routes the proxy selects
for calls that name none go the same way (``add_route``), ahead of the calls that use them.
``stop`` writes everything still queued, so a clean shutdown loses nothing. A database outage
is waited out: the records stay queued until it ends (or, when the server is stopping, for at
most 30 seconds)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flow_memory.deployments import royalties
from flow_memory.kit.deps import transaction
from flow_memory.kit.errors import DatabaseUnavailable
from flow_memory.ledger.charges import Charge, Charged, charge_many
from flow_memory.ledger.holds import release_expired
from flow_memory.proxy.paying import payers
from flow_memory.routing.models import RouteRecord
from flow_memory.usage.rollup import add_to_rollup
from flow_memory.usage.service import insert_records

log = logging.getLogger("flow_memory.proxy.usage")

MAX_BATCH = 1_000
MAX_DRAIN = 10 * MAX_BATCH
LINGER_SECONDS = 0.1
RETRIES = 5  # attempts at a batch that fails for a reason other than an outage
OUTAGE_RETRY_SECONDS = 1.0
OUTAGE_PATIENCE_SECONDS = 30.0  # how long a stopping server waits out an outage
SLICE = 64
SWEEP_SECONDS = 10.0  # how often an idle writer releases holds whose calls never came
Row = dict[str, Any]  # a usage record's column values


class UsageRecorder:
    """Queue usage records from any thread; a writer thread commits them in batches."""

    def __init__(self, factory: sessionmaker[Session], *, charges: bool = False) -> None:
        self._factory = factory
        # Charge each call's cost to its payer in the ledger (flow_memory.ledger.charges).
        self._charges = charges
        self._holds: dict[str, str] = {}  # usage id -> the hold its payer's estimate took
        self._swept_at = time.monotonic()
        self.uncollected = Decimal(0)
        self._queue: queue.SimpleQueue[Row | RouteRecord | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._urgent = threading.Event()
        self.written = 0
        self.lost = 0
        self._taken = 0  # records the writer took from the queue and has not written yet
        self._stopping = False

    def add(self, record: Row, *, hold_id: str | None = None) -> None:
        """Queue one record's column values (as ``record_values`` makes them), with the hold
        its payer's estimate took before the call, if one did."""
        self._ensure_started()
        if hold_id is not None:
            with self._lock:
                self._holds[record["usage_id"]] = hold_id
        self._queue.put(record)

    def add_route(self, route: RouteRecord) -> None:
        """Queue a selected route (not yet in any session); it is written before any usage
        record queued after it."""
        self._ensure_started()
        self._queue.put(route)

    def depth(self) -> int:
        """Records queued or being written, not yet committed (about: for /metrics)."""
        return self._queue.qsize() + self._taken

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued before this call is committed."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._queue.put(None)
        self._urgent.set()
        thread.join(timeout)
        self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flow-memory-usage-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                items = [self._queue.get(timeout=SWEEP_SECONDS)]
            except queue.Empty:
                self._sweep()
                continue
            # Let records gather, then take them all at once: waiting on the queue for each
            # one would wake this thread, and pass the GIL back and forth, once per call.
            self._urgent.wait(LINGER_SECONDS)
            self._urgent.clear()
            while len(items) < MAX_DRAIN:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch: list[Row] = []
            routes: list[RouteRecord] = []
            waiters: list[threading.Event] = []
            for item in items:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                elif isinstance(item, RouteRecord):
                    routes.append(item)
                else:
                    batch.append(item)
            self._taken = len(batch)
            if routes and not batch:
                self._write([], routes)
            for start in range(0, len(batch), MAX_BATCH):
                # Every route goes with the first slice: before any record that names it.
                self._write(batch[start : start + MAX_BATCH], routes if start == 0 else [])
                self._taken = max(0, len(batch) - start - MAX_BATCH)
            for waiter in waiters:
                waiter.set()

    def _write(self, batch: list[Row], routes: list[RouteRecord]) -> None:
        failures = 0
        outage_began: float | None = None
        while True:
            try:
                with transaction(self._factory) as session:
                    # A failed attempt rolls back, leaving the routes to be added again.
                    session.add_all(routes)
                    # In slices, offering the GIL back between them: this thread shares it
                    # with the event loop, and preparing a thousand rows at once held it for
                    # milliseconds while calls waited.
                    # Calls through deployments have columns of their own: inserted apart,
                    # since one insert writes the columns its first row names.
                    deployed = [row for row in batch if "deployment_id" in row]
                    plain = [r for r in batch if "deployment_id" not in r] if deployed else batch
                    for rows in (plain, deployed):
                        for start in range(0, len(rows), SLICE):
                            insert_records(session, rows[start : start + SLICE])
                            time.sleep(0)
                    add_to_rollup(session, batch)
                    charged = (
                        charge_many(session, self._charges_of(session, batch), now=_last(batch))
                        if self._charges
                        else Charged()
                    )
                    paid = self._royalties(session, deployed) if deployed else None
                self.uncollected += charged.uncollected
                if paid is not None:
                    self.uncollected += paid.uncollected
                if self._charges:
                    with self._lock:
                        for row in batch:
                            self._holds.pop(row["usage_id"], None)
                self.written += len(batch)
                return
            except DatabaseUnavailable:
                # The outage is logged once, where it was met: wait it out and lose nothing,
                # unless the server is stopping and it has gone on past OUTAGE_PATIENCE.
                now = time.monotonic()
                outage_began = now if outage_began is None else outage_began
                if self._stopping and now - outage_began > OUTAGE_PATIENCE_SECONDS:
                    break
                time.sleep(OUTAGE_RETRY_SECONDS)
            except Exception:
                failures += 1
                log.exception("usage batch of %d records failed (attempt %d)", len(batch), failures)
                if failures == RETRIES:
                    break
                time.sleep(0.05 * 2**failures)
        self.lost += len(batch)
        log.error("%d usage records and %d routes could not be written", len(batch), len(routes))

    def _charges_of(self, session: Session, batch: list[Row]) -> list[Charge]:
        with self._lock:
            holds = {row["usage_id"]: self._holds.get(row["usage_id"]) for row in batch}
        costly = [
            row for row in batch if row["actual_cost"] > 0 or holds[row["usage_id"]] is not None
        ]
        if not costly:
            return []
        payer = payers(session, {row["agent_id"] or row["owner_id"] for row in costly})
        return [
            Charge(
                usage_id=row["usage_id"],
                payer=payer[row["agent_id"] or row["owner_id"]],
                payee=row["seller_owner_id"],
                amount=row["actual_cost"],
                hold_id=holds[row["usage_id"]],
            )
            for row in costly
        ]

    def _royalties(self, session: Session, rows: list[Row]) -> royalties.Paid:
        """The royalty lines of calls through deployments, in this batch's transaction."""
        payer = (
            payers(session, {row["agent_id"] or row["owner_id"] for row in rows})
            if self._charges
            else {}
        )
        return royalties.record(
            session, rows, payers=payer, transfers=self._charges, now=_last(rows)
        )

    def _sweep(self) -> None:
        """Release the holds of calls whose records never came (a server that died)."""
        if not self._charges or time.monotonic() - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = time.monotonic()
        try:
            with transaction(self._factory) as session:
                release_expired(session, now=datetime.now(UTC))
        except Exception:
            log.exception("expired ledger holds could not be released; trying again later")


def _last(batch: list[Row]) -> datetime:
    """When the batch's latest call was recorded (its charges' time)."""
    return max((row["created_at"] for row in batch), default=datetime.now(UTC))
