"""Every FLOW_MEMORY_* setting, read in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from flow_memory.kit.scopes import ALL_SCOPES

DEFAULT_DATA_DIR = Path(os.environ.get("FLOW_MEMORY_DATA_DIR", Path.cwd() / "var"))
DEMO_DATABASE = DEFAULT_DATA_DIR / "demo.db"  # `flow-memory demo`'s, unless a URL is set


def _default_database_url() -> str:
    return f"sqlite:///{DEFAULT_DATA_DIR / 'flow_memory.db'}"


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; each field maps to FLOW_MEMORY_<FIELD_NAME_UPPERCASE>."""

    database_url: str = field(default_factory=_default_database_url)
    host: str = "127.0.0.1"
    port: int = 8765
    auto_migrate: bool = True
    log_level: str = "info"

    max_body_bytes: int = 1_048_576
    max_string_length: int = 4_096
    max_list_length: int = 1_000
    # A job's prompt (POST /inference/jobs) and its result's output are long texts: those two
    # routes take strings and bodies up to these bounds instead.
    job_max_text_length: int = 262_144
    job_max_body_bytes: int = 4_194_304

    heartbeat_stale_seconds: int = 90
    catalog_stale_seconds: int = 86_400
    capacity_stale_seconds: int = 900
    pairing_token_ttl_seconds: int = 600
    route_ttl_seconds: int = 300
    # Apply orders, cancels, depth reads and reservations in a process of their own
    # (``flow_memory.market.process``); ``flow-memory serve`` and ``demo`` turn it on.
    market_process: bool = False

    allow_loopback_upstreams: bool = True
    allow_private_upstreams: bool = False

    proxy_connect_timeout_seconds: float = 5.0
    proxy_read_timeout_seconds: float = 120.0
    proxy_max_body_bytes: int = 8_388_608
    proxy_max_answer_bytes: int = 268_435_456
    proxy_route_cache_seconds: int = 10
    # Charge each proxied call's cost to its payer's ledger account (flow_memory.ledger.charges).
    ledger_charges: bool = True
    secrets_file: str = ""
    # The job board's timer (flow_memory.jobs.timer) wakes when a job falls due or a job event
    # arrives, and looks again after at most this many seconds otherwise; 0 runs no timer
    # thread (tests tick it themselves).
    job_timer_seconds: float = 5.0
    # Reputation (flow_memory.reputation): the half-life in days of an outcome's weight; the
    # standing below which an identity may not bid (under the prior, 0.5, so a new identity may;
    # 0.35, as the market simulation showed 0.2 leaves colluders and lazy bidders in,
    # docs/BENCHMARKS.md "Market simulation"); the share of a bidder's stake a bad completion or a
    # no-show pays the requester; the stake that covers each job an identity holds at once: a bid
    # needs an active bid stake of at least this (409 stake_required) and it bounds the jobs held
    # (0: bidding needs no stake and stakes bound nothing).
    reputation_half_life_days: float = 30.0
    reputation_exclusion_threshold: float = 0.35
    stake_slash_share: float = 0.25
    stake_per_job_slot: float = 1.0
    # Hold each identity's group to the jobs it has earned to hold at once, at bid and award
    # (409 capacity_reached); false lets an identity hold any number (load benchmarks).
    earned_capacity_enforced: bool = True
    # The share of posted jobs after which the board also posts a known-answer job drawn from
    # the registered probes (flow_memory.jobs.known_answers); 0 posts none.
    known_answer_share: float = 0.05
    # Judging a submitted result (flow_memory.jobs.judging): how long a requester has to accept
    # or reject it (silence until then accepts; 0 accepts every result as it arrives, the board
    # without review); how long a drawn validator has to answer before it is replaced (a dispute's
    # validators too); how long a winner has to dispute a rejection (0: a rejection is final at
    # once).
    validation_review_seconds: int = 3_600
    validator_answer_seconds: int = 3_600
    dispute_window_seconds: int = 3_600

    # /metrics (``flow_memory.scrape``). On the API's port it needs a key with this scope
    # (inference:admin keys hold every scope). With a metrics port, it is served there instead,
    # with no key, by a listener of its own on metrics_host, and the API's port has none.
    metrics_scope: str = "inference:audit"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0

    def __post_init__(self) -> None:
        if self.metrics_scope not in ALL_SCOPES:
            raise ValueError(
                f"FLOW_MEMORY_METRICS_SCOPE must be one of {', '.join(sorted(ALL_SCOPES))}"
            )
        if not 0 <= self.metrics_port <= 65_535:
            raise ValueError("FLOW_MEMORY_METRICS_PORT must be a port number (0: none)")
        if not 0 <= self.reputation_exclusion_threshold < 0.5:
            raise ValueError("FLOW_MEMORY_REPUTATION_EXCLUSION_THRESHOLD must be in [0, 0.5)")
        if not 0 <= self.known_answer_share <= 0.5:
            raise ValueError("FLOW_MEMORY_KNOWN_ANSWER_SHARE must be in [0, 0.5]")
        if self.stake_per_job_slot < 0:
            raise ValueError("FLOW_MEMORY_STAKE_PER_JOB_SLOT must be 0 or more")
        if not 0 < self.stake_slash_share <= 1:
            raise ValueError("FLOW_MEMORY_STAKE_SLASH_SHARE must be in (0, 1]")
        if self.validation_review_seconds < 0 or self.dispute_window_seconds < 0:
            raise ValueError(
                "FLOW_MEMORY_VALIDATION_REVIEW_SECONDS and FLOW_MEMORY_DISPUTE_WINDOW_SECONDS "
                "must be 0 or more"
            )
        if self.validator_answer_seconds < 1:
            raise ValueError("FLOW_MEMORY_VALIDATOR_ANSWER_SECONDS must be 1 or more")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from FLOW_MEMORY_* variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"FLOW_MEMORY_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw, f.type)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


# Numbers whose 0 turns something off: no stake needed to bid, no known-answer jobs posted.
_ZERO_MEANS_NONE = frozenset({"stake_per_job_slot", "known_answer_share"})


def _coerce(name: str, raw: str, kind: object) -> object:
    if kind in (bool, "bool"):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"FLOW_MEMORY_{name.upper()} must be true or false, got {raw!r}")
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"FLOW_MEMORY_{name.upper()} must be an integer") from None
    if kind in (float, "float"):
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"FLOW_MEMORY_{name.upper()} must be a number") from None
        if name in _ZERO_MEANS_NONE:
            if not value >= 0:
                raise ValueError(f"FLOW_MEMORY_{name.upper()} must be 0 or more")
        elif not value > 0:
            raise ValueError(f"FLOW_MEMORY_{name.upper()} must be greater than zero")
        return value
    return raw
