"""Which upstream addresses a provider may point Flow Memory at (pure; no I/O)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address(a)
        for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
    }
)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class UpstreamPolicy:
    allow_loopback: bool
    allow_private: bool


class UpstreamRefused(ValueError):
    """The address is not allowed; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_base_url(base_url: str, policy: UpstreamPolicy) -> None:
    """Refuse URLs that carry credentials or point at metadata, link-local or disallowed ranges."""
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"}:
        raise UpstreamRefused("unsupported_scheme", "base_url must use http or https")
    if parts.username is not None or parts.password is not None:
        raise UpstreamRefused("credentials_in_url", "base_url must not carry user information")
    if parts.query or parts.fragment:
        raise UpstreamRefused("query_in_url", "base_url must not carry a query or fragment")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UpstreamRefused("missing_host", "base_url needs a host")
    try:
        _ = parts.port
    except ValueError:
        raise UpstreamRefused("invalid_port", "base_url has an invalid port") from None
    if host in _METADATA_HOSTS:
        raise UpstreamRefused("metadata_address", "cloud metadata hosts are never upstreams")
    if host == "localhost" or host.endswith(".localhost"):
        check_address(ipaddress.ip_address("127.0.0.1"), policy)
        return
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        legacy = _legacy_ipv4(host)
        if legacy is None:
            return  # a name: its addresses are checked again when Flow Memory connects
        address = legacy
    check_address(address, policy)


_NUMERIC_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read the shorthand IPv4 forms resolvers accept (``2852039166``, ``0xa9.0376.169.254``,
    ``127.1``); None when the host is a name. A numeric-looking host that is no valid address
    is refused rather than handed to a resolver."""
    parts = host.split(".")
    if not _NUMERIC_PART.match(parts[-1]):
        return None
    if len(parts) > 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        raise UpstreamRefused("invalid_host", "base_url has a malformed numeric host")
    numbers: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise UpstreamRefused("invalid_host", "base_url has a malformed numeric host")
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise UpstreamRefused("invalid_host", "base_url has a malformed numeric host")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: UpstreamPolicy
) -> None:
    """Apply the address rules to one resolved address."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address (mapped, 6to4, NAT64) is judged by it.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    if address in _METADATA_ADDRESSES:
        raise UpstreamRefused("metadata_address", "cloud metadata addresses are never upstreams")
    if address.is_link_local:
        raise UpstreamRefused("link_local_address", "link-local addresses are never upstreams")
    if address.is_unspecified:
        raise UpstreamRefused("unroutable_address", "base_url points at an unusable address")
    # Loopback before the reserved check: ::1 lies inside the reserved ::/8 block.
    if address.is_loopback:
        if not policy.allow_loopback:
            raise UpstreamRefused(
                "loopback_address", "loopback upstreams are disabled by the operator"
            )
        return
    if address.is_multicast or address.is_reserved:
        raise UpstreamRefused("unroutable_address", "base_url points at an unusable address")
    # Private ranges include the other non-public ones (shared 100.64/10, benchmarking, …).
    if (address.is_private or not address.is_global) and not policy.allow_private:
        raise UpstreamRefused(
            "private_address",
            "private-range upstreams are disabled by the "
            "operator (FLOW_MEMORY_ALLOW_PRIVATE_UPSTREAMS)",
        )
