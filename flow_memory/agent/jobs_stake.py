"""The bid stake the agent keeps on the job board: Flow Memory refuses bids from a bidder with
no active bid stake (``stake_required``), so before it bids the agent stakes ``jobs.stake``
credits for its bidder, once, unless the bidder already has an active bid stake. The stake is
a dry-run ledger hold on the bidder's paying account; it stays when the agent stops (the
operator withdraws it: ``DELETE /inference/stakes/{stake_id}``)."""

from __future__ import annotations

import logging
from decimal import Decimal

from flow_memory.agent.clients import FlowMemoryRefused, FlowMemoryUnavailable
from flow_memory.agent.jobs_client import JobBoardClient

log = logging.getLogger("flow_memory.agent.jobs")


def ensure_bid_stake(board: JobBoardClient, *, amount: Decimal, bidder_id: str | None) -> bool:
    """Stake ``amount`` for the bidder unless it has an active bid stake (nothing when
    ``amount`` is 0). Whether that is settled: False when Flow Memory could not be asked or
    refused the stake (logged; the caller tries again on its next connection)."""
    if amount <= 0:
        return True
    try:
        active = board.bid_stakes(bidder_id)
        if active:
            staked = sum((Decimal(str(s["amount"])) for s in active), Decimal(0))
            held = format(staked, "f")
            log.info("bid stake in place: %s credits in %d stake(s)", held, len(active))
            return True
        stake = board.place_stake(amount, bidder_id)
    except (FlowMemoryUnavailable, FlowMemoryRefused) as error:
        log.warning("bid stake of %s credits not placed: %s", format(amount, "f"), error)
        return False
    except (KeyError, TypeError, ArithmeticError):
        log.warning("bid stake: Flow Memory's answer was not understood")
        return False
    log.info("staked %s credits to bid (stake %s)", format(amount, "f"), stake.get("stake_id"))
    return True
