"""What the local model server reads and writes: SDK-compatible chat and embeddings bodies,
checked, and the documents that answer them (pure: no model, no I/O).

Embeddings are written as the SDK expects: ``encoding_format: "float"`` (the default) gives a
list of numbers per input, ``"base64"`` the same vector as little-endian float32 bytes in
base64."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flow_memory.agent.chat_prompt import PromptError, request_stops
from flow_memory.agent.model_runtimes import Sampling

Json = dict[str, Any]
ENCODING_FORMATS = ("float", "base64")
MAX_EMBEDDING_INPUTS = 2048


class BadRequest(Exception):
    """A body the server refuses, with the field it concerns; answered as an SDK error."""

    def __init__(
        self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code or ("model_not_found" if status == 404 else "invalid_request")


def error_document(error: BadRequest) -> Json:
    kind = "not_found_error" if error.status == 404 else "invalid_request_error"
    return {
        "error": {
            "message": error.message,
            "type": kind,
            "param": error.param,
            "code": error.code,
        }
    }


def check_model(body: Any, *, serves: str, elsewhere: Mapping[str, str]) -> None:
    """The body is an object naming the model this route serves; ``elsewhere`` maps each other
    model name to the route that serves it, for a helpful refusal."""
    if not isinstance(body, dict):
        raise BadRequest("the body is a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required", param="model")
    if model in elsewhere:
        raise BadRequest(
            f"{model} does not serve this API; it serves {elsewhere[model]} (use {serves} here)",
            param="model",
            code="model_not_supported",
        )
    if model != serves:
        known = ", ".join((serves, *elsewhere))
        raise BadRequest(
            f"no model named {model!r} here; models: {known}", param="model", status=404
        )


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Mapping[str, Any]]
    max_tokens: int | None
    sampling: Sampling
    stops: tuple[str, ...]
    stream: bool
    include_usage: bool


def chat_request(body: Json) -> ChatRequest:
    """A chat body's fields, checked; those the local model has no use for are ignored."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages is a non-empty list of messages", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest("each message is an object", param=f"messages[{index}]")
    if _number(body, "n", 1, 1, whole=True) != 1:
        raise BadRequest("the local chat model writes one choice (n = 1)", param="n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        max_tokens = int(_number(body, name, None, 1, whole=True))
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequest("seed is a whole number", param="seed")
    sampling = Sampling(
        temperature=_number(body, "temperature", 0.8, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        seed=seed,
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
    )
    try:
        stops = request_stops(body.get("stop"))
    except PromptError as error:
        raise BadRequest(str(error), param="stop") from None
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream is true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options is an object", param="stream_options")
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        sampling=sampling,
        stops=stops,
        stream=stream,
        include_usage=stream and options.get("include_usage") is True,
    )


def _number(
    body: Json,
    name: str,
    default: float | None,
    low: float,
    high: float | None = None,
    *,
    whole: bool = False,
) -> float:
    value = body.get(name)
    if value is None:
        if default is None:
            raise BadRequest(f"{name} is required", param=name)
        return default
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BadRequest(f"{name} is a {'whole ' if whole else ''}number", param=name)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
        raise BadRequest(f"{name} is {bounds}", param=name)
    return float(value)


def usage_document(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass(frozen=True)
class Completion:
    """Who an answer is: the ids and time every document and chunk of it repeats."""

    model: str
    id: str
    created: int

    @classmethod
    def new(cls, model: str) -> Completion:
        return cls(model, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))

    def document(
        self, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int
    ) -> Json:
        """The whole answer of a call without ``stream``."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage_document(prompt_tokens, completion_tokens),
        }

    def chunk(
        self,
        delta: Json,
        finish_reason: str | None = None,
        *,
        include_usage: bool = False,
    ) -> Json:
        """One chunk of a stream; with ``include_usage`` each says ``usage: null`` until the
        last (``usage_chunk``)."""
        chunk: Json = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> Json:
        """The stream's last chunk, asked for by ``stream_options.include_usage``."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_document(prompt_tokens, completion_tokens),
        }


@dataclass(frozen=True)
class EmbeddingsRequest:
    texts: list[str]
    encoding_format: str


def embeddings_request(body: Json, *, dimensions: int) -> EmbeddingsRequest:
    """An embeddings body's texts and format: a string or a list of strings (token ids are
    refused: they are another model's tokens), in ``float`` or ``base64``."""
    given = body.get("input")
    texts: list[Any] = (
        [given] if isinstance(given, str) else given if isinstance(given, list) else []
    )
    if not texts:
        raise BadRequest("input is a string or a non-empty list of strings", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise BadRequest(f"input holds at most {MAX_EMBEDDING_INPUTS} texts", param="input")
    for index, text in enumerate(texts):
        where = "input" if isinstance(given, str) else f"input[{index}]"
        if not isinstance(text, str):
            raise BadRequest("the local embeddings model reads text, not token ids", param=where)
        if not text:
            raise BadRequest("an input text is empty", param=where)
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ENCODING_FORMATS:
        raise BadRequest('encoding_format is "float" or "base64"', param="encoding_format")
    wanted = body.get("dimensions")
    if wanted is not None and wanted != dimensions:
        raise BadRequest(
            f"the local embeddings model gives {dimensions} dimensions only", param="dimensions"
        )
    return EmbeddingsRequest(texts=list(texts), encoding_format=encoding_format)


def encode_base64(vector: Sequence[float]) -> str:
    """A vector as the SDK decodes it: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def decode_base64(text: str) -> list[float]:
    """The inverse of ``encode_base64``."""
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embeddings_document(
    vectors: Sequence[Sequence[float]], *, model: str, tokens: int, encoding_format: str
) -> Json:
    """One embedding per input, in input order, with the tokens read as usage."""
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode_base64(vector) if encoding_format == "base64" else list(vector),
            }
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
