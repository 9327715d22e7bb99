"""The local model server's HTTP app over doubles of its two models: the model list, chat whole
and streamed (with usage), one embedding per input in either encoding, and SDK-shaped errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from starlette.testclient import TestClient

from flow_memory.agent.local_model import CHAT_MODEL, EMBEDDING_CONTEXT, EMBEDDING_MODEL
from flow_memory.agent.local_protocol import decode_base64, encode_base64
from flow_memory.agent.local_server import create_local_model_app
from flow_memory.agent.model_runtimes import Embedded, Sampling

ANSWER = "Paris is the capital.\n\n### Instruction:\nmore"


class CharacterChat:
    """A chat model whose tokens are characters; it writes ``ANSWER`` whatever it is asked."""

    context_window = 256

    def __init__(self) -> None:
        self.seen: list[tuple[int, Sampling]] = []

    def tokenize(self, prompt: str) -> list[int]:
        return [0, *(ord(c) for c in prompt)]

    def detokenize(self, tokens: list[int]) -> str:
        return "".join(chr(t) for t in tokens)

    def generate(
        self, prompt: Sequence[int], *, max_tokens: int, sampling: Sampling
    ) -> Iterator[int]:
        self.seen.append((max_tokens, sampling))
        yield from (ord(c) for c in ANSWER[:max_tokens])


class LengthEmbedder:
    """Each text's vector starts with its length."""

    dimensions = 3

    def embed(self, texts: Sequence[str]) -> Embedded:
        vectors = [[float(len(t)), 0.5, -0.25] for t in texts]
        return Embedded(vectors=vectors, tokens=sum(len(t) + 2 for t in texts))


class Loaded:
    def __init__(self, embedder: LengthEmbedder | None, error: str | None = None) -> None:
        self.embedder = embedder
        self.error = error

    def wait(self, timeout: float) -> bool:
        return True


@pytest.fixture
def chat() -> CharacterChat:
    return CharacterChat()


@pytest.fixture
def client(chat: CharacterChat) -> Iterator[TestClient]:
    with TestClient(create_local_model_app(chat, Loaded(LengthEmbedder()))) as test_client:
        yield test_client


def _chat(client: TestClient, **body: Any) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Capital?"}], **body},
    )


def test_the_model_list_names_both_models_with_their_contexts(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["context_window"]) for m in data] == [
        (CHAT_MODEL, 256),
        (EMBEDDING_MODEL, EMBEDDING_CONTEXT),
    ]


