"""Reputation on the dashboard: an agent's standing on its profile and its reputation page
(score, components, earned capacity, the outcomes as a chart and a table), each figure the
text the API answered; the Validators view (the list, joining and withdrawing through the
forms, any identity's reputation); a bidder's stakes placed and withdrawn in the Jobs view; and
a job's verdict and dispute recorded from the page and shown on its timeline.

Outcomes and a job's validation have no route of their own: the job board records and opens
them in its transactions, and so does this test, through the same service calls, on the server's
database. Everything else is set up through the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from flow_memory.kit.db import make_engine
from flow_memory.reputation import domain
from flow_memory.reputation import service as reputation
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

MODEL = "reputation-chat"
JUDGES = ("rep-judge-a", "rep-judge-b", "rep-judge-c")
# (kind, job value in credits): what the job board will record for a bidder over a few days.
OUTCOMES = (
    ("completion_good", "1"),
    ("completion_good", "2.5"),
    ("late", "2.5"),
    ("no_show", "0.4"),
    ("known_answer_pass", "1"),
    ("dispute_lost", "3"),
    ("completion_good", "0.75"),
    ("validator_agreed", "1"),
)
BIDDER_FIGURES = (
    "completions",
    "judged",
    "acceptance_rate",
    "on_time_rate",
    "late",
    "no_shows",
    "disputes_won",
    "disputes_lost",
    "known_answer_jobs",
    "known_answer_pass_rate",
)
CAPACITY_FIGURES = ("points", "earned", "held")


def exact(response: httpx.Response) -> dict[str, Any]:
    """An answer's body with every decimal kept as the text the API sent."""
    assert response.status_code < 300, response.text
    body: dict[str, Any] = json.loads(response.text, parse_float=str)
    return body


def shown(number: Any) -> str:
    """A figure as the page prints it: the exact text, whole numbers grouped, null as null."""
    if number is None:
        return "null"
    if isinstance(number, bool):
        return str(number).lower()
    if isinstance(number, int):
        return f"{number:,}"
    return str(number)


def record_outcomes(running: Running, identity_id: str) -> None:
    """Record OUTCOMES for ``identity_id`` a day apart, as the job board does when jobs end."""
    engine = make_engine(running.deployment.database_url)
    start = datetime.now(UTC) - timedelta(days=len(OUTCOMES))
    try:
        with Session(engine) as session, session.begin():
            for index, (kind, value) in enumerate(OUTCOMES):
                reputation.record_outcome(
                    session,
                    identity_id=identity_id,
                    kind=kind,
                    value=Decimal(value),
                    now=start + timedelta(days=index),
                    half_life_days=Decimal(30),
                    job_id=f"job_reputation_{index}",
                )
    finally:
        engine.dispose()


def scores_after_each(page_of: dict[str, Any]) -> dict[str, Decimal]:
    """Each outcome's role's score right after it, by the rule itself (``domain.add``)."""
    half_life = Decimal(str(page_of["half_life_days"]))
    found: dict[str, Decimal] = {}
    for role in ("bidder", "validator"):
        record = domain.Record()
        for outcome in reversed(page_of["history"]):
            if outcome["role"] != role:
                continue
            record = domain.add(
                record,
                good=Decimal(str(outcome["good"])),
                bad=Decimal(str(outcome["bad"])),
                at=datetime.fromisoformat(outcome["recorded_at"].replace("Z", "+00:00")),
                half_life_days=half_life,
            )
            found[outcome["outcome_id"]] = record.score
    return found


def use_key(page: Any, key: IssuedKey) -> None:
    """Paste another key into the open dashboard."""
    page.locator("#key-toggle").click()
    page.get_by_label("Flow Memory API key").fill(key.secret)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-label")).to_contain_text(key.secret[-4:])


def figure(frame: Any, name: str) -> Any:
    return frame.locator(f"[data-figure={name}]").first


