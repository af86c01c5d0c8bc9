"""course_lib.text by hand, and tokenize against an oracle that uses no regular expression."""
from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.text import STOP_WORDS, content_words, stop_list_effect, tokenize


def tokenize_oracle(text: str) -> list[str]:
    """Maximal runs of characters for which str.isalnum() holds, after str.lower()."""
    return ["".join(run) for alnum, run in itertools.groupby(text.lower(), key=str.isalnum) if alnum]


# ----------------------------------------------------------------- the token pattern
@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Don't stop-words", ["don", "t", "stop", "words"]),  # apostrophes and hyphens split
        ("snake_case __init__ a_1", ["snake", "case", "init", "a", "1"]),  # so do underscores
        ("COVID-19 in the 2020s, 3.14!", ["covid", "19", "in", "the", "2020s", "3", "14"]),
        ("Café MÜLLER naïve", ["café", "müller", "naïve"]),  # unicode letters, lower-cased
        ("東京 tokyo", ["東京", "tokyo"]),
        ("x = y + 7", ["x", "y", "7"]),  # one-letter tokens are kept
        ("  \t\n ...", []),
        ("", []),
    ],
)
def test_tokenize_by_hand(text, tokens):
    assert tokenize(text) == tokens


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_tokenize_matches_an_oracle_without_regex(text):
    assert tokenize(text) == tokenize_oracle(text)


# ------------------------------------------------------------------------- options
def test_min_len_by_hand():
    text = "a bb ccc é"
    assert tokenize(text) == ["a", "bb", "ccc", "é"]
    assert tokenize(text, min_len=1) == ["a", "bb", "ccc", "é"]
    assert tokenize(text, min_len=2) == ["bb", "ccc"]  # length in characters: "é" is one
    assert tokenize(text, min_len=3) == ["ccc"]
    assert tokenize(text, min_len=4) == []


def test_stopwords_by_hand():
    text = "The cat and the hat"
    assert tokenize(text, stopwords=STOP_WORDS) == ["cat", "hat"]
    assert tokenize(text, stopwords=["cat"]) == ["the", "and", "the", "hat"]
    assert tokenize(text, stopwords=("cat",)) == tokenize(text, stopwords={"cat"}) == tokenize(text, stopwords=iter(["cat"]))
    assert tokenize(text, stopwords=[]) == tokenize(text)
    assert tokenize(text, stopwords=["The"]) == tokenize(text)  # stop words are compared after lower-casing the text


def test_stem_by_hand():
    assert tokenize("Running runs runner", stem=True) == ["run", "run", "runner"]
    # stop words go first: "does" is dropped, not stemmed to "doe" (which is no stop word)
    assert tokenize("does", stem=True) == ["doe"]
    assert tokenize("does running", stopwords=STOP_WORDS, stem=True) == ["run"]
    # min_len counts the unstemmed token: "ties" (4) stays and becomes "tie"
    assert tokenize("ties", min_len=4, stem=True) == ["tie"]


def test_stop_words_are_tokens():
    assert all(tokenize(w) == [w] for w in STOP_WORDS)
    assert {"the", "of", "and", "s", "t"} <= STOP_WORDS
    assert not {"new", "first", "year"} & STOP_WORDS  # content words stay


def test_content_words_by_hand():
    assert content_words("The cat and THE hat, the cat!") == {"cat", "hat"}
    assert content_words("of the") == set()


# -------------------------------------------------------------------- stop_list_effect
def test_stop_list_effect_by_hand():
    docs = ["The cat sat", "the cat, the end"]
    # tokens: 3 + 4 = 7; vocabulary {the, cat, sat, end}; postings {the, cat, sat} + {the, cat, end} = 6
    assert stop_list_effect(docs) == {
        "tokens": 7,
        "tokens_without_stop_words": 4,
        "vocabulary": 4,
        "vocabulary_without_stop_words": 3,
        "postings": 6,
        "postings_without_stop_words": 4,
        "share_of_tokens_removed": 3 / 7,
    }
    custom = stop_list_effect(iter(docs), ["cat", "end"])  # any iterable of texts; a custom stop list
    assert custom["tokens_without_stop_words"] == 4 and custom["vocabulary_without_stop_words"] == 2
    assert custom["postings_without_stop_words"] == 3 and custom["share_of_tokens_removed"] == pytest.approx(3 / 7)


def test_stop_list_effect_of_nothing_is_zero():
    effect = stop_list_effect([])
    assert effect["tokens"] == 0 and effect["share_of_tokens_removed"] == 0.0
    assert stop_list_effect(["", "..."])["share_of_tokens_removed"] == 0.0
    assert stop_list_effect(["the of"])["share_of_tokens_removed"] == 1.0


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: tokenize(None), TypeError, "text must be a str"),
        (lambda: tokenize(b"bytes"), TypeError, "text must be a str"),
        (lambda: tokenize("a", min_len=0), ValueError, "min_len"),
        (lambda: tokenize("a", min_len=True), ValueError, "min_len"),
        (lambda: tokenize("a", min_len=2.0), ValueError, "min_len"),
        (lambda: tokenize("a", stopwords="the"), TypeError, "stopwords"),
        (lambda: tokenize("a", stopwords=3), TypeError, "stopwords"),
        (lambda: stop_list_effect("one document"), TypeError, "documents"),
        (lambda: stop_list_effect(["a"], "the"), TypeError, "stopwords"),
        (lambda: stop_list_effect([3]), TypeError, "text must be a str"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()
