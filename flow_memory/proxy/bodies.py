"""An SDK call's body: parsed, checked and split into what goes to the provider and Flow
Memory's routing options, before any provider is called (pure; no I/O).

A body is refused when it holds forbidden material outside the prompt (422, as on every
route), and answered 400 (the SDK-compatible APIs' status for a bad request) when anything
else is wrong with it: it is not a JSON object, a field that is not the API's own, a required
field missing or of the wrong type, bad routing options. Every such problem is listed in the
error's ``problems``, so one round trip fixes them all. Problems name fields, never values:
prompts in particular are never repeated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from flow_memory.kit.errors import ForbiddenMaterial, Invalid, Problem
from flow_memory.kit.http import position_of, problems_error
from flow_memory.kit.safety import Finding, field_segment, find_forbidden
from flow_memory.proxy.schemas import ProxyOptions, parse_options
from flow_memory.proxy.translate import Json

# Fields that carry prompt text: passed to the provider as they are, never scanned or stored.
CONTENT_FIELDS = frozenset({"messages", "input", "instructions", "prompt", "system", "tools"})
# What an SDK body may carry to a provider, by API: its own fields (as the SDK-compatible APIs
# define them), and Flow Memory's routing options. Anything else is refused by name, so that
# nothing a caller adds (an execute flag, a safety field) reaches a provider unseen.
_SHARED_FIELDS = frozenset({"model", "user", "metadata", "flow_memory", "stream", "service_tier"})
SDK_FIELDS: dict[str, frozenset[str]] = {
    "chat": _SHARED_FIELDS
    | {
        "messages", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens",
        "max_completion_tokens", "n", "presence_penalty", "response_format", "seed", "stop",
        "stream_options", "temperature", "top_p", "tools", "tool_choice",
        "parallel_tool_calls", "functions", "function_call", "store", "reasoning_effort",
        "modalities", "audio", "prediction", "web_search_options", "verbosity",
        "prompt_cache_key", "safety_identifier",
    },
    "responses": _SHARED_FIELDS
    | {
        "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools",
        "tool_choice", "parallel_tool_calls", "previous_response_id", "store", "text",
        "reasoning", "truncation", "include", "background", "max_tool_calls", "prompt",
        "prompt_cache_key", "safety_identifier", "top_logprobs", "conversation",
        "stream_options",
    },
    "embeddings": _SHARED_FIELDS | {"input", "encoding_format", "dimensions"},
}  # fmt: skip
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
# Fields that bound an answer's length, by API: whole numbers of at least 1 when sent.
TOKEN_LIMITS: dict[str, tuple[str, ...]] = {
    "chat": ("max_tokens", "max_completion_tokens", "n"),
    "responses": ("max_output_tokens",),
    "embeddings": (),
}
HINTS = {
    "chat": 'send {"model": "…", "messages": [{"role": "user", "content": "…"}]}; '
    "see docs/INFERENCE_PROXY.md",
    "responses": 'send {"model": "…", "input": "…"}; see docs/INFERENCE_PROXY.md',
    "embeddings": 'send {"model": "…", "input": "…"} (or a list of texts); '
    "see docs/INFERENCE_PROXY.md",
}
MISSING = "missing_field"
INVALID = "invalid_request"
BAD_REQUEST = 400


@dataclass(frozen=True)
class CallBody:
    """A checked SDK call: the body that goes upstream (without ``flow_memory``), the routing
    options, and the ``flow_memory`` object as sent (to say where an option was read from)."""

    body: Json
    options: ProxyOptions
    sent_options: Any


def read_call(raw: bytes, kind: str, headers: dict[str, str]) -> CallBody:
    """Parse and check one SDK call's body; raises the one error that lists every problem."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _not_json(error, raw, kind) from None
    if not isinstance(body, dict):
        raise problems_error(
            [Problem(None, "the body must be a JSON object", INVALID)],
            hint=HINTS[kind],
            status_code=BAD_REQUEST,
        )
    # Everything but the prompt is checked for forbidden material, as on every other route.
    found = _forbidden_in({k: v for k, v in body.items() if k not in CONTENT_FIELDS})
    if found is not None:
        raise ForbiddenMaterial(
            f"{found.field} holds forbidden material ({found.kind.replace('_', ' ')}); "
            "the request was refused and nothing was stored",
            field=found.field,
            hint="provider credentials stay with the operator; send only routing options",
        )
    sent_options = body.pop("flow_memory", None)
    problems = body_problems(kind, body)
    options = parse_options(sent_options, headers)
    if isinstance(options, list):
        problems += options
    if problems:
        raise problems_error(problems, hint=HINTS[kind], status_code=BAD_REQUEST)
    assert isinstance(options, ProxyOptions)
    return CallBody(body, options, sent_options)


def _not_json(error: orjson.JSONDecodeError, raw: bytes, kind: str) -> Invalid:
    """What is wrong with a body that is not JSON, and where; never the text around it."""
    reason = str(error.msg or "invalid JSON")
    reason = reason[:1].lower() + reason[1:]
    text = raw.decode("utf-8", "replace")
    line, column = position_of(text, error.pos)
    where = f" at line {line}, column {column}" if text else ""
    message = f"the body is not valid JSON: {reason}{where}"
    return problems_error(
        [Problem(None, message, "invalid_json")], hint=HINTS[kind], status_code=BAD_REQUEST
    )


