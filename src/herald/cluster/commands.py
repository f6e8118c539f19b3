"""``CommandBus``: an action on an instance of another node, carried there and answered, over Redis Streams.

Each node reads its own stream (``Keys.commands``) in the consumer group ``exec`` and acknowledges a command
only once it has run and its answer is recorded (``Keys.done``, ten minutes): a command delivered again
(the node restarted before acknowledging) is answered from that record, not run a second time, and one
whose sender has given up (past its deadline) is not run at all. Answers go back on the sender's own
stream (``Keys.replies``), read by one task that hands each to the request waiting for it.

Commands for one instance run in the order they arrived; different instances' commands run concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from herald.api.envelope import status_for
from herald.api.outage import as_unavailable
from herald.clock import Clock
from herald.cluster.keys import Keys
from herald.errors import BadRequest, HeraldError, InternalError, NotFound, ServiceUnavailable

_log = logging.getLogger(__name__)

GROUP = "exec"
STREAM_MAXLEN = 10_000
DONE_TTL_S = 600
READ_BLOCK_MS = 1000
READ_COUNT = 100

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Runs one command (``op``, ``body``) on this node; returns its result or raises ``HeraldError``."""


class CommandBus:
    def __init__(
        self,
        redis: Redis,
        blocking: Redis,
        keys: Keys,
        node_id: str,
        clock: Clock,
        *,
        timeout_s: float,
        handler: Handler,
    ) -> None:
        self._redis = redis
        self._blocking = blocking
        self._keys = keys
        self._node_id = node_id
        self._clock = clock
        self._timeout_s = timeout_s
        self._handler = handler
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._chains: dict[str, asyncio.Task[None]] = {}
        """The last command task of each instance: the next one waits for it (order per instance)."""

    # ---- sending ----

    async def send(self, node_id: str, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run ``op`` on ``node_id`` and return its result; its ``HeraldError`` is raised here, the same code.

        No answer within the timeout (the node is dead or Redis is away) is ``ServiceUnavailable``.
        """
        command_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        deadline_ms = self._now_ms() + int(self._timeout_s * 1000)
        try:
            await self._redis.xadd(
                self._keys.commands(node_id),
                {
                    "id": command_id,
                    "from": self._node_id,
                    "op": op,
                    "body": json.dumps(body, ensure_ascii=False),
                    "deadline_ms": deadline_ms,
                },
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
            async with asyncio.timeout(self._timeout_s):
                reply = await future
        except TimeoutError:
            raise ServiceUnavailable(
                f"The node {node_id} running the instance did not answer within {self._timeout_s:g} s; "
                "retry later."
            ) from None
        finally:
            self._waiting.pop(command_id, None)
        error = reply.get("error")
        if error is not None:
            raise remote_error(error)
        result: dict[str, Any] = reply.get("ok") or {}
        return result

    async def read_replies(self) -> None:
        """Hand each answer to the request waiting for it, until cancelled."""
        stream = self._keys.replies(self._node_id)
        last_id = "$"
        while True:
            try:
                batches = await self._blocking.xread({stream: last_id}, count=READ_COUNT, block=READ_BLOCK_MS)
            except Exception as exc:
                _log.debug("reading replies failed (%s); retrying", exc)
                await asyncio.sleep(0.2)
                continue
            for entry_id, fields in stream_entries(batches):
                last_id = entry_id
                future = self._waiting.get(fields.get("id", ""))
                if future is not None and not future.done():
                    future.set_result(json.loads(fields.get("reply", "{}")))

    # ---- running ----

    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self._redis.xgroup_create(self._keys.commands(self._node_id), GROUP, id="$", mkstream=True)

    async def serve(self) -> None:
        """Run the commands sent to this node, until cancelled: first any delivered to an earlier run of
        this node and never acknowledged, then new ones."""
        stream = self._keys.commands(self._node_id)
        position = "0"  # this consumer's pending entries first
        while True:
            try:
                batches = await self._blocking.xreadgroup(
                    GROUP, self._node_id, {stream: position}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis restarted empty: make the group again
                    await self.ensure_group()
                    continue
                raise
            except Exception as exc:
                _log.debug("reading commands failed (%s); retrying", exc)
                await asyncio.sleep(0.2)
                continue
            entries = stream_entries(batches)
            if position == "0" and not entries:
                position = ">"
            for entry_id, fields in entries:
                if position == "0":
                    _log.info("answering command %s left from an earlier run of this node", fields.get("id"))
                self._schedule(entry_id, fields)

    def _schedule(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            body = json.loads(fields.get("body", "{}"))
        except ValueError:
            body = {}
        chain_key = str(body.get("instance_id") or entry_id)
        previous = self._chains.get(chain_key)
        task = asyncio.create_task(self._run(entry_id, fields, body, previous), name=f"command-{chain_key}")
        self._chains[chain_key] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._chains.get(chain_key) is t:
                del self._chains[chain_key]
            if not t.cancelled() and t.exception() is not None:
                _log.error("command %s failed", fields.get("id"), exc_info=t.exception())

        task.add_done_callback(done)

    async def _run(
        self, entry_id: str, fields: dict[str, str], body: dict[str, Any], previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        command_id = fields.get("id", entry_id)
        sender = fields.get("from", "")
        recorded = await self._redis.get(self._keys.done(command_id))
        if recorded is not None:
            reply_text = str(recorded)
        else:
            reply_text = json.dumps(await self._answer(fields, body), ensure_ascii=False)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.done(command_id), reply_text, ex=DONE_TTL_S)
            if sender:
                pipe.xadd(
                    self._keys.replies(sender),
                    {"id": command_id, "reply": reply_text},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.xack(self._keys.commands(self._node_id), GROUP, entry_id)
            await pipe.execute()

    async def _answer(self, fields: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        op = fields.get("op", "")
        try:
            deadline_ms = int(fields.get("deadline_ms", "0"))
        except ValueError:
            deadline_ms = 0
        if self._now_ms() > deadline_ms:
            error = ServiceUnavailable(
                "The command arrived after its sender stopped waiting; it was not run."
            )
            return {"error": error_fields(error)}
        try:
            return {"ok": await self._handler(op, body)}
        except HeraldError as exc:
            return {"error": error_fields(exc)}
        except Exception as exc:
            # The database or Redis away here: the sender answers 503, as a single node would, not 500.
            outage = as_unavailable(exc)
            if outage is not None:
                _log.warning("command %s (%s): %s (%s)", fields.get("id"), op, outage.message, exc)
                return {"error": error_fields(outage)}
            _log.exception("command %s (%s) failed", fields.get("id"), op)
            return {"error": error_fields(InternalError("An internal error occurred; it has been logged."))}

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)


def stream_entries(result: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XREAD or XREADGROUP answer, in either protocol's shape (RESP2 list, RESP3 map)."""
    pages = result.values() if isinstance(result, dict) else [page for _stream, page in result or []]
    return [(str(entry_id), dict(fields or {})) for page in pages for entry_id, fields in page]


def error_fields(error: HeraldError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "status": status_for(error)}


def remote_error(fields: dict[str, Any]) -> HeraldError:
    """The error another node answered, as this node raises it: the same code, message and HTTP status."""
    code, message = str(fields.get("code", "InternalError")), str(fields.get("message", ""))
    status = int(fields.get("status", 500))
    if status == 404:
        return NotFound(message, code=code)
    if status == 503:
        return ServiceUnavailable(message, code=code)
    if 400 <= status < 500:
        return BadRequest(message, code=code)
    return HeraldError(message, code=code)
