"""OpenAIChat against the scripted OpenAI-compatible server, over real HTTP through SafeFetcher."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

import pytest

from herald.media.fetch import FetchLimits, SafeFetcher
from herald.media.netguard import AddressPolicy
from herald.testing.llm_server import Reply, ScriptedLlm
from herald.thinking.llm import ChatMessage, LlmError, OpenAIChat

KEY = "sk-test-0123456789abcdef"
HISTORY = [
    ChatMessage("system", "You are a helpful voice assistant."),
    ChatMessage("user", "What's the weather?"),
    ChatMessage("assistant", "Sunny, 25 degrees."),
    ChatMessage("user", "And tomorrow?"),
]
TEXT = "Tomorrow looks cloudy, with a chance of rain in the afternoon. Take an umbrella!"

MakeChat = Callable[..., OpenAIChat]


@pytest.fixture
def llm() -> Iterator[ScriptedLlm]:
    with ScriptedLlm() as server:
        yield server


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    fetcher = SafeFetcher(AddressPolicy.from_setting("127.0.0.1"))
    yield fetcher
    await fetcher.aclose()


@pytest.fixture
def make_chat(llm: ScriptedLlm, fetcher: SafeFetcher) -> MakeChat:
    def make(**options: Any) -> OpenAIChat:
        settings: dict[str, Any] = {"first_token_timeout_s": 5.0, "between_tokens_timeout_s": 5.0} | options
        api_key = settings.pop("api_key", KEY)
        return OpenAIChat(llm.base_url, "test-model", api_key, fetcher, **settings)

    return make


async def collect(chat: OpenAIChat, messages: Sequence[ChatMessage] = HISTORY) -> list[str]:
    async with aclosing(chat.reply(messages)) as deltas:
        return [delta async for delta in deltas]


async def read_into(received: list[str], chat: OpenAIChat) -> None:
    async with aclosing(chat.reply(HISTORY)) as deltas:
        async for delta in deltas:
            received.append(delta)


async def failure(chat: OpenAIChat) -> str:
    with pytest.raises(LlmError) as info:
        await collect(chat)
    assert str(info.value) == info.value.reason
    return info.value.reason


async def ended(llm: ScriptedLlm, index: int) -> Any:
    return await asyncio.to_thread(llm.wait_for_request, index, timeout_s=10)


# Streaming


async def test_deltas_arrive_in_order_and_join_to_the_reply(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT, chunk_chars=5, delay_between_s=0.0))

    deltas = await collect(make_chat())

    assert "".join(deltas) == TEXT
    assert all(deltas)  # the role-only first chunk and the empty final one give nothing
    assert deltas[:2] == ["Tomor", "row l"]
    request = await ended(llm, 0)
    assert request.completed
    assert not request.disconnected


async def test_the_first_delta_comes_long_before_the_last(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT, chunk_chars=10, delay_between_s=0.1))  # 8 chunks, 0.7 s from first to last
    arrivals: list[float] = []
    started = time.monotonic()

    async with aclosing(make_chat().reply(HISTORY)) as deltas:
        async for _ in deltas:
            arrivals.append(time.monotonic() - started)

    assert len(arrivals) == 8
    assert arrivals[0] < 0.5
    assert arrivals[-1] - arrivals[0] > 0.5


async def test_the_request_carries_the_history_model_and_key(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    await collect(make_chat(extra_body={"temperature": 0.2, "max_tokens": 100}))

    request = llm.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.messages == [{"role": m.role, "content": m.content} for m in HISTORY]
    assert request.model == "test-model"
    assert request.body["stream"] is True
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 100
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"


async def test_no_key_sends_no_authorization(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    await collect(make_chat(api_key=""))

    assert "authorization" not in llm.requests[0].headers


async def test_a_non_streamed_json_answer_is_one_delta(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT, ignore_stream=True))

    assert await collect(make_chat()) == [TEXT]


async def test_an_empty_reply_gives_no_delta(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(""), Reply("", ignore_stream=True))

    assert await collect(make_chat()) == []
    assert await collect(make_chat()) == []


# Stopping early


async def test_closing_the_reply_early_hangs_up_at_once(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT * 5, chunk_chars=4, delay_between_s=0.05))  # 100 chunks: 5 s

    async with aclosing(make_chat().reply(HISTORY)) as deltas:
        first = await anext(deltas)
    started = time.monotonic()
    request = await ended(llm, 0)

    assert first == "Tomo"
    assert request.disconnected
    assert not request.completed
    assert request.chunks_sent < 10
    assert time.monotonic() - started < 1.0


async def test_a_cancelled_reader_hangs_up_too(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT * 5, chunk_chars=4, delay_between_s=0.05))
    got_one = asyncio.Event()

    async def read() -> None:
        async with aclosing(make_chat().reply(HISTORY)) as deltas:
            async for _ in deltas:
                got_one.set()

    task = asyncio.create_task(read())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (await ended(llm, 0)).disconnected


# Failures


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, f"Incorrect API key provided: {KEY}. You can find your API key at https://example/keys."),
        (429, "Rate limit reached for requests"),
        (500, "The server had an error while processing your request."),
    ],
)
async def test_http_errors_name_status_and_message_but_not_the_key(
    llm: ScriptedLlm, make_chat: MakeChat, status: int, message: str
) -> None:
    llm.script(Reply(message, status=status))

    reason = await failure(make_chat())

    assert reason.startswith(f"the model answered HTTP {status}: ")
    assert message.replace(KEY, "***")[:60] in reason
    assert KEY not in reason
    assert KEY[:12] not in reason


async def test_an_error_body_that_is_not_json_is_quoted_short(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply("", status=502, error_body="<html>\n<h1>Bad   gateway</h1>" + "x" * 1000))

    reason = await failure(make_chat())

    assert reason.startswith("the model answered HTTP 502: <html> <h1>Bad gateway</h1>xxx")
    assert len(reason) < 260


async def test_an_error_without_a_body_names_the_status(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply("", status=503, error_body=b""))

    assert await failure(make_chat()) == "the model answered HTTP 503"


async def test_no_first_token_in_time(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT, delay_first_s=5.0))
    started = time.monotonic()

    reason = await failure(make_chat(first_token_timeout_s=0.3))

    assert reason == "timed out after 0.3 s waiting for the reply to start"
    assert time.monotonic() - started < 2.0
    assert (await ended(llm, 0)).disconnected


async def test_a_stall_mid_reply(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT, stall=True))
    received: list[str] = []

    with pytest.raises(LlmError) as info:
        await read_into(received, make_chat(between_tokens_timeout_s=0.3))

    assert received == [TEXT[:8]]
    assert info.value.reason == "timed out after 0.3 s waiting for more of the reply"
    assert (await ended(llm, 0)).disconnected


async def test_a_slow_consumer_does_not_use_up_the_patience(llm: ScriptedLlm, make_chat: MakeChat) -> None:
    llm.script(Reply(TEXT, chunk_chars=20, delay_between_s=0.0))

    async with aclosing(make_chat(between_tokens_timeout_s=0.3).reply(HISTORY)) as deltas:
        async for _ in deltas:
            await asyncio.sleep(0.4)  # speaking each delta takes longer than the patience


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>Welcome to nginx!</body></html>", "the reply was not a chat-completions stream"),
        (b"data: {not json}\n\n", "the reply was not a chat-completions stream (an event was not JSON"),
        (b'data: {"object": "list"}\n\n', "the reply was not a chat-completions stream (no choices)"),
        (b"{'almost': json}", "the reply was neither a chat-completions stream nor JSON"),
        (b'{"id": "x"}', "the reply was not a chat completion (no choices)"),
        (b"", "the reply was not a chat-completions stream (the body was empty)"),
        (b'data: {"error": {"message": "overloaded"}}\n\n', "the model failed mid-reply: overloaded"),
        (b'{"error": {"message": "quota"}}', "the model failed: quota"),
    ],
)
async def test_a_garbled_answer_fails(
    llm: ScriptedLlm, make_chat: MakeChat, body: bytes, reason: str
) -> None:
    llm.script(Reply("", error_body=body))

    assert (await failure(make_chat())).startswith(reason)


async def test_an_error_event_mid_stream_keeps_what_came_before() -> None:
    body = _sse({"content": "Hello"}) + b'event: error\ndata: {"message": "upstream reset"}\n\n'
    chat = OpenAIChat("http://model.test/v1", "m", KEY, BodyExchange([body]))
    received: list[str] = []

    with pytest.raises(LlmError, match="the model failed mid-reply: upstream reset"):
        await read_into(received, chat)

    assert received == ["Hello"]


async def test_a_refused_address_fails_without_a_request(llm: ScriptedLlm) -> None:
    fetcher = SafeFetcher(AddressPolicy.from_setting(""))
    try:
        chat = OpenAIChat(llm.base_url, "m", KEY, fetcher)
        reason = await failure(chat)
    finally:
        await fetcher.aclose()

    assert reason == "could not get a reply from the model: the address 127.0.0.1 is loopback"
    assert llm.requests == []


async def test_nothing_listening_fails(fetcher: SafeFetcher) -> None:
    chat = OpenAIChat("http://127.0.0.1:9/v1", "m", KEY, fetcher)

    assert (await failure(chat)).startswith("could not get a reply from the model: could not connect")


def test_bad_settings_are_refused(fetcher: SafeFetcher) -> None:
    with pytest.raises(ValueError, match="role"):
        ChatMessage("tool", "x")
    with pytest.raises(ValueError, match="base URL"):
        OpenAIChat("ftp://model.test/v1", "m", KEY, fetcher)
    with pytest.raises(ValueError, match="messages or stream"):
        OpenAIChat("http://model.test/v1", "m", KEY, fetcher, extra_body={"stream": False})


# Parsing the stream, however the network cuts it


def _sse(delta: Mapping[str, Any], finish_reason: str | None = None, newline: str = "\n") -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(chunk, ensure_ascii=False)}{newline}{newline}".encode()


STREAM = b"".join(
    [
        b": keep-alive\r\n\r\n",
        _sse({"role": "assistant", "content": ""}, newline="\r\n"),
        _sse({"content": "Héllo, "}),
        b"event: message\nid: 3\nretry: 1000\n",
        _sse({"content": "wörld — 你好"}, newline="\r"),
        _sse({"content": None}),
        _sse({}, "stop"),
        b'data: {"choices": [], "usage": {"total_tokens": 9}}\n\n',
        b"data: [DONE]\n\n",
        _sse({"content": "after the end"}),
    ]
)
STREAM_TEXTS = ["Héllo, ", "wörld — 你好"]


class FakeAnswer:
    def __init__(self, status_code: int, chunks: list[bytes], hang: bool) -> None:
        self.status_code = status_code
        self._chunks = chunks
        self._hang = hang

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        for chunk in self._chunks:
            yield chunk
        if self._hang:
            await asyncio.Event().wait()


class BodyExchange:
    """Answers every POST with ``chunks`` as the network's pieces (then, with ``hang``, waits forever)."""

    def __init__(self, chunks: list[bytes], *, status: int = 200, hang: bool = False) -> None:
        self.answer = FakeAnswer(status, chunks, hang)

    @asynccontextmanager
    async def exchange(
        self, url: str, body: bytes, headers: Mapping[str, str], *, limits: FetchLimits | None = None
    ) -> AsyncIterator[FakeAnswer]:
        yield self.answer


