"""Opening the database: URL normalisation, connection settings, and the schema's migrations (Alembic)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

# What a user may write → the async driver Herald uses for it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

CONNECT_TIMEOUT_S = 5.0
"""How long opening a PostgreSQL connection (or waiting for a pooled one) may take."""
COMMAND_TIMEOUT_S = 5.0
"""How long one PostgreSQL statement may take on an open connection (asyncpg's ``command_timeout``).

A server that stops answering without closing its connections (a network partition, a hung host) would
otherwise hold every query on them until TCP gives up, hours later: requests, and the batch writers behind
them, would hang instead of failing. A timed-out pooled connection also costs SQLAlchemy up to 2 s to close,
so a request fails in about 7 s, inside the ICE SDK's default read timeout (10 s) — a client gets the 503
rather than a timeout of its own. Herald's statements are small (pages of at most 100 rows, batches of
500): 5 s is far beyond what a healthy server takes. Migrations do not have it (``create_schema``)."""

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
        # A server that is away fails a request within seconds (ServiceUnavailable), not asyncpg's 60 s.
        return create_async_engine(
            async_url,
            pool_pre_ping=True,
            pool_timeout=CONNECT_TIMEOUT_S,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
        )
    # SQLite takes one writer at a time. One connection shared in turn serialises Herald's writes in the
    # process instead of letting them collide on the file lock ("database is locked" under a burst of joins).
    in_memory = async_url.database in (None, "", ":memory:")  # already one connection (StaticPool)
    pool: dict[str, int] = {} if in_memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
    engine = create_async_engine(async_url, **pool)
    event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


BASELINE_REVISION = "0001"
"""The schema of the releases before migrations: a database made by them is stamped with it, then upgraded."""
_MIGRATION_LOCK = (
    0x4845_5241_4C44  # "HERALD": one PostgreSQL advisory lock serialises nodes migrating at once
)


def migration_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "herald.store:migrations")
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(migration_config()).get_current_head()
    assert head is not None
    return head


async def create_schema(engine: AsyncEngine) -> None:
    """Bring the schema up to date: every migration not yet applied, in one transaction.

    Nodes of a cluster starting together take turns (an advisory lock); the later ones find nothing to do.
    On PostgreSQL the migrations run on a connection of their own without ``COMMAND_TIMEOUT_S``: waiting
    for another node's migrations, or a migration of a big table, may rightly take longer than a request.
    """
    migrating = _without_command_timeout(engine)
    try:
        async with migrating.begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        if migrating is not engine:
            await migrating.dispose()


def _without_command_timeout(engine: AsyncEngine) -> AsyncEngine:
    """An engine for ``engine``'s PostgreSQL database whose statements may take as long as they need (one
    connection, not pooled); ``engine`` itself for SQLite."""
    if engine.dialect.name != "postgresql":
        return engine
    return create_async_engine(engine.url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_S})


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = migration_config()
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if "instances" in tables and "alembic_version" not in tables:
        command.stamp(config, BASELINE_REVISION)  # made by a release before migrations
    command.upgrade(config, "head")


def _set_sqlite_pragmas(dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry) -> None:
    # Runs before any transaction is open, where journal_mode may still change.
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
