"""The cluster's Redis: its key names, in one place, and the clients Herald opens on it."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


class Keys:
    """Every key of a cluster starts with ``<cluster>:``, so several clusters may share one Redis."""

    def __init__(self, cluster: str) -> None:
        self.prefix = f"{cluster}:"
        self.nodes = f"{cluster}:nodes"
        """Set: every node that has registered and was not yet found dead."""

    def node(self, node_id: str) -> str:
        """Hash with a TTL (the lease): ``url``, ``instances``, ``speaking``, ``draining``."""
        return f"{self.prefix}node:{node_id}"

    def instance(self, instance_id: str) -> str:
        """String: the node that runs the instance."""
        return f"{self.prefix}instance:{instance_id}"

    def channel(self, channel_id: str) -> str:
        """String: the live instance of the channel (one per channel, cluster-wide)."""
        return f"{self.prefix}channel:{channel_id}"

    def speeches(self, instance_id: str) -> str:
        """Hash: the instance's accepted speeches without an outcome yet (utterance id → request)."""
        return f"{self.prefix}speeches:{instance_id}"

    def commands(self, node_id: str) -> str:
        """Stream: commands for the node's instances (consumer group ``exec``)."""
        return f"{self.prefix}commands:{node_id}"

    def replies(self, node_id: str) -> str:
        """Stream: answers to the commands this node sent."""
        return f"{self.prefix}replies:{node_id}"

    def done(self, command_id: str) -> str:
        """String with a TTL: the answer of a command already run (a redelivery is answered, not rerun)."""
        return f"{self.prefix}done:{command_id}"

    @property
    def events(self) -> str:
        """Pub/sub channel: "instance X has new events in the outbox" (event streams on other nodes)."""
        return f"{self.prefix}events"


def open_redis(url: str, *, timeout_s: float | None) -> Redis:
    """A client whose calls fail within ``timeout_s`` when Redis is away (``None``: no read timeout, for
    blocking reads); one quick retry covers a connection Redis dropped while idle."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s if timeout_s is not None else 2.0,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