async def replay(chunks: list[bytes], **options: Any) -> list[str]:
    return await collect(OpenAIChat("http://model.test/v1", "m", KEY, BodyExchange(chunks), **options))


async def test_a_stream_parses_the_same_however_it_is_cut() -> None:
    assert await replay([STREAM]) == STREAM_TEXTS
    assert await replay([STREAM[i : i + 1] for i in range(len(STREAM))]) == STREAM_TEXTS
    for cut in range(1, len(STREAM)):
        assert await replay([STREAM[:cut], STREAM[cut:]]) == STREAM_TEXTS, cut


async def test_a_stream_may_end_without_done_or_a_final_newline() -> None:
    body = _sse({"content": "one "}) + _sse({"content": "two"}).rstrip(b"\n")

    assert await replay([body]) == ["one ", "two"]


async def test_a_finished_reply_whose_done_never_comes_ends_quietly() -> None:
    body = _sse({"content": "All done."}) + _sse({}, "stop")

    assert await replay([body], between_tokens_timeout_s=0.2) == ["All done."]


async def test_keep_alives_do_not_count_as_text() -> None:
    exchange = BodyExchange([b": ping\n\n", _sse({"role": "assistant"})], hang=True)
    chat = OpenAIChat("http://model.test/v1", "m", KEY, exchange, first_token_timeout_s=0.2)

    with pytest.raises(LlmError, match="waiting for the reply to start"):
        await collect(chat)


