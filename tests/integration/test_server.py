"""A real server process and the real CLI, on SQLite or (with FLOW_MEMORY_TEST_DATABASE_URL)
PostgreSQL: keys made by the CLI, a provider brought to eligibility over HTTP, then SIGKILL and
a restart on the same database that finds every record again."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import inspect

from flow_memory.keys.service import KEY_CACHE_SECONDS
from flow_memory.kit.db import make_engine
from tests.factories import catalog_body, credential_ref_body, enroll_body

pytestmark = pytest.mark.integration

READY_WITHIN_SECONDS = 60  # a guard against a hung start, not a performance claim
SELLER_SCOPES = "inference:sell,inference:read"
RAW_PROVIDER_KEY = "sk-" + "Zq9Xw8Vu7Ts6Rp5On4Ml3Kj2"


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secret}"}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    log_file: IO[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@dataclass
class Deployment:
    """One database and the processes started on it; everything is stopped in teardown."""

    database_url: str
    workdir: Path
    servers: list[Server] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # more FLOW_MEMORY_* for servers

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_MEMORY_")}
        env.update(
            FLOW_MEMORY_DATABASE_URL=self.database_url,
            FLOW_MEMORY_DATA_DIR=str(self.workdir / "var"),
            # Health is derived from the wall clock here: generous freshness windows keep the
            # route gate independent of how fast the machine runs the test.
            FLOW_MEMORY_HEARTBEAT_STALE_SECONDS="86400",
            FLOW_MEMORY_CAPACITY_STALE_SECONDS="86400",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.settings)
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flow_memory.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def create_key(self, owner: str, scopes: str = SELLER_SCOPES) -> IssuedKey:
        result = self.cli("keys", "create", "--owner", owner, "--scopes", scopes)
        assert result.returncode == 0, result.stderr
        fields = dict(re.findall(r"^(key_id|secret):\s+(\S+)", result.stdout, re.MULTILINE))
        assert fields.keys() == {"key_id", "secret"}, result.stdout
        assert fields["secret"].startswith("fm_")
        self.secrets.append(fields["secret"])
        return IssuedKey(fields["key_id"], fields["secret"])

    def start(self) -> Server:
        port = _free_port()
        index = len(self.servers)
        log_path = self.workdir / f"server-{index}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flow_memory.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=self.env,
            cwd=self.workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        server = Server(process, f"http://127.0.0.1:{port}", log_path, log_file)
        self.servers.append(server)
        _wait_until_ready(server)
        return server

    def logs(self) -> str:
        return "".join(s.log_path.read_text(errors="replace") for s in self.servers)

    def stop_all(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                server.process.terminate()
                try:
                    server.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait(timeout=15)
            server.log_file.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    with server.client() as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"the server exited with {server.process.returncode}:\n"
                    + server.log_path.read_text(errors="replace")
                )
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail("the server did not become ready:\n" + server.log_path.read_text(errors="replace"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is True
    assert body["dry_run_only"] is True and body["funds_moved"] is False
    return body


def test_db_upgrade_creates_the_schema_and_is_idempotent(deployment: Deployment) -> None:
    for _ in range(2):
        result = deployment.cli("db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert "database schema is up to date" in result.stdout
    engine = make_engine(deployment.database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "api_keys", "credential_refs", "providers"} <= tables


def test_keys_made_listed_and_revoked_by_the_cli_govern_the_running_server(
    deployment: Deployment,
) -> None:
    seller = deployment.create_key("provider-team-alpha")
    other = deployment.create_key("agent-research-1", "inference:read")
    server = deployment.start()

    with server.client() as client:
        assert client.get("/inference/credential-refs").status_code == 401
        _ok(client.get("/inference/credential-refs", headers=seller.headers))

        listing = deployment.cli("keys", "list")
        assert listing.returncode == 0, listing.stderr
        line = next(ln for ln in listing.stdout.splitlines() if ln.startswith(seller.key_id))
        assert "owner=provider-team-alpha" in line
        assert "scopes=inference:read,inference:sell" in line
        assert "active" in line
        assert seller.secret[:10] in line  # the preview, and only the preview
        assert other.key_id in listing.stdout
        for secret in deployment.secrets:
            assert secret not in listing.stdout

        revoked = deployment.cli("keys", "revoke", seller.key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout.strip() == f"revoked {seller.key_id}"
        # A server trusts a key it checked for KEY_CACHE_SECONDS; a revoke made by another
        # process (the CLI) takes effect within that period.
        deadline = time.monotonic() + KEY_CACHE_SECONDS + 1
        refused = client.get("/inference/credential-refs", headers=seller.headers)
        while refused.status_code != 401 and time.monotonic() < deadline:
            time.sleep(0.1)
            refused = client.get("/inference/credential-refs", headers=seller.headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthenticated"
        _ok(client.get("/inference/credential-refs", headers=other.headers))

    active = deployment.cli("keys", "list")
    assert seller.key_id not in active.stdout and other.key_id in active.stdout
    everything = deployment.cli("keys", "list", "--all")
    line = next(ln for ln in everything.stdout.splitlines() if ln.startswith(seller.key_id))
    assert "revoked " in line
    for secret in deployment.secrets:
        assert secret not in everything.stdout

    again = deployment.cli("keys", "revoke", seller.key_id)
    assert again.returncode == 1
    assert "already revoked" in again.stderr
    unknown = deployment.cli("keys", "revoke", "key_doesnotexist")
    assert unknown.returncode == 1
    assert "no such key" in unknown.stderr
    bad_scope = deployment.cli("keys", "create", "--owner", "x", "--scopes", "inference:root")
    assert bad_scope.returncode == 1
    assert "inference:root" in bad_scope.stderr and "secret:" not in bad_scope.stdout

    deployment.stop_all()
    logs = deployment.logs()
    assert "GET /inference/credential-refs 401" in logs
    for secret in deployment.secrets:
        assert secret not in logs


def test_the_keys_commands_reach_the_demo_database_with_demo(deployment: Deployment) -> None:
    missing = deployment.cli("keys", "list", "--demo")
    assert missing.returncode == 2 and "start the demo first" in missing.stderr
    demo_db = deployment.workdir / "var" / "demo.db"
    demo_db.parent.mkdir(parents=True, exist_ok=True)
    upgrade = subprocess.run(
        [sys.executable, "-m", "flow_memory.cli", "db", "upgrade"],
        env={**deployment.env, "FLOW_MEMORY_DATABASE_URL": f"sqlite:///{demo_db}"},
        cwd=deployment.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    made = deployment.cli(
        "keys", "create", "--demo", "--owner", "demo-buyer", "--scopes", "inference:read"
    )
    assert made.returncode == 0, made.stderr
    key_id = re.search(r"^key_id:\s+(\S+)", made.stdout, re.MULTILINE)
    assert key_id is not None
    assert key_id.group(1) in deployment.cli("keys", "list", "--demo").stdout
    # Without --demo the command reads FLOW_MEMORY_DATABASE_URL's database, not the demo's.
    assert key_id.group(1) not in deployment.cli("keys", "list").stdout
    assert deployment.cli("keys", "revoke", "--demo", key_id.group(1)).returncode == 0


def test_records_survive_sigkill_and_restart_and_logs_hold_no_secrets(
    deployment: Deployment,
) -> None:
    seller = deployment.create_key("provider-team-alpha")
    server = deployment.start()
    now = datetime.now(UTC)

    with server.client() as client:
        headers = seller.headers
        refused = client.post(
            "/inference/credential-refs",
            headers=headers,
            json=credential_ref_body(credential_ref=RAW_PROVIDER_KEY),
        )
        assert refused.status_code == 422, refused.text
        assert RAW_PROVIDER_KEY not in refused.text

        reference = _ok(
            client.post("/inference/credential-refs", headers=headers, json=credential_ref_body()),
            201,
        )["credential_ref"]
        enrolled = _ok(
            client.post(
                "/inference/providers/enroll",
                headers=headers,
                json=enroll_body(reference["credential_ref_id"]),
            ),
            201,
        )
        provider_id = enrolled["provider"]["provider_id"]
        base = f"/inference/providers/{provider_id}"

        token = _ok(client.post(f"{base}/pairing-token", headers=headers), 201)
        deployment.secrets.append(token["pairing_token"])
        beat = _ok(
            client.post(
                f"{base}/heartbeat",
                headers={**headers, token["pairing_header"]: token["pairing_token"]},
            )
        )
        assert beat["paired"] is True
        _ok(client.post(f"{base}/catalog", headers=headers, json=catalog_body(version=_iso(now))))
        capacity = {
            "capacity_version": _iso(now),
            "inventory": [
                {
                    "model": "flow-memory-orchestrator",
                    "unit_type": "token",
                    "available_units": 2500000,
                    "ask_unit_price": 0.00000075,
                    "min_order_units": 1000,
                    "expires_at": _iso(now + timedelta(days=30)),
                }
            ],
        }
        published = _ok(client.post(f"{base}/capacity", headers=headers, json=capacity))
        assert published["inventory"][0]["ask_unit_price"] == 0.00000075
        before = _ok(client.get(f"{base}/health", headers=headers))
        assert before["route_gate"] == "eligible" and before["status"] == "healthy"

    server.process.send_signal(signal.SIGKILL)
    assert server.process.wait(timeout=30) == -signal.SIGKILL

    restarted = deployment.start()
    with restarted.client() as client:
        after = _ok(client.get(f"{base}/health", headers=headers))
        assert after["provider_id"] == provider_id
        assert after["last_heartbeat_at"] == before["last_heartbeat_at"]
        assert after["credential_ref_status"] == "active"
        assert after["route_gate"] == "eligible", after["reasons"]
        listed = _ok(client.get("/inference/credential-refs", headers=headers))
        assert [r["credential_ref_id"] for r in listed["credential_refs"]] == [
            reference["credential_ref_id"]
        ]
        assert listed["credential_refs"][0]["credential_ref"] == reference["credential_ref"]
        # Pairing survived too: a heartbeat needs no new token.
        _ok(client.post(f"{base}/heartbeat", headers=headers))
        # The spent pairing token stays spent.
        reused = client.post(
            f"{base}/heartbeat",
            headers={**headers, token["pairing_header"]: token["pairing_token"]},
        )
        assert reused.status_code == 409, reused.text
        assert reused.json()["error"]["code"] == "pairing_token_used"

    deployment.stop_all()
    logs = deployment.logs()
    assert "POST /inference/providers/{provider_id}/capacity 200" in logs  # the route template
    assert provider_id not in logs
    assert "GET /readyz 200" in logs
    for secret in [*deployment.secrets, RAW_PROVIDER_KEY]:
        assert secret not in logs
    assert "Bearer" not in logs
