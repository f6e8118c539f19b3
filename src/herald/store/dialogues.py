"""``DialogueStore``: what was said in each session, persisted."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from herald.store.records import DialogueRecord
from herald.store.tables import DialogueRow

Order = Literal["ASC", "DESC"]


class DialogueStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add(self, record: DialogueRecord) -> None:
        await self.add_all([record])

    async def add_all(self, records: Sequence[DialogueRecord]) -> None:
        """Insert ``records`` in one transaction; a line already stored (same ``dialogue_id``) is kept as
        it is — in a cluster, a dead node's speeches are failed by another node, which cannot know for sure
        which outcomes the dead node managed to write."""
        if not records:
            return
        # A Core executemany, not ORM objects: the log is written in bursts of hundreds of lines.
        async with self._sessions.begin() as session:
            dialect = (await session.connection()).dialect.name
            stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DialogueRow)
            await session.execute(
                stmt.on_conflict_do_nothing(index_elements=["dialogue_id"]),
                [asdict(record) for record in records],
            )

    async def list(
        self,
        *,
        session_id: str,
        owner: str,
        start_ms: int,
        end_ms: int,
        order: Order,
        offset: int,
        limit: int,
        round_limit: int | None = None,
    ) -> builtins.list[DialogueRecord]:
        """A session's lines with ``start_ms <= time_ms <= end_ms``; ties in time keep insertion order.

        ``round_limit`` (instead of paging): only the lines of the latest that many rounds.
        """
        stmt = select(DialogueRow).where(
            DialogueRow.session_id == session_id,
            DialogueRow.owner == owner,
            DialogueRow.time_ms >= start_ms,
            DialogueRow.time_ms <= end_ms,
        )
        if round_limit is not None:
            latest = (
                select(DialogueRow.round_id)
                .where(DialogueRow.session_id == session_id, DialogueRow.owner == owner)
                .group_by(DialogueRow.round_id)
                .order_by(func.max(DialogueRow.time_ms).desc())
                .limit(round_limit)
            )
            stmt = stmt.where(DialogueRow.round_id.in_(latest))
        by_time = DialogueRow.time_ms.asc() if order == "ASC" else DialogueRow.time_ms.desc()
        stmt = stmt.order_by(by_time, DialogueRow.dialogue_id)
        if round_limit is None:
            stmt = stmt.offset(offset).limit(limit)
        async with self._sessions() as session:
            rows = await session.scalars(stmt)
            return [
                DialogueRecord(**{f.name: getattr(row, f.name) for f in fields(DialogueRecord)})
                for row in rows
            ]
