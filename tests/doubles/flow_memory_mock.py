"""In-memory test doubles of Flow Memory's provider endpoints and of a model server's model list,
as httpx.MockTransport handlers, for the provider agent's unit tests.

They keep just enough state to answer like the real API (enroll by name, pairing tokens,
versions) and record every call; `down = True` makes them fail to connect."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class MockProvider:
    provider_id: str
    name: str
    credential_ref_id: str
    supported_units: list[str]
    paired: bool = False
    catalog_version: str | None = None
    capacity_version: str | None = None
    catalog: list[dict[str, Any]] = field(default_factory=list)
    capacity: list[dict[str, Any]] = field(default_factory=list)
    last_status: str | None = None


class MockFlowMemory:
    """Flow Memory's credential-reference and provider-runtime endpoints, in memory."""

    def __init__(self, api_key: str = "fm_test_key") -> None:
        self.api_key = api_key
        self.down = False
        self.fail_with: int | None = None  # answer every request with this status
        self.calls: list[Call] = []
        self.credential_refs: dict[str, dict[str, Any]] = {}
        self.providers: dict[str, MockProvider] = {}
        self.tokens: dict[str, str] = {}
        self.can_list_refs = True

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def paths(self, method: str | None = None) -> list[str]:
        return [c.path for c in self.calls if method is None or c.method == method]

    def bodies(self, suffix: str) -> list[Any]:
        return [c.body for c in self.calls if c.path.endswith(suffix)]

    def forget_everything(self) -> None:
        """As if the server came back on an empty database."""
        self.credential_refs.clear()
        self.providers.clear()
        self.tokens.clear()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content, parse_float=Decimal) if request.content else None
        call = Call(request.method, request.url.path, dict(request.headers), body)
        self.calls.append(call)
        if self.fail_with is not None:
            return _error(self.fail_with, "scripted", "scripted failure")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthenticated", "a valid API key is required")
        parts = call.path.strip("/").split("/")
        if parts == ["inference", "credential-refs"]:
            return self._credential_refs(call)
        if parts == ["inference", "providers", "enroll"]:
            return self._enroll(call)
        if len(parts) == 4 and parts[:2] == ["inference", "providers"]:
            provider = self.providers.get(parts[2])
            if provider is None:
                return _error(404, "not_found", f"provider {parts[2]} not found")
            return self._runtime(call, provider, parts[3])
        return _error(404, "not_found", "no such route")

    def _credential_refs(self, call: Call) -> httpx.Response:
        if call.method == "GET":
            if not self.can_list_refs:
                return _error(403, "forbidden", "missing scope inference:read")
            refs = list(self.credential_refs.values())
            return _ok({"credential_refs": refs, "count": len(refs)})
        ref_id = f"credref_{len(self.credential_refs) + 1}"
        ref = {"credential_ref_id": ref_id, "status": "active", **call.body}
        self.credential_refs[ref_id] = ref
        return _ok({"credential_ref": ref}, 201)

    def _enroll(self, call: Call) -> httpx.Response:
        body = call.body
        if body["credential_ref_id"] not in self.credential_refs:
            return _error(
                404, "not_found", f"credential reference {body['credential_ref_id']} not found"
            )
        existing = next(
            (p for p in self.providers.values() if p.name == body["provider_name"]), None
        )
        if existing is None:
            existing = MockProvider(
                f"prov_{len(self.providers) + 1}",
                body["provider_name"],
                body["credential_ref_id"],
                body["supported_units"],
            )
            self.providers[existing.provider_id] = existing
            created = True
        else:
            existing.credential_ref_id = body["credential_ref_id"]
            created = False
        status = "paired" if existing.paired else "pending_pairing"
        return _ok(
            {
                "enrollment": "created" if created else "updated",
                "provider": {"provider_id": existing.provider_id, "runtime_status": status},
            },
            201 if created else 200,
        )

    def _runtime(self, call: Call, provider: MockProvider, action: str) -> httpx.Response:
        if action == "pairing-token":
            token = "fmpair_" + secrets.token_urlsafe(8)
            self.tokens[token] = provider.provider_id
            return _ok({"provider_id": provider.provider_id, "pairing_token": token}, 201)
        if action == "heartbeat":
            token = call.headers.get("x-flow-memory-pairing-token")
            if token is not None:
                if self.tokens.pop(token, None) != provider.provider_id:
                    return _error(409, "pairing_token_invalid", "the pairing token is not valid")
                provider.paired = True
            if not provider.paired:
                return _error(409, "pairing_required", "not paired yet")
            provider.last_status = call.body["runtime_status"]
            return _ok({"provider_id": provider.provider_id, "paired": True})
        if action == "catalog":
            if provider.catalog_version and call.body["catalog_version"] < provider.catalog_version:
                return _error(409, "catalog_version_outdated", "older catalog")
            provider.catalog_version = call.body["catalog_version"]
            provider.catalog = call.body["models"]
            return _ok({"provider_id": provider.provider_id})
        if action == "capacity":
            if not provider.catalog:
                return _error(409, "catalog_required", "publish a catalog before capacity")
            if (
                provider.capacity_version
                and call.body["capacity_version"] < provider.capacity_version
            ):
                return _error(409, "capacity_version_outdated", "older capacity")
            provider.capacity_version = call.body["capacity_version"]
            provider.capacity = call.body["inventory"]
            return _ok({"provider_id": provider.provider_id})
        return _error(404, "not_found", "no such route")


class MockModelServer:
    """GET /v1/models of a local model server, which can be taken down and brought back."""

    def __init__(self, models: list[dict[str, Any]] | None = None) -> None:
        self.models = models if models is not None else [{"id": "tiny-chat", "object": "model"}]
        self.down = False
        self.status = 200
        self.calls = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path != "/v1/models":
            return httpx.Response(404, json={"error": {"message": "not found"}})
        return httpx.Response(self.status, json={"object": "list", "data": self.models})


def _ok(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"ok": True, **body})


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"ok": False, "error": {"code": code, "message": message}})
