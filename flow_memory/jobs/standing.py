"""Bidders' standing, as the award reads it: from the sources registered here.

``flow_memory.reputation.service`` registers the real one when it is imported (every app
imports it with its routes): each bidder's standing from its recorded outcomes, a new one at
the prior, 0.5, and a bound agent's no higher than its operator's. With no source registered
(a process that never imports reputation) every bidder has no standing, is scored as neutral
(``domain.NEUTRAL_STANDING``) and is below no reputation floor. Tests may register a double
after it: the last registered source wins for the bidders it knows."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session

from flow_memory.kit.db import transaction_memo


class StandingSource(Protocol):
    """The standing in [0, 1] of each bidder it knows among ``bidder_ids``."""

    def __call__(self, session: Session, bidder_ids: Collection[str]) -> Mapping[str, Decimal]: ...


_SOURCES: list[StandingSource] = []
_MEMO = "standings"


def register_standing_source(source: StandingSource) -> None:
    """Add a source of standings (registering one twice adds it once)."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def unregister_standing_source(source: StandingSource) -> None:
    """Remove a source added by ``register_standing_source``."""
    if source in _SOURCES:
        _SOURCES.remove(source)


def standings(session: Session, bidder_ids: Collection[str]) -> dict[str, Decimal]:
    """The standing of every bidder a source knows (the last registered source wins)."""
    return StandingReads(session).standings(bidder_ids)


class StandingReads:
    """The standings a transaction reads, each source asked at most once per bidder: a bid is
    checked against the job's floor, then (in fixed mode) awarded, and the job writer's next
    commands in the same transaction read the same bidders again. A standing changes only as
    outcomes are recorded, and recording one forgets them all (``forget_standings``)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._answers = transaction_memo(session, _MEMO)  # by (source, bidder)

    def standings(self, bidder_ids: Collection[str]) -> dict[str, Decimal]:
        """``standing.standings``, asking each source only of bidders it was not asked of."""
        found: dict[str, Decimal] = {}
        if not bidder_ids:
            return found
        for source in _SOURCES:
            found.update(self.of_source(source, bidder_ids))
        return found

    def of_source(self, source: StandingSource, bidder_ids: Collection[str]) -> dict[str, Decimal]:
        """What ``source`` says of the bidders it knows among ``bidder_ids``."""
        answers = self._answers
        unasked = [b for b in dict.fromkeys(bidder_ids) if (source, b) not in answers]
        if unasked:
            said = source(self._session, unasked)
            for b in unasked:
                answers[source, b] = said.get(b)
        return {b: known for b in bidder_ids if (known := answers[source, b]) is not None}


def forget_standings(session: Session) -> None:
    """What the transaction read of standings is stale: an outcome was recorded."""
    transaction_memo(session, _MEMO).clear()
