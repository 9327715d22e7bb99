"""A server told to stop (SIGTERM) while bidders follow its job stream: the streams end, so the
server exits instead of waiting for them, and a follower resumes where it was."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from flow_memory.kit.server import STARTUP_FAILURE
from tests.integration.test_server import Deployment

pytestmark = pytest.mark.integration

EXIT_WITHIN_SECONDS = 60  # a guard against a server that never exits, not a timing claim


def test_a_sigterm_ends_open_job_streams_and_the_server_exits(deployment: Deployment) -> None:
    key = deployment.create_key("bidder-one", "inference:sell,inference:read")
    server = deployment.start()
    opened = threading.Barrier(3)
    ended: list[str] = []

    def follow() -> None:
        with (
            httpx.Client(base_url=server.base_url, timeout=None) as client,
            client.stream(
                "GET",
                "/inference/jobs/stream",
                headers={**key.headers, "accept": "text/event-stream"},
            ) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            opened.wait()
            for _ in lines:
                pass  # keep-alives, until the server ends the stream
            ended.append("ended")

    followers = [threading.Thread(target=follow) for _ in range(2)]
    for follower in followers:
        follower.start()
    opened.wait()
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=EXIT_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail("the server kept waiting for its open streams:\n" + deployment.logs())
    for follower in followers:
        follower.join(timeout=EXIT_WITHIN_SECONDS)
    assert ended == ["ended", "ended"], deployment.logs()
    assert code in (0, -signal.SIGTERM), deployment.logs()


def test_a_server_that_cannot_start_exits_with_a_failure_status(deployment: Deployment) -> None:
    """Its port is taken: the process says so by its exit status, so a supervisor restarts it
    rather than taking it for a clean stop."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        deployment.cli("db", "upgrade")
        command = [sys.executable, "-m", "flow_memory.cli", "serve"]
        process = subprocess.run(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=deployment.env,
            cwd=deployment.workdir,
            capture_output=True,
            timeout=EXIT_WITHIN_SECONDS,
        )
    assert process.returncode == STARTUP_FAILURE, process.stdout + process.stderr
