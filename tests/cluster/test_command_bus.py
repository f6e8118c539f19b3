"""The command bus on a real Redis: answers and errors come back as they were, a redelivered command is
answered without running again, a stale one is not run, one instance's commands keep their order."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from herald.api.envelope import status_for
from herald.clock import SystemClock
from herald.cluster.commands import GROUP, CommandBus
from herald.cluster.keys import Keys, open_redis
from herald.errors import (
    BadRequest,
    HeraldError,
    IncorrectInstanceStatus,
    InstanceNotFound,
    InvalidParameter,
    NotFound,
    ServiceUnavailable,
)
from herald.testing.cluster import RedisServer, ServiceMissing


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except ServiceMissing as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield server
    server.close()


class Node:
    """A bus of one node, whose handler records what it ran."""

    def __init__(self, url: str, keys: Keys, node_id: str, *, timeout_s: float = 5.0) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.redis = open_redis(url, timeout_s=1.0)
        self.blocking = open_redis(url, timeout_s=None)
        self.delay_s: dict[str, float] = {}
        self.bus = CommandBus(
            self.redis, self.blocking, keys, node_id, SystemClock(), timeout_s=timeout_s, handler=self.handle
        )
        self.tasks: list[asyncio.Task[None]] = []

    async def handle(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(self.delay_s.get(str(body.get("text")), 0))
        self.ran.append((op, body))
        if op == "missing":
            raise InstanceNotFound(f"The instance {body['instance_id']!r} does not exist.")
        if op == "stopped":
            raise IncorrectInstanceStatus("The instance 'i-1' is Finished; it is not running.")
        if op == "bad":
            raise InvalidParameter("Text", "must contain something to say.")
        if op == "no-database":
            raise ConnectionRefusedError(111, "Connection refused")  # asyncpg's, PostgreSQL being down
        if op == "bug":
            raise RuntimeError("a bug")
        return {"echo": body}

    async def start(self) -> Node:
        await self.bus.ensure_group()
        self.tasks = [asyncio.create_task(self.bus.serve()), asyncio.create_task(self.bus.read_replies())]
        await asyncio.sleep(0.05)  # the reply reader is listening
        return self

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.redis.aclose()
        await self.blocking.aclose()


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node, Keys]]:
    keys = Keys(f"bus-{uuid.uuid4().hex[:8]}")
    a = await Node(redis_server.url, keys, "a").start()
    b = await Node(redis_server.url, keys, "b").start()
    yield a, b, keys
    await a.close()
    await b.close()


async def test_a_command_runs_on_the_named_node_and_its_result_comes_back(
    nodes: tuple[Node, Node, Keys],
) -> None:
    a, b, _ = nodes
    result = await a.bus.send("b", "speak", {"instance_id": "i-1", "text": "hello"})
    assert result == {"echo": {"instance_id": "i-1", "text": "hello"}}
    assert b.ran == [("speak", {"instance_id": "i-1", "text": "hello"})]
    assert a.ran == []


@pytest.mark.parametrize(
    ("op", "kind", "code"),
    [
        ("missing", NotFound, "InstanceNotFound"),  # 404, as on the owner
        ("stopped", BadRequest, "IncorrectInstanceStatus"),  # 400
        ("bad", BadRequest, "InvalidParameter"),
    ],
)
async def test_an_error_comes_back_with_its_code_message_and_status_class(
    nodes: tuple[Node, Node, Keys], op: str, kind: type[Exception], code: str
) -> None:
    a, _, _ = nodes
    with pytest.raises(kind) as raised:
        await a.bus.send("b", op, {"instance_id": "i-1"})
    error = raised.value
    assert getattr(error, "code", None) == code
    assert "i-1" in str(error) or op == "bad"


async def test_a_service_away_on_the_running_node_is_service_unavailable_not_an_internal_error(
    nodes: tuple[Node, Node, Keys],
) -> None:
    a, _, _ = nodes
    with pytest.raises(ServiceUnavailable, match="not reachable"):
        await a.bus.send("b", "no-database", {"instance_id": "i-1"})
    with pytest.raises(HeraldError) as raised:
        await a.bus.send("b", "bug", {"instance_id": "i-1"})
    assert (raised.value.code, status_for(raised.value)) == ("InternalError", 500)


async def test_one_instances_commands_run_in_the_order_they_were_sent(nodes: tuple[Node, Node, Keys]) -> None:
    a, b, _ = nodes
    b.delay_s = {"first": 0.3}  # the first one is slow: the second must still wait for it
    await asyncio.gather(
        a.bus.send("b", "speak", {"instance_id": "i-1", "text": "first"}),
        a.bus.send("b", "speak", {"instance_id": "i-1", "text": "second"}),
    )
    assert [body["text"] for _, body in b.ran] == ["first", "second"]


async def test_a_redelivered_command_is_answered_from_its_record_not_run_again(
    nodes: tuple[Node, Node, Keys], redis_server: RedisServer
) -> None:
    a, b, keys = nodes
    await a.bus.send("b", "speak", {"instance_id": "i-1", "text": "once"})
    assert len(b.ran) == 1
    # Redeliver it: the same command id again on b's stream (as after a crash before the acknowledgement).
    client = redis_server.client()
    try:
        [(_entry_id, fields)] = client.xrange(keys.commands("b"))
        client.xadd(keys.commands("b"), fields)
        for _ in range(50):
            pending = client.xpending(keys.commands("b"), GROUP)["pending"]
            if len(client.xrange(keys.commands("b"))) == 2 and pending == 0:
                break
            await asyncio.sleep(0.05)
        assert pending == 0
        replies = client.xrange(keys.replies("a"))
        assert [json.loads(r["reply"]) for _, r in replies][-1] == {
            "ok": {"echo": json.loads(fields["body"])}
        }
    finally:
        client.close()
    assert len(b.ran) == 1  # answered again, but run once


async def test_a_command_arriving_after_its_sender_gave_up_is_not_run(
    nodes: tuple[Node, Node, Keys], redis_server: RedisServer
) -> None:
    _, b, keys = nodes
    client = redis_server.client()
    try:
        body = json.dumps({"instance_id": "i-9", "text": "late"})
        client.xadd(
            keys.commands("b"), {"id": "c-late", "from": "a", "op": "speak", "body": body, "deadline_ms": 1}
        )
        for _ in range(50):
            if client.get(keys.done("c-late")) is not None:
                break
            await asyncio.sleep(0.05)
        assert json.loads(client.get(keys.done("c-late")) or "{}")["error"]["code"] == "ServiceUnavailable"
    finally:
        client.close()
    assert b.ran == []


async def test_no_answer_in_time_is_service_unavailable(redis_server: RedisServer) -> None:
    keys = Keys(f"bus-{uuid.uuid4().hex[:8]}")
    lonely = await Node(redis_server.url, keys, "a", timeout_s=0.5).start()
    try:
        with pytest.raises(ServiceUnavailable, match="did not answer"):
            await lonely.bus.send("nobody", "speak", {"instance_id": "i-1"})
    finally:
        await lonely.close()
