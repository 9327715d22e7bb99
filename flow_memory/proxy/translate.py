"""Translations between the SDK-compatible API styles (pure; no I/O).

Three styles meet here: chat completions, responses and messages. A client speaks chat or
responses; a provider serves whichever its catalog's ``compatible_api`` names. Requests and
whole answers are translated by functions; streams by small state machines fed one event at a
time, so a translated stream still flows event by event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flow_memory.kit.ids import new_id

DEFAULT_MAX_TOKENS = 1024
Json = dict[str, Any]

_FINISH_FROM_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


@dataclass(frozen=True)
class Usage:
    """Token counts reported by a provider, or estimated when it reported none."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_chat(self) -> Json:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }

    def as_responses(self) -> Json:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.total_tokens,
        }


def usage_from(document: Any) -> Usage | None:
    """Read a ``usage`` object in any of the three styles."""
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    total = usage.get("total_tokens")
    if not isinstance(prompt, int) and not isinstance(total, int):
        return None
    prompt = prompt if isinstance(prompt, int) else 0
    if not isinstance(completion, int):
        completion = max(0, total - prompt) if isinstance(total, int) else 0
    return Usage(input_tokens=max(0, prompt), output_tokens=max(0, completion))


def estimate_tokens(text: str) -> int:
    """A rough count (four characters a token) for providers that report no usage."""
    return (len(text) + 3) // 4


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def prompt_text(body: Json) -> str:
    """Every piece of prompt text in a chat, responses or embeddings request."""
    pieces: list[str] = []
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            pieces.append(text_of(message.get("content")))
    for key in ("instructions", "system"):
        if isinstance(body.get(key), str):
            pieces.append(body[key])
    source = body.get("input")
    if isinstance(source, str):
        pieces.append(source)
    elif isinstance(source, list):
        for item in source:
            if isinstance(item, str):
                pieces.append(item)
            elif isinstance(item, dict):
                pieces.append(text_of(item.get("content", item.get("text"))))
    return "".join(pieces)


# -- chat → messages ---------------------------------------------------------------------


