"""Write what a batch of market commands decided: one ``executemany`` per table."""

from __future__ import annotations

from flow_memory.market import repository
from flow_memory.market.batch import Batch
from flow_memory.usage import service as usage


def persist(batch: Batch) -> None:
    """Write the batch's rows (each table after those its rows refer to) and each changed
    market's version and next sequence."""
    session, rows = batch.session, batch.rows
    if rows.orders:
        repository.insert_orders(session, rows.orders)
    if rows.fills:
        repository.insert_fills(session, rows.fills)
    if rows.order_updates:
        repository.update_orders(session, rows.order_updates)
    if rows.reservations:
        repository.insert_reservations(session, rows.reservations)
    if rows.holds:
        repository.insert_holds(session, rows.holds)
    if rows.reservation_updates:
        repository.update_reservations(session, rows.reservation_updates)
    if rows.events:
        repository.insert_events(session, rows.events)
    if rows.usage:
        usage.record_usage(session, rows.usage, now=batch.now)
    counters = []
    for market in batch.opened.values():
        if market.changed:
            market.version += 1
            counters.append((*market.key, market.version, market.next_sequence))
    if counters:
        repository.save_markets(session, counters)
