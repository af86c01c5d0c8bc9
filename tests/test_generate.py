"""Constrained decoding (course_lib.generate.SpanTrie, SpanConstraint) and the span reader (chapter 4).

The oracle for the trie is the text itself: the whole-word spans of a passage, listed by
splitting it on whitespace and punctuation with a regular expression.
"""
from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import rag
from course_lib.generate import Generator, SpanConstraint, SpanTrie

WORDS = st.sampled_from(["the", "river", "Nile", "1816", "Denver", "Broncos", "won", "in", "of", "a", "café",
                         "Zürich", "x", "AB12", "naïve", "—", "(Harvey)", "stethoscope", "Laennec's", "UNESCO"])
SEPARATORS = st.sampled_from([" ", " ", " ", ", ", ". ", "; ", " - ", "\n"])


@pytest.fixture(scope="module")
def tiny_generator():
    return Generator("tiny", max_new_tokens=8, batch_size=3)


def passages_strategy(max_words: int = 14):
    text = st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=max_words).map(
        lambda pairs: "".join(w + s for w, s in pairs).strip())
    return st.lists(text, min_size=1, max_size=3)


def spans_in(trie: SpanTrie, tokenizer) -> set[str]:
    """Every stoppable path of the trie, decoded."""
    out, stack = set(), [((), trie.root)]
    while stack:
        prefix, node = stack.pop()
        for token, child in node.items():
            if token == SpanTrie.END:
                out.add(tokenizer.decode(list(prefix), clean_up_tokenization_spaces=False))
            else:
                stack.append((prefix + (token,), child))
    return out


def whole_word_spans(passage: str) -> set[str]:
    """Substrings that start at a non-space after a space (or the start) and end before a
    non-alphanumeric character (or the end), found by brute force."""
    starts = [m.start() for m in re.finditer(r"\S+", passage)]
    ends = [i for i in range(1, len(passage) + 1) if i == len(passage) or not passage[i].isalnum()]
    return {passage[s:e] for s in starts for e in ends if e > s}


def test_span_trie_by_hand(tiny_generator):
    tokenizer = tiny_generator.tokenizer
    trie = SpanTrie(["Denver Broncos won Super Bowl 50."], tokenizer, max_tokens=16)
    found = spans_in(trie, tokenizer)
    assert {"Denver Broncos", "Broncos won Super Bowl 50", "Bowl 50.", "50"} <= found
    assert not any(s.startswith(" ") or s.startswith("roncos") for s in found)
    assert "Denv" not in found  # never stops inside a word
    denver = tokenizer("Denver", add_special_tokens=False)["input_ids"]
    assert denver in trie and [] not in trie
    allowed, may_stop = trie.next_tokens(tokenizer("Denver Broncos won", add_special_tokens=False)["input_ids"])
    assert may_stop and tokenizer.decode(allowed).strip() == "Super"
    assert trie.next_tokens(tokenizer("Broncos lost", add_special_tokens=False)["input_ids"]) == ([], False)
    short = SpanTrie(["Denver Broncos won Super Bowl 50."], tokenizer, max_tokens=1)
    assert spans_in(short, tokenizer) <= {"Denver", "Broncos", "won", "Super", "Bowl", "50", "50."}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passages=passages_strategy(), max_tokens=st.integers(1, 8))
