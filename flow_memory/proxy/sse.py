"""Server-sent events: an incremental parser and the writer (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from flow_memory.kit.money import plain


@dataclass(frozen=True)
class Event:
    data: str
    event: str | None = None

    @property
    def done(self) -> bool:
        return self.data.strip() == "[DONE]"

    def json(self) -> Any:
        return orjson.loads(self.data)


# The longest event a provider may send: a stream is relayed, never buffered, so an event that
# never ends must not grow without bound.
MAX_EVENT_BYTES = 1 << 20


class EventTooLarge(ValueError):
    """An event went past ``MAX_EVENT_BYTES`` without ending."""


class EventParser:
    """Feed bytes as they arrive; get back each event once its blank line has arrived."""

    def __init__(self) -> None:
        self._pending = b""
        self._after_cr = False  # the last chunk ended in CR: a LF opening the next belongs to it

    def feed(self, chunk: bytes) -> list[Event]:
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        self._pending += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[Event] = []
        while True:
            head, separator, rest = self._pending.partition(b"\n\n")
            if not separator:
                break
            self._pending = rest
            event = _parse_block(head.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        if len(self._pending) > MAX_EVENT_BYTES:
            raise EventTooLarge(f"an event went past {MAX_EVENT_BYTES} bytes without ending")
        return events

    @property
    def leftover(self) -> bool:
        """True when bytes of an unfinished event are still waiting: the stream was cut."""
        return bool(self._pending.strip())


def _parse_block(block: str) -> Event | None:
    data: list[str] = []
    name: str | None = None
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if not data:
        return None
    return Event(data="\n".join(data), event=name)


def dumps(value: Any) -> bytes:
    """JSON bytes with Decimal as a plain number (0.00000075)."""
    return orjson.dumps(value, default=_default)


def encode(data: Any, event: str | None = None) -> bytes:
    """One event as bytes; ``data`` is JSON-encoded unless it is already text."""
    text = data if isinstance(data, str) else dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(plain(value))
    raise TypeError(f"cannot encode {type(value).__name__}")


DONE = b"data: [DONE]\n\n"
