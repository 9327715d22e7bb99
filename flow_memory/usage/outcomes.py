"""What a usage record's decision says about the call: billed, or a failed attempt (pure).

Every proxied call writes a usage record, failures included, so the table is a full audit of
what was tried. A failed attempt is a record whose call was not answered (the provider refused
it, answered nothing usable, or the client left before anything arrived) and that billed no
units. Summaries count such records apart from billed calls, so a failure never reads as a
call that was made and paid for."""

from __future__ import annotations

# Decisions of a call (or fill) that was answered: billed whatever its units.
ANSWERED = frozenset({"market_fill", "selected", "fallback"})


def is_failed_attempt(decision: str, actual_units: int) -> bool:
    """True for a record of a call that was not answered and billed nothing. A stream cut
    short, or left by its client, after part of the answer arrived bills what arrived: it is a
    billed call."""
    return decision not in ANSWERED and actual_units == 0


def billed_request_units(decision: str, delivered_tokens: int) -> int:
    """Units of a call priced per request: one for an answered call, or one that delivered
    part of an answer; none for a failed attempt."""
    return 1 if decision in ANSWERED or delivered_tokens > 0 else 0
