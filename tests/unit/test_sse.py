"""The proxy's server-sent-event parser: events split anywhere, CRLF split across chunks, and
an event that never ends refused once past the limit."""

from __future__ import annotations

import pytest

from flow_memory.proxy.sse import MAX_EVENT_BYTES, EventParser, EventTooLarge

STREAM = b'data: {"a":1}\r\n\r\nevent: done\r\ndata: [DONE]\r\n\r\n'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, len(STREAM)])
def test_events_arrive_whole_however_the_bytes_are_split(size: int) -> None:
    parser = EventParser()
    events = []
    for start in range(0, len(STREAM), size):
        events.extend(parser.feed(STREAM[start : start + size]))
    assert [(e.data, e.event) for e in events] == [('{"a":1}', None), ("[DONE]", "done")]
    assert not parser.leftover


def test_a_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = EventParser()
    assert parser.feed(b"data: one\r") == []
    assert parser.feed(b"\ndata: two\r\n") == []
    assert [e.data for e in parser.feed(b"\r\n")] == ["one\ntwo"]


def test_an_event_that_never_ends_is_refused_past_the_limit() -> None:
    parser = EventParser()
    parser.feed(b"data: " + b"x" * (MAX_EVENT_BYTES - 100))
    with pytest.raises(EventTooLarge):
        parser.feed(b"x" * 200)
