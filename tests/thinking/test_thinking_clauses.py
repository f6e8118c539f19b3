"""ClauseBuffer: clauses out of a streamed reply, as early as is certain, the same however it is cut."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.speech.text import split_for_streaming
from herald.thinking.clauses import ClauseBuffer


def feed(deltas: list[str], **options: Any) -> list[str]:
    buffer = ClauseBuffer(**options)
    pieces: list[str] = []
    for delta in deltas:
        pieces += buffer.push(delta)
    return pieces + buffer.flush()


def cut(text: str, rng: random.Random, max_chars: int = 7) -> list[str]:
    deltas: list[str] = []
    start = 0
    while start < len(text):
        size = rng.randint(1, max_chars)
        deltas.append(text[start : start + size])
        start += size
    return deltas


def rejoin(pieces: list[str], norm: str) -> bool:
    """Whether ``pieces`` read back ``norm``, joined by one space or, where a cut split a word, by nothing."""
    pos = 0
    for piece in pieces:
        if not piece or piece != piece.strip() or not norm.startswith(piece, pos):
            return False
        pos += len(piece)
        if pos < len(norm) and norm[pos] == " ":
            pos += 1
    return pos == len(norm)


def normalise(text: str) -> str:
    return " ".join(text.split())


TEXTS = [
    "Well, it costs 3.5 dollars. Shall I order 1,000 of them?",
    "Hello, welcome to use our service. How can I help you today?",
    'Mr. Smith met Dr. Jones, e.g. at St. Peter\'s. Then they left... Really?! "Yes." OK',
    "John F. Kennedy was born in the U.S. in 1917. It is 10:30 now; visit example.com.",
    "## Summary\n\n- **Apples** are red.\n- *Pears* are `green`.\n1. First step.\n2) Second, step.\n12",
    "你好，欢迎使用我们的服务。今天天气很好！请问您需要什么？",
    "Well, ... so what? " + "one two three four, five six seven eight; " * 8 + "nine.",
    "no boundaries at all in this long text that goes on and on without any punctuation " * 4,
    "Go. " + "x" * 300 + " end.",
    "  \n Leading space, then\n\n  a paragraph.   Trailing space.  \n",
]
OPTIONS = [
    {},
    {"first_max_chars": 10, "chunk_max_chars": 30},
    {"min_chars": 12},
    {"first_max_chars": 3, "chunk_max_chars": 5, "min_chars": 4},
]


# However the reply is cut into deltas


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("text", TEXTS)
def test_every_cutting_gives_the_same_clauses(text: str, options: dict[str, Any]) -> None:
    whole = feed([text], **options)
    rng = random.Random(text)

    for _ in range(200):
        deltas = cut(text, rng)
        assert feed(deltas, **options) == whole, deltas
    assert feed(list(text), **options) == whole


def test_every_way_of_cutting_a_short_text() -> None:
    text = "Hi, 3.5. Mr. X"
    whole = feed([text])

    def cuttings(rest: str) -> list[list[str]]:
        if not rest:
            return [[]]
        return [[rest[:n], *tail] for n in range(1, min(7, len(rest)) + 1) for tail in cuttings(rest[n:])]

    every = cuttings(text)
    assert len(every) > 5_000
    assert all(feed(deltas) == whole for deltas in every)
    assert whole == ["Hi,", "3.5.", "Mr. X"]


words = st.text(alphabet="abeHkouwy0123456789你好世界中文", min_size=1, max_size=9)
marks = st.sampled_from(["", "", ",", ".", "!", "?", ";", ":", "…", "，", "。", "！", "、", '."', "*", "`"])
separators = st.sampled_from([" ", " ", " ", "", "  ", "\n", "\n- ", "\n# ", "\n1. ", "\t "])
texts = st.lists(st.tuples(words, marks, separators).map("".join), min_size=1, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    texts,
    st.randoms(use_true_random=False),
    st.integers(min_value=1, max_value=80),
    st.integers(min_value=1, max_value=250),
    st.integers(min_value=0, max_value=30),
)
def test_any_text_any_cutting(
    text: str, rng: random.Random, first_max: int, chunk_max: int, min_chars: int
) -> None:
    options = {"first_max_chars": first_max, "chunk_max_chars": chunk_max, "min_chars": min_chars}

    whole = feed([text], **options)

    assert feed(cut(text, rng), **options) == whole
    assert all(piece and piece == piece.strip() for piece in whole)
    if min_chars == 0:
        assert all(len(piece) <= chunk_max for piece in whole[1:])
        if whole:
            assert len(whole[0]) <= first_max


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_characters="*`#-+•\n")), st.integers(1, 80), st.integers(1, 250))
def test_without_markdown_the_pieces_rejoin_and_start_as_split_for_streaming(
    text: str, first_max: int, chunk_max: int
) -> None:
    pieces = feed([text], first_max_chars=first_max, chunk_max_chars=chunk_max)
    batch = split_for_streaming(text, first_max_chars=first_max, chunk_max_chars=chunk_max)

    assert rejoin(pieces, normalise(text))
    assert pieces[:1] == batch[:1]


# As early as is certain


def test_the_first_clause_comes_out_once_the_next_word_begins() -> None:
    buffer = ClauseBuffer()

    assert buffer.push("Hello") == []
    assert buffer.push(",") == []
    assert buffer.push(" ") == []  # "Hello, ..." would still join the "..." to it
    assert buffer.push("w") == ["Hello,"]
    assert buffer.push("elcome to our service") == []
    assert buffer.push(". How") == ["welcome to our service."]
    assert buffer.push(" can I help?") == []
    assert buffer.flush() == ["How can I help?"]


def test_later_pieces_are_whole_sentences() -> None:
    pieces = feed(["Sure, I can help with that, and with more. First, open the app. Then, log in."])

    assert pieces == [
        "Sure,",
        "I can help with that, and with more.",
        "First, open the app.",
        "Then, log in.",
    ]


@pytest.mark.parametrize(
    ("deltas", "first"),
    [
        (["It costs 3.", "5 dollars, ok"], "It costs 3.5 dollars,"),
        (["We sold 1,", "000 units, then"], "We sold 1,000 units,"),
        (["Bring fruit e.", "g. apples, then"], "Bring fruit e.g. apples,"),
        (["Ask Mr.", " Smith, then"], "Ask Mr. Smith,"),
        (["Visit example.", "com now. Or"], "Visit example.com now."),
        (['He said "stop.', '" Then'], 'He said "stop."'),
        (["Wait.", ".. what"], "Wait..."),
    ],
)
def test_a_boundary_waits_for_the_next_character(deltas: list[str], first: str) -> None:
    buffer = ClauseBuffer()

    assert buffer.push(deltas[0]) == []
    assert buffer.push(deltas[1]) == [first]


def test_abbreviations_and_numbers_are_not_boundaries() -> None:
    text = "Mr. Smith paid 1,000.50 dollars, e.g. for the U.S. trip with Dr. Jones. Then he left."

    assert feed([text]) == [
        "Mr. Smith paid 1,000.50 dollars,",
        "e.g. for the U.S. trip with Dr. Jones.",
        "Then he left.",
    ]


def test_a_long_first_clause_is_cut_at_a_word() -> None:
    buffer = ClauseBuffer(first_max_chars=20)

    assert buffer.push("this clause goes on") == []  # "on," would end the clause at 20 characters
    assert buffer.push(" for quite a while") == ["this clause goes on"]
    assert buffer.flush() == ["for quite a while"]


def test_an_over_long_sentence_is_cut_at_clauses_that_grow() -> None:
    text = "Go. " + "one two three four, five six seven eight; " * 8 + "nine."

    pieces = feed([text], chunk_max_chars=200)

    assert pieces[0] == "Go."
    assert 40 < len(pieces[1]) <= 90  # RAMP: the second piece is at most 90 characters
    assert 90 < len(pieces[2]) <= 160
    assert all(len(piece) <= 200 for piece in pieces)
    assert all(piece.endswith((",", ";", ".")) for piece in pieces)
    assert rejoin(pieces, normalise(text))


def test_cjk_is_cut_at_its_punctuation() -> None:
    assert feed(list("你好，欢迎使用。今天天气很好！")) == ["你好，", "欢迎使用。", "今天天气很好！"]


# Markdown


@pytest.mark.parametrize(
    ("markdown", "spoken"),
    [
        ("**Bold** and *italic* and `code`.", "Bold and italic and code."),
        ("# Title\nText.", "Title Text."),
        ("### Title\n#hashtag", "Title #hashtag"),
        ("- one\n* two\n+ three\n• four", "one two three four"),
        ("1. First.\n2) Second.\n10. Tenth.", "First. Second. Tenth."),
        ("  - indented item", "indented item"),
        (
            "3.5 is a number\n-5 degrees\n1990 was it\n1234. no",
            "3.5 is a number -5 degrees 1990 was it 1234. no",
        ),
        ("a - b and 2 * 3 = 6", "a - b and 2 3 = 6"),
        ("ends with a number\n12", "ends with a number 12"),
    ],
)
def test_markdown_is_not_read_out(markdown: str, spoken: str) -> None:
    assert " ".join(feed([markdown], first_max_chars=200)) == spoken
    assert " ".join(feed(list(markdown), first_max_chars=200)) == spoken


# Short pieces and the end


def test_short_pieces_wait_to_be_joined() -> None:
    buffer = ClauseBuffer(min_chars=15)

    assert buffer.push("Yes, ") == []
    assert buffer.push("sure. ") == []
    assert buffer.push("I can do that. Ok") == ["Yes, sure. I can do that."]
    assert buffer.flush() == ["Ok"]  # the last piece goes out however short


def test_a_short_piece_held_at_the_end_is_flushed() -> None:
    buffer = ClauseBuffer(min_chars=10)

    assert buffer.push("Hello there, how are you? Ok. Bye") == ["Hello there,", "how are you?"]
    assert buffer.flush() == ["Ok. Bye"]


def test_flush_empties_the_buffer_for_the_next_reply() -> None:
    buffer = ClauseBuffer()
    assert buffer.push("First reply, with words") == ["First reply,"]

    assert buffer.flush() == ["with words"]
    assert buffer.flush() == []
    assert buffer.push("Second, reply") == ["Second,"]  # the first clause of a new reply again


def test_nothing_but_whitespace_and_markup_gives_nothing() -> None:
    assert feed([" \n\t ", "**", "\n- "]) == []


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ClauseBuffer(first_max_chars=0)
    with pytest.raises(ValueError, match="negative"):
        ClauseBuffer(min_chars=-1)
