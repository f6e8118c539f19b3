from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from herald.speech.pronunciation import apply_rules


def test_replaces_whole_latin_words_in_any_case() -> None:
    rules = [("SQL", "sequel")]

    assert apply_rules("SQL, sql and Sql.", rules) == "sequel, sequel and sequel."
    assert apply_rules("SQLite and MySQL and SQL_x and SQL2", rules) == "SQLite and MySQL and SQL_x and SQL2"


def test_a_latin_word_next_to_cjk_is_a_whole_word() -> None:
    assert apply_rules("欢迎使用Herald服务", [("herald", "Her-ald")]) == "欢迎使用Her-ald服务"


def test_cjk_words_are_replaced_anywhere() -> None:
    rules = [("阿里云", "阿里 云"), ("重庆", "崇庆")]

    assert apply_rules("欢迎使用阿里云，我们在重庆。", rules) == "欢迎使用阿里 云，我们在崇庆。"


def test_a_mixed_word_has_a_boundary_only_on_its_latin_side() -> None:
    rules = [("云ECS", "云 E C S")]

    assert apply_rules("阿里云ECS服务", rules) == "阿里云 E C S服务"
    assert apply_rules("阿里云ECSX", rules) == "阿里云ECSX"


def test_the_longest_word_wins() -> None:
    rules = [("York", "Yorick"), ("New York", "Noo Yawk")]

    assert apply_rules("New York and York", rules) == "Noo Yawk and Yorick"


def test_among_equal_words_the_first_rule_wins() -> None:
    assert apply_rules("tomato", [("tomato", "tomahto"), ("TOMATO", "tomayto")]) == "tomahto"


def test_replacements_are_not_replaced_again() -> None:
    rules = [("a", "b"), ("b", "c")]

    assert apply_rules("a b", rules) == "b c"


def test_words_with_punctuation_at_the_edges() -> None:
    rules = [("C++", "see plus plus"), ("AT&T", "A T and T"), (".NET", "dot net")]

    assert apply_rules("C++ at AT&T with .NET", rules) == "see plus plus at A T and T with dot net"
    assert apply_rules("ASP.NET and C++11", rules) == "ASP.NET and C++11"


def test_empty_words_and_no_rules_change_nothing() -> None:
    assert apply_rules("hello", []) == "hello"
    assert apply_rules("hello", [("", "x")]) == "hello"


def test_many_rules() -> None:
    rules = [(f"w{i}", f"x{i}") for i in range(1000)]

    assert apply_rules("w1 w999 w1000", rules) == "x1 x999 w1000"


texts = st.text(alphabet=st.sampled_from("ab AB,.阿里云-_1"), max_size=40)
words = st.text(alphabet=st.sampled_from("abAB阿里云-1"), min_size=1, max_size=4)
rule_lists = st.lists(st.tuples(words, st.text(alphabet=st.sampled_from("ab 阿云-"), max_size=6)), max_size=6)


@given(texts)
def test_no_rules_is_the_identity(text: str) -> None:
    assert apply_rules(text, []) == text


@given(texts, rule_lists)
def test_replacements_are_never_replaced_again(text: str, rules: list[tuple[str, str]]) -> None:
    # Give each rule a marker no rule can match (a private-use character), then put the pronunciations in
    # place of the markers: that is the one-pass result, even where pronunciations contain rule words.
    markers = [chr(0xE000 + index) for index in range(len(rules))]
    marked = apply_rules(text, [(word, marker) for (word, _), marker in zip(rules, markers, strict=True)])
    expected = "".join(
        rules[ord(char) - 0xE000][1] if "\ue000" <= char < chr(0xE000 + len(rules)) else char
        for char in marked
    )

    assert apply_rules(text, rules) == expected


@given(texts, rule_lists)
def test_applying_rules_whose_words_do_not_occur_changes_nothing(
    text: str, rules: list[tuple[str, str]]
) -> None:
    absent = [(word, spoken) for word, spoken in rules if word.casefold() not in text.casefold()]

    assert apply_rules(text, absent) == text
