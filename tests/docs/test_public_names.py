"""Public surfaces name only Flow Memory: the README, docs, the dashboard, examples, the
published OpenAPI document and every API error message carry no other product's name."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import flow_memory
from flow_memory.app import create_app
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(flow_memory.__file__).resolve().parent
# Names of other inference, model, cloud and payment products a document might slip into.
OTHER_PRODUCTS = [
    "OpenAI", "Open AI", "ChatGPT", "GPT-3", "GPT-4", "GPT-5", "Anthropic", "Claude", "Gemini",
    "Gemma", "Llama", "llama.cpp", "llama-cpp", "Mistral", "Mixtral", "Cohere", "Groq",
    "OpenRouter", "Together AI", "Fireworks AI", "Replicate", "Hugging Face", "HuggingFace",
    "Ollama", "vLLM", "LM Studio", "DeepSeek", "Perplexity", "Bedrock", "Vertex AI", "Azure",
    "AWS", "Google Cloud", "LangChain", "LiteLLM", "Stripe", "Coinbase", "PayPal", "Ethereum",
    "Solana", "Bitcoin", "MetaMask",
]  # fmt: skip
PATTERN = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(re.escape(n) for n in OTHER_PRODUCTS) + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def public_files() -> Iterator[Path]:
    yield ROOT / "README.md"
    for folder, suffixes in (
        (ROOT / "docs", {".md", ".json"}),
        (PACKAGE / "ui", {".html", ".css", ".js", ".svg", ".json"}),
        (ROOT / "examples", {".py", ".md"}),
    ):
        if folder.exists():
            yield from (p for p in sorted(folder.rglob("*")) if p.suffix in suffixes)


def test_the_scanner_catches_a_name_in_any_case() -> None:
    assert PATTERN.search("works with the openai SDK")
    assert PATTERN.search("see docs for Llama models")
    assert not PATTERN.search("Flow Memory's SDK-compatible proxy; llamas are animals")


@pytest.mark.parametrize("path", list(public_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_public_files_name_no_other_product(path: Path) -> None:
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        found = PATTERN.search(line)
        assert found is None, f"{path.name}:{number} names {found.group(0)!r}"


def test_the_openapi_document_names_no_other_product() -> None:
    document = json.dumps(create_app(Settings(database_url="sqlite://")).openapi())
    found = PATTERN.search(document)
    assert found is None, found.group(0) if found else ""


def _error_classes() -> set[str]:
    names: set[str] = set()
    pending: list[type] = [FlowMemoryError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def _error_texts() -> Iterator[tuple[str, int, str]]:
    """Every string literal in a call that raises one of the API's errors."""
    import flow_memory.proxy.api  # noqa: F401  (registers the proxy's error classes)

    classes = _error_classes() | {"error_body", "_forbidden"}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in classes:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    yield path.name, inner.lineno, inner.value


def test_api_error_messages_name_no_other_product() -> None:
    texts = list(_error_texts())
    assert len(texts) > 100  # the walk really reached the error messages
    for file, line, text in texts:
        found = PATTERN.search(text)
        assert found is None, f"{file}:{line} names {found.group(0)!r}"
