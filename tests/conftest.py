"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from herald.store.db import database_url_for_dir, to_async_url

POSTGRES_ADMIN_URL = os.environ.get(
    "HERALD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _postgres_database() -> str | None:
    """A fresh, empty PostgreSQL database; ``None`` if no server answers."""
    admin = create_async_engine(to_async_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, ConnectionError) as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"PostgreSQL is required in CI (scripts/services starts it): {exc}") from exc
        return None
    finally:
        await admin.dispose()
    return str(to_async_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False))


async def _drop_postgres_database(url: str) -> None:
    admin = create_async_engine(to_async_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = to_async_url(url).database
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each database Herald supports, empty: embedded SQLite and a real PostgreSQL server."""
    if request.param == "sqlite":
        yield database_url_for_dir(tmp_path)
        return
    url = await _postgres_database()
    if url is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 (scripts/services starts one)")
    yield url
    await _drop_postgres_database(url)
