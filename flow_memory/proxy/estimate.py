"""A call's estimated units, from its request alone (pure; no I/O).

The estimate is written on the call's usage record (``estimated_units``, and
``estimated_cost`` at the route's unit price) before anything is known of the answer:

- priced per ``request``: 1;
- priced per ``token``: the prompt's tokens plus the answer's allowance, at least 1:
  - the prompt: its text at four characters a token, rounded up (chat: the text of every
    message's content; responses: ``instructions`` and the text of ``input``; embeddings: each
    text of ``input`` on its own, and a token array at its length);
  - the allowance: ``max_completion_tokens`` or ``max_tokens`` (chat, times ``n`` answers),
    ``max_output_tokens`` (responses), or ``DEFAULT_ANSWER_TOKENS`` when the call sets none;
    embeddings answer no tokens.

A call whose ``flow_memory`` options name ``estimated_units`` is recorded with that number
instead: the caller knows its traffic better than any rule."""

from __future__ import annotations

from typing import Any, TypeGuard

from flow_memory.proxy.translate import DEFAULT_MAX_TOKENS, Json, estimate_tokens, prompt_text

# The answer's allowance when a call sets no limit: the limit the proxy itself sends a
# messages-style provider for such a call.
DEFAULT_ANSWER_TOKENS = DEFAULT_MAX_TOKENS


def estimated_units(kind: str, body: Json, unit_type: str) -> int:
    """The call's units as estimated from its request (see the module's rule)."""
    if unit_type != "token":
        return 1
    return max(1, prompt_tokens(kind, body) + answer_tokens(kind, body))


def prompt_tokens(kind: str, body: Json) -> int:
    """The prompt's tokens at four characters a token."""
    if kind != "embeddings":
        return estimate_tokens(prompt_text(body))
    source = body.get("input")
    items: list[Any] = source if isinstance(source, list) else [source]
    if items and all(_whole(item) for item in items):
        return len(items)  # one input given as a token array
    tokens = 0
    for item in items:
        if isinstance(item, str):
            tokens += estimate_tokens(item)
        elif isinstance(item, list):
            tokens += len(item)
    return tokens


def answer_tokens(kind: str, body: Json) -> int:
    """The tokens the answer may take: the call's own limit, or the default."""
    if kind == "embeddings":
        return 0
    if kind == "chat":
        limit = _limit(body, "max_completion_tokens", "max_tokens")
        choices = body.get("n")
        return limit * (choices if _whole(choices) and choices > 1 else 1)
    return _limit(body, "max_output_tokens")


def _limit(body: Json, *names: str) -> int:
    for name in names:
        value = body.get(name)
        if _whole(value) and value > 0:
            return int(value)
    return DEFAULT_ANSWER_TOKENS


def _whole(value: Any) -> TypeGuard[int]:
    """A JSON whole number (not true or false, which Python counts as integers)."""
    return isinstance(value, int) and not isinstance(value, bool)
