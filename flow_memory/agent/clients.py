"""Small HTTP clients: Flow Memory's provider endpoints and a local SDK-compatible model server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

PAIRING_HEADER = "x-flow-memory-pairing-token"


class Unavailable(Exception):
    """The other side could not be reached or failed on its side (connect error, timeout, 5xx)."""


class FlowMemoryUnavailable(Unavailable):
    """Flow Memory is down, restarting, or answered with a server error."""


class ModelServerUnavailable(Unavailable):
    """The local model server is down or answered with something unusable."""


class FlowMemoryRefused(Exception):
    """Flow Memory answered with a client error: the request or the agent's state is wrong."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DiscoveredModel:
    """A model the local server lists, with its context window when the server tells it."""

    model: str
    context_window: int | None = None


class FlowMemoryClient:
    """Flow Memory's credential-reference and provider-runtime endpoints, for one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlowMemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.request(
                method,
                path,
                content=None if payload is None else encode_json(payload),
                params=params,
                headers={"content-type": "application/json", **(headers or {})},
            )
        except httpx.TransportError as error:
            raise FlowMemoryUnavailable(f"{method} {path}: {type(error).__name__}") from None
        if response.status_code >= 500:
            raise FlowMemoryUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise FlowMemoryUnavailable(f"{method} {path}: the answer is not JSON") from None
        if response.status_code >= 400:
            problem = body.get("error", {}) if isinstance(body, dict) else {}
            raise FlowMemoryRefused(
                response.status_code,
                str(problem.get("code", "http_error")),
                str(problem.get("message", response.reason_phrase)),
            )
        if not isinstance(body, dict):
            raise FlowMemoryUnavailable(f"{method} {path}: the answer is not a JSON object")
        return body

    def manifest(self) -> dict[str, Any]:
        """The provider-agent onboarding manifest."""
        return self._call("GET", "/inference/providers/agent/manifest")

    def list_credential_refs(self) -> list[dict[str, Any]]:
        """The active credential references this key can see."""
        body = self._call(
            "GET", "/inference/credential-refs", params={"status": "active", "limit": 500}
        )
        refs: list[dict[str, Any]] = body["credential_refs"]
        return refs

    def create_credential_ref(
        self, *, credential_ref: str, display_name: str, workspace_id: str
    ) -> dict[str, Any]:
        """Record an opaque reference; the secret it points to stays with the operator."""
        body = self._call(
            "POST",
            "/inference/credential-refs",
            payload={
                "credential_ref": credential_ref,
                "display_name": display_name,
                "workspace_id": workspace_id,
            },
        )
        ref: dict[str, Any] = body["credential_ref"]
        return ref

    def enroll(self, body: dict[str, Any]) -> dict[str, Any]:
        """Enroll, or update the earlier enrollment of the same provider name."""
        return self._call("POST", "/inference/providers/enroll", payload=body)

    def pairing_token(self, provider_id: str) -> str:
        body = self._call("POST", f"/inference/providers/{provider_id}/pairing-token")
        token: str = body["pairing_token"]
        return token

    def heartbeat(
        self, provider_id: str, body: dict[str, Any], *, pairing_token: str | None = None
    ) -> dict[str, Any]:
        headers = {PAIRING_HEADER: pairing_token} if pairing_token else None
        return self._call(
            "POST", f"/inference/providers/{provider_id}/heartbeat", payload=body, headers=headers
        )

    def publish_catalog(self, provider_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/inference/providers/{provider_id}/catalog", payload=body)

    def publish_capacity(self, provider_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/inference/providers/{provider_id}/capacity", payload=body)

    def health(self, provider_id: str) -> dict[str, Any]:
        return self._call("GET", f"/inference/providers/{provider_id}/health")


@dataclass(frozen=True)
class ChatAnswer:
    """A chat completion's text and the tokens it read and wrote."""

    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


class ModelServerClient:
    """The local SDK-compatible model server: which models it serves, and chat answers."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModelServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_models(self) -> list[DiscoveredModel]:
        """GET /models: the ids the server answers to, in its order."""
        try:
            response = self._http.get("/models")
        except httpx.TransportError as error:
            raise ModelServerUnavailable(f"GET /models: {type(error).__name__}") from None
        if response.status_code != 200:
            raise ModelServerUnavailable(f"GET /models: HTTP {response.status_code}")
        try:
            body = response.json()
            entries = body["data"]
            assert isinstance(entries, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ModelServerUnavailable("GET /models: not a model list") from None
        models: list[DiscoveredModel] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            models.append(DiscoveredModel(entry["id"], _context_window(entry)))
        return models

    def complete_chat(
        self,
        *,
        model: str,
        messages: list[dict[str, str]],
        max_tokens: int,
        timeout: float | None = None,
    ) -> ChatAnswer:
        """POST /chat/completions, whole (not streamed). Errors never quote the server's
        answer: it may echo the prompt."""
        body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": False}
        try:
            response = self._http.post(
                "/chat/completions",
                content=encode_json(body),
                headers={"content-type": "application/json"},
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TransportError as error:
            raise ModelServerUnavailable(
                f"POST /chat/completions: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            raise ModelServerUnavailable(f"POST /chat/completions: HTTP {response.status_code}")
        try:
            answer = response.json()
            choice = answer["choices"][0]
            text = choice["message"]["content"] or ""
            usage = answer.get("usage") or {}
            assert isinstance(text, str) and isinstance(usage, dict)
            return ChatAnswer(
                model=str(answer.get("model") or model),
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                finish_reason=choice.get("finish_reason"),
            )
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            raise ModelServerUnavailable("POST /chat/completions: not a chat completion") from None


def encode_json(value: Any) -> bytes:
    """JSON text with Decimals written digit for digit, so no price passes through a float."""
    return _encode(value).encode()


def _encode(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value)


def _context_window(entry: dict[str, Any]) -> int | None:
    """Servers that tell their context length use one of these names."""
    for key in ("context_window", "max_model_len", "context_length", "n_ctx"):
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    meta = entry.get("meta")
    if isinstance(meta, dict):
        for key in ("n_ctx_train", "n_ctx"):
            value = meta.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None