def test_span_trie_holds_exactly_the_whole_word_spans(tiny_generator, passages, max_tokens):
    tokenizer = tiny_generator.tokenizer
    trie = SpanTrie(passages, tokenizer, max_tokens=max_tokens)
    oracle = set().union(*(whole_word_spans(p) for p in passages))
    found = spans_in(trie, tokenizer)
    assert found <= oracle  # sound: every answer the trie allows is a whole-word span of a passage
    # complete: every ASCII whole-word span that ends where one of the passage's own tokens ends
    # (read from a word on), within max_tokens tokens; "(Harvey)," has no span "(Harvey)" when ")," is one token
    reachable = set()
    for p in passages:
        for m in re.finditer(r"\S+", p):
            offsets = tokenizer(p[m.start():], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            reachable |= {p[m.start():m.start() + end] for _, end in offsets[:max_tokens]}
    ascii_short = {s for s in oracle & reachable if s.isascii() and not s[-1].isspace()}
    assert ascii_short <= found


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passages=passages_strategy(), question=st.text(min_size=1, max_size=40))
def test_every_constrained_answer_is_a_span_of_its_passages(tiny_generator, passages, question):
    reader = rag.GenerativeReader(tiny_generator, constrained=True, max_answer_tokens=6)
    chunks = [{"chunk_id": f"c{i}", "doc_id": f"d{i}", "title": "", "text": p} for i, p in enumerate(passages)]
    result = reader.read(question, chunks)
    answer = result["answer"]
    assert answer and answer in set().union(*(whole_word_spans(p) for p in passages))
    [n] = result["cited"]
    assert answer in passages[n - 1] and not any(answer in p for p in passages[:n - 1])
    assert result["doc_ids"] == [f"d{n - 1}"]


def test_span_constraint_masks_all_but_the_allowed_tokens(tiny_generator):
    tokenizer = tiny_generator.tokenizer
    trie = SpanTrie(["alpha beta gamma"], tokenizer, max_tokens=4)
    eos = tokenizer.eos_token_id
    beta = tokenizer(" beta", add_special_tokens=False)["input_ids"]
    alpha = tokenizer("alpha", add_special_tokens=False)["input_ids"]
    prompt = torch.tensor([[5, 6, 7]])
    assert len(alpha) == 1 and len(beta) == 1
    constraint = SpanConstraint([trie, trie], prompt_length=3, stop_ids=[eos])
    scores = torch.zeros(2, len(tokenizer))
    ids = torch.tensor([[5, 6, 7] + alpha, [5, 6, 7, eos]])
    out = constraint(ids, scores)
    assert set(torch.nonzero(out[0] == 0).flatten().tolist()) == {beta[0], eos}
    assert torch.all(out[1] == 0)  # a row that has stopped is left alone
    start = SpanConstraint([trie], prompt_length=3, stop_ids=[eos])(prompt, torch.zeros(1, len(tokenizer)))
    assert eos not in torch.nonzero(start[0] == 0).flatten().tolist()  # an empty answer is no span
    with pytest.raises(ValueError, match="stop_ids"):
        SpanConstraint([trie], 3, [])


def test_span_trie_and_generate_reject_bad_input(tiny_generator):
    with pytest.raises(TypeError, match="passages"):
        SpanTrie("one passage", tiny_generator.tokenizer)
    with pytest.raises(ValueError, match="max_tokens"):
        SpanTrie(["a b"], tiny_generator.tokenizer, max_tokens=0)
    with pytest.raises(ValueError, match="spans must hold one SpanTrie per prompt"):
        tiny_generator.generate(["a", "b"], spans=[SpanTrie(["a b"], tiny_generator.tokenizer)])
    with pytest.raises(TypeError, match="constrained"):
        rag.GenerativeReader(tiny_generator, constrained="yes")


def test_constrained_reader_closed_book_is_unconstrained_and_cached_per_passages(tiny_generator):
    free = rag.GenerativeReader(tiny_generator)
    spans = rag.GenerativeReader(tiny_generator, constrained=True)
    assert spans.read("Who won?", None)["answer"] == free.read("Who won?", None)["answer"]
    one = spans.read("Who won?", [{"chunk_id": "a", "doc_id": "a", "text": "Denver Broncos won"}])
    two = spans.read("Who won?", [{"chunk_id": "a", "doc_id": "a", "text": "Carolina Panthers lost"}])
    assert one["answer"] in "Denver Broncos won" and two["answer"] in "Carolina Panthers lost"


def test_training_shots_come_from_the_training_split():
    from course_lib import data

    shots = rag.training_shots(3)
    splits = data.load_squad_like()
    assert len(shots) == 3 and all(s["answer"] in s["passages"][0] for s in shots)
    assert {s["question"] for s in shots} <= set(splits["train"]["question"])
    assert not {s["question"] for s in shots} & set(splits["validation"]["question"])
    assert rag.training_shots(0) == []
    with pytest.raises(ValueError, match="n must be"):
        rag.training_shots(-1)
