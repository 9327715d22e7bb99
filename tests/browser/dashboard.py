"""What the browser tests share: steps on the dashboard's page, and records seeded through the
API for the tests that read what is already there."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import GUARD_TIMEOUT_MS, Running, screenshot_name
from tests.integration.test_server import IssuedKey


def expect(target: Any) -> Any:
    """Playwright's retrying assertion, with the guard timeout."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=GUARD_TIMEOUT_MS)
    return playwright_expect(target)


def open_dashboard(page: Any, running: Running, key: IssuedKey | None) -> None:
    page.goto(running.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    if key is not None:
        page.get_by_label("Flow Memory API key").fill(key.secret)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-label")).to_contain_text(key.secret[-4:])


def go(page: Any, section: str) -> Any:
    page.locator(f".sidenav a[href='#{section}']").click()
    node = page.locator(f"section#{section}")
    expect(node).to_be_visible()
    return node


def answer(page: Any, result_id: str, status: int = 200) -> Any:
    """The response frame in a result area once it holds the given HTTP status."""
    frame = page.locator(f"#{result_id} [data-testid=response]")
    expect(frame).to_have_attribute("data-status", str(status))
    return frame


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / screenshot_name(name)), full_page=True)


def assert_safe(frame: Any) -> None:
    """All seven safety fields are shown, each at its required value."""
    safety = frame.locator("[data-testid=safety]").first
    for field, value in (
        ("dry_run_only", "true"),
        ("funds_moved", "false"),
        ("broadcast_allowed", "false"),
        ("private_key_required", "false"),
        ("live_trading_enabled", "false"),
        ("legal_review_required", "true"),
        ("compliance_review_required", "true"),
    ):
        expect(safety.locator(f"li[data-field={field}]")).to_have_text(f"{field}: {value}")
    expect(safety.locator("li.unsafe, li.missing")).to_have_count(0)


# Seeding through the API.


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True)
class SeededProvider:
    provider_id: str
    credential_ref_id: str


def seed_provider(
    client: httpx.Client,
    headers: dict[str, str],
    *,
    name: str,
    base_url: str,
    model: str,
    ask_unit_price: str,
    available_units: int = 500_000,
) -> SeededProvider:
    """A credential reference and an eligible provider of ``model`` whose capacity rests as an
    ask at ``ask_unit_price``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    ref = ok(
        client.post(
            "/inference/credential-refs",
            json={"credential_ref": f"secret://inference/{slug}", "display_name": f"{name} ref"},
            headers=headers,
        ),
        201,
    )["credential_ref"]
    provider = ok(
        client.post(
            "/inference/providers/enroll",
            json={
                "provider_name": name,
                "base_url": base_url,
                "credential_ref_id": ref["credential_ref_id"],
            },
            headers=headers,
        ),
        201,
    )["provider"]
    pid = provider["provider_id"]
    token = ok(client.post(f"/inference/providers/{pid}/pairing-token", headers=headers), 201)
    ok(
        client.post(
            f"/inference/providers/{pid}/heartbeat",
            headers={**headers, "x-flow-memory-pairing-token": token["pairing_token"]},
        )
    )
    entry = {
        "model": model,
        "compatible_api": "chat_completions",
        "unit_types": ["token"],
        "context_window": 4096,
        "reference_unit_prices": {"token": "0.000002"},
    }
    catalog = {"catalog_version": "2026-01-01T00:00:00Z", "models": [entry]}
    ok(client.post(f"/inference/providers/{pid}/catalog", json=catalog, headers=headers))
    line = {
        "model": model,
        "unit_type": "token",
        "available_units": available_units,
        "ask_unit_price": ask_unit_price,
        "expires_at": "2099-01-01T00:00:00Z",
    }
    capacity = {"capacity_version": "2026-01-01T00:00:00Z", "inventory": [line]}
    ok(client.post(f"/inference/providers/{pid}/capacity", json=capacity, headers=headers))
    return SeededProvider(pid, ref["credential_ref_id"])


def fill_bid(
    client: httpx.Client, headers: dict[str, str], *, model: str, units: int, price: str
) -> dict[str, Any]:
    """An immediate-or-cancel bid that fills in full against resting asks."""
    bid = {
        "side": "bid",
        "model": model,
        "unit_type": "token",
        "units": units,
        "limit_unit_price": price,
        "time_in_force": "ioc",
    }
    order = ok(client.post("/inference/market/orders", json=bid, headers=headers), 201)
    assert order["order"]["status"] == "filled", order
    return order
