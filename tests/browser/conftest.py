"""The dashboard in Debian's headless Chromium, driven by Playwright, against a real server
process. Without /usr/bin/chromium the browser tests skip, unless FLOW_MEMORY_REQUIRE_BROWSER=1
(as in CI), which turns a missing browser into a failure."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import clear_tables
from tests.doubles.scripted_upstream import ScriptedUpstream
from tests.integration.test_server import Deployment, IssuedKey, Server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
ALL_SCOPES = (
    "inference:read,inference:sell,inference:buy,inference:plan,"
    "inference:audit,inference:admin,inference:proxy,inference:validate,inference:publish"
)
UPSTREAM_SECRET = "planted-dashboard-upstream-secret-5e1f"
UPSTREAM_MODEL = "dashboard-chat"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
GUARD_TIMEOUT_MS = 20_000  # a guard against a hung page, not a performance claim
THIS_MACHINE = frozenset({"127.0.0.1", "localhost", "::1"})


def _browser_missing(reason: str) -> None:
    if os.environ.get("FLOW_MEMORY_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} and FLOW_MEMORY_REQUIRE_BROWSER=1", pytrace=False)
    pytest.skip(f"{reason}; set FLOW_MEMORY_REQUIRE_BROWSER=1 to fail instead of skipping")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, launched by Playwright (no browser download). Per module:
    Playwright's sync API holds an event loop running in the main thread until it stops, and
    later tests that start their own (asyncio.run) must not find it there."""
    if not CHROMIUM.exists():
        _browser_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class DashboardDeployment(Deployment):
    """Servers with the operator's planted upstream secret for the dashboard's reference."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["FLOW_MEMORY_SECRET_INFERENCE_DASHBOARD"] = UPSTREAM_SECRET
        return env


@dataclass(frozen=True)
class Running:
    server: Server
    operator: IssuedKey
    reader: IssuedKey
    upstream: ScriptedUpstream
    deployment: DashboardDeployment

    @property
    def url(self) -> str:
        return self.server.base_url + "/"


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, chromium: Any
) -> Iterator[Running]:
    """One server per module on a fresh database, an all-scopes key, a read-only key, a
    scripted model server for the SDK proxy, and the deployment to issue more keys."""
    workdir = tmp_path_factory.mktemp("dashboard")
    if os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL"):
        url: str = request.getfixturevalue("database_url")
        clear_tables(url)
    else:
        url = f"sqlite:///{workdir / 'flow_memory.db'}"
    deployment = DashboardDeployment(url, workdir)
    try:
        operator = deployment.create_key("dashboard-operator", ALL_SCOPES)
        reader = deployment.create_key("dashboard-reader", "inference:read")
        with ScriptedUpstream(models=[UPSTREAM_MODEL]) as upstream:
            yield Running(deployment.start(), operator, reader, upstream, deployment)
    finally:
        deployment.stop_all()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class PageErrors(list[str]):
    """Uncaught script errors of a page; a test ends by asserting there were none."""


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


class OutsideRequests(list[str]):
    """Requests an offline page tried to send beyond this machine; each one was refused."""


@pytest.fixture
def outside_requests() -> OutsideRequests:
    return OutsideRequests()


def _context(
    chromium: Any,
    viewport: dict[str, int],
    page_errors: PageErrors,
    outside: OutsideRequests | None = None,
) -> Iterator[Any]:
    context = chromium.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(GUARD_TIMEOUT_MS)
    if outside is not None:

        def refuse_outside(route: Any) -> None:
            if urlsplit(route.request.url).hostname in THIS_MACHINE:
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort("internetdisconnected")

        context.route("**/*", refuse_outside)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not page_errors, page_errors


@pytest.fixture
def page(chromium: Any, page_errors: PageErrors) -> Iterator[Any]:
    """A fresh desktop-width tab (its own session storage)."""
    yield from _context(chromium, DESKTOP, page_errors)


@pytest.fixture
def offline_page(
    chromium: Any, page_errors: PageErrors, outside_requests: OutsideRequests
) -> Iterator[Any]:
    """A desktop-width tab that reaches nothing beyond this machine, as without the internet;
    what it tried to reach is in outside_requests."""
    yield from _context(chromium, DESKTOP, page_errors, outside_requests)


@pytest.fixture
def phone_page(chromium: Any, page_errors: PageErrors) -> Iterator[Any]:
    """A fresh phone-width tab (390x844)."""
    yield from _context(chromium, PHONE, page_errors)


def screenshot_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") + ".png"
