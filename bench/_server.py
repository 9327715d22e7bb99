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
