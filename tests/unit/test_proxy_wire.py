"""The proxy's lean HTTP/1.1 client against scripted servers on real local sockets.

Each ``ScriptedServer`` is a test double: an asyncio server whose handler decides, per test,
what a provider sends back (a whole answer, chunks, nothing, a cut)."""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from flow_memory.proxy import wire
from flow_memory.proxy.wire import AnswerTimeout, BodyCut, ConnectFailed, WireClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
T = TypeVar("T")
# Only against a hang: every wait below ends on its event long before.
GUARD_SECONDS = 30.0
# A timeout under test: too long to pass on its own however loaded the machine; it passes
# when the test moves the loop's clock on, once the event it waits for has happened.
TIMEOUT_SECONDS = 60.0


@dataclass
class ScriptedServer:
    """Test double: counts connections and the requests it read."""

    handler: Handler
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedServer:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def body_of(request: bytes) -> bytes:
    return request.split(b"\r\n\r\n", 1)[1]


def client(read_timeout: float = GUARD_SECONDS) -> WireClient:
    return WireClient(connect_timeout=GUARD_SECONDS, read_timeout=read_timeout)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def within(awaitable: Awaitable[T]) -> T:
    """What ``awaitable`` gives; the guard only stops a hang."""
    async with asyncio.timeout(GUARD_SECONDS):
        return await awaitable


async def parked(task: asyncio.Task[Any]) -> None:
    """Returns once ``task`` has run up to an await it waits at, without ending."""
    async with asyncio.timeout(GUARD_SECONDS):
        while inspect.getcoroutinestate(task.get_coro()) != inspect.CORO_SUSPENDED:
            assert not task.done(), "the call did not wait"
            await asyncio.sleep(0)  # lets the task run up to its await


class LoopClock:
    """Test double for the running loop's clock: real time plus what the test moved it on."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        real = loop.time
        self.moved = 0.0
        loop.time = lambda: real() + self.moved  # type: ignore[method-assign]

    def advance(self, seconds: float) -> None:
        """Moves every timer of the loop ``seconds`` nearer (no guard may be running)."""
        self.moved += seconds


@dataclass
class Tap:
    """Watches the client's connections: how many were made and lost, and the bytes read."""

    made: int = 0
    lost: int = 0
    received: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(GUARD_SECONDS):
            while not condition():
                await self._changed.wait()

    async def received_at_least(self, count: int) -> None:
        """Returns once the client's connections have read ``count`` bytes in all."""
        await self._until(lambda: self.received >= count)

    async def lost_at_least(self, count: int) -> None:
        """Returns once ``count`` of the client's connections have closed."""
        await self._until(lambda: self.lost >= count)


@pytest.fixture
def tap(monkeypatch: pytest.MonkeyPatch) -> Tap:
    watched = Tap()
    connection_made = wire._Connection.connection_made
    data_received = wire._Connection.data_received
    connection_lost = wire._Connection.connection_lost

    def made(connection: Any, transport: asyncio.BaseTransport) -> None:
        connection_made(connection, transport)
        watched.made += 1
        watched._change()

    def received(connection: Any, data: bytes) -> None:
        data_received(connection, data)
        watched.received += len(data)
        watched._change()

    def lost(connection: Any, exc: Exception | None) -> None:
        connection_lost(connection, exc)
        watched.lost += 1
        watched._change()

    monkeypatch.setattr(wire._Connection, "connection_made", made)
    monkeypatch.setattr(wire._Connection, "data_received", received)
    monkeypatch.setattr(wire._Connection, "connection_lost", lost)
    return watched


