"""The proxy's lean HTTP/1.1 client against scripted servers on real local sockets.

Each ``ScriptedServer`` is a test double: an asyncio server whose handler decides, per test,
what a provider sends back (a whole answer, chunks, nothing, a cut)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from flow_memory.proxy.wire import AnswerTimeout, BodyCut, ConnectFailed, WireClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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


def client(read_timeout: float = 2.0) -> WireClient:
    return WireClient(connect_timeout=1.0, read_timeout=read_timeout)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


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
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            await reader.read()  # never answers

        async with ScriptedServer(silent) as scripted:
            wire = client(read_timeout=0.2)
            with pytest.raises(AnswerTimeout):
                await wire.post(scripted.url, {}, b"{}")
            with pytest.raises(AnswerTimeout):
                await wire.post(scripted.url, {}, b"{}")
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


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def test() -> None:
        async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)
            writer.write(answer(b"{}"))
            await writer.drain()  # then the handler ends and the server closes the socket

        async with ScriptedServer(once) as scripted:
            wire = client()
            for _ in range(2):
                response = await wire.post(scripted.url, {}, b"{}")
                assert await response.aread() == b"{}"
                await response.aclose()
                await asyncio.sleep(0.05)
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


def test_a_header_value_with_a_line_break_is_never_sent() -> None:
    async def test() -> None:
        async def listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await scripted.read_request(reader)

        async with ScriptedServer(listen) as scripted:
            with pytest.raises(ConnectFailed):
                await client().post(scripted.url, {"authorization": "a\r\nx-injected: 1"}, b"{}")
            await asyncio.sleep(0.05)
            assert scripted.requests == [] and scripted.connections == 0

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