class TestChat:
    def test_an_answer_ends_at_the_templates_next_heading(
        self, client: TestClient, chat: CharacterChat
    ) -> None:
        answer = _chat(client, temperature=0, seed=7).json()
        (choice,) = answer["choices"]
        assert choice["message"] == {"role": "assistant", "content": "Paris is the capital."}
        assert choice["finish_reason"] == "stop"
        prompt_tokens = 1 + len("### Instruction:\nCapital?\n\n### Response:\n")
        written = len("Paris is the capital.\n\n###")
        assert answer["usage"] == {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": written,
            "total_tokens": prompt_tokens + written,
        }
        max_tokens, sampling = chat.seen[-1]
        assert max_tokens == 256 - prompt_tokens  # no max_tokens: the rest of the context
        assert (sampling.temperature, sampling.seed) == (0.0, 7)

    def test_max_tokens_cuts_the_answer_with_finish_reason_length(self, client: TestClient) -> None:
        answer = _chat(client, max_tokens=5).json()
        assert answer["choices"][0]["message"]["content"] == "Paris"
        assert answer["choices"][0]["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 5

    def test_a_stream_sends_role_pieces_finish_usage_and_done(self, client: TestClient) -> None:
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": CHAT_MODEL,
                "messages": [{"role": "user", "content": "Capital?"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1])
        assert text == "Paris is the capital."
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert all(c["usage"] is None for c in chunks[:-1])
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
        assert len({c["id"] for c in chunks}) == 1

    def test_a_stream_without_include_usage_has_no_usage_chunk(self, client: TestClient) -> None:
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": CHAT_MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
        ) as response:
            lines = [line for line in response.iter_lines() if line]
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert all("usage" not in c for c in chunks)

    @pytest.mark.parametrize(
        ("body", "status", "param", "says"),
        [
            ({"model": EMBEDDING_MODEL}, 400, "model", "does not serve this API"),
            ({"model": "other"}, 404, "model", "no model named 'other'"),
            ({"messages": "hello"}, 400, "messages", "non-empty list"),
            ({"messages": [{"role": "narrator", "content": "x"}]}, 400, "messages", "role"),
            ({"temperature": 3}, 400, "temperature", "from 0 to 2"),
            ({"max_tokens": 0}, 400, "max_tokens", "at least 1"),
            ({"n": 2}, 400, "n", "one choice"),
            ({"stop": ["a"] * 5}, 400, "stop", "at most 4"),
            ({"messages": [{"role": "user", "content": "x" * 300}]}, 400, "messages", "context"),
        ],
    )
    def test_a_bad_body_is_refused_in_the_sdks_error_shape(
        self, client: TestClient, body: dict[str, Any], status: int, param: str, says: str
    ) -> None:
        response = _chat(client, **body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == param and says in error["message"]

    def test_a_body_that_is_not_json_is_refused(self, client: TestClient) -> None:
        response = client.post("/v1/chat/completions", content=b"{")
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "the body is not JSON"


class TestEmbeddings:
    def _embed(self, client: TestClient, **body: Any) -> Any:
        return client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, **body})

    def test_one_vector_per_input_in_order_with_usage(self, client: TestClient) -> None:
        answer = self._embed(client, input=["a", "flow", "memory!"]).json()
        assert [d["index"] for d in answer["data"]] == [0, 1, 2]
        assert [d["embedding"] for d in answer["data"]] == [
            [1.0, 0.5, -0.25],
            [4.0, 0.5, -0.25],
            [7.0, 0.5, -0.25],
        ]
        assert answer["usage"] == {"prompt_tokens": 18, "total_tokens": 18}
        assert answer["model"] == EMBEDDING_MODEL

    def test_a_single_string_is_one_input(self, client: TestClient) -> None:
        answer = self._embed(client, input="flow").json()
        assert len(answer["data"]) == 1

    def test_base64_is_the_same_vector_as_little_endian_float32(self, client: TestClient) -> None:
        floats = self._embed(client, input=["ab", "c"], encoding_format="float").json()
        coded = self._embed(client, input=["ab", "c"], encoding_format="base64").json()
        for plain, packed in zip(floats["data"], coded["data"], strict=True):
            assert isinstance(packed["embedding"], str)
            assert decode_base64(packed["embedding"]) == plain["embedding"]
        assert encode_base64([1.0, -2.5]) == "AACAPwAAIMA="

    @pytest.mark.parametrize(
        ("body", "param", "says"),
        [
            ({"input": []}, "input", "non-empty list"),
            ({"input": [[1, 2, 3]]}, "input[0]", "not token ids"),
            ({"input": ["a", ""]}, "input[1]", "empty"),
            ({"input": "a", "encoding_format": "int8"}, "encoding_format", "base64"),
            ({"input": "a", "dimensions": 2}, "dimensions", "3 dimensions only"),
            ({"input": "a", "model": CHAT_MODEL}, "model", "does not serve this API"),
        ],
    )
    def test_a_bad_body_is_refused(
        self, client: TestClient, body: dict[str, Any], param: str, says: str
    ) -> None:
        response = self._embed(client, **body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and says in error["message"]

    def test_a_model_that_could_not_load_answers_503(self, chat: CharacterChat) -> None:
        app = create_local_model_app(chat, Loaded(None, "OSError: no weights"))
        with TestClient(app) as client:
            response = self._embed(client, input="a")
        assert response.status_code == 503
        assert "could not load: OSError: no weights" in response.json()["error"]["message"]


def test_the_chat_model_writes_one_answer_at_a_time(chat: CharacterChat) -> None:
    overlaps: list[int] = []
    active = [0]
    original = chat.generate

    def slow(prompt: Sequence[int], *, max_tokens: int, sampling: Sampling) -> Iterator[int]:
        active[0] += 1
        overlaps.append(active[0])
        yield from original(prompt, max_tokens=3, sampling=sampling)
        active[0] -= 1

    chat.generate = slow  # type: ignore[method-assign]
    with TestClient(create_local_model_app(chat, Loaded(LengthEmbedder()))) as client:
        threads = [threading.Thread(target=_chat, args=(client,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert overlaps == [1, 1, 1, 1]
