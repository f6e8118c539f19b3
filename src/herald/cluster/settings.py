"""Cluster settings: the node's identity (environment) and the ``[cluster]`` tunables."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``[cluster]``. A dead node's instances are finished within about ``lease_s + 2 * heartbeat_s + 1``
    seconds (7 s with the defaults); ``docs/cluster.md`` explains each."""

    lease_s: float = 4.0
    """A node that has not renewed its lease for this long is presumed dead."""
    heartbeat_s: float = 1.0
    """How often a node renews its lease and publishes its load."""
    drain_s: float = 10.0
    """On SIGTERM, how long current speech may go on before the node's instances are finished."""
    command_timeout_s: float = 5.0
    """How long a node waits for another to answer a routed command before ``ServiceUnavailable``."""
    redis_timeout_s: float = 1.0
    """Connect and command timeout of Redis calls on the request path: an outage fails fast."""

    def __post_init__(self) -> None:
        for name in ("lease_s", "heartbeat_s", "drain_s", "command_timeout_s", "redis_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError("lease_s must be at least twice heartbeat_s")

    @property
    def reap_after_s(self) -> float:
        """How long a node's lease must have been missing before its instances are finished: a grace for
        a Redis that restarted empty, which every live node fills again at its next heartbeat."""
        return 2 * self.heartbeat_s


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    cluster: str
    """The cluster's name: the prefix of every Redis key, so clusters may share one Redis."""
    node_id: str
    url: str
    """Where the other nodes reach this one (commands go through Redis; proxied calls over HTTP)."""


def node_identity(
    cluster: str, node_id: str | None, advertise_url: str | None, host: str, port: int
) -> NodeIdentity:
    """Check the names and fill in the defaults; a bad value raises ``ValueError`` naming its setting."""
    if not _NAME.fullmatch(cluster):
        raise ValueError(f"HERALD_CLUSTER must be 1 to 64 letters, digits, '.', '_' or '-' (got {cluster!r})")
    node = node_id or f"{socket.gethostname()}-{port}"
    if not _NAME.fullmatch(node):
        raise ValueError(f"HERALD_NODE_ID must be 1 to 64 letters, digits, '.', '_' or '-' (got {node!r})")
    if advertise_url is None:
        reachable = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        advertise_url = (
            f"http://{reachable}:{port}" if ":" not in reachable else f"http://[{reachable}]:{port}"
        )
    if not advertise_url.startswith(("http://", "https://")):
        raise ValueError(f"HERALD_ADVERTISE_URL must be an http(s) URL (got {advertise_url!r})")
    return NodeIdentity(cluster, node, advertise_url.rstrip("/"))


def derive_token_secret(master_key: bytes) -> bytes:
    """The call-token secret every node shares, from the master key they must share anyway."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"herald call tokens v1")
    return hkdf.derive(master_key).hex().encode()
