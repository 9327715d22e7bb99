"""The provider agent's configuration: a TOML file, then command-line overrides."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

API_KEY_ENV = "FLOW_MEMORY_AGENT_API_KEY"
UNIT_TYPES = ("token", "request", "second", "image")
COMPATIBLE_APIS = ("chat_responses", "chat_completions", "responses", "messages", "embeddings")
TOOL_CALLING = ("none", "metadata_only", "native")
JOB_CLASSES = ("codegen", "chat", "analysis", "any")
JOB_QUALITIES = ("standard", "high", "expert")
BPS = Decimal(10_000)


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the setting."""


@dataclass(frozen=True)
class UnitTerms:
    """How one unit type of one model is sold."""

    ask_unit_price: Decimal | None = None
    min_unit_price: Decimal | None = None
    reference_unit_price: Decimal | None = None
    discount_bps: int = 0
    min_order_units: int = 1
    units_per_second: Decimal = Decimal(20)
    available_units: int | None = None

    def ask_price(self) -> Decimal | None:
        """The configured ask, or the reference less the discount; never below the floor."""
        price = self.ask_unit_price
        if price is None and self.reference_unit_price is not None:
            price = self.reference_unit_price * (BPS - self.discount_bps) / BPS
        if price is None:
            return self.min_unit_price
        if self.min_unit_price is not None and price < self.min_unit_price:
            return self.min_unit_price
        return price

    def units_for(self, *, concurrency: int, window_seconds: int) -> int:
        """Units on offer for one capacity window: slots x rate x window, unless set outright."""
        if self.available_units is not None:
            return self.available_units
        return int(concurrency * self.units_per_second * window_seconds)


@dataclass(frozen=True)
class Offer:
    """What the agent publishes for a model: catalog facts and capacity terms per unit type."""

    enabled: bool = True
    compatible_api: str = "chat_completions"
    context_window: int | None = None
    tool_calling: str = "none"
    concurrency: int = 1
    units: Mapping[str, UnitTerms] = field(default_factory=lambda: {"token": UnitTerms()})

    @property
    def unit_types(self) -> list[str]:
        return list(self.units)


@dataclass(frozen=True)
class JobsConfig:
    """How the agent bids on the job board (the ``[jobs]`` table); off unless enabled."""

    enabled: bool = False
    bidder_id: str | None = None  # None: the key's owner
    token_price: Decimal | None = None  # None: each model's token ask price
    min_price: Decimal = Decimal(0)
    max_concurrent: int = 1
    tokens_per_second: float = 20.0  # the first estimate, replaced by measured speed
    deadline_safety: float = 1.5
    models: tuple[str, ...] = ()  # empty: every model the server lists
    classes: Mapping[str, str] = field(default_factory=dict)
    qualities: tuple[str, ...] = JOB_QUALITIES
    stream_idle_seconds: float = 60.0
    # Credits staked to bid when the agent starts and its bidder has no active bid stake (a
    # server that requires one refuses bids without it); 0: the agent stakes nothing.
    stake: Decimal = Decimal(0)

    def check(self) -> None:
        """Refuse settings that cannot work, naming the setting."""
        if self.max_concurrent < 1:
            raise ConfigError("jobs.max_concurrent must be at least 1")
        if self.token_price is not None and self.token_price <= 0:
            raise ConfigError("jobs.token_price must be positive")
        if self.min_price < 0:
            raise ConfigError("jobs.min_price must not be negative")
        if self.stake < 0:
            raise ConfigError("jobs.stake must not be negative")
        if self.tokens_per_second <= 0:
            raise ConfigError("jobs.tokens_per_second must be positive")
        if self.deadline_safety < 1:
            raise ConfigError("jobs.deadline_safety must be at least 1")
        if self.stream_idle_seconds <= 0:
            raise ConfigError("jobs.stream_idle_seconds must be positive")
        for name in self.classes:
            if name not in JOB_CLASSES:
                raise ConfigError(f"jobs.classes: {name} is not one of {', '.join(JOB_CLASSES)}")
        for quality in self.qualities:
            if quality not in JOB_QUALITIES:
                raise ConfigError(
                    f"jobs.qualities: {quality} is not one of {', '.join(JOB_QUALITIES)}"
                )


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs; the API key comes from the environment only."""

    flow_memory_url: str = "http://127.0.0.1:8765"
    model_server_url: str = "http://127.0.0.1:8080/v1"
    base_url: str | None = None
    api_key: str = field(default="", repr=False)
    provider_name: str = "local-model-server"
    workspace_id: str = "workspace-default"
    credential_ref: str = "secret://inference/local-model-server"
    credential_ref_id: str | None = None
    state_file: Path | None = None
    heartbeat_interval_seconds: float = 30.0
    capacity_ttl_seconds: int = 600
    catalog_refresh_seconds: float = 3600.0
    capacity_refresh_seconds: float = 300.0
    default_context_window: int = 4096
    request_timeout_seconds: float = 10.0
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 60.0
    withdraw_on_stop: bool = True
    offer: Offer = field(default_factory=Offer)
    models: Mapping[str, Offer] = field(default_factory=dict)
    jobs: JobsConfig = field(default_factory=JobsConfig)

    @property
    def upstream_base_url(self) -> str:
        """The address Flow Memory calls; the model server's own address unless set."""
        return (self.base_url or self.model_server_url).rstrip("/")

    def offer_for(self, model: str) -> Offer:
        return self.models.get(model, self.offer)

    def check(self) -> AgentConfig:
        """Refuse settings that cannot work, naming the setting."""
        if not self.api_key:
            raise ConfigError(f"set {API_KEY_ENV} to a Flow Memory key with inference:sell")
        if not self.credential_ref.startswith("secret://"):
            raise ConfigError("credential_ref must be an opaque secret://… reference")
        if self.heartbeat_interval_seconds <= 0:
            raise ConfigError("heartbeat_interval_seconds must be positive")
        if self.capacity_ttl_seconds < 10:
            raise ConfigError("capacity_ttl_seconds must be at least 10")
        for name, offer in [("offer", self.offer), *self.models.items()]:
            _check_offer(name, offer)
        self.jobs.check()
        return self


