"""The conversation log writes in batches, off the speech path, and readers see every outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from herald.agents.dialogue_log import DialogueLog
from herald.agents.requests import SpeechKind, SpeechRequest
from herald.speech.handle import Outcome, UtteranceState
from herald.store.db import create_schema, database_url_for_dir, open_database
from herald.store.dialogues import DialogueStore
from herald.store.records import DialogueRecord
from herald.testing.clock import VirtualClock


class CountingStore(DialogueStore):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.transactions = 0

    async def add_all(self, records: Sequence[DialogueRecord]) -> None:
        self.transactions += 1
        await super().add_all(records)


def finished(text: str) -> Outcome:
    return Outcome(UtteranceState.FINISHED, 1000, text)


async def test_a_burst_of_outcomes_is_written_in_a_few_transactions(tmp_path: Path) -> None:
    engine = open_database(database_url_for_dir(tmp_path))
    await create_schema(engine)
    store = CountingStore(engine)
    log = DialogueLog(store, VirtualClock(), batch_delay_s=0.01)
    for i in range(300):
        log.record("ak", "s", "i", SpeechRequest(f"r{i}", f"line {i}"), finished(f"line {i}"))
    await asyncio.sleep(0.2)
    assert store.transactions <= 3
    lines = await log.list(
        "ak", "s", start_ms=0, end_ms=2**53, order="ASC", page_number=1, page_size=100, round_limit=None
    )
    assert len(lines) == 100
    await log.close()
    await engine.dispose()


async def test_readers_see_outcomes_at_once_and_close_writes_the_rest(tmp_path: Path) -> None:
    engine = open_database(database_url_for_dir(tmp_path))
    await create_schema(engine)
    log = DialogueLog(DialogueStore(engine), VirtualClock(), batch_delay_s=60)
    log.record("ak", "s", "i", SpeechRequest("r1", "hello"), finished("hello"))
    lines = await log.list(
        "ak", "s", start_ms=0, end_ms=2**53, order="ASC", page_number=1, page_size=10, round_limit=None
    )
    assert [line.text for line in lines] == ["hello"]
    url = SpeechRequest("r2", "https://media.example/a.mp3", kind=SpeechKind.AUDIO_URL)
    log.record("ak", "s", "i", url, Outcome(UtteranceState.FAILED, 0, "", "the server answered HTTP 404"))
    await log.close()
    stored = await DialogueStore(engine).list(
        session_id="s", owner="ak", start_ms=0, end_ms=2**53, order="ASC", offset=0, limit=10
    )
    assert [(d.dialogue_id, d.text, d.extend["Outcome"]) for d in stored] == [
        ("r1", "hello", "finished"),
        ("r2", "", "failed"),  # nothing of the audio was heard
    ]
    await engine.dispose()
