"""A request that failed because PostgreSQL or Redis is away is ``ServiceUnavailable`` (503), not a bug."""

from __future__ import annotations

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from herald.errors import ServiceUnavailable

_REDIS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_DATABASE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
)
_NETWORK = (ConnectionError, TimeoutError)


def as_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """``ServiceUnavailable`` naming what is away, if ``exc`` (or what caused it) is an outage."""
    seen: BaseException | None = exc
    for _ in range(5):  # the exception and a few of its causes
        if seen is None:
            break
        if isinstance(seen, _REDIS):
            return ServiceUnavailable("The cluster's Redis is not reachable; retry shortly.")
        if isinstance(seen, _DATABASE) or (
            isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated
        ):
            return ServiceUnavailable("The database is not reachable; retry shortly.")
        if isinstance(seen, _NETWORK):
            return ServiceUnavailable("A service Herald depends on is not reachable; retry shortly.")
        seen = seen.__cause__ or seen.__context__
    return None
