"""examples/deployment_royalties_demo.py publishes a model and an agent, deploys them, calls the
deployment with the official SDK client (and, without one, as plain HTTP) against a live server
and a scripted upstream (a test double of a provider's model server), and prints the royalties
the publisher earned."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import Deployment

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deployment_royalties_demo.py"
SERVED = "flow-memory-example-chat"
OFFICIAL_SDK_CLIENT = "openai:OpenAI"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("sdk_client", [OFFICIAL_SDK_CLIENT, None], ids=["sdk", "http"])
def test_the_example_deploys_calls_and_reads_the_royalties(
    deployment: Deployment, sdk_client: str | None
) -> None:
    publisher = deployment.create_key("example-pub", "inference:publish,inference:read")
    seller = deployment.create_key("example-seller", "inference:sell,inference:read")
    buyer = deployment.create_key("example-buyer", "inference:buy,inference:read,inference:proxy")
    server = deployment.start()
    sdk = ("--sdk-client", sdk_client) if sdk_client else ()
    with ScriptedUpstream(models=[SERVED], reply="Hello from a provider.") as upstream:
        result = _run(
            *sdk,
            "--base-url",
            server.base_url,
            "--publisher-id",
            "example-pub",
            "--publisher-key",
            publisher.secret,
            "--seller-key",
            seller.secret,
            "--buyer-key",
            buyer.secret,
            "--model-server-url",
            upstream.base_url,
        )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for expected in (
        "POST /inference/registry/models -> 201",
        "POST /inference/deployments -> 201",
        "call it as: dep/example-buyer/example-",
        "serving now: True",
        "pinned agent: example-pub/example-helper@1.0.0, royalty 500 bps",
        "listed in /v1/models: True",
        "answer: Hello from a provider.",
        "funds_moved: false",
        "Done. Every amount above is a dry-run USD_CREDIT ledger record",
    ):
        assert expected in output, output
    assert ("with the SDK client" in output) == (sdk_client is not None), output
    for secret in (publisher.secret, seller.secret, buyer.secret):
        assert secret not in output
    # Every call reached the model server under its served name, with the agent's prompt.
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"] * 2
    for recorded in upstream.requests:
        assert recorded.body["model"] == SERVED
        assert recorded.body["messages"][0] == {
            "role": "system",
            "content": "Answer in one sentence.",
        }

    # The report the example printed is the two calls' arithmetic, to the last digit.
    costs = [Decimal(c) for c in re.findall(r"^    cost: (\S+)$", output, re.MULTILINE)]
    assert len(costs) == 2 and all(c > 0 for c in costs)
    rows = dict(
        re.findall(
            r"^    \S+ (agent|model) \S+: 2 calls, cost \S+, royalty (\S+) \(\d+ bps\)$",
            output,
            re.MULTILINE,
        )
    )
    assert Decimal(rows["agent"]) == sum(costs) * 500 / 10_000
    assert Decimal(rows["model"]) == sum(costs) * 250 / 10_000


def test_the_example_explains_an_unreachable_server() -> None:
    result = _run(
        "--base-url", "http://127.0.0.1:9", "--publisher-id", "p", "--publisher-key", "fm_x",
        "--seller-key", "fm_y", "--buyer-key", "fm_z", "--model-server-url", "http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert result.returncode == 2
    assert "could not reach Flow Memory" in result.stderr
