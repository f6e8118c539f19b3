"""``EventStore``: the outbox of instance events, persisted before anything is sent anywhere."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from herald.store.records import EventRecord
from herald.store.tables import EventRow

_FIELDS = tuple(f.name for f in fields(EventRecord))


def _record(row: EventRow) -> EventRecord:
    return EventRecord(**{name: getattr(row, name) for name in _FIELDS})


class EventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add_all(self, records: Sequence[EventRecord]) -> None:
        """Insert ``records`` in one transaction, in order; each gets its ``seq``."""
        if not records:
            return
        rows = [{k: v for k, v in asdict(record).items() if k != "seq"} for record in records]
        async with self._sessions.begin() as session:
            result = await session.execute(
                insert(EventRow).returning(EventRow.seq, sort_by_parameter_order=True), rows
            )
            for record, seq in zip(records, result.scalars().all(), strict=True):
                record.seq = seq

    async def after(self, instance_id: str, seq: int, *, limit: int = 500) -> builtins.list[EventRecord]:
        """The instance's events after ``seq``, oldest first."""
        stmt = (
            select(EventRow)
            .where(EventRow.instance_id == instance_id, EventRow.seq > seq)
            .order_by(EventRow.seq)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [_record(row) for row in (await session.scalars(stmt)).all()]

    async def get(self, event_id: str) -> EventRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(select(EventRow).where(EventRow.event_id == event_id))
            return None if row is None else _record(row)

    async def claim_due(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> builtins.list[EventRecord]:
        """Take the pending callbacks due by ``now`` (the longest waiting first): each is put off until
        ``lease_until``, in one statement, so that of several processes delivering from one database (a
        cluster) exactly one takes each; PostgreSQL skips rows another process is claiming meanwhile."""
        due = (
            select(EventRow.seq)
            .where(EventRow.delivery == "pending", EventRow.next_attempt_at <= now)
            .order_by(EventRow.next_attempt_at, EventRow.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(EventRow)
            .where(EventRow.seq.in_(due.scalar_subquery()))
            .values(next_attempt_at=lease_until)
            .returning(EventRow)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            rows = (await session.scalars(stmt)).all()
        claimed = [_record(row) for row in rows]
        claimed.sort(key=lambda record: record.seq or 0)
        return claimed

    async def next_due_at(self) -> datetime | None:
        """When the next pending callback is due (``None``: none is pending)."""
        async with self._sessions() as session:
            value: datetime | None = await session.scalar(
                select(func.min(EventRow.next_attempt_at)).where(EventRow.delivery == "pending")
            )
            return value

    async def save_delivery(self, record: EventRecord) -> None:
        """Write back ``record``'s delivery state (attempts, next attempt, outcome)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(EventRow)
                .where(EventRow.event_id == record.event_id)
                .values(
                    delivery=record.delivery,
                    attempts=record.attempts,
                    next_attempt_at=record.next_attempt_at,
                    last_error=record.last_error,
                    delivered_at=record.delivered_at,
                )
            )

    async def count_by_delivery(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = (
                await session.execute(select(EventRow.delivery, func.count()).group_by(EventRow.delivery))
            ).all()
            return {str(delivery): int(count) for delivery, count in rows}