def test_an_agents_page_shows_its_reputation_exactly_as_the_api_answers_it(
    page: Any, running: Running, artifacts: Path
) -> None:
    with running.server.client() as client:
        agent = ok(
            client.post(
                "/inference/agents",
                json={"kind": "bound", "display_name": "Reputed agent"},
                headers=running.operator.headers,
            ),
            201,
        )["agent"]
        agent_id = agent["agent_id"]
        assert agent["standing"] == {"bidder": 0.5, "validator": 0.5}
        record_outcomes(running, agent_id)
        ok(
            client.post(
                "/inference/stakes",
                json={"identity_id": agent_id, "amount": "2.5"},
                headers=running.operator.headers,
            ),
            201,
        )
        profile = exact(
            client.get(f"/inference/agents/{agent_id}", headers=running.operator.headers)
        )["agent"]
        page_of = exact(
            client.get(f"/inference/reputation/{agent_id}", headers=running.operator.headers)
        )["reputation"]
    assert len(page_of["history"]) == len(OUTCOMES)
    assert profile["standing"]["bidder"] == page_of["bidder"]["standing"] != "0.5"

    open_dashboard(page, running, running.operator)
    go(page, "agents")
    page.locator("#agent-form").get_by_label("Agent id").fill(agent_id)
    page.locator("#agent-form").get_by_role("button", name="Show agent").click()
    shown_profile = answer(page, "agent-result")
    expect(shown_profile.locator("[data-testid=agent-bidder-standing]")).to_have_text(
        shown(profile["standing"]["bidder"])
    )
    expect(shown_profile.locator("[data-testid=agent-validator-standing]")).to_have_text(
        shown(profile["standing"]["validator"])
    )

    frame = answer(page, "agent-reputation-result")
    assert_safe(frame)
    bidder = page_of["bidder"]
    expect(figure(frame, "standing")).to_have_text(shown(bidder["standing"]))
    expect(figure(frame, "score")).to_have_text(shown(bidder["score"]))
    expect(figure(frame, "good")).to_have_text(shown(bidder["good"]))
    expect(figure(frame, "bad")).to_have_text(shown(bidder["bad"]))
    expect(figure(frame, "validator_score")).to_have_text(shown(page_of["validator"]["score"]))
    for name in BIDDER_FIGURES:
        expect(figure(frame, name)).to_have_text(shown(bidder["components"][name]))
    for name in CAPACITY_FIGURES:
        expect(figure(frame, name)).to_have_text(shown(bidder["capacity"][name]))
    expect(figure(frame, "capacity_stake")).to_have_text(shown(bidder["capacity"]["stake"]))
    expect(figure(frame, "capacity_limit")).to_have_text(shown(bidder["capacity"]["limit"]))
    validator = page_of["validator"]
    for name in ("verdicts", "agreed", "agreement_rate"):
        expect(figure(frame, name)).to_have_text(shown(validator["components"][name]))

    # The chart draws one slot per outcome, oldest first, each with the API's exact weights.
    slots = frame.locator("[data-testid=outcome-chart] g[data-outcome]")
    expect(slots).to_have_count(len(OUTCOMES))
    oldest_first = list(reversed(page_of["history"]))
    for index, outcome in enumerate(oldest_first):
        slot = slots.nth(index)
        expect(slot).to_have_attribute("data-kind", outcome["kind"])
        expect(slot).to_have_attribute("data-good", shown(outcome["good"]))
        expect(slot).to_have_attribute("data-bad", shown(outcome["bad"]))
    # The standing chart: each role's score after each outcome, worked back from the record;
    # the newest point of each role is the API's score, the others the rule's own scores.
    dots = frame.locator("[data-testid=standing-chart] circle[data-outcome]")
    expect(dots).to_have_count(len(OUTCOMES))
    after = scores_after_each(page_of)
    for index, outcome in enumerate(oldest_first):
        dot = dots.nth(index)
        expect(dot).to_have_attribute("data-role", outcome["role"])
        drawn = Decimal(str(dot.get_attribute("data-score")))
        assert abs(drawn - after[outcome["outcome_id"]]) < Decimal("0.000002"), outcome
    for role in ("bidder", "validator"):
        newest = next(o for o in page_of["history"] if o["role"] == role)
        newest_dot = frame.locator(
            f"[data-testid=standing-chart] [data-outcome={newest['outcome_id']}]"
        )
        expect(newest_dot).to_have_attribute("data-score", shown(page_of[role]["score"]))
    lines = frame.locator("[data-testid=standing-chart] polyline")
    expect(lines).to_have_count(2)
    rows = frame.locator("[data-testid=reputation-history] tbody tr")
    expect(rows).to_have_count(len(OUTCOMES))
    newest = page_of["history"][0]
    expect(rows.first.locator("td[data-label=Outcome]")).to_have_text(newest["kind"])
    expect(rows.first.locator("td[data-label=Bad]")).to_have_text(shown(newest["bad"]))
    shot(page, artifacts, "reputation agent page")


