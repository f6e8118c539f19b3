"""The address policy: the built-in ranges, IPv4 hidden in IPv6, and the operator's allowlist."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from herald.media.netguard import AddressPolicy, IPAddress, default_reason, is_host_name

STRICT = AddressPolicy()

# Written from the IANA special-purpose registries, independently of the module's tables.
NON_PUBLIC_V4 = [
    IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # unspecified / this network
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",  # private
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.18.0.0/15",
        "192.88.99.0/24",
    )
]
METADATA = ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"]


def v4_in(networks: list[IPv4Network]) -> st.SearchStrategy[IPv4Address]:
    return st.sampled_from(networks).flatmap(
        lambda n: st.integers(int(n.network_address), int(n.broadcast_address)).map(IPv4Address)
    )


def v6(prefix: str, low_bits: int) -> IPv6Address:
    return IPv6Address(int(IPv6Address(prefix)) | low_bits)


# Every way an IPv6 address can carry an IPv4 one; ``filler`` supplies the bits the form leaves free.
EMBEDDINGS: dict[str, Callable[[IPv4Address, int], IPv6Address]] = {
    "mapped": lambda a, f: v6("::ffff:0:0", int(a)),
    "compatible": lambda a, f: IPv6Address(int(a)),
    "nat64": lambda a, f: v6("64:ff9b::", int(a)),
    "nat64-local/96": lambda a, f: v6("64:ff9b:1::", (f & (2**48 - 1)) << 32 | int(a)),
    # RFC 6052 /48 layout: 16 bits of IPv4, the zero "u" octet, the other 16 bits, then a suffix.
    "nat64-local/48": lambda a, f: v6(
        "64:ff9b:1::", (int(a) >> 16) << 64 | (int(a) & 0xFFFF) << 40 | (f & (2**40 - 1))
    ),
    "6to4": lambda a, f: v6("2002::", int(a) << 80 | (f & (2**80 - 1))),
    "teredo-server": lambda a, f: v6("2001::", int(a) << 64 | (f & (2**64 - 1))),
    "teredo-client": lambda a, f: v6("2001::", (f & (2**64 - 1)) << 32 | (~int(a) & 0xFFFF_FFFF)),
}


@given(v4_in(NON_PUBLIC_V4), st.integers(0, 2**128 - 1))
@example(IPv4Address("127.0.0.1"), 0)
@example(IPv4Address("10.0.0.5"), 0)
@example(IPv4Address("169.254.169.254"), 0)
@example(IPv4Address("100.100.100.200"), 0)
def test_every_non_public_ipv4_is_refused_bare_and_in_every_ipv6_form(ip: IPv4Address, filler: int) -> None:
    assert STRICT.forbidden_reason(ip) is not None
    for name, embed in EMBEDDINGS.items():
        hidden = embed(ip, filler)
        assert STRICT.forbidden_reason(hidden) is not None, (name, str(hidden))


def test_the_embeddings_put_the_ipv4_address_where_python_finds_it() -> None:
    a = IPv4Address("10.1.2.3")
    assert EMBEDDINGS["mapped"](a, 0).ipv4_mapped == a
    assert EMBEDDINGS["6to4"](a, 2**80 - 1).sixtofour == a
    ones = IPv4Address("255.255.255.255")
    assert EMBEDDINGS["teredo-server"](a, 0).teredo == (a, ones)
    assert EMBEDDINGS["teredo-client"](a, 2**128 - 1).teredo == (ones, a)
    assert EMBEDDINGS["nat64-local/48"](a, 0) == IPv6Address("64:ff9b:1:a01:2:300::")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:10.0.0.5", "private"),
        ("::10.0.0.5", "private (it embeds the IPv4 address 10.0.0.5)"),
        ("64:ff9b::7f00:1", "loopback (it embeds the IPv4 address 127.0.0.1)"),
        ("2002:a9fe:a9fe::1", "a cloud metadata address (it embeds the IPv4 address 169.254.169.254)"),
        ("2001:0:a00:1::", "private (it embeds the IPv4 address 10.0.0.1)"),
        ("64:ff9b::6464:64c8", "a cloud metadata address (it embeds the IPv4 address 100.100.100.200)"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("::8.8.8.8", "IPv4-compatible (deprecated)"),
        ("2001:0:808:808::f7f7:f7f7", "Teredo"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("fd00:ec2::254%eth0", "a cloud metadata address"),
        ("fe80::1%2", "link-local"),
        ("fd12:3456::1", "private (unique local)"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("2001:db8::1", "reserved for documentation"),
        ("3fff::1", "reserved for documentation"),
        ("4000::1", "reserved (not global unicast)"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "reserved for 'this network'"),
        ("100.64.0.1", "in the shared CGNAT range"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.9", "reserved for IETF protocols"),
        ("224.0.0.251", "multicast"),
    ],
)
def test_reasons_name_the_rule(address: str, reason: str) -> None:
    assert STRICT.forbidden_reason(ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert STRICT.forbidden_reason(ip_address(address)) is None


@given(st.integers(0, 2**32 - 1).map(IPv4Address))
def test_ipv4_is_refused_exactly_when_it_is_in_a_special_range(ip: IPv4Address) -> None:
    special = any(ip in n for n in NON_PUBLIC_V4) or str(ip) in METADATA
    assert (STRICT.forbidden_reason(ip) is not None) == special
    # Cross-check with the standard library, whose Python 3.11 notion of global counts multicast in.
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        assert STRICT.forbidden_reason(ip) is not None


ipv6_addresses = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0x2000 << 112, (0x4000 << 112) - 1),  # global unicast space
    st.sampled_from(
        ["::", "64:ff9b::", "2001::", "2002::", "fc00::", "fe80::", "ff00::", "::ffff:0:0"]
    ).flatmap(lambda p: st.integers(0, 2**80 - 1).map(lambda low: int(IPv6Address(p)) | low)),
).map(IPv6Address)


@given(ipv6_addresses)
def test_ipv6_agrees_with_the_standard_library_where_it_is_right(ip: IPv6Address) -> None:
    reason = STRICT.forbidden_reason(ip)
    embeds_public_ipv4 = (
        ip.ipv4_mapped is not None or ip in IPv6Network("64:ff9b::/96") or ip.sixtofour is not None
    )
    not_public = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_site_local
        or ip.is_reserved
    )
    if not_public and not embeds_public_ipv4:
        assert reason is not None
    if ip in IPv6Network("2000::/3") and ip.is_global and ip.sixtofour is None:
        assert (reason is None) == (ip not in IPv6Network("3fff::/20"))
    if not (ip in IPv6Network("2000::/3") or embeds_public_ipv4):
        assert reason is not None


# The allowlist


def test_the_setting_parses_names_addresses_and_networks() -> None:
    policy = AddressPolicy.from_setting(" 127.0.0.2, 10.0.0.0/8 ,Media.Intranet., [fd00::5],fd00:1::/64,")
    assert policy.networks == (
        ip_network("127.0.0.2"),
        ip_network("10.0.0.0/8"),
        ip_network("fd00::5"),
        ip_network("fd00:1::/64"),
    )
    assert policy.host_names == frozenset({"media.intranet"})


def test_an_empty_setting_is_the_strict_policy() -> None:
    assert AddressPolicy.from_setting("") == STRICT
    assert AddressPolicy.from_setting(" , ") == STRICT


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.1/8", "300.1.1.1", "2130706433", "127.1", "*.intranet", "http://media", "a b", "médiа.x"],
)
def test_a_malformed_entry_is_named_in_the_error(entry: str) -> None:
    with pytest.raises(ValueError, match="HERALD_FETCH_ALLOW") as info:
        AddressPolicy.from_setting(f"127.0.0.2,{entry}")
    assert repr(entry) in str(info.value)


def test_allowlisted_names_match_case_and_trailing_dot_insensitively() -> None:
    policy = AddressPolicy.from_setting("media.intranet,media_srv")
    assert policy.host_is_allowlisted("MEDIA.intranet.")
    assert policy.host_is_allowlisted("media_srv")
    assert not policy.host_is_allowlisted("evil.media.intranet")
    assert not policy.host_is_allowlisted("intranet")


@given(v4_in([IPv4Network("10.0.0.0/8")]))
def test_an_address_inside_an_allowlisted_network_passes(ip: IPv4Address) -> None:
    policy = AddressPolicy.from_setting("10.0.0.0/8")
    assert policy.forbidden_reason(ip) is None
    assert policy.forbidden_reason(IPv6Address(f"::ffff:{ip}")) is None
    assert policy.forbidden_reason(IPv4Address("192.168.1.1")) == "private"


def test_only_the_allowlisted_address_passes() -> None:
    policy = AddressPolicy.from_setting("127.0.0.2")
    assert policy.forbidden_reason(IPv4Address("127.0.0.2")) is None
    assert policy.forbidden_reason(IPv4Address("127.0.0.1")) == "loopback"


@pytest.mark.parametrize("address", METADATA)
def test_metadata_addresses_need_an_exact_entry(address: str) -> None:
    ip: IPAddress = ip_address(address)
    wide = AddressPolicy.from_setting("0.0.0.0/0,::/0,anything.example")
    assert wide.forbidden_reason(ip) == "a cloud metadata address"
    assert wide.forbidden_reason(ip, host_allowlisted=True) == "a cloud metadata address"
    assert AddressPolicy.from_setting(address).forbidden_reason(ip) is None


def test_an_allowlisted_name_passes_any_address_but_metadata() -> None:
    assert STRICT.forbidden_reason(IPv4Address("10.1.1.1"), host_allowlisted=True) is None
    assert STRICT.forbidden_reason(IPv4Address("169.254.169.254"), host_allowlisted=True) is not None


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("media.example", True),
        ("xn--mdia-bpa.example", True),
        ("a" * 63 + ".example", True),
        ("a" * 64 + ".example", False),
        ("-media.example", False),
        ("media..example", False),
        ("0x7f.1", False),
        ("1.2.3.4", False),  # an address is not a name
        ("", False),
    ],
)
def test_host_names(host: str, ok: bool) -> None:
    assert is_host_name(host) is ok


def test_default_reason_ignores_the_allowlist() -> None:
    assert default_reason(IPv4Address("127.0.0.2")) == "loopback"
