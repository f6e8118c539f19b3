"""The schema comes from Alembic's migrations, on SQLite and PostgreSQL alike, and matches the models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.store.db import (
    BASELINE_REVISION,
    create_schema,
    head_revision,
    migration_config,
    open_database,
    schema_revision,
)
from herald.store.tables import Base


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = open_database(database_url)
    yield engine
    await engine.dispose()


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrations_build_exactly_the_models_schema(engine: AsyncEngine) -> None:
    await create_schema(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    assert await schema_revision(engine) == head_revision()


async def test_migrating_again_changes_nothing(engine: AsyncEngine) -> None:
    await create_schema(engine)
    await create_schema(engine)
    assert await schema_revision(engine) == head_revision()


async def test_a_database_of_a_release_before_migrations_is_upgraded_keeping_its_rows(
    engine: AsyncEngine,
) -> None:
    def make_legacy(connection: Connection) -> None:
        # The baseline is what create_all made before migrations; such a database has no version table.
        config = migration_config()
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE_REVISION)
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text(
                "INSERT INTO instances (instance_id, agent_id, owner, status, channel_id, agent_user_id,"
                " agent_config, runtime_config, created_at, modified_at)"
                " VALUES ('i-old', 'a', 'default', 'Finished', 'ch', 'u', '{}', '{}',"
                " '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )

    async with engine.begin() as conn:
        await conn.run_sync(make_legacy)
    assert await schema_revision(engine) is None

    await create_schema(engine)

    assert await schema_revision(engine) == head_revision()
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("instances")})
        kept = (await conn.execute(text("SELECT instance_id, node_id FROM instances"))).all()
    assert "node_id" in columns
    assert [tuple(row) for row in kept] == [("i-old", None)]


async def test_nodes_migrating_at_once_take_turns(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one SQLite file has one server")
    engines = [open_database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(create_schema(e) for e in engines))
        assert {await schema_revision(e) for e in engines} == {head_revision()}
    finally:
        for e in engines:
            await e.dispose()
