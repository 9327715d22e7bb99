"""The market writer in a process of its own.

``flow-memory serve`` applies the market's commands (orders, cancels, depth reads,
reservations and capacity snapshots: everything that reads or moves a book) in a child process
that keeps the books and runs the market writer; the server keeps no book. The server's event
loop and the writer then run on two cores at once, instead of taking turns on one interpreter
lock.

The two processes talk over a socket pair only they hold. Each frame is a 4-byte big-endian
length, then a pickle:
- the server sends lists of commands ``(request id, route-facts generation, time, command)``
  (a command is a dataclass of ``flow_memory.market.orders`` and its neighbours): those an
  event loop queued in one turn go in one frame at the end of the turn, written straight to
  the socket when it takes them at once, else by a sending thread (so no event loop waits on
  the socket); a thread that is no event loop's sends its command at once;
- the market process, on one thread, takes every command that has arrived, applies them as
  one batch of the market writer, and answers them in one frame once the batch has committed:
  ``(figures, answers)``, the batch's figures for /metrics (``flow_memory.market.metrics``)
  and an answer ``(request id, succeeded, result or error)`` per command. The server counts
  the figures in its own instruments before it tells the answers.

Writes other processes make reach the market process as they reach any writer on the same
database: a book another process changed is rebuilt from the database before its next command.
The route-facts generation sent with every command tells it when the server forgot what
decides a provider's route gate (a credential revoked, say), so it drops what its writer kept.
The server's clock is the market's: a batch is applied at the time the server sent its latest
command.

The server stops it by closing its end of the socket: it finishes and commits what it was sent,
then exits. It ignores SIGINT and SIGTERM, which reach it with the server's (Ctrl-C, a service
manager's stop) before the server's graceful shutdown has sent its last commands. If the server
dies, the market process reads the end of the socket just the same.

If the market process dies, every command waiting on it is answered 503 ``market_unavailable``
(it may or may not have been applied), and the next command starts a new one (unless the one
that died lived less than a second: commands are then answered 503 for a second, rather than
starting a process each).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import logging
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from flow_memory.kit.clock import Clock, SystemClock
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.market.metrics import BatchFigures, record
from flow_memory.market.writer import MAX_BATCH, Command, MarketWriter, Outcome, Queued, settle
from flow_memory.routing.facts import RouteFacts
from flow_memory.settings import Settings

log = logging.getLogger("flow_memory.market.process")

Waiting = asyncio.Future[Any] | Future[Any]  # a command's caller, on a loop or a thread


class MarketUnavailable(FlowMemoryError):
    status_code = 503
    code = "market_unavailable"


class MarketProcess:
    """The server's side: sends commands to the market process and awaits their answers."""

    def __init__(
        self, settings: Settings, clock: Clock, route_facts: Callable[[], RouteFacts]
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._route_facts = route_facts
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._stopped = False

    def start(self) -> None:
        """Start the market process (the first command starts it otherwise)."""
        with self._lock:
            self._stopped = False
        self._running()

    def stop(self, timeout: float = 30.0) -> None:
        """Have the market process finish every command it was sent, then exit; later
        commands are answered 503 until it is started again."""
        with self._lock:
            self._stopped = True
            child, self._child = self._child, None
        if child is not None:
            child.stop(timeout)

    @property
    def pid(self) -> int | None:
        child = self._child
        return None if child is None else child.process.pid

    async def run(self, command: Command) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._send(command, future)
        return await future

    def execute(self, command: Command, timeout: float = 60.0) -> Any:
        future: Future[Any] = Future()
        self._send(command, future, now=True)
        return future.result(timeout)

    def _send(self, command: Command, future: Waiting, *, now: bool = False) -> None:
        child = self._running()
        request_id = next(self._ids)
        child.pending[request_id] = future
        if not child.alive:  # it ended after it was looked up: nothing will answer
            child.pending.pop(request_id, None)
            raise _unavailable()
        generation = self._route_facts().generation
        child.send((request_id, generation, self._clock.now(), command), now=now)

    def _running(self) -> _Child:
        child = self._child
        if child is not None and child.alive:
            return child
        with self._lock:
            child = self._child
            if child is None or not child.alive:
                if self._stopped:
                    raise _unavailable()
                if child is not None and child.ended_young():
                    # It died starting: answer 503 for a while rather than start one per
                    # command.
                    raise _unavailable()
                child = self._child = _Child.spawn(self._settings)
            return child


class _Child:
    """One market process, its socket and the thread that reads its answers."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self.sock = sock
        self.alive = True
        self.started = time.monotonic()
        self.ended: float | None = None
        self.pending: dict[int, Waiting] = {}
        # The commands an event loop queues in one turn go out together, in one frame, at the
        # end of that turn: written straight to the socket when it takes them at once, else
        # left to the sending thread, so no event loop ever blocks on a socket the market
        # process is slow to read (it is still starting, or paused).
        self._queued: list[tuple[Any, ...]] = []
        # The loops with a flush to run (None: one run from ``stop``).
        self._flushing: set[asyncio.AbstractEventLoop | None] = set()
        self._backlog = bytearray()  # framed bytes the socket did not take at once
        self._thread_sending = False  # the sending thread holds bytes taken from the backlog
        self._outbox_ready = threading.Condition()
        self._closing = False
        self._sender = threading.Thread(
            target=self._send, name="flow-memory-market-commands", daemon=True
        )
        self._reader = threading.Thread(
            target=self._read, name="flow-memory-market-answers", daemon=True
        )

    @classmethod
    def spawn(cls, settings: Settings) -> _Child:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "flow_memory.market", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        child = cls(process, ours)
        # Its first frame: the settings (a new socket's buffer takes them without waiting).
        child._send_frame(dataclasses.asdict(settings))
        child._sender.start()
        child._reader.start()
        log.info("market process %d started", process.pid)
        return child

    def ended_young(self) -> bool:
        """Whether it ended within a second of starting, less than a second ago."""
        ended = self.ended
        return ended is not None and ended - self.started < 1 and time.monotonic() - ended < 1

    def send(self, command: tuple[Any, ...], *, now: bool = False) -> None:
        """Queue a command, from an event loop: sent with the others it queues this turn;
        ``now``, from any other thread: sent at once."""
        if now:
            with self._outbox_ready:
                self._queued.append(command)
            self._flush()
            return
        loop = asyncio.get_running_loop()
        with self._outbox_ready:
            self._queued.append(command)
            if loop in self._flushing:
                return
            self._flushing.add(loop)
        loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Frame what is queued and write it, or hand it to the sending thread."""
        with self._outbox_ready:
            self._flushing.discard(loop)
            if not self._queued:
                return
            queued, self._queued = self._queued, []
            data = frame(pickle.dumps(queued, protocol=pickle.HIGHEST_PROTOCOL))
            if self._backlog or self._thread_sending:
                self._backlog += data  # behind what is still going out
                self._outbox_ready.notify()
                return
            try:
                sent = self.sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                # It is gone: the reading thread answers every waiting command 503.
                log.warning("the market process is gone; commands were not sent")
                return
            if sent < len(data):
                self._backlog += data[sent:]
                self._outbox_ready.notify()

    def _send(self) -> None:
        """The sending thread: writes what the socket did not take at once, blocking."""
        while True:
            with self._outbox_ready:
                while not self._backlog and not self._closing:
                    self._outbox_ready.wait()
                if not self._backlog:
                    return  # closing, and everything queued was sent
                data, self._backlog = bytes(self._backlog), bytearray()
                self._thread_sending = True
            try:
                self.sock.sendall(data)
            except OSError:
                log.warning("the market process is gone; commands were not sent")
                return
            finally:
                with self._outbox_ready:
                    self._thread_sending = False

    def _send_frame(self, value: Any) -> None:
        write_frame(self.sock, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def _read(self) -> None:
        try:
            for figures, answers in read_frames(self.sock):
                for batch in figures:
                    record(batch)
                outcomes: list[Outcome] = []
                for request_id, succeeded, value in answers:
                    future = self.pending.pop(request_id, None)
                    if future is not None:
                        outcomes.append((future, succeeded, value if succeeded else _error(value)))
                settle(outcomes)
        except OSError:
            pass
        finally:
            self.alive = False
            self.ended = time.monotonic()
            waiting = list(self.pending.items())
            self.pending.clear()
            if waiting:
                log.error("the market process ended with %d commands unanswered", len(waiting))
            settle([(future, False, _unavailable()) for _, future in waiting])
            self.sock.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)  # it closed its end by exiting: reap it

    def stop(self, timeout: float) -> None:
        self._flush()  # commands queued this turn go first
        with self._outbox_ready:
            self._closing = True
            self._outbox_ready.notify()
        self._sender.join(timeout)  # every command queued is sent
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)  # the end of its commands: it finishes, exits
        self._reader.join(timeout)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the market process did not exit in %.0f s; killing it", timeout)
            self.process.kill()
            self.process.wait()
        self.sock.close()


