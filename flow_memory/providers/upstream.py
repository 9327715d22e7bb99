"""Which upstream addresses a provider may point Flow Memory at (pure; no I/O)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

_METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
     "instance-data.ec2.internal", "metadata.azure.internal"}
)
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254",
                                       "100.100.100.200")}
)


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
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: its addresses are checked again when Flow Memory connects
    check_address(address, policy)


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  policy: UpstreamPolicy) -> None:
    """Apply the address rules to one resolved address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        raise UpstreamRefused("metadata_address", "cloud metadata addresses are never upstreams")
    if address.is_link_local:
        raise UpstreamRefused("link_local_address", "link-local addresses are never upstreams")
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        raise UpstreamRefused("unroutable_address", "base_url points at an unusable address")
    if address.is_loopback:
        if not policy.allow_loopback:
            raise UpstreamRefused(
                "loopback_address", "loopback upstreams are disabled by the operator"
            )
        return
    if address.is_private and not policy.allow_private:
        raise UpstreamRefused("private_address", "private-range upstreams are disabled by the "
                              "operator (FLOW_MEMORY_ALLOW_PRIVATE_UPSTREAMS)")
