"""/docs in headless Chromium with every request beyond this machine refused, as on a machine
without the internet: the API docs render their operations from files this server serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import OutsideRequests, Running
from tests.browser.dashboard import expect, shot

pytestmark = pytest.mark.browser


def test_the_api_docs_render_an_operation_without_the_internet(
    offline_page: Any, outside_requests: OutsideRequests, running: Running, artifacts: Path
) -> None:
    page = offline_page
    page.goto(running.server.base_url + "/docs")
    expect(page).to_have_title("Flow Memory API")
    expect(page.locator("#swagger-ui .info .title")).to_contain_text("Flow Memory")
    operation = page.locator(".opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/inference/market/orders"]')
    )
    expect(operation.locator(".opblock-summary-method")).to_have_text("POST")
    expect(operation).to_be_visible()
    # Open it: its request body schema renders too.
    operation.locator(".opblock-summary").first.click()
    expect(operation.locator(".opblock-body")).to_contain_text("limit_unit_price")
    shot(page, artifacts, "api docs offline")
    assert outside_requests == []
