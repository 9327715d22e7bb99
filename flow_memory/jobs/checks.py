"""Automatic checks of a job's result, shown with it to whoever judges it: the model the
result claims is the model awarded, the usage it reports is plausible for its text (counted
here, not trusted), and it arrived before its deadline. They read no database: the archived
result, its job and its winning bid are all they need, so every reader of a result sees the
same checks, computed the same way.

The usage rule (it holds for any tokenizer that encodes text as bytes, and leaves room for
what a model counts that the text does not show):
- a token rarely covers more than one word, so a text of P pieces (each run of letters or
  digits, and each other visible character, is a piece) is at least ``P // 4`` tokens: fewer
  reported is implausible, for the prompt and for the completion;
- a completion never exceeds the job's ``max_tokens``, and is bounded by nothing else: a
  reasoning model counts its hidden reasoning among its completion tokens;
- a token covers at least one byte, so a prompt of B bytes (UTF-8) is at most B tokens, plus
  ``TEMPLATE`` for the chat template's own (a default system prompt among them) and ``SLACK``
  more per message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flow_memory.jobs.models import Job, JobBid

SLACK = 16  # tokens a chat template adds per message (start, end, role markers)
TEMPLATE = 64  # tokens a chat template adds once (a default system prompt, dates)
PIECES_PER_TOKEN = 4
_PIECE = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)


def pieces(text: str) -> int:
    """Runs of letters or digits, and other visible characters, in ``text``."""
    return len(_PIECE.findall(text))


def token_range(texts: list[str]) -> tuple[int, int]:
    """The fewest and the most tokens a model may plausibly count for a prompt of ``texts``."""
    least = sum(pieces(text) for text in texts) // PIECES_PER_TOKEN
    most = sum(len(text.encode("utf-8")) for text in texts) + TEMPLATE + SLACK * len(texts)
    return least, most


def _usage_check(reported: int, least: int, most: int) -> dict[str, Any]:
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
    least_written = pieces(str(document["output"])) // PIECES_PER_TOKEN
    completion = _usage_check(int(usage["completion_tokens"]), least_written, job.max_tokens)
    prompt = _usage_check(int(usage["prompt_tokens"]), *token_range(request_texts(job.request)))
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
