"""The Deployments and Earnings views: an agent and a model that fits it are deployed from the
registry's page, the deployment's page shows its pins, terms, providers and revisions, a call
through it shows the cost and each royalty line exactly, pause and resume change its state, a
solution is deployed from its page, an override the template does not name is refused with the
API's own error, and the publisher's earnings show the royalties per day and per version."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_registry import agent_body, model_body
from tests.browser.conftest import UPSTREAM_MODEL, PageErrors, Running
from tests.browser.dashboard import (
    answer,
    assert_safe,
    expect,
    go,
    ok,
    open_dashboard,
    seed_provider,
    shot,
)
from tests.integration.test_server import IssuedKey

pytestmark = pytest.mark.browser

PUBLISHER = "dep-pub"
MODEL = f"{PUBLISHER}/swift-7b"
AGENT = f"{PUBLISHER}/reviewer"
SOLUTION = f"{PUBLISHER}/review-kit"
ASK = "0.0000005"
FLUSH_SECONDS = 30  # a guard while the usage batch is written, not a performance claim


@pytest.fixture(scope="module")
def keys(running: Running) -> dict[str, IssuedKey]:
    """A publisher's model, agent and solution; a provider in front of the scripted model server
    whose catalog names the model version; a buyer's key."""
    publisher = running.deployment.create_key(PUBLISHER, "inference:publish,inference:read")
    buyer = running.deployment.create_key(
        "dep-buyer", "inference:buy,inference:read,inference:proxy"
    )
    with running.server.client() as client:
        ok(
            client.post(
                "/inference/registry/models", json=model_body(MODEL), headers=publisher.headers
            ),
            201,
        )
        ok(
            client.post(
                "/inference/registry/agents", json=agent_body(AGENT), headers=publisher.headers
            ),
            201,
        )
        solution = {
            "slug": SOLUTION,
            "display_name": "Review kit",
            "license": "mit",
            "solution": {
                "agent": {"slug": AGENT, "version": "1.0.0"},
                "model": {"slug": MODEL, "version": "1.0.0"},
                "configuration": {"system_prompt": "Review briefly."},
            },
        }
        ok(
            client.post("/inference/registry/solutions", json=solution, headers=publisher.headers),
            201,
        )
        provider = seed_provider(
            client,
            running.operator.headers,
            name="Dashboard",
            base_url=running.upstream.base_url,
            model=UPSTREAM_MODEL,
            ask_unit_price=ASK,
        )
        catalog = {
            "catalog_version": "2026-01-02T00:00:00Z",
            "models": [
                {
                    "model": UPSTREAM_MODEL,
                    "compatible_api": "chat_completions",
                    "unit_types": ["token"],
                    "context_window": 32768,
                    "registry_model": {"slug": MODEL, "version": "1.0.0"},
                }
            ],
        }
        path = f"/inference/providers/{provider.provider_id}/catalog"
        ok(client.post(path, json=catalog, headers=running.operator.headers))
    return {"publisher": publisher, "buyer": buyer}


def _royalties_written(running: Running, publisher: IssuedKey, calls: int) -> None:
    """Wait until the report counts the calls (the usage writer records them in batches)."""
    deadline = time.monotonic() + FLUSH_SECONDS
    with running.server.client() as client:
        while time.monotonic() < deadline:
            rows = ok(client.get("/inference/royalties", headers=publisher.headers))["rows"]
            if sum(r["usage_records"] for r in rows if r["kind"] == "agent") >= calls:
                return
            time.sleep(0.2)
    raise AssertionError(f"the royalty report never counted {calls} calls")