def body_problems(kind: str, body: Json) -> list[Problem]:
    """Every problem with an SDK body's own fields (``flow_memory`` taken out), in field
    order: fields that are not the API's, the model, the API's required fields and the
    fields whose type Flow Memory relies on."""
    problems = [
        Problem(
            field_segment(name),
            f"{field_segment(name)} is not a field of this call: only the SDK's own fields go "
            "to a provider (routing options go in the flow_memory object)",
            "unknown_field",
        )
        for name in sorted(set(body) - SDK_FIELDS[kind] - {"flow_memory"})
    ]
    model = body.get("model")
    if model is None:
        problems.append(Problem("model", "model is required: the name of a model", MISSING))
    elif not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        problems.append(
            Problem(
                "model",
                "model must be a model name (letters, digits and . _ : @ / -, at most 128)",
                INVALID,
            )
        )
    if kind == "chat":
        problems += _messages_problems(body)
    elif kind == "responses":
        problems += _responses_input_problems(body)
    else:
        problems += _embeddings_input_problems(body)
    for name in TOKEN_LIMITS[kind]:
        value = body.get(name)
        if value is not None and (not _whole(value) or value < 1):
            problems.append(Problem(name, f"{name} must be a whole number of at least 1", INVALID))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        problems.append(Problem("stream", "stream must be true or false", INVALID))
    return problems


def _whole(value: Any) -> TypeGuard[int]:
    """A JSON whole number (not true or false, which Python counts as integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _messages_problems(body: Json) -> list[Problem]:
    if "messages" not in body or body["messages"] is None:
        return [
            Problem(
                "messages",
                "messages is required: a list of messages, each an object with role and content",
                MISSING,
            )
        ]
    messages = body["messages"]
    if not isinstance(messages, list):
        return [
            Problem(
                "messages",
                "messages must be a list of messages, each an object with role and content "
                "(not a single text)",
                INVALID,
            )
        ]
    if not messages:
        return [Problem("messages", "messages must hold at least one message", INVALID)]
    problems: list[Problem] = []
    for index, message in enumerate(messages):
        path = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(
                Problem(path, f"{path} must be an object with role and content", INVALID)
            )
            continue
        role = message.get("role")
        if role is None:
            problems.append(
                Problem(f"{path}.role", f"{path}.role is required (user, system, …)", MISSING)
            )
        elif not isinstance(role, str) or not role:
            problems.append(
                Problem(f"{path}.role", f"{path}.role must be a role name such as user", INVALID)
            )
        problems += _content_problems(message, path, role)
    return problems


def _content_problems(message: Json, path: str, role: Any) -> list[Problem]:
    """A message's content is text or a list of content parts; an assistant message that calls
    tools may leave it out (or null)."""
    content = message.get("content")
    calls_tools = role == "assistant" and bool(
        message.get("tool_calls") or message.get("function_call")
    )
    field = f"{path}.content"
    if content is None:
        if calls_tools:
            return []
        return [Problem(field, f"{field} is required: a text or a list of content parts", MISSING)]
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return [Problem(field, f"{field} must be a text or a list of content parts", INVALID)]
    return [
        Problem(
            f"{field}[{index}]", f"{field}[{index}] must be an object (a content part)", INVALID
        )
        for index, part in enumerate(content)
        if not isinstance(part, dict)
    ]


def _responses_input_problems(body: Json) -> list[Problem]:
    source = body.get("input")
    if source is None:
        return [Problem("input", "input is required: a text or a list of input items", MISSING)]
    if isinstance(source, str):
        return []
    if not isinstance(source, list):
        return [Problem("input", "input must be a text or a list of input items", INVALID)]
    if not source:
        return [Problem("input", "input must hold at least one item", INVALID)]
    return [
        Problem(f"input[{index}]", f"input[{index}] must be an object (an input item)", INVALID)
        for index, item in enumerate(source)
        if not isinstance(item, dict)
    ]


def _embeddings_input_problems(body: Json) -> list[Problem]:
    source = body.get("input")
    if source is None:
        return [
            Problem(
                "input", "input is required: a text, or a list of texts or token arrays", MISSING
            )
        ]
    if isinstance(source, str):
        return []
    if not isinstance(source, list):
        return [
            Problem("input", "input must be a text, or a list of texts or token arrays", INVALID)
        ]
    if not source:
        return [Problem("input", "input must hold at least one text", INVALID)]
    return [
        Problem(
            f"input[{index}]",
            f"input[{index}] must be a text, a token number or a list of token numbers",
            INVALID,
        )
        for index, item in enumerate(source)
        if not (
            isinstance(item, str)
            or _whole(item)
            or (isinstance(item, list) and all(_whole(token) for token in item))
        )
    ]


_CLEAN_FIELDS: set[tuple[Any, ...]] = set()
# Only sets of short plain values are remembered: a remembered set holds its values, and proxy
# bodies may carry megabytes in any field.
_REMEMBERED_TEXT = 128


def _forbidden_in(fields: Json) -> Finding | None:
    """``find_forbidden``, remembering flat field sets found clean: steady SDK traffic sends
    the same few (model, stream, temperature…) call after call."""
    if not all(
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= _REMEMBERED_TEXT)
        for value in fields.values()
    ) or any(len(name) > _REMEMBERED_TEXT for name in fields):
        return find_forbidden(fields)  # nested, or too long to keep: always scanned
    key = tuple((name, type(value), value) for name, value in fields.items())
    if key in _CLEAN_FIELDS:
        return None
    found = find_forbidden(fields)
    if found is None:
        if len(_CLEAN_FIELDS) >= 4096:
            _CLEAN_FIELDS.clear()
        _CLEAN_FIELDS.add(key)
    return found