def _check_offer(name: str, offer: Offer) -> None:
    if not offer.enabled:
        return
    if offer.compatible_api not in COMPATIBLE_APIS:
        raise ConfigError(f"{name}: compatible_api must be one of {', '.join(COMPATIBLE_APIS)}")
    if offer.tool_calling not in TOOL_CALLING:
        raise ConfigError(f"{name}: tool_calling must be one of {', '.join(TOOL_CALLING)}")
    if offer.concurrency < 0:
        raise ConfigError(f"{name}: concurrency must not be negative")
    if not offer.units:
        raise ConfigError(f"{name}: needs at least one unit type")
    for unit, terms in offer.units.items():
        where = f"{name}.units.{unit}"
        if unit not in UNIT_TYPES:
            raise ConfigError(f"{where}: unit type must be one of {', '.join(UNIT_TYPES)}")
        price = terms.ask_price()
        if price is None or price <= 0:
            raise ConfigError(
                f"{where}: set ask_unit_price, or reference_unit_price with discount_bps"
            )
        ask, floor = terms.ask_unit_price, terms.min_unit_price
        if ask is not None and floor is not None and ask < floor:
            raise ConfigError(f"{where}: ask_unit_price is below min_unit_price")
        if terms.min_order_units < 1:
            raise ConfigError(f"{where}: min_order_units must be at least 1")
        if not 0 <= terms.discount_bps < 10_000:
            raise ConfigError(f"{where}: discount_bps must be between 0 and 9999")


