"""The dashboard in headless Chromium against a real server: every surface shows the API's data,
one whole market flow done by clicking, API errors shown exactly as the API gives them, and
phone width without horizontal overflow. Screenshots land in test-artifacts/browser/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import UPSTREAM_MODEL, UPSTREAM_SECRET, Running, screenshot_name
from tests.browser.dashboard import (
    answer,
    assert_safe,
    expect,
    fill_bid,
    go,
    open_dashboard,
    seed_provider,
    shot,
)

pytestmark = pytest.mark.browser

SEEDED_MODEL = "seeded-chat"
SECTIONS = (
    "markets",
    "credentials",
    "providers",
    "depth",
    "orders",
    "routing",
    "payments",
    "analytics",
    "proxy",
    "agents",
    "ledger",
    "jobs",
    "validators",
    "registry",
)


@dataclass(frozen=True)
class Seeded:
    provider_id: str
    credential_ref_id: str
    order_id: str


@pytest.fixture(scope="module")
def seeded(running: Running) -> Seeded:
    """A provider of SEEDED_MODEL (eligible, capacity at 0.000001) and one filled bid."""
    with running.server.client() as client:
        provider = seed_provider(
            client,
            running.operator.headers,
            name="Seeded provider",
            base_url=running.upstream.base_url,
            model=SEEDED_MODEL,
            ask_unit_price="0.000001",
        )
        order = fill_bid(
            client, running.operator.headers, model=SEEDED_MODEL, units=20_000, price="0.000001"
        )
    return Seeded(provider.provider_id, provider.credential_ref_id, order["order"]["order_id"])


def test_every_surface_shows_the_api_data_for_a_key(
    page: Any, running: Running, seeded: Seeded, artifacts: Path
) -> None:
    open_dashboard(page, running, running.operator)

    # Marketplace discovery: list, detail, feed, profiles and manifest.
    go(page, "markets")
    listing = answer(page, "market-list-result")
    assert_safe(listing)
    expect(listing.locator("tbody")).to_contain_text(SEEDED_MODEL)
    feed = answer(page, "feed-result")
    expect(feed.locator("[data-testid=feed] li[data-kind=fill]").first).to_contain_text(
        SEEDED_MODEL
    )
    listing.get_by_role("button", name=SEEDED_MODEL).click()
    detail = answer(page, "model-result")
    expect(detail).to_contain_text("Seeded provider")
    expect(detail).to_contain_text("0.000001")
    page.locator("#buyer-form").get_by_label("Buyer id").fill("dashboard-operator")
    page.get_by_role("button", name="Show buyer").click()
    expect(answer(page, "buyer-result")).to_contain_text("20,000")
    page.locator("#seller-form").get_by_label("Seller id").fill("dashboard-operator")
    page.get_by_role("button", name="Show seller").click()
    expect(answer(page, "seller-result")).to_contain_text("Open ask units")
    manifest = answer(page, "manifest-result")
    expect(manifest.locator("ol.steps li")).to_have_count(7)
    expect(manifest).to_contain_text("/inference/providers/{provider_id}/heartbeat")
    shot(page, artifacts, "desktop markets")

    # Credential references, never with a secret value.
    go(page, "credentials")
    refs = answer(page, "credref-list-result")
    expect(refs).to_contain_text(seeded.credential_ref_id)
    expect(refs).to_contain_text("secret://inference/seeded")
    shot(page, artifacts, "desktop credentials")

    # Provider runtime: health and its route gate.
    go(page, "providers")
    page.locator("#runtime-provider").fill(seeded.provider_id)
    page.get_by_role("button", name="Check health").click()
    health = answer(page, "health-result")
    expect(health.locator("[data-testid=route-gate]")).to_contain_text("eligible")

    # Market depth as a chart.
    go(page, "depth")
    depth_form = page.locator("#depth-form")
    depth_form.get_by_label("Model").fill(SEEDED_MODEL)
    depth_form.get_by_role("button", name="Show depth").click()
    depth = answer(page, "depth-result")
    assert_safe(depth)
    expect(depth.locator("[data-testid=depth-chart] path.ask-area")).to_have_count(1)
    expect(depth).to_contain_text("480,000")
    shot(page, artifacts, "desktop depth")

    # Orders: a resting bid, then its cancel; a reservation.
    go(page, "orders")
    order_form = page.locator("#order-form")
    order_form.get_by_label("Model").fill(SEEDED_MODEL)
    order_form.get_by_label("Units", exact=True).fill("1000")
    order_form.get_by_label("Limit price per unit").fill("0.0000005")
    order_form.get_by_role("button", name="Place order").click()
    placed = answer(page, "order-result", 201)
    expect(placed).to_contain_text("open")
    page.locator("#order-history").get_by_role("button", name="Cancel").click()
    expect(answer(page, "cancel-result")).to_contain_text("cancelled")
    reservation_form = page.locator("#reservation-form")
    reservation_form.get_by_label("Model").fill(SEEDED_MODEL)
    reservation_form.get_by_label("Units", exact=True).fill("1000")
    reservation_form.get_by_label("Max price per unit").fill("0.000001")
    reservation_form.get_by_role("button", name="Reserve").click()
    held = answer(page, "reservation-result", 201)
    expect(held).to_contain_text("res_")
    expect(held).to_contain_text("1,000")
    shot(page, artifacts, "desktop orders")

    # Routing preview.
    go(page, "routing")
    policy = page.locator("#policy-form")
    policy.get_by_label("Model", exact=True).fill(SEEDED_MODEL)
    policy.get_by_label("Estimated units").fill("1000")
    policy.get_by_role("button", name="Quote").click()
    quote = answer(page, "routing-result")
    expect(quote).to_contain_text("Seeded provider")

    # Payment preview: blocked.
    go(page, "payments")
    payment = page.locator("#payment-form")
    payment.get_by_label("Order id").fill(seeded.order_id)
    payment.get_by_label("Reservation id").fill("")
    payment.get_by_label("I understand execution is disabled").check()
    payment.get_by_role("button", name="Preview").click()
    blocked = answer(page, "payment-result", 201).locator("[data-testid=payment-blocked]")
    expect(blocked).to_contain_text("disabled_preview_only")

    # Analytics: usage, by model, by provider.
    go(page, "analytics")
    usage = answer(page, "usage-result")
    expect(usage).to_contain_text(SEEDED_MODEL)
    expect(usage.locator("[data-testid=usage-chart] rect.bar").first).to_be_attached()

    # SDK proxy: the models served now.
    go(page, "proxy")
    expect(answer(page, "models-result")).to_contain_text(SEEDED_MODEL)


def test_a_whole_market_flow_by_clicking(page: Any, running: Running, artifacts: Path) -> None:
    open_dashboard(page, running, running.operator)

    # A credential reference.
    go(page, "credentials")
    create = page.locator("#credref-form")
    create.get_by_label("Reference (secret://…)").fill("secret://inference/dashboard")
    create.get_by_label("Display name").fill("Dashboard provider reference")
    create.get_by_role("button", name="Create reference").click()
    created = answer(page, "credref-create-result", 201)
    assert_safe(created)
    expect(created).to_contain_text("active")
    expect(created).not_to_contain_text(UPSTREAM_SECRET)
    shot(page, artifacts, "flow 1 credential reference")

    # Enroll, pair and heartbeat.
    go(page, "providers")
    enroll = page.locator("#enroll-form")
    expect(enroll.get_by_label("Credential ref id")).to_have_value(
        created.locator("dd code").first.inner_text()
    )
    enroll.get_by_label("Provider name").fill("Dashboard Provider")
    enroll.get_by_label("Model server base URL").fill(running.upstream.base_url)
    enroll.get_by_role("button", name="Enroll provider").click()
    enrolled = answer(page, "enroll-result", 201)
    expect(enrolled).to_contain_text("pending_pairing")
    provider_id = page.locator("#runtime-provider").input_value()
    assert provider_id.startswith("prov_")

    with page.expect_response(lambda r: r.url.endswith("/pairing-token")) as issued:
        page.get_by_role("button", name="Issue pairing token").click()
    token = issued.value.json()["pairing_token"]
    expect(answer(page, "pairing-result", 201)).to_contain_text(token[:12])
    page.get_by_role("button", name="Send heartbeat").click()
    beat = answer(page, "heartbeat-result")
    expect(beat).to_contain_text("yes, then forgotten")
    assert token not in page.content()

    # Catalog and capacity.
    catalog = page.locator("#catalog-form")
    catalog.get_by_label("Model").fill(UPSTREAM_MODEL)
    catalog.get_by_label("Context window").fill("4096")
    catalog.get_by_label("Reference price per unit (optional)").fill("0.000002")
    catalog.get_by_role("button", name="Publish catalog").click()
    expect(answer(page, "catalog-result")).to_contain_text("0.000002")
    capacity = page.locator("#capacity-form")
    expect(capacity.get_by_label("Model")).to_have_value(UPSTREAM_MODEL)
    capacity.get_by_label("Available units").fill("100000")
    capacity.get_by_label("Ask price per unit").fill("0.000001")
    capacity.get_by_role("button", name="Publish capacity").click()
    expect(answer(page, "capacity-result")).to_contain_text("100,000")
    page.get_by_role("button", name="Check health").click()
    gate = answer(page, "health-result").locator("[data-testid=route-gate]")
    expect(gate).to_contain_text("eligible")
    shot(page, artifacts, "flow 2 provider runtime")

    # The capacity ask in depth.
    go(page, "depth")
    before = answer(page, "depth-result")
    expect(before.locator("[data-testid=depth-asks]")).to_contain_text("100,000")
    expect(before.locator("[data-testid=last-fill]")).to_contain_text("no fill yet")

    # A bid that fills against the capacity ask; depth updates.
    go(page, "orders")
    order = page.locator("#order-form")
    expect(order.get_by_label("Model")).to_have_value(UPSTREAM_MODEL)
    order.get_by_label("Units", exact=True).fill("5000")
    order.get_by_label("Limit price per unit").fill("0.0000012")
    order.get_by_label("Time in force").select_option("ioc")
    order.get_by_role("button", name="Place order").click()
    filled = answer(page, "order-result", 201)
    assert_safe(filled)
    expect(filled).to_contain_text("filled")
    expect(filled.locator("table")).to_contain_text("5,000")
    order_id = filled.locator("dd code").first.inner_text()
    shot(page, artifacts, "flow 3 bid filled")

    go(page, "depth")
    after = page.locator("#depth-result [data-testid=depth]")
    expect(after.locator("[data-testid=last-fill]")).to_contain_text("0.000001")
    expect(after.locator("[data-testid=depth-asks]")).to_contain_text("95,000")
    expect(after.locator("[data-testid=depth-fills]")).to_contain_text("5,000")
    shot(page, artifacts, "flow 4 depth after the fill")

    # Route preview: a selected route, and a rejection with its code and next action.
    go(page, "routing")
    policy = page.locator("#policy-form")
    expect(policy.get_by_label("Model", exact=True)).to_have_value(UPSTREAM_MODEL)
    policy.get_by_label("Estimated units").fill("2000")
    policy.get_by_label("Min discount (bps)").fill("100")
    policy.get_by_role("button", name="Select route").click()
    routed = answer(page, "routing-result")
    expect(routed.locator("[data-testid=route-decision]")).to_contain_text("selected")
    expect(routed).to_contain_text(provider_id)
    policy.get_by_label("Max price per unit (optional)").fill("0.0000005")
    policy.get_by_role("button", name="Quote").click()
    rejection = answer(page, "routing-result").locator(
        "[data-testid=rejected-routes] li[data-code=max_unit_price_exceeded]"
    )
    expect(rejection).to_contain_text("Dashboard Provider")
    expect(rejection).to_contain_text("Next action:")
    shot(page, artifacts, "flow 5 route preview")

    # Payment preview: refused without the acknowledgement, then shown blocked.
    go(page, "payments")
    payment = page.locator("#payment-form")
    expect(payment.get_by_label("Order id")).to_have_value(order_id)
    payment.get_by_role("button", name="Preview").click()
    expect(answer(page, "payment-result", 422).locator("[data-testid=api-error]")).to_be_visible()
    payment.get_by_label("I understand execution is disabled").check()
    payment.get_by_role("button", name="Preview").click()
    blocked = answer(page, "payment-result", 201).locator("[data-testid=payment-blocked]")
    expect(blocked).to_contain_text("Blocked: execution is disabled")
    expect(blocked).to_contain_text("disabled_preview_only")
    shot(page, artifacts, "flow 6 payment preview blocked")

    # Analytics shows the usage of the fill, and the export downloads with the key.
    go(page, "analytics")
    page.locator("#usage-form").get_by_label("Model").fill(UPSTREAM_MODEL)
    page.get_by_role("button", name="Show usage").click()
    usage = answer(page, "usage-result")
    expect(usage.locator(".tile").nth(2)).to_contain_text("5,000")
    expect(usage.locator(".tile").nth(3)).to_contain_text("0.005")
    expect(usage.locator(".tile").nth(5)).to_contain_text("0.005")
    expect(usage.locator("[data-testid=usage-chart] rect.bar")).to_have_count(1)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download export").click()
    saved = artifacts / "flow-usage-export.ndjson"
    download_info.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert '"schema_version":"flow_memory.usage_export.v1"' in lines[0]
    assert sum('"record_type":"usage_record"' in line for line in lines) == 1
    expect(answer(page, "export-result")).to_contain_text("flow_memory.usage_export.v1")
    shot(page, artifacts, "flow 7 analytics")

    # The SDK proxy: the model is served, and a chat call answers with flow_memory metadata.
    go(page, "proxy")
    expect(answer(page, "models-result")).to_contain_text(UPSTREAM_MODEL)
    chat = page.locator("#chat-form")
    chat.get_by_label("Model").fill(UPSTREAM_MODEL)
    chat.get_by_role("button", name="Send").click()
    proxied = answer(page, "chat-result")
    assert_safe(proxied)
    expect(proxied.locator("[data-testid=chat-answer]")).to_have_text(
        "Hello from the scripted upstream."
    )
    metadata = proxied.locator("[data-testid=flow-memory-metadata]")
    expect(metadata).to_contain_text("route_")
    expect(metadata).to_contain_text(provider_id)
    expect(metadata).to_contain_text("answered")
    assert UPSTREAM_SECRET not in page.content()
    shot(page, artifacts, "flow 8 sdk proxy")


def _shown_error(frame: Any) -> dict[str, str]:
    box = frame.locator("[data-testid=api-error]")
    return {
        name: box.locator(f"dd[data-error={name}]").inner_text()
        for name in ("code", "message", "field", "hint")
    }


def _api_error(response: httpx.Response) -> dict[str, str]:
    error = response.json()["error"]
    return {name: "null" if error[name] is None else str(error[name]) for name in error}


def test_api_errors_are_shown_exactly_as_the_api_gives_them(
    page: Any, running: Running, artifacts: Path
) -> None:
    # Without a key.
    open_dashboard(page, running, None)
    expect(page.locator("#market-list-result")).to_contain_text("Paste a Flow Memory API key")
    page.get_by_role("button", name="Refresh").first.click()
    shown = answer(page, "market-list-result", 401)
    assert_safe(shown)
    with running.server.client() as client:
        expected = _api_error(client.get("/inference/market/list"))
    assert _shown_error(shown) == expected
    assert expected["code"] == "unauthenticated"

    # A key narrowed to inference:read cannot create a reference: 403 naming the scope.
    page.get_by_label("Flow Memory API key").fill(running.operator.secret)
    page.get_by_label("inference:read").check()
    page.get_by_role("button", name="Use key").click()
    go(page, "credentials")
    create = page.locator("#credref-form")
    create.get_by_label("Reference (secret://…)").fill("secret://inference/narrowed")
    create.get_by_label("Display name").fill("Narrowed")
    create.get_by_role("button", name="Create reference").click()
    shown = answer(page, "credref-create-result", 403)
    body = {
        "credential_ref": "secret://inference/narrowed",
        "display_name": "Narrowed",
        "workspace_id": "workspace-default",
        "allowed_models": [],
    }
    narrowed = {**running.operator.headers, "x-flow-memory-scopes": "inference:read"}
    with running.server.client() as client:
        expected = _api_error(
            client.post("/inference/credential-refs", json=body, headers=narrowed)
        )
    assert _shown_error(shown) == expected
    assert expected["code"] == "missing_scope"
    shot(page, artifacts, "error missing scope")

    # Forbidden material is refused before anything is stored, and shown with its field path.
    page.locator("#key-toggle").click()
    page.get_by_label("inference:read").uncheck()
    page.get_by_role("button", name="Use key").click()
    raw_key = "sk-" + "Zq9Xw8Vu7Ts6Rp5On4Ml3Kj2"
    create.get_by_label("Reference (secret://…)").fill(raw_key)
    create.get_by_role("button", name="Create reference").click()
    shown = answer(page, "credref-create-result", 422)
    assert_safe(shown)
    with running.server.client() as client:
        refused = client.post(
            "/inference/credential-refs",
            json={**body, "credential_ref": raw_key},
            headers=running.operator.headers,
        )
    expected = _api_error(refused)
    assert _shown_error(shown) == expected
    assert expected["code"] == "forbidden_material"
    assert expected["field"] == "credential_ref"
    shot(page, artifacts, "error forbidden material")


def test_phone_width_renders_every_section_without_horizontal_overflow(
    phone_page: Any, running: Running, seeded: Seeded, artifacts: Path
) -> None:
    page = phone_page
    open_dashboard(page, running, running.operator)
    fill_before = {
        "depth": ("#depth-form", "Model", "Show depth", "depth-result"),
        "routing": ("#policy-form", "Model", "Quote", "routing-result"),
    }
    for section in SECTIONS:
        go(page, section)
        if section in fill_before:
            form_id, label, button, result = fill_before[section]
            form = page.locator(form_id)
            form.get_by_label(label, exact=True).fill(SEEDED_MODEL)
            if section == "routing":
                form.get_by_label("Estimated units").fill("1000")
            form.get_by_role("button", name=button).click()
            answer(page, result)
        page.wait_for_load_state("networkidle")
        expect(page.locator(".sidenav")).to_be_visible()
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (section, widths)
        shot(page, artifacts, f"phone {section}")
        page.screenshot(path=str(artifacts / screenshot_name(f"phone {section} first screen")))