def test_a_whole_answer_is_read_and_its_connection_reused() -> None:
    async def test() -> None:
        scripted: ScriptedServer

        async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await scripted.read_request(reader)
                writer.write(answer(b'{"ok": true}'))
                await writer.drain()

        async with ScriptedServer(keep_alive) as scripted:
            wire = client()
            for _ in range(3):
                response = await wire.post(scripted.url, {"authorization": "Bearer x"}, b"{}")
                assert response.status_code == 200
                assert await response.aread() == b'{"ok": true}'
                await response.aclose()
            assert scripted.connections == 1
            request = scripted.requests[0]
            assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
            assert b"\r\nauthorization: Bearer x\r\n" in request and request.endswith(b"{}")
            wire.close()

    run(test)


def test_a_chunked_answer_arrives_piece_by_piece() -> None:
    async def test() -> None:
        release = asyncio.Event()

        async def streamed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(chunk(b"data: one\n\n"))
            await writer.drain()
            await release.wait()  # the second piece waits until the first was read
            writer.write(chunk(b"data: two\n\n") + b"0\r\n\r\n")
            await writer.drain()
            await reader.read()

        async with ScriptedServer(streamed) as scripted:
            wire = client()
            response = await wire.post(scripted.url, {}, b"{}")
            pieces = []
            async for piece in response.aiter_bytes():
                pieces.append(piece)
                release.set()
            assert b"".join(pieces) == b"data: one\n\ndata: two\n\n"
            assert pieces[0] == b"data: one\n\n"
            await response.aclose()
            wire.close()

    run(test)


def test_a_refused_connection_is_connect_failed() -> None:
    async def test() -> None:
        async with ScriptedServer(lambda r, w: asyncio.sleep(0)) as scripted:
            url = scripted.url
        with pytest.raises(ConnectFailed):
            await client().post(url, {}, b"{}")

    run(test)


def test_no_answer_before_the_read_timeout_is_an_answer_timeout() -> None:
    async def test() -> None:
        clock = LoopClock()
        arrived: asyncio.Queue[bytes] = asyncio.Queue()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:  # reads each request that comes, answers none
                arrived.put_nowait(await scripted.read_request(reader))

        async with ScriptedServer(silent) as scripted:
            pool = client(read_timeout=TIMEOUT_SECONDS)
            for _ in range(2):
                posting = asyncio.ensure_future(pool.post(scripted.url, {}, b"{}"))
                await within(arrived.get())  # the provider holds the request, and its answer
                assert not posting.done()
                clock.advance(TIMEOUT_SECONDS)
                with pytest.raises(AnswerTimeout):
                    await within(posting)
            assert scripted.connections == 2  # a timed-out connection is never reused

    run(test)


def test_a_body_cut_short_raises_after_the_bytes_that_came() -> None:
    async def test() -> None:
        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(chunk(b"data: partial\n\n"))
            await writer.drain()
            writer.transport.abort()

        async with ScriptedServer(cut) as scripted:
            response = await client().post(scripted.url, {}, b"{}")
            pieces = []
            with pytest.raises(BodyCut):
                async for piece in response.aiter_bytes():
                    pieces.append(piece)
            assert pieces == [b"data: partial\n\n"]
            await response.aclose()

    run(test)


def test_a_connection_the_server_closed_while_idle_is_not_reused(tap: Tap) -> None:
    async def test() -> None:
        async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(answer(b"{}"))
            await writer.drain()  # then the handler ends and the server closes the socket

        async with ScriptedServer(once) as scripted:
            pool = client()
            response = await pool.post(scripted.url, {}, b"{}")
            assert await response.aread() == b"{}"
            await response.aclose()
            await tap.lost_at_least(1)  # the idle connection saw the server close it
            response = await pool.post(scripted.url, {}, b"{}")
            assert await response.aread() == b"{}"
            await response.aclose()
            assert scripted.connections == 2

    run(test)


def test_connection_close_and_unread_bodies_end_the_connection() -> None:
    async def test() -> None:
        async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await scripted.read_request(reader)
                extra = b"connection: close\r\n" if len(scripted.requests) == 1 else b""
                writer.write(answer(b"{}", extra))
                await writer.drain()

        async with ScriptedServer(answers) as scripted:
            wire = client()
            response = await wire.post(scripted.url, {}, b"{}")
            assert await response.aread() == b"{}"  # connection: close
            response = await wire.post(scripted.url, {}, b"{}")
            await response.aclose()  # closed without reading the body
            response = await wire.post(scripted.url, {}, b"{}")
            assert await response.aread() == b"{}"
            assert scripted.connections == 3
            wire.close()

    run(test)


