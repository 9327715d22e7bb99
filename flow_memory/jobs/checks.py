"""Automatic checks of a job's result, shown with it to whoever judges it: the model the
result claims is the model awarded, the usage it reports is plausible for its text (counted
here, not trusted), and it arrived before its deadline. They read no database: the archived
result, its job and its winning bid are all they need, so every reader of a result sees the
same checks, computed the same way.

The usage rule, which holds for any tokenizer that encodes text as bytes:
- a token covers at least one byte (special tokens aside), so a text of B bytes (UTF-8) is at
  most B tokens: reported tokens above ``B + SLACK`` are implausible;
- a token rarely covers more than one word, so a text of P pieces (each run of letters or
  digits, and each other visible character, is a piece) is at least ``P // 4`` tokens:
  reported tokens below that are implausible;
- completion tokens never exceed the job's ``max_tokens``.
The prompt's tokens are checked the same way over the request's text (its prompt, or its
messages' contents), with ``SLACK`` more per message for the chat template's own tokens."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flow_memory.jobs.models import Job, JobBid

SLACK = 16  # tokens a model adds of its own (start, end, role markers)
PIECES_PER_TOKEN = 4
_PIECE = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)


def pieces(text: str) -> int:
    """Runs of letters or digits, and other visible characters, in ``text``."""
    return len(_PIECE.findall(text))


def token_range(texts: list[str]) -> tuple[int, int]:
    """The fewest and the most tokens a tokenizer may plausibly encode ``texts`` in."""
    least = sum(pieces(text) for text in texts) // PIECES_PER_TOKEN
    most = sum(len(text.encode("utf-8")) for text in texts) + SLACK * max(len(texts), 1)
    return least, most


def _usage_check(reported: int, texts: list[str], *, ceiling: int | None = None) -> dict[str, Any]:
    least, most = token_range(texts)
    if ceiling is not None:
        most = min(most, ceiling)
    return {
        "passed": least <= reported <= most,
        "reported": reported,
        "plausible_from": least,
        "plausible_to": most,
    }


def request_texts(request: Mapping[str, Any]) -> list[str]:
    """The text of a job's request: its prompt, or each message's content."""
    if request.get("prompt") is not None:
        return [str(request["prompt"])]
    return [str(message.get("content", "")) for message in request.get("messages") or []]


def result_checks(
    job: Job, winner: JobBid, document: Mapping[str, Any], *, arrived_at: datetime
) -> dict[str, Any]:
    """The checks of one archived result (``document``: its model, output and usage)."""
    usage = document["usage"]
    model = {
        "passed": document["model"] == winner.model,
        "awarded": winner.model,
        "claimed": document["model"],
    }
    completion = _usage_check(
        int(usage["completion_tokens"]), [str(document["output"])], ceiling=job.max_tokens
    )
    prompt = _usage_check(int(usage["prompt_tokens"]), request_texts(job.request))
    due = job.result_due_at
    on_time = {
        "passed": due is None or arrived_at <= due,
        "arrived_at": arrived_at,
        "result_due_at": due,
    }
    checks = {
        "model_awarded": model,
        "completion_tokens_plausible": completion,
        "prompt_tokens_plausible": prompt,
        "on_time": on_time,
    }
    return {"passed": all(check["passed"] for check in checks.values()), **checks}
