"""Start a real Flow Memory server process for benchmarks, with keys made by the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    database_url: str
    env: dict[str, str]
    pid: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_key(env: dict[str, str], owner: str, scopes: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flow_memory.cli",
            "keys",
            "create",
            "--owner",
            owner,
            "--scopes",
            scopes,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("secret:"):
            return line.split()[1]
    raise RuntimeError("no secret in keys create output")


@contextmanager
def running_server(
    database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        port = free_port()
        env = {
            **os.environ,
            "FLOW_MEMORY_DATABASE_URL": url,
            "FLOW_MEMORY_PORT": str(port),
            "FLOW_MEMORY_LOG_LEVEL": os.environ.get("FLOW_MEMORY_LOG_LEVEL", "warning"),
            **(extra_env or {}),
        }
        subprocess.run(
            [sys.executable, "-m", "flow_memory.cli", "db", "upgrade"],
            env=env,
            check=True,
            capture_output=True,
        )
        log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "flow_memory.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("server did not become ready")
            yield RunningServer(base, url, env, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
            if os.environ.get("BENCH_SHOW_SERVER_LOG"):
                print((Path(tmp) / "server.log").read_text()[-2000:])


def onboard_provider(
    client: httpx.Client,
    seller: str,
    *,
    model: str,
    base_url: str,
    available_units: int,
    ask_unit_price: float,
    reference_unit_price: float | None = None,
    name: str = "Bench Provider",
) -> str:
    """Enroll, pair and beat a provider, publish its catalog (one model, token units) and its
    capacity, through the API; returns its id."""
    client.headers["authorization"] = f"Bearer {seller}"
    ref = client.post(
        "/inference/credential-refs",
        json={"credential_ref": "secret://inference/bench", "display_name": "bench"},
    ).json()["credential_ref"]
    provider = client.post(
        "/inference/providers/enroll",
        json={
            "provider_name": name,
            "base_url": base_url,
            "credential_ref_id": ref["credential_ref_id"],
            "supported_units": ["token"],
        },
    ).json()["provider"]
    pid = str(provider["provider_id"])
    token = client.post(f"/inference/providers/{pid}/pairing-token").json()["pairing_token"]
    client.post(
        f"/inference/providers/{pid}/heartbeat", headers={"x-flow-memory-pairing-token": token}
    ).raise_for_status()
    entry: dict[str, object] = {
        "model": model,
        "compatible_api": "chat_completions",
        "unit_types": ["token"],
        "context_window": 8192,
    }
    if reference_unit_price is not None:
        entry["reference_unit_prices"] = {"token": reference_unit_price}
    client.post(
        f"/inference/providers/{pid}/catalog",
        json={"catalog_version": "2026-01-01T00:00:00Z", "models": [entry]},
    ).raise_for_status()
    client.post(
        f"/inference/providers/{pid}/capacity",
        json={
            "capacity_version": "2026-01-01T00:00:00Z",
            "inventory": [
                {
                    "model": model,
                    "unit_type": "token",
                    "available_units": available_units,
                    "ask_unit_price": ask_unit_price,
                    "expires_at": "2099-01-01T00:00:00Z",
                }
            ],
        },
    ).raise_for_status()
    return pid
