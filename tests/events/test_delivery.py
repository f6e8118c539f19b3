"""``CallbackDelivery``: the outbox's pending events POSTed, retried on a backoff schedule, settled.

The outbox is a real SQLite database; the poster is a fake that answers what each test tells it. Time is
virtual (``VirtualClock``) where the schedule is checked, and real where ``run()`` is left to work alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from herald.clock import Clock, SystemClock
from herald.events.delivery import CallbackDelivery, DeliverySettings
from herald.events.model import AgentEvent, EventName
from herald.media.fetch import FetchError
from herald.observability.metrics import REGISTRY
from herald.store.db import create_schema, database_url_for_dir, open_database
from herald.store.events import EventStore
from herald.store.records import EventRecord
from herald.testing.clock import VirtualClock

URL = "https://hooks.example.com/herald"
SECOND_NS = 1_000_000_000


@dataclass
class Post:
    url: str
    body: bytes
    headers: dict[str, str]
    at_s: float


@dataclass
class FakePoster:
    """Answers each POST with the next of ``answers`` (the last one repeats): a status, an exception to
    raise, or ``HANG`` (never answers)."""

    answers: Sequence[int | BaseException | str] = (200,)
    posts: list[Post] = field(default_factory=list)
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.posts.append(Post(url, body, dict(headers), time.monotonic()))
        answer = self.answers[min(len(self.posts), len(self.answers)) - 1]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if answer == HANG:
                await asyncio.Event().wait()
            if isinstance(answer, BaseException):
                raise answer
            assert isinstance(answer, int)
            return answer
        finally:
            self.in_flight -= 1

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(p.body) for p in self.posts]


HANG = "hang"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    engine = open_database(database_url_for_dir(tmp_path))
    await create_schema(engine)
    yield EventStore(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


async def add_event(
    store: EventStore,
    clock: Clock,
    *,
    url: str | None = URL,
    token: str | None = "tok-1",
    name: EventName = EventName.AGENT_START,
    instance_id: str = "i-1",
) -> EventRecord:
    """An event written to the outbox as the bus writes it: pending and due now (if it has a URL)."""
    event = AgentEvent(
        name=name,
        owner="AK-1",
        instance_id=instance_id,
        agent_id="default",
        at=clock.now(),
        data={"channelId": "ch-1"},
        user_data="ud",
    )
    record = EventRecord(
        event_id=event.event_id,
        owner=event.owner,
        instance_id=event.instance_id,
        name=event.name.value,
        payload=event.payload(),
        created_at=event.at,
        callback_url=url,
        callback_token=token if url else None,
        delivery="pending" if url else "none",
        next_attempt_at=event.at if url else None,
    )
    await store.add_all([record])
    return record


async def state(store: EventStore, record: EventRecord) -> EventRecord:
    found = await store.get(record.event_id)
    assert found is not None
    return found


def deliveries(outcome: str) -> float:
    value = REGISTRY.get_sample_value("herald_callback_deliveries_total", {"outcome": outcome})
    return value or 0.0


# -- settings ------------------------------------------------------------------------------------------


def test_the_wait_doubles_from_the_first_retry_up_to_the_cap() -> None:
    settings = DeliverySettings(first_retry_s=1.0, max_retry_s=10.0)
    assert [settings.retry_after_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]


@pytest.mark.parametrize(
    "name", ["max_attempts", "first_retry_s", "max_retry_s", "timeout_s", "concurrency", "batch"]
)
@pytest.mark.parametrize("value", [0, -1])
def test_every_setting_must_be_positive(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        DeliverySettings(**{name: value})  # type: ignore[arg-type]


# -- one attempt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299])
async def test_a_2xx_answer_delivers_the_event(store: EventStore, clock: VirtualClock, status: int) -> None:
    poster = FakePoster([status])
    delivery = CallbackDelivery(store, poster, clock)
    record = await add_event(store, clock)
    await clock.advance(SECOND_NS // 10)

    assert await delivery.deliver_due() is True
    saved = await state(store, record)
    assert (saved.delivery, saved.attempts, saved.last_error) == ("delivered", 1, None)
    assert saved.delivered_at == clock.now()
    assert saved.next_attempt_at is None
    assert await delivery.deliver_due() is False, "a delivered event was due again"
    await clock.advance(3600 * SECOND_NS)
    assert await delivery.deliver_due() is False
    assert len(poster.posts) == 1


async def test_the_post_carries_the_body_the_token_and_the_event_id(
    store: EventStore, clock: VirtualClock
) -> None:
    poster = FakePoster()
    delivery = CallbackDelivery(store, poster, clock)
    with_token = await add_event(store, clock, token="s3cret")
    without = await add_event(store, clock, token=None, instance_id="i-2")

    await delivery.deliver_due()
    by_id = {p.headers["X-Herald-Event-Id"]: p for p in poster.posts}
    assert set(by_id) == {with_token.event_id, without.event_id}
    for record in (with_token, without):
        post = by_id[record.event_id]
        assert post.url == URL
        assert json.loads(post.body) == record.payload
        assert post.headers["Content-Type"] == "application/json"
    assert by_id[with_token.event_id].headers["Authorization"] == "s3cret"
    assert "Authorization" not in by_id[without.event_id].headers


async def test_an_event_without_a_callback_is_never_posted(store: EventStore, clock: VirtualClock) -> None:
    poster = FakePoster()
    delivery = CallbackDelivery(store, poster, clock)
    record = await add_event(store, clock, url=None)
    await clock.advance(SECOND_NS)

    assert await delivery.deliver_due() is False
    assert poster.posts == []
    assert (await state(store, record)).delivery == "none"


# -- retries -------------------------------------------------------------------------------------------


async def test_failures_are_retried_on_the_backoff_schedule(store: EventStore, clock: VirtualClock) -> None:
    settings = DeliverySettings(max_attempts=6, first_retry_s=1.0, max_retry_s=3.0)
    poster = FakePoster([500])
    delivery = CallbackDelivery(store, poster, clock, settings)
    record = await add_event(store, clock)

    waits: list[timedelta] = []
    for attempt in range(1, 6):
        assert await delivery.deliver_due() is True
        saved = await state(store, record)
        assert (saved.delivery, saved.attempts) == ("pending", attempt)
        assert saved.last_error == "the receiver answered HTTP 500"
        assert saved.next_attempt_at is not None
        wait = saved.next_attempt_at - clock.now()
        waits.append(wait)
        assert await store.next_due_at() == saved.next_attempt_at
        await clock.advance(int(wait.total_seconds() * SECOND_NS) - 1_000_000)  # 1 ms early
        assert await delivery.deliver_due() is False, f"attempt {attempt + 1} came early"
        await clock.advance(1_000_000)
    assert [w.total_seconds() for w in waits] == [1, 2, 3, 3, 3]
    assert len(poster.posts) == 5
    assert {p.headers["X-Herald-Event-Id"] for p in poster.posts} == {record.event_id}
    assert len({p.body for p in poster.posts}) == 1, "a retry changed the body"


async def test_after_max_attempts_the_event_is_failed_with_the_last_error(
    store: EventStore, clock: VirtualClock
) -> None:
    settings = DeliverySettings(max_attempts=3, first_retry_s=1.0)
    poster = FakePoster([500, 503, 404])
    delivery = CallbackDelivery(store, poster, clock, settings)
    record = await add_event(store, clock)
    failed_before, retried_before = deliveries("failed"), deliveries("retried")

    for _ in range(3):
        await delivery.deliver_due()
        await clock.advance(10 * SECOND_NS)
    saved = await state(store, record)
    assert (saved.delivery, saved.attempts) == ("failed", 3)
    assert saved.last_error == "the receiver answered HTTP 404"
    assert saved.next_attempt_at is None
    assert saved.delivered_at is None
    assert await store.next_due_at() is None
    await clock.advance(3600 * SECOND_NS)
    assert await delivery.deliver_due() is False
    assert len(poster.posts) == 3
    assert deliveries("failed") - failed_before == 1
    assert deliveries("retried") - retried_before == 2


async def test_a_success_after_failures_delivers_and_clears_the_error(
    store: EventStore, clock: VirtualClock
) -> None:
    poster = FakePoster([502, 200])
    delivery = CallbackDelivery(store, poster, clock, DeliverySettings(first_retry_s=2.0))
    record = await add_event(store, clock)

    await delivery.deliver_due()
    await clock.advance(2 * SECOND_NS)
    await delivery.deliver_due()
    saved = await state(store, record)
    assert (saved.delivery, saved.attempts, saved.last_error) == ("delivered", 2, None)


async def test_a_timeout_counts_as_a_failed_attempt(store: EventStore, clock: VirtualClock) -> None:
    settings = DeliverySettings(max_attempts=2, timeout_s=0.05, first_retry_s=1.0)
    poster = FakePoster([HANG])
    delivery = CallbackDelivery(store, poster, clock, settings)
    record = await add_event(store, clock)

    started = time.monotonic()
    await delivery.deliver_due()
    assert time.monotonic() - started < 2.0
    saved = await state(store, record)
    assert (saved.delivery, saved.attempts) == ("pending", 1)
    assert saved.last_error == "no answer within 0.05 s"

    await clock.advance(SECOND_NS)
    await delivery.deliver_due()
    saved = await state(store, record)
    assert (saved.delivery, saved.attempts, saved.last_error) == ("failed", 2, "no answer within 0.05 s")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (FetchError("the address 169.254.169.254 is a cloud metadata address"), "metadata address"),
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (RuntimeError(), "RuntimeError"),
    ],
)
async def test_a_failure_to_get_an_answer_is_a_failed_attempt_with_its_reason(
    store: EventStore, clock: VirtualClock, error: BaseException, reason: str
) -> None:
    poster = FakePoster([error])
    delivery = CallbackDelivery(store, poster, clock, DeliverySettings(max_attempts=1))
    record = await add_event(store, clock)

    await delivery.deliver_due()
    saved = await state(store, record)
    assert saved.delivery == "failed"
    assert saved.last_error is not None
    assert reason in saved.last_error


# -- many events ---------------------------------------------------------------------------------------


async def test_at_most_concurrency_attempts_are_in_flight(store: EventStore, clock: VirtualClock) -> None:
    poster = FakePoster(delay_s=0.02)
    delivery = CallbackDelivery(store, poster, clock, DeliverySettings(concurrency=2))
    records = [await add_event(store, clock, instance_id=f"i-{n}") for n in range(6)]

    while await delivery.deliver_due():
        pass
    assert poster.max_in_flight == 2
    assert {(await state(store, r)).delivery for r in records} == {"delivered"}


async def test_one_pass_takes_at_most_one_batch_the_oldest_first(
    store: EventStore, clock: VirtualClock
) -> None:
    poster = FakePoster()
    delivery = CallbackDelivery(store, poster, clock, DeliverySettings(batch=3, concurrency=5))
    records = []
    for n in range(5):
        records.append(await add_event(store, clock, instance_id=f"i-{n}"))
        await clock.advance(SECOND_NS)

    assert await delivery.deliver_due() is True
    assert [p.headers["X-Herald-Event-Id"] for p in poster.posts] == [r.event_id for r in records[:3]]
    assert await delivery.deliver_due() is True
    assert len(poster.posts) == 5
    assert await delivery.deliver_due() is False


async def test_a_new_delivery_resumes_where_the_last_one_stopped(
    store: EventStore, clock: VirtualClock
) -> None:
    """The state is in the database: a restarted server (a new ``CallbackDelivery``) retries on time."""
    settings = DeliverySettings(first_retry_s=5.0)
    first = CallbackDelivery(store, FakePoster([500]), clock, settings)
    record = await add_event(store, clock)
    await first.deliver_due()

    poster = FakePoster([200])
    second = CallbackDelivery(store, poster, clock, settings)
    assert await second.deliver_due() is False, "the retry came before its time"
    await clock.advance(5 * SECOND_NS)
    assert await second.deliver_due() is True
    saved = await state(store, record)
    assert (saved.delivery, saved.attempts) == ("delivered", 2)
    assert len(poster.posts) == 1


# -- run() on the real clock ---------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_run_delivers_when_woken_and_retries_on_schedule(store: EventStore) -> None:
    clock = SystemClock()
    settings = DeliverySettings(first_retry_s=0.1, max_retry_s=1.0)
    poster = FakePoster([500, 500, 200])
    delivery = CallbackDelivery(store, poster, clock, settings)
    task = asyncio.create_task(delivery.run())
    try:
        await asyncio.sleep(0.05)  # run() is asleep: nothing is pending
        record = await add_event(store, clock)
        delivery.wake()

        async def delivered() -> bool:
            return (await state(store, record)).delivery == "delivered"

        await wait_for(delivered)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    times = [p.at_s for p in poster.posts]
    assert len(times) == 3
    first_gap_s, second_gap_s = times[1] - times[0], times[2] - times[1]
    assert first_gap_s >= 0.1 * 0.9
    assert second_gap_s >= 0.2 * 0.9


async def test_a_hanging_receiver_does_not_hold_back_another_receivers_events(store: EventStore) -> None:
    clock = SystemClock()
    slow_url = "https://slow.example.com/hook"

    class Poster(FakePoster):
        async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
            if url == slow_url:
                await asyncio.Event().wait()  # until the timeout
            return await super().post(url, body, headers)

    poster = Poster()
    delivery = CallbackDelivery(store, poster, clock, DeliverySettings(timeout_s=2.0, concurrency=8))
    task = asyncio.create_task(delivery.run())
    try:
        await add_event(store, clock, url=slow_url)
        delivery.wake()
        await asyncio.sleep(0.1)  # its attempt is hanging now
        healthy = await add_event(store, clock, instance_id="i-2")
        delivery.wake()
        added = time.monotonic()

        async def delivered() -> bool:
            return (await state(store, healthy)).delivery == "delivered"

        await wait_for(delivered)
        assert time.monotonic() - added < 1.0, "the healthy event waited for the hanging one's timeout"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_an_attempt_cut_short_by_shutdown_hands_its_lease_back(store: EventStore) -> None:
    """Stopping the server mid-attempt leaves the event due at once, so the next start retries it without
    waiting out the lease (the attempt's timeout and more); the cut attempt is not counted."""
    clock = SystemClock()
    poster = FakePoster([HANG])
    delivery = CallbackDelivery(store, poster, clock, DeliverySettings(timeout_s=30.0))
    record = await add_event(store, clock)
    task = asyncio.create_task(delivery.run())
    await wait_for(lambda: asyncio.sleep(0, bool(poster.posts)))
    leased = await state(store, record)
    assert leased.next_attempt_at is not None
    assert leased.next_attempt_at > clock.now() + timedelta(seconds=29)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    released = await state(store, record)
    assert (released.delivery, released.attempts) == ("pending", 0)
    assert released.next_attempt_at is not None
    assert released.next_attempt_at <= clock.now()
    due_again = await store.claim_due(clock.now(), lease_until=clock.now(), limit=10)
    assert [r.event_id for r in due_again] == [record.event_id]


async def test_run_outlives_a_database_that_is_away(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the outbox fails for a while (PostgreSQL is away): ``run()`` keeps retrying, and delivers
    what is pending once the database answers again."""
    clock = SystemClock()
    poster = FakePoster()
    delivery = CallbackDelivery(store, poster, clock)
    record = await add_event(store, clock)
    claim_due, next_due_at = store.claim_due, store.next_due_at

    async def away(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("the database is away")

    monkeypatch.setattr(store, "claim_due", away)
    monkeypatch.setattr(store, "next_due_at", away)
    task = asyncio.create_task(delivery.run())
    try:
        await asyncio.sleep(1.5)  # a failed pass, the wait of a second, and a second pass
        assert not task.done(), task
        assert poster.posts == []
        monkeypatch.setattr(store, "claim_due", claim_due)
        monkeypatch.setattr(store, "next_due_at", next_due_at)

        async def delivered() -> bool:
            return (await state(store, record)).delivery == "delivered"

        await wait_for(delivered)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
