"""ClientToken: one action per token, the first answer replayed, other parameters refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from herald.api.idempotency import Idempotency, params_hash
from herald.errors import IdempotentParameterMismatch, InvalidParameter
from herald.store.db import create_schema, database_url_for_dir, open_database
from herald.store.idempotency import IdempotencyStore
from herald.testing.clock import VirtualClock


@pytest.fixture
async def idem(tmp_path: Path) -> AsyncIterator[tuple[Idempotency, VirtualClock]]:
    engine = open_database(database_url_for_dir(tmp_path))
    await create_schema(engine)
    clock = VirtualClock()
    yield Idempotency(IdempotencyStore(engine), clock, ttl=timedelta(hours=1)), clock
    await engine.dispose()


class Action:
    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self) -> dict[str, Any]:
        self.runs += 1
        await asyncio.sleep(0.01)
        return {"RequestId": f"req-{self.runs}"}


async def test_a_retry_gets_the_first_answer_and_acts_once(idem: tuple[Idempotency, VirtualClock]) -> None:
    idempotency, _ = idem
    action = Action()
    params = {"InstanceId": "i", "Text": "hi", "ClientToken": "t-1"}
    first = await idempotency.run("ak", "SendAIAgentSpeech", params, action)
    again = await idempotency.run("ak", "SendAIAgentSpeech", dict(reversed(params.items())), action)
    assert first == again == {"RequestId": "req-1"}
    assert action.runs == 1


async def test_concurrent_retries_still_act_once(idem: tuple[Idempotency, VirtualClock]) -> None:
    idempotency, _ = idem
    action = Action()
    params = {"Text": "hi", "ClientToken": "t-2"}
    answers = await asyncio.gather(*(idempotency.run("ak", "A", params, action) for _ in range(5)))
    assert action.runs == 1
    assert all(a == {"RequestId": "req-1"} for a in answers)


async def test_the_same_token_with_other_parameters_is_refused(
    idem: tuple[Idempotency, VirtualClock],
) -> None:
    idempotency, _ = idem
    action = Action()
    await idempotency.run("ak", "A", {"Text": "hi", "ClientToken": "t"}, action)
    with pytest.raises(IdempotentParameterMismatch):
        await idempotency.run("ak", "A", {"Text": "bye", "ClientToken": "t"}, action)
    assert action.runs == 1


async def test_tokens_are_per_key_and_action_and_expire(idem: tuple[Idempotency, VirtualClock]) -> None:
    idempotency, clock = idem
    action = Action()
    params = {"Text": "hi", "ClientToken": "t"}
    await idempotency.run("ak", "A", params, action)
    await idempotency.run("other-key", "A", params, action)
    await idempotency.run("ak", "B", params, action)
    assert action.runs == 3
    await clock.advance(2 * 3600 * 10**9)
    assert await idempotency.run("ak", "A", params, action) == {"RequestId": "req-4"}


async def test_a_failed_attempt_is_not_remembered(idem: tuple[Idempotency, VirtualClock]) -> None:
    idempotency, _ = idem

    async def broken() -> dict[str, Any]:
        raise RuntimeError("instance busy")

    with pytest.raises(RuntimeError):
        await idempotency.run("ak", "A", {"ClientToken": "t"}, broken)
    action = Action()
    assert await idempotency.run("ak", "A", {"ClientToken": "t"}, action) == {"RequestId": "req-1"}


async def test_no_token_means_no_bookkeeping(idem: tuple[Idempotency, VirtualClock]) -> None:
    idempotency, _ = idem
    action = Action()
    await idempotency.run("ak", "A", {"Text": "x"}, action)
    await idempotency.run("ak", "A", {"Text": "x"}, action)
    assert action.runs == 2


@pytest.mark.parametrize("token", ["", "x" * 65, "naïve", "tab\there"])
async def test_malformed_tokens_are_refused(idem: tuple[Idempotency, VirtualClock], token: str) -> None:
    idempotency, _ = idem
    with pytest.raises(InvalidParameter) as caught:
        await idempotency.run("ak", "A", {"ClientToken": token}, Action())
    assert caught.value.parameter == "ClientToken"


def test_the_hash_ignores_order_and_the_token() -> None:
    assert params_hash({"a": "1", "b": "2", "ClientToken": "x"}) == params_hash({"b": "2", "a": "1"})
    assert params_hash({"a": "1"}) != params_hash({"a": "2"})
