"""The Registry view: entries seeded through the API are found by search (facet counts that
narrow it when picked), an agent's page shows its versions and the models that fit it, a
publisher's description shows as text, a model is published through the form, and a slug
under another publisher's namespace is refused with the API's own error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.test_registry import agent_body, model_body
from tests.browser.conftest import Running
from tests.browser.dashboard import answer, assert_safe, expect, go, ok, open_dashboard, shot
from tests.factories import catalog_body, eligible_provider

pytestmark = pytest.mark.browser

PUBLISHER = "dash-pub"
MARKUP = "<b>Not bold</b> & <script>window.injected = 1</script> reviews code"


@pytest.fixture(scope="module")
def publisher(running: Running) -> Any:
    """A publisher's key, a model and an agent it published, the agent's newer version."""
    key = running.deployment.create_key(PUBLISHER, "inference:publish,inference:read")
    with running.server.client() as client:
        model = model_body(f"{PUBLISHER}/swift-7b")
        ok(client.post("/inference/registry/models", json=model, headers=key.headers), 201)
        agent = agent_body(f"{PUBLISHER}/reviewer", description=MARKUP)
        ok(client.post("/inference/registry/agents", json=agent, headers=key.headers), 201)
        entry_fields = ("slug", "display_name", "description", "tags", "license")
        newer = {name: item for name, item in agent.items() if name not in entry_fields}
        newer["version"] = "1.1.0"
        newer["pricing"] = {"model": "per_request", "price": "0.02"}
        path = f"/inference/registry/agents/{PUBLISHER}/reviewer/versions"
        ok(client.post(path, json=newer, headers=key.headers), 201)
        # A provider serving the model now: its catalog names the registry version.
        seller = running.deployment.create_key("dash-seller", "inference:sell,inference:read")
        provider_id = eligible_provider(client, seller.headers, provider_name="Dash GPU")[
            "provider_id"
        ]
        catalog = catalog_body("2026-06-18T00:00:00Z")
        catalog["models"][0]["registry_model"] = {
            "slug": f"{PUBLISHER}/swift-7b",
            "version": "1.0.0",
        }
        path = f"/inference/providers/{provider_id}/catalog"
        ok(client.post(path, json=catalog, headers=seller.headers), 200)
    return key


def test_search_narrows_by_facet_and_an_agent_page_shows_versions_and_models(
    page: Any, running: Running, publisher: Any, artifacts: Path
) -> None:
    open_dashboard(page, running, publisher)
    go(page, "registry")
    found = answer(page, "registry-search-result")
    assert_safe(found)
    expect(found.locator("[data-testid=registry-total]")).to_have_text("2 found")
    kinds = found.locator("[data-facet=kind] li")
    expect(kinds).to_have_count(2)
    expect(found.locator("[data-facet=publisher]")).to_contain_text("2")
    # Two hits: the facets count both, so no note says they cover only the best.
    expect(found.locator("[data-testid=registry-facets-over]")).to_have_count(0)

    found.locator("[data-facet=kind] button[data-value=agent]").click()
    narrowed = answer(page, "registry-search-result")
    expect(narrowed.locator("[data-testid=registry-total]")).to_have_text("1 found")
    expect(page.locator("#registry-search-form select[name=kind]")).to_have_value("agent")
    narrowed.locator(f"button[data-slug='{PUBLISHER}/reviewer']").click()

    shown = answer(page, "registry-entry-result")
    expect(shown.locator("[data-testid=registry-slug]")).to_have_text(f"{PUBLISHER}/reviewer")
    expect(shown.locator("[data-testid=registry-version]")).to_have_text("1.1.0")
    expect(shown.locator("[data-testid=registry-price]")).to_contain_text("0.02 USD_CREDIT")
    versions = shown.locator("[data-testid=registry-versions] tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.locator("td[data-label=Version]")).to_have_text(["1.1.0", "1.0.0"])
    description = shown.locator("[data-testid=registry-description]")
    assert description.text_content() == MARKUP
    expect(description.locator("b, script")).to_have_count(0)
    assert page.evaluate("window.injected") is None

    compatible = answer(page, "registry-compatible-result")
    expect(compatible.locator("[data-testid=registry-compatible]")).to_contain_text(
        f"{PUBLISHER}/swift-7b"
    )
    shot(page, artifacts, "registry agent page")

    # The model's page shows who serves it now, at what ask, and the depth.
    compatible.get_by_role("button", name=f"{PUBLISHER}/swift-7b").click()
    model = answer(page, "registry-entry-result")
    expect(model.locator("[data-testid=registry-slug]")).to_have_text(f"{PUBLISHER}/swift-7b")
    serving = model.locator("[data-testid=registry-serving]")
    rows = serving.locator("table").nth(1).locator("tbody tr")
    expect(rows.first).to_contain_text("Dash GPU")
    expect(rows.first).to_contain_text("serving")
    expect(rows.first.locator("td[data-label=Ask]")).to_have_text("0.00000075")
    depth = serving.locator("table").first.locator("tbody tr")
    expect(depth).to_have_count(1)
    expect(depth.locator("td[data-label=Providers]")).to_have_text("1")
    shot(page, artifacts, "registry model page served by")


def test_a_model_is_published_from_the_form_and_another_namespace_is_refused(
    page: Any, running: Running, publisher: Any, artifacts: Path
) -> None:
    open_dashboard(page, running, publisher)
    section = go(page, "registry")
    form = section.locator("#registry-publish-form")

    def publish(slug: str) -> None:
        form.get_by_label("Kind").select_option("model")
        form.get_by_label("Slug").fill(slug)
        form.get_by_label("Display name").fill("Form model")
        form.get_by_label("Price (USD_CREDIT)").fill("0.000000123456789012")
        form.get_by_label("Royalty (bps, 0 to 5000)").fill("300")
        form.get_by_label("Context window (an agent's minimum)").fill("65536")
        form.get_by_label("Family (an agent's allowed, comma-separated)").fill("form")
        form.get_by_role("button", name="Publish").click()

    publish(f"{PUBLISHER}/form-model")
    published = answer(page, "registry-publish-result", 201)
    assert_safe(published)
    expect(published).to_contain_text(f"{PUBLISHER}/form-model@1.0.0")
    shown = answer(page, "registry-entry-result")
    expect(shown.locator("[data-testid=registry-slug]")).to_have_text(f"{PUBLISHER}/form-model")
    # Eighteen decimals: seeing it whole shows nothing rounded it.
    expect(shown.locator("[data-testid=registry-price]")).to_contain_text("0.000000123456789012")
    expect(shown.locator("[data-testid=registry-status]")).to_have_text("active")

    with running.server.client() as client:
        refused = client.post(
            "/inference/registry/models",
            json=model_body("someone-else/form-model"),
            headers=publisher.headers,
        )
    expected = refused.json()["error"]
    publish("someone-else/form-model")
    error = answer(page, "registry-publish-result", 403)
    expect(error.locator("[data-error=code]")).to_have_text(expected["code"])
    expect(error.locator("[data-error=message]")).to_have_text(expected["message"])
    shot(page, artifacts, "registry publish refused")


def test_the_registry_fits_a_phone_width(
    phone_page: Any, running: Running, publisher: Any, artifacts: Path
) -> None:
    page = phone_page
    open_dashboard(page, running, publisher)
    go(page, "registry")
    answer(page, "registry-search-result").locator(
        f"button[data-slug='{PUBLISHER}/reviewer']"
    ).click()
    answer(page, "registry-compatible-result")
    page.wait_for_load_state("networkidle")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    shot(page, artifacts, "phone registry")