# The scripted server's own wire format, as an OpenAI client sees it


async def test_the_server_streams_openai_chunks(llm: ScriptedLlm, fetcher: SafeFetcher) -> None:
    llm.script(Reply("Hi there!", chunk_chars=4, delay_between_s=0.0))
    body = json.dumps({"model": "m-1", "messages": [], "stream": True}).encode()

    async with fetcher.exchange(llm.base_url + "/chat/completions", body, {}) as answer:
        raw = b"".join([chunk async for chunk in answer.chunks()]).decode()

    assert answer.status_code == 200
    assert answer.content_type == "text/event-stream; charset=utf-8"
    events = [event.removeprefix("data: ") for event in raw.split("\n\n") if event]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"m-1"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi t"},
        {"content": "here"},
        {"content": "!"},
        {},
    ]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, None, "stop"]


async def test_the_server_answers_json_unless_asked_to_stream(llm: ScriptedLlm, fetcher: SafeFetcher) -> None:
    llm.default = Reply("Plain answer.")
    body = json.dumps({"model": "m-1", "messages": [{"role": "user", "content": "hi"}]}).encode()

    async with fetcher.exchange(llm.base_url + "/chat/completions", body, {}) as answer:
        reply = json.loads(b"".join([chunk async for chunk in answer.chunks()]))

    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "Plain answer."}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert (await ended(llm, 0)).completed


async def test_the_server_takes_its_script_in_order_then_the_default(
    llm: ScriptedLlm, make_chat: MakeChat
) -> None:
    llm.script("One.", Reply("Two."))
    llm.default = "Again."
    chat = make_chat()

    replies = ["".join(await collect(chat)) for _ in range(4)]

    assert replies == ["One.", "Two.", "Again.", "Again."]
    assert len(llm.requests) == 4
