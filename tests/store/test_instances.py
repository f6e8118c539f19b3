from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.store.db import create_schema, database_url_for_dir, open_database, to_async_url
from herald.store.instances import MUTABLE_FIELDS, InstanceStore
from herald.store.records import InstanceRecord
from herald.store.tables import InstanceRow

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_record(instance_id: str = "i-1", **changes: object) -> InstanceRecord:
    record = InstanceRecord(
        instance_id=instance_id,
        agent_id="agent-a",
        owner="AK-1",
        status="Created",
        channel_id="ch-1",
        agent_user_id="agent-user-1",
        user_id=None,
        session_id=None,
        user_data=None,
        agent_config={},
        runtime_config={"AgentUserId": "agent-user-1", "ChannelId": "ch-1"},
        template_config=None,
        chat_sync_config=None,
        created_at=T0,
        modified_at=T0,
        call_start_at=None,
        call_end_at=None,
        hangup_role=None,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]  # test helper takes any field


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = open_database(database_url)
    await create_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = open_database(database_url_for_dir(tmp_path))
    await create_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> InstanceStore:
    return InstanceStore(engine)


def test_record_fields_match_columns() -> None:
    columns = {c.name for c in InstanceRow.__table__.columns}
    assert columns == {f.name for f in dataclasses.fields(InstanceRecord)}


async def test_round_trip_every_field(store: InstanceStore) -> None:
    beijing = timezone(timedelta(hours=8))
    record = make_record(
        status="Executing",
        user_id="user-7",
        session_id="sess-1",
        user_data='{"k": "v"}',
        agent_config={"Greeting": "你好，世界 👋", "Nested": {"List": [1, 2.5, None, True, "é"]}},
        runtime_config={"VoiceChat": {"AgentUserId": "a", "ChannelId": "c", "AuthToken": "t"}},
        template_config={"VoiceChat": {"Voice": "zhixiaoxia"}},
        chat_sync_config={"IMAIAgentId": "im-1"},
        created_at=datetime(2025, 3, 1, 20, 0, tzinfo=beijing),
        modified_at=T0 + timedelta(seconds=1),
        call_start_at=T0 + timedelta(seconds=2),
        call_end_at=T0 + timedelta(seconds=3),
        hangup_role=1,
    )
    await store.add(record)

    got = await store.get("i-1")

    assert got == record
    assert got is not None
    for value in (got.created_at, got.modified_at, got.call_start_at, got.call_end_at):
        assert value is not None
        assert value.tzinfo is UTC
    assert got.created_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def test_round_trip_of_nulls(store: InstanceStore, engine: AsyncEngine) -> None:
    record = make_record()
    await store.add(record)

    assert await store.get("i-1") == record
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT template_config, chat_sync_config FROM instances"))).one()
    assert tuple(row) == (None, None)  # SQL NULL, not the JSON text "null"


async def test_get_unknown_is_none(store: InstanceStore) -> None:
    assert await store.get("nope") is None


async def test_add_duplicate_raises_value_error(store: InstanceStore) -> None:
    await store.add(make_record())

    with pytest.raises(ValueError, match="i-1"):
        await store.add(make_record(agent_id="other"))
    assert (await store.get("i-1")) == make_record()


async def test_naive_datetimes_are_refused(store: InstanceStore) -> None:
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError, match="created_at"):
        await store.add(make_record(created_at=naive))
    await store.add(make_record())
    with pytest.raises(ValueError, match="call_end_at"):
        await store.save(make_record(call_end_at=naive))
    with pytest.raises(ValueError, match="start"):
        await store.list(agent_id="agent-a", owner=None, start=naive, end=None, offset=0, limit=1)
    with pytest.raises(ValueError, match="now"):
        await store.finish_unfinished(naive)
    assert await store.get("i-1") == make_record()


async def test_save_updates_mutable_fields(store: InstanceStore) -> None:
    await store.add(make_record())
    changed = make_record(
        status="Finished",
        channel_id="ch-2",
        agent_user_id="agent-user-2",
        user_id="u",
        session_id="s",
        user_data="data",
        agent_config={"a": {"b": "ü"}},
        runtime_config={"r": 1},
        template_config={"t": 2},
        chat_sync_config={"c": 3},
        modified_at=T0 + timedelta(minutes=5),
        call_start_at=T0 + timedelta(minutes=1),
        call_end_at=T0 + timedelta(minutes=4),
        hangup_role=0,
        node_id="node-b",
    )
    assert {
        f.name
        for f in dataclasses.fields(InstanceRecord)
        if getattr(changed, f.name) != getattr(make_record(), f.name)
    } == set(MUTABLE_FIELDS)

    await store.save(changed)

    assert await store.get("i-1") == changed


async def test_save_can_clear_optional_fields(store: InstanceStore) -> None:
    full = make_record(user_id="u", template_config={"t": 1}, call_start_at=T0, hangup_role=2)
    await store.add(full)

    await store.save(make_record())

    assert await store.get("i-1") == make_record()


async def test_save_keeps_fixed_fields(store: InstanceStore) -> None:
    await store.add(make_record())

    await store.save(make_record(agent_id="other", owner="AK-2", created_at=T0 + timedelta(days=1)))

    assert await store.get("i-1") == make_record()


async def test_save_unknown_raises_key_error(store: InstanceStore) -> None:
    with pytest.raises(KeyError):
        await store.save(make_record("missing"))


