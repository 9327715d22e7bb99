"""Flow Memory's local model server: a small SDK-compatible HTTP server (Starlette, run by
uvicorn) over the two models the `local-model` extra installs, nothing downloaded at run time.

- ``GET /v1/models`` lists both names with their context windows.
- ``POST /v1/chat/completions`` answers ``flow-memory-local-chat`` (the GGUF model on
  cyllama), whole or as a ``stream`` of SDK chunks, with usage in the last chunk when
  ``stream_options.include_usage`` asks for it.
- ``POST /v1/embeddings`` answers ``flow-memory-local-embed``: one vector per input, the
  sentence-transformers model's mean of its token vectors, normalised to unit length; as
  numbers or, with ``encoding_format: "base64"``, little-endian float32 in base64.

The chat model answers one call at a time (a lock; the others wait their turn). The
embeddings model loads on a thread of its own, so chat answers while it loads.

Run: ``python -m flow_memory.agent.local_server --port 8080``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from flow_memory.agent.chat_prompt import (
    IncrementalText,
    PromptError,
    StopScanner,
    instruction_prompt,
)
from flow_memory.agent.local_model import (
    CHAT_CONTEXT,
    CHAT_MODEL,
    EMBEDDING_CONTEXT,
    EMBEDDING_MODEL,
)
from flow_memory.agent.local_protocol import (
    BadRequest,
    ChatRequest,
    Completion,
    Json,
    chat_request,
    check_model,
    embeddings_document,
    embeddings_request,
    error_document,
)
from flow_memory.agent.model_runtimes import Embedded, Sampling

EMBEDDER_WAIT_SECONDS = 300.0


class ChatRuntime(Protocol):
    context_window: int

    def tokenize(self, prompt: str) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def generate(
        self, prompt: Sequence[int], *, max_tokens: int, sampling: Sampling
    ) -> Iterator[int]: ...


class EmbedRuntime(Protocol):
    dimensions: int

    def embed(self, texts: Sequence[str]) -> Embedded: ...


class EmbedderSource(Protocol):
    """The embeddings model once loaded (``ready`` set), or why it could not load."""

    @property
    def embedder(self) -> EmbedRuntime | None: ...

    @property
    def error(self) -> str | None: ...

    def wait(self, timeout: float) -> bool: ...


@dataclass
class Answer:
    """One chat answer being written: its text pieces as they come, then how it ended."""

    chat: ChatRuntime
    prompt: list[int]
    max_tokens: int
    request: ChatRequest
    completion_tokens: int = 0
    finish_reason: str = "stop"

    def pieces(self) -> Iterator[str]:
        """The answer's text in pieces (none empty), ended at the first stop string."""
        text = IncrementalText(self.chat.detokenize)
        scanner = StopScanner(self.request.stops)
        tokens = self.chat.generate(
            self.prompt, max_tokens=self.max_tokens, sampling=self.request.sampling
        )
        for token in tokens:
            self.completion_tokens += 1
            piece = scanner.feed(text.add(token))
            if piece:
                yield piece
            if scanner.stopped:
                return
        piece = scanner.feed(text.finish()) + scanner.finish()
        if piece:
            yield piece
        if self.completion_tokens >= self.max_tokens and not scanner.stopped:
            self.finish_reason = "length"


def start_answer(chat: ChatRuntime, request: ChatRequest) -> Answer:
    """The prompt for the request's messages, and the room left for the answer."""
    try:
        prompt = chat.tokenize(instruction_prompt(request.messages))
    except PromptError as error:
        raise BadRequest(str(error), param="messages") from None
    room = chat.context_window - len(prompt)
    if room < 1:
        raise BadRequest(
            f"the messages take {len(prompt)} tokens; the model's context holds "
            f"{chat.context_window}, prompt and answer together",
            param="messages",
            code="context_length_exceeded",
        )
    max_tokens = room if request.max_tokens is None else min(request.max_tokens, room)
    return Answer(chat, prompt, max_tokens, request)


