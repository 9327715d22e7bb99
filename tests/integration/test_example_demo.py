"""examples/inference_market_demo.py runs its whole flow against a live server and a scripted
upstream (a test double of a provider's model server) and prints every step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import Deployment

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inference_market_demo.py"


def test_the_example_runs_the_whole_flow_against_a_live_server(deployment: Deployment) -> None:
    seller = deployment.create_key("example-seller", "inference:sell,inference:read")
    buyer = deployment.create_key(
        "example-buyer", "inference:buy,inference:plan,inference:read,inference:proxy"
    )
    server = deployment.start()
    with ScriptedUpstream(models=["flow-memory-demo-chat"], reply="Hello from a provider.") as up:
        result = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--base-url",
                server.base_url,
                "--seller-key",
                seller.secret,
                "--buyer-key",
                buyer.secret,
                "--model-server-url",
                up.base_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for expected in (
        "route_gate: eligible",
        "decision: selected",
        "status: disabled_preview_only, execution_enabled=False",
        "POST /v1/chat/completions -> 200",
        "answer: Hello from a provider.",
        "dry_run_only=true, funds_moved=false",
        "Done. Every record above is a dry-run record",
    ):
        assert expected in output, output
    assert seller.secret not in output and buyer.secret not in output
    assert len(up.requests) == 1 and up.requests[0].path == "/v1/chat/completions"


def test_the_example_explains_an_unreachable_server() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--base-url", "http://127.0.0.1:9",
         "--seller-key", "fm_x", "--buyer-key", "fm_y"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "could not reach Flow Memory" in result.stderr
