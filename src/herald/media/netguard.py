"""Which network addresses Herald may fetch audio from.

Audio URLs come from callers, so a fetch must not reach the machine itself, its private network or a cloud
metadata service (server-side request forgery). ``AddressPolicy`` refuses every address that is not plain
global unicast, including IPv4 addresses hidden in IPv6 forms, unless the operator allowlisted it with
``HERALD_FETCH_ALLOW``. The ranges are listed here rather than taken from ``ipaddress``'s ``is_global`` and
``is_private``, which in Python 3.11 miss multicast, parts of IETF-reserved space and most IPv6 embeddings.

Pure: no I/O. Resolving names and connecting are the fetcher's job (``herald.media.fetch``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

# Each reason reads after "the address X is".
_V4_RULES: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "reserved for 'this network'"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "in the shared CGNAT range"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved for IETF protocols"),
        ("192.0.2.0/24", "reserved for documentation"),
        ("192.88.99.0/24", "reserved (the former 6to4 relay anycast)"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved for benchmarking"),
        ("198.51.100.0/24", "reserved for documentation"),
        ("203.0.113.0/24", "reserved for documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
    )
)

_V6_RULES: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        # Local-use NAT64 may embed IPv4 at any RFC 6052 offset, so the whole prefix is refused.
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001::/23", "reserved for IETF protocols"),
        ("2001:db8::/32", "reserved for documentation"),
        ("3fff::/20", "reserved for documentation"),
        ("5f00::/16", "reserved for SRv6"),
        ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)

# Refused even inside an allowlisted network or behind an allowlisted name, unless allowlisted exactly.
# 168.63.129.16 is Azure's platform endpoint: public space, but only the host's own agent should talk to it.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)

_COMPAT = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")
_GLOBAL_UNICAST = IPv6Network("2000::/3")

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def normalize_host(host: str) -> str:
    """A host name as compared: lower case, without the trailing dot of a fully qualified name."""
    return host.lower().removesuffix(".")


def is_host_name(host: str) -> bool:
    """Whether ``host`` (normalized, ASCII) is a plausible DNS name, not an IP address in disguise.

    A name whose last label is all digits (``2130706433``, ``127.1``) is refused: resolvers read those as
    IPv4 addresses, a classic way to smuggle one past a check.
    """
    labels = host.split(".")
    return (
        0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()
    )


def embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries, in the forms a connection can reach them through."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in _COMPAT or ip in _NAT64:
        if int(ip) <= 1:  # :: and ::1 are themselves, not 0.0.0.0 and 0.0.0.1
            return ()
        return (IPv4Address(int(ip) & 0xFFFF_FFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo  # (server, client)
    return ()


def default_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused when nothing is allowlisted, or ``None`` if it is a global unicast address."""
    if isinstance(ip, IPv6Address):
        ip = IPv6Address(int(ip))  # drop any %scope: it does not change which address this is
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, IPv4Address):
        return next((reason for net, reason in _V4_RULES if ip in net), None)
    for inner in embedded_ipv4(ip):
        inner_reason = default_reason(inner)
        if inner_reason is not None:
            return f"{inner_reason} (it embeds the IPv4 address {inner})"
    if ip.ipv4_mapped is not None:
        return None
    reason = next((reason for net, reason in _V6_RULES if ip in net), None)
    if reason is not None:
        return reason
    if ip in _NAT64 or ip in _SIX_TO_FOUR:
        return None  # the embedded IPv4 address was allowed
    if ip not in _GLOBAL_UNICAST:
        return "reserved (not global unicast)"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """The address check for outbound fetches: built-in rules plus the operator's allowlist.

    ``AddressPolicy()`` allows only global unicast addresses. An address inside an allowlisted network, or
    any address of an allowlisted host name, is allowed, except a cloud metadata address that is not
    allowlisted on its own.
    """

    networks: tuple[IPNetwork, ...] = ()
    host_names: frozenset[str] = frozenset()

    @classmethod
    def from_setting(cls, value: str) -> AddressPolicy:
        """Parse ``HERALD_FETCH_ALLOW``: comma-separated host names, addresses and CIDR networks.

        Raises ``ValueError`` naming the first malformed entry.
        """
        return cls.from_entries(value.split(","))

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AddressPolicy:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]  # a bracketed IPv6 address, as written in URLs
            try:
                networks.append(ip_network(entry))  # strict: 10.0.0.1/8 is an error, not 10.0.0.0/8
                continue
            except ValueError:
                pass
            name = normalize_host(entry)
            if not is_host_name(name):
                raise ValueError(
                    f"HERALD_FETCH_ALLOW entry {raw.strip()!r} is not a host name, an IP address or a CIDR"
                    " network (write international names in their xn-- form)"
                )
            names.add(name)
        return cls(tuple(networks), frozenset(names))

    def host_is_allowlisted(self, host: str) -> bool:
        """Whether ``host`` is an allowlisted name (case-insensitive; a trailing dot is ignored)."""
        return normalize_host(host) in self.host_names

    def forbidden_reason(self, ip: IPAddress, *, host_allowlisted: bool = False) -> str | None:
        """Why a fetch may not connect to ``ip``, or ``None`` if it may.

        ``host_allowlisted`` says the address came from resolving an allowlisted host name.
        """
        if isinstance(ip, IPv6Address):
            ip = ip.ipv4_mapped or IPv6Address(int(ip))  # ::ffff:a.b.c.d reaches a.b.c.d; drop any %scope
        exact = any(net.num_addresses == 1 and ip in net for net in self.networks)
        if ip in METADATA_ADDRESSES and not exact:
            return "a cloud metadata address"
        if host_allowlisted or any(ip in net for net in self.networks):
            return None
        return default_reason(ip)
