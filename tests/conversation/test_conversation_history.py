"""The LLM's history holds what the user heard, in rounds, with the system prompt first."""

from __future__ import annotations

from herald.conversation.history import INTERRUPTED_MARK, History, HistorySettings
from herald.thinking.llm import ChatMessage


def roles(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_the_request_starts_with_the_system_prompt_then_the_seed_then_the_turns() -> None:
    history = History(
        HistorySettings(
            system_prompt="Be brief.", seed=(ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello"))
        )
    )
    history.add_user("What time is it?")
    assert roles(history.for_request()) == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello"),
        ("user", "What time is it?"),
    ]


def test_an_interrupted_answer_keeps_only_what_was_heard_marked_when_synced() -> None:
    synced = History(HistorySettings(sync_with_tts=True))
    synced.add_user("Tell me a story.")
    synced.add_agent("Once upon a time there", interrupted=True)
    assert synced.messages[-1] == ChatMessage("assistant", f"Once upon a time there{INTERRUPTED_MARK}")

    plain = History(HistorySettings(sync_with_tts=False))
    plain.add_user("Tell me a story.")
    plain.add_agent("Once upon a time there", interrupted=True)
    assert plain.messages[-1] == ChatMessage("assistant", "Once upon a time there")


def test_an_utterance_nobody_heard_is_left_out_unless_its_cut_is_marked() -> None:
    history = History(HistorySettings())
    history.add_user("Hello?")
    history.add_agent("", interrupted=True)
    assert roles(history.messages) == [("user", "Hello?")]


def test_utterances_in_a_row_are_one_agent_turn_in_the_order_heard() -> None:
    history = History(HistorySettings())
    history.add_agent("Your order has shipped.", interrupted=False)
    history.add_user("When does it arrive?")
    history.add_agent("Tomorrow.", interrupted=False)
    history.add_agent("Anything else?", interrupted=False)
    assert roles(history.messages) == [
        ("assistant", "Your order has shipped."),
        ("user", "When does it arrive?"),
        ("assistant", "Tomorrow. Anything else?"),
    ]


def test_only_the_last_rounds_are_sent_but_the_prompt_always_is() -> None:
    history = History(HistorySettings(system_prompt="Be kind.", limit=2))
    for n in range(5):
        history.add_user(f"question {n}")
        history.add_agent(f"answer {n}", interrupted=False)
    history.add_user("question 5")
    sent = roles(history.for_request())
    assert sent[0] == ("system", "Be kind.")
    assert sent[1:] == [
        ("user", "question 3"),
        ("assistant", "answer 3"),
        ("user", "question 4"),
        ("assistant", "answer 4"),
        ("user", "question 5"),
    ]


def test_a_limit_of_zero_sends_only_the_new_message() -> None:
    history = History(HistorySettings(limit=0))
    history.add_user("first")
    history.add_agent("reply", interrupted=False)
    history.add_user("second")
    assert roles(history.for_request()) == [("user", "second")]
