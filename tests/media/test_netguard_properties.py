"""Property tests for the outbound-address guard: special IPv4 ranges, bare and inside IPv6, the allowlist.

The special ranges are written here from the IANA IPv4 special-purpose registry, independently of
``herald.media.netguard``'s tables; the IPv6 embeddings are built bit by bit from their RFCs (4291 mapped and
compatible, 3056 6to4, 4380 Teredo, 6052 NAT64 and 8215 local-use NAT64), not with ``ipaddress`` helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from herald.media.netguard import METADATA_ADDRESSES, AddressPolicy, IPAddress, default_reason, embedded_ipv4

DEFAULT = AddressPolicy()
# The machine is shared with other test runs: a slow draw is not a failure.
SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Every IPv4 range that is not plain global unicast, with why (RFC 6890 and its updates).
SPECIAL_V4: dict[str, str] = {
    "0.0.0.0/8": "this network; 0.0.0.0 is unspecified",
    "10.0.0.0/8": "private",
    "100.64.0.0/10": "shared address space (CGNAT)",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local, with the cloud metadata address",
    "172.16.0.0/12": "private",
    "192.0.0.0/24": "IETF protocol assignments",
    "192.0.2.0/24": "documentation (TEST-NET-1)",
    "192.88.99.0/24": "the former 6to4 relay anycast (RFC 7526), refused by netguard too",
    "192.168.0.0/16": "private",
    "198.18.0.0/15": "benchmarking",
    "198.51.100.0/24": "documentation (TEST-NET-2)",
    "203.0.113.0/24": "documentation (TEST-NET-3)",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved for future use",
    "255.255.255.255/32": "limited broadcast",
}
SPECIAL_NETS = [IPv4Network(net) for net in SPECIAL_V4]
# Public space, but the Azure platform endpoint: netguard refuses it as a metadata address.
PUBLIC_METADATA = IPv4Address("168.63.129.16")


def v4_in(net: IPv4Network) -> st.SearchStrategy[IPv4Address]:
    return st.integers(int(net.network_address), int(net.broadcast_address)).map(IPv4Address)


special_v4 = st.sampled_from(SPECIAL_NETS).flatmap(v4_in)


def is_special(ip: IPv4Address) -> bool:
    return any(ip in net for net in SPECIAL_NETS)


public_v4 = (
    st.integers(0, 2**32 - 1)
    .map(IPv4Address)
    .filter(lambda ip: not is_special(ip) and ip.is_global and ip != PUBLIC_METADATA)
)

# -- the IPv6 forms that carry an IPv4 address ---------------------------------------------------------------
# Each takes the IPv4 address and 128 random bits for whatever the form leaves free.

Embedding = Callable[[IPv4Address, int], IPv6Address]


def _v6(prefix: str, low: int) -> IPv6Address:
    return IPv6Address(int(IPv6Address(prefix)) | low)


def _bits(fill: int, count: int, shift: int = 0) -> int:
    return (fill >> shift) & ((1 << count) - 1)


def _nat64_local(prefix_len: int) -> Embedding:
    """RFC 6052 layouts under 64:ff9b:1::/48: the IPv4 address skips bits 64-71 (the zero "u" octet)."""

    def embed(a: IPv4Address, fill: int) -> IPv6Address:
        v = int(a)
        if prefix_len == 48:
            low = (v >> 16) << 64 | (v & 0xFFFF) << 40 | _bits(fill, 40)
        elif prefix_len == 56:
            low = _bits(fill, 8, 100) << 72 | (v >> 24) << 64 | (v & 0xFFFFFF) << 32 | _bits(fill, 32)
        elif prefix_len == 64:
            low = _bits(fill, 16, 100) << 64 | v << 24 | _bits(fill, 24)
        else:  # 96
            low = _bits(fill, 48, 80) << 32 | v
        return _v6("64:ff9b:1::", low)

    return embed


EMBEDDINGS: dict[str, Embedding] = {
    "mapped ::ffff:a.b.c.d": lambda a, f: _v6("::ffff:0:0", int(a)),
    "compatible ::a.b.c.d": lambda a, f: IPv6Address(int(a)),
    "NAT64 64:ff9b::/96": lambda a, f: _v6("64:ff9b::", int(a)),
    "IPv4-translated ::ffff:0:a.b.c.d": lambda a, f: _v6("::ffff:0:0:0", int(a)),  # SIIT, RFC 2765
    "6to4 2002:AABB:CCDD::/48": lambda a, f: _v6("2002::", int(a) << 80 | _bits(f, 80)),
    # 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, the client address and port bit-inverted.
    "Teredo client": lambda a, f: _v6("2001::", _bits(f, 64, 32) << 32 | (~int(a) & 0xFFFF_FFFF)),
    "Teredo server": lambda a, f: _v6("2001::", int(a) << 64 | _bits(f, 64)),
    "local NAT64 /48": _nat64_local(48),
    "local NAT64 /56": _nat64_local(56),
    "local NAT64 /64": _nat64_local(64),
    "local NAT64 /96": _nat64_local(96),
}
# The forms ``embedded_ipv4`` decodes (local-use NAT64 is refused by its prefix instead: any offset may hold
# the IPv4 address there, so netguard refuses all of 64:ff9b:1::/48).
DECODED = ["mapped ::ffff:a.b.c.d", "compatible ::a.b.c.d", "NAT64 64:ff9b::/96", "6to4 2002:AABB:CCDD::/48"]
DECODED_TEREDO = ["Teredo client", "Teredo server"]
# A public IPv4 address stays reachable through these (the host routes them to it); the other forms are
# refused whatever they carry: IPv4-compatible is deprecated, IPv4-translated is outside global unicast,
# Teredo and local-use NAT64 are refused whole.
PUBLIC_STAYS_PUBLIC = ["mapped ::ffff:a.b.c.d", "NAT64 64:ff9b::/96", "6to4 2002:AABB:CCDD::/48"]

_TEREDO_PARTNERS = (0xFFFF_FFFF << 64) | 0xFFFF_FFFF  # the server's bits and the (inverted) client's


def _with_public_partner(fill: int, partner: IPv4Address) -> int:
    """Filler bits that put a public address beside the one under test in both Teredo forms, so that a
    special partner (0.0.0.0 from all-zero bits, say) cannot be what gets the address refused."""
    return (fill & ~_TEREDO_PARTNERS) | int(partner) << 64 | (~int(partner) & 0xFFFF_FFFF)


fillers = st.one_of(
    st.integers(0, 2**128 - 1),
    st.builds(_with_public_partner, st.integers(0, 2**128 - 1), public_v4),
)


# -- special IPv4 ranges: refused bare and in every embedding ------------------------------------------------


@pytest.mark.parametrize("net", SPECIAL_NETS, ids=str)
@SETTINGS
@given(data=st.data(), fill=fillers)
def test_special_ipv4_is_refused_bare_and_in_every_ipv6_form(
    net: IPv4Network, data: st.DataObject, fill: int
) -> None:
    ip = data.draw(
        st.one_of(v4_in(net), st.sampled_from([net.network_address, net.broadcast_address])), label="ip"
    )
    assert DEFAULT.forbidden_reason(ip) is not None
    assert default_reason(ip) is not None
    for name, embed in EMBEDDINGS.items():
        hidden = embed(ip, fill)
        assert DEFAULT.forbidden_reason(hidden) is not None, (name, str(hidden))
        assert default_reason(hidden) is not None, (name, str(hidden))
        scoped = IPv6Address(f"{hidden}%eth0")  # a zone id changes nothing about where it goes
        assert DEFAULT.forbidden_reason(scoped) is not None, (name, str(scoped))


@SETTINGS
@given(ip=special_v4, fill=fillers)
@example(ip=IPv4Address("0.0.0.2"), fill=0)  # ::0.0.0.2, not the ::1 loopback rule's business
@example(ip=IPv4Address("169.254.169.254"), fill=0)
def test_embedded_ipv4_finds_the_address_netguard_decodes(ip: IPv4Address, fill: int) -> None:
    for name in DECODED:
        hidden = EMBEDDINGS[name](ip, fill)
        if name.startswith("compatible") and int(ip) <= 1:
            assert embedded_ipv4(hidden) == ()  # :: and ::1 are the IPv6 unspecified and loopback
        else:
            assert embedded_ipv4(hidden) == (ip,), name
    for name in DECODED_TEREDO:  # (server, client): the client's bits un-inverted
        assert ip in embedded_ipv4(EMBEDDINGS[name](ip, fill)), name


@SETTINGS
@given(fill=fillers)
def test_the_mapped_unspecified_and_loopback_are_refused(fill: int) -> None:
    for literal in ["0.0.0.0", "127.0.0.1", "255.255.255.255", "169.254.169.254", "100.100.100.200"]:
        ip = IPv4Address(literal)
        for name, embed in EMBEDDINGS.items():
            assert DEFAULT.forbidden_reason(embed(ip, fill)) is not None, (literal, name)


# -- public IPv4: allowed bare and where the host would reach it ---------------------------------------------


@SETTINGS
@given(ip=public_v4, fill=fillers)
@example(ip=IPv4Address("8.8.8.8"), fill=0)
@example(ip=IPv4Address("100.63.255.255"), fill=0)  # just below CGNAT
@example(ip=IPv4Address("100.128.0.0"), fill=0)  # just above
@example(ip=IPv4Address("172.32.0.0"), fill=0)
@example(ip=IPv4Address("223.255.255.255"), fill=0)  # just below multicast
def test_public_ipv4_is_allowed_bare_and_mapped(ip: IPv4Address, fill: int) -> None:
    assert DEFAULT.forbidden_reason(ip) is None
    assert default_reason(ip) is None
    for name in PUBLIC_STAYS_PUBLIC:
        hidden = EMBEDDINGS[name](ip, fill)
        assert DEFAULT.forbidden_reason(hidden) is None, (name, str(hidden))
    for name in set(EMBEDDINGS) - set(PUBLIC_STAYS_PUBLIC):
        hidden = EMBEDDINGS[name](ip, fill)
        assert DEFAULT.forbidden_reason(hidden) is not None, (name, str(hidden))


@pytest.mark.parametrize("metadata", sorted(METADATA_ADDRESSES, key=str), ids=str)
def test_every_metadata_address_is_refused_in_every_form(metadata: IPAddress) -> None:
    assert DEFAULT.forbidden_reason(metadata) is not None
    if isinstance(metadata, IPv4Address):
        for name, embed in EMBEDDINGS.items():
            assert DEFAULT.forbidden_reason(embed(metadata, 0)) is not None, name


def test_the_public_metadata_address_is_refused() -> None:
    assert DEFAULT.forbidden_reason(PUBLIC_METADATA) == "a cloud metadata address"
    assert DEFAULT.forbidden_reason(IPv6Address(f"::ffff:{PUBLIC_METADATA}")) == "a cloud metadata address"


# -- the allowlist (HERALD_FETCH_ALLOW) ----------------------------------------------------------------------

separators = st.sampled_from([",", ", ", " ,", " , ", ",,", ",\t"])


@st.composite
def settings_line(draw: st.DrawFn, entries: list[str]) -> str:
    """``entries`` written as an operator might: any order, spaces, empty entries, a trailing comma."""
    shuffled = draw(st.permutations(entries))
    line = ""
    for i, entry in enumerate(shuffled):
        line += (draw(separators) if i else draw(st.sampled_from(["", " ", ","]))) + entry
    return line + draw(st.sampled_from(["", ",", " ", ", "]))


@SETTINGS
@given(data=st.data(), listed=st.lists(special_v4, min_size=1, max_size=4, unique=True))
def test_an_allowlist_of_addresses_lets_exactly_those_through(
    data: st.DataObject, listed: list[IPv4Address]
) -> None:
    policy = AddressPolicy.from_setting(data.draw(settings_line([str(ip) for ip in listed]), label="setting"))
    for ip in listed:
        assert policy.forbidden_reason(ip) is None, ip  # metadata addresses too: allowlisted exactly
        assert policy.forbidden_reason(IPv6Address(f"::ffff:{ip}")) is None, ip  # the same socket address
    other = data.draw(special_v4.filter(lambda ip: ip not in listed), label="other")
    assert policy.forbidden_reason(other) is not None
    assert policy.forbidden_reason(IPv6Address(f"::ffff:{other}")) is not None
    # Only the address itself: the same IPv4 address inside another IPv6 form is still refused.
    fill = data.draw(fillers, label="fill")
    for name in set(EMBEDDINGS) - {"mapped ::ffff:a.b.c.d"}:
        assert policy.forbidden_reason(EMBEDDINGS[name](listed[0], fill)) is not None, name


@pytest.mark.parametrize("base", SPECIAL_NETS, ids=str)
@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_an_allowlisted_network_lets_its_addresses_through_but_not_metadata(
    data: st.DataObject, base: IPv4Network
) -> None:
    # A subnet of the range around an address in it: a metadata address, when the range holds one, often.
    metadata = [ip for ip in METADATA_ADDRESSES if isinstance(ip, IPv4Address) and ip in base]
    anchor = data.draw(
        st.one_of(v4_in(base), *([st.sampled_from(metadata)] if metadata else [])), label="anchor"
    )
    prefix = data.draw(st.integers(base.prefixlen, 32), label="prefix")
    allowed = IPv4Network(f"{anchor}/{prefix}", strict=False)
    policy = AddressPolicy.from_setting(f" {allowed} ")
    inside = data.draw(st.one_of(st.just(anchor), v4_in(allowed)), label="inside")
    if inside in METADATA_ADDRESSES and allowed.num_addresses > 1:
        assert policy.forbidden_reason(inside) == "a cloud metadata address"
    else:
        assert policy.forbidden_reason(inside) is None
    outside = data.draw(special_v4.filter(lambda ip: ip not in allowed), label="outside")
    assert policy.forbidden_reason(outside) is not None
    if prefix < 32:
        # Host bits set: the operator meant something else; refuse the setting rather than guess.
        host = IPv4Address(int(allowed.network_address) + 1)
        with pytest.raises(ValueError, match="HERALD_FETCH_ALLOW"):
            AddressPolicy.from_setting(f"{host}/{prefix}")


@SETTINGS
@given(
    listed=st.lists(st.integers(0, 2**121 - 1), min_size=1, max_size=3, unique=True),
    other=st.integers(0, 2**121 - 1),
    bracket=st.booleans(),
)
def test_an_allowlisted_ipv6_address_is_let_through_exactly(
    listed: list[int], other: int, bracket: bool
) -> None:
    ula = [IPv6Address(int(IPv6Address("fc00::")) | low) for low in listed]  # fc00::/7, private
    assume(other not in listed)
    policy = AddressPolicy.from_setting(",".join(f"[{ip}]" if bracket else str(ip) for ip in ula))
    for ip in ula:
        assert policy.forbidden_reason(ip) is None
    assert policy.forbidden_reason(IPv6Address(int(IPv6Address("fc00::")) | other)) is not None


@SETTINGS
@given(ip=st.one_of(special_v4, public_v4), fill=fillers)
def test_an_allowlisted_host_name_lets_any_address_through_but_metadata(ip: IPv4Address, fill: int) -> None:
    policy = AddressPolicy.from_setting("media.intranet")
    assert policy.host_is_allowlisted("Media.Intranet.")
    for candidate in [ip, EMBEDDINGS["mapped ::ffff:a.b.c.d"](ip, fill)]:
        reason = policy.forbidden_reason(candidate, host_allowlisted=True)
        assert reason == ("a cloud metadata address" if ip in METADATA_ADDRESSES else None)
    assert policy.forbidden_reason(ip) == DEFAULT.forbidden_reason(ip)  # a name allows nothing by address


@pytest.mark.parametrize("literal", ["169.254.169.254", "100.100.100.200", "168.63.129.16", "fd00:ec2::254"])
def test_a_metadata_address_needs_an_exact_entry(literal: str) -> None:
    ip = ip_address(literal)
    wide = "169.254.0.0/16,100.64.0.0/10,168.63.0.0/16,fd00::/8"
    assert AddressPolicy.from_setting(wide).forbidden_reason(ip) == "a cloud metadata address"
    assert AddressPolicy.from_setting(f"{wide},{literal}").forbidden_reason(ip) is None


def test_the_embeddings_are_built_as_their_rfcs_say() -> None:
    a = IPv4Address("192.0.2.33")
    assert EMBEDDINGS["mapped ::ffff:a.b.c.d"](a, 0) == IPv6Address("::ffff:192.0.2.33")
    assert EMBEDDINGS["compatible ::a.b.c.d"](a, 0) == IPv6Address("::192.0.2.33")
    assert EMBEDDINGS["NAT64 64:ff9b::/96"](a, 0) == IPv6Address("64:ff9b::192.0.2.33")
    assert EMBEDDINGS["IPv4-translated ::ffff:0:a.b.c.d"](a, 0) == IPv6Address("::ffff:0:192.0.2.33")
    assert EMBEDDINGS["6to4 2002:AABB:CCDD::/48"](a, 0) == IPv6Address("2002:c000:221::")
    # RFC 4380's example: server 65.54.227.120, client 192.0.2.45 → 2001:0:4136:e378:8000:63bf:3fff:fdd2.
    client = EMBEDDINGS["Teredo client"](IPv4Address("192.0.2.45"), 0x8000_63BF << 32)
    server = EMBEDDINGS["Teredo server"](IPv4Address("65.54.227.120"), 0)
    assert IPv6Address(int(client) | int(server)) == IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    # RFC 6052's examples for 192.0.2.33, moved under the local-use prefix.
    assert EMBEDDINGS["local NAT64 /48"](a, 0) == IPv6Address("64:ff9b:1:c000:2:2100::")
    assert EMBEDDINGS["local NAT64 /56"](a, 0) == IPv6Address("64:ff9b:1:c0:0:221::")
    assert EMBEDDINGS["local NAT64 /64"](a, 0) == IPv6Address("64:ff9b:1:0:c0:2:2100:0")
    assert EMBEDDINGS["local NAT64 /96"](a, 0) == IPv6Address("64:ff9b:1::192.0.2.33")
    assert IPv6Network("64:ff9b:1::/48").supernet_of(
        IPv6Network(f"{EMBEDDINGS['local NAT64 /64'](a, 2**128 - 1)}/128")
    )
