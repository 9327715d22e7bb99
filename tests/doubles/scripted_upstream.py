"""A scripted upstream: a test double of an SDK-compatible model server on a real HTTP socket.

Use it where a test needs a provider's model server whose answers and failures it controls.

    with ScriptedUpstream(models=["double-chat"]) as upstream:
        upstream.base_url                   # "http://127.0.0.1:<port>/v1"
        upstream.script(Fault.ERROR, times=1)   # the next request gets a 500, then normal again
        ...
        upstream.requests                   # every request seen: method, path, headers, body

Endpoints (each can be switched off with ``styles=``):
    GET  /v1/models             {"object": "list", "data": [{"id", "object": "model", ...}]}
    POST /v1/chat/completions   style "chat";       "stream": true gives SSE chunks + [DONE]
    POST /v1/responses          style "responses";  "stream": true gives response.* events
    POST /v1/embeddings         style "embeddings"; one 8-float vector per input
    POST /v1/messages           style "messages";   "stream": true gives message_* events
An endpoint whose style is off answers 404. The reply text is ``reply`` (default
"Hello from the scripted upstream."), streamed one word per chunk. Usage counts words: input
tokens = words in the request's text, output tokens = words in the reply. A chat stream
carries a final usage chunk when the request asks with ``stream_options.include_usage``.

Faults (``script(fault, times=None, ...)``; ``times=None`` means until scripted again):
    Fault.OK          normal answers
    Fault.SLOW        wait ``delay`` seconds before answering (``chunk_delay`` between chunks)
    Fault.ERROR       answer ``status`` (default 500) with an error JSON body
    Fault.CUT_STREAM  send ``chunks`` chunks (default 2) of a stream, then drop the connection
                      (a non-stream request gets half a body and a dropped connection)
    Fault.MALFORMED   answer 200 with a body that is not JSON (a stream sends a broken event)
    Fault.HANG        accept the request and never answer (until ``stop()``)
Faults apply to POST endpoints; ``affect_models=True`` applies them to GET /v1/models too.
``required_authorization`` (e.g. "Bearer sk-test") makes every request without exactly that
header answer 401. Run ``python -m tests.doubles.scripted_upstream --port 8080`` to serve it
from a shell.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ALL_STYLES = frozenset({"chat", "responses", "embeddings", "messages"})
PATH_STYLES = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}


class Fault(enum.Enum):
    OK = "ok"
    SLOW = "slow"
    ERROR = "error"
    CUT_STREAM = "cut_stream"
    MALFORMED = "malformed"
    HANG = "hang"


@dataclass(frozen=True)
class Script:
    """One scripted behaviour and its parameters."""

    fault: Fault = Fault.OK
    delay: float = 0.0
    chunk_delay: float = 0.0
    status: int = 500
    chunks: int = 2


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Plan:
    default: Script = field(default_factory=Script)
    queue: deque[Script] = field(default_factory=deque)


class ScriptedUpstream:
    """The double itself: start() binds a loopback port and serves on a thread."""

    def __init__(
        self,
        *,
        models: list[str] | None = None,
        styles: frozenset[str] | set[str] = ALL_STYLES,
        reply: str = "Hello from the scripted upstream.",
        required_authorization: str | None = None,
        affect_models: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.models = list(models or ["double-chat"])
        self.styles = frozenset(styles)
        self.reply = reply
        self.required_authorization = required_authorization
        self.affect_models = affect_models
        self.requests: list[RecordedRequest] = []
        self._plan = _Plan()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.upstream = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedUpstream:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scripted-upstream", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving, close the socket and every connection."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        status: int = 500,
        chunks: int = 2,
    ) -> None:
        """Behave this way for the next `times` requests (or from now on, if `times` is None)."""
        step = Script(fault, delay, chunk_delay, status, chunks)
        with self._lock:
            if times is None:
                self._plan = _Plan(default=step)
            else:
                self._plan.queue.extend([step] * times)

    def _next_script(self) -> Script:
        with self._lock:
            return self._plan.queue.popleft() if self._plan.queue else self._plan.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    upstream: ScriptedUpstream

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.live_lock:
            self.live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.live_lock:
            self.live.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open connection, kept-alive ones included, as a dying server would."""
        with self.live_lock:
            live = list(self.live)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _words(value: Any) -> int:
    """Count the words in every string of a request body's text-bearing fields."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for k, v in value.items() if k in {"content", "text", "input"})
    return 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests` instead."""

    @property
    def upstream(self) -> ScriptedUpstream:
        return self.server.upstream

    # -- plumbing ------------------------------------------------------------------------------

    def _read_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "scripted_error"}})

    def _drop(self) -> None:
        """End the connection abruptly, without completing the message."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_body() if method == "POST" else None
        self.upstream._record(
            RecordedRequest(method, path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        wanted = self.upstream.required_authorization
        if wanted is not None and self.headers.get("authorization") != wanted:
            self._error(401, "missing or wrong authorization")
            return
        is_models = method == "GET" and path == "/v1/models"
        style = PATH_STYLES.get(path) if method == "POST" else None
        if not is_models and (style is None or style not in self.upstream.styles):
            self._error(404, f"no route {method} {path}")
            return
        script = (
            self.upstream._next_script() if (style or self.upstream.affect_models) else Script()
        )
        stream = isinstance(body, dict) and body.get("stream") is True
        if script.fault is Fault.HANG:
            self.upstream._released.wait()
            self._drop()
            return
        if script.delay:
            time.sleep(script.delay)
        if script.fault is Fault.ERROR:
            self._error(script.status, "scripted upstream failure")
            return
        if is_models:
            self._models(script)
            return
        assert style is not None and isinstance(body, dict)
        if stream and style != "embeddings":
            self._stream(style, body, script)
        else:
            self._answer(style, body, script)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- answers -------------------------------------------------------------------------------

    def _models(self, script: Script) -> None:
        if script.fault is Fault.MALFORMED:
            self._malformed()
            return
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "scripted-upstream"}
            for m in self.upstream.models
        ]
        self._send_json(200, {"object": "list", "data": data})

    def _malformed(self) -> None:
        data = b'{"id": "broken", "choices": [ this is not json'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, style: str, body: dict[str, Any], script: Script) -> None:
        if script.fault is Fault.MALFORMED:
            self._malformed()
            return
        answer = self._full_answer(style, body)
        if script.fault is Fault.CUT_STREAM:
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._drop()
            return
        self._send_json(200, answer)

    def _full_answer(self, style: str, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model", ""))
        reply = self.upstream.reply
        created = int(time.time())
        if style == "embeddings":
            inputs = body.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            tokens = _words(items)
            return {
                "object": "list",
                "model": model,
                "data": [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": [round(0.125 * (j + 1) + 0.01 * i, 6) for j in range(8)],
                    }
                    for i in range(len(items))
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        inputs = _words(body.get("messages") or body.get("input"))
        outputs = len(reply.split())
        if style == "chat":
            return {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": inputs,
                    "completion_tokens": outputs,
                    "total_tokens": inputs + outputs,
                },
            }
        if style == "responses":
            return _response_object(model, reply, inputs, outputs, created)
        return {
            "id": "msg_scripted",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": inputs, "output_tokens": outputs},
        }

    def _stream(self, style: str, body: dict[str, Any], script: Script) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events = list(self._stream_events(style, body))
        for index, event in enumerate(events):
            if script.fault is Fault.CUT_STREAM and index >= script.chunks:
                self._drop()
                return
            if script.fault is Fault.MALFORMED and index == 1:
                event = b"data: {not json\n\n"
            if script.chunk_delay and index:
                time.sleep(script.chunk_delay)
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            except OSError:
                return  # the client went away
        self.wfile.write(b"0\r\n\r\n")

    def _stream_events(self, style: str, body: dict[str, Any]) -> list[bytes]:
        model = str(body.get("model", ""))
        words = self.upstream.reply.split()
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        inputs = _words(body.get("messages") or body.get("input"))
        outputs = len(words)
        created = int(time.time())
        if style == "chat":
            return _chat_stream(model, pieces, inputs, outputs, created, body)
        if style == "responses":
            return _responses_stream(model, pieces, inputs, outputs, created)
        return _messages_stream(model, pieces, inputs, outputs)


def _sse(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {text}\n\n".encode()


def _chat_stream(
    model: str, pieces: list[str], inputs: int, outputs: int, created: int, body: dict[str, Any]
) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events = [_sse(chunk({"role": "assistant", "content": ""}, None))]
    events += [_sse(chunk({"content": piece}, None)) for piece in pieces]
    events.append(_sse(chunk({}, "stop")))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        events.append(
            _sse(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": inputs,
                        "completion_tokens": outputs,
                        "total_tokens": inputs + outputs,
                    },
                }
            )
        )
    events.append(_sse("[DONE]"))
    return events


def _response_object(
    model: str, text: str, inputs: int, outputs: int, created: int, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": "resp_scripted",
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_scripted",
                "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": inputs,
            "output_tokens": outputs,
            "total_tokens": inputs + outputs,
        },
    }


def _responses_stream(
    model: str, pieces: list[str], inputs: int, outputs: int, created: int
) -> list[bytes]:
    started = _response_object(model, "", 0, 0, created, status="in_progress")
    started["output"] = []
    events = [_sse({"type": "response.created", "response": started}, "response.created")]
    for piece in pieces:
        events.append(
            _sse(
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_scripted",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                },
                "response.output_text.delta",
            )
        )
    done = _response_object(model, "".join(pieces), inputs, outputs, created)
    events.append(_sse({"type": "response.completed", "response": done}, "response.completed"))
    return events


def _messages_stream(model: str, pieces: list[str], inputs: int, outputs: int) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_scripted",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": inputs, "output_tokens": 0},
        },
    }
    events = [
        _sse(start, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
    ]
    for piece in pieces:
        events.append(
            _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
                "content_block_delta",
            )
        )
    events += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": outputs},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return events


def main() -> None:
    """Serve the double from a shell until interrupted."""
    parser = argparse.ArgumentParser(description="a scripted SDK-compatible upstream (test double)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", action="append", dest="models")
    args = parser.parse_args()
    upstream = ScriptedUpstream(models=args.models, port=args.port).start()
    print(f"scripted upstream on {upstream.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()
