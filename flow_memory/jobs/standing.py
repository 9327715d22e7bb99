"""Bidders' standing, as the award reads it: from the sources registered here.

No source is registered until reputation is recorded: every bidder then has no standing, is
scored as neutral (``domain.NEUTRAL_STANDING``) and is below no reputation floor. The domain
that records reputation registers its source with ``register_standing_source``."""

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
    found: dict[str, Decimal] = {}
    if not bidder_ids:
        return found
    for source in _SOURCES:
        found.update(source(session, bidder_ids))
    return found
