from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.speech.text import split_for_streaming


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


# Examples


def test_first_piece_is_the_first_clause_alone() -> None:
    text = "Hello, welcome to use our service. How can I help you today?"

    pieces = split_for_streaming(text)

    assert pieces == ["Hello,", "welcome to use our service. How can I help you today?"]


def test_rest_is_grouped_in_whole_sentences() -> None:
    sentences = [f"This is sentence number {n}, which has a clause." for n in range(10)]
    text = "Hi. " + " ".join(sentences)

    pieces = split_for_streaming(text, chunk_max_chars=120)

    assert pieces[0] == "Hi."
    assert all(len(piece) <= 120 for piece in pieces[1:])
    assert all(piece.endswith("clause.") for piece in pieces[1:])
    # The second piece ramps up (at most 90 chars: one 48-char sentence); then two (97 chars) fit in 120.
    assert len(pieces[1]) == len(sentences[0])
    assert len(pieces) == 1 + 1 + 5  # 1 + 2 + 2 + 2 + 2 + 1 sentences


def test_pieces_grow_so_each_is_made_while_the_one_before_plays() -> None:
    text = "Hi. " + " ".join(f"Sentence {n} is here." for n in range(60))
    lengths = [len(piece) for piece in split_for_streaming(text)]
    assert lengths[1] <= 90
    assert lengths[2] <= 160
    assert max(lengths) <= 240
    assert lengths[1] < lengths[2] < lengths[3]


@pytest.mark.parametrize(
    "text",
    [
        "We sold 1,000 units at 3.5 dollars each.",
        "Bring fruit, e.g. apples.",
        "Mr. Smith and Dr. Jones met St. Peter.",
        "John F. Kennedy was born in the U.S. in 1917.",
        "Visit example.com now.",
        "It is 10:30 now.",
    ],
)
def test_numbers_abbreviations_and_names_are_not_boundaries(text: str) -> None:
    first = split_for_streaming(text, first_max_chars=100)[0]

    assert first in (text, text.split(",", 1)[0] + ",")
    if "1,000" in text:
        assert first == text


def test_abbreviation_then_clause() -> None:
    assert split_for_streaming("Bring fruit, e.g. apples.")[0] == "Bring fruit,"
    assert split_for_streaming("Ask Mr. Smith, then go.")[0] == "Ask Mr. Smith,"


def test_closing_quote_stays_with_its_clause() -> None:
    assert split_for_streaming('He said "stop." Then he left.', chunk_max_chars=5) == [
        'He said "stop."',
        "Then",
        "he",
        "left.",
    ]


def test_long_first_clause_is_cut_at_a_word() -> None:
    text = "this clause goes on for quite a while before it finally reaches a comma, then more."

    pieces = split_for_streaming(text, first_max_chars=30)

    assert pieces[0] == "this clause goes on for quite"
    assert rejoin(pieces, text)


def test_over_long_sentence_is_cut_at_clauses_then_words() -> None:
    text = "Go. " + "one two three four, five six seven eight; " * 3 + "nine."

    pieces = split_for_streaming(text, chunk_max_chars=40)

    assert pieces[0] == "Go."
    assert all(len(piece) <= 40 for piece in pieces[1:])
    assert all(piece.endswith((",", ";", ".")) for piece in pieces[1:])
    assert rejoin(pieces, normalise(text))


def test_text_without_boundaries() -> None:
    text = "no boundaries at all in this long text that goes on and on without any punctuation"

    pieces = split_for_streaming(text, first_max_chars=20, chunk_max_chars=40)

    assert pieces[0] == "no boundaries at all"
    assert all(len(piece) <= 40 for piece in pieces)
    assert " ".join(pieces) == text


def test_whitespace_is_normalised_and_empty_text_gives_nothing() -> None:
    assert split_for_streaming("  Hello,\n\n  world.\t ") == ["Hello,", "world."]
    assert split_for_streaming(" \n\t ") == []
    assert split_for_streaming("") == []


def test_cjk_is_cut_at_its_punctuation() -> None:
    text = "你好，欢迎使用我们的服务。今天天气很好！请问您需要什么？"

    pieces = split_for_streaming(text, chunk_max_chars=12)

    assert pieces == ["你好，", "欢迎使用我们的服务。", "今天天气很好！", "请问您需要什么？"]
    assert "".join(pieces) == text


def test_cjk_without_punctuation_is_cut_by_characters() -> None:
    text = "中" * 100

    pieces = split_for_streaming(text, first_max_chars=10, chunk_max_chars=40)

    assert [len(piece) for piece in pieces] == [10, 40, 40, 10]
    assert "".join(pieces) == text


def test_punctuation_without_words_joins_the_clause_before() -> None:
    assert split_for_streaming("Well, ... so what?") == ["Well, ...", "so what?"]
    assert split_for_streaming("... hi") == ["... hi"]


def test_rejects_empty_limits() -> None:
    with pytest.raises(ValueError, match="at least one"):
        split_for_streaming("hi", first_max_chars=0)


# Properties

limits = st.integers(min_value=1, max_value=80)


@given(st.text(), limits, st.integers(min_value=1, max_value=300))
def test_any_text_pieces_fit_and_rejoin(text: str, first_max: int, chunk_max: int) -> None:
    norm = normalise(text)

    pieces = split_for_streaming(text, first_max_chars=first_max, chunk_max_chars=chunk_max)

    assert rejoin(pieces, norm)
    if pieces:
        assert len(pieces[0]) <= first_max
        assert all(len(piece) <= chunk_max for piece in pieces[1:])


# Words that cannot be abbreviations or initials, so the oracle for a clause boundary stays simple.
words = st.text(alphabet="abehkouwy0123456789你好世界中文", min_size=2, max_size=9)
marks = st.sampled_from(["", "", "", ",", ".", "!", "?", ";", ":", "…", "，", "。", "！", "、"])
separators = st.sampled_from([" ", " ", " ", "", "  ", "\n", "\t "])
tokens = st.tuples(words, marks, separators).map("".join)
texts = st.lists(tokens, min_size=1, max_size=60).map("".join)

CLAUSE_END = re.compile(r"[,;:.!?](?= |$)|[…，。！？；：、]")


@given(texts, limits, st.integers(min_value=1, max_value=300))
def test_first_piece_is_always_the_first_clause(text: str, first_max: int, chunk_max: int) -> None:
    norm = normalise(text)
    match = CLAUSE_END.search(norm)
    clause = norm[: match.end()] if match else norm

    pieces = split_for_streaming(text, first_max_chars=first_max, chunk_max_chars=chunk_max)

    assert rejoin(pieces, norm)
    if len(clause) <= first_max:
        assert pieces[0] == clause
    else:
        space = clause.rfind(" ", 1, first_max + 1)
        assert pieces[0] == clause[: space if space > 0 else first_max]


SENTENCE_END = re.compile(r"[.!?](?= |$)|[…。！？]")


@given(texts, st.integers(min_value=10, max_value=300))
def test_later_pieces_end_at_sentences_when_sentences_fit(text: str, chunk_max: int) -> None:
    norm = normalise(text)
    ends = [match.end() for match in SENTENCE_END.finditer(norm)] + [len(norm)]
    starts = [0] + [end + 1 if norm[end : end + 1] == " " else end for end in ends[:-1]]

    pieces = split_for_streaming(text, chunk_max_chars=chunk_max)

    if all(end - start <= chunk_max for start, end in zip(starts, ends, strict=True)):
        pos = len(pieces[0])
        for piece in pieces[1:]:
            pos = norm.index(piece, pos) + len(piece)
            assert pos in ends
