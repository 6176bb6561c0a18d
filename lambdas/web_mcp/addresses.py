"""Which network addresses the web tools may connect to: public unicast only.

The check runs on every address a host resolves to (all must pass) and the connection is then
made to the checked address itself, so a name that resolves differently a moment later (DNS
rebinding) cannot swap in an internal one. IPv6 forms that embed an IPv4 address (IPv4-mapped,
6to4, NAT64, Teredo) are judged by the address they embed as well.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Why an address may not be reached (e.g. "private"), or None when it may.
AddressPolicy = Callable[[Address], str | None]

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
# Named here, not left to is_private/is_global, whose answers for them depend on the Python
# version: 192.0.0.0/24 is is_private only from 3.13 (before, only its /29), and fec0::/10, the
# deprecated site-local range (RFC 3879) some networks still route internally, is_global on all.
IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that embed one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: Address) -> str | None:
    """The real policy: why ``address`` is not a public unicast address, or None."""
    if address in METADATA_ADDRESSES:
        return "the instance metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"{inner} (embedded in IPv6)"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv4Address) and address in CARRIER_GRADE_NAT, "carrier-grade NAT"),
        (isinstance(address, ipaddress.IPv4Address) and address in IETF_PROTOCOL, "an IETF protocol assignment"),
        (isinstance(address, ipaddress.IPv6Address) and address in SITE_LOCAL, "site-local"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for failed, reason in checks if failed), None)


def parse(text: str) -> Address:
    """An address as getaddrinfo gives it (an IPv6 zone index dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])
