"""The Agents and Ledger views: a free agent registered through the form and listed, its granted
balance and the grant entry shown, its metabolism drawn, and the issuance account (the one
account always below zero) marked as below zero in the ledger lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Running
from tests.browser.dashboard import answer, assert_safe, expect, go, ok, open_dashboard, shot

pytestmark = pytest.mark.browser


def test_a_free_agent_is_registered_listed_granted_and_shown_with_its_metabolism(
    page: Any, running: Running, artifacts: Path
) -> None:
    open_dashboard(page, running, running.operator)
    section = go(page, "agents")
    answer(page, "agents-list-result")

    form = page.locator("#agent-register-form")
    form.get_by_label("Kind").select_option("free")
    form.get_by_label("Display name").fill("Metabolic agent")
    form.get_by_label("Description").fill("Pays for its own inference")
    form.get_by_label("Values (one a line, optional)").fill("Be useful\nSpend with care")
    form.get_by_role("button", name="Register agent").click()
    registered = answer(page, "agent-register-result", 201)
    assert_safe(registered)
    expect(registered).to_contain_text("Metabolic agent")
    agent_id = page.locator("#agent-form input[name=agent_id]").input_value()
    assert agent_id.startswith("agent_"), agent_id

    listing = answer(page, "agents-list-result")
    row_button = listing.locator(f"button[data-agent='{agent_id}']")
    expect(row_button).to_have_text("Metabolic agent")

    with running.server.client() as client:
        granted = ok(
            client.post(
                "/inference/ledger/grants",
                json={
                    "holder_id": agent_id,
                    "amount": "25.5",
                    "idempotency_key": f"dashboard-grant-{agent_id}",
                    "memo": "starting credits",
                },
                headers=running.operator.headers,
            ),
            201,
        )
    account_id = granted["account"]["account_id"]

    row_button.click()
    profile = answer(page, "agent-result")
    expect(profile).to_contain_text(agent_id)
    expect(profile).to_contain_text("free")
    expect(profile).to_contain_text(account_id)

    account = answer(page, "agent-account-result")
    assert_safe(account)
    expect(account.locator("[data-testid=account-balance] .value")).to_have_text("25.5")
    expect(account.locator("[data-testid=account-available] .value")).to_have_text("25.5")
    expect(account.locator("[data-testid=below-zero]")).to_have_count(0)

    entries = answer(page, "agent-entries-result")
    grant_row = entries.locator("tbody tr")
    expect(grant_row).to_have_count(1)
    expect(grant_row.locator("td[data-label='Amount']")).to_have_text("25.5")
    expect(grant_row.locator("td[data-label='Cause']")).to_have_text("grant")
    expect(grant_row.locator("td[data-label='Memo']")).to_have_text("starting credits")

    metabolism = answer(page, "agent-metabolism-result")
    assert_safe(metabolism)
    expect(metabolism.locator("[data-testid=metabolism-balance] .value")).to_have_text("25.5")
    expect(metabolism.locator("[data-testid=metabolism-runway] .value")).to_have_text("no spend")
    chart = metabolism.locator("[data-testid=metabolism-chart] [data-testid=usage-chart]")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(14)
    metabolism.get_by_label("Metabolism chart metric").select_option("earned")
    expect(chart.locator(":scope > title")).to_have_text("Credits earned per day")
    expect(section.locator("[data-testid=metabolism] tbody tr")).to_have_count(14)
    shot(page, artifacts, "agents free agent")


def test_the_ledger_lookup_marks_an_account_below_zero(
    page: Any, running: Running, artifacts: Path
) -> None:
    with running.server.client() as client:
        agent = ok(
            client.post(
                "/inference/agents",
                json={"kind": "bound", "display_name": "Ledger agent"},
                headers=running.operator.headers,
            ),
            201,
        )["agent"]
        ok(
            client.post(
                "/inference/ledger/grants",
                json={
                    "holder_id": agent["agent_id"],
                    "amount": "3",
                    "idempotency_key": f"ledger-view-{agent['agent_id']}",
                },
                headers=running.operator.headers,
            ),
            201,
        )
    open_dashboard(page, running, running.operator)
    go(page, "ledger")
    every = answer(page, "ledger-result")
    assert_safe(every)
    issuance = every.locator("tbody tr").filter(has_text="system")
    expect(issuance.locator("[data-testid=below-zero]").first).to_be_visible()

    form = page.locator("#ledger-form")
    form.get_by_label("Holder id").fill(agent["agent_id"])
    form.get_by_role("button", name="Find accounts").click()
    found = answer(page, "ledger-result")
    rows = found.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td[data-label='Balance']")).to_have_text("3")
    rows.get_by_role("button", name="Entries").click()
    entries = answer(page, "ledger-entries-result")
    expect(entries.locator("tbody tr td[data-label='Cause']")).to_have_text(["grant"])
    shot(page, artifacts, "ledger lookup")


def test_an_unknown_agent_shows_the_api_error(page: Any, running: Running) -> None:
    open_dashboard(page, running, running.operator)
    go(page, "agents")
    form = page.locator("#agent-form")
    form.get_by_label("Agent id").fill("agent_missing")
    form.get_by_role("button", name="Show agent").click()
    shown = answer(page, "agent-result", 404)
    expect(shown.locator("[data-error=code]")).to_have_text("not_found")