def _decimal(where: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a number")
    try:
        # Floats go through their shortest text so 0.0000005 stays exactly that.
        return Decimal(str(value)) if isinstance(value, int | float | str) else Decimal(value)
    except (InvalidOperation, TypeError):
        raise ConfigError(f"{where} must be a decimal number") from None


def _int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer")
    return value


def _terms(where: str, raw: Mapping[str, Any], base: UnitTerms) -> UnitTerms:
    known = {
        "ask_unit_price",
        "min_unit_price",
        "reference_unit_price",
        "discount_bps",
        "min_order_units",
        "units_per_second",
        "available_units",
    }
    _no_unknown(where, raw, known)
    changes: dict[str, Any] = {}
    for key in ("ask_unit_price", "min_unit_price", "reference_unit_price", "units_per_second"):
        if key in raw:
            changes[key] = _decimal(f"{where}.{key}", raw[key])
    for key in ("discount_bps", "min_order_units", "available_units"):
        if key in raw:
            changes[key] = _int(f"{where}.{key}", raw[key])
    return replace(base, **changes)


def _offer(where: str, raw: Mapping[str, Any], base: Offer, *, fresh_units: bool = False) -> Offer:
    """An offer over `base`; with `fresh_units`, a units table starts from defaults, not base."""
    known = {"enabled", "compatible_api", "context_window", "tool_calling", "concurrency", "units"}
    _no_unknown(where, raw, known)
    changes: dict[str, Any] = {}
    for key in ("compatible_api", "tool_calling"):
        if key in raw:
            changes[key] = str(raw[key])
    for key in ("context_window", "concurrency"):
        if key in raw:
            changes[key] = _int(f"{where}.{key}", raw[key])
    if "enabled" in raw:
        changes["enabled"] = bool(raw["enabled"])
    if "units" in raw:
        units_raw = raw["units"]
        if not isinstance(units_raw, Mapping) or not units_raw:
            raise ConfigError(f"{where}.units must be a table of unit types")
        changes["units"] = {
            unit: _terms(
                f"{where}.units.{unit}",
                terms,
                UnitTerms() if fresh_units else base.units.get(unit, UnitTerms()),
            )
            for unit, terms in units_raw.items()
        }
    return replace(base, **changes)


def _jobs(raw: Any, base: JobsConfig) -> JobsConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("jobs must be a table")
    known = {f.name for f in fields(JobsConfig)}
    _no_unknown("jobs", raw, known)
    changes: dict[str, Any] = {}
    if "enabled" in raw:
        changes["enabled"] = bool(raw["enabled"])
    if raw.get("bidder_id") is not None:
        changes["bidder_id"] = str(raw["bidder_id"])
    for key in ("token_price", "min_price", "stake"):
        if key in raw:
            changes[key] = _decimal(f"jobs.{key}", raw[key])
    if "max_concurrent" in raw:
        changes["max_concurrent"] = _int("jobs.max_concurrent", raw["max_concurrent"])
    for key in ("tokens_per_second", "deadline_safety", "stream_idle_seconds"):
        if key in raw:
            changes[key] = float(_decimal(f"jobs.{key}", raw[key]))
    for key in ("models", "qualities"):
        if key in raw:
            if not isinstance(raw[key], list | tuple):
                raise ConfigError(f"jobs.{key} must be a list")
            changes[key] = tuple(str(item) for item in raw[key])
    if "classes" in raw:
        if not isinstance(raw["classes"], Mapping):
            raise ConfigError("jobs.classes must be a table of class = model")
        changes["classes"] = {str(k): str(v) for k, v in raw["classes"].items()}
    return replace(base, **changes)


def _no_unknown(where: str, raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {', '.join(unknown)}")


_TOP_LEVEL_STR = {
    "flow_memory_url",
    "model_server_url",
    "base_url",
    "provider_name",
    "workspace_id",
    "credential_ref",
    "credential_ref_id",
}
_TOP_LEVEL_FLOAT = {
    "heartbeat_interval_seconds",
    "catalog_refresh_seconds",
    "capacity_refresh_seconds",
    "request_timeout_seconds",
    "backoff_base_seconds",
    "backoff_cap_seconds",
}
_TOP_LEVEL_INT = {"capacity_ttl_seconds", "default_context_window"}


def config_from_mapping(raw: Mapping[str, Any], *, base: AgentConfig | None = None) -> AgentConfig:
    """Build a configuration from parsed TOML (or any mapping of the same shape)."""
    config = base or AgentConfig()
    if "api_key" in raw:
        raise ConfigError(f"api_key is not read from files; set {API_KEY_ENV}")
    known = _TOP_LEVEL_STR | _TOP_LEVEL_FLOAT | _TOP_LEVEL_INT
    _no_unknown(
        "config", raw, known | {"state_file", "withdraw_on_stop", "offer", "models", "jobs"}
    )
    changes: dict[str, Any] = {}
    for key in _TOP_LEVEL_STR & raw.keys():
        changes[key] = str(raw[key])
    for key in _TOP_LEVEL_FLOAT & raw.keys():
        changes[key] = float(_decimal(key, raw[key]))
    for key in _TOP_LEVEL_INT & raw.keys():
        changes[key] = _int(key, raw[key])
    if "state_file" in raw:
        changes["state_file"] = Path(str(raw["state_file"])).expanduser()
    if "withdraw_on_stop" in raw:
        changes["withdraw_on_stop"] = bool(raw["withdraw_on_stop"])
    offer = _offer("offer", raw.get("offer", {}), config.offer)
    changes["offer"] = offer
    models = dict(config.models)
    for model, model_raw in raw.get("models", {}).items():
        # A model inherits the [offer] defaults; its own units table prices it from scratch.
        models[model] = _offer(
            f"models.{model}", model_raw, models.get(model, offer), fresh_units=True
        )
    changes["models"] = models
    if "jobs" in raw:
        changes["jobs"] = _jobs(raw["jobs"], config.jobs)
    return replace(config, **changes)


def load_config(
    path: Path | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Read the TOML file (if any), apply overrides of the same shape, and the key from the env."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
    merged = _merge(raw, dict(overrides or {}))
    config = config_from_mapping(merged)
    env = os.environ if environ is None else environ
    return replace(config, api_key=env.get(API_KEY_ENV, "").strip())


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged
