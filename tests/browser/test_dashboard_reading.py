"""Reading the dashboard: the providers listed with their health, a rotated credential
reference shown as rotated (as provider health says), the feed newest first, and a chart's
long exact axis label shown whole."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Running
from tests.browser.dashboard import (
    answer,
    expect,
    fill_bid,
    go,
    ok,
    open_dashboard,
    seed_provider,
    shot,
)

pytestmark = pytest.mark.browser


def wait_for_usage_records(
    client: httpx.Client, headers: dict[str, str], model: str, count: int
) -> None:
    """Until the usage writer has written ``count`` records of ``model`` (it writes in batches,
    a moment after each call)."""
    give_up = time.monotonic() + 120  # only a broken writer takes this long
    while time.monotonic() < give_up:
        summary = ok(
            client.get("/inference/analytics/usage", params={"model": model}, headers=headers)
        )["summary"]
        if summary["records"] >= count:
            return
        time.sleep(0.05)  # polling interval
    raise AssertionError(f"the usage writer wrote fewer than {count} records of the model")


def provider_row(page: Any, provider_id: str) -> Any:
    listing = answer(page, "provider-list-result")
    return listing.locator("tbody tr").filter(has=page.locator(f"[data-provider='{provider_id}']"))


def test_the_providers_are_listed_with_their_health_and_picked_by_a_click(
    page: Any, running: Running, artifacts: Path
) -> None:
    with running.server.client() as client:
        seeded = seed_provider(
            client,
            running.operator.headers,
            name="Listed provider",
            base_url=running.upstream.base_url,
            model="listed-chat",
            ask_unit_price="0.000001",
        )
    open_dashboard(page, running, running.operator)
    go(page, "providers")
    row = provider_row(page, seeded.provider_id)
    expect(row).to_contain_text("Listed provider")
    expect(row).to_contain_text("listed-chat")
    expect(row.locator("td[data-label='Route gate']")).to_have_text("eligible")
    expect(row.locator("td[data-label='Status']")).to_have_text("healthy")
    expect(row.locator("td[data-label='Credential reference']")).to_have_text("active")
    shot(page, artifacts, "providers list")

    row.get_by_role("button", name="Select").click()
    expect(page.locator("#runtime-provider")).to_have_value(seeded.provider_id)
    health = answer(page, "health-result")
    expect(health.locator("[data-testid=route-gate]")).to_contain_text("eligible")
    expect(health).to_contain_text(seeded.provider_id)


def test_another_owners_provider_is_listed_without_its_health(page: Any, running: Running) -> None:
    with running.server.client() as client:
        seeded = seed_provider(
            client,
            running.operator.headers,
            name="Someone else's provider",
            base_url=running.upstream.base_url,
            model="others-chat",
            ask_unit_price="0.000001",
        )
    open_dashboard(page, running, running.reader)
    go(page, "providers")
    row = provider_row(page, seeded.provider_id)
    expect(row).to_contain_text("Someone else's provider")
    expect(row.locator("td[data-label='Route gate']")).to_have_text("another owner's")


def test_a_rotated_reference_shows_rotated_as_provider_health_does(
    page: Any, running: Running, artifacts: Path
) -> None:
    with running.server.client() as client:
        seeded = seed_provider(
            client,
            running.operator.headers,
            name="Rotated provider",
            base_url=running.upstream.base_url,
            model="rotated-chat",
            ask_unit_price="0.000001",
        )
    open_dashboard(page, running, running.operator)

    go(page, "credentials")
    refs = answer(page, "credref-list-result")
    ref_row = refs.locator("tbody tr").filter(has_text=seeded.credential_ref_id)
    expect(ref_row.locator("[data-testid=credref-state]")).to_have_attribute("data-state", "active")
    ref_row.get_by_role("button", name="Rotate").click()
    rotate = page.locator("#rotate-form")
    expect(rotate.get_by_label("Credential ref id")).to_have_value(seeded.credential_ref_id)
    rotate.get_by_label("New reference (secret://…)").fill("secret://inference/rotated-2")
    rotate.get_by_role("button", name="Rotate reference").click()
    rotated = answer(page, "rotate-result")
    expect(rotated.locator("[data-testid=credref-state]").first).to_have_attribute(
        "data-state", "rotated"
    )
    refs = page.locator("#credref-list-result [data-testid=response]")
    ref_row = refs.locator("tbody tr").filter(has_text=seeded.credential_ref_id)
    state = ref_row.locator("[data-testid=credref-state]")
    expect(state).to_have_attribute("data-state", "rotated")
    expect(state.locator(".badge")).to_have_text("rotated")
    expect(state).to_contain_text("re-enroll")
    shot(page, artifacts, "credential reference rotated")

    # Provider health says the same of the provider enrolled on the old pointer.
    go(page, "providers")
    row = provider_row(page, seeded.provider_id)
    expect(row.locator("td[data-label='Credential reference']")).to_have_text("rotated")
    expect(row.locator("td[data-label='Route gate']")).to_have_text("stale")
    row.get_by_role("button", name="Select").click()
    health = answer(page, "health-result")
    expect(health.locator("[data-testid=route-gate]")).to_contain_text("stale")
    expect(health.locator("[data-testid=credential-hint]")).to_contain_text("re-enroll")


def test_the_feed_shows_the_newest_events_first_and_pages_back(page: Any, running: Running) -> None:
    with running.server.client() as client:
        headers = running.operator.headers
        seed_provider(
            client,
            headers,
            name="Feed provider",
            base_url=running.upstream.base_url,
            model="feed-chat",
            ask_unit_price="0.000001",
        )
        fill_bid(client, headers, model="feed-chat", units=1000, price="0.000001")
        resting = {
            "side": "bid",
            "model": "feed-chat",
            "unit_type": "token",
            "units": 1000,
            "limit_unit_price": "0.0000001",
        }
        order = ok(client.post("/inference/market/orders", json=resting, headers=headers), 201)
        order_id = order["order"]["order_id"]
        cancel = {"cancel_reason": "buyer_repriced"}
        ok(client.post(f"/inference/market/orders/{order_id}/cancel", json=cancel, headers=headers))
        newest = ok(client.get("/inference/market/feed?order=newest&limit=1", headers=headers))
    latest = newest["events"][0]
    assert latest["kind"] == "order_cancelled"

    open_dashboard(page, running, running.operator)
    go(page, "markets")
    feed = answer(page, "feed-result")
    first = feed.locator("[data-testid=feed] li").first
    expect(first).to_have_attribute("data-kind", "order_cancelled")
    expect(first).to_contain_text(order_id)
    expect(first).to_contain_text(f"#{latest['event_id']}")

    # Pages go back in time; the other order starts from the first event.
    form = page.locator("#feed-form")
    form.get_by_label("Page size").fill("2")
    form.get_by_role("button", name="Load feed").click()
    items = page.locator("#feed-result [data-testid=feed] li")
    expect(items).to_have_count(2)
    page.get_by_role("button", name="Load next page").click()
    expect(items).to_have_count(4)
    ids = [int(text.lstrip("#")) for text in items.locator(".mono").all_inner_texts()]
    assert ids == sorted(ids, reverse=True) and ids[0] == latest["event_id"], ids
    form.locator("select[name=order]").select_option("oldest")
    form.get_by_role("button", name="Load feed").click()
    expect(items).to_have_count(2)
    oldest = [int(text.lstrip("#")) for text in items.locator(".mono").all_inner_texts()]
    assert oldest == sorted(oldest) and oldest[0] < ids[-1], oldest


LABEL_BOX = """(svg) => {
  const label = [...svg.querySelectorAll("text")].find((t) => t.textContent === "0.00007628");
  if (!label) return null;
  const box = label.getBBox();
  const view = svg.viewBox.baseVal;
  return { left: box.x, right: box.x + box.width, min: view.x, max: view.x + view.width };
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_usage_chart_shows_a_long_exact_axis_label_whole(
    page: Any, running: Running, artifacts: Path, width: int
) -> None:
    model = f"tiny-chat-{width}"
    with running.server.client() as client:
        seed_provider(
            client,
            running.operator.headers,
            name=f"Tiny provider {width}",
            base_url=running.upstream.base_url,
            model=model,
            ask_unit_price="0.00000001",
        )
        fill_bid(client, running.operator.headers, model=model, units=7628, price="0.00000001")
    page.set_viewport_size({"width": width, "height": 900})
    open_dashboard(page, running, running.operator)
    go(page, "analytics")
    page.locator("#usage-form").get_by_label("Model").fill(model)
    page.get_by_role("button", name="Show usage").click()
    usage = answer(page, "usage-result")
    expect(usage.locator(".tile").nth(3)).to_contain_text("0.00007628")
    chart = usage.locator("[data-testid=usage-chart]")
    expect(chart.locator("text", has_text="0.00007628")).to_have_count(1)
    box = chart.evaluate(LABEL_BOX)
    assert box is not None
    assert box["min"] <= box["left"] and box["right"] <= box["max"], box
    shot(page, artifacts, f"usage chart long label {width}")


def test_a_failed_sdk_call_says_why_and_what_to_do(
    page: Any, running: Running, artifacts: Path
) -> None:
    with running.server.client() as client:
        seed_provider(
            client,
            running.operator.headers,
            name="Provider without a live upstream",
            base_url="http://127.0.0.1:9/v1",  # nothing listens on the discard port
            model="unreachable-chat",
            ask_unit_price="0.000001",
        )
    open_dashboard(page, running, running.operator)
    go(page, "proxy")
    chat = page.locator("#chat-form")

    chat.get_by_label("Model").fill("unreachable-chat")
    chat.get_by_role("button", name="Send").click()
    failed = answer(page, "chat-result", 502)
    expect(failed.locator("[data-error=code]")).to_have_text("upstream_unavailable")
    advice = page.locator("#chat-result [data-testid=sdk-advice]")
    expect(advice).to_contain_text("No provider answered the call")
    expect(advice).to_contain_text("choose a model with a live provider")
    shot(page, artifacts, "sdk call failed upstream")

    chat.get_by_label("Model").fill("no-such-model-anywhere")
    chat.get_by_role("button", name="Send").click()
    missing = answer(page, "chat-result", 404)
    expect(missing.locator("[data-error=code]")).to_have_text("model_not_found")
    expect(page.locator("#chat-result [data-testid=sdk-advice]")).to_contain_text(
        "No provider lists this model"
    )

    # The failed call is kept for audit but counted apart from billed calls.
    with running.server.client() as client:
        wait_for_usage_records(client, running.operator.headers, "unreachable-chat", 1)
    go(page, "analytics")
    usage_form = page.locator("#usage-form")
    usage_form.get_by_label("Model").fill("unreachable-chat")
    page.get_by_role("button", name="Show usage").click()
    usage = answer(page, "usage-result")
    expect(usage.locator("[data-testid=failed-attempts] .value")).to_have_text("1")
    expect(usage.locator("[data-testid=billed-calls] .value")).to_have_text("0")
    expect(usage).to_contain_text("failed attempt: upstream_failed")


def test_a_market_of_bids_nobody_offers_is_marked_demand_only(page: Any, running: Running) -> None:
    with running.server.client() as client:
        placed = ok(
            client.post(
                "/inference/market/orders",
                json={
                    "side": "bid",
                    "model": "nobody-offers-this",
                    "unit_type": "token",
                    "units": 1000,
                    "limit_unit_price": "0.000001",
                },
                headers=running.operator.headers,
            ),
            201,
        )
    assert placed["warnings"] and "demand only" in placed["warnings"][0]
    open_dashboard(page, running, running.operator)
    go(page, "markets")
    listing = answer(page, "market-list-result")
    row = listing.locator("tbody tr").filter(has_text="nobody-offers-this")
    expect(row.locator("[data-testid=demand-only]")).to_have_text("demand only")
