"""The HTTP server sends a response's head with its body in one write, and a head whose body is
slow to come at the end of the event loop's turn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from flow_memory.kit.server import HeadWithBody, server_options


class RecordingTransport:
    """Test double: a transport that records each write it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))  # one write, as the transport makes it

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"extra:{name}"


Wrapped = tuple[HeadWithBody, RecordingTransport, asyncio.AbstractEventLoop]


@pytest.fixture
def wrapped() -> Iterator[Wrapped]:
    """A ``HeadWithBody`` over a recording transport, on an event loop of its own."""
    loop = asyncio.new_event_loop()
    inner = RecordingTransport()
    try:
        yield HeadWithBody(inner, loop), inner, loop  # type: ignore[arg-type]
    finally:
        loop.close()


def _end_turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_a_head_and_its_body_go_out_in_one_write(wrapped: Wrapped) -> None:
    transport, inner, loop = wrapped
    transport.write(b"HTTP/1.1 201 Created\r\n\r\n")
    assert inner.writes == []
    transport.write(b'{"ok":true}')
    assert inner.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"ok":true}']
    _end_turn(loop)
    assert len(inner.writes) == 1  # nothing was left to flush


def test_a_write_nothing_joins_goes_out_at_the_end_of_the_turn_in_order(wrapped: Wrapped) -> None:
    transport, inner, loop = wrapped
    transport.write(b"a")
    transport.write(b"b")
    transport.write(b"c")
    transport.write(b"")  # an empty write holds nothing back
    assert inner.writes == [b"ab"]
    _end_turn(loop)
    assert inner.writes == [b"ab", b"c"]


def test_closing_writes_what_is_held_first_and_a_closed_transport_gets_nothing(
    wrapped: Wrapped,
) -> None:
    transport, inner, loop = wrapped
    transport.write(b"head")
    transport.close()
    assert inner.writes == [b"head"] and inner.closed
    transport.write(b"late")
    _end_turn(loop)
    assert inner.writes == [b"head"]
    assert transport.get_extra_info("peername") == "extra:peername"


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[int]:
    """A real uvicorn server with the server's options (HeadWithBodyProtocol, on uvloop), in a
    thread; its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **server_options("warning"))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            threading.Event().wait(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_real_server_sends_a_head_before_a_slow_body() -> None:
    """The client reads the head while the application still waits to send the body."""
    head_seen = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"4")],
            }
        )
        # The body waits until the client has read the head.
        await asyncio.get_running_loop().run_in_executor(None, head_seen.wait, 30)
        await send({"type": "http.response.body", "body": b"done"})

    try:
        with _serving(app) as port, socket.create_connection(("127.0.0.1", port), 30) as client:
            client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            received = b""
            while b"\r\n\r\n" not in received:
                received += client.recv(4096)
            assert received.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nserver:" not in received.lower()  # no server software named
            assert not received.endswith(b"done")
            head_seen.set()
            while not received.endswith(b"done"):
                received += client.recv(4096)
    finally:
        head_seen.set()


def test_a_held_answer_still_goes_out_when_the_client_closes_its_side() -> None:
    """A client that sends its request and then shuts its side down still gets the answer held
    at that moment (a 204's head: its body write is empty), though the transport closes
    itself on the client's end of stream."""
    answered, client_closed = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        answered.set()
        # Block the loop in this turn until the client's end of stream has arrived, so the
        # loop sees it before the end-of-turn flush runs.
        client_closed.wait(30)

    try:
        with _serving(app) as port, socket.create_connection(("127.0.0.1", port), 30) as client:
            client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            assert answered.wait(30)
            client.shutdown(socket.SHUT_WR)
            threading.Event().wait(0.05)  # the end of stream reaches the server's socket
            client_closed.set()
            received = b""
            while chunk := client.recv(4096):
                received += chunk
            assert received.startswith(b"HTTP/1.1 204 No Content\r\n")
    finally:
        client_closed.set()


def test_clients_let_an_idle_connection_go_before_the_server_closes_it() -> None:
    """A server closing an idle keep-alive connection just as a client reuses it loses that
    request: the server must keep idle connections longer than the clients' pools do (the
    common client's and the proxy's own upstream pool)."""
    import httpx

    from flow_memory.proxy.wire import IDLE_SECONDS

    keep_alive = server_options("warning")["timeout_keep_alive"]
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert keep_alive > client_expiry
    assert keep_alive > IDLE_SECONDS
