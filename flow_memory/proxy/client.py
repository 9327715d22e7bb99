"""The upstream side of the proxy: pooled keep-alive connections, the address check made again
at connect time, the credential header, and trying targets in order until one answers.

Calls go through the lean client in ``wire``; when a test injects an httpx transport, through
an httpx client over that transport instead. Both answers offer the same four members."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
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
from flow_memory.proxy.wire import AnswerTimeout, WireClient, WireError
from flow_memory.settings import Settings

log = logging.getLogger("flow_memory.proxy")
HostResolver = Callable[[str, int], Awaitable[list[str]]]
DNS_CACHE_SECONDS = 30.0
REDACTED = b"[redacted]"
# What a provider's answer may raise once its headers have arrived: the body stopped.
BODY_ERRORS = (httpx.HTTPError, WireError)
_BASE_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
}


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


class UpstreamAnswer(Protocol):
    """A provider's answer with its headers read; ``httpx.Response`` and ``WireResponse``."""

    @property
    def status_code(self) -> int: ...

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass
class Opened:
    """The answer of the first target that answered, headers read, body still unread."""

    target: Target
    response: UpstreamAnswer
    redactor: Redactor
    attempts: list[dict[str, str]]


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
        # (host, port) -> (until when, the addresses checked for it)
        self._checked: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}
        self._judged: dict[str, tuple[str, int] | None] = {}
        self._client: httpx.AsyncClient | None = None
        self._wire_client: WireClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _wire(self) -> WireClient:
        # Connections belong to the event loop that made them; tests may run several loops.
        loop = asyncio.get_running_loop()
        if self._wire_client is None or self._loop is not loop:
            self._wire_client = WireClient(
                connect_timeout=self._settings.proxy_connect_timeout_seconds,
                read_timeout=self._settings.proxy_read_timeout_seconds,
            )
            self._loop = loop
        return self._wire_client

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                transport=self._transport,
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
        if self._wire_client is not None:
            self._wire_client.close()
        self._client = None
        self._wire_client = None

    async def check_target(self, base_url: str) -> tuple[str, ...] | None:
        """The enrollment rules, applied again to the addresses the host resolves to now.

        Returns the addresses checked, the only ones a call may connect to (a second lookup
        at connect time could answer differently), or None when the URL names its address."""
        key = self._judged[base_url] if base_url in self._judged else self._judge(base_url)
        if key is None:
            return None
        checked = self._checked.get(key)
        if checked is not None and checked[0] > time.monotonic():
            return checked[1]
        host, port = key
        try:
            resolved = await self._host_resolver(host, port)
        except OSError:
            raise UpstreamRefused("unresolvable_host", f"{host} does not resolve") from None
        for address in resolved:
            check_address(ipaddress.ip_address(address.split("%")[0]), self._policy)
        addresses = tuple(dict.fromkeys(resolved))
        if not addresses:
            raise UpstreamRefused("unresolvable_host", f"{host} does not resolve")
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[key] = (time.monotonic() + DNS_CACHE_SECONDS, addresses)
        return addresses

    def _judge(self, base_url: str) -> tuple[str, int] | None:
        """The URL's own rules (they never change for one URL); the host to resolve, if any."""
        check_base_url(base_url, self._policy)  # a refusal is not remembered: it is rare
        parts = urlsplit(base_url)
        host = (parts.hostname or "").rstrip(".").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key: tuple[str, int] | None = (host, port)
        try:
            ipaddress.ip_address(host)
            key = None  # a literal address was judged by check_base_url
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                key = None
        if len(self._judged) > 10_000:
            self._judged.clear()
        self._judged[base_url] = key
        return key

    def _headers(self, target: Target, secret: str | None) -> dict[str, str]:
        headers = dict(_BASE_HEADERS)
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
                addresses = await self.check_target(target.base_url)
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
            try:
                response = await self._send(target.base_url + path, body, target, secret, addresses)
            except (httpx.TimeoutException, AnswerTimeout):
                attempts.append(_attempt(target, "timeout", "no answer before the timeout"))
                continue
            except (httpx.TransportError, WireError) as error:
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

    async def _send(
        self,
        url: str,
        body: dict[str, Any],
        target: Target,
        secret: str | None,
        addresses: tuple[str, ...] | None,
    ) -> UpstreamAnswer:
        headers = self._headers(target, secret)
        if self._transport is None:
            return await self._wire().post(url, headers, sse.dumps(body), addresses=addresses)
        # An injected transport (tests) makes no connection of its own to check.
        request = self._http().build_request("POST", url, content=sse.dumps(body), headers=headers)
        return await self._http().send(request, stream=True)


def _attempt(target: Target, outcome: str, detail: str) -> dict[str, str]:
    return {"provider_id": target.provider_id, "outcome": outcome, "detail": detail}