@pytest.fixture(scope="module")
def judges(running: Running) -> dict[str, IssuedKey]:
    """Three validators who opted in through the API, each with a key of its own."""
    keys = {}
    with running.server.client() as client:
        for name in JUDGES:
            keys[name] = running.deployment.create_key(name, "inference:validate,inference:read")
            ok(
                client.post(
                    "/inference/validators", json={"stake": "1"}, headers=keys[name].headers
                ),
                201,
            )
    return keys


def test_validators_and_stakes_are_listed_joined_placed_and_withdrawn_from_the_page(
    page: Any, running: Running, judges: dict[str, IssuedKey], artifacts: Path
) -> None:
    open_dashboard(page, running, running.operator)
    go(page, "validators")
    listing = answer(page, "validators-result")
    assert_safe(listing)
    with running.server.client() as client:
        listed = exact(client.get("/inference/validators", headers=running.operator.headers))
    for row in listed["validators"]:
        line = listing.locator("tbody tr").filter(has_text=row["identity_id"])
        expect(line.locator("td[data-label=Standing]")).to_have_text(shown(row["standing"]))
        expect(line.locator("td[data-label=Stake]")).to_have_text(shown(row["stake"]))
    assert {row["identity_id"] for row in listed["validators"]} >= set(JUDGES)
    # Each one's share of the draw weight, standing * sqrt(stake), among those listed.
    weights = {
        row["identity_id"]: float(row["standing"]) * float(row["stake"]) ** 0.5
        for row in listed["validators"]
    }
    for identity_id, weight in weights.items():
        line = listing.locator("tbody tr").filter(has_text=identity_id)
        drawn = line.locator("td[data-label='Share of draws'] [data-share]")
        share = float(str(drawn.get_attribute("data-share")))
        assert abs(share - weight / sum(weights.values())) < 1e-9, identity_id
        expect(drawn).to_have_text(f"≈ {100 * share:.1f} %")

    join = page.locator("#validator-join-form")
    join.get_by_label("Stake (USD_CREDIT)").fill("0.75")
    join.get_by_role("button", name="Join validators").click()
    joined = answer(page, "validator-join-result", 201)
    assert_safe(joined)
    expect(figure(joined, "stake")).to_have_text("0.75")
    with running.server.client() as client:
        mine = [
            row
            for row in exact(client.get("/inference/validators", headers=running.operator.headers))[
                "validators"
            ]
            if row["identity_id"] == "dashboard-operator"
        ]
    assert [row["stake"] for row in mine] == ["0.75"]
    expect(figure(joined, "standing")).to_have_text(shown(mine[0]["standing"]))
    operator_row = page.locator("#validators-result tbody tr").filter(has_text="dashboard-operator")
    expect(operator_row.locator("td[data-label=Stake]")).to_have_text("0.75")

    withdraw = page.locator("#validator-withdraw-form")
    withdraw.get_by_label("Validator to withdraw").fill("dashboard-operator")
    withdraw.get_by_role("button", name="Withdraw").click()
    expect(answer(page, "validator-join-result")).to_contain_text("withdrawn")
    expect(
        page.locator("#validators-result tbody tr").filter(has_text="dashboard-operator")
    ).to_have_count(0)

    # Stakes, where a bidder looks: the Jobs view.
    go(page, "jobs")
    answer(page, "stakes-result")
    place = page.locator("#stake-place-form")
    place.get_by_label("Amount (USD_CREDIT)").fill("1.125")
    place.get_by_role("button", name="Place stake").click()
    placed = answer(page, "stake-action-result", 201)
    assert_safe(placed)
    expect(figure(placed, "amount")).to_have_text("1.125")
    stake_id = placed.locator("dd code").first.text_content()
    assert stake_id
    line = page.locator("#stakes-result tbody tr").filter(has_text=stake_id)
    expect(line.locator("td[data-label=Staked]")).to_have_text("1.125")
    expect(line.locator("td[data-label=Status]")).to_have_text("active")
    with running.server.client() as client:
        stakes = exact(
            client.get(
                "/inference/stakes",
                params={"identity_id": "dashboard-operator"},
                headers=running.operator.headers,
            )
        )["stakes"]
    assert [s["amount"] for s in stakes if s["stake_id"] == stake_id] == ["1.125"]

    line.get_by_role("button", name="Withdraw").click()
    expect(answer(page, "stake-action-result")).to_contain_text("withdrawn")
    expect(
        page.locator("#stakes-result tbody tr")
        .filter(has_text=stake_id)
        .locator("td[data-label=Status]")
    ).to_have_text("withdrawn")
    shot(page, artifacts, "reputation stakes")

    go(page, "validators")
    form = page.locator("#reputation-form")
    form.get_by_label("Identity id").fill(JUDGES[0])
    form.get_by_role("button", name="Show reputation").click()
    judge_page = answer(page, "reputation-result")
    expect(figure(judge_page, "opted_in")).to_have_text("true")
    expect(figure(judge_page, "validator_stake")).to_have_text("1")
    shot(page, artifacts, "reputation validators")


