"""The settings of the bid-time rules and known-answer jobs, as the environment gives them:
0 turns a stake or the known-answer share off, a negative or too large one is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flow_memory.jobs.outcomes import JobRules
from flow_memory.settings import Settings


def test_the_product_defaults_require_a_stake_and_enforce_capacity() -> None:
    rules = JobRules.of(Settings())
    assert rules.stake_per_slot == Decimal("1.0") and rules.capacity_enforced
    assert rules.known_answer_share == Decimal("0.05")


def test_0_turns_stakes_and_known_answers_off_and_capacity_is_a_switch() -> None:
    environ = {
        "FLOW_MEMORY_STAKE_PER_JOB_SLOT": "0",
        "FLOW_MEMORY_KNOWN_ANSWER_SHARE": "0",
        "FLOW_MEMORY_EARNED_CAPACITY_ENFORCED": "false",
    }
    rules = JobRules.of(Settings.from_env(environ))
    assert (rules.stake_per_slot, rules.known_answer_share) == (0, 0)
    assert not rules.capacity_enforced


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("STAKE_PER_JOB_SLOT", "-1", "0 or more"),
        ("KNOWN_ANSWER_SHARE", "-0.1", "0 or more"),
        ("KNOWN_ANSWER_SHARE", "0.75", r"\[0, 0\.5\]"),
        ("EARNED_CAPACITY_ENFORCED", "maybe", "true or false"),
    ],
)
def test_what_cannot_work_is_refused(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({f"FLOW_MEMORY_{name}": raw})
