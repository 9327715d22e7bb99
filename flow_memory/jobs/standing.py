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


class StandingSource(Protocol):
    """The standing in [0, 1] of each bidder it knows among ``bidder_ids``."""

    def __call__(self, session: Session, bidder_ids: Collection[str]) -> Mapping[str, Decimal]: ...


_SOURCES: list[StandingSource] = []


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
    """The standings one command reads, each source asked at most once per bidder: a bid is
    checked against the job's floor, then (in fixed mode) awarded, and both read the bidder's
    standing, which nothing between them changes. Made for one command and dropped with it:
    a standing changes as outcomes are recorded, so none is kept any longer."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._answers: dict[StandingSource, dict[str, Decimal | None]] = {}

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
        answers = self._answers.setdefault(source, {})
        unasked = [b for b in dict.fromkeys(bidder_ids) if b not in answers]
        if unasked:
            said = source(self._session, unasked)
            answers.update({b: said.get(b) for b in unasked})
        return {b: known for b in bidder_ids if (known := answers[b]) is not None}