def _unavailable() -> MarketUnavailable:
    return MarketUnavailable(
        "the market process stopped before answering: the command may or may not have been applied",
        hint="look the order or reservation up before you retry",
    )


def _error(value: tuple[Any, ...]) -> Exception:
    """The error a command failed with, as the market process described it."""
    if value[0] == "refused":
        _, message, field, hint, code, status_code = value
        return FlowMemoryError(message, field=field, hint=hint, code=code, status_code=status_code)
    return RuntimeError(f"the market process failed: {value[1]}")


def _describe(error: BaseException) -> tuple[Any, ...]:
    if isinstance(error, FlowMemoryError):
        return ("refused", error.message, error.field, error.hint, error.code, error.status_code)
    return ("failed", f"{type(error).__name__}: {error}")


def frame(data: bytes) -> bytes:
    """One frame: a pickle's bytes, after their length."""
    return len(data).to_bytes(4, "big") + data


def write_frame(sock: socket.socket, data: bytes) -> None:
    """Send one frame, blocking until the socket has taken it."""
    sock.sendall(frame(data))


def read_frames(sock: socket.socket) -> Iterator[Any]:
    """Each frame's value, until the other end closes."""
    reader = FrameReader(sock)
    while True:
        try:
            yield from reader.take(wait=True)
        except EOFError:
            return