def test_a_pair_is_deployed_from_the_registry_called_paused_and_earns_royalties(
    page: Any,
    running: Running,
    keys: dict[str, IssuedKey],
    artifacts: Path,
    page_errors: PageErrors,
) -> None:
    open_dashboard(page, running, keys["buyer"])
    go(page, "registry")
    entry = page.locator("#registry-entry-form")
    entry.get_by_label("Kind").select_option("agent")
    entry.get_by_label("Slug").fill(AGENT)
    entry.get_by_role("button", name="Show entry").click()
    answer(page, "registry-entry-result")
    compatible = answer(page, "registry-compatible-result")
    compatible.locator(f"button[data-deploy='{MODEL}']").click()

    section = page.locator("section#deployments")
    expect(section).to_be_visible()
    form = section.locator("#deploy-form")
    expect(form.get_by_label("Agent slug")).to_have_value(AGENT)
    expect(form.get_by_label("Model slug")).to_have_value(MODEL)
    expect(form.get_by_label("Model version")).to_have_value("1.0.0")
    form.get_by_label("Name (the slug's second part)").fill("reviewer-bot")
    form.get_by_label("Parameters (name=value, comma-separated)").fill("temperature=0.1")
    form.get_by_role("button", name="Deploy").click()
    deployed = answer(page, "deploy-result", 201)
    assert_safe(deployed)
    expect(deployed).to_contain_text("dep/dep-buyer/reviewer-bot")

    shown = answer(page, "deployment-result")
    expect(shown.locator("[data-testid=deployment-model]")).to_have_text(
        "dep/dep-buyer/reviewer-bot"
    )
    expect(shown.locator("[data-testid=deployment-state]")).to_have_text("active")
    expect(shown.locator("[data-testid=deployment-revision]")).to_have_text("1")
    terms = shown.locator("[data-testid=deployment-terms] tbody tr")
    expect(terms).to_have_count(2)
    expect(terms.locator("td[data-label=Royalty]")).to_have_text(["500 bps", "250 bps"])
    expect(shown.locator("[data-testid=deployment-capacity]")).to_contain_text("serving")
    expect(shown.locator("[data-testid=deployment-revisions] tbody tr")).to_have_count(1)
    listed = answer(page, "deployment-list-result")
    expect(
        listed.locator("button[data-deployment]", has_text="dep-buyer/reviewer-bot")
    ).to_be_visible()

    # A call through it: the arithmetic its flow_memory object gives, to the last digit.
    call = section.locator("#deployment-call-form")
    expect(call.get_by_label("Model")).to_have_value("dep/dep-buyer/reviewer-bot")
    call.get_by_role("button", name="Send").click()
    called = answer(page, "deployment-call-result")
    lines = called.locator("[data-testid=deployment-arithmetic]")
    expect(lines.locator("[data-line=total]")).not_to_be_empty()

    def amount(line: str) -> Decimal:
        return Decimal(lines.locator(f"[data-line={line}]").inner_text())

    cost, agent, model = amount("cost"), amount("agent"), amount("model")
    assert cost > 0 and (cost / Decimal(ASK)) % 1 == 0
    assert agent == cost * 500 / 10_000 and model == cost * 250 / 10_000
    assert amount("royalty_total") == agent + model
    assert amount("total") == cost + agent + model
    recorded = running.upstream.requests[-1].body
    assert recorded["model"] == UPSTREAM_MODEL and recorded["temperature"] == 0.1
    shot(page, artifacts, "deployment page")

    shown.locator("button[data-action=pause]").click()
    answer(page, "deployment-state-result")
    expect(page.locator("#deployment-result [data-testid=deployment-state]")).to_have_text("paused")
    page.locator("#deployment-result button[data-action=resume]").click()
    expect(page.locator("#deployment-result [data-testid=deployment-state]")).to_have_text("active")

    # The publisher's earnings: the two royalty lines, per day and per version.
    _royalties_written(running, keys["publisher"], 1)
    # The deployment's own calls and cost: the usage records of this deployment alone.
    listed.locator("button[data-deployment]", has_text="dep-buyer/reviewer-bot").click()
    usage = page.locator("#deployment-usage-result [data-testid=deployment-usage]")
    expect(usage.locator("[data-testid=deployment-calls] .value")).to_have_text("1")
    assert Decimal(usage.locator("[data-testid=deployment-cost] .value").inner_text()) == cost
    page = page.context.new_page()  # a new tab: its own session storage, the publisher's key
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    open_dashboard(page, running, keys["publisher"])
    go(page, "earnings")
    earnings = answer(page, "earnings-result")
    assert_safe(earnings)
    expect(earnings.locator("[data-testid=earnings-calls] .value")).to_have_text("2")
    assert (
        Decimal(earnings.locator("[data-testid=earnings-total] .value").inner_text())
        == agent + model
    )
    expect(earnings.locator("[data-testid=earnings-chart] rect.bar")).to_have_count(1)
    versions = earnings.locator("[data-testid=earnings-version]")
    expect(versions).to_have_count(2)
    expect(versions.locator("[data-testid=earnings-version-chart]")).to_have_count(2)
    agent_version = earnings.locator(f"[data-version='{AGENT}@1.0.0']")
    total = agent_version.locator("[data-testid=earnings-version-total]").inner_text()
    assert Decimal(total) == agent
    shot(page, artifacts, "earnings")


