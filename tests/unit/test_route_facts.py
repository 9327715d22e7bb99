"""Kept provider offers: fresh for a second of the app's clock and of real time, forgotten
on demand, and never kept when what they show was forgotten while they were read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flow_memory.routing.facts import RouteFacts
from tests.unit.test_route_policy import BASE

MARKET = ("m", "token")
NOW = datetime(2026, 6, 17, tzinfo=UTC)
OFFERS = (BASE, replace(BASE, provider_id="prov_stale", route_gate="stale"))


def kept(seconds: list[float]) -> RouteFacts:
    facts = RouteFacts(monotonic=lambda: seconds[0])
    facts.put(MARKET, OFFERS, listed=None, now=NOW, generation=facts.generation)
    return facts


class TestFreshness:
    def test_offers_serve_for_a_second_of_the_apps_clock(self) -> None:
        facts = kept([0.0])
        assert facts.get(MARKET, now=NOW + timedelta(seconds=1), listed=None) == OFFERS
        assert facts.get(MARKET, now=NOW + timedelta(seconds=1.001), listed=None) is None

    def test_and_of_real_time(self) -> None:
        seconds = [0.0]
        facts = kept(seconds)
        seconds[0] = 1.001
        assert facts.get(MARKET, now=NOW, listed=None) is None

    def test_a_clock_moved_back_or_another_list_price_reads_again(self) -> None:
        assert kept([0.0]).get(MARKET, now=NOW - timedelta(seconds=1), listed=None) is None
        assert kept([0.0]).get(MARKET, now=NOW, listed=Decimal("0.000001")) is None


class TestForgetting:
    def test_clear_forgets_every_market(self) -> None:
        facts = kept([0.0])
        facts.clear()
        assert facts.get(MARKET, now=NOW, listed=None) is None

    def test_a_heartbeat_forgets_only_where_the_provider_was_not_eligible(self) -> None:
        facts = kept([0.0])
        facts.forget_unsettled(BASE.provider_id)
        assert facts.get(MARKET, now=NOW, listed=None) == OFFERS
        facts.forget_unsettled("prov_stale")
        assert facts.get(MARKET, now=NOW, listed=None) is None

    def test_offers_read_across_a_clear_are_not_kept(self) -> None:
        facts = RouteFacts(monotonic=lambda: 0.0)
        read_from = facts.generation
        facts.clear()  # a commit lands while the offers are read
        facts.put(MARKET, OFFERS, listed=None, now=NOW, generation=read_from)
        assert facts.get(MARKET, now=NOW, listed=None) is None

    def test_offers_read_across_a_heartbeat_of_a_provider_they_show_unsettled_are_not_kept(
        self,
    ) -> None:
        facts = RouteFacts(monotonic=lambda: 0.0)
        read_from = facts.generation
        facts.forget_unsettled(BASE.provider_id)  # eligible in the offers: they stand
        facts.put(MARKET, OFFERS, listed=None, now=NOW, generation=read_from)
        assert facts.get(MARKET, now=NOW, listed=None) == OFFERS
        read_from = facts.generation
        facts.forget_unsettled("prov_stale")
        facts.put(MARKET, OFFERS, listed=None, now=NOW, generation=read_from)
        assert facts.get(MARKET, now=NOW, listed=None) is None
