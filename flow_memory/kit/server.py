"""The HTTP server: uvicorn, on its C parser and event loop, sending each response's head with
its body.

uvicorn writes a response's status line and headers to the socket as soon as the application
starts the response, then its body as a second write: two system calls, and two segments for
the client to read, for every small JSON answer. At thousands of orders a second that second
write was about 8 % of the event loop's time. ``HeadWithBody`` keeps the head back until the
body's first write joins it (or until the end of the loop's turn, for a response whose body
is slow to come), so a small response goes out in one write.
"""

from __future__ import annotations

import asyncio
import sys
from types import FrameType
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# How long an idle keep-alive connection stays open. A server that closes an idle connection
# while a client picks it for its next request loses that request ("disconnected without a
# response"): clients' pools must give up on idle connections first. Theirs expire sooner
# (5 s in common HTTP clients, 60 s in the proxy's own upstream pool), so 75 s here.
KEEP_ALIVE_SECONDS = 75
STARTUP_FAILURE = 3  # the exit status of a server that could not start (as uvicorn's own)


def run_server(app: Any, *, host: str, port: int, log_level: str) -> None:
    """Serve ``app`` until the process is stopped (Ctrl-C, SIGTERM). As it begins to stop,
    each of ``app.state.on_stopping`` is called (from the signal handler, on the event loop's
    thread): what holds a connection open for long (an event stream) ends it there, since the
    server waits for every open request before it exits."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            for hook in getattr(getattr(app, "state", None), "on_stopping", ()):
                hook()

    config = uvicorn.Config(app, host=host, port=port, **server_options(log_level))
    server = Server(config)
    server.run()
    if not server.started:  # the start failed (a port taken, a lifespan error): say so
        sys.exit(STARTUP_FAILURE)


def server_options(log_level: str) -> dict[str, Any]:
    """How uvicorn serves the app."""
    return {
        # Named rather than left to uvicorn's guess, so a missing C parser or event loop (both
        # dependencies; uvloop has no Windows build) fails at start instead of slowing every
        # request.
        "http": HeadWithBodyProtocol,
        "loop": "asyncio" if sys.platform == "win32" else "uvloop",
        "access_log": False,
        "log_level": log_level,
        # Answers name no server software (uvicorn's default is "server: uvicorn").
        "server_header": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }


class HeadWithBodyProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (C parser), writing through ``HeadWithBody``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        wrapped = HeadWithBody(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, wrapped))

    def eof_received(self) -> None:
        # The client closed its side: the transport closes itself once this returns, without
        # passing through the wrapper, so what is held goes out first.
        cast(HeadWithBody, self.transport).flush()
        super().eof_received()


class HeadWithBody:
    """A transport that holds a write back until the next one joins it, or until the end of
    the event loop's turn, whichever comes first: the bytes and their order are unchanged.
    Everything but writing and closing goes straight to the transport it wraps."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.writelines((held, data))  # one system call, the body not copied

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def flush(self) -> None:
        """Write what is held, if anything."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
