"""How the local model server turns chat messages into a prompt, and where an answer ends
(pure: no model, no I/O).

The packaged Gemma 3 270M is a base model: its GGUF carries no chat template, and Gemma's
turn markup (``<start_of_turn>user``…) makes it echo the question. It answers an
instruction/response prompt, then starts the next ``### …`` heading on its own, so the
template's stop strings end the answer there, as a chat client expects."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

INSTRUCTION = "### Instruction:"
RESPONSE = "### Response:"
# Where the base model starts a turn of its own after answering.
TEMPLATE_STOPS = ("###", "<start_of_turn>", "<end_of_turn>")
SYSTEM_ROLES = ("system", "developer")


class PromptError(ValueError):
    """A message the template cannot place; the server answers 400 with it."""


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, Mapping) and part.get("type") in ("image_url", "input_audio"):
                raise PromptError(f"the local chat model reads text only, not {part['type']}")
        return "".join(texts)
    raise PromptError("a message's content is a string or a list of parts")


def instruction_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """The prompt for a chat: system text first, then each turn under its heading, ending
    with an open response for the model to write."""
    if not messages:
        raise PromptError("messages is empty")
    preamble: list[str] = []
    turns: list[str] = []
    for message in messages:
        role = message.get("role")
        text = message_text(message.get("content")).strip()
        if role in SYSTEM_ROLES:
            preamble.append(text)
        elif role in ("user", "tool", "function"):
            turns.append(f"{INSTRUCTION}\n{text}")
        elif role == "assistant":
            turns.append(f"{RESPONSE}\n{text}")
        else:
            raise PromptError(f"unknown message role {role!r}")
    parts = [p for p in preamble if p] + turns + [f"{RESPONSE}\n"]
    return "\n\n".join(parts)


@dataclass
class StopScanner:
    """Passes an answer's text on as it grows, ending it at the first stop string.

    Text that could still be the start of a stop string is held back, and so is trailing
    whitespace: an answer never ends with the blank line before the next heading."""

    stops: tuple[str, ...]
    held: str = ""
    stopped: bool = False

    def feed(self, text: str) -> str:
        """The text that is now certain to belong to the answer."""
        if self.stopped:
            return ""
        self.held += text
        cut = min((i for i in (self.held.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self.held = self.held[:cut].rstrip(), ""
            return out
        # Hold what may begin a stop string, and the whitespace before it.
        sure = len(self.held[: len(self.held) - self._partial_stop_length()].rstrip())
        out, self.held = self.held[:sure], self.held[sure:]
        return out

    def finish(self) -> str:
        """What is held once the model stops on its own (trailing whitespace dropped)."""
        out, self.held = ("" if self.stopped else self.held.rstrip()), ""
        return out

    def _partial_stop_length(self) -> int:
        """The longest end of the held text that begins some stop string."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.held)), longest, -1):
                if self.held.endswith(stop[:size]):
                    longest = size
                    break
        return longest


def request_stops(stop: Any) -> tuple[str, ...]:
    """The request's own ``stop`` (a string or up to four), beside the template's."""
    if stop is None:
        given: Iterable[Any] = ()
    elif isinstance(stop, str):
        given = (stop,)
    elif isinstance(stop, list) and len(stop) <= 4:
        given = stop
    else:
        raise PromptError("stop is a string or a list of at most 4 strings")
    extra = []
    for item in given:
        if not isinstance(item, str):
            raise PromptError("stop is a string or a list of at most 4 strings")
        if item:
            extra.append(item)
    return (*TEMPLATE_STOPS, *extra)


class IncrementalText:
    """An answer's text, token by token, in whole characters: the runtime writes half a UTF-8
    character as U+FFFD, so text ending in one is held until its token completes it."""

    def __init__(self, detokenize: Callable[[list[int]], str]) -> None:
        self._detokenize = detokenize
        self._tokens: list[int] = []
        self._sent = 0

    def add(self, token: int) -> str:
        """The text this token completes (often all of its piece, sometimes nothing)."""
        self._tokens.append(token)
        text = self._detokenize(self._tokens)
        if text.endswith("\ufffd"):
            return ""
        return self._take(text)

    def finish(self) -> str:
        """Whatever is still held, as the runtime writes it."""
        return self._take(self._detokenize(self._tokens)) if self._tokens else ""

    def _take(self, text: str) -> str:
        new, self._sent = text[self._sent :], len(text)
        return new
