"""A lean HTTP/1.1 client for provider model servers.

Keep-alive connections per origin, responses parsed by httptools, a body read whole or as it
arrives. It does the little the proxy needs (POST a JSON body, read the answer) at a fraction
of the CPU of a general client: at a few hundred calls a second that is most of a core.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import certifi
import httptools

# Past this many unread bytes the socket stops being read until the reader catches up.
HIGH_WATER = 256 * 1024
MAX_IDLE_PER_ORIGIN = 64
MAX_CONNECTIONS_PER_ORIGIN = 256  # open at once, idle or busy; more callers wait for one
IDLE_SECONDS = 60.0  # an idle connection older than this is closed rather than reused
# The bytes of an answer's head (status line, headers, any 1xx heads before it), and of the
# framing and trailers between two pieces of body. Counted as they arrive: the parser only
# reports a header once its value is whole, and it buffers the value until then.
MAX_HEADER_BYTES = 64 * 1024


class WireError(Exception):
    """The upstream call failed; the subclass says when."""


class ConnectFailed(WireError):
    """No connection, or it closed before the answer's status line."""


class AnswerTimeout(WireError):
    """No connection or no status line before the timeout."""


class BodyCut(WireError):
    """The answer's body stopped before its end (closed, malformed or too slow)."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


# Connections are pooled by origin and by the addresses the caller allowed for it.
PoolKey = tuple[Origin, tuple[str, ...] | None]


def origin_of(url: str) -> tuple[Origin, str]:
    """Where to connect for ``url``, and the request target to send there."""
    parts = urlsplit(url)
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    return Origin(scheme, parts.hostname or "", port), parts.path or "/"


async def read_within(pieces: AsyncIterator[bytes], limit: int) -> bytes | None:
    """The pieces joined, or None once they go past ``limit`` bytes (stops reading there)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in pieces:
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class WireResponse:
    """An answer whose status and headers have arrived; the body is read on demand."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status_code = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._head: asyncio.Future[None] = connection.loop.create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: WireError | None = None
        self._closed = False

    # -- fed by the connection -------------------------------------------------------------

    def _headed(self, status: int) -> None:
        self.status_code = status
        if not self._head.done():
            self._head.set_result(None)

    def _body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._connection.pause()
        self._wake()

    def _delimited(self) -> bool:
        """True when the answer says where its body ends (a length, or chunks)."""
        return any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers)

    def _completed(self) -> None:
        self._complete = True
        self._wake()

    def _failed(self, error: WireError) -> None:
        if self._complete or self._error is not None:
            return
        self._error = error
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: nobody may be waiting any more
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the caller ----------------------------------------------------------------

    async def _wait(self, future: asyncio.Future[None], timeout: float, error: WireError) -> None:
        loop = self._connection.loop
        timer = loop.call_later(timeout, self._expire, future, error)
        try:
            await future
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[None], error: WireError) -> None:
        if not future.done():
            self._connection.close()
            self._failed(error)
            if not future.done():
                future.set_exception(error)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Each piece of the body as it arrives; raises BodyCut if it stops before its end."""
        timeout = self._connection.read_timeout
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._buffered <= HIGH_WATER:
                    self._connection.resume()
                yield data
                continue
            if self._error is not None:
                raise self._error
            if self._complete:
                self._release()
                return
            self._waiter = self._connection.loop.create_future()
            try:
                await self._wait(self._waiter, timeout, BodyCut("no data before the read timeout"))
            finally:
                self._waiter = None

    async def aread(self) -> bytes:
        """The whole body."""
        if self._complete and len(self._chunks) <= 1:
            data = self._chunks.popleft() if self._chunks else b""
            self._buffered = 0
            self._release()
            return data
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aread_within(self, limit: int) -> bytes | None:
        """The whole body, or None once it goes past ``limit`` bytes."""
        if self._complete and self._buffered <= limit:
            return await self.aread()  # all here already: nothing can grow
        return await read_within(self.aiter_bytes(), limit)

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._connection.finished(self)

    async def aclose(self) -> None:
        """Done with the answer: an unread or unfinished body closes the connection."""
        if self._closed:
            return
        self._closed = True
        if not (self._complete and not self._chunks and self._error is None):
            self._connection.close()
        self._connection.finished(self)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self, pool: WireClient, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.read_timeout = pool.read_timeout
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: WireResponse | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.holds_place = False
        self._paused = False
        self._headed = False  # the final (non-1xx) status and headers have arrived
        self._informational = False  # the parser is inside a 1xx answer, skipped
        self._done = False  # the answer ended: nothing more may arrive for it
        self._head_bytes = 0
        self._framing = 0  # bytes since the last piece of body that were not body
        self._fed_body = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, but offer the same members.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or self._done:
            # Bytes nobody asked for (an extra answer, or one sent after its end): the
            # connection is no longer in step; the answer already read stands.
            self.reusable = False
            self.close()
            return
        headed = self._headed
        self._fed_body = 0
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.reusable = False
            self.close()
            if not self._done:
                self._invalid(response, "the answer was not valid HTTP")
            return
        if self._done:
            return
        if not headed:
            self._head_bytes += len(data)
            if not self._headed and self._head_bytes > MAX_HEADER_BYTES:
                self._invalid(response, "the answer's headers are too large")
        else:
            self._framing += len(data) - self._fed_body
            if self._framing > MAX_HEADER_BYTES:
                self._invalid(response, "the answer's trailers are too large")

    def _invalid(self, response: WireResponse, problem: str) -> None:
        self.reusable = False
        self.close()
        response._failed(BodyCut(problem) if response._head.done() else ConnectFailed(problem))

    def eof_received(self) -> bool | None:
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.holds_place:
            self.holds_place = False
            self.pool._dropped(self.key)
        response = self.response
        if response is not None:
            if not response._head.done():
                response._failed(ConnectFailed("the connection closed before an answer"))
            elif response._delimited() or exc is not None:
                # A reset is no end: an answer without a length ends only at a clean close.
                response._failed(BodyCut("the connection closed before the answer's end"))
            else:
                response._completed()  # an answer without a length ends where the connection does

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:
            raise ValueError("an answer nobody asked for")  # ends the parse

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        if response is not None and not self._headed:  # trailers are not kept
            response.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise ValueError("the upstream switched protocols")  # ends the parse
            # 100 Continue, 103 Early Hints: not the answer, which follows on this connection.
            self._informational = True
            response.headers.clear()
            return
        self._headed = True
        response._headed(status)

    def on_body(self, body: bytes) -> None:
        self._framing = 0
        self._fed_body += len(body)
        if self.response is not None:
            self.response._body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._done = True
        self.reusable = self.parser.should_keep_alive()
        if self.response is not None:
            self.response._completed()

    # -- used by the client and the response -----------------------------------------------

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def finished(self, response: WireResponse) -> None:
        if self.response is response:
            self.response = None
            if self.reusable and not self.closed:
                self.reusable = False
                self.pool._put_back(self)
            else:
                self.close()

    async def send(self, request: bytes) -> WireResponse:
        assert self.transport is not None
        response = WireResponse(self)
        self.response = response
        self.reusable = False
        self._headed = self._informational = self._done = False
        self._head_bytes = self._framing = 0
        self.transport.write(request)
        try:
            await response._wait(
                response._head, self.read_timeout, AnswerTimeout("no answer before the timeout")
            )
        except BaseException:
            # Timed out, failed or cancelled (the client went away): this connection is spent.
            self.response = None
            self.abort()
            raise
        return response


