"""The Jobs view: a job posted through the form and listed, bids placed through the API by two
sellers, the award made from the page, the winner's result uploaded through the API and shown
as text with every bid's reason and the job's timeline; and a sealed job as a bidder sees it
(no prompt, only its own bid, the API's refusal when it tries to cancel)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Running
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

MODEL = "jobs-chat"
# Eighteen decimals: a float would round it, so seeing it whole shows nothing was.
WINNING_PRICE = "0.123456789012345678"
LOSING_PRICE = "0.45"
OUTPUT = (
    "<b>Not bold</b> & <script>window.injected = 1</script>\n  A sealed-bid auction: one bid each."
)


@dataclass(frozen=True)
class Seller:
    owner_id: str
    key: IssuedKey
    provider_id: str


def _seller(running: Running, owner_id: str) -> Seller:
    key = running.deployment.create_key(owner_id, "inference:sell,inference:read")
    with running.server.client() as client:
        provider = seed_provider(
            client,
            key.headers,
            name=f"{owner_id} runtime",
            base_url=running.upstream.base_url,
            model=MODEL,
            ask_unit_price="0.000001",
        )
        # Bids need a bid stake; 5 covers as many jobs held at once as these tests give one.
        staked = client.post("/inference/stakes", json={"amount": "5"}, headers=key.headers)
        assert staked.status_code == 201, staked.text
    return Seller(owner_id, key, provider.provider_id)


@pytest.fixture(scope="module")
def sellers(running: Running) -> tuple[Seller, Seller]:
    """Two sellers, each with a key (sell, read) and a provider of MODEL."""
    return _seller(running, "jobs-seller-alpha"), _seller(running, "jobs-seller-beta")


def place_bid(client: httpx.Client, seller: Seller, job_id: str, price: str, seconds: int) -> str:
    body = {
        "provider_id": seller.provider_id,
        "model": MODEL,
        "price": price,
        "estimated_time_s": seconds,
    }
    placed = ok(
        client.post(f"/inference/jobs/{job_id}/bids", json=body, headers=seller.key.headers), 201
    )
    return str(placed["bid"]["bid_id"])


def post_job_by_form(page: Any, *, prompt: str, visibility: str) -> str:
    """Post an auction job through the form; its id, as the page filled it in."""
    form = page.locator("#job-post-form")
    form.get_by_label("Model hint").fill("chat")
    form.get_by_label("Prompt").fill(prompt)
    form.get_by_label("Max tokens").fill("64")
    form.get_by_label("Quality").select_option("high")
    form.get_by_label("Max price (USD_CREDIT, whole job)").fill("0.5")
    form.get_by_label("Payment mode").select_option("auction")
    # A long window: the award in these tests is the page's, never the timer's.
    form.get_by_label("Bid window (seconds)").fill("3600")
    form.get_by_label("Deadline after award (seconds)").fill("600")
    form.get_by_label("Visibility").select_option(visibility)
    form.get_by_label("Award the runner-up").check()
    form.get_by_role("button", name="Post job").click()
    posted = answer(page, "job-post-result", 201)
    assert_safe(posted)
    expect(posted).to_contain_text("open")
    job_id: str = page.locator("#job-form input[name=job_id]").input_value()
    assert job_id.startswith("job_"), job_id
    return job_id


def open_from_list(page: Any, job_id: str) -> Any:
    listing = answer(page, "jobs-list-result")
    listing.locator(f"button[data-job='{job_id}']").click()
    shown = answer(page, "job-result")
    expect(shown.locator("[data-testid=job]")).to_contain_text(job_id)
    return shown


def show_job_again(page: Any) -> None:
    page.locator("#job-form").get_by_role("button", name="Show job").click()


def bid_row(page: Any, bidder: str) -> Any:
    return page.locator("#job-result [data-testid=job-bids] tbody tr").filter(has_text=bidder)


def test_a_job_is_posted_bid_on_awarded_from_the_page_and_its_result_shown(
    page: Any, running: Running, sellers: tuple[Seller, Seller], artifacts: Path
) -> None:
    alpha, beta = sellers
    open_dashboard(page, running, running.operator)
    go(page, "jobs")
    answer(page, "jobs-list-result")
    prompt = "Explain a sealed-bid auction in two sentences."
    job_id = post_job_by_form(page, prompt=prompt, visibility="open")

    shown = open_from_list(page, job_id)
    assert_safe(shown)
    expect(shown.locator("[data-testid=job-status]")).to_have_text("open")
    expect(shown.locator("[data-testid=job-prompt]")).to_have_text(prompt)
    expect(shown.locator("[data-testid=job-max-price]")).to_have_text("0.5")
    expect(shown.locator("[data-testid=job-escrow]")).to_have_text("0.5")
    expect(shown.locator("[data-testid=job-bids]")).to_contain_text("No bids yet")
    expect(page.locator("#job-output-result")).to_contain_text("No result yet")

    with running.server.client() as client:
        winning_bid = place_bid(client, alpha, job_id, WINNING_PRICE, 5)
        place_bid(client, beta, job_id, LOSING_PRICE, 30)

    # Before the award the requester sees every bid, none with a reason yet.
    show_job_again(page)
    expect(page.locator("#job-result [data-testid=job-bids] tbody tr")).to_have_count(2)
    expect(bid_row(page, alpha.owner_id).locator("td[data-label=Price]")).to_have_text(
        WINNING_PRICE
    )
    expect(bid_row(page, alpha.owner_id).locator("td[data-label=Status]")).to_have_text("live")
    expect(bid_row(page, beta.owner_id).locator("td[data-label=Reason]")).to_have_text("—")

    page.get_by_role("button", name="Award best score now").click()
    awarded = answer(page, "job-action-result")
    expect(awarded).to_contain_text("awarded")
    status = page.locator("#job-result [data-testid=job-status]")
    expect(status).to_have_text("awarded")
    expect(page.locator("#job-result [data-testid=job-award]")).to_contain_text(winning_bid)
    expect(bid_row(page, alpha.owner_id).locator("td[data-label=Status]")).to_have_text("won")
    expect(bid_row(page, beta.owner_id).locator("td[data-label=Status]")).to_have_text("lost")
    expect(bid_row(page, beta.owner_id).locator("td[data-label=Reason]")).to_have_text("outbid")
    expect(page.locator("#job-result [data-testid=job-actions]")).to_have_count(0)
    expect(page.locator("#job-output-result")).to_contain_text("the winner uploads it by")

    with running.server.client() as client:
        ok(client.get(f"/inference/jobs/{job_id}/assignment", headers=alpha.key.headers))
        result = {
            "output": OUTPUT,
            "model": MODEL,
            "usage": {"prompt_tokens": 12, "completion_tokens": 20},
            "timings": {"total_s": "1.25"},
        }
        uploaded = ok(
            client.post(f"/inference/jobs/{job_id}/result", json=result, headers=alpha.key.headers),
            201,
        )
        assert uploaded["job"]["status"] == "submitted"  # the requester judges it
        # The requester (the dashboard's operator) accepts it: the job completes and pays.
        verdict = {"decision": "accept", "score": 0.9, "reason": "as asked"}
        ok(
            client.post(
                f"/inference/jobs/{job_id}/verdicts", json=verdict, headers=running.operator.headers
            ),
            201,
        )
    result_hash = uploaded["result"]["result_hash"]

    show_job_again(page)
    expect(status).to_have_text("completed")
    expect(page.locator("#job-result [data-testid=job-paid]")).to_have_text(WINNING_PRICE)
    kinds = page.locator("#job-result [data-testid=job-timeline] td[data-label=Event]")
    expect(kinds).to_have_text(
        [
            "job.posted",
            "job.bid_placed",
            "job.bid_placed",
            "job.awarded",
            "job.submitted",
            "job.validation_opened",
            "job.verdict",
            "job.completed",
        ]
    )
    archived = answer(page, "job-output-result")
    assert_safe(archived)
    expect(archived).to_contain_text(result_hash)
    output = archived.locator("[data-testid=job-output]")
    expect(output).to_contain_text("<b>Not bold</b>")
    assert output.text_content() == OUTPUT
    expect(output.locator("b, script")).to_have_count(0)
    assert page.evaluate("window.injected") is None
    # The automatic checks, counted by Flow Memory, are shown to whoever judges the result.
    checks = archived.locator("[data-testid=job-result-checks]")
    expect(checks.locator("h3")).to_contain_text("all passed")
    expect(checks.locator("tbody tr")).to_have_count(4)
    expect(checks.locator("td[data-label=Result]")).to_have_text(["passed"] * 4)

    go(page, "jobs")
    page.locator("#jobs-list-form").get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Load jobs").click()
    listed = answer(page, "jobs-list-result")
    expect(listed.locator("tbody tr")).to_have_count(1)
    expect(listed.locator(f"button[data-job='{job_id}']")).to_be_visible()
    shot(page, artifacts, "jobs completed job")


def test_a_sealed_job_shows_a_bidder_no_prompt_only_its_own_bid_and_the_api_refusal(
    page: Any, running: Running, sellers: tuple[Seller, Seller], artifacts: Path
) -> None:
    alpha, beta = sellers
    secret = "Sealed prompt: summarise the quarterly plan for project heron."
    open_dashboard(page, running, running.operator)
    go(page, "jobs")
    job_id = post_job_by_form(page, prompt=secret, visibility="sealed")
    with running.server.client() as client:
        place_bid(client, alpha, job_id, "0.2", 5)
        place_bid(client, beta, job_id, "0.25", 5)
        refused = client.post(f"/inference/jobs/{job_id}/cancel", headers=alpha.key.headers)
    assert refused.status_code == 403, refused.text
    expected = refused.json()["error"]

    page.evaluate("sessionStorage.clear()")  # the tab forgets the buyer's key
    open_dashboard(page, running, alpha.key)
    section = go(page, "jobs")
    shown = open_from_list(page, job_id)
    expect(shown.locator("[data-testid=job-sealed]")).to_be_visible()
    expect(shown.locator("[data-testid=job-prompt]")).to_have_count(0)
    rows = page.locator("#job-result [data-testid=job-bids] tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td[data-label=Bidder]")).to_have_text(alpha.owner_id)
    expect(section).not_to_contain_text(secret)
    expect(section).not_to_contain_text("heron")

    page.get_by_role("button", name="Cancel job").click()
    error = answer(page, "job-action-result", 403)
    expect(error.locator("[data-error=code]")).to_have_text(expected["code"])
    expect(error.locator("[data-error=message]")).to_have_text(expected["message"])
    expect(shown.locator("[data-testid=job-status]")).to_have_text("open")
    shot(page, artifacts, "jobs sealed job as a bidder")
