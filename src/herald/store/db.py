"""Opening the database: URL normalisation, SQLite connection settings, schema creation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from herald.store.tables import Base

# What a user may write → the async driver Herald uses for it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

_SQLITE_PRAGMAS = (
    # busy_timeout first, so that switching to WAL waits for a lock instead of failing.
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


def database_url_for_dir(data_dir: Path) -> str:
    """The URL of the embedded SQLite database kept in ``data_dir``."""
    return f"sqlite+aiosqlite:///{data_dir / 'herald.db'}"


def to_async_url(url: str) -> URL:
    """Map a user-friendly URL (``sqlite:///…``, ``postgres://…``) to its async-driver form.

    Raises ``ValueError`` for anything else; the message never repeats the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("the database URL could not be parsed") from None  # the cause echoes the URL
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        supported = ", ".join(_ASYNC_DRIVERS)
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; supported: {supported}")
    return parsed.set(drivername=driver)


def open_database(url: str) -> AsyncEngine:
    """Create the engine for ``url``; the caller disposes it."""
    async_url = to_async_url(url)
    if async_url.get_backend_name() != "sqlite":
        return create_async_engine(async_url, pool_pre_ping=True)
    # SQLite takes one writer at a time. One connection shared in turn serialises Herald's writes in the
    # process instead of letting them collide on the file lock ("database is locked" under a burst of joins).
    in_memory = async_url.database in (None, "", ":memory:")  # already one connection (StaticPool)
    pool: dict[str, int] = {} if in_memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
    engine = create_async_engine(async_url, **pool)
    event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


async def create_schema(engine: AsyncEngine) -> None:
    """Create every missing table and index; existing ones are left as they are."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


def _set_sqlite_pragmas(dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry) -> None:
    # Runs before any transaction is open, where journal_mode may still change.
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
