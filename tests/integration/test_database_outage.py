"""A real server whose database goes away under light load and comes back: every answer in
between is 503 database_unavailable with retry-after, the server log holds one line when the
outage begins and one when it ends (no traceback), and answers return to 2xx without a restart.

PostgreSQL is a private cluster this module starts on a free port and stops with
``pg_ctl stop -m fast`` (never the machine's shared one). SQLite's file is made unavailable by
moving it aside and putting a directory at its path: root ignores permissions, but no one can
open a directory as a database; the server's pool drops the connections it holds on the moved
file at their next checkout (``kit.outage.follow_database_file``)."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.factories import credential_ref_body
from tests.integration.test_server import Deployment, IssuedKey, Server

pytestmark = pytest.mark.integration

# Guards against a hang, not performance claims: each wait ends on its event long before.
GUARD_SECONDS = 60.0
REFS = "/inference/credential-refs"
ORDERS = "/inference/market/orders"
SELLER_SCOPES = "inference:sell,inference:read"
BUYER_SCOPES = "inference:buy,inference:read"
UNAVAILABLE_LINE = "database unavailable: "
AVAILABLE_LINE = "database available again after "
READ_MESSAGE = "the database is unavailable"
NOT_APPLIED_MESSAGE = "the database is unavailable: the request was not applied"
MAY_HAVE_APPLIED_MESSAGE = (
    "the database became unavailable while the request was being committed: it may or may not "
    "have been applied"
)
BID = {
    "side": "bid",
    "model": "flow-memory-orchestrator",
    "unit_type": "token",
    "units": 1000,
    "limit_unit_price": 0.0000005,
}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


# -- a private PostgreSQL ----------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    found = next((v for v in versions if (v / "pg_ctl").exists()), None)
    if found is None and shutil.which("pg_ctl"):
        found = Path(str(shutil.which("pg_ctl"))).parent
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PrivatePostgres:
    """A cluster of its own in a temporary directory. PostgreSQL refuses to run as root: as
    root, its programs run as the ``postgres`` user (``runuser``) in a directory it owns."""

    bin: Path
    directory: Path
    port: int
    run_as: list[str]

    @classmethod
    def create(cls) -> PrivatePostgres:
        programs = _postgres_bin()
        if programs is None:
            pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        run_as: list[str] = []
        # mkdtemp, not pytest's tmp_path: the postgres user cannot enter root's 0700 tree.
        directory = Path(tempfile.mkdtemp(prefix="flow-memory-pg-"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(directory)
                pytest.skip("running as root without a postgres user to run PostgreSQL as")
            if shutil.which("runuser") is None:
                shutil.rmtree(directory)
                pytest.skip("running as root without runuser to run PostgreSQL as postgres")
            os.chown(directory, account.pw_uid, account.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        cluster = cls(programs, directory, _free_port(), run_as)
        cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres")
        cluster.start()
        return cluster

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
            "-o", options, "-w", "-t", str(int(GUARD_SECONDS)), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; returns once it has exited."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            [*self.run_as, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS * 2,
            check=False,
        )
        if check and result.returncode != 0:
            log = self.directory / "postgres.log"
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            pytest.fail(f"{program} failed: {result.stdout}{result.stderr}\n{tail}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres.create()
    try:
        yield cluster
    finally:
        cluster.remove()


_databases = itertools.count(1)


@pytest.fixture
def postgres_deployment(postgres: PrivatePostgres, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(postgres.create_database(f"outage_{next(_databases)}"), tmp_path)
    migrated = deployed.cli("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    try:
        yield deployed
    finally:
        deployed.stop_all()


@pytest.fixture
def sqlite_deployment(tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(f"sqlite:///{tmp_path / 'flow_memory.db'}", tmp_path)
    try:
        yield deployed
    finally:
        deployed.stop_all()


class UnopenableFile:
    """The SQLite database moved aside (with its -wal and -shm files) and a directory put at
    its path; ``restore`` undoes it, so nothing written before is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.moved: list[tuple[Path, Path]] = []

    def take_away(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                target = source.with_name(source.name + ".away")
                source.rename(target)
                self.moved.append((source, target))
        self.path.mkdir()

    def restore(self) -> None:
        self.path.rmdir()
        for source, target in self.moved:
            target.rename(source)
        self.moved = []


# -- light load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    phase: str
    method: str
    path: str
    written: str | None  # the credential reference a write asked for
    status: int
    code: str | None
    message: str | None
    retry_after: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def unavailable(self) -> bool:
        return (
            self.status == 503
            and self.code == "database_unavailable"
            and self.retry_after is not None
            and self.retry_after.isdigit()
            and 0 < int(self.retry_after) <= 10
        )


class Load:
    """A few reads and writes a second, one after another, each answer kept with the phase
    it was sent in."""

    def __init__(self, server: Server, key: IssuedKey) -> None:
        self.client = httpx.Client(base_url=server.base_url, timeout=GUARD_SECONDS)
        self.headers = key.headers
        self.answers: list[Answer] = []
        self._writes = itertools.count(1)

    def close(self) -> None:
        self.client.close()

    def round(self, phase: str) -> list[Answer]:
        """One read and one write (a new credential reference); a short pause after each."""
        reference = f"secret://inference/outage-{next(self._writes)}"
        return [self.send(phase, "GET", REFS), self.send(phase, "POST", REFS, reference)]

    def send(self, phase: str, method: str, path: str, reference: str | None = None) -> Answer:
        body = None if reference is None else credential_ref_body(credential_ref=reference)
        response = self.client.request(method, path, headers=self.headers, json=body)
        error = response.json().get("error") if response.status_code >= 400 else None
        answer = Answer(
            phase,
            method,
            path,
            reference,
            response.status_code,
            error.get("code") if error else None,
            error.get("message") if error else None,
            response.headers.get("retry-after"),
        )
        self.answers.append(answer)
        time.sleep(0.1)
        return answer

    def in_phase(self, phase: str) -> list[Answer]:
        return [a for a in self.answers if a.phase == phase]


def outage_lines(logs: str) -> tuple[list[str], list[str]]:
    lines = logs.splitlines()
    return (
        [line for line in lines if UNAVAILABLE_LINE in line],
        [line for line in lines if AVAILABLE_LINE in line],
    )


def run_outage(
    deployment: Deployment, *, take_down: Callable[[], None], bring_back: Callable[[], None]
) -> None:
    """Light load before, during and after an outage; asserts what every answer was."""
    key = deployment.create_key("provider-team-alpha", SELLER_SCOPES)
    server = deployment.start()
    load = Load(server, key)
    try:
        for _ in range(5):
            load.round("before")
        take_down()
        # The server notices with the first request it sends the database.
        deadline = time.monotonic() + GUARD_SECONDS
        while not outage_lines(deployment.logs())[0]:
            assert time.monotonic() < deadline, "the outage was never logged"
            load.round("outage")
        for _ in range(15):
            load.round("outage")
        bring_back()
        # Answers come back without restarting the server: wait for the first good round.
        wait_for(lambda: all(a.ok for a in load.round("recovering")), "answers to return to 2xx")
        for _ in range(5):
            load.round("after")
        wait_for(lambda: bool(outage_lines(deployment.logs())[1]), "the end to be logged")
        listed = load.client.get(REFS, headers=key.headers, params={"limit": 500})
    finally:
        load.close()
    assert all(a.ok for a in load.in_phase("before")), load.in_phase("before")
    during = load.in_phase("outage")
    assert len(during) >= 30
    assert all(a.unavailable for a in during), [a for a in during if not a.unavailable]
    assert {a.message for a in during if a.method == "GET"} == {READ_MESSAGE}
    # Each write failed before its transaction could commit: it says it was not applied.
    assert {a.message for a in during if a.method == "POST"} == {NOT_APPLIED_MESSAGE}
    recovering = load.in_phase("recovering")
    assert all(a.ok or a.unavailable for a in recovering), recovering
    assert all(a.ok for a in load.in_phase("after")), load.in_phase("after")
    # Every write acknowledged is there, and none refused as not applied is.
    assert listed.status_code == 200, listed.text
    stored = {r["credential_ref"] for r in listed.json()["credential_refs"]}
    assert stored == {a.written for a in load.answers if a.written and a.ok}

    deployment.stop_all()
    logs = deployment.logs()
    unavailable, available = outage_lines(logs)
    assert len(unavailable) == 1, unavailable
    assert len(available) == 1, available
    assert "failed meanwhile" in available[0]
    assert "Traceback" not in logs
    assert "internal_error" not in logs
    assert f"POST {REFS} 503" in logs and f"POST {REFS} 201" in logs


class TestPostgreSQLStopped:
    def test_answers_are_503_while_it_is_down_and_2xx_once_it_is_back(
        self, postgres: PrivatePostgres, postgres_deployment: Deployment
    ) -> None:
        run_outage(postgres_deployment, take_down=postgres.stop, bring_back=postgres.start)

    def test_market_requests_answer_503_while_it_is_down(
        self, postgres: PrivatePostgres, postgres_deployment: Deployment
    ) -> None:
        buyer = postgres_deployment.create_key("agent-research-1", BUYER_SCOPES)
        server = postgres_deployment.start()
        depth = "/inference/market/depth?model=flow-memory-orchestrator&unit_type=token"
        with server.client() as client:
            assert client.post(ORDERS, headers=buyer.headers, json=BID).is_success
            assert client.get(depth, headers=buyer.headers).is_success
            postgres.stop()
            try:
                during = [
                    client.post(ORDERS, headers=buyer.headers, json=BID),
                    client.get(depth, headers=buyer.headers),
                ]
            finally:
                postgres.start()
            wait_for(
                lambda: client.post(ORDERS, headers=buyer.headers, json=BID).is_success,
                "orders to be accepted again",
            )
        postgres_deployment.stop_all()
        for answer in during:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "database_unavailable"
            assert answer.headers["retry-after"].isdigit()
        assert during[0].json()["error"]["message"] in {
            NOT_APPLIED_MESSAGE,
            MAY_HAVE_APPLIED_MESSAGE,
        }
        assert during[1].json()["error"]["message"] == READ_MESSAGE
        assert "Traceback" not in postgres_deployment.logs()


class TestSQLiteFileUnavailable:
    def test_answers_are_503_while_it_cannot_be_opened_and_2xx_once_it_is_back(
        self, sqlite_deployment: Deployment, tmp_path: Path
    ) -> None:
        database = UnopenableFile(tmp_path / "flow_memory.db")
        run_outage(sqlite_deployment, take_down=database.take_away, bring_back=database.restore)