async def test_list_filters_by_agent_owner_and_window(store: InstanceStore) -> None:
    for i in range(6):
        await store.add(make_record(f"a{i}", created_at=T0 + timedelta(minutes=i), owner=f"AK-{i % 2}"))
    await store.add(make_record("b0", agent_id="agent-b", created_at=T0))

    async def ids(**kw: object) -> list[str]:
        args: dict[str, object] = {"owner": None, "start": None, "end": None, "offset": 0, "limit": 100}
        args.update(kw)
        return [r.instance_id for r in await store.list(agent_id="agent-a", **args)]  # type: ignore[arg-type]

    assert await ids() == ["a5", "a4", "a3", "a2", "a1", "a0"]
    assert await ids(owner="AK-1") == ["a5", "a3", "a1"]
    assert await ids(owner="AK-9") == []
    # start is inclusive, end exclusive
    assert await ids(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=4)) == ["a3", "a2", "a1"]
    assert await ids(start=T0 + timedelta(minutes=4)) == ["a5", "a4"]
    assert await ids(end=T0 + timedelta(minutes=1)) == ["a0"]
    # a window given in another zone means the same instants
    plus8 = timezone(timedelta(hours=8))
    assert await ids(start=(T0 + timedelta(minutes=5)).astimezone(plus8)) == ["a5"]
    assert [
        r.instance_id
        for r in await store.list(agent_id="agent-b", owner=None, start=None, end=None, offset=0, limit=10)
    ] == ["b0"]


async def test_list_pages_newest_first_ties_by_id(store: InstanceStore) -> None:
    for instance_id in ("c", "a", "b"):
        await store.add(make_record(instance_id, created_at=T0))
    await store.add(make_record("z", created_at=T0 + timedelta(microseconds=1)))
    await store.add(make_record("y", created_at=T0 - timedelta(microseconds=1)))

    pages = [
        [
            r.instance_id
            for r in await store.list(
                agent_id="agent-a", owner=None, start=None, end=None, offset=offset, limit=2
            )
        ]
        for offset in (0, 2, 4, 6)
    ]

    assert pages == [["z", "a"], ["b", "c"], ["y"], []]


async def test_list_rejects_negative_paging(store: InstanceStore) -> None:
    with pytest.raises(ValueError, match="negative"):
        await store.list(agent_id="agent-a", owner=None, start=None, end=None, offset=-1, limit=10)


async def test_finish_unfinished(store: InstanceStore) -> None:
    done = make_record("done", status="Finished", call_end_at=T0, hangup_role=1, modified_at=T0)
    await store.add(done)
    await store.add(make_record("created", status="Created"))
    await store.add(make_record("running", status="Executing", call_start_at=T0))
    now = T0 + timedelta(hours=1)

    assert len(await store.finish_unfinished(now)) == 2

    assert await store.get("done") == done
    for instance_id, call_start_at in (("created", None), ("running", T0)):
        got = await store.get(instance_id)
        assert got == make_record(
            instance_id,
            status="Finished",
            call_start_at=call_start_at,
            call_end_at=now,
            hangup_role=2,
            modified_at=now,
        )
    assert await store.finish_unfinished(now) == []


async def test_data_survives_restart(tmp_path: Path) -> None:
    url = database_url_for_dir(tmp_path)
    record = make_record(agent_config={"Ωmega": ["ß", {"ключ": "值"}]}, status="Executing")
    first = open_database(url)
    try:
        await create_schema(first)
        await InstanceStore(first).add(record)
    finally:
        await first.dispose()

    second = open_database(url)
    try:
        await create_schema(second)  # idempotent on an existing database
        store = InstanceStore(second)
        assert await store.get("i-1") == record
        assert len(await store.finish_unfinished(T0 + timedelta(hours=1))) == 1
    finally:
        await second.dispose()
    assert (tmp_path / "herald.db").exists()


async def test_sqlite_pragmas(sqlite_engine: AsyncEngine) -> None:
    engine = sqlite_engine
    async with engine.connect() as conn:
        values = [
            (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        ]
    assert values == ["wal", 1, 5000, 1]  # synchronous NORMAL is 1


async def test_sqlite_index_on_agent_and_created_at(sqlite_engine: AsyncEngine) -> None:
    engine = sqlite_engine
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql("PRAGMA index_info('ix_instances_agent_created')")).mappings()
        assert [row["name"] for row in rows] == ["agent_id", "created_at"]


def test_database_url_for_dir(tmp_path: Path) -> None:
    assert database_url_for_dir(tmp_path) == f"sqlite+aiosqlite:///{tmp_path}/herald.db"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/herald.db", "sqlite+aiosqlite:///data/herald.db"),
        ("sqlite:////abs/herald.db", "sqlite+aiosqlite:////abs/herald.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@db:5432/herald", "postgresql+asyncpg://u:p@db:5432/herald"),
        ("postgres://u:p@db/herald", "postgresql+asyncpg://u:p@db/herald"),
        ("postgresql+asyncpg://u@db/herald", "postgresql+asyncpg://u@db/herald"),
    ],
)
def test_url_mapping(given: str, expected: str) -> None:
    assert to_async_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://root:s3cret@db/herald", "postgresql+psycopg://u:s3cret@db/x"])
def test_unsupported_scheme_names_it_without_password(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme") as caught:
        open_database(url)
    message = str(caught.value)
    assert url.split(":", 1)[0] in message
    assert "sqlite" in message
    assert "postgresql" in message
    assert "s3cret" not in message


def test_unparseable_url_is_value_error_without_echo() -> None:
    with pytest.raises(ValueError, match="could not be parsed") as caught:
        open_database("not a url with s3cret")
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_in_memory_sqlite_works() -> None:
    engine = open_database("sqlite://")
    try:
        await create_schema(engine)
        store = InstanceStore(engine)
        await store.add(make_record())
        assert await store.get("i-1") == make_record()
    finally:
        await engine.dispose()