def chat_to_messages_request(body: Json) -> Json:
    """A chat request in the messages style: system text apart, max_tokens required."""
    system: list[str] = []
    messages: list[Json] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"] += "\n\n" + text
            else:
                messages.append({"role": role, "content": text})
        else:
            # Tool results have no plain equivalent here; they travel as user text.
            messages.append({"role": "user", "content": text})
    translated: Json = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        translated["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            translated[name] = body[name]
    stop = body.get("stop")
    if stop:
        translated["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return translated


def messages_to_chat_response(message: Json, *, model: str) -> Json:
    """A messages-style answer as a chat completion."""
    usage = usage_from(message) or Usage(0, 0)
    return {
        "id": "chatcmpl-" + str(message.get("id") or new_id("msg")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text_of(message.get("content"))},
                "finish_reason": _FINISH_FROM_STOP.get(str(message.get("stop_reason")), "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage.as_chat(),
    }


@dataclass
class MessagesToChatStream:
    """Messages-style stream events in, chat completion chunks out."""

    model: str
    chunk_id: str = field(default_factory=lambda: "chatcmpl-" + new_id("msg"))
    created: int = field(default_factory=lambda: int(time.time()))
    input_tokens: int = 0
    output_tokens: int = 0
    saw_usage: bool = False
    finished: bool = False

    def _chunk(self, delta: Json, finish_reason: str | None = None) -> Json:
        return {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            usage = usage_from(message)
            if usage is not None:
                self.input_tokens = usage.input_tokens
                self.saw_usage = True
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            return []
        if kind == "message_delta":
            counts = event.get("usage") or {}
            if isinstance(counts.get("output_tokens"), int):
                self.output_tokens = counts["output_tokens"]
                self.saw_usage = True
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                return [self._chunk({}, _FINISH_FROM_STOP.get(reason, "stop"))]
            return []
        if kind == "message_stop":
            self.finished = True
        return []

    def usage(self) -> Usage | None:
        return Usage(self.input_tokens, self.output_tokens) if self.saw_usage else None


# -- responses → chat --------------------------------------------------------------------


def responses_to_chat_request(body: Json) -> Json:
    """A responses request as a chat request."""
    messages: list[Json] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    source = body.get("input")
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    elif isinstance(source, list):
        for item in source:
            if isinstance(item, str):
                messages.append({"role": "user", "content": item})
            elif isinstance(item, dict) and item.get("type", "message") == "message":
                role = item.get("role", "user")
                messages.append(
                    {
                        "role": "system" if role == "developer" else role,
                        "content": text_of(item.get("content")),
                    }
                )
    translated: Json = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens") is not None:
        translated["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            translated[name] = body[name]
    return translated


def _message_item(item_id: str, text: str, status: str) -> Json:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}] if text else [],
    }


def _response(
    response_id: str, model: str, created: int, output: list[Json], usage: Usage | None, status: str
) -> Json:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "model": model,
        "status": status,
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage.as_responses() if usage is not None else None,
    }


def chat_to_responses_response(chat: Json, *, model: str) -> Json:
    """A chat completion as a responses answer."""
    choices = chat.get("choices") or [{}]
    text = text_of((choices[0].get("message") or {}).get("content"))
    finish = choices[0].get("finish_reason")
    body = _response(
        "resp_" + new_id("msg"),
        chat.get("model") or model,
        int(chat.get("created") or time.time()),
        [_message_item("msg_" + new_id("msg"), text, "completed")],
        usage_from(chat),
        "incomplete" if finish == "length" else "completed",
    )
    return body


@dataclass
class ChatToResponsesStream:
    """Chat completion chunks in, responses stream events out.

    ``finish`` builds the closing ``response.completed`` event, which the proxy gives the
    ``flow_memory`` metadata before sending it."""

    model: str
    response_id: str = field(default_factory=lambda: "resp_" + new_id("msg"))
    item_id: str = field(default_factory=lambda: "msg_" + new_id("msg"))
    created: int = field(default_factory=lambda: int(time.time()))
    sequence: int = 0
    started: bool = False
    text: list[str] = field(default_factory=list)
    reported: Usage | None = None
    finish_reason: str | None = None

    def _event(self, kind: str, **fields: Any) -> Json:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _start(self) -> list[Json]:
        self.started = True
        return [
            self._event(
                "response.created",
                response=_response(
                    self.response_id, self.model, self.created, [], None, "in_progress"
                ),
            ),
            self._event(
                "response.output_item.added",
                output_index=0,
                item=_message_item(self.item_id, "", "in_progress"),
            ),
            self._event(
                "response.content_part.added",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        ]

    def feed(self, chunk: Json) -> list[Json]:
        events = [] if self.started else self._start()
        usage = usage_from(chunk)
        if usage is not None:
            self.reported = usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                self.text.append(piece)
                events.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=self.item_id,
                        output_index=0,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                )
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self, usage: Usage | None) -> list[Json]:
        """The closing events; the last one is ``response.completed``."""
        events = [] if self.started else self._start()
        text = "".join(self.text)
        part = {"type": "output_text", "text": text, "annotations": []}
        status = "incomplete" if self.finish_reason == "length" else "completed"
        events += [
            self._event(
                "response.output_text.done",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event(
                "response.content_part.done",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                part=part,
            ),
            self._event(
                "response.output_item.done",
                output_index=0,
                item=_message_item(self.item_id, text, "completed"),
            ),
            self._event(
                "response.completed",
                response=_response(
                    self.response_id,
                    self.model,
                    self.created,
                    [_message_item(self.item_id, text, "completed")],
                    usage,
                    status,
                ),
            ),
        ]
        return events

    def output_text(self) -> str:
        return "".join(self.text)


def chat_output_text(chunk: Json) -> str:
    """The text a chat chunk adds."""
    return "".join(
        str((choice.get("delta") or {}).get("content") or "")
        for choice in chunk.get("choices") or []
        if isinstance(choice, dict)
    )


def responses_output_text(event: Json) -> str:
    """The text a responses stream event adds."""
    if event.get("type") == "response.output_text.delta":
        return str(event.get("delta") or "")
    return ""
