"""`flow-memory demo` with the local-model extra: the first SDK call gets a real answer from the
local model server, through Flow Memory, with the agent-published provider named in it. The
seeded listings, with no model server behind them, are never routed to, and their seeded fills
(marked as demo data) give the usage charts something to show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from flow_memory.agent import local_model
from flow_memory.demo import ROLES
from tests.integration.test_server import _free_port

pytestmark = pytest.mark.e2e

READY_SECONDS = 300  # the model server loads on shared cores; a guard, not a claim


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    missing = local_model.local_model_missing()
    if missing is not None:
        if os.environ.get("FLOW_MEMORY_REQUIRE_LOCAL_MODEL") == "1":
            pytest.fail(f"the local model server is required here: {missing}")
        pytest.skip(missing)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_MEMORY_")}
    env.update(FLOW_MEMORY_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    out = tmp_path / "demo.out"
    with out.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flow_memory.cli", "demo", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", out, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_the_first_sdk_call_gets_a_real_answer(
    demo: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base, out, process = demo
    deadline = time.monotonic() + READY_SECONDS
    buyer = provider_id = None
    while time.monotonic() < deadline and provider_id is None:
        assert process.poll() is None, out.read_text(errors="replace")
        text = out.read_text(errors="replace")
        found = re.search(r"^\s+buyer\s+(fm_\S+)", text, re.MULTILINE)
        buyer = found.group(1) if found else None
        if buyer:
            try:
                quoted = httpx.post(
                    f"{base}/inference/quote",
                    headers={"authorization": f"Bearer {buyer}"},
                    json={"model": local_model.CHAT_MODEL, "estimated_units": 100},
                    timeout=10,
                )
                if quoted.status_code == 200 and quoted.json()["quotes"]:
                    provider_id = quoted.json()["quotes"][0]["provider_id"]
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    assert buyer and provider_id, out.read_text(errors="replace")

    with openai.OpenAI(base_url=f"{base}/v1", api_key=buyer, max_retries=0, timeout=120) as client:
        answer = client.chat.completions.create(
            model=local_model.CHAT_MODEL,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=16,
        )
    assert answer.choices[0].message.content, answer
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    metadata = (answer.model_extra or {})["flow_memory"]
    assert metadata["provider_id"] == provider_id

    text = out.read_text(errors="replace")
    assert "enrollment created" in text and "capacity published" in text

    # A model only the seeded listings offer is refused before any call leaves Flow Memory.
    listed_only = httpx.post(
        f"{base}/v1/chat/completions",
        headers={"authorization": f"Bearer {buyer}"},
        json={"model": "flow-memory-orchestrator", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert listed_only.json()["error"]["code"] == "no_valid_inference_route", listed_only.text
    assert "source_disabled" in listed_only.json()["error"]["message"]

    # The registry's example model lists the demo listings that sell it: none serves now.
    seller = ROLES["provider"][0]
    page = httpx.get(
        f"{base}/inference/registry/models/{seller}/orchestrator-8b",
        headers={"authorization": f"Bearer {buyer}"},
        timeout=30,
    ).json()
    assert page["served_by"], page
    assert {s["model"] for s in page["served_by"]} == {"flow-memory-orchestrator"}
    assert not any(s["serving_now"] for s in page["served_by"]) and page["depth"] == []

    # The local provider's agent bids on a chat job by itself and answers it; the buyer, who
    # judges the result (requester mode), accepts it and the agent is paid.
    posted = httpx.post(
        f"{base}/inference/jobs",
        headers={"authorization": f"Bearer {buyer}"},
        json={
            "request": {"model_hint": "chat", "prompt": "Name one colour.", "max_tokens": 8},
            "economics": {"max_price": "0.01", "payment_mode": "fixed"},
            "bid_window_seconds": 600,
            "deadline_seconds": 600,
        },
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    job_id = posted.json()["job"]["job_id"]
    job: dict[str, object] = {}
    answered_by = time.monotonic() + READY_SECONDS  # a guard, not a claim
    while time.monotonic() < answered_by and job.get("status") != "submitted":
        assert process.poll() is None, out.read_text(errors="replace")
        job = httpx.get(
            f"{base}/inference/jobs/{job_id}",
            headers={"authorization": f"Bearer {buyer}"},
            timeout=30,
        ).json()["job"]
        if job["status"] != "submitted":
            time.sleep(0.5)
    assert job.get("status") == "submitted", (job, out.read_text(errors="replace"))
    accepted = httpx.post(
        f"{base}/inference/jobs/{job_id}/verdicts",
        headers={"authorization": f"Bearer {buyer}"},
        json={"decision": "accept", "score": 0.9, "reason": "a colour was named"},
        timeout=30,
    )
    assert accepted.status_code == 201, accepted.text
    job = httpx.get(
        f"{base}/inference/jobs/{job_id}",
        headers={"authorization": f"Bearer {buyer}"},
        timeout=30,
    ).json()["job"]
    assert job["status"] == "completed", job

    usage = httpx.get(
        f"{base}/inference/analytics/usage",
        params={"workspace_id": "demo-seed"},
        headers={"authorization": f"Bearer {buyer}"},
        timeout=30,
    ).json()
    seeded = [r for r in usage["records"] if r["workspace_id"] == "demo-seed"]
    assert len(seeded) >= 3 and {r["source"] for r in seeded} == {"market_fill"}

    # Stopping the demo stops its model server too.
    served = re.search(r"served at (http://127\.0\.0\.1:\d+/v1)", text)
    assert served, text
    process.terminate()
    assert process.wait(timeout=60) == 0, out.read_text(errors="replace")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.group(1)}/models", timeout=5)
