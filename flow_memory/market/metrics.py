"""The market writer's instruments: orders, fills, cancels and expiries committed, commands
answered, and each batch's size, duration and commit time.

A writer describes each batch it ends as ``BatchFigures`` (plain numbers). The server's own
writer records them at once; the market process (``flow_memory.market.process``) sends them to
the server with the batch's answers, and the server records them there, before the answers
are told: the counters live in the server's registry either way, so its /metrics shows them,
and they outlive a market process that is restarted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

ORDERS = Counter("flow_memory_market_orders", "Orders placed and committed, by side", ("side",))
FILLS = Counter("flow_memory_market_fills", "Fills committed")
FILLED_UNITS = Counter("flow_memory_market_filled_units", "Units traded in committed fills")
CANCELS = Counter("flow_memory_market_cancels", "Orders cancelled on request")
EXPIRIES = Counter("flow_memory_market_expiries", "Orders that expired")
COMMANDS = Counter(
    "flow_memory_market_commands",
    "Market commands answered, by outcome: applied, refused (4xx), failed (5xx)",
    ("outcome",),
)
RETRIES = Counter(
    "flow_memory_market_batch_retries",
    "Batches the database rolled back (deadlock, a key taken first) and the writer ran again",
)
BATCH_COMMANDS = Histogram(
    "flow_memory_market_batch_commands",
    "Commands the market writer took in one batch",
    buckets=BATCH_SIZES,
)
BATCH_DURATION = Histogram(
    "flow_memory_market_batch_duration_seconds",
    "Time to apply one batch: lock, decide, write and commit, retries included",
    buckets=BATCH_SECONDS,
)
COMMIT_DURATION = Histogram(
    "flow_memory_market_commit_duration_seconds",
    "Time the database took to commit one batch",
    buckets=BATCH_SECONDS,
)
_BIDS, _ASKS = ORDERS.labels("bid"), ORDERS.labels("ask")
_APPLIED, _REFUSED, _FAILED = (COMMANDS.labels(o) for o in ("applied", "refused", "failed"))


@dataclass(frozen=True, slots=True)
class BatchFigures:
    """What one batch did. ``commit_seconds`` is None when nothing was committed."""

    commands: int
    applied: int
    refused: int
    failed: int
    retries: int
    seconds: float
    commit_seconds: float | None
    bids: int = 0
    asks: int = 0
    fills: int = 0
    filled_units: int = 0
    cancels: int = 0
    expiries: int = 0


def tally(events: Iterable[tuple[Any, ...]]) -> dict[str, int]:
    """Orders, fills, cancels and expiries in a batch's event rows
    (``flow_memory.market.rows.event``): the rows it committed say what it did."""
    counts = dict.fromkeys(("bids", "asks", "fills", "filled_units", "cancels", "expiries"), 0)
    for kind, _model, _unit_type, _subject, payload, _at in events:
        if kind == "order_placed":
            counts["bids" if payload["side"] == "bid" else "asks"] += 1
        elif kind == "fill":
            counts["fills"] += 1
            counts["filled_units"] += payload["units"]
        elif kind == "order_cancelled":
            counts["cancels"] += 1
        elif kind == "order_expired":
            counts["expiries"] += 1
    return counts


def record(figures: BatchFigures) -> None:
    """Count one batch in this process's instruments."""
    BATCH_COMMANDS.observe(figures.commands)
    BATCH_DURATION.observe(figures.seconds)
    if figures.commit_seconds is not None:
        COMMIT_DURATION.observe(figures.commit_seconds)
    for child, amount in (
        (_APPLIED, figures.applied),
        (_REFUSED, figures.refused),
        (_FAILED, figures.failed),
        (RETRIES, figures.retries),
        (_BIDS, figures.bids),
        (_ASKS, figures.asks),
        (FILLS, figures.fills),
        (FILLED_UNITS, figures.filled_units),
        (CANCELS, figures.cancels),
        (EXPIRIES, figures.expiries),
    ):
        if amount:
            child.inc(amount)
