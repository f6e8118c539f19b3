"""``IdempotencyStore``: ``ClientToken`` requests and the answers they got."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from herald.store.records import IdempotencyRecord
from herald.store.tables import IdempotencyRow


class IdempotencyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get(self, owner: str, action: str, client_token: str) -> IdempotencyRecord | None:
        async with self._sessions() as session:
            row = await session.get(IdempotencyRow, (owner, action, client_token))
            if row is None:
                return None
            return IdempotencyRecord(
                owner=row.owner,
                action=row.action,
                client_token=row.client_token,
                params_hash=row.params_hash,
                response=row.response,
                created_at=row.created_at,
            )

    async def put(self, record: IdempotencyRecord) -> None:
        """Store ``record``, replacing an expired one with the same key."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(IdempotencyRow).where(
                    IdempotencyRow.owner == record.owner,
                    IdempotencyRow.action == record.action,
                    IdempotencyRow.client_token == record.client_token,
                )
            )
            session.add(IdempotencyRow(**asdict(record)))

    async def purge(self, older_than: datetime) -> int:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(IdempotencyRow).where(IdempotencyRow.created_at < older_than)
            )
            return int(getattr(result, "rowcount", 0))