def test_a_jobs_verdict_and_dispute_are_recorded_from_the_page_and_shown(
    page: Any, running: Running, judges: dict[str, IssuedKey], artifacts: Path
) -> None:
    seller = running.deployment.create_key("rep-seller", "inference:sell,inference:read")
    operator = running.operator.headers
    with running.server.client() as client:
        provider = seed_provider(
            client,
            seller.headers,
            name="rep-seller runtime",
            base_url=running.upstream.base_url,
            model=MODEL,
            ask_unit_price="0.000001",
        )
        ok(client.post("/inference/stakes", json={"amount": "1"}, headers=seller.headers), 201)
        job = {
            "request": {"model_hint": "chat", "prompt": "Name a prime.", "max_tokens": 16},
            "economics": {"max_price": "0.5", "payment_mode": "auction"},
            "bid_window_seconds": 3600,
            "deadline_seconds": 600,
        }
        job_id = ok(client.post("/inference/jobs", json=job, headers=operator), 201)["job"][
            "job_id"
        ]
        bid = {"provider_id": provider.provider_id, "model": MODEL, "price": "0.25"}
        bid["estimated_time_s"] = 5
        ok(client.post(f"/inference/jobs/{job_id}/bids", json=bid, headers=seller.headers), 201)
        ok(client.post(f"/inference/jobs/{job_id}/award", headers=operator))
        ok(client.get(f"/inference/jobs/{job_id}/assignment", headers=seller.headers))
        result = {
            "output": "Nine.",
            "model": MODEL,
            "usage": {"prompt_tokens": 4, "completion_tokens": 2},
        }
        # The result opens its judging: the requester (the dashboard's operator) judges it.
        uploaded = ok(
            client.post(f"/inference/jobs/{job_id}/result", json=result, headers=seller.headers),
            201,
        )
        assert uploaded["job"]["status"] == "submitted"

    open_dashboard(page, running, running.operator)
    go(page, "jobs")
    page.locator("#job-form").get_by_label("Job id").fill(job_id)
    page.locator("#job-form").get_by_role("button", name="Show job").click()
    panel = answer(page, "job-result").locator("[data-testid=job-judging-panel]")
    rows = page.locator("#job-result [data-testid=job-judging] tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td[data-label=Kind]")).to_have_text("job.validation_opened")

    verdict = panel.locator("[data-testid=verdict-form]")
    verdict.get_by_label("Decision").select_option("reject")
    verdict.get_by_label("Score (0 to 1)").fill("0.125")
    verdict.get_by_label("Reason").fill("Nine is not a prime")
    verdict.get_by_role("button", name="Record verdict").click()
    judged = answer(page, "job-action-result", 201)
    assert_safe(judged)
    expect(judged.locator("[data-testid=validation-status]")).to_have_text("rejected")
    expect(judged.locator("[data-testid=validation-score]")).to_have_text("0.125")
    # The timeline's judging events (which name no judge), then the verdict as answered.
    expect(rows.locator("td[data-label=Kind]")).to_have_text(
        ["job.validation_opened", "job.verdict", "job.rejected", "verdict (requester)"]
    )
    event = rows.nth(1)
    expect(event.locator("td[data-label=By]")).to_have_text("requester")
    expect(event.locator("td[data-label=Decision]")).to_have_text("reject")
    expect(event.locator("td[data-label=Reason]")).to_have_text("—")
    answered = rows.nth(3)
    expect(answered.locator("td[data-label=Decision]")).to_have_text("reject")
    expect(answered.locator("td[data-label=Score]")).to_have_text("0.125")
    expect(answered.locator("td[data-label=Reason]")).to_have_text("Nine is not a prime")
    expect(page.locator("#job-result [data-testid=job-status]")).to_have_text("rejected")

    # A second verdict is refused, shown as the API gives it.
    verdict = page.locator("#job-result [data-testid=verdict-form]")
    verdict.get_by_label("Score (0 to 1)").fill("0.5")
    verdict.get_by_label("Reason").fill("again")
    verdict.get_by_role("button", name="Record verdict").click()
    refused = answer(page, "job-action-result", 409)
    expect(refused.locator("[data-error=code]")).to_have_text("verdict_closed")

    # The winner disputes from its own key: three fresh validators are drawn to decide.
    use_key(page, seller)
    go(page, "jobs")
    page.locator("#job-form").get_by_label("Job id").fill(job_id)
    page.locator("#job-form").get_by_role("button", name="Show job").click()
    dispute = answer(page, "job-result").locator("[data-testid=dispute-form]")
    dispute.get_by_label("Dispute reason").fill("The request asked for a number")
    dispute.get_by_role("button", name="Dispute the rejection").click()
    disputed = answer(page, "job-action-result", 201)
    assert_safe(disputed)
    expect(disputed.locator("[data-testid=validation-status]")).to_have_text("disputed")
    drawn = disputed.locator("[data-testid=job-validation] tbody tr")
    expect(drawn).to_have_count(len(JUDGES))
    for name in JUDGES:
        expect(drawn.filter(has_text=name)).to_have_count(1)
    rows = page.locator("#job-result [data-testid=job-judging] tbody tr")
    expect(rows.filter(has_text="job.disputed")).to_have_count(1)
    disputed_row = rows.filter(has_text="answer to this page").filter(has_text="dispute")
    expect(disputed_row.locator("td[data-label=By]")).to_have_text("rep-seller")

    # The whole validation: the verdict with its reason, the rejection, the open dispute.
    page.locator("#job-result [data-testid=show-validation]").click()
    whole = answer(page, "job-action-result")
    assert_safe(whole)
    detail = whole.locator("[data-testid=job-validation-detail]")
    expect(detail.locator("[data-testid=validation-status]")).to_have_text("disputed")
    expect(detail).to_contain_text("Nine is not a prime")
    expect(detail).to_contain_text("Fees are paid when the validation ends.")

    # The three validators accept: the dispute is won, the job completes, and its judging shows
    # the completion the decision led to, as the timeline does.
    with running.server.client() as client:
        for name in JUDGES:
            body = {"decision": "accept", "score": "0.875", "reason": "A number was asked"}
            ok(
                client.post(
                    f"/inference/jobs/{job_id}/verdicts", json=body, headers=judges[name].headers
                ),
                201,
            )
        events = ok(client.get(f"/inference/jobs/{job_id}", headers=seller.headers))["job"][
            "events"
        ]
    completed = [e for e in events if e["kind"] == "job.completed"]
    assert [e["payload"]["decision"] for e in completed] == ["overturned"]
    page.locator("#job-form").get_by_role("button", name="Show job").click()
    expect(page.locator("#job-result [data-testid=job-status]")).to_have_text("completed")
    rows = page.locator("#job-result [data-testid=job-judging] tbody tr")
    done = rows.filter(has_text="job.completed")
    expect(done).to_have_count(1)
    expect(done.locator("td[data-label=Decision]")).to_have_text("overturned")
    expect(rows.filter(has_text="job.verdict")).to_have_count(1 + len(JUDGES))
    timeline = page.locator("#job-result [data-testid=job-timeline] tbody tr")
    expect(
        timeline.filter(has_text="job.completed").locator("td[data-label=Details]")
    ).to_contain_text("decision: overturned")
    shot(page, artifacts, "reputation job verdicts")


def test_the_validators_view_fits_a_phone(
    phone_page: Any, running: Running, judges: dict[str, IssuedKey], artifacts: Path
) -> None:
    page = phone_page
    open_dashboard(page, running, running.operator)
    go(page, "validators")
    answer(page, "validators-result")
    form = page.locator("#reputation-form")
    form.get_by_label("Identity id").fill(JUDGES[0])
    form.get_by_role("button", name="Show reputation").click()
    expect(answer(page, "reputation-result").locator("[data-testid=outcome-chart]")).to_be_visible()
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    shot(page, artifacts, "phone validators")
