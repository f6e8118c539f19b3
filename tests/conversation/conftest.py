"""Fixtures of the end-to-end conversation tests: per module, one scripted LLM and one server using it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from talk_helpers import ANSWER

from herald.testing.llm_server import Reply, ScriptedLlm
from herald.testing.server import HeraldServer


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLlm]:
    with ScriptedLlm(default=Reply(ANSWER)) as scripted:
        yield scripted


@pytest.fixture(scope="module")
def server(llm: ScriptedLlm) -> Iterator[HeraldServer]:
    with HeraldServer(check_exit=False, config=llm.server_config()) as running:
        yield running


@pytest.fixture
def fresh_llm(llm: ScriptedLlm) -> ScriptedLlm:
    """The module's LLM answering ``ANSWER`` unless a test scripts otherwise."""
    llm.default = Reply(ANSWER)
    return llm
