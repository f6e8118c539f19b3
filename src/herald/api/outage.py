"""A request that failed because PostgreSQL or Redis is away is ``ServiceUnavailable`` (503), not a bug."""

from __future__ import annotations

from herald.errors import ServiceUnavailable
from herald.observability.outages import service_away

_MESSAGES = {
    "redis": "The cluster's Redis is not reachable; retry shortly.",
    "database": "The database is not reachable; retry shortly.",
    "network": "A service Herald depends on is not reachable; retry shortly.",
}


def as_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """``ServiceUnavailable`` naming what is away, if ``exc`` (or what caused it) is an outage."""
    service = service_away(exc)
    return None if service is None else ServiceUnavailable(_MESSAGES[service])
