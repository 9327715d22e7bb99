"""The provider agent's configuration: TOML, flag overrides, the key from the environment."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from flow_memory.agent.config import API_KEY_ENV, ConfigError, UnitTerms, load_config

CONFIG = """
flow_memory_url = "http://127.0.0.1:8765"
model_server_url = "http://127.0.0.1:8080/v1"
provider_name = "gpu-box"
credential_ref = "secret://inference/gpu-box"
state_file = "~/agent-state.json"
heartbeat_interval_seconds = 15
capacity_ttl_seconds = 300

[offer]
compatible_api = "chat_completions"
concurrency = 4

[offer.units.token]
ask_unit_price = 0.0000005
min_unit_price = "0.0000004"
min_order_units = 1000
units_per_second = 30

[models."tiny-embed"]
compatible_api = "embeddings"
context_window = 512

[models."tiny-embed".units.token]
ask_unit_price = "0.00000002"
"""
ENV = {API_KEY_ENV: "fm_abc"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


class TestFile:
    def test_reads_every_section(self, tmp_path: Path) -> None:
        config = load_config(write(tmp_path, CONFIG), environ=ENV).check()
        assert config.api_key == "fm_abc"
        assert config.heartbeat_interval_seconds == 15
        assert config.capacity_ttl_seconds == 300
        assert config.state_file == Path.home() / "agent-state.json"
        token = config.offer.units["token"]
        # A TOML float keeps its written digits; no binary rounding reaches the price.
        assert token.ask_unit_price == Decimal("0.0000005")
        assert token.min_unit_price == Decimal("0.0000004")
        assert token.units_per_second == Decimal(30)
        embed = config.offer_for("tiny-embed")
        assert embed.compatible_api == "embeddings" and embed.context_window == 512
        assert embed.concurrency == 4  # inherited from [offer]
        assert embed.units["token"].ask_unit_price == Decimal("0.00000002")
        # Its own units table prices it from scratch: no floor or order size from [offer].
        assert embed.units["token"].min_unit_price is None
        assert embed.units["token"].min_order_units == 1
        assert config.offer_for("anything-else") == config.offer

    def test_flags_override_the_file(self, tmp_path: Path) -> None:
        config = load_config(
            write(tmp_path, CONFIG),
            overrides={
                "provider_name": "other",
                "offer": {"concurrency": 1, "units": {"token": {"ask_unit_price": "0.000001"}}},
            },
            environ=ENV,
        )
        assert config.provider_name == "other"
        assert config.offer.concurrency == 1
        assert config.offer.units["token"].ask_unit_price == Decimal("0.000001")
        assert config.offer.units["token"].min_order_units == 1000

    def test_base_url_defaults_to_the_model_server(self) -> None:
        config = load_config(None, overrides={"model_server_url": "http://h:1/v1/"}, environ=ENV)
        assert config.upstream_base_url == "http://h:1/v1"
        config = load_config(None, overrides={"base_url": "http://gpu:8080/v1"}, environ=ENV)
        assert config.upstream_base_url == "http://gpu:8080/v1"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('api_key = "fm_x"', "api_key is not read from files"),
            ("colour = 1", "unknown setting colour"),
            ('[offer]\ncompatible_api = "fax"', "compatible_api must be one of"),
            ("[offer.units.litre]\nask_unit_price = 1", "unit type must be one of"),
            ('[offer.units.token]\nask_unit_price = "cheap"', "must be a decimal number"),
            ("[offer.units.token]\nmin_order_units = 1.5", "must be an integer"),
            ("[offer.units.token]\nask_unit_price = 1\nmin_unit_price = 2", "below min_unit_price"),
            ('credential_ref = "sk-live-abc"', "opaque secret://"),
            ("heartbeat_interval_seconds = 0", "must be positive"),
            ("this is = not toml", "not valid TOML"),
        ],
    )
    def test_refuses_what_cannot_work(self, tmp_path: Path, text: str, message: str) -> None:
        base = '[offer.units.token]\nask_unit_price = "0.000001"\n'
        body = text if "[offer" in text else text + "\n" + base
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, body), environ=ENV).check()

    def test_the_key_is_required_and_never_shown(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=API_KEY_ENV):
            load_config(write(tmp_path, CONFIG), environ={}).check()
        config = load_config(write(tmp_path, CONFIG), environ=ENV)
        assert "fm_abc" not in repr(config)

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read"):
            load_config(tmp_path / "absent.toml", environ=ENV)


class TestTerms:
    def test_ask_from_the_reference_less_the_discount_never_below_the_floor(self) -> None:
        terms = UnitTerms(reference_unit_price=Decimal("0.000001"), discount_bps=2500)
        assert terms.ask_price() == Decimal("0.00000075")
        floored = UnitTerms(
            reference_unit_price=Decimal("0.000001"),
            discount_bps=5000,
            min_unit_price=Decimal("0.0000006"),
        )
        assert floored.ask_price() == Decimal("0.0000006")
        assert UnitTerms(ask_unit_price=Decimal("0.2")).ask_price() == Decimal("0.2")
        assert UnitTerms(min_unit_price=Decimal("0.3")).ask_price() == Decimal("0.3")

    def test_units_are_slots_times_rate_times_window_unless_set(self) -> None:
        terms = UnitTerms(units_per_second=Decimal("0.5"))
        assert terms.units_for(concurrency=3, window_seconds=600) == 900
        assert terms.units_for(concurrency=0, window_seconds=600) == 0
        fixed = UnitTerms(available_units=42)
        assert fixed.units_for(concurrency=3, window_seconds=600) == 42
