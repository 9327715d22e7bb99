"""The provider agent's bid stake: ``jobs.stake`` in its configuration, placed when it starts
and its bidder has no active bid stake, never twice, and a refusal or an outage reported as not
settled (the worker tries again on its next connection)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow_memory.agent.config import API_KEY_ENV, ConfigError, load_config
from flow_memory.agent.jobs_client import JobBoardClient
from flow_memory.agent.jobs_stake import ensure_bid_stake

OFFER = '[offer.units.token]\nask_unit_price = "0.0000005"\n'


class FakeStakes:
    """The stakes routes, answering from a list; ``refuse`` makes the POST a 402."""

    def __init__(self, stakes: list[dict[str, Any]] | None = None, refuse: bool = False) -> None:
        self.stakes = list(stakes or [])
        self.refuse = refuse
        self.posted: list[dict[str, Any]] = []
        self.listed: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/inference/stakes":
            return httpx.Response(404, json={"ok": False, "error": {"code": "not_found"}})
        if request.method == "GET":
            self.listed.append(dict(request.url.params))
            return httpx.Response(200, json={"ok": True, "stakes": self.stakes})
        body = json.loads(request.content)
        self.posted.append(body)
        if self.refuse:
            problem = {"code": "insufficient_credit", "message": "short"}
            return httpx.Response(402, json={"ok": False, "error": problem})
        stake = {"stake_id": "stake_1", "purpose": "bid", "status": "active", **body}
        self.stakes.append(stake)
        return httpx.Response(201, json={"ok": True, "stake": stake})


def board(fake: FakeStakes) -> JobBoardClient:
    return JobBoardClient("http://flow.test", "fm_x", transport=httpx.MockTransport(fake))


class TestEnsureBidStake:
    def test_stakes_once_when_the_bidder_has_none(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="flow_memory.agent.jobs")
        fake = FakeStakes()
        client = board(fake)
        assert ensure_bid_stake(client, amount=Decimal("1.5"), bidder_id=None)
        assert fake.posted == [{"amount": 1.5}]
        # In place now: asked again, it places nothing more.
        assert ensure_bid_stake(client, amount=Decimal("1.5"), bidder_id=None)
        assert len(fake.posted) == 1
        assert "staked 1.5 credits to bid (stake stake_1)" in caplog.text

    def test_stakes_for_the_configured_bidder(self) -> None:
        fake = FakeStakes()
        assert ensure_bid_stake(board(fake), amount=Decimal(2), bidder_id="agent_x")
        assert fake.listed[0]["identity_id"] == "agent_x"
        assert fake.posted == [{"amount": 2, "identity_id": "agent_x"}]

    def test_a_withdrawn_or_validator_stake_does_not_count(self) -> None:
        other = [
            {"stake_id": "s1", "purpose": "bid", "status": "withdrawn", "amount": 1},
            {"stake_id": "s2", "purpose": "validate", "status": "active", "amount": 1},
        ]
        fake = FakeStakes(other)
        assert ensure_bid_stake(board(fake), amount=Decimal(1), bidder_id=None)
        assert len(fake.posted) == 1

    def test_an_active_bid_stake_is_enough(self) -> None:
        fake = FakeStakes([{"stake_id": "s1", "purpose": "bid", "status": "active", "amount": 3}])
        assert ensure_bid_stake(board(fake), amount=Decimal(1), bidder_id=None)
        assert fake.posted == []

    def test_nothing_configured_asks_nothing(self) -> None:
        fake = FakeStakes()
        assert ensure_bid_stake(board(fake), amount=Decimal(0), bidder_id=None)
        assert fake.listed == [] and fake.posted == []

    def test_a_refusal_is_not_settled(self, caplog: pytest.LogCaptureFixture) -> None:
        fake = FakeStakes(refuse=True)
        assert not ensure_bid_stake(board(fake), amount=Decimal(1), bidder_id=None)
        assert "bid stake of 1 credits not placed: " in caplog.text

    def test_an_outage_is_not_settled(self) -> None:
        def down(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        client = JobBoardClient("http://flow.test", "fm_x", transport=httpx.MockTransport(down))
        assert not ensure_bid_stake(client, amount=Decimal(1), bidder_id=None)


class TestTheSetting:
    def test_read_from_the_jobs_table(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.toml"
        path.write_text(f'{OFFER}[jobs]\nstake = "2.5"\n')
        assert load_config(path, environ={API_KEY_ENV: "fm_x"}).check().jobs.stake == Decimal("2.5")

    def test_none_unless_configured(self) -> None:
        assert load_config(None, environ={API_KEY_ENV: "fm_x"}).jobs.stake == 0

    def test_negative_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.toml"
        path.write_text(f"{OFFER}[jobs]\nstake = -1\n")
        with pytest.raises(ConfigError, match=r"jobs\.stake"):
            load_config(path, environ={API_KEY_ENV: "fm_x"}).check()
