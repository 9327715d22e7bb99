"""check_base_url: which upstream addresses a provider may point Flow Memory at (pure); and
the proxy's client connecting only to the addresses it checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from flow_memory.providers.upstream import (
    UpstreamPolicy,
    UpstreamRefused,
    check_address,
    check_base_url,
)
from flow_memory.proxy.client import UpstreamClient, UpstreamUnavailable
from flow_memory.proxy.resolver import CredentialResolver
from flow_memory.proxy.service import Plan, Target
from flow_memory.settings import Settings

DEFAULT = UpstreamPolicy(allow_loopback=True, allow_private=False)
OPEN = UpstreamPolicy(allow_loopback=True, allow_private=True)
STRICT = UpstreamPolicy(allow_loopback=False, allow_private=False)


def refusal(url: str, policy: UpstreamPolicy = DEFAULT) -> str:
    with pytest.raises(UpstreamRefused) as caught:
        check_base_url(url, policy)
    return caught.value.reason


class TestAccepted:
    @pytest.mark.parametrize(
        "url",
        [
            "https://provider-alpha.example/v1",
            "http://provider-alpha.example:8080/v1",
            "https://8.8.8.8/v1",
            "https://[2001:4860:4860::8888]/v1",
            "https://PROVIDER.Example./v1",
        ],
    )
    def test_public_addresses_and_names(self, url: str) -> None:
        check_base_url(url, STRICT)

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:11434/v1",
            "http://127.9.9.9/v1",
            "http://localhost:8000/v1",
            "http://gpu.localhost:8000/v1",
            "http://[::1]:8000/v1",
            "http://[::ffff:127.0.0.1]:8000/v1",
            "http://127.1:8000/v1",
        ],
    )
    def test_loopback_by_default(self, url: str) -> None:
        check_base_url(url, DEFAULT)

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.5/v1",
            "http://192.168.1.20:8000/v1",
            "http://172.16.0.1/v1",
            "http://[fd12::1]/v1",
        ],
    )
    def test_private_ranges_when_the_operator_allows(self, url: str) -> None:
        check_base_url(url, OPEN)


class TestMetadata:
    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://METADATA.GOOGLE.INTERNAL./",
            "http://metadata/",
            "http://169.254.170.2/v2",
            "http://100.100.100.200/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
        ],
    )
    def test_metadata_is_refused_whatever_the_policy(self, url: str) -> None:
        assert refusal(url, OPEN) == "metadata_address"

    @pytest.mark.parametrize(
        "url",
        [
            "http://2852039166/",  # 169.254.169.254 as one decimal number
            "http://0xa9fea9fe/",  # ... as one hexadecimal number
            "http://0xa9.0376.169.254/",  # ... with hex and octal parts
            "http://169.254.43518/",  # ... with a 16-bit last part
            "http://[2002:a9fe:a9fe::1]/",  # ... inside a 6to4 address
            "http://[64:ff9b::a9fe:a9fe]/",  # ... inside a NAT64 address
        ],
    )
    def test_disguised_metadata_addresses_are_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "metadata_address"


class TestRefused:
    @pytest.mark.parametrize(
        "url", ["http://169.254.1.1/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/"]
    )
    def test_link_local_is_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "link_local_address"

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.5/",
            "http://192.168.0.10/",
            "http://172.31.255.1/",
            "http://100.64.0.1/",
            "http://[fd12::1]/",
            "http://0x0a000005/",
        ],
    )
    def test_private_ranges_are_refused_by_default(self, url: str) -> None:
        assert refusal(url) == "private_address"

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1/", "http://localhost/", "http://[::1]/", "http://2130706433/"]
    )
    def test_loopback_is_refused_when_the_operator_disables_it(self, url: str) -> None:
        assert refusal(url, STRICT) == "loopback_address"

    @pytest.mark.parametrize(
        "url",
        ["http://0.0.0.0/", "http://0/", "http://[::]/", "http://224.0.0.1/", "http://240.0.0.1/"],
    )
    def test_unusable_addresses_are_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "unroutable_address"

    @pytest.mark.parametrize(
        "url",
        [
            "http://user:pw@provider.example/",
            "http://user@provider.example/",
            "http://:pw@provider.example/",
        ],
    )
    def test_user_information_is_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "credentials_in_url"

    def test_user_information_is_refused_before_the_host_is_judged(self) -> None:
        assert refusal("http://user:pw@127.0.0.1/", OPEN) == "credentials_in_url"

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://provider.example/",
            "file:///etc/passwd",
            "gopher://provider.example/",
            "provider.example/v1",
        ],
    )
    def test_other_schemes_are_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "unsupported_scheme"

    @pytest.mark.parametrize(
        "url", ["http://provider.example/v1?key=1", "http://provider.example/v1#frag"]
    )
    def test_query_and_fragment_are_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "query_in_url"

    def test_a_missing_host_is_refused(self) -> None:
        assert refusal("http:///v1", OPEN) == "missing_host"

    def test_an_invalid_port_is_refused(self) -> None:
        assert refusal("http://provider.example:99999/", OPEN) == "invalid_port"

    @pytest.mark.parametrize(
        "url",
        ["http://1.2.3.256/", "http://1.2.3.4.5/", "http://09.1.1.1/", "http://provider.123/"],
    )
    def test_a_malformed_numeric_host_is_refused(self, url: str) -> None:
        assert refusal(url, OPEN) == "invalid_host"

    def test_the_reason_comes_with_a_message(self) -> None:
        with pytest.raises(UpstreamRefused, match="metadata"):
            check_base_url("http://169.254.169.254/", OPEN)


class TestCheckAddress:
    """The connect-time check applies the same rules to a resolved address."""

    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("169.254.169.254", "metadata_address"),
            ("::ffff:169.254.169.254", "metadata_address"),
            ("169.254.10.10", "link_local_address"),
            ("10.1.2.3", "private_address"),
            ("::ffff:10.1.2.3", "private_address"),
        ],
    )
    def test_refused(self, address: str, reason: str) -> None:
        with pytest.raises(UpstreamRefused) as caught:
            check_address(ipaddress.ip_address(address), DEFAULT)
        assert caught.value.reason == reason

    @pytest.mark.parametrize("address", ["127.0.0.1", "::1", "93.184.216.34"])
    def test_allowed(self, address: str) -> None:
        check_address(ipaddress.ip_address(address), DEFAULT)


def plan_to(base_url: str) -> Plan:
    target = Target(
        "provider", "seller", base_url, "secret://p", "chat_completions",
        None, "token", Decimal("1"), None, None, None,
    )  # fmt: skip
    expires = datetime.now(UTC) + timedelta(minutes=5)
    return Plan(
        "route", "owner", "m", "token", 1, None, "ws", None, None, (target,), False, (), expires
    )


def upstream_client(*, allow_loopback: bool, lookups: list[list[str]]) -> UpstreamClient:
    """An UpstreamClient whose host lookups answer from ``lookups`` in turn (a test double)."""

    async def scripted_lookup(host: str, port: int) -> list[str]:
        return lookups.pop(0)

    settings = Settings(allow_loopback_upstreams=allow_loopback, allow_private_upstreams=False)
    return UpstreamClient(
        settings,
        resolver=CredentialResolver(environ={"FLOW_MEMORY_SECRET_P": "sk-test"}),
        host_resolver=scripted_lookup,
    )


def build(target: Target) -> tuple[str, dict[str, Any]]:
    return "/chat/completions", {"model": "m"}


class TestConnectTimeAddresses:
    def test_the_call_goes_to_the_checked_address_under_the_urls_name(self) -> None:
        async def test() -> None:
            heads: list[bytes] = []

            async def provider(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(provider, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            # provider.invalid resolves nowhere but in the lookup double.
            upstream = upstream_client(allow_loopback=True, lookups=[["127.0.0.1"]])
            opened = await upstream.open_first(plan_to(f"http://provider.invalid:{port}/v1"), build)
            assert await opened.response.aread() == b"{}"
            assert f"\r\nhost: provider.invalid:{port}\r\n".encode() in heads[0]
            await opened.response.aclose()
            await upstream.aclose()
            server.close()

        asyncio.run(test())

    def test_a_rebinding_name_never_reaches_a_refused_address(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_getaddrinfo = socket.getaddrinfo

        def rebinding_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "rebind.invalid":  # a name that now points at loopback (test double)
                return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
            return real_getaddrinfo(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)

        async def test() -> None:
            loop = asyncio.get_running_loop()
            connected_to: list[str] = []

            async def refusing_double(factory: Any, host: str, port: int, **kw: Any) -> Any:
                connected_to.append(host)
                raise ConnectionRefusedError

            loop.create_connection = refusing_double  # type: ignore[method-assign]
            lookups = [["8.8.8.8"], ["127.0.0.1"]]
            upstream = upstream_client(allow_loopback=False, lookups=lookups)
            plan = plan_to("http://rebind.invalid:8080/v1")
            for _ in range(2):  # the second call within the cache: the same checked address
                with pytest.raises(UpstreamUnavailable, match="connect_error"):
                    await upstream.open_first(plan, build)
            assert connected_to == ["8.8.8.8", "8.8.8.8"]
            upstream = upstream_client(allow_loopback=False, lookups=lookups)  # cache gone
            with pytest.raises(UpstreamUnavailable, match="loopback_address"):
                await upstream.open_first(plan, build)
            assert connected_to == ["8.8.8.8", "8.8.8.8"]

        asyncio.run(test())

    def test_a_name_that_resolves_to_nothing_is_refused(self) -> None:
        async def test() -> None:
            upstream = upstream_client(allow_loopback=True, lookups=[[]])
            with pytest.raises(UpstreamRefused, match="does not resolve"):
                await upstream.check_target("http://empty.invalid/v1")

        asyncio.run(test())
