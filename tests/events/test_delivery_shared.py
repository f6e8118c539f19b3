"""Several processes delivering callbacks from one database (a cluster's nodes) post each event once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from herald.clock import SystemClock
from herald.events.delivery import CallbackDelivery, DeliverySettings
from herald.events.model import AgentEvent, EventName
from herald.store.db import create_schema, open_database
from herald.store.events import EventStore
from herald.store.records import EventRecord

URL = "http://127.0.0.1:9/callback"


class Recorder:
    def __init__(self) -> None:
        self.event_ids: list[str] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        await asyncio.sleep(0.001)
        self.event_ids.append(headers["X-Herald-Event-Id"])
        return 200


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[EventStore, EventStore]]:
    first, second = open_database(database_url), open_database(database_url)
    await create_schema(first)
    yield EventStore(first), EventStore(second)
    await first.dispose()
    await second.dispose()


async def test_two_deliverers_on_one_database_post_every_event_exactly_once(
    stores: tuple[EventStore, EventStore],
) -> None:
    clock = SystemClock()
    records = []
    for i in range(60):
        event = AgentEvent(EventName.AGENT_START, "acct", f"i-{i}", "default", clock.now())
        records.append(
            EventRecord(
                event_id=event.event_id,
                owner=event.owner,
                instance_id=event.instance_id,
                name=event.name.value,
                payload=event.payload(),
                created_at=event.at,
                callback_url=URL,
                callback_token=None,
                delivery="pending",
                next_attempt_at=event.at,
            )
        )
    await stores[0].add_all(records)
    recorders = (Recorder(), Recorder())
    settings = DeliverySettings(concurrency=8, batch=8)
    deliverers = [
        CallbackDelivery(store, rec, clock, settings) for store, rec in zip(stores, recorders, strict=True)
    ]

    async def drain(deliverer: CallbackDelivery) -> None:
        while await deliverer.deliver_due():
            pass

    await asyncio.gather(*(drain(d) for d in deliverers))

    posted = recorders[0].event_ids + recorders[1].event_ids
    assert sorted(posted) == sorted(r.event_id for r in records)  # every one, none twice
    assert (await stores[1].count_by_delivery()) == {"delivered": 60}