class FrameReader:
    """Reads frames from a socket, as many at a time as have arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._closed = False

    def take(self, *, wait: bool) -> list[Any]:
        """The values of every frame that has arrived in full: at least one when ``wait`` (it
        waits for it), maybe none otherwise. EOFError once the other end has closed and every
        frame was taken."""
        while True:
            values = self._complete()
            if values:
                return values
            if self._closed:
                raise EOFError
            try:
                # At most 64 KiB at a time: a larger read has the allocator map (and unmap) a
                # fresh buffer for every read, however little arrives.
                chunk = self.sock.recv(1 << 16, 0 if wait else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return []
            if not chunk:
                self._closed = True
            self._buffer += chunk

    def _complete(self) -> list[Any]:
        buffer, start, values = self._buffer, 0, []
        while len(buffer) - start >= 4:
            size = int.from_bytes(buffer[start : start + 4], "big")
            end = start + 4 + size
            if len(buffer) < end:
                break
            values.append(pickle.loads(buffer[start + 4 : end]))
            start = end
        del buffer[:start]
        return values


# The market process's side.


class _SentClock:
    """The server's clock, as of the latest command it sent."""

    def __init__(self) -> None:
        self.latest = SystemClock().now()

    def now(self) -> datetime:
        return self.latest


class _Answer:
    """Tells the server a command's outcome (``MarketWriter`` sets it once its batch ends)."""

    __slots__ = ("outbox", "request_id")

    def __init__(self, request_id: int, outbox: list[tuple[int, bool, Any]]) -> None:
        self.request_id = request_id
        self.outbox = outbox

    def set_result(self, result: Any) -> None:
        self.outbox.append((self.request_id, True, result))

    def set_exception(self, exception: BaseException) -> None:
        self.outbox.append((self.request_id, False, _describe(exception)))


def serve(sock: socket.socket) -> None:
    """Apply the commands the server sends until it closes its end, then finish and exit.

    One thread does everything: it takes every command that has arrived, applies them as one
    batch of the market writer (up to its most), answers them, and reads again; commands sent
    meanwhile wait in the socket and make the next batch."""
    reader = FrameReader(sock)
    first, *arrived = reader.take(wait=True)  # the settings, and maybe commands already
    settings = Settings(**first)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    engine = make_engine(settings.database_url)
    clock = _SentClock()
    generation: list[int | None] = [None]
    outbox: list[tuple[int, bool, Any]] = []
    figures: list[BatchFigures] = []

    def answer() -> None:
        answers, told = outbox[:], figures[:]
        del outbox[:], figures[:]
        if answers or told:
            _send_answers(sock, told, answers)

    writer = MarketWriter(
        make_session_factory(engine),
        settings=settings,
        clock=clock,
        generation=lambda: generation[0],
        after_batch=answer,
        observe=figures.append,
    )
    gc.collect()
    gc.freeze()  # what is loaded now lives as long as the process
    try:
        while True:
            try:
                frames = arrived or reader.take(wait=True)
            except EOFError:
                break
            # The end of the socket, or its failure, shows again at the next wait: what has
            # arrived is applied first.
            with contextlib.suppress(EOFError, OSError):
                frames += reader.take(wait=False)
            arrived = []
            batch: list[Queued] = []
            for request_id, seen, sent_at, command in itertools.chain.from_iterable(frames):
                generation[0] = seen
                clock.latest = sent_at
                batch.append((command, _Answer(request_id, outbox)))
            for start in range(0, len(batch), MAX_BATCH):
                writer.apply(batch[start : start + MAX_BATCH])
    except OSError:
        log.warning("the server's socket failed; every command read from it was applied")
    finally:
        writer.stop(timeout=60)
        engine.dispose()


def _send_answers(
    sock: socket.socket, figures: list[BatchFigures], answers: list[tuple[int, bool, Any]]
) -> None:
    try:
        data = pickle.dumps((figures, answers), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # one answer that does not pickle must not lose the others
        log.exception("a market answer could not be sent")
        data = pickle.dumps(
            (figures, [_picklable(answer, error) for answer in answers]),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    try:
        write_frame(sock, data)
    except OSError:
        log.warning("%d market answers were not delivered: the server is gone", len(answers))


def _picklable(answer: tuple[int, bool, Any], error: Exception) -> tuple[int, bool, Any]:
    try:
        pickle.dumps(answer)
    except Exception:
        return (answer[0], False, _describe(error))
    return answer


def main() -> None:
    """The market process (started as ``python -m flow_memory.market <fd>``)."""
    serve(socket.socket(fileno=int(sys.argv[1])))
