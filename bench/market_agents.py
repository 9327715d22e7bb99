"""The agents of ``bench_market_sim.py`` and how each behaves: what a bidder asks for a job,
whether its result is good, whether it disputes a rejection, and what a judge says of a result.
Pure Python: the simulation's one random generator makes every choice."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from flow_memory.kit.deps import Principal

# Bidders.
HONEST_ERROR = 0.01  # an honest bidder's results that are wrong all the same
LAZY_RIGHT = 0.25  # a lazy bidder answers at random: right this often
LATE_NO_SHOW = 0.25  # a late bidder sends nothing by the deadline this often
# Judges.
REQUESTER_CATCH = 0.90  # a requester rejects a bad result this often
REQUESTER_SILENT = 0.05  # ... says nothing (silence accepts when the review window ends)
VALIDATOR_CATCH = 0.95  # an honest validator rejects a bad result this often
VALIDATOR_SILENT = 0.03  # ... does not answer its draw (the timer replaces it)
FALSE_REJECT = 0.02  # any honest judge rejects a good result this often

# Each kind: how many, the share of a job's max price it bids (low, high).
BIDDERS = {
    "honest": (24, (0.70, 0.95)),
    "lazy": (6, (0.45, 0.70)),
    "late": (6, (0.65, 0.90)),
    "cheater": (6, (0.45, 0.70)),
    "colluder": (6, (0.45, 0.70)),
}
REQUESTERS = 16
HONEST_VALIDATORS = (12, "1")  # how many, the stake each
COLLUDING_VALIDATORS = (4, "2")  # a ring's accomplices stake more to be drawn more often
RING = "ring-1"


@dataclass
class Agent:
    name: str
    kind: str  # requester, honest, lazy, late, cheater, colluder, validator, accomplice
    principal: Principal
    provider_id: str = ""
    ring: str | None = None
    bid_range: tuple[float, float] = (0.0, 0.0)
    won: int = 0  # jobs awarded

    @property
    def is_late(self) -> bool:
        return self.kind == "late"

    @property
    def no_show_rate(self) -> float:
        return LATE_NO_SHOW if self.is_late else 0.0

    @property
    def always_wrong(self) -> bool:
        return self.kind in ("cheater", "colluder")

    def price_share(self, rng: random.Random) -> float:
        low, high = self.bid_range
        return rng.uniform(low, high)

    def disputes(self, bad: bool, rng: random.Random) -> bool:
        """Whether the winner disputes a rejection: an honest one when it was wrongful,
        cheaters always (a colluder hopes for its accomplices), a lazy one half the time."""
        if self.always_wrong:
            return True
        if self.kind == "lazy":
            return rng.random() < 0.5
        return not bad


@dataclass
class Population:
    requesters: list[Agent] = field(default_factory=list)
    bidders: list[Agent] = field(default_factory=list)
    validators: list[Agent] = field(default_factory=list)

    @property
    def by_name(self) -> dict[str, Agent]:
        return {a.name: a for a in [*self.requesters, *self.bidders, *self.validators]}


def population() -> Population:
    """Every agent, named by kind, with the scopes its key would have (providers come later)."""
    people = Population()
    for n in range(REQUESTERS):
        name = f"sim-requester-{n:02d}"
        people.requesters.append(Agent(name, "requester", _principal(name, "inference:buy")))
    for kind, (count, bid_range) in BIDDERS.items():
        for n in range(count):
            name = f"sim-{kind}-{n:02d}"
            ring = RING if kind == "colluder" else None
            principal = _principal(name, "inference:sell")
            people.bidders.append(Agent(name, kind, principal, ring=ring, bid_range=bid_range))
    for kind, (count, _) in (
        ("validator", HONEST_VALIDATORS),
        ("accomplice", COLLUDING_VALIDATORS),
    ):
        for n in range(count):
            name = f"sim-{kind}-{n:02d}"
            ring = RING if kind == "accomplice" else None
            principal = _principal(name, "inference:validate")
            people.validators.append(Agent(name, kind, principal, ring=ring))
    return people


def validator_stake(agent: Agent) -> str:
    return COLLUDING_VALIDATORS[1] if agent.kind == "accomplice" else HONEST_VALIDATORS[1]


def _principal(name: str, scope: str) -> Principal:
    return Principal(f"{name}-key", name, frozenset({scope, "inference:read"}))


def decide_result(winner: Agent, rng: random.Random) -> bool:
    """Whether the winner's result is bad."""
    if winner.always_wrong:
        return True
    if winner.kind == "lazy":
        return rng.random() >= LAZY_RIGHT
    return rng.random() < HONEST_ERROR


def judge(
    agent: Agent, winner: Agent | None, bad: bool, round_: int, rng: random.Random
) -> tuple[bool, str] | None:
    """What ``agent`` says of a result (accept, score), or None when it says nothing."""
    if agent.kind == "accomplice" and winner is not None and winner.ring == agent.ring:
        return True, "0.95"
    if agent.kind == "requester":
        if rng.random() < REQUESTER_SILENT:
            return None
        catch = REQUESTER_CATCH
    else:
        if rng.random() < VALIDATOR_SILENT:
            return None
        catch = VALIDATOR_CATCH
    rejects = rng.random() < (catch if bad else FALSE_REJECT)
    if rejects:
        return False, f"{rng.uniform(0.0, 0.25):.2f}"
    return True, f"{rng.uniform(0.75, 1.0):.2f}"