class WireClient:
    """Keep-alive connections to provider model servers, reused per origin."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[PoolKey, deque[_Connection]] = {}
        self._open: dict[PoolKey, int] = {}  # connections open or opening, idle or busy
        self._waiting: dict[PoolKey, deque[asyncio.Future[None]]] = {}
        self._origins: dict[str, tuple[Origin, str]] = {}
        self._tls: ssl.SSLContext | None = None

    def _split(self, url: str) -> tuple[Origin, str]:
        found = self._origins.get(url)
        if found is None:
            if len(self._origins) > 10_000:
                self._origins.clear()
            found = self._origins[url] = origin_of(url)
        return found

    async def post(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        addresses: tuple[str, ...] | None = None,
    ) -> WireResponse:
        """Send ``body`` and wait for the answer's status line and headers.

        With ``addresses``, the connection goes to one of them (in order) and never to
        another the host's name might resolve to by then; ``host`` and the TLS name stay
        the URL's."""
        origin, path = self._split(url)
        host = origin.host if ":" not in origin.host else f"[{origin.host}]"
        default_port = 443 if origin.scheme == "https" else 80
        authority = host if origin.port == default_port else f"{host}:{origin.port}"
        head = [f"POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-length: {len(body)}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value:
                raise ConnectFailed("a header value holds a line break")  # nothing is sent
            head.append(f"{name}: {value}\r\n")
        head.append("\r\n")
        try:
            request = "".join(head).encode("latin-1") + body
        except UnicodeEncodeError:
            raise ConnectFailed("a header value is not latin-1") from None
        key = (origin, addresses)
        connection = self._idle_connection(key) or await self._acquire(key)
        return await connection.send(request)

    def _idle_connection(self, key: PoolKey) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        stale = asyncio.get_running_loop().time() - IDLE_SECONDS
        while idle and idle[0].idle_since < stale:  # the oldest are on the left
            idle.popleft().close()
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _acquire(self, key: PoolKey) -> _Connection:
        """A new connection, or one that comes free once the origin has its fill of them."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                while True:
                    connection = self._idle_connection(key)
                    if connection is not None:
                        return connection
                    if self._open.get(key, 0) < MAX_CONNECTIONS_PER_ORIGIN:
                        return await self._connect(key)
                    waiter = asyncio.get_running_loop().create_future()
                    waiting = self._waiting.setdefault(key, deque())
                    waiting.append(waiter)
                    try:
                        await waiter
                    except BaseException:
                        if waiter.cancelled():
                            if waiter in waiting:
                                waiting.remove(waiter)
                        else:
                            self._wake_one(key)  # woken but leaving: the turn passes on
                        raise
        except TimeoutError:
            raise AnswerTimeout("no connection before the timeout") from None

    def _wake_one(self, key: PoolKey) -> None:
        waiting = self._waiting.get(key)
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _put_back(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.key, deque())
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = connection.loop.time()
        idle.append(connection)
        self._wake_one(connection.key)

    def _dropped(self, key: PoolKey) -> None:
        """A connection of ``key`` closed, or never opened: room for another."""
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)
        self._wake_one(key)

    async def _connect(self, key: PoolKey) -> _Connection:
        origin, addresses = key
        loop = asyncio.get_running_loop()
        tls = None
        if origin.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=certifi.where())
            tls = self._tls
        self._open[key] = self._open.get(key, 0) + 1  # a place held while connecting
        failure = "no address to connect to"
        try:
            # A checked address is connected to as it is: no second lookup of the name.
            for address in (origin.host,) if addresses is None else addresses:
                try:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self, key),
                        address,
                        origin.port,
                        ssl=tls,
                        server_hostname=origin.host if tls else None,
                    )
                except OSError as error:
                    failure = type(error).__name__
                    continue
                if connection.closed:
                    failure = "the connection closed at once"
                    break
                connection.holds_place = True  # its place is given back when it closes
                return connection
        except BaseException:
            self._dropped(key)
            raise
        self._dropped(key)
        raise ConnectFailed(failure)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