def test_a_header_value_with_a_line_break_is_never_sent(tap: Tap) -> None:
    async def test() -> None:
        async def listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)

        async with ScriptedServer(listen) as scripted:
            with pytest.raises(ConnectFailed):
                await client().post(scripted.url, {"authorization": "a\r\nx-injected: 1"}, b"{}")
            # No connection was made (one made would count before the call ended): nothing sent.
            assert tap.made == 0

    run(test)


def test_an_answer_without_a_length_ends_where_the_connection_does() -> None:
    async def test() -> None:
        async def old_style(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b'HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"a": 1}')
            await writer.drain()  # then the handler ends and the server closes the socket

        async with ScriptedServer(old_style) as scripted:
            response = await client().post(scripted.url, {}, b"{}")
            assert await response.aread() == b'{"a": 1}'
            await response.aclose()

    run(test)


def test_an_answer_with_endless_headers_is_refused() -> None:
    async def test() -> None:
        async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for index in range(2_000):
                writer.write(b"x-filler-%d: %s\r\n" % (index, b"y" * 100))
            await writer.drain()
            await reader.read()

        async with ScriptedServer(flood) as scripted:
            with pytest.raises(ConnectFailed):
                await client().post(scripted.url, {}, b"{}")

    run(test)


def keep_answering(scripted_ref: list[ScriptedServer]) -> Handler:
    """A keep-alive provider whose answer names the request it answers."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await scripted_ref[0].read_request(reader)
            writer.write(answer(b"for " + body_of(request)))
            await writer.drain()

    return handler


def test_early_hints_are_skipped_and_each_caller_gets_its_own_answer(tap: Tap) -> None:
    async def test() -> None:
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"

        async def hinting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            written = 0
            while True:
                request = await scripted.read_request(reader)
                writer.write(hints)
                written += len(hints)
                await writer.drain()
                # The model is thinking: the answer comes once the client has read the hints.
                await tap.received_at_least(written)
                final = answer(b"for " + body_of(request))
                writer.write(final)
                written += len(final)
                await writer.drain()

        async with ScriptedServer(hinting) as scripted:
            pool = client()
            first = await pool.post(scripted.url, {}, b"alice")
            assert first.status_code == 200
            assert await first.aread() == b"for alice"
            second = await pool.post(scripted.url, {}, b"bob")
            assert second.status_code == 200
            assert await second.aread() == b"for bob"
            assert scripted.connections == 1
            pool.close()

    run(test)


def test_a_continue_then_the_answer_in_one_piece_is_one_answer() -> None:
    async def test() -> None:
        async def continued(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"{}", b"x-final: 1\r\n"))
            await writer.drain()
            await reader.read()

        async with ScriptedServer(continued) as scripted:
            response = await client().post(scripted.url, {}, b"{}")
            assert response.status_code == 200
            assert (b"x-final", b"1") in response.headers
            assert await response.aread() == b"{}"

    run(test)


def test_switching_protocols_is_a_failed_connection() -> None:
    async def test() -> None:
        async def switching(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n")
            await writer.drain()
            await reader.read()

        async with ScriptedServer(switching) as scripted:
            with pytest.raises(ConnectFailed):
                await client().post(scripted.url, {}, b"{}")

    run(test)


@pytest.mark.parametrize("apart", [False, True], ids=["same-write", "while-held"])
def test_an_answer_nobody_asked_for_closes_the_connection(apart: bool, tap: Tap) -> None:
    async def test() -> None:
        unsolicited = answer(b"for mallory")

        async def pipelining(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            own = answer(b"for " + body_of(await scripted.read_request(reader)))
            if apart:
                writer.write(own)
                await writer.drain()
                await tap.received_at_least(len(own))  # the caller holds its answer already
                writer.write(unsolicited)
            else:
                writer.write(own + unsolicited)
            await writer.drain()
            while True:
                request = await scripted.read_request(reader)
                writer.write(answer(b"for " + body_of(request)))
                await writer.drain()

        async with ScriptedServer(pipelining) as scripted:
            pool = client()
            first = await pool.post(scripted.url, {}, b"alice")
            # The extra answer came too, after the caller's own.
            await tap.received_at_least(len(answer(b"for alice") + unsolicited))
            assert first.status_code == 200
            assert await first.aread() == b"for alice"
            second = await pool.post(scripted.url, {}, b"bob")
            assert await second.aread() == b"for bob"
            assert scripted.connections == 2
            pool.close()

    run(test)


def test_an_endless_header_line_is_refused_without_waiting_for_its_end() -> None:
    async def test() -> None:
        written = 0
        stopped = asyncio.Event()

        async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal written
            try:
                await scripted.read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nx-pad: ")
                piece = b"a" * 65536
                for _ in range(1024):  # 64 MiB, never ending the line
                    writer.write(piece)
                    await writer.drain()
                    written += len(piece)
            finally:
                stopped.set()

        async with ScriptedServer(endless) as scripted:
            with pytest.raises(ConnectFailed, match="too large"):
                await client().post(scripted.url, {}, b"{}")
            await within(stopped.wait())  # the provider's writes failed once the client closed
            # Refused after about 64 KiB; the rest is what the sockets' buffers held.
            assert written < 32 * 1024 * 1024

    run(test)


def test_endless_trailers_are_a_cut_body() -> None:
    async def test() -> None:
        async def trailing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(chunk(b"data: one\n\n") + b"0\r\nx-trailer: ")
            for _ in range(64):
                writer.write(b"b" * 65536)
                await writer.drain()
            await reader.read()

        async with ScriptedServer(trailing) as scripted:
            response = await client().post(scripted.url, {}, b"{}")
            with pytest.raises(BodyCut, match="too large"):
                await response.aread()
            await response.aclose()

    run(test)


def test_an_answer_without_a_length_cut_by_a_reset_is_cut(tap: Tap) -> None:
    async def test() -> None:
        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            head = b'HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"a": '
            writer.write(head)
            await writer.drain()
            await tap.received_at_least(len(head))  # the reset cuts a body, not the head
            no_linger = struct.pack("ii", 1, 0)  # closing sends a reset, not the end of stream
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, no_linger
            )
            writer.transport.abort()

        async with ScriptedServer(reset) as scripted:
            response = await client().post(scripted.url, {}, b"{}")
            with pytest.raises(BodyCut):
                await response.aread()
            await response.aclose()

    run(test)


def test_an_idle_connection_past_its_time_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def test() -> None:
        ref: list[ScriptedServer] = []
        async with ScriptedServer(keep_answering(ref)) as scripted:
            ref.append(scripted)
            pool = client()
            for _ in range(2):
                response = await pool.post(scripted.url, {}, b"{}")
                assert await response.aread() == b"for {}"
                monkeypatch.setattr(wire, "IDLE_SECONDS", -1.0)  # every idle one is stale
            assert scripted.connections == 2
            pool.close()

    run(test)


def test_callers_past_the_origins_connections_wait_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_CONNECTIONS_PER_ORIGIN", 1)

    async def test() -> None:
        ref: list[ScriptedServer] = []
        async with ScriptedServer(keep_answering(ref)) as scripted:
            ref.append(scripted)
            clock = LoopClock()
            pool = WireClient(connect_timeout=TIMEOUT_SECONDS, read_timeout=GUARD_SECONDS)
            first = await pool.post(scripted.url, {}, b"one")
            waiting = asyncio.create_task(pool.post(scripted.url, {}, b"two"))
            await parked(waiting)  # the only connection is busy
            assert await first.aread() == b"for one"
            second = await within(waiting)
            assert await second.aread() == b"for two"
            assert scripted.connections == 1

            held = await pool.post(scripted.url, {}, b"three")
            late = asyncio.create_task(pool.post(scripted.url, {}, b"four"))
            await parked(late)  # waits for a connection, its timeout running
            clock.advance(TIMEOUT_SECONDS)
            with pytest.raises(AnswerTimeout):  # nothing comes free before the timeout
                await within(late)
            await held.aclose()
            pool.close()

    run(test)


def test_a_checked_address_is_connected_to_under_the_urls_name() -> None:
    async def test() -> None:
        ref: list[ScriptedServer] = []
        async with ScriptedServer(keep_answering(ref)) as scripted:
            ref.append(scripted)
            port = scripted.url.split(":")[2].split("/")[0]
            url = f"http://provider.invalid:{port}/v1/chat/completions"
            pool = client()
            response = await pool.post(url, {}, b"{}", addresses=("127.0.0.1",))
            assert await response.aread() == b"for {}"
            assert f"\r\nhost: provider.invalid:{port}\r\n".encode() in scripted.requests[0]
            with pytest.raises(ConnectFailed):  # no address checked: nowhere to go
                await pool.post(url, {}, b"{}", addresses=())
            pool.close()

    run(test)


def test_tls_verifies_the_urls_name_at_the_checked_address() -> None:
    async def test() -> None:
        loop = asyncio.get_running_loop()
        calls: list[tuple[Any, ...]] = []

        async def refusing_double(factory: Any, host: str, port: int, **options: Any) -> Any:
            calls.append((host, port, options["ssl"], options["server_hostname"]))
            raise ConnectionRefusedError

        loop.create_connection = refusing_double  # type: ignore[method-assign]
        with pytest.raises(ConnectFailed):
            await client().post(
                "https://provider.example/v1", {}, b"{}", addresses=("203.0.113.7",)
            )
        [(host, port, context, server_hostname)] = calls
        assert (host, port, server_hostname) == ("203.0.113.7", 443, "provider.example")
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED

    run(test)


def test_a_caller_that_leaves_when_woken_passes_its_turn_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "MAX_CONNECTIONS_PER_ORIGIN", 1)

    async def test() -> None:
        ref: list[ScriptedServer] = []
        async with ScriptedServer(keep_answering(ref)) as scripted:
            ref.append(scripted)
            pool = client()
            first = await pool.post(scripted.url, {}, b"one")
            leaving = asyncio.create_task(pool.post(scripted.url, {}, b"two"))
            await parked(leaving)  # first in the queue for the only connection
            staying = asyncio.create_task(pool.post(scripted.url, {}, b"three"))
            await parked(staying)
            assert await first.aread() == b"for one"  # the connection comes free: wakes "two"
            leaving.cancel()  # the client went away before its turn ran
            third = await within(staying)
            assert await third.aread() == b"for three"
            assert leaving.cancelled() and scripted.connections == 1
            pool.close()

    run(test)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_whole_answer_is_read_within_a_limit_or_refused_past_it(chunked: bool) -> None:
    async def test() -> None:
        scripted: ScriptedServer
        body = b'{"vector": "' + b"x" * 5000 + b'"}'

        async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await scripted.read_request(reader)
                if chunked:
                    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
                    writer.write(head + b"".join(chunk(p) for p in pieces) + b"0\r\n\r\n")
                else:
                    writer.write(answer(body))
                await writer.drain()

        async with ScriptedServer(keep_alive) as scripted:
            wire = client()
            response = await wire.post(scripted.url, {}, b"{}")
            assert await response.aread_within(len(body)) == body
            await response.aclose()
            response = await wire.post(scripted.url, {}, b"{}")
            assert await response.aread_within(len(body) - 1) is None
            await response.aclose()
            wire.close()

    run(test)
