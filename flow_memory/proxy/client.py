"""The upstream side of the proxy: one pooled HTTP client, the address check made again at
connect time, the credential header, and trying targets in order until one answers."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from flow_memory.kit.errors import FlowMemoryError
from flow_memory.providers.upstream import (
    UpstreamPolicy,
    UpstreamRefused,
    check_address,
    check_base_url,
)
from flow_memory.proxy import sse
from flow_memory.proxy.resolver import CredentialResolver, SecretsFileRefused
from flow_memory.proxy.service import Plan, Target
from flow_memory.settings import Settings

log = logging.getLogger("flow_memory.proxy")
HostResolver = Callable[[str, int], Awaitable[list[str]]]
DNS_CACHE_SECONDS = 30.0
REDACTED = b"[redacted]"


class UpstreamUnavailable(FlowMemoryError):
    status_code = 502
    code = "upstream_unavailable"


class Redactor:
    """Replaces a resolved credential wherever an upstream echoes it back."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None

    def bytes(self, data: bytes) -> bytes:
        if self._secret is None or self._secret not in data:
            return data
        return data.replace(self._secret, REDACTED)

    def text(self, data: str) -> str:
        if self._secret is None:
            return data
        return self.bytes(data.encode()).decode()


@dataclass
class Opened:
    """The answer of the first target that answered, headers read, body still unread."""

    target: Target
    response: httpx.Response
    redactor: Redactor
    attempts: list[dict[str, str]]


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several small connection pools used in turn. A pool scans every connection it holds
    for each request, so one large pool costs more per request the busier it gets."""

    def __init__(self, shards: int, connections_per_shard: int) -> None:
        limits = httpx.Limits(
            max_connections=connections_per_shard,
            max_keepalive_connections=connections_per_shard,
        )
        self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._next = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._next = (self._next + 1) % len(self._pools)
        return await self._pools[self._next].handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class UpstreamClient:
    """Calls provider model servers; ``transport`` and ``host_resolver`` are swappable for tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: CredentialResolver,
        transport: httpx.AsyncBaseTransport | None = None,
        host_resolver: HostResolver | None = None,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._transport = transport
        self._host_resolver = host_resolver or _system_resolver
        self._policy = UpstreamPolicy(
            allow_loopback=settings.allow_loopback_upstreams,
            allow_private=settings.allow_private_upstreams,
        )
        self._checked: dict[tuple[str, int], float] = {}
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        # A pool belongs to the event loop that made it; tests may run several loops.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                transport=self._transport or ShardedTransport(shards=16, connections_per_shard=16),
                timeout=httpx.Timeout(
                    connect=self._settings.proxy_connect_timeout_seconds,
                    read=self._settings.proxy_read_timeout_seconds,
                    write=self._settings.proxy_read_timeout_seconds,
                    pool=self._settings.proxy_connect_timeout_seconds,
                ),
                follow_redirects=False,
                trust_env=False,
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def check_target(self, base_url: str) -> None:
        """The enrollment rules, applied again to the addresses the host resolves to now."""
        check_base_url(base_url, self._policy)
        parts = urlsplit(base_url)
        host = (parts.hostname or "").rstrip(".").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            return  # a literal address was judged by check_base_url
        except ValueError:
            pass
        if host == "localhost" or host.endswith(".localhost"):
            return
        key = (host, port)
        if self._checked.get(key, 0.0) > time.monotonic():
            return
        try:
            addresses = await self._host_resolver(host, port)
        except OSError:
            raise UpstreamRefused("unresolvable_host", f"{host} does not resolve") from None
        for address in addresses:
            check_address(ipaddress.ip_address(address.split("%")[0]), self._policy)
        self._checked[key] = time.monotonic() + DNS_CACHE_SECONDS

    def _headers(self, target: Target, secret: str | None) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        }
        if secret:
            if target.compatible_api == "messages":
                headers["x-api-key"] = secret
            else:
                headers["authorization"] = f"Bearer {secret}"
        return headers

    async def open_first(
        self, plan: Plan, build: Callable[[Target], tuple[str, dict[str, Any]]]
    ) -> Opened:
        """Try the plan's targets in order; fall back on refused addresses, connect errors,
        timeouts before the first byte and 5xx answers."""
        attempts: list[dict[str, str]] = []
        for target in plan.targets:
            path, body = build(target)
            try:
                await self.check_target(target.base_url)
            except UpstreamRefused as refused:
                attempts.append(_attempt(target, refused.reason, str(refused)))
                continue
            try:
                secret = self._resolver.resolve(target.credential_ref)
            except SecretsFileRefused as refused:
                # The operator's file is unsafe or unreadable: no call goes out with a guess.
                log.error("credential not resolved: %s", refused)
                attempts.append(_attempt(target, "credential_unavailable", "see the server log"))
                continue
            request = self._http().build_request(
                "POST",
                target.base_url + path,
                content=sse.dumps(body),
                headers=self._headers(target, secret),
            )
            try:
                response = await self._http().send(request, stream=True)
            except httpx.TimeoutException:
                attempts.append(_attempt(target, "timeout", "no answer before the timeout"))
                continue
            except httpx.TransportError as error:
                attempts.append(_attempt(target, "connect_error", type(error).__name__))
                continue
            if response.status_code >= 500:
                await response.aclose()
                attempts.append(
                    _attempt(target, "upstream_5xx", f"answered {response.status_code}")
                )
                continue
            attempts.append(_attempt(target, "answered", f"answered {response.status_code}"))
            return Opened(target, response, Redactor(secret), attempts)
        summary = "; ".join(f"{a['provider_id']}: {a['outcome']}" for a in attempts)
        raise UpstreamUnavailable(
            f"no provider answered ({summary})",
            hint="retry later; with allow_fallback the proxy tries each fallback in order",
        )


def _attempt(target: Target, outcome: str, detail: str) -> dict[str, str]:
    return {"provider_id": target.provider_id, "outcome": outcome, "detail": detail}