def test_a_solution_is_deployed_from_its_page_and_an_unknown_override_is_refused(
    page: Any, running: Running, keys: dict[str, IssuedKey], artifacts: Path
) -> None:
    open_dashboard(page, running, keys["buyer"])
    go(page, "registry")
    entry = page.locator("#registry-entry-form")
    entry.get_by_label("Kind").select_option("solution")
    entry.get_by_label("Slug").fill(SOLUTION)
    entry.get_by_role("button", name="Show entry").click()
    answer(page, "registry-entry-result").locator("[data-testid=registry-deploy]").click()

    form = page.locator("#deploy-form")
    expect(form.get_by_label("Deploy from")).to_have_value("solution")
    expect(form.get_by_label("Solution slug")).to_have_value(SOLUTION)
    expect(form.get_by_label("Agent slug")).to_be_hidden()
    form.get_by_label("Parameters (name=value, comma-separated)").fill("top_k=5")
    form.get_by_role("button", name="Deploy").click()
    with running.server.client() as client:
        refused = client.post(
            "/inference/deployments",
            json={"solution": {"slug": SOLUTION}, "configuration": {"parameters": {"top_k": 5}}},
            headers=keys["buyer"].headers,
        )
    expected = refused.json()["error"]
    error = answer(page, "deploy-result", 422)
    expect(error.locator("[data-error=code]")).to_have_text(expected["code"])
    expect(error.locator("[data-error=field]")).to_have_text("configuration.parameters.top_k")

    form.get_by_label("Parameters (name=value, comma-separated)").fill("")
    form.get_by_role("button", name="Deploy").click()
    answer(page, "deploy-result", 201)
    shown = answer(page, "deployment-result")
    expect(shown).to_contain_text(f"{SOLUTION}@1.0.0")
    expect(shown).to_contain_text("Review briefly.")
    shot(page, artifacts, "deployment from a solution")

    # From an agent: the form finds the models that fit it and takes the one picked.
    form.get_by_label("Deploy from").select_option("agent")
    form.get_by_label("Agent slug").fill(AGENT)
    form.get_by_label("Model slug").fill("")
    form.get_by_role("button", name="Find compatible models").click()
    found = answer(page, "deploy-compatible-result")
    found.locator(f"button[data-model='{MODEL}']").click()
    expect(form.get_by_label("Model slug")).to_have_value(MODEL)
    expect(form.get_by_label("Model version")).to_have_value("1.0.0")


def test_deployments_and_earnings_fit_a_phone_width(
    phone_page: Any, running: Running, keys: dict[str, IssuedKey], artifacts: Path
) -> None:
    page = phone_page
    with running.server.client() as client:
        body = {"name": "phone-bot", "agent": {"slug": AGENT}, "model": {"slug": MODEL}}
        made = client.post("/inference/deployments", json=body, headers=keys["buyer"].headers)
    deployment_id = ok(made, 201)["deployment"]["deployment_id"]
    open_dashboard(page, running, keys["buyer"])
    go(page, "deployments")
    listed = answer(page, "deployment-list-result")
    listed.locator(f"button[data-deployment='{deployment_id}']").click()
    answer(page, "deployment-result")
    page.wait_for_load_state("networkidle")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    shot(page, artifacts, "phone deployments")
    go(page, "earnings")
    answer(page, "earnings-result")
    page.wait_for_load_state("networkidle")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    shot(page, artifacts, "phone earnings")
