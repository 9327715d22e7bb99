"""The market simulation of ``bench/bench_market_sim.py``, small, through the real services:
the same seed gives the same figures (its agents' choices and the server's identifiers, which
seed the validator draw, both come from it), its figures add up, and its ledger is sound."""

from __future__ import annotations

from bench.bench_market_sim import Figures, simulate
from tests.conftest import clear_tables


def run(database_url: str, seed: int) -> Figures:
    clear_tables(database_url)
    try:
        found, _market, _seconds = simulate(
            jobs=32, seed=seed, wave=16, database_url=database_url, progress=False
        )
    finally:
        clear_tables(database_url)
    return found


def test_the_same_seed_gives_the_same_figures_and_they_add_up(database_url: str) -> None:
    first = run(database_url, 11)
    assert run(database_url, 11) == first
    found = first
    assert found.jobs == 32
    # Every job posted was awarded and judged, or not awarded, or its winner sent nothing.
    assert found.judged + found.unawarded + found.no_shows == found.jobs
    assert 0 < found.accepted <= found.judged
    assert found.bad_accepted <= min(found.bad, found.accepted)
    assert sum(found.bad_accepted_by_kind.values()) == found.bad_accepted
    assert 0 < found.fees < found.value
    assert found.ledger_sound
