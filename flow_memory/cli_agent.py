"""``flow-memory provider-agent``: the provider agent's flags, laid over its TOML file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``provider-agent`` command and its flags."""
    agent = commands.add_parser(
        "provider-agent",
        help="keep a local SDK-compatible model server enrolled and published (and, with "
        "--jobs, bidding on the job board)",
        description="Enroll a local SDK-compatible model server with Flow Memory, pair it, send "
        "heartbeats, and publish its catalog and capacity until stopped; with --jobs, also bid "
        "on jobs and answer the ones it wins. The API key is read from "
        "FLOW_MEMORY_AGENT_API_KEY; flags override the TOML file.",
    )
    agent.add_argument("--config", type=Path, help="a TOML file (see the README)")
    agent.add_argument("--flow-memory-url", help="default http://127.0.0.1:8765")
    agent.add_argument("--model-server-url", help="default http://127.0.0.1:8080/v1")
    agent.add_argument("--base-url", help="the address Flow Memory calls (default: model server)")
    agent.add_argument("--provider-name")
    agent.add_argument("--credential-ref", help="an opaque secret://… reference")
    agent.add_argument("--credential-ref-id", help="use this existing credential reference")
    agent.add_argument("--state-file", help="where the enrollment is remembered")
    agent.add_argument("--heartbeat-interval", type=float, dest="heartbeat_interval_seconds")
    agent.add_argument("--capacity-ttl", type=int, dest="capacity_ttl_seconds")
    agent.add_argument("--compatible-api")
    agent.add_argument("--context-window", type=int)
    agent.add_argument("--concurrency", type=int, help="requests the model server runs at once")
    agent.add_argument("--unit-type", default="token", help="the unit the price flags apply to")
    agent.add_argument("--price", dest="ask_unit_price", help="ask price per unit, e.g. 0.0000005")
    agent.add_argument("--min-price", dest="min_unit_price", help="never ask below this")
    agent.add_argument("--reference-price", dest="reference_unit_price")
    agent.add_argument("--discount-bps", type=int, help="ask = reference price less this")
    agent.add_argument("--min-order-units", type=int)
    agent.add_argument("--units-per-second", help="units one concurrent slot serves per second")
    jobs = agent.add_argument_group(
        "job board",
        "With --jobs the agent also follows the jobs stream, bids on jobs whose model hint it "
        "serves (per-token price x the job's size, never under the job minimum or over the "
        "job's max_price), runs what it wins on the model server and uploads the result. The "
        "[jobs] table of the TOML file holds the rest (see the README).",
    )
    jobs.add_argument("--jobs", action="store_true", help="bid on the job board too")
    jobs.add_argument("--max-concurrent", type=int, help="jobs bid on or run at once (default 1)")
    jobs.add_argument("--job-token-price", help="price per token of a job's size (default: ask)")
    jobs.add_argument("--job-min-price", help="never bid less than this for a whole job")
    jobs.add_argument("--tokens-per-second", help="the first speed estimate, until measured")
    jobs.add_argument("--bidder-id", help="bid as this identity (default: the key's owner)")
    agent.add_argument("--once", action="store_true", help="do one round and exit")
    agent.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    """Run the provider agent from its configuration file and flags."""
    from flow_memory.agent.config import ConfigError, load_config
    from flow_memory.agent.daemon import run_daemon

    top = (
        "flow_memory_url",
        "model_server_url",
        "base_url",
        "provider_name",
        "credential_ref",
        "credential_ref_id",
        "state_file",
        "heartbeat_interval_seconds",
        "capacity_ttl_seconds",
    )
    overrides: dict[str, Any] = {k: getattr(args, k) for k in top if getattr(args, k) is not None}
    offer: dict[str, Any] = {
        k: getattr(args, k)
        for k in ("compatible_api", "context_window", "concurrency")
        if getattr(args, k) is not None
    }
    terms = {
        k: getattr(args, k)
        for k in (
            "ask_unit_price",
            "min_unit_price",
            "reference_unit_price",
            "discount_bps",
            "min_order_units",
            "units_per_second",
        )
        if getattr(args, k) is not None
    }
    if terms:
        offer["units"] = {args.unit_type: terms}
    if offer:
        overrides["offer"] = offer
    jobs: dict[str, Any] = {
        key: getattr(args, name)
        for key, name in (
            ("max_concurrent", "max_concurrent"),
            ("token_price", "job_token_price"),
            ("min_price", "job_min_price"),
            ("tokens_per_second", "tokens_per_second"),
            ("bidder_id", "bidder_id"),
        )
        if getattr(args, name) is not None
    }
    if args.jobs:
        if args.once:
            print(
                "flow-memory provider-agent: --jobs runs until stopped, not --once", file=sys.stderr
            )
            return 2
        jobs["enabled"] = True
    if jobs:
        overrides["jobs"] = jobs
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Request lines are enough; the client library's own logger would repeat each one.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(args.config, overrides=overrides).check()
    except ConfigError as error:
        print(f"flow-memory provider-agent: {error}", file=sys.stderr)
        return 2
    return run_daemon(config, once=args.once)
