"""``GET /v1/instances/{InstanceId}/events``: an instance's events as Server-Sent Events.

Each event is ``id: <seq>``, ``event: <name>``, ``data: <the callback body>``. A client that reconnects
with ``Last-Event-ID`` (or ``?lastEventId=``) gets every event after that one from the outbox, then the
live ones: nothing is missed and nothing repeated. The stream ends after the instance's ``agent_stop``.
Authorisation: a request signed like the API (ACS3-HMAC-SHA256, by a key of the instance's account
whose policies allow ``ice:DescribeAIAgentInstanceEvents``), or ``Authorization: Bearer <call token>``
of the instance's channel.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from herald import ids
from herald.api.access import admit, authenticate, relative_id
from herald.api.envelope import error_response
from herald.api.signed import signed_request
from herald.errors import HeraldError, InstanceNotFound, InternalError, InvalidParameter
from herald.events.bus import NEW_IN_OUTBOX
from herald.events.model import EventName
from herald.runtime import Runtime
from herald.store.records import EventRecord, InstanceRecord

_log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
EVENTS_ACTION = "DescribeAIAgentInstanceEvents"
"""The action name policies use for following an instance's events (``ice:DescribeAIAgentInstanceEvents``)."""
PAGE = 500


async def instance_events(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    request_id = ids.request_id()
    try:
        record = await _authorize(request, runtime, request.path_params["instance_id"])
        after = _last_event_id(request)
    except HeraldError as exc:
        return error_response(exc, request_id)
    except Exception:
        _log.exception("event stream request %s failed", request_id)
        return error_response(InternalError("An internal error occurred; it has been logged."), request_id)
    return StreamingResponse(
        _stream(runtime, record, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "x-acs-request-id": request_id},
    )


async def _authorize(request: Request, runtime: Runtime, instance_id: str) -> InstanceRecord:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        record = await runtime.instances.find(instance_id)
        if record is None:
            raise InstanceNotFound(f"The instance {instance_id!r} does not exist.")
        runtime.tokens.verify(credentials.strip(), channel_id=record.channel_id, now=runtime.clock.now())
        return record
    key = await authenticate(runtime, await signed_request(request))
    admit(runtime, key, EVENTS_ACTION, relative_id(instance_id=instance_id), request)
    return await runtime.instances.get(key.account_id, instance_id)


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidParameter(
            "Last-Event-ID", f"must be the id of an event (a whole number), got {raw[:32]!r}."
        )
    return int(raw)


async def _stream(runtime: Runtime, record: InstanceRecord, after: int) -> AsyncIterator[str]:
    bus = runtime.events
    with bus.subscribe(record.instance_id) as live:
        await bus.flush()  # what has happened so far is in the outbox
        last = after
        async for event in _from_outbox(runtime, record.instance_id, last):
            yield _format(event)
            last = event.seq or last
            if event.name == EventName.AGENT_STOP:
                return
        while True:  # then as they happen
            try:
                item = await asyncio.wait_for(live.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                item = NEW_IN_OUTBOX  # a look at the outbox now and then, should a notice have been lost
                yield ": keep-alive\n\n"
            if item is None:  # fell too far behind: the client resumes from its last id
                return
            # Written by this node: the event itself. By another (a cluster): a notice to read the outbox.
            events = [item] if isinstance(item, EventRecord) else await _read_all(runtime, record, last)
            for event in events:
                if event.seq is None or event.seq <= last:
                    continue
                yield _format(event)
                last = event.seq
                if event.name == EventName.AGENT_STOP:
                    return


async def _from_outbox(runtime: Runtime, instance_id: str, after: int) -> AsyncIterator[EventRecord]:
    """Every event of the instance after ``after`` in the outbox, page by page."""
    last = after
    while True:
        page = await runtime.events.store.after(instance_id, last, limit=PAGE)
        for event in page:
            yield event
            last = event.seq or last
        if len(page) < PAGE:
            return


async def _read_all(runtime: Runtime, record: InstanceRecord, after: int) -> list[EventRecord]:
    return [event async for event in _from_outbox(runtime, record.instance_id, after)]


def _format(event: EventRecord) -> str:
    data = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.name}\ndata: {data}\n\n"
