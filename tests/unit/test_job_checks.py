"""The automatic checks of a job's result: the model claimed, usage counted not trusted, and
the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flow_memory.jobs.checks import SLACK, TEMPLATE, pieces, result_checks, token_range
from flow_memory.jobs.models import Job, JobBid

DUE = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OUTPUT = "A sealed-bid auction collects private bids; the best one wins, unseen by the others."


def job(**overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "max_tokens": 200,
        "request": {"prompt": "Explain a sealed-bid auction in one sentence."},
        "result_due_at": DUE,
    }
    fields.update(overrides)
    return Job(**fields)


def winner(model: str = "flow-memory-orchestrator") -> JobBid:
    return JobBid(model=model)


def document(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "flow-memory-orchestrator",
        "output": OUTPUT,
        "usage": {"prompt_tokens": 12, "completion_tokens": 20},
    }
    body.update(overrides)
    return body


def test_an_honest_result_passes_every_check() -> None:
    checks = result_checks(job(), winner(), document(), arrived_at=DUE - timedelta(seconds=5))
    assert checks["passed"] is True
    assert {name for name in checks if name != "passed"} == {
        "model_awarded",
        "completion_tokens_plausible",
        "prompt_tokens_plausible",
        "on_time",
    }


def test_each_failure_is_named_and_fails_the_whole() -> None:
    cases = {
        "model_awarded": (job(), document(model="another-model"), DUE),
        "completion_tokens_plausible": (
            job(),
            document(usage={"prompt_tokens": 12, "completion_tokens": 1}),
            DUE,
        ),
        "prompt_tokens_plausible": (
            job(),
            document(usage={"prompt_tokens": 100_000, "completion_tokens": 20}),
            DUE,
        ),
        "on_time": (job(), document(), DUE + timedelta(microseconds=1)),
    }
    for name, (the_job, the_document, arrived) in cases.items():
        checks = result_checks(the_job, winner(), the_document, arrived_at=arrived)
        failed = {key for key, value in checks.items() if key != "passed" and not value["passed"]}
        assert failed == {name}, name
        assert checks["passed"] is False


def test_completion_tokens_never_exceed_the_jobs_max_tokens() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 30}
    checks = result_checks(job(max_tokens=25), winner(), document(usage=usage), arrived_at=DUE)
    assert checks["completion_tokens_plausible"]["plausible_to"] == 25
    assert checks["completion_tokens_plausible"]["passed"] is False


def test_messages_count_as_the_prompt() -> None:
    request = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    }
    checks = result_checks(job(request=request), winner(), document(), arrived_at=DUE)
    least, most = token_range(["Be brief.", "Hi"])
    assert (
        checks["prompt_tokens_plausible"]["plausible_from"],
        checks["prompt_tokens_plausible"]["plausible_to"],
    ) == (least, most)
    assert most == len("Be brief.") + len("Hi") + TEMPLATE + 2 * SLACK


def test_honest_usage_that_the_text_does_not_show_passes() -> None:
    """A reasoning model's hidden reasoning counts among its completion tokens, and a chat
    template's default system prompt among the prompt's: both within the rule."""
    usage = {"prompt_tokens": 40, "completion_tokens": 180}  # "Hi" with a template; reasoning
    checks = result_checks(
        job(request={"prompt": "Hi"}), winner(), document(output="42", usage=usage), arrived_at=DUE
    )
    assert checks["completion_tokens_plausible"]["passed"], checks
    assert checks["prompt_tokens_plausible"]["passed"], checks


@given(st.text(max_size=400))
def test_any_text_has_a_range_holding_its_byte_count_and_a_quarter_of_its_pieces(text: str) -> None:
    least, most = token_range([text])
    assert least == pieces(text) // 4
    assert most == len(text.encode("utf-8")) + TEMPLATE + SLACK
    assert least <= most