def create_local_model_app(chat: ChatRuntime, embeddings: EmbedderSource) -> Starlette:
    """The server's app over a chat runtime and an embeddings model (loaded or loading)."""
    turn = asyncio.Lock()  # the chat runtime writes one answer at a time
    started = int(time.time())

    async def models(_request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    _model_entry(CHAT_MODEL, started, chat.context_window),
                    _model_entry(EMBEDDING_MODEL, started, EMBEDDING_CONTEXT),
                ],
            }
        )

    async def chat_completions(request: Request) -> Response:
        try:
            body = await _body(request)
            check_model(body, serves=CHAT_MODEL, elsewhere={EMBEDDING_MODEL: "embeddings"})
            asked = chat_request(body)
            answer = start_answer(chat, asked)
        except BadRequest as error:
            return _refuse(error)
        completion = Completion.new(CHAT_MODEL)
        if asked.stream:
            return StreamingResponse(
                _stream(turn, answer, completion),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        async with turn:
            text = "".join(await run_in_threadpool(lambda: list(answer.pieces())))
        return JSONResponse(
            completion.document(
                text, answer.finish_reason, len(answer.prompt), answer.completion_tokens
            )
        )

    async def embeddings_route(request: Request) -> Response:
        try:
            body = await _body(request)
            check_model(body, serves=EMBEDDING_MODEL, elsewhere={CHAT_MODEL: "chat completions"})
            if not await run_in_threadpool(embeddings.wait, EMBEDDER_WAIT_SECONDS):
                raise BadRequest("the embeddings model is still loading", status=503)
            embedder = embeddings.embedder
            if embedder is None:
                raise BadRequest(
                    f"the embeddings model could not load: {embeddings.error}", status=503
                )
            asked = embeddings_request(body, dimensions=embedder.dimensions)
        except BadRequest as error:
            return _refuse(error)
        embedded = await run_in_threadpool(embedder.embed, asked.texts)
        return JSONResponse(
            embeddings_document(
                embedded.vectors,
                model=EMBEDDING_MODEL,
                tokens=embedded.tokens,
                encoding_format=asked.encoding_format,
            )
        )

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings_route, methods=["POST"]),
        ]
    )


async def _stream(turn: asyncio.Lock, answer: Answer, completion: Completion) -> AsyncIterator[str]:
    """The answer as server-sent events: a role chunk, a chunk per piece, the finish, usage."""
    usage = answer.request.include_usage
    async with turn:
        yield _event(completion.chunk({"role": "assistant", "content": ""}, include_usage=usage))
        async for piece in iterate_in_threadpool(answer.pieces()):
            yield _event(completion.chunk({"content": piece}, include_usage=usage))
    yield _event(completion.chunk({}, answer.finish_reason, include_usage=usage))
    if usage:
        yield _event(completion.usage_chunk(len(answer.prompt), answer.completion_tokens))
    yield "data: [DONE]\n\n"


def _event(document: Json) -> str:
    return f"data: {json.dumps(document, separators=(',', ':'))}\n\n"


def _model_entry(name: str, created: int, context_window: int) -> Json:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "flow-memory",
        "context_window": context_window,
    }


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise BadRequest("the body is not JSON") from None


def _refuse(error: BadRequest) -> Response:
    return JSONResponse(error_document(error), status_code=error.status)


def main(argv: list[str] | None = None) -> int:
    """Load both models from the installed packages and serve them."""
    parser = argparse.ArgumentParser(prog="python -m flow_memory.agent.local_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    # Half the cores: both runtimes spin their worker threads, and on a small shared machine
    # two threads answer several times slower than one.
    parser.add_argument("--threads", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    args = parser.parse_args(argv)
    # Everything the models need ships in their packages: never reach for a model hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Idle worker threads sleep instead of spinning on cores the server shares.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")

    import uvicorn

    from flow_memory.agent.local_model import embedding_model_path, packaged_model_path
    from flow_memory.agent.model_runtimes import EmbedderLoader, LlamaChat
    from flow_memory.kit.server import KEEP_ALIVE_SECONDS

    loader = EmbedderLoader(embedding_model_path(), threads=args.threads)
    loader.start()
    chat = LlamaChat(packaged_model_path(), context_window=CHAT_CONTEXT, threads=args.threads)
    app = create_local_model_app(chat, loader)
    print(
        f"serving {CHAT_MODEL} and {EMBEDDING_MODEL} at http://{args.host}:{args.port}/v1",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,  # the proxy's pool lets an idle one go first
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
