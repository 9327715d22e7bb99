"""The two models behind the local model server, each on the runtime its package installs
from a prebuilt wheel: a GGUF chat model on llama.cpp (through cyllama, which bundles it), and
a sentence-embedding model on sentence-transformers (CPU torch).

Both runtimes are optional packages without type information, imported by name. Neither
object is safe for two threads at once; the server calls each from one request at a time."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's "pick a seed at random"
PROMPT_BATCH = 512


@dataclass(frozen=True)
class Sampling:
    """How to pick each next token; temperature 0 always takes the likeliest."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


class LlamaChat:
    """A GGUF model on llama.cpp with one context, reused (and cleared) for each answer."""

    def __init__(self, path: Path, *, context_window: int, threads: int) -> None:
        llama = importlib.import_module("cyllama.llama.llama_cpp")
        llama.disable_logging()
        llama.ggml_backend_load_all()
        self._llama = llama
        self.model = llama.LlamaModel(str(path), llama.LlamaModelParams())
        self.vocab = self.model.get_vocab()
        params = llama.LlamaContextParams()
        params.n_ctx = context_window
        params.n_batch = PROMPT_BATCH
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        self.context = llama.LlamaContext(self.model, params)
        self.context_window = context_window

    def tokenize(self, prompt: str) -> list[int]:
        """The prompt's tokens, with the model's start token; template markup is parsed."""
        tokens: list[int] = self.vocab.tokenize(prompt, add_special=True, parse_special=True)
        return tokens

    def detokenize(self, tokens: list[int]) -> str:
        text: str = self.vocab.detokenize(tokens, remove_special=False, unparse_special=False)
        return text

    def generate(
        self, prompt: Sequence[int], *, max_tokens: int, sampling: Sampling
    ) -> Iterator[int]:
        """Each token the model writes after the prompt, until it ends its text or
        ``max_tokens`` (the caller keeps prompt + max_tokens within the context)."""
        llama = self._llama
        self.context.kv_cache_clear()
        for start in range(0, len(prompt), PROMPT_BATCH):
            chunk = list(prompt[start : start + PROMPT_BATCH])
            self.context.decode(llama.llama_batch_get_one(chunk, start))
        sampler = self._sampler(sampling)
        position = len(prompt)
        for _ in range(max_tokens):
            token: int = sampler.sample(self.context, -1)
            if self.vocab.is_eog(token):
                return
            yield token
            self.context.decode(llama.llama_batch_get_one([token], position))
            position += 1

    def _sampler(self, sampling: Sampling) -> Any:
        llama = self._llama
        sampler = llama.LlamaSampler(llama.LlamaSamplerChainParams())
        if sampling.frequency_penalty or sampling.presence_penalty:
            sampler.add_penalties(64, 1.0, sampling.frequency_penalty, sampling.presence_penalty)
        if sampling.temperature <= 0:
            sampler.add_greedy()
            return sampler
        sampler.add_top_k(sampling.top_k)
        sampler.add_top_p(sampling.top_p, 1)
        sampler.add_min_p(sampling.min_p, 1)
        sampler.add_temp(sampling.temperature)
        sampler.add_dist(RANDOM_SEED if sampling.seed is None else sampling.seed & RANDOM_SEED)
        return sampler


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]  # one per input, unit length
    tokens: int  # what the model read, its own start and end tokens included


class SentenceEmbedder:
    """A sentence-transformers model from a local folder, one vector per input: the model's
    own pooling (for all-MiniLM-L6-v2 the mean of its token vectors, padding left out), then
    normalised to unit length. Texts past ``max_tokens`` are cut there."""

    def __init__(self, path: Path, *, threads: int) -> None:
        torch = importlib.import_module("torch")
        torch.set_num_threads(threads)
        sentence_transformers = importlib.import_module("sentence_transformers")
        self.model = sentence_transformers.SentenceTransformer(
            str(path), device="cpu", local_files_only=True
        )
        # Renamed in sentence-transformers 5; the old name warns there.
        dimension = getattr(self.model, "get_embedding_dimension", None)
        if dimension is None:
            dimension = self.model.get_sentence_embedding_dimension
        self.dimensions: int = int(dimension())
        self.max_tokens: int = int(self.model.max_seq_length)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Embedded:
        with self._lock:
            encoded = self.model.tokenizer(
                list(texts), truncation=True, max_length=self.max_tokens
            )["input_ids"]
            vectors = self.model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True
            )
        return Embedded(
            vectors=vectors.tolist(),
            tokens=sum(len(ids) for ids in encoded),
        )


class EmbedderLoader:
    """Loads the embedding model on a thread of its own, so chat answers while torch loads."""

    def __init__(self, path: Path, *, threads: int) -> None:
        self.path = path
        self.threads = threads
        self.ready = threading.Event()
        self.embedder: SentenceEmbedder | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._load, name="embedding-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """True once loading has ended (loaded, or failed with ``error``)."""
        return self.ready.wait(timeout)

    def _load(self) -> None:
        try:
            self.embedder = SentenceEmbedder(self.path, threads=self.threads)
        except Exception as error:  # reported by every embeddings request
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.ready.set()
