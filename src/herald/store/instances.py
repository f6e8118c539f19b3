"""``InstanceStore``: agent instances, persisted."""

from __future__ import annotations

import builtins
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from herald.store.records import InstanceRecord
from herald.store.tables import InstanceRow

# Set once, when the instance is created; ``save`` leaves them alone.
_FIXED_FIELDS = frozenset({"instance_id", "agent_id", "owner", "created_at"})
MUTABLE_FIELDS = tuple(f.name for f in fields(InstanceRecord) if f.name not in _FIXED_FIELDS)

_TIME_FIELDS = ("created_at", "modified_at", "call_start_at", "call_end_at")
_FINISHED = "Finished"
_HANGUP_SYSTEM = 2


class InstanceStore:
    """Agent instances, one row each. Every method runs in its own short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add(self, record: InstanceRecord) -> None:
        """Insert a new instance; an ``instance_id`` already stored raises ``ValueError``."""
        _require_aware_times(record)
        try:
            async with self._sessions.begin() as session:
                session.add(InstanceRow(**asdict(record)))
        except IntegrityError as exc:
            if await self.get(record.instance_id) is None:
                raise  # some other constraint failed
            raise ValueError(f"instance {record.instance_id!r} already exists") from exc

    async def get(self, instance_id: str) -> InstanceRecord | None:
        async with self._sessions() as session:
            row = await session.get(InstanceRow, instance_id)
            return None if row is None else _to_record(row)

    async def save(self, record: InstanceRecord) -> None:
        """Write every field in ``MUTABLE_FIELDS``; an instance not stored raises ``KeyError``."""
        _require_aware_times(record)
        values = {name: getattr(record, name) for name in MUTABLE_FIELDS}
        stmt = update(InstanceRow).where(InstanceRow.instance_id == record.instance_id).values(values)
        async with self._sessions.begin() as session:
            result = cast(CursorResult[Any], await session.execute(stmt))  # an UPDATE's result type
            updated = result.rowcount
        if updated == 0:
            raise KeyError(record.instance_id)

    async def list(
        self,
        *,
        agent_id: str,
        owner: str | None,
        start: datetime | None,
        end: datetime | None,
        offset: int,
        limit: int,
    ) -> builtins.list[InstanceRecord]:
        """One page of an agent's instances created in ``[start, end)``, newest first.

        Instances created at the same moment are ordered by ``instance_id``, so pages never overlap.
        ``owner``, ``start`` and ``end`` left ``None`` do not filter.
        """
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must not be negative, got {offset} and {limit}")
        _require_aware(start=start, end=end)
        stmt = select(InstanceRow).where(InstanceRow.agent_id == agent_id)
        if owner is not None:
            stmt = stmt.where(InstanceRow.owner == owner)
        if start is not None:
            stmt = stmt.where(InstanceRow.created_at >= start)
        if end is not None:
            stmt = stmt.where(InstanceRow.created_at < end)
        stmt = (
            stmt.order_by(InstanceRow.created_at.desc(), InstanceRow.instance_id).offset(offset).limit(limit)
        )
        async with self._sessions() as session:
            rows = await session.scalars(stmt)
            return [_to_record(row) for row in rows]

    async def finish_unfinished(
        self, now: datetime, *, node_id: str | None = None
    ) -> builtins.list[InstanceRecord]:
        """Mark every instance not yet finished as ended by the system at ``now``; returns them.

        Run at start-up: no instance outlives the process that ran it. With ``node_id`` (a cluster node),
        only that node's instances, and those of no node (left by an embedded run of the same database).
        """
        if node_id is None:
            return await self._finish_where(now)
        return await self._finish_where(
            now, or_(InstanceRow.node_id == node_id, InstanceRow.node_id.is_(None))
        )

    async def finish_node(self, node_id: str, now: datetime) -> builtins.list[InstanceRecord]:
        """Finish the unfinished instances of ``node_id`` (it died); returns them.

        One statement: when several nodes find the same dead node at once, each instance goes to one.
        """
        return await self._finish_where(now, InstanceRow.node_id == node_id)

    async def unfinished_nodes(self) -> set[str]:
        """The nodes that have unfinished instances."""
        stmt = (
            select(InstanceRow.node_id)
            .where(InstanceRow.status != _FINISHED, InstanceRow.node_id.is_not(None))
            .distinct()
        )
        async with self._sessions() as session:
            return {node for node in await session.scalars(stmt) if node is not None}

    async def _finish_where(
        self, now: datetime, *conditions: ColumnElement[bool]
    ) -> builtins.list[InstanceRecord]:
        _require_aware(now=now)
        stmt = (
            update(InstanceRow)
            .where(InstanceRow.status != _FINISHED, *conditions)
            .values(status=_FINISHED, call_end_at=now, hangup_role=_HANGUP_SYSTEM, modified_at=now)
            .returning(InstanceRow)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            rows = (await session.scalars(stmt)).all()
            return [_to_record(row) for row in rows]


def _require_aware_times(record: InstanceRecord) -> None:
    _require_aware(**{name: getattr(record, name) for name in _TIME_FIELDS})


def _require_aware(**times: datetime | None) -> None:
    # Checked here so that callers get a plain ValueError, not SQLAlchemy's wrapping of it.
    for name, value in times.items():
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime, got {value.isoformat()}")


def _to_record(row: InstanceRow) -> InstanceRecord:
    return InstanceRecord(**{f.name: getattr(row, f.name) for f in fields(InstanceRecord)})
